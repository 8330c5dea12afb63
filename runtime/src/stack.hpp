// SPDX-License-Identifier: Apache-2.0
// runtime/src/stack.hpp — tasklet stacks: mmap'ed, guarded while the mapping budget allows,
// pooled and reused, trimmed when they go back to the shared pool.
//
// Layout (addresses grow to the right; a stack grows to the left, from its descriptor down):
//
//   guarded:  [ guard page PROT_NONE ][ usable ............................. | desc ]
//   slab:     [ gap page ][ usable 0 .......... | desc c1 ][ usable 1 .......... | desc c2 ] …
//
// The descriptor sits at the top of its stack, on the page a running tasklet touches first
// anyway, so it costs no extra allocation or RSS. The canary of slab stack i (c_i, 8 bytes) is
// the last word *below* its usable region — on the top page of stack i-1, next to that stack's
// descriptor, a page that is resident anyway. (A canary at the bottom of its own stack would make
// every parked tasklet hold a second page: 8 KiB instead of 4 KiB each.) c_i is a 256-byte zone:
// an overflow of stack i by a recursion with frames smaller than that writes into it; the check
// at every switch away from the tasklet sees it. (A large frame that writes little can still
// step over it: that is what guard pages are for, while the budget lasts.)
//
// Mapping budget: the kernel allows vm.max_map_count mappings per process (65,530 by default) and
// a guarded stack costs two (the guard splits the mapping). Guarded stacks are handed out while
// the process-wide count stays under a quarter of max_map_count; past it stacks are carved from
// slabs of 64 (one mapping each, plus one leading page), without a guard page. A hit guard page
// is reported by a SIGSEGV handler on an alternate signal stack (install_overflow_handler,
// thread_altstack).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace stackless::detail {

inline constexpr std::uint64_t stack_canary = 0x5afe57ac4c0ffee5ULL;
inline constexpr std::size_t canary_words = 32;  // a 256-byte zone: a recursion whose frames
                                                 // are smaller than that cannot step over it

struct stack {
  char* lo;          // lowest usable byte
  std::size_t size;  // usable bytes below this descriptor
  bool guarded;
  void* fiber = nullptr;      // the stack's ThreadSanitizer fiber, if any (context.cpp)
  std::size_t all_index = 0;  // guarded: its place in stack_pool::guarded_all_ (O(1) removal)
  bool canary_ok() const noexcept {
    if (guarded) return true;
    auto* c = reinterpret_cast<const std::uint64_t*>(lo) - canary_words;
    std::uint64_t diff = 0;
    for (std::size_t i = 0; i < canary_words; ++i) diff |= c[i] ^ stack_canary;
    return diff == 0;
  }
};

/// stack_pool is a scheduler's store of stacks. Workers keep a small cache in front of it.
/// Thread-safe (a mutex: it is only reached when a worker's cache is empty or full).
class stack_pool {
 public:
  explicit stack_pool(std::size_t usable_size);
  ~stack_pool();
  stack_pool(const stack_pool&) = delete;
  stack_pool& operator=(const stack_pool&) = delete;

  /// get() returns a stack: a pooled one, or a fresh mapping.
  stack* get();
  /// put() returns stacks; they are trimmed (MADV_DONTNEED) and guarded ones beyond a watermark
  /// are unmapped.
  void put(stack* const* s, std::size_t n);

  std::size_t usable_size() const noexcept { return size_; }
  std::uint64_t pooled() const;
  // relaxed: counts for stats() (see the members).
  std::uint64_t guarded_made() const noexcept {
    return guarded_made_.load(std::memory_order_relaxed);
  }
  std::uint64_t unguarded_made() const noexcept {
    return unguarded_made_.load(std::memory_order_relaxed);
  }

 private:
  stack* map_guarded();
  stack* carve_slab();
  void trim(stack* s) noexcept;

  std::size_t size_;  // usable bytes, page multiple, descriptor included
  std::size_t page_;
  mutable std::mutex mu_;
  std::vector<stack*> free_;         // guarded by mu_
  std::vector<char*> slabs_;         // guarded by mu_
  std::vector<stack*> slab_free_;    // carved, never used; guarded by mu_
  std::vector<stack*> guarded_all_;  // every live guarded mapping, for the destructor; mu_
  // Written under mu_; read without it (relaxed) by stats(): counts, nothing rides on them.
  std::atomic<std::uint64_t> guarded_made_{0}, unguarded_made_{0};
};

/// install_overflow_handler() installs (once per process) the SIGSEGV handler that names the
/// tasklet whose guard page was hit. It chains to the previous handler otherwise.
void install_overflow_handler();

/// thread_altstack gives the calling thread an alternate signal stack for its lifetime, so the
/// overflow handler can run when the tasklet's stack is exhausted.
class thread_altstack {
 public:
  thread_altstack();
  ~thread_altstack();

 private:
  void* mem_ = nullptr;
  bool installed_ = false;
};

}  // namespace stackless::detail
