// SPDX-License-Identifier: Apache-2.0
// runtime/src/timer_heap.hpp — a 4-ary min-heap of timer entries, ordered by deadline.
//
// Each worker owns one (worker_shared::timers, worker.hpp; used by timers.cpp); its lock is the
// worker's timer lock.
//
// Why a heap and not a hierarchical timing wheel (Varghese & Lauck, SOSP'87; tokio, Kafka, the
// Linux kernel): bench/timer_structures.cpp measured both (and std::priority_queue) on a
// simulated clock. On raw operations the wheel wins — about 15-40 ns per insert+fire/cancel
// against 25-100 ns for this heap, 2-3x from 4096 live timers up — but all of these are small
// next to a park and a wake-up (hundreds of ns), and the heap gives the runtime three things the
// wheel does not:
//  - exact deadlines: a wheel fires up to one tick late (a 1 µs tick there);
//  - the earliest deadline for free, at the top: a sleeping worker's futex timeout is exactly
//    the next deadline, while a wheel knows it only to within a slot (4 ms at level 2, 268 ms at
//    level 3) unless it scans the slot or wakes up to cascade;
//  - cancellation without the owner's lock: a timed wait that is notified first (the common
//    case: "cancel" in the benchmark, where this heap beats std::priority_queue, 0.75-0.8x)
//    simply leaves a stale entry, where a wheel's cancel must unlink the entry under the owning
//    worker's lock from the waker's thread.
// It is 4-ary because inserts (one per timed park) outnumber pops of live entries; pops are
// slower than std::pop_heap's (three data-dependent comparisons per level instead of one).
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
  std::int64_t min_deadline() const noexcept {
    return v_.empty() ? INT64_MAX : v_.front().deadline;
  }

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
