// stackless/runtime/this_tasklet.hpp — calls about the running tasklet.
#pragma once

#include <chrono>
#include <cstdint>
#include <stop_token>

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
/// checkpoint() is a safe point for long loops: it throws a pending tasklet_exit/exception, and
/// (once preemption exists) yields when the preemption tick asked. One relaxed load otherwise.
void checkpoint();

namespace detail_ {
void sleep_ns(std::int64_t deadline_steady_ns, const std::stop_token* st = nullptr);
inline std::int64_t ns_of(std::chrono::steady_clock::time_point tp) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(tp.time_since_epoch()).count();
}
}  // namespace detail_
/// sleep_until() parks the calling tasklet until the steady-clock time `tp` (blocks a plain
/// thread). The timer is the calling worker's (a 4-ary heap, timer_heap.hpp); a sleep wakes on
/// time even when nothing else happens, as the worker's futex wait ends at the earliest deadline.
/// kill() wakes it early with tasklet_exit; an enclosing timeout_scope that ends first throws
/// timeout_error.
template <class D>
void sleep_until(std::chrono::time_point<std::chrono::steady_clock, D> tp) {
  detail_::sleep_ns(detail_::ns_of(std::chrono::time_point_cast<std::chrono::steady_clock::duration>(tp)));
}
/// sleep_until(tp, st): the same; a stop request on `st` ends it with operation_cancelled.
template <class D>
void sleep_until(std::chrono::time_point<std::chrono::steady_clock, D> tp, std::stop_token st) {
  detail_::sleep_ns(detail_::ns_of(std::chrono::time_point_cast<std::chrono::steady_clock::duration>(tp)), &st);
}
/// sleep_for() parks the calling tasklet for `d` (blocks a plain thread). See sleep_until().
template <class Rep, class P>
void sleep_for(std::chrono::duration<Rep, P> d) {
  sleep_until(std::chrono::steady_clock::now() + std::chrono::ceil<std::chrono::nanoseconds>(d));
}
/// sleep_for(d, st): the same; a stop request on `st` ends it with operation_cancelled.
template <class Rep, class P>
void sleep_for(std::chrono::duration<Rep, P> d, std::stop_token st) {
  sleep_until(std::chrono::steady_clock::now() + std::chrono::ceil<std::chrono::nanoseconds>(d), std::move(st));
}

/// atomic is an RAII scope in which the calling tasklet is neither preempted nor migrated to
/// another worker (Stackless set_atomic). Scopes nest. Inside one the tasklet is pinned: it may
/// park or yield, and it always resumes on the same worker thread (woken from elsewhere it goes
/// to that worker's inbox; thieves never take it). Preemption (not built yet) will honour it.
class atomic {
 public:
  atomic();
  ~atomic();
  atomic(const atomic&) = delete;
  atomic& operator=(const atomic&) = delete;
};

/// in_atomic() tells whether the calling tasklet is inside an atomic scope.
bool in_atomic();

}  // namespace stackless::this_tasklet
