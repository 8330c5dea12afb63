// SPDX-License-Identifier: Apache-2.0
// runtime/src/alloc.cpp — memory for tasklet control blocks.
//
// Blocks come in size classes of 64 bytes (a control block is ~400 bytes plus the callable).
// They are carved from chunks of 2 MiB, mapped 2 MiB-aligned and marked MADV_HUGEPAGE, so that
// where transparent huge pages are on (always, or madvise mode) a chunk costs one page fault
// instead of 512: a million live tasklets touch 450 MB of control blocks, and on a VM where a
// first-touch fault is expensive that was most of a spawn's cost (issue 14: 0.118 faults per
// spawned tasklet, glibc's arena growing by mprotect under it).
//
//   worker (current_worker() non-null): its own free list per class (bounded: alloc_cache_max),
//     then its own chunk (a bump pointer), then a batch from the shared lists, then a new chunk.
//     A block freed on a worker goes to that worker's list, whatever worker allocated it; past
//     the bound, to the shared list of its class.
//   plain thread (a spawn from outside the scheduler): the shared lists and a shared chunk,
//     under the arena's mutex.
//   larger blocks (a callable of more than ~1.6 KiB): malloc and free.
//
// Memory is never given back to the kernel: the arena holds the peak of live control blocks,
// reused from then on (Go keeps its goroutine structs the same way). It is process-wide, not
// per scheduler: a control block lives as long as its last handle, which may outlive the
// scheduler.
//
// Invariants: a block is on at most one free list; the shared lists and the shared chunk change
// only under arena::mu; a worker's list and chunk only on its own thread. The mutex is held
// across fork() (pthread_atfork), so a child's fresh scheduler finds it unlocked.
//
// Sanitizer builds: blocks come from malloc, one each (see carve()), and a free block is
// poisoned but for its first word (the list link), so that ASan still reports a use of a freed
// control block and LeakSanitizer one that is never freed.
#include <pthread.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>

#include "scheduler_impl.hpp"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define STACKLESS_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define STACKLESS_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define STACKLESS_POISON(p, n) ((void)(p), (void)(n))
#define STACKLESS_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace stackless::detail {
namespace {

constexpr std::size_t class_bytes = 64;
constexpr std::size_t classes = worker::alloc_classes;
constexpr std::size_t chunk_bytes = std::size_t{2} << 20;
constexpr std::size_t refill_batch = 32;  // blocks a worker takes from a shared list at once

struct free_block {
  free_block* next;
};

struct arena {
  std::mutex mu;
  free_block* lists[classes] = {};  // under mu
  char* cur = nullptr;              // the plain threads' chunk; under mu
  char* end = nullptr;
};

arena& the_arena() {
  // Never destroyed: a control block may be freed by a static destructor at exit.
  static arena* a = [] {
    auto* x = new arena;
    pthread_atfork([] { the_arena().mu.lock(); }, [] { the_arena().mu.unlock(); },
                   [] { the_arena().mu.unlock(); });
    return x;
  }();
  return *a;
}

#if !defined(STACKLESS_SANITIZED)
// map_chunk(): 2 MiB, 2 MiB-aligned (map twice that and cut off the ends).
char* map_chunk() {
  void* m =
      mmap(nullptr, 2 * chunk_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  const auto lo = reinterpret_cast<std::uintptr_t>(m);
  const auto a = (lo + chunk_bytes - 1) & ~(chunk_bytes - 1);
  if (a > lo) munmap(m, a - lo);
  const std::uintptr_t tail = lo + 2 * chunk_bytes - (a + chunk_bytes);
  if (tail > 0) munmap(reinterpret_cast<void*>(a + chunk_bytes), tail);
#if defined(MADV_HUGEPAGE)
  (void)madvise(reinterpret_cast<void*>(a), chunk_bytes, MADV_HUGEPAGE);  // a hint: may fail
#endif
  return reinterpret_cast<char*>(a);
}
#endif

// carve(): n bytes from [cur, end), mapping a new chunk when it is used up (the rest of the old
// one, less than a block, is left). In the sanitizer builds each block is a malloc instead, so
// that LeakSanitizer still reports a control block nobody frees (it watches malloc only; blocks
// on the free lists stay reachable from the arena).
void* carve(char*& cur, char*& end, std::size_t n) {
#if defined(STACKLESS_SANITIZED)
  (void)cur;
  (void)end;
  void* m = std::malloc(n);
  if (!m) throw std::bad_alloc();
  return m;
#else
  if (static_cast<std::size_t>(end - cur) < n) {
    cur = map_chunk();
    end = cur + chunk_bytes;
  }
  void* p = cur;
  cur += n;
  return p;
#endif
}

void* pop(free_block*& head) noexcept {
  free_block* b = head;
  head = b->next;
  return b;
}

void push(free_block*& head, void* p) noexcept {
  auto* b = static_cast<free_block*>(p);
  b->next = head;
  head = b;
}

// block_alloc() / block_free(): `bytes` as described at the top of the file.
void* block_alloc(std::size_t bytes) {
  const std::size_t c = (bytes + class_bytes - 1) / class_bytes;
  if (c >= classes) {
    void* p = std::malloc(c * class_bytes);
    if (!p) throw std::bad_alloc();
    return p;
  }
  const std::size_t n = c * class_bytes;
  void* p;
  if (worker* w = current_worker()) {
    auto& fl = w->tcb_free[c];
    if (fl.head) {
      p = pop(reinterpret_cast<free_block*&>(fl.head));
      --fl.count;
    } else if (static_cast<std::size_t>(w->carve_end - w->carve_cur) >= n) {
      p = w->carve_cur;
      w->carve_cur += n;
    } else {
      arena& a = the_arena();
      std::unique_lock g(a.mu);
      if (a.lists[c]) {
        // A batch from the shared list: one block to return, the rest onto ours.
        p = pop(a.lists[c]);
        for (std::size_t i = 1; i < refill_batch && a.lists[c]; ++i) {
          push(reinterpret_cast<free_block*&>(fl.head), pop(a.lists[c]));
          ++fl.count;
        }
      } else {
        g.unlock();
        p = carve(w->carve_cur, w->carve_end, n);
      }
    }
  } else {
    arena& a = the_arena();
    std::lock_guard g(a.mu);
    p = a.lists[c] ? pop(a.lists[c]) : carve(a.cur, a.end, n);
  }
  STACKLESS_UNPOISON(p, n);
  return p;
}

void block_free(void* p, std::size_t bytes) noexcept {
  const std::size_t c = (bytes + class_bytes - 1) / class_bytes;
  if (c >= classes) {
    std::free(p);
    return;
  }
  STACKLESS_POISON(static_cast<char*>(p) + sizeof(free_block),
                   c * class_bytes - sizeof(free_block));
  if (worker* w = current_worker()) {
    auto& fl = w->tcb_free[c];
    if (fl.count < worker::alloc_cache_max) {
      push(reinterpret_cast<free_block*&>(fl.head), p);
      ++fl.count;
      return;
    }
  }
  arena& a = the_arena();
  std::lock_guard g(a.mu);
  push(a.lists[c], p);
}

}  // namespace

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
  arena& a = the_arena();
  std::lock_guard g(a.mu);
  for (std::size_t c = 0; c < classes; ++c) {
    auto& fl = w.tcb_free[c];
    while (fl.head) push(a.lists[c], pop(reinterpret_cast<free_block*&>(fl.head)));
    fl.count = 0;
  }
  // The rest of the worker's chunk is left (less than 2 MiB per worker ever made).
}

}  // namespace stackless::detail
