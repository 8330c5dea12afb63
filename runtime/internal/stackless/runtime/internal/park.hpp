// SPDX-License-Identifier: Apache-2.0
// runtime/src/park.hpp — the park/wake door: the one way a tasklet (or a plain thread) waits.
//
// Usage: a blocking primitive waits through wait_here (below), which hides the tasklet-versus-
// plain-thread split; the lower-level steps (prepare_park, park, cancel_park, thread_waiter) are
// for the few waits that need them directly (the channel's select, join's deadlock watch).
//
// A waker pops a record from its list and calls wake(*record) under the list's lock.
//
// Why the channel has a second arbitration word (sync/src/chan_*.cpp, chan_waiter::sel): a
// select parks once for several cases on several lock-free channels, and a plain thread's
// channel call has no door; neither has a list lock under which "who won" could be decided, so
// the partners race on that word (one CAS) and the winner then wakes the door (or the thread's
// futex) — the door itself still admits exactly one wake.
// Rule: a waker calls wake() while holding the lock of the list the waiter was on.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <stop_token>
#include <type_traits>

#include "stackless/runtime/detail/deadline.hpp"
#include "stackless/runtime/detail/tcb.hpp"
#include "stackless/runtime/internal/assert.hpp"
#include "stackless/runtime/internal/scheduling.hpp"
#include "stackless/runtime/internal/spin.hpp"
#include "stackless/runtime/internal/tcb.hpp"

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
/// prepare_park_of() is prepare_park() for t, which must be the calling tasklet (wait_here has
/// looked it up already).
waiter* prepare_park_of(tcb* t, const char* what, std::uint64_t target) noexcept;

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
    if (tw)
      tw->cancel();
    else
      wake_park(t, gen, wake_reason::cancelled);
  }
};

/// current_park_gen() is the generation of the calling tasklet's current park (after
/// prepare_park()).
std::uint64_t current_park_gen() noexcept;

/// wait_here is the one wait of a primitive, for a tasklet and a plain thread alike: it hides
/// the tasklet-versus-thread split, the deadline and the stop_token callback.
///
///   lk.lock();
///   if (ready()) { lk.unlock(); return; }
///   wait_here wh("event");                  // tasklet: prepare_park(); thread: a futex word
///   list.push_back(wh.record());            // publish the record (under lk)
///   wake_reason r = wh.wait([&] { lk.unlock(); }, deadline, st);
///   if (r != wake_reason::notified) {       // timeout, cancelled, interrupted
///     lk.lock();
///     r = wh.unlinked(r, list.erase_if_linked(wh.record()));
///     lk.unlock();
///   }
///
/// A tasklet's record lives in its control block, a plain thread's in this object (on the
/// thread's stack: the object must outlive every list the record is on). The waker pops the
/// record and calls wake(*record) under the list's lock, as for any waiter.
class wait_here {
 public:
  explicit wait_here(const char* what, std::uint64_t target = 0);
  wait_here(const wait_here&) = delete;
  wait_here& operator=(const wait_here&) = delete;

  /// record() is the waiter record to publish.
  waiter* record() noexcept { return rec_; }
  /// tasklet() is the waiting tasklet, or null for a plain thread.
  tcb* tasklet() const noexcept { return t_; }

  /// wait() waits until the record is woken, `deadline` (steady ns, already shortened by any
  /// timeout_scope) passes, or *st (if given) is asked to stop. `unlock` runs once the caller is
  /// committed to waiting: for a tasklet after it left its stack (park()), for a plain thread
  /// before it blocks. A tasklet returns `interrupted` for kill / raise_exception (the caller
  /// calls throw_if_interrupted()); a plain thread never does.
  wake_reason wait(function_ref unlock, std::int64_t deadline, const std::stop_token* st = nullptr);

  /// cancel() ends a wait that turned out not to be needed (the record was never published, or
  /// was taken back before wait()).
  void cancel() noexcept;

  /// unlinked() is the outcome of a wait that did not end `notified`, once the caller has taken
  /// the list's lock and removed the record if it was still linked (`was_linked`). A plain
  /// thread whose record was no longer linked was taken by a waker that — waking under that lock
  /// — has signalled it: the wait counts as notified, and what the waker handed over is the
  /// caller's. A tasklet's door already decided: its outcome stands.
  wake_reason unlinked(wake_reason r, bool was_linked) const noexcept {
    return (!t_ && !was_linked) ? wake_reason::notified : r;
  }

  ~wait_here() = default;  // thread_waiter is trivially destructible

 private:
  void init_thread() noexcept;
  wake_reason wait_slow(function_ref unlock, std::int64_t deadline, const std::stop_token* st);

  tcb* t_;
  waiter* rec_;
  union {
    thread_waiter tw_;  // constructed for a plain thread only (a tasklet's record is in its tcb)
  };
};

// Inline: a tasklet's wait without a stop_token is prepare_park() and park(), nothing more.
inline wait_here::wait_here(const char* what, std::uint64_t target) : t_(current_tcb()) {
  if (t_)
    rec_ = prepare_park_of(t_, what, target);
  else
    init_thread();
}

inline wake_reason wait_here::wait(function_ref unlock, std::int64_t deadline,
                                   const std::stop_token* st) {
  if (t_ && !(st && st->stop_possible())) return park(unlock, deadline);
  return wait_slow(unlock, deadline, st);
}

}  // namespace stackless::detail
