// SPDX-License-Identifier: Apache-2.0
// runtime/src/deque.hpp — the per-worker work-stealing deque.
//
// Chase and Lev, "Dynamic circular work-stealing deque" (SPAA'05), in the C11 formulation of
// Lê, Pop, Cohen and Zappa Nardelli, "Correct and efficient work-stealing for weak memory models"
// (PPoPP'13), with the fixes CDSChecker found in the paper's code:
//  - top/bottom are *signed* 64-bit: take() decrements bottom below top on an empty deque and an
//    unsigned index would make the empty deque look full;
//  - take() needs the seq_cst fence between its store of bottom and its load of top, or the
//    owner and a thief can both take the last element;
//  - the array never grows: a full deque makes push() fail and the owner moves half of it to the
//    injection queue (as Go and tokio do), so no thief ever reads an array that was freed.
//
// Invariants:
//  - only the owner calls push(), take() and take_oldest(); anyone calls steal();
//  - top only grows, by CAS; bottom is written by the owner only;
//  - the elements are [top, bottom); slots outside it may hold stale pointers, never read as
//    elements: a slot is read by a thief before its CAS on top decides whether the read counts;
//  - as the owner sees them (its own bottom, and a top it read, which may lag but never leads),
//    top <= bottom and bottom - top <= capacity: never more elements than slots. Inside take(),
//    after its decrement, bottom may sit one below top (a thief took the last element), so
//    there the check is on the bottom before the decrement: bottom >= top - 1 after it.
//    deque_indices_ok() is this in code; check_deque_indices() asserts it in push(), take() and
//    take_oldest() (debug and sanitizer builds). A thief's two reads are not checked: they are
//    not one moment's values (its bottom may be older than its top).
//
// Steal-half is k ordinary steals, not one CAS that advances top by k: a batch CAS can race
// with take() of an element in the middle of the batch, because take() only CASes top when it
// takes the *last* element (owner takes b-1, b-2, …, t+1 without a CAS while the thief's batch
// [t, t+k) is in flight: t+1 is taken twice). Steals are rare; k CASes are cheap enough.
//
// ThreadSanitizer does not model standalone fences, so in the TSan build the index operations
// that the fences order are themselves seq_cst (STACKLESS_TSAN).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "fence.hpp"
#include "stackless/runtime/internal/assert.hpp"

namespace stackless::detail {

enum class steal_status : std::uint8_t { empty, success, retry };

/// deque_indices_ok() is the owner's index invariant (see the top of the file): the elements
/// [top, bottom) number between 0 and `capacity`.
constexpr bool deque_indices_ok(std::int64_t bottom, std::int64_t top,
                                std::int64_t capacity) noexcept {
  return top <= bottom && bottom - top <= capacity;
}

/// check_deque_indices() asserts deque_indices_ok() (debug and sanitizer builds; nothing in
/// release). The state word printed is the size the indices give, bottom - top (when positive).
inline void check_deque_indices(std::int64_t bottom, std::int64_t top,
                                std::int64_t capacity) noexcept {
  STACKLESS_ASSERT_STATE(deque_indices_ok(bottom, top, capacity),
                         "ws_deque: top/bottom out of range (0 <= bottom - top <= capacity)",
                         bottom - top);
  (void)bottom;
  (void)top;
  (void)capacity;
}

template <class T>
class ws_deque {
#ifdef STACKLESS_TSAN
  static constexpr auto idx_relaxed = std::memory_order_seq_cst;
  static constexpr auto idx_acquire = std::memory_order_seq_cst;
#else
  static constexpr auto idx_acquire = std::memory_order_acquire;
  static constexpr auto idx_relaxed = std::memory_order_relaxed;
#endif

 public:
  /// capacity must be a power of two ≥ 2.
  explicit ws_deque(std::size_t capacity)
      : mask_(static_cast<std::int64_t>(capacity) - 1), slots_(new std::atomic<T*>[capacity]) {
    // relaxed: the deque is not shared yet (the scheduler publishes its workers by starting
    // their threads).
    for (std::size_t i = 0; i < capacity; ++i) slots_[i].store(nullptr, std::memory_order_relaxed);
  }

  std::size_t capacity() const noexcept { return static_cast<std::size_t>(mask_ + 1); }

  /// push() appends x at the bottom; false when full (owner only).
  bool push(T* x) noexcept {
    std::int64_t b = bottom_.load(std::memory_order_relaxed);  // relaxed: the owner's own word
    std::int64_t t = top_.load(std::memory_order_acquire);  // pairs with the CAS in steal()/take()
    check_deque_indices(b, t, mask_ + 1);
    if (b - t > mask_) return false;
    // relaxed: published by the fence and the bottom store below.
    slots_[b & mask_].store(x, std::memory_order_relaxed);
    fence_release();  // pairs with the acquire of bottom in steal()
#ifdef STACKLESS_TSAN
    bottom_.store(b + 1, std::memory_order_seq_cst);  // TSan: in place of the fence
#else
    bottom_.store(b + 1, std::memory_order_relaxed);  // relaxed: ordered by fence_release()
#endif
    return true;
  }

  /// take() removes the most recently pushed element (owner only); null when empty.
  T* take() noexcept {
    // Fast path: the owner sees its deque empty without the fence. Only the owner adds
    // elements, so an empty deque cannot become non-empty behind its back.
    // relaxed: a top that lags only makes the deque look non-empty; the slow path re-reads it
    // after the fence.
    if (bottom_.load(std::memory_order_relaxed) <= top_.load(std::memory_order_relaxed))
      return nullptr;
    std::int64_t b = bottom_.load(std::memory_order_relaxed) - 1;  // relaxed: the owner's own word
    bottom_.store(b, idx_relaxed);             // relaxed: ordered before the top load by the fence
    fence_seq_cst();                           // pairs with the fence in steal()
    std::int64_t t = top_.load(idx_relaxed);   // relaxed: ordered by the fence
    check_deque_indices(b + 1, t, mask_ + 1);  // bottom >= top - 1 after the decrement
    if (t > b) {                               // empty
      bottom_.store(b + 1, idx_relaxed);  // relaxed: restores the owner's word; nothing published
      return nullptr;
    }
    T* x = slots_[b & mask_].load(std::memory_order_relaxed);  // relaxed: the owner wrote it
    if (t == b) {  // the last element: race the thieves for it
      // seq_cst: the same race as a thief's CAS in steal(), on the same word: one of them wins.
      if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst,
                                        std::memory_order_relaxed))
        x = nullptr;
      bottom_.store(b + 1, idx_relaxed);  // relaxed: bottom == top again; nothing published
    }
    return x;
  }

  /// steal() removes the oldest element (anyone). retry: lost a race, the deque may not be empty.
  steal_status steal(T*& out) noexcept {
    std::int64_t t = top_.load(idx_acquire);     // pairs with the CASes on top (steal(), take())
    fence_seq_cst();                             // pairs with the fence in take()
    std::int64_t b = bottom_.load(idx_acquire);  // pairs with the release in push()
    if (t >= b) return steal_status::empty;
    // relaxed: the acquire of bottom made the push's store visible; the CAS decides whether
    // this read counts.
    T* x = slots_[t & mask_].load(std::memory_order_relaxed);
    // seq_cst: against the other thieves' CASes and take()'s CAS for the last element.
    if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst,
                                      std::memory_order_relaxed))
      return steal_status::retry;
    out = x;
    return steal_status::success;
  }

  /// steal_half() steals up to half of the elements (rounded up), at most `max`, into out[];
  /// returns how many.
  std::size_t steal_half(T** out, std::size_t max) noexcept {
    std::int64_t n = size();
    std::size_t want = static_cast<std::size_t>((n + 1) / 2);
    if (want > max) want = max;
    std::size_t got = 0;
    int retries = 0;
    while (got < want) {
      steal_status s = steal(out[got]);
      if (s == steal_status::success) {
        ++got;
      } else if (s == steal_status::empty || ++retries > 4) {
        break;
      }
    }
    return got;
  }

  /// take_oldest() removes up to k of the oldest elements into out[] with one CAS (owner only:
  /// the batch cannot race with take(), which only the owner calls; thieves each CAS top
  /// and either take an element before our CAS, which then fails and we retry, or after it).
  std::size_t take_oldest(T** out, std::size_t k) noexcept {
    for (;;) {
      std::int64_t t = top_.load(std::memory_order_acquire);     // pairs with the thieves' CASes
      std::int64_t b = bottom_.load(std::memory_order_relaxed);  // relaxed: the owner's own word
      check_deque_indices(b, t, mask_ + 1);
      std::int64_t n = b - t;
      if (n <= 0) return 0;
      if (static_cast<std::int64_t>(k) > n) k = static_cast<std::size_t>(n);
      // relaxed: the owner wrote these slots; the CAS decides whether the reads count.
      for (std::size_t i = 0; i < k; ++i)
        out[i] = slots_[(t + static_cast<std::int64_t>(i)) & mask_].load(std::memory_order_relaxed);
      // seq_cst: against the thieves' CASes in steal(), as take()'s.
      if (top_.compare_exchange_strong(t, t + static_cast<std::int64_t>(k),
                                       std::memory_order_seq_cst, std::memory_order_relaxed))
        return k;
    }
  }

  /// size() is exact for the owner when no thief runs, approximate otherwise.
  std::int64_t size() const noexcept {
    // acquire (both): pair with push()'s bottom store and the CASes on top; an estimate that
    // callers act on only through steal() or after their own fence (work_anywhere()).
    std::int64_t b = bottom_.load(std::memory_order_acquire);
    std::int64_t t = top_.load(std::memory_order_acquire);
    return b > t ? b - t : 0;
  }
  bool empty() const noexcept { return size() == 0; }

 private:
  alignas(64) std::atomic<std::int64_t> top_{0};     // thieves' end
  alignas(64) std::atomic<std::int64_t> bottom_{0};  // owner's end
  std::int64_t mask_;
  std::unique_ptr<std::atomic<T*>[]> slots_;
};

}  // namespace stackless::detail
