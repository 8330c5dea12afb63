// sync/src/mutex.cpp — the slow paths of stackless::mutex (sync/mutex.hpp).
//
// state_: 0 free, 1 held with nobody queued, 2 held with waiters possibly queued.
// Invariants:
//  - q_ non-empty ⇒ state_ == 2 (set under lk_ before a waiter is queued). So the uncontended
//    unlock (CAS 1 → 0) can only succeed when nobody is queued, and a newcomer's CAS 0 → 1 can
//    only succeed when nobody is queued: no barging past a waiter.
//  - Hand-off: unlock with waiters keeps state_ held and wakes the first waiter whose wake
//    succeeds; that waiter owns the lock when it resumes. A waiter that timed out, was cancelled
//    or killed is either unlinked by itself or skipped by the unlocker (its door said no): the
//    lock is never handed to someone who has left.
//  - Memory order: the holder's writes reach the next holder through the release CAS in
//    unlock() / acquire CAS in lock(), or, on hand-off, through lk_ and the park door's acq_rel
//    CAS (a plain thread: the release store / acquire load of its futex word).
#include "stackless/sync/mutex.hpp"

#include "park.hpp"

namespace stackless {

bool mutex::lock_slow(std::int64_t own, const std::stop_token* st) {
  if (owner_.load(std::memory_order_relaxed) == detail::self_token() &&
      state_.load(std::memory_order_relaxed) != 0)
    throw usage_error("stackless::mutex: lock() by the tasklet that holds it would deadlock "
                      "(use recursive_mutex)");
  const std::int64_t deadline = detail::wait_deadline(own);
  for (;;) {
    lk_.lock();
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    for (;;) {
      if (s == 0) {
        if (state_.compare_exchange_weak(s, 1, std::memory_order_acquire, std::memory_order_relaxed)) {
          lk_.unlock();
          return true;
        }
      } else if (s == 1) {
        // Announce a waiter before queueing: from now on unlock() takes the slow path (and lk_).
        if (state_.compare_exchange_weak(s, 2, std::memory_order_relaxed)) break;
      } else {
        break;
      }
    }
    detail::wake_reason r = detail::block(lk_, q_, "mutex", deadline, st);
    switch (detail::settle(r, own)) {
      case detail::settled::done:
        return true;  // handed over
      case detail::settled::timed_out:
        return false;
      case detail::settled::retry:
        break;
    }
  }
}

void mutex::unlock_slow() noexcept {
  lk_.lock();
  while (!q_.empty()) {
    detail::waiter* w = q_.pop_front();
    // Still held: the lock passes to w. With nobody else queued, the next unlock may be fast.
    if (q_.empty()) state_.store(1, std::memory_order_relaxed);
    if (detail::wake(*w)) {
      lk_.unlock();
      return;
    }
  }
  state_.store(0, std::memory_order_release);  // pairs with the acquire CAS in lock()
  lk_.unlock();
}

void mutex::unlock_not_owner() const {
  throw usage_error(owner_.load(std::memory_order_relaxed)
                        ? "stackless::mutex: unlock() by a tasklet (or thread) that does not hold it"
                        : "stackless::mutex: unlock() of a mutex that is not locked");
}

}  // namespace stackless
