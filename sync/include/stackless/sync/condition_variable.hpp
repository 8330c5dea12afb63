// SPDX-License-Identifier: Apache-2.0
// stackless/sync/condition_variable.hpp — condition_variable for tasklets and plain threads
// (stacklesslib locks.Condition), with std::condition_variable_any's interface.
#pragma once

#include <chrono>
#include <condition_variable>  // std::cv_status
#include <cstdint>
#include <mutex>
#include <stop_token>
#include <utility>

#include "stackless/sync/detail/waitq.hpp"
#include "stackless/sync/mutex.hpp"

namespace stackless {

namespace detail {
/// cv_wait() publishes the caller on the condition variable, runs unlock(arg) (the user's lock),
/// waits until `own` (shortened by a timeout_scope), and returns why it woke; the caller
/// re-locks. (sync/src/condition_variable.cpp)
wake_reason cv_wait(spinlock& lk, wait_list& q, std::int64_t own, const std::stop_token* st,
                    void (*unlock)(void*), void* arg);
}  // namespace detail

/// condition_variable: wait() releases the lock, parks the calling tasklet (blocks a plain
/// thread) until notified, and takes the lock again before it returns — also when it throws
/// (tasklet_exit, timeout_error, an exception raised into the tasklet). `Lock` is any
/// BasicLockable; normally std::unique_lock<stackless::mutex>. Spurious wakeups are possible only
/// when an interrupt could not be delivered (the tasklet is unwinding); use the predicate forms.
/// notify_one() wakes the longest waiter, notify_all() every waiter (FIFO).
class condition_variable {
 public:
  condition_variable() = default;
  condition_variable(const condition_variable&) = delete;
  condition_variable& operator=(const condition_variable&) = delete;

  void notify_one() noexcept;
  void notify_all() noexcept;

  template <class Lock>
  void wait(Lock& lock) {
    wait_impl(lock, detail::no_deadline, nullptr);
  }
  template <class Lock, class Pred>
  void wait(Lock& lock, Pred pred) {
    while (!pred()) wait(lock);
  }
  template <class Lock, class C, class D>
  std::cv_status wait_until(Lock& lock, std::chrono::time_point<C, D> tp) {
    return wait_impl(lock, detail::deadline_at(tp), nullptr);
  }
  template <class Lock, class C, class D, class Pred>
  bool wait_until(Lock& lock, std::chrono::time_point<C, D> tp, Pred pred) {
    const std::int64_t d = detail::deadline_at(tp);
    while (!pred())
      if (wait_impl(lock, d, nullptr) == std::cv_status::timeout) return pred();
    return true;
  }
  template <class Lock, class Rep, class P>
  std::cv_status wait_for(Lock& lock, std::chrono::duration<Rep, P> d) {
    return wait_impl(lock, detail::deadline_after(d), nullptr);
  }
  template <class Lock, class Rep, class P, class Pred>
  bool wait_for(Lock& lock, std::chrono::duration<Rep, P> d, Pred pred) {
    const std::int64_t dl = detail::deadline_after(d);
    while (!pred())
      if (wait_impl(lock, dl, nullptr) == std::cv_status::timeout) return pred();
    return true;
  }

  // std::condition_variable_any's interruptible waits: a stop request on `st` ends the wait;
  // they return pred() (false when stopped before the condition held), as the standard's do.
  template <class Lock, class Pred>
  bool wait(Lock& lock, std::stop_token st, Pred pred) {
    while (!st.stop_requested()) {
      if (pred()) return true;
      wait_impl(lock, detail::no_deadline, &st);
    }
    return pred();
  }
  template <class Lock, class C, class D, class Pred>
  bool wait_until(Lock& lock, std::stop_token st, std::chrono::time_point<C, D> tp, Pred pred) {
    return wait_stoppable(lock, st, detail::deadline_at(tp), pred);
  }
  template <class Lock, class Rep, class P, class Pred>
  bool wait_for(Lock& lock, std::stop_token st, std::chrono::duration<Rep, P> d, Pred pred) {
    return wait_stoppable(lock, st, detail::deadline_after(d), pred);  // saturates a huge d
  }

 private:
  template <class Lock, class Pred>
  bool wait_stoppable(Lock& lock, const std::stop_token& st, std::int64_t deadline, Pred& pred) {
    while (!st.stop_requested()) {
      if (pred()) return true;
      if (wait_impl(lock, deadline, &st) == std::cv_status::timeout) return pred();
    }
    return pred();
  }
  template <class Lock>
  struct relock {  // takes the lock again on every way out of wait_impl
    Lock& l;
    ~relock() noexcept(false) {
      detail::relock_uninterruptibly([](void* p) { static_cast<Lock*>(p)->lock(); }, &l);
    }
  };
  template <class Lock>
  std::cv_status wait_impl(Lock& lock, std::int64_t own, const std::stop_token* st) {
    detail::wake_reason r;
    {
      relock<Lock> again{lock};
      r = detail::cv_wait(
          lk_, q_, own, st, [](void* p) { static_cast<Lock*>(p)->unlock(); }, &lock);
    }
    // The lock is held again. A stop request simply returns (the std forms re-check it).
    if (r == detail::wake_reason::cancelled) return std::cv_status::no_timeout;
    return detail::settle(r, own) == detail::settled::timed_out ? std::cv_status::timeout
                                                                : std::cv_status::no_timeout;
  }

  detail::spinlock lk_;
  detail::wait_list q_;
};

}  // namespace stackless
