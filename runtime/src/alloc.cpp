// SPDX-License-Identifier: Apache-2.0
// runtime/src/alloc.cpp — memory for tasklet control blocks.
//
// Each worker keeps free blocks in size classes of 64 bytes (control blocks are ~350 bytes plus
// the callable). A block freed on a worker goes to that worker's cache, whatever worker
// allocated it; a block freed off any worker, or past the cache's bound, goes back to malloc.
// So memory drifts between workers but the caches stay bounded.
#include <cstdlib>
#include <new>

#include "scheduler_impl.hpp"

namespace stackless::detail {
namespace {

constexpr std::size_t class_bytes = 64;

struct free_block {
  free_block* next;
};

}  // namespace

// block_alloc() / block_free(): `bytes` from the calling worker's cache, or malloc.
static void* block_alloc(std::size_t bytes) {
  std::size_t c = (bytes + class_bytes - 1) / class_bytes;
  if (worker* w = current_worker(); w && c < worker::alloc_classes) {
    auto& fl = w->tcb_free[c];
    if (fl.head) {
      void* p = fl.head;
      fl.head = static_cast<free_block*>(fl.head)->next;
      --fl.count;
      return p;
    }
  }
  void* p = std::malloc(c * class_bytes);
  if (!p) throw std::bad_alloc();
  return p;
}

static void block_free(void* p, std::size_t bytes) noexcept {
  std::size_t c = (bytes + class_bytes - 1) / class_bytes;
  if (worker* w = current_worker(); w && c < worker::alloc_classes) {
    auto& fl = w->tcb_free[c];
    if (fl.count < worker::alloc_cache_max) {
      static_cast<free_block*>(p)->next = static_cast<free_block*>(fl.head);
      fl.head = p;
      ++fl.count;
      return;
    }
  }
  std::free(p);
}

// A control block is [private tcb | public part]: operator new constructs the private part in
// front of the object the spawn template is about to construct, operator delete (after the
// public part's destructor ran) destroys it.
void* tcb_base::operator new(std::size_t size) {
  char* p = static_cast<char*>(block_alloc(tcb_prefix + size));
  ::new (p) tcb();
  return p + tcb_prefix;
}

void tcb_base::operator delete(void* p, std::size_t size) noexcept {
  tcb* t = tcb_of(static_cast<tcb_base*>(p));
  t->~tcb();
  block_free(t, tcb_prefix + size);
}

tcb_base::~tcb_base() = default;

tcb_base* base_of(tcb* t) noexcept { return t->base(); }
std::uint64_t tasklet_id(const tcb* t) noexcept { return t->id; }

void free_tcb_cache(worker& w) noexcept {
  for (auto& fl : w.tcb_free) {
    while (fl.head) {
      void* p = fl.head;
      fl.head = static_cast<free_block*>(p)->next;
      std::free(p);
    }
    fl.count = 0;
  }
}

}  // namespace stackless::detail
