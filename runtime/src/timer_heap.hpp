// runtime/src/timer_heap.hpp — a 4-ary min-heap of timer entries, ordered by deadline.
//
// Each worker owns one (scheduler_impl::timers_of); its lock is the worker's timer lock. Why a
// 4-ary heap and not a hierarchical timing wheel (Varghese & Lauck, SOSP'87; tokio, Kafka,
// Linux): bench/timer_structures.cpp measures both on this runtime's patterns (a park with a
// deadline that usually ends early; sleeps of 1 µs–1 s) and the heap is as fast or faster at the
// sizes a worker holds (up to ~10^5 timers), keeps exact nanosecond deadlines (a wheel rounds to
// its tick: a 1 ms sleep would wake up to one tick late), and needs no periodic tick to advance
// while a worker sleeps (the worker's futex timeout is simply the heap's minimum). The figures
// are in the README. A 4-ary heap halves the depth of a binary heap and keeps the children of a
// node in one cache line (4 × 24 bytes straddles at most two).
//
// Entries are never removed when their park ends early (the common case: a timed wait that is
// notified first): removing would need the entry's position, kept up to date on every sift, in
// memory the waker would have to reach. A stale entry loses the park door's generation check when
// it fires, and purge() drops stale entries in bulk once they are half of the heap, so the heap
// stays within twice its live entries (amortised O(1) per park).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace stackless::detail {

/// heap4<E> is a 4-ary min-heap on E::deadline (any type with an integer `deadline`).
template <class E>
class heap4 {
 public:
  bool empty() const noexcept { return v_.empty(); }
  std::size_t size() const noexcept { return v_.size(); }
  const E& top() const noexcept { return v_.front(); }
  /// min_deadline() is the earliest deadline, or INT64_MAX when empty.
  std::int64_t min_deadline() const noexcept { return v_.empty() ? INT64_MAX : v_.front().deadline; }

  void push(const E& e) {
    v_.push_back(e);
    sift_up(v_.size() - 1);
  }

  /// pop() removes and returns the entry with the earliest deadline. Requires !empty().
  E pop() {
    E out = std::move(v_.front());
    E last = std::move(v_.back());
    v_.pop_back();
    if (!v_.empty()) {
      v_.front() = std::move(last);
      sift_down(0);
    }
    return out;
  }

  /// purge(keep, drop) keeps the entries for which keep(e) is true, calls drop(e) on the others,
  /// and rebuilds the heap in O(n).
  template <class Keep, class Drop>
  void purge(Keep&& keep, Drop&& drop) {
    std::size_t kept = 0;
    for (std::size_t i = 0; i < v_.size(); ++i) {
      if (keep(v_[i])) {
        if (kept != i) v_[kept] = std::move(v_[i]);
        ++kept;
      } else {
        drop(v_[i]);
      }
    }
    v_.resize(kept);
    if (kept > 1)
      for (std::size_t i = (kept - 2) / 4 + 1; i-- > 0;) sift_down(i);
  }

  /// for_each(f) visits every entry, in no particular order.
  template <class F>
  void for_each(F&& f) const {
    for (const E& e : v_) f(e);
  }
  void clear() noexcept { v_.clear(); }

 private:
  void sift_up(std::size_t i) {
    E e = std::move(v_[i]);
    while (i > 0) {
      std::size_t parent = (i - 1) / 4;
      if (v_[parent].deadline <= e.deadline) break;
      v_[i] = std::move(v_[parent]);
      i = parent;
    }
    v_[i] = std::move(e);
  }
  void sift_down(std::size_t i) {
    const std::size_t n = v_.size();
    E e = std::move(v_[i]);
    for (;;) {
      std::size_t c = 4 * i + 1;
      if (c >= n) break;
      std::size_t best = c;
      std::size_t end = c + 4 < n ? c + 4 : n;
      for (std::size_t k = c + 1; k < end; ++k)
        if (v_[k].deadline < v_[best].deadline) best = k;
      if (e.deadline <= v_[best].deadline) break;
      v_[i] = std::move(v_[best]);
      i = best;
    }
    v_[i] = std::move(e);
  }

  std::vector<E> v_;
};

}  // namespace stackless::detail
