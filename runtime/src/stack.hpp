// SPDX-License-Identifier: Apache-2.0
// runtime/src/stack.hpp — tasklet stacks: mmap'ed, guarded while the mapping budget allows,
// pooled and reused, trimmed only while the scheduler is idle.
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
//
// options::stack_guard = always changes the budget's meaning: no slabs; every stack is guarded,
// and the budget (3/8 of max_map_count: three quarters of the mappings, the rest left to
// everything else in the process) is reserved per tasklet at spawn (reserve_guarded()), so a
// spawn past it fails at once instead of a tasklet later. canary_beyond_budget (the default) is
// the behaviour above.
//
// Trimming: a stack that comes back (put()) keeps its pages: the next tasklet to take it touches
// resident memory, with no page fault and no system call. The pool trims (MADV_DONTNEED) the
// oldest untrimmed stacks beyond 16 MiB worth, and unmaps guarded stacks beyond 1,024, only in
// release_excess(), when the whole scheduler is idle — never on the spawn or exit path, and
// never while another worker runs (an madvise or munmap with two threads of the process running
// interrupts the other CPU for a TLB shoot-down). So between idle moments the pool holds at
// most the peak number of stacks in use, resident as the tasklets left them (Go keeps its
// stacks until a GC the same way); a scheduler that is never idle trims nothing.
//
// Failure to map: get() throws std::system_error (ENOMEM: RLIMIT_AS, the kernel's map count, an
// absurd size). The worker that asked delivers it to the tasklet's joiners (launch(),
// worker.cpp); the pool itself is unchanged, so the next get() may succeed.
//
// The overflow handler reports a fault as a stack overflow when the fault address is on (or
// just below) the running tasklet's guard page, or when the thread's stack pointer is outside
// the running tasklet's stack (below its lowest byte or above its top) while not on the worker's
// own stack, the previous tasklet's (half-way through a switch) or the alternate signal stack:
// a frame bigger than the guard page that jumped over it, or a recursion that ran through an
// unguarded slab.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "stackless/runtime/scheduler.hpp"

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
  /// The size must have been checked against max_stack_size (checked_stack_size()).
  stack_pool(std::size_t usable_size, stack_guard_policy policy);
  ~stack_pool();
  stack_pool(const stack_pool&) = delete;
  stack_pool& operator=(const stack_pool&) = delete;

  /// get() returns a stack: a pooled one, or a fresh mapping. Throws std::system_error when
  /// the kernel refuses the mapping (the pool is unchanged).
  stack* get();
  /// put() returns stacks, as they are (no system call: see "Trimming" above). Never throws.
  void put(stack* const* s, std::size_t n);
  /// has_excess() is a hint (no lock): the pool holds more untrimmed stacks than it keeps, or
  /// more guarded ones than it keeps mapped. release_excess() trims the oldest untrimmed stacks
  /// beyond keep_dirty_ (MADV_DONTNEED) and unmaps the guarded ones beyond pool_keep_guarded,
  /// at most max_stacks of each. Called by a worker about to sleep when every other worker
  /// sleeps too (idle.cpp), and by a pump that ran out of work (lifecycle.cpp; run_for() in
  /// batches of 64, so that a host's slice is not spent on it): the system calls and their TLB
  /// shoot-downs hit no running worker.
  bool has_excess() const noexcept { return excess_.load(std::memory_order_relaxed); }
  void release_excess(std::size_t max_stacks = SIZE_MAX) noexcept;

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
  stack* map_guarded(int& err);  // null (err: errno) when the kernel refuses
  void unmap_guarded(stack* s) noexcept;
  void unmap_pooled(stack* s) noexcept;  // a guarded stack off the lists: out of guarded_all_; mu_
  stack* carve_slab();
  void trim(stack* s) noexcept;

  std::size_t size_;  // usable bytes, page multiple, descriptor included
  stack_guard_policy policy_;
  std::size_t page_;
  mutable std::mutex mu_;
  void reserve_for_all();       // room in free_/clean_ for every stack made; mu_ held
  void note_excess() noexcept;  // updates excess_; mu_ held

  std::size_t keep_dirty_;          // untrimmed stacks release_excess() leaves (16 MiB of them)
  std::vector<stack*> free_;        // untrimmed (as their last tasklet left them); mu_
  std::vector<stack*> clean_;       // trimmed by release_excess(); mu_
  std::size_t pooled_guarded_ = 0;  // guarded stacks in free_ and clean_; mu_
  // relaxed: a hint, set under mu_ (note_excess()), read without it (has_excess()).
  std::atomic<bool> excess_{false};
  std::vector<char*> slabs_;         // guarded by mu_
  std::vector<stack*> slab_free_;    // carved, never used; guarded by mu_
  std::vector<stack*> guarded_all_;  // every live guarded mapping, for the destructor; mu_
  // Written under mu_; read without it (relaxed) by stats(): counts, nothing rides on them.
  std::atomic<std::uint64_t> guarded_made_{0}, unguarded_made_{0};
};

/// checked_stack_size() is options::stack_size if it is at most max_stack_size; otherwise it
/// throws std::invalid_argument naming the option and the limit.
std::size_t checked_stack_size(std::size_t requested);

/// reserve_guarded() takes one of the process's guarded-stack slots for a tasklet of a
/// stack_guard = always scheduler (at spawn); false when none is left. release_guarded() gives
/// it back (at the tasklet's end). Process-wide: the kernel counts mappings per process.
bool reserve_guarded() noexcept;
void release_guarded() noexcept;
/// guarded_limit() is the number of such slots (3/8 of vm.max_map_count).
long guarded_limit() noexcept;

/// set_max_map_count_for_tests() replaces the vm.max_map_count the budgets derive from (0: the
/// kernel's again), so a test reaches them with a few tasklets. Process-wide; tests only.
void set_max_map_count_for_tests(long n) noexcept;

/// sp_on_switch_side() (worker.cpp) is true when `sp` is on a stack the calling worker thread
/// legitimately runs on outside its current tasklet's: its own (scheduler side) or the stack of
/// the tasklet it is switching away from. Async-signal-safe (reads thread-locals and fields).
bool sp_on_switch_side(std::uintptr_t sp) noexcept;

/// install_overflow_handler() installs (once per process) the SIGSEGV handler that names the
/// tasklet that overflowed its stack (see the top of this file for what counts). It chains to
/// the previous handler otherwise.
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
