// SPDX-License-Identifier: Apache-2.0
// stackless/runtime/detail/preempt.hpp — the per-thread word that checkpoint() reads.
// Everything here is internal: the names may change at any time. The mechanism is described at
// the top of runtime/src/preempt.cpp.
//
// Every thread has one thread_block (a worker's thread, a thread inside run()/run_for(), and
// plain threads, whose block stays zero). checkpoint() is inline and costs two loads and a
// branch: the block's `preempt` word, which the monitor thread sets when this worker has run one
// tasklet for a whole quantum, and the running tasklet's `irq` word (kill, raise_exception,
// pause), reached through `irq`.
//
// Why the address is computed by an asm statement: a tasklet may resume on another thread after
// any switch, and compilers treat the thread pointer as constant within a function — a
// `thread_local` address computed before a switch would still point at the old thread's block
// after it (LLVM #47179, HPX #7527). A volatile asm is re-executed every time, so every
// checkpoint() reads the block of the thread it runs on.
#pragma once

#include <atomic>
#include <cstdint>

namespace stackless::detail {

/// zero_irq is the interrupt word checkpoint() reads when no tasklet runs on the thread.
extern const std::atomic<std::uint32_t> zero_irq;

struct alignas(64) thread_block {
  /// Set (1, relaxed store) by the monitor thread when the running tasklet should yield; cleared
  /// by the owner when it switches to another tasklet. Read with relaxed loads: the request is a
  /// hint, and a late or spurious one costs one extra check or one early yield.
  std::atomic<std::uint32_t> preempt{0};
  /// preempt_disable count (owner only; the owner's signal handler reads it). Runtime code keeps
  /// it >= 1 while it switches stacks, touches queues or holds a spinlock.
  std::uint32_t disable = 0;
  /// The running tasklet's irq word, or a word that is always zero. Owner only.
  const std::atomic<std::uint32_t>* irq = &zero_irq;
  /// 1 while the running tasklet is inside a this_tasklet::preemptible scope (and not in an
  /// atomic one): the monitor reads it (relaxed) to decide whether a signal could help.
  std::atomic<std::uint32_t> hard_ok{0};
  /// The pending bit of the hard-preemption signal: the monitor exchanges it 0 → 1 before it
  /// sends one, the handler stores 0 — repeats merge (acq_rel exchange / release store).
  std::atomic<std::uint32_t> signal_pending{0};
};

// The one thread_block of each thread. initial-exec: its offset from the thread pointer is a
// link-time constant, so the handler and checkpoint() reach it without a call.
extern thread_local thread_block tl_block __asm__("stackless_tl_block")
    __attribute__((tls_model("initial-exec")));

/// this_thread_block() is the block of the thread that executes the call — recomputed each time.
#if defined(__x86_64__)
inline thread_block* this_thread_block() noexcept {
  thread_block* b;
  __asm__ volatile(
      "movq %%fs:0, %0\n\t"
      "addq stackless_tl_block@gottpoff(%%rip), %0"
      : "=r"(b));
  return b;
}
#else
thread_block* this_thread_block() noexcept;  // not inlined: the same guarantee, one call
#endif

/// checkpoint_slow() handles a set `preempt` or `irq` word (runtime/src/preempt.cpp).
void checkpoint_slow();

/// preempt_point() is the safe point of the runtime's own blocking calls (channel send/receive/
/// select, join, yield): it honours a preemption request only — interrupts keep being delivered
/// where each call always delivered them.
void preempt_point_slow();
inline void preempt_point() {
  if (__builtin_expect(this_thread_block()->preempt.load(std::memory_order_relaxed) != 0, 0))
    preempt_point_slow();
}

}  // namespace stackless::detail
