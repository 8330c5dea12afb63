// SPDX-License-Identifier: Apache-2.0
// stackless/sync/mutex.hpp — mutex, timed_mutex, recursive_mutex for tasklets and plain threads
// (stacklesslib locks.Lock / RLock). std Lockable / TimedLockable: std::lock_guard,
// std::unique_lock, std::scoped_lock and std::condition_variable_any work with them.
//
// The owner is the *tasklet* (or the plain thread), not the OS thread: a tasklet may lock, park
// anywhere, resume on another worker and unlock there. unlock() by anyone but the owner throws
// usage_error. While a tasklet waits for a lock its worker runs other tasklets; a tasklet that
// holds a lock may park (sleep, receive, wait) — the lock stays held.
//
// Fair by default (mutex_policy::fair): under contention the lock is handed to the longest waiter
// (FIFO); a newcomer never barges past a queued waiter, so no waiter starves. The price is a
// lock convoy when many tasklets hammer one lock: every hand-off to a parked waiter costs a
// wake-up and a switch. mutex_policy::throughput is Go's sync.Mutex instead: unlock() wakes the
// longest waiter but does not hand the lock over, so a running tasklet may take it again
// (barging) — several acquisitions in a row without a switch — until some waiter has waited
// 1 ms; then the lock switches to FIFO hand-off until the queue drains (no waiter waits more
// than about 1 ms longer than its turn). Both spin briefly (while nobody is queued, on
// more than one worker) before they queue. Uncontended, lock() and unlock() are one atomic
// operation each.
//
// !!! Do not hold a std::mutex (or any OS-level lock) across a park: a tasklet that parks while
// !!! holding one keeps the *worker thread* holding it; a tasklet on the same worker that then
// !!! asks for it deadlocks the whole worker, and one on another worker blocks that OS thread.
// !!! Use stackless::mutex for anything held across a blocking call.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stop_token>

#include "stackless/runtime/errors.hpp"
#include "stackless/runtime/timeout.hpp"
#include "stackless/sync/detail/waitq.hpp"

namespace stackless {

/// mutex_policy chooses between strict FIFO hand-off and Go-style barging (see above).
enum class mutex_policy : std::uint8_t { fair, throughput };

/// mutex is a fair, tasklet-aware mutual exclusion lock. lock() parks the calling tasklet (blocks
/// a plain thread) until the lock is free and handed to it.
class mutex {
 public:
  mutex() = default;
  explicit mutex(mutex_policy p) noexcept : fair_(p == mutex_policy::fair) {}
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;
  ~mutex() = default;

  /// lock() takes the lock, waiting as long as needed. Throws usage_error if the caller already
  /// holds it (that would deadlock; use recursive_mutex), tasklet_exit when killed while waiting,
  /// timeout_error when an enclosing timeout_scope ends first.
  void lock() { lock_impl(nullptr); }
  /// lock(st): the same; a stop request on `st` ends the wait with operation_cancelled.
  void lock(std::stop_token st) { lock_impl(&st); }
  /// try_lock() takes the lock if it is free and nobody is queued for it; never waits.
  bool try_lock() noexcept {
    std::uint32_t z = 0;
    if (!state_.compare_exchange_strong(z, 1, std::memory_order_acquire, std::memory_order_relaxed))
      return false;
    owner_.store(detail::self_token(), std::memory_order_relaxed);
    return true;
  }
  /// try_lock_for() waits at most `d`; false if the lock was not handed over by then.
  template <class Rep, class P>
  bool try_lock_for(std::chrono::duration<Rep, P> d) {
    return try_lock() || timed_lock(detail::deadline_after(d));
  }
  /// try_lock_until() waits until `tp` at most.
  template <class C, class D>
  bool try_lock_until(std::chrono::time_point<C, D> tp) {
    return try_lock() || timed_lock(detail::deadline_at(tp));
  }
  /// unlock() releases the lock, handing it to the longest waiter if there is one. Throws
  /// usage_error when the caller does not hold it.
  void unlock() {
    if (owner_.load(std::memory_order_relaxed) != detail::self_token()) unlock_not_owner();
    owner_.store(nullptr, std::memory_order_relaxed);
    std::uint32_t one = 1;
    // Release: pairs with the acquire of the next lock().
    if (!state_.compare_exchange_strong(one, 0, std::memory_order_release,
                                        std::memory_order_relaxed))
      unlock_slow();
  }

  /// owned_by_caller() tells whether the calling tasklet (or thread) holds the lock.
  bool owned_by_caller() const noexcept {
    return owner_.load(std::memory_order_relaxed) == detail::self_token();
  }

 private:
  void lock_impl(const std::stop_token* st) {
    std::uint32_t z = 0;
    // Acquire: pairs with the release in unlock() (and with the hand-off's lock + wake).
    if (!state_.compare_exchange_strong(z, 1, std::memory_order_acquire, std::memory_order_relaxed))
      lock_slow(detail::no_deadline, st);
    owner_.store(detail::self_token(), std::memory_order_relaxed);
  }
  bool timed_lock(std::int64_t deadline) {
    if (!lock_slow(deadline, nullptr)) return false;
    owner_.store(detail::self_token(), std::memory_order_relaxed);
    return true;
  }
  bool lock_slow(std::int64_t deadline, const std::stop_token* st);
  void unlock_slow() noexcept;
  [[noreturn]] void unlock_not_owner() const;

  // Bits (mutex.cpp): 1 LOCKED, 2 WAITERS (queued waiters possible: unlock takes the slow path),
  // 4 HANDOFF (throughput policy: FIFO hand-off mode, no barging).
  std::atomic<std::uint32_t> state_{0};
  // written by the holder; read by unlock()'s check and lock()'s self-deadlock check: relaxed,
  // since a caller only compares it with its own token (only the caller itself can have stored
  // that).
  std::atomic<const void*> owner_{nullptr};
  detail::spinlock lk_;  // guards q_, and setting WAITERS / HANDOFF
  detail::wait_list q_;
  bool fair_ = true;
};

/// timed_mutex is a mutex (every stackless::mutex already has try_lock_for / try_lock_until);
/// the name is there for code written against std::timed_mutex.
class timed_mutex : public mutex {
 public:
  using mutex::mutex;
};

/// recursive_mutex may be locked again by its owner; it is released when unlock() has been
/// called as many times as lock() (stacklesslib RLock). Owner = tasklet, as for mutex.
class recursive_mutex {
 public:
  void lock() {
    take([this] {
      m_.lock();
      return true;
    });
  }
  bool try_lock() noexcept {
    return take([this] { return m_.try_lock(); });
  }
  template <class Rep, class P>
  bool try_lock_for(std::chrono::duration<Rep, P> d) {
    return take([&] { return m_.try_lock_for(d); });  // saturates a huge d (detail::deadline_after)
  }
  template <class C, class D>
  bool try_lock_until(std::chrono::time_point<C, D> tp) {
    return take([&] { return m_.try_lock_until(tp); });
  }
  /// unlock() undoes one lock(); throws usage_error when the caller does not hold it.
  void unlock() {
    if (!owned()) m_.unlock();  // throws usage_error: not the owner
    if (--depth_ == 0) m_.unlock();
  }

 private:
  bool owned() const noexcept { return m_.owned_by_caller(); }
  // take(acquire): one level deeper for the owner; otherwise acquire() the mutex (true if it did).
  template <class F>
  bool take(F acquire) {
    if (owned()) {
      ++depth_;
      return true;
    }
    if (!acquire()) return false;
    depth_ = 1;
    return true;
  }
  mutex m_;
  unsigned depth_ = 0;  // guarded by m_ (only the owner touches it)
};

}  // namespace stackless
