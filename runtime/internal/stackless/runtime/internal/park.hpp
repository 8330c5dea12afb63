// runtime/src/park.hpp — the park/wake door: the one way a tasklet (or a plain thread) waits.
//
// Usage, from the code of any blocking primitive:
//
//   lock_.lock();
//   if (ready()) { lock_.unlock(); return; }
//   waiter* w = prepare_park("mutex");      // new park generation; phase PARKING
//   list_.push_back(w);                     // publish the waiter record (lives in the tcb)
//   wake_reason r = park([&] { lock_.unlock(); }, deadline);  // unlock runs after the switch
//   if (r != wake_reason::notified) { lock_.lock(); list_.erase_if_linked(w); lock_.unlock(); }
//   throw_if_interrupted();                 // tasklet_exit / raised exception / deadlock_error
//
// and the waker:   lock_.lock(); w = list_.pop_front(); wake(*w); lock_.unlock();
//
// A plain thread does the same with a waiter on its own stack: thread_waiter tw; …
// tw.wait(deadline) blocks on a futex. See park.cpp for the protocol and its invariants.
// Rule: a waker calls wake() while holding the lock of the list the waiter was on.
#pragma once

#include <atomic>
#include <type_traits>
#include <cstdint>

#include "stackless/runtime/detail/deadline.hpp"
#include "stackless/runtime/detail/tcb.hpp"
#include "stackless/runtime/internal/assert.hpp"
#include "stackless/runtime/internal/scheduling.hpp"
#include "stackless/runtime/internal/spin.hpp"

namespace stackless::detail {

/// function_ref is a non-owning reference to a callable (the unlock step of a park).
class function_ref {
 public:
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, function_ref>>>
  function_ref(F&& f) noexcept  // NOLINT: implicit, for lambdas at the call site (the lambda
                                // outlives the park() call it is passed to)
      : obj_(const_cast<void*>(static_cast<const void*>(&f))),
        call_([](void* o) { (*static_cast<std::remove_reference_t<F>*>(o))(); }) {}
  void operator()() const { call_(obj_); }

 private:
  void* obj_;
  void (*call_)(void*);
};


/// prepare_park() starts a park of the calling tasklet: a new generation, phase PARKING, and
/// returns its waiter record for the caller to publish. `what` (a string literal) and `target`
/// (an id, or 0) appear in deadlock reports.
waiter* prepare_park(const char* what, std::uint64_t target = 0);

/// cancel_park() ends a prepare_park() that turned out not to be needed (the caller never
/// parks): the door goes back to RUNNING unless a waker (kill) already ended that park, whose
/// interrupt then stays pending in irq.
void cancel_park() noexcept;

/// park() switches away from the calling tasklet; `unlock` runs on the worker after the switch
/// (so no waker can resume a tasklet still on its stack). Returns why it woke: notified by
/// wake(), timeout at `deadline_ns` (steady clock), or interrupted (kill, raise_exception,
/// deadlock). When an interrupt is already pending it does not switch: it runs `unlock` and
/// returns interrupted at once.
wake_reason park(function_ref unlock, std::int64_t deadline_ns = no_deadline);

/// wake() tries to end the park that `w` was registered for, with `r`. Exactly one wake() wins
/// a given park; true if this one did. The winner makes the tasklet runnable (on the calling
/// worker's runnext when the caller is a tasklet of the same scheduler; with `to_back`, at the back
/// of that worker's run queue, behind everything runnable there — Stackless's "the partner goes to
/// the end of the runnables"). A plain-thread waiter is woken only if its word is still 0.
bool wake(waiter& w, wake_reason r = wake_reason::notified, bool to_back = false);

/// throw_if_interrupted() throws the calling tasklet's pending exception or tasklet_exit, if any.
/// Outside a tasklet it does nothing.
void throw_if_interrupted();

/// irq_mask is a scope in which the calling tasklet's parks do not end early for a pending
/// interrupt and throw_if_interrupted() does not throw: for a wait that must finish before the
/// interrupt may be delivered (condition_variable re-locking its mutex — the caller must own it
/// again when the exception leaves wait()). A kill that arrives during the scope still wakes a
/// park once (the caller waits again); the interrupt is delivered at the next suspension point
/// after the scope.
class irq_mask {
 public:
  irq_mask() noexcept : t_(current_tcb()) {
    if (t_) ++t_->irq_masked;
  }
  ~irq_mask() {
    if (t_) --t_->irq_masked;
  }
  irq_mask(const irq_mask&) = delete;
  irq_mask& operator=(const irq_mask&) = delete;

 private:
  tcb* t_;
};

/// wake_park() ends park `gen` of t with r, if that park is still on (a timer, a stop request:
/// wakers that hold (t, gen) rather than a listed record). The caller keeps t alive.
bool wake_park(tcb* t, std::uint64_t gen, wake_reason r, bool to_back = false);

/// thread_waiter is a plain thread's waiter: a futex word on the thread's stack.
struct thread_waiter {
  std::atomic<std::uint32_t> word{0};
  waiter w;
  thread_waiter() { w.word = &word; }
  /// wait() blocks until wake(), cancel() or the deadline. On any outcome but `notified` the
  /// caller takes the list's lock: if `w` is still linked it unlinks it (the timeout or the
  /// cancel stands); if not, a waker took it and — since wakers wake under that lock — has
  /// already signalled: the wait ended by that wake.
  wake_reason wait(std::int64_t deadline_ns = no_deadline);
  /// cancel() ends the wait with `cancelled` unless a waker came first (a stop_callback; the
  /// callback's destructor outlives the call, so the waiter is still there).
  void cancel() noexcept;
};

// ---- deadlines and cancellation (timeout.hpp) ---------------------------------------------------
//
// A blocking call with its own deadline `own` (no_deadline if none) waits until
// scoped_deadline(own); when the wait ends by timeout it cleans up as for its own timeout and
// then calls scope_check(own), which throws the enclosing timeout_scope's timeout_error if that
// scope's deadline was the one that passed.

/// scoped_deadline() is `own` shortened by the innermost timeout_scope of the caller.
std::int64_t scoped_deadline(std::int64_t own) noexcept;
/// scope_check() throws timeout_error when a timeout_scope's deadline, earlier than `own`, passed.
void scope_check(std::int64_t own);

/// stop_waker is a stop_callback's function for a wait: it ends the park it was made for (a
/// tasklet), or cancels a plain thread's thread_waiter.
struct stop_waker {
  tcb* t = nullptr;
  std::uint64_t gen = 0;
  thread_waiter* tw = nullptr;
  void operator()() const noexcept {
    if (tw) tw->cancel();
    else wake_park(t, gen, wake_reason::cancelled);
  }
};

/// current_park_gen() is the generation of the calling tasklet's current park (after
/// prepare_park()).
std::uint64_t current_park_gen() noexcept;

}  // namespace stackless::detail
