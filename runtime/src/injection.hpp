// runtime/src/injection.hpp — the scheduler-wide injection queue: spawns and wakes from outside
// the workers, and deque overflow. A moodycamel ConcurrentQueue (lock-free MPMC).
//
// Under ThreadSanitizer it is a mutex and a std::deque instead: moodycamel synchronises through
// standalone fences, which TSan does not model, so every tasklet handed through it would be
// reported as a race. The stand-in has the same interface and FIFO-per-producer order.
#pragma once

#include <cstddef>

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
  void enqueue(T x) { q_.enqueue(x); }
  void enqueue_bulk(T const* xs, std::size_t n) { q_.enqueue_bulk(xs, n); }
  bool try_dequeue(T& out) { return q_.try_dequeue(out); }
  std::size_t try_dequeue_bulk(T* out, std::size_t max) { return q_.try_dequeue_bulk(out, max); }
  std::size_t size_approx() const { return q_.size_approx(); }

 private:
  moodycamel::ConcurrentQueue<T> q_;
#endif
};

}  // namespace stackless::detail
