// SPDX-License-Identifier: Apache-2.0
// stackless/runtime/this_tasklet.hpp — calls about the running tasklet.
#pragma once

#include <chrono>
#include <cstdint>
#include <stop_token>

#include "stackless/runtime/detail/deadline.hpp"
#include "stackless/runtime/detail/preempt.hpp"
#include "stackless/runtime/tasklet.hpp"

namespace stackless::this_tasklet {

/// yield() moves the calling tasklet to the back of its worker's run queue and runs the next one
/// (Stackless schedule()). Throws usage_error outside a tasklet; throws the pending tasklet_exit
/// or exception of a killed/raised tasklet.
void yield();
/// id() is the calling tasklet's id. Throws usage_error outside a tasklet.
std::uint64_t id();
/// current() is a handle to the calling tasklet (Stackless getcurrent()).
tasklet<void> current();
/// workers() is the number of workers of the calling tasklet's scheduler (scheduler::workers()):
/// how wide parallel algorithms split their work. Throws usage_error outside a tasklet.
unsigned workers();
/// now() is the calling tasklet's time: its scheduler's clock (options::clock: the steady clock,
/// or the host's), as a steady_clock time point. Outside a tasklet, steady_clock::now().
inline std::chrono::steady_clock::time_point now() noexcept {
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(detail::clock_ns()));
}
/// checkpoint() is a safe point for long loops. When the preemption monitor asked this worker to
/// switch (options::quantum > 0, the tasklet has run a whole quantum and other work waits), it
/// yields to the back of the queue — unless the tasklet is in an atomic scope; inside run_for()
/// an overrunning tasklet goes back to the host. It throws a pending tasklet_exit or exception
/// (kill(), raise_exception()), and honours pause(). Otherwise it costs two relaxed loads and a
/// predictable branch (about 0.5 ns: bench/micro.cpp, BM_checkpoint). Outside a tasklet it does
/// nothing.
inline void checkpoint() {
  detail::thread_block* b = detail::this_thread_block();
  if (__builtin_expect((b->preempt.load(std::memory_order_relaxed) |
                        b->irq->load(std::memory_order_relaxed)) != 0,
                       0))
    detail::checkpoint_slow();
}

namespace detail_ {
void sleep_ns(std::int64_t deadline_steady_ns, const std::stop_token* st = nullptr);
}  // namespace detail_
/// sleep_until() parks the calling tasklet until the steady-clock time `tp` (blocks a plain
/// thread). The timer is the calling worker's (a 4-ary heap, timer_heap.hpp); a sleep wakes on
/// time even when nothing else happens, as the worker's futex wait ends at the earliest deadline.
/// kill() wakes it early with tasklet_exit; an enclosing timeout_scope that ends first throws
/// timeout_error.
template <class D>
void sleep_until(std::chrono::time_point<std::chrono::steady_clock, D> tp) {
  detail_::sleep_ns(detail::deadline_at(tp));
}
/// sleep_until(tp, st): the same; a stop request on `st` ends it with operation_cancelled.
template <class D>
void sleep_until(std::chrono::time_point<std::chrono::steady_clock, D> tp, std::stop_token st) {
  detail_::sleep_ns(detail::deadline_at(tp), &st);
}
/// sleep_for() parks the calling tasklet for `d` (blocks a plain thread). See sleep_until().
template <class Rep, class P>
void sleep_for(std::chrono::duration<Rep, P> d) {
  detail_::sleep_ns(detail::deadline_after(d));
}
/// sleep_for(d, st): the same; a stop request on `st` ends it with operation_cancelled.
template <class Rep, class P>
void sleep_for(std::chrono::duration<Rep, P> d, std::stop_token st) {
  detail_::sleep_ns(detail::deadline_after(d), &st);
}

/// atomic is an RAII scope in which the calling tasklet is neither preempted nor migrated to
/// another worker (Stackless set_atomic). Scopes nest. Inside one the tasklet is pinned: it may
/// park or yield, and it always resumes on the same worker thread (woken from elsewhere it goes
/// to that worker's inbox; thieves never take it). Soft preemption skips it (checkpoint() and the
/// runtime's safe points do not yield inside it; the request waits for the scope to end) and the
/// hard-preemption handler refuses it. It counts as preempt_disable for the tasklet: the count
/// travels with the tasklet, not with the worker, because the scope may span a park.
class atomic {
 public:
  atomic();
  ~atomic();
  atomic(const atomic&) = delete;
  atomic& operator=(const atomic&) = delete;
};

/// in_atomic() tells whether the calling tasklet is inside an atomic scope.
bool in_atomic();

/// preemptible is an RAII scope that opts the calling tasklet in to *hard* preemption (x86-64
/// Linux): when the monitor (options::quantum > 0) has asked it to switch and it has not reached
/// a safe point for half a quantum more, the monitor signals its worker thread and the signal
/// handler redirects it into a trampoline that saves every register (general, flags, and the whole
/// x87/SSE/AVX state with xsave) and yields; it later resumes exactly where it was, on the same
/// worker thread (a hard-preempted tasklet is pinned until its next cooperative switch).
///
/// The code inside must be pure computation: no locks (a std::mutex held by a preempted tasklet
/// would block its worker), no allocation (malloc's per-thread caches), no I/O and no stackless
/// calls. The handler refuses (and leaves the request for the next safe point) when the
/// interrupted code is in the runtime, libc or libstdc++, inside an atomic scope or a
/// preempt_disable region, or on a stack with less than 16 KiB of headroom; stats() counts each
/// refusal. Scopes nest; an atomic scope inside one wins. Throws usage_error outside a tasklet.
/// On other platforms, and in ThreadSanitizer builds (TSan defers signals), the scope is
/// accepted and only soft preemption happens.
///
/// A kill() or raise_exception() is delivered at a safe point, as always: a loop that should be
/// killable calls checkpoint() now and then (it may, inside the scope). A system call made just
/// as the scope ends may see EINTR from a signal sent a moment before (SA_RESTART covers most).
class preemptible {
 public:
  preemptible();
  ~preemptible();
  preemptible(const preemptible&) = delete;
  preemptible& operator=(const preemptible&) = delete;
};

/// in_preemptible() tells whether the calling tasklet is inside a preemptible scope.
bool in_preemptible();

}  // namespace stackless::this_tasklet
