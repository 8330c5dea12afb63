// SPDX-License-Identifier: Apache-2.0
// stackless/runtime/internal/tcb.hpp — the runtime's private part of a tasklet's control block.
//
// A control block is one allocation: this `tcb`, then (at tcb_prefix bytes) the public
// tcb_base-derived object that the spawn templates create (stackless/runtime/detail/tcb.hpp).
// tcb_base::operator new (alloc.cpp) constructs this part in front of the public one, and its
// operator delete destroys it. The runtime and the components built on it (through the internal
// interface) see the fields; users see none of them.
//
// A tcb is reference counted: one reference for the scheduler while the tasklet is alive, one per
// tasklet<> handle, one per timer or registry walk that holds it for a moment. `handles` counts the
// user-visible handles only: when it drops to zero the tasklet is detached.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <source_location>
#include <string>

#include "stackless/runtime/detail/tcb.hpp"

namespace stackless {
class timeout_scope;
}

namespace stackless::detail {

struct local_table;
struct worker;
struct stack;
struct error_sink;

/// context is a suspended execution: the fcontext pointer plus the sanitizer bookkeeping.
struct context {
  void* fctx = nullptr;
  const void* stack_lo = nullptr;  // lowest usable address (ASan)
  std::size_t stack_size = 0;
  void* tsan_fiber = nullptr;
  void* asan_fake = nullptr;
  void (*entry)(void*) = nullptr;  // set until the first switch into a new context
  void* xfer_arg = nullptr;        // what a switch away from this context hands the other side
  void (*xfer_entry)(void*) = nullptr;
  void* fp = nullptr;         // context_switch()'s frame address when it left: dump()'s frame walk
  void* eh_caught = nullptr;  // the C++ runtime's per-thread exception state, kept per
  unsigned eh_uncaught = 0;   //   context (a tasklet may park inside a catch block)
};

class tcb {
 public:
  tcb() noexcept = default;
  tcb(const tcb&) = delete;
  tcb& operator=(const tcb&) = delete;
  ~tcb();  // tasklet.cpp; run by tcb_base::operator delete (alloc.cpp)

  /// base() is the public part that follows this one in the allocation.
  tcb_base* base() noexcept;

  // Lifecycle (the state machine: runtime/src/tstate.hpp). Written with CAS by the scheduler.
  std::atomic<std::uint32_t> state{0};
  // The park/wake door: gen << 4 | reason << 2 | phase (see park.cpp).
  std::atomic<std::uint64_t> door{0};
  // Interrupt bits: 1 = killed (sticky), 2 = an exception is pending in `pending`.
  std::atomic<std::uint32_t> irq{0};

  std::atomic<int> refs{1};
  std::atomic<int> handles{0};
  std::atomic<bool> error_reported{false};

  scheduler_impl* sched = nullptr;
  std::uint64_t id = 0;

  spinlock lk;  // guards name, pending, joiners
  std::string name;
  std::exception_ptr pending;  // the exception raise_exception()/kill() delivers
  waiter* joiners = nullptr;   // who waits for this tasklet to end

  // Outcome, written by the tasklet before it is marked dead, read after (acquire on state).
  std::exception_ptr error;    // the exception that escaped body()
  bool ended_by_kill = false;  // body() left through tasklet_exit (or never started)
  bool never_ran = false;      // killed (or refused a stack) before body() began
  bool exit_thrown = false;    // tasklet_exit was thrown in it at least once (own writes)
  error_sink* sink = nullptr;  // set when it ended with an error: where to report it

  // Execution, touched only by the worker running the tasklet.
  waiter wait;                      // this tasklet's waiter record
  const char* wait_what = nullptr;  // what it parks on, for the deadlock report
  std::uint64_t wait_target = 0;    //   and the id it waits for, if any
  context ctx;
  stack* stk = nullptr;
  tcb* next = nullptr;            // intrusive link: yield list, inbox
  int atomic_depth = 0;           // this_tasklet::atomic nesting; > 0: pinned to `home`
  int preemptible_depth = 0;      // this_tasklet::preemptible nesting (preempt.cpp)
  bool hard_pinned = false;       // hard-preempted: pinned to `home` until its next own switch
  bool trace_woken = false;       // tracing: woken since its last run (runtime/src/trace.hpp)
  int irq_masked = 0;             // > 0: parks ignore pending interrupts (irq_mask, park.hpp)
  worker* home = nullptr;         // the worker a pinned tasklet must run on
  std::int64_t run_start_ns = 0;  // when it was last switched in
  // For reports (dump, deadlock, gdb's `info tasklets`): where spawn() was called, and when the
  // tasklet last parked (CLOCK_MONOTONIC_COARSE ns: a vDSO read of a variable, ~4 ms steps).
  std::source_location spawned_at{};
  std::int64_t parked_since_ns = 0;
  // Per-tasklet state of the sync component (the channel waiter records: sync/src/chan_engine.hpp),
  // made on first use and freed with the control block.
  void* sync_ext = nullptr;
  void (*sync_ext_free)(void*) noexcept = nullptr;
  timeout_scope* scope_top = nullptr;  // innermost timeout_scope (on this tasklet's stack)
  local_table* locals = nullptr;       // tasklet_local values (local.cpp), destroyed at its end

  // Registry (all live tasklets of a scheduler), guarded by the registry shard's lock.
  tcb* reg_next = nullptr;
  tcb* reg_prev = nullptr;
  unsigned shard = 0;
};

/// tcb_prefix is the offset of the public part from the start of the allocation.
inline constexpr std::size_t tcb_prefix = (sizeof(tcb) + alignof(std::max_align_t) - 1) /
                                          alignof(std::max_align_t) * alignof(std::max_align_t);

inline tcb_base* tcb::base() noexcept {
  return reinterpret_cast<tcb_base*>(reinterpret_cast<char*>(this) + tcb_prefix);
}
/// tcb_of() is the private part of the control block whose public part is b.
inline tcb* tcb_of(tcb_base* b) noexcept {
  return reinterpret_cast<tcb*>(reinterpret_cast<char*>(b) - tcb_prefix);
}

}  // namespace stackless::detail
