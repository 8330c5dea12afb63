// SPDX-License-Identifier: Apache-2.0
// stackless/sync/semaphore.hpp — counting_semaphore and bounded_semaphore for tasklets and plain
// threads (stacklesslib locks.Semaphore / BoundedSemaphore; std::counting_semaphore's names).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stop_token>

#include "stackless/runtime/errors.hpp"
#include "stackless/runtime/timeout.hpp"
#include "stackless/sync/detail/waitq.hpp"

namespace stackless {

/// counting_semaphore holds a count of permits. acquire() takes one, parking the calling tasklet
/// (blocking a plain thread) while there is none; release(n) returns n. Fair: permits go to the
/// waiters in arrival order (a released permit is handed to the longest waiter; a newcomer does
/// not take it while anyone is queued).
class counting_semaphore {
 public:
  /// counting_semaphore(initial): initial >= 0, else std::invalid_argument.
  explicit counting_semaphore(std::ptrdiff_t initial) : counting_semaphore(initial, PTRDIFF_MAX) {}
  counting_semaphore(const counting_semaphore&) = delete;
  counting_semaphore& operator=(const counting_semaphore&) = delete;

  void acquire() { acquire_impl(detail::no_deadline, nullptr); }
  /// acquire(st): a stop request on `st` ends the wait with operation_cancelled.
  void acquire(std::stop_token st) { acquire_impl(detail::no_deadline, &st); }
  bool try_acquire() noexcept;
  template <class Rep, class P>
  bool try_acquire_for(std::chrono::duration<Rep, P> d) {
    return acquire_impl(detail::deadline_after(d), nullptr);
  }
  template <class C, class D>
  bool try_acquire_until(std::chrono::time_point<C, D> tp) {
    return acquire_impl(detail::deadline_at(tp), nullptr);
  }
  /// release(n) returns n >= 0 permits (a negative n is std::invalid_argument).
  void release(std::ptrdiff_t n = 1);
  /// value() is the number of free permits now.
  std::ptrdiff_t value() const noexcept;
  /// max() is the largest count (bounded_semaphore's bound; PTRDIFF_MAX otherwise).
  std::ptrdiff_t max() const noexcept { return max_; }

 protected:
  counting_semaphore(std::ptrdiff_t initial, std::ptrdiff_t max);

 private:
  bool acquire_impl(std::int64_t own, const std::stop_token* st);

  mutable detail::spinlock lk_;
  detail::wait_list q_;   // guarded by lk_
  std::ptrdiff_t count_;  // guarded by lk_
  const std::ptrdiff_t max_;
};

/// bounded_semaphore is a counting_semaphore whose count may never exceed its bound: a release()
/// past it throws usage_error (stacklesslib BoundedSemaphore: "released too many times") and
/// changes nothing.
class bounded_semaphore : public counting_semaphore {
 public:
  /// bounded_semaphore(initial, bound = initial): 0 <= initial <= bound.
  explicit bounded_semaphore(std::ptrdiff_t initial) : counting_semaphore(initial, initial) {}
  bounded_semaphore(std::ptrdiff_t initial, std::ptrdiff_t bound)
      : counting_semaphore(initial, bound) {}
};

}  // namespace stackless
