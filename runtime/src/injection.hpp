// SPDX-License-Identifier: Apache-2.0
// runtime/src/injection.hpp — the scheduler-wide injection queue: spawns and wakes from outside
// the workers, and deque overflow. A moodycamel ConcurrentQueue (lock-free MPMC).
//
// Under ThreadSanitizer it is a mutex and a std::deque instead: moodycamel synchronises through
// standalone fences, which TSan does not model, so every tasklet handed through it would be
// reported as a race. The stand-in has the same interface and FIFO-per-producer order.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#ifdef STACKLESS_TSAN
#include <deque>
#include <mutex>
#else
#include <concurrentqueue/concurrentqueue.h>
#endif

namespace stackless::detail {

template <class T>
class injection_queue {
 public:
#ifdef STACKLESS_TSAN
  void enqueue(T x) {
    std::lock_guard g(mu_);
    q_.push_back(x);
  }
  void enqueue_bulk(T const* xs, std::size_t n) {
    std::lock_guard g(mu_);
    q_.insert(q_.end(), xs, xs + n);
  }
  bool try_dequeue(T& out) { return try_dequeue_bulk(&out, 1) == 1; }
  std::size_t try_dequeue_bulk(T* out, std::size_t max) {
    std::lock_guard g(mu_);
    std::size_t n = 0;
    for (; n < max && !q_.empty(); ++n) {
      out[n] = q_.front();
      q_.pop_front();
    }
    return n;
  }
  std::size_t size_approx() const {
    std::lock_guard g(mu_);
    return q_.size();
  }

 private:
  mutable std::mutex mu_;
  std::deque<T> q_;
#else
  // The count's release increments pair with the acquire loads in try_dequeue_bulk() and
  // size_approx(): who sees the count sees the element in (moodycamel synchronises the element
  // itself).
  void enqueue(T x) {
    q_.enqueue(x);
    size_.fetch_add(1, std::memory_order_release);
  }
  void enqueue_bulk(T const* xs, std::size_t n) {
    q_.enqueue_bulk(xs, n);
    size_.fetch_add(static_cast<std::int64_t>(n), std::memory_order_release);
  }
  bool try_dequeue(T& out) { return try_dequeue_bulk(&out, 1) == 1; }
  std::size_t try_dequeue_bulk(T* out, std::size_t max) {
    // acquire: pairs with the release increments in enqueue()/enqueue_bulk().
    if (size_.load(std::memory_order_acquire) <= 0) return 0;  // the common case: one load
    std::size_t n = q_.try_dequeue_bulk(out, max);
    // relaxed: the count is a hint; the elements were handed over by moodycamel itself.
    if (n) size_.fetch_sub(static_cast<std::int64_t>(n), std::memory_order_relaxed);
    return n;
  }
  /// size_approx(): may lag behind a concurrent enqueue by a moment (the count is bumped after
  /// the element is in); callers that must not miss work re-check after their StoreLoad fence.
  std::size_t size_approx() const {
    std::int64_t n = size_.load(std::memory_order_acquire);  // pairs with the enqueues' release
    return n > 0 ? static_cast<std::size_t>(n) : 0;
  }

 private:
  moodycamel::ConcurrentQueue<T> q_;
  std::atomic<std::int64_t> size_{0};  // elements in q_, approximately (never below the truth
                                       // for long: bumped right after each enqueue)
#endif
};

}  // namespace stackless::detail
