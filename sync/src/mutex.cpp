// SPDX-License-Identifier: Apache-2.0
// sync/src/mutex.cpp — the slow paths of stackless::mutex (sync/mutex.hpp).
//
// state_ bits: LOCKED 1, WAITERS 2, HANDOFF 4, WOKEN 8.
// Invariants:
//  - q_ non-empty ⇒ WAITERS (set under lk_ before a waiter is queued, cleared under lk_ only when
//    q_ is empty). The uncontended unlock (CAS LOCKED → 0) therefore never forgets a waiter,
//    and the fast lock (CAS 0 → LOCKED) only succeeds when nobody is queued.
//  - fair policy: LOCKED is never cleared while q_ is non-empty — unlock() hands the lock to the
//    first waiter whose wake succeeds — so nobody overtakes a queued waiter.
//  - throughput policy (Go's sync.Mutex, "normal" and "starvation" modes): without HANDOFF,
//    unlock() clears LOCKED and, unless a woken waiter is already competing (WOKEN), wakes the
//    first waiter and sets WOKEN; the woken waiter competes with newcomers and clears WOKEN when it
//    takes the lock or re-queues — at the *front*. One woken waiter at a time: waking more only
//    makes them fight. A waiter that has waited 1 ms sets HANDOFF: from then on unlock() hands
//    over as in the fair policy and nobody barges, until q_ drains.
//  - Whether a notified waiter owns the lock is written by the unlocker into its record
//    (waiter::data: HANDED) before the wake, and read by the waiter after it.
//  - A waiter that timed out, was cancelled or killed is either unlinked by itself or skipped
//    by the unlocker (its door said no): the lock is never handed to someone who has left.
//  - Memory order: the holder's writes reach the next holder through the release store/CAS in
//    unlock() and the acquire CAS in lock(), or, on hand-off, through lk_ and the park door's
//    acq_rel CAS (a plain thread: the release store / acquire load of its futex word).
#include "stackless/sync/mutex.hpp"

#include "stackless/runtime/internal/park.hpp"
#include "stackless/runtime/internal/scheduling.hpp"

namespace stackless {

namespace {
constexpr std::uint32_t LOCKED = 1, WAITERS = 2, HANDOFF = 4, WOKEN = 8;
constexpr std::uintptr_t HANDED = 1;           // waiter::data: the lock is yours
constexpr int spin_rounds = 100;               // about 1-4 µs of pause instructions
constexpr std::int64_t starve_ns = 1'000'000;  // throughput policy: Go's 1 ms
}  // namespace

bool mutex::lock_slow(std::int64_t own, const std::stop_token* st) {
  if (owner_.load(std::memory_order_relaxed) == detail::self_token() &&
      (state_.load(std::memory_order_relaxed) & LOCKED))
    throw usage_error(
        "stackless::mutex: lock() by the tasklet that holds it would deadlock "
        "(use recursive_mutex)");
  detail::chaos_point();
  const std::int64_t deadline = detail::scoped_deadline(own);
  // may_take(s): a caller that is not (or no longer) queued may take the lock in state s.
  auto may_take = [this](std::uint32_t s) {
    if (s & (LOCKED | HANDOFF)) return false;
    return !fair_ || !(s & WAITERS);
  };
  std::int64_t waiting_since = 0;  // throughput policy: when this call first queued
  bool woken = false;              // throughput policy: woken to compete (re-queue at the front)
  for (;;) {
    // Spin a little first: a critical section on another worker usually ends within a few
    // hundred ns, far less than a park and a wake-up. Only where someone else can run meanwhile.
    if (detail::spinning_may_help()) {
      for (int i = 0; i < spin_rounds; ++i) {
        std::uint32_t s = state_.load(std::memory_order_relaxed);
        if (may_take(s) &&
            state_.compare_exchange_weak(s, (s | LOCKED) & ~(woken ? WOKEN : 0),
                                         std::memory_order_acquire, std::memory_order_relaxed))
          return true;  // acquire: pairs with the release in unlock() / unlock_slow()
        if ((fair_ && (s & WAITERS)) || (s & HANDOFF)) break;  // queued waiters first: join them
        detail::cpu_relax();
      }
    }
    lk_.lock();
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    bool queue = false;
    while (!queue) {
      if (may_take(s)) {
        // acquire: pairs with the release in unlock() / unlock_slow().
        if (state_.compare_exchange_weak(s, (s | LOCKED) & ~(woken ? WOKEN : 0),
                                         std::memory_order_acquire, std::memory_order_relaxed)) {
          lk_.unlock();
          return true;
        }
        continue;
      }
      // Queue: announce it first, so that from now on unlock() takes the slow path (and lk_).
      std::uint32_t want = (s | WAITERS) & ~(woken ? WOKEN : 0);  // a woken waiter stops competing
      if (!fair_ && waiting_since && detail::now_ns() - waiting_since >= starve_ns) want |= HANDOFF;
      // relaxed: we hold lk_, and unlock_slow() reads WAITERS under lk_; the fast unlock's CAS
      // (LOCKED → 0) fails once WAITERS is set, whatever the order.
      if (want == s || state_.compare_exchange_weak(s, want, std::memory_order_relaxed))
        queue = true;
    }
    if (!waiting_since) waiting_since = detail::now_ns();
    std::uintptr_t got = 0;
    // A woken waiter (throughput policy) that lost the race queues at the front again.
    detail::wake_reason r = detail::block(
        lk_, q_,
        {.what = "mutex", .deadline = deadline, .st = st, .front = woken, .data_out = &got});
    switch (detail::settle(r, own)) {
      case detail::settled::done:
        if (fair_ || got == HANDED) return true;  // handed over
        woken = true;                             // throughput: woken to compete
        break;
      case detail::settled::timed_out:
        return false;
      case detail::settled::retry:
        break;
    }
  }
}

void mutex::unlock_slow() noexcept {
  lk_.lock();
  // relaxed (and the relaxed RMWs below): with LOCKED set, only lk_ holders change state_; lk_
  // orders them. What the next holder must see is published by the release stores.
  std::uint32_t s = state_.load(std::memory_order_relaxed);
  if (fair_ || (s & HANDOFF)) {
    while (!q_.empty()) {
      detail::waiter* w = q_.pop_front();
      // Still LOCKED: the lock passes to w. With nobody else queued, the next unlock may be fast.
      if (q_.empty()) state_.store(LOCKED | (s & WOKEN), std::memory_order_relaxed);
      w->data = HANDED;
      if (detail::wake(*w)) {
        lk_.unlock();
        return;
      }
    }
    // Nobody left to take it. No one can change state_ meanwhile: LOCKED is set, WAITERS too
    // (or q_ was empty), so the lock-free paths all fail.
    state_.store(s & WOKEN, std::memory_order_release);  // pairs with the acquire CAS in lock()
    lk_.unlock();
    return;
  }
  // Throughput policy, normal mode: wake the first waiter to compete (unless one already does),
  // then release. While LOCKED is set only lk_ holders change state_, so the RMWs below cannot
  // lose a bit; the woken waiter clears WOKEN itself.
  if (!(s & WOKEN)) {
    while (detail::waiter* w = q_.pop_front()) {
      w->data = 0;  // not handed over: compete
      state_.fetch_or(WOKEN, std::memory_order_relaxed);
      if (detail::wake(*w)) break;
      state_.fetch_and(~WOKEN, std::memory_order_relaxed);
    }
  }
  if (q_.empty()) state_.fetch_and(~WAITERS, std::memory_order_relaxed);
  state_.fetch_and(~LOCKED, std::memory_order_release);  // pairs with the acquire CASes in lock()
  lk_.unlock();
}

void mutex::unlock_not_owner() const {
  throw usage_error(
      owner_.load(std::memory_order_relaxed)
          ? "stackless::mutex: unlock() by a tasklet (or thread) that does not hold it"
          : "stackless::mutex: unlock() of a mutex that is not locked");
}

}  // namespace stackless
