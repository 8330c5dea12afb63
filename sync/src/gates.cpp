// SPDX-License-Identifier: Apache-2.0
// sync/src/gates.cpp — semaphores, event, latch, wait_group, barrier (semaphore.hpp, event.hpp).
//
// Each is a count or flag under one spinlock plus a wait_list (detail/waitq.hpp). Invariants:
//  - semaphore: q_ non-empty ⇒ count_ == 0. release() hands permits to queued waiters first
//    (count_ is decremented for a waiter only when its wake succeeds), so a newcomer can take a
//    permit only when nobody is queued: FIFO, no barging.
//  - gates (event, latch, wait_group, barrier): every waiter on q is waiting for the *current*
//    closed state to open; opening wakes them all under the lock, and a woken waiter returns
//    true without re-checking (an event set and cleared at once still released its waiters).
#include <stdexcept>

#include "stackless/runtime/internal/park.hpp"
#include "stackless/runtime/internal/scheduling.hpp"
#include "stackless/sync/event.hpp"
#include "stackless/sync/semaphore.hpp"

namespace stackless {

// ---- counting_semaphore ---------------------------------------------------------------------

counting_semaphore::counting_semaphore(std::ptrdiff_t initial, std::ptrdiff_t max)
    : count_(initial), max_(max) {
  if (initial < 0)
    throw std::invalid_argument("stackless: semaphore with a negative initial count");
  if (max < initial)
    throw std::invalid_argument("stackless: bounded_semaphore with initial > bound");
}

bool counting_semaphore::try_acquire() noexcept {
  lk_.lock();
  bool ok = q_.empty() && count_ > 0;
  if (ok) --count_;
  lk_.unlock();
  return ok;
}

bool counting_semaphore::acquire_impl(std::int64_t own, const std::stop_token* st) {
  detail::chaos_point();
  const std::int64_t deadline = detail::scoped_deadline(own);
  for (;;) {
    lk_.lock();
    if (q_.empty() && count_ > 0) {
      --count_;
      lk_.unlock();
      return true;
    }
    switch (detail::settle(
        detail::block(lk_, q_, {.what = "semaphore", .deadline = deadline, .st = st}), own)) {
      case detail::settled::done:
        return true;  // release() handed us a permit
      case detail::settled::timed_out:
        return false;
      case detail::settled::retry:
        break;
    }
  }
}

void counting_semaphore::release(std::ptrdiff_t n) {
  if (n < 0) throw std::invalid_argument("stackless: semaphore release() of a negative count");
  lk_.lock();
  if (n > max_ - count_) {
    lk_.unlock();
    throw usage_error("stackless: bounded_semaphore released past its bound");
  }
  count_ += n;
  while (count_ > 0 && !q_.empty()) {
    detail::waiter* w = q_.pop_front();
    if (detail::wake(*w)) --count_;  // a waiter that already left takes nothing
  }
  lk_.unlock();
}

std::ptrdiff_t counting_semaphore::value() const noexcept {
  lk_.lock();
  std::ptrdiff_t v = count_;
  lk_.unlock();
  return v;
}

// ---- event ----------------------------------------------------------------------------------

void event::set() noexcept {
  g_.lk.lock();
  set_.store(true, std::memory_order_release);  // pairs with the acquire in is_set()
  g_.open_all();
  g_.lk.unlock();
}

void event::clear() noexcept {
  g_.lk.lock();
  set_.store(false, std::memory_order_relaxed);
  g_.lk.unlock();
}

bool event::wait_impl(std::int64_t own, const std::stop_token* st) {
  detail::chaos_point();
  if (is_set()) return true;
  return g_.wait(
      "event", [](const void* p) { return static_cast<const event*>(p)->is_set(); }, this, own, st);
}

// ---- latch ----------------------------------------------------------------------------------

latch::latch(std::ptrdiff_t n) : count_(n) {
  if (n < 0) throw std::invalid_argument("stackless: latch with a negative count");
}

void latch::count_down(std::ptrdiff_t n) {
  g_.lk.lock();
  std::ptrdiff_t c = count_.load(std::memory_order_relaxed);
  if (n < 0 || n > c) {
    g_.lk.unlock();
    throw usage_error("stackless: latch::count_down() by more than the count left");
  }
  count_.store(c - n, std::memory_order_release);  // pairs with the acquire in try_wait()
  if (c - n == 0 && n > 0) g_.open_all();
  g_.lk.unlock();
}

bool latch::wait_impl(std::int64_t own, const std::stop_token* st) {
  detail::chaos_point();
  if (try_wait()) return true;
  return g_.wait(
      "latch", [](const void* p) { return static_cast<const latch*>(p)->try_wait(); }, this, own,
      st);
}

// ---- wait_group -----------------------------------------------------------------------------

void wait_group::add(std::ptrdiff_t delta) {
  g_.lk.lock();
  std::ptrdiff_t c = count_.load(std::memory_order_relaxed);
  if (c + delta < 0) {
    g_.lk.unlock();
    throw usage_error("stackless: wait_group counter would go negative (more done() than add())");
  }
  count_.store(c + delta, std::memory_order_release);  // pairs with the acquire in count()
  if (c + delta == 0 && delta != 0) g_.open_all();
  g_.lk.unlock();
}

bool wait_group::wait_impl(std::int64_t own, const std::stop_token* st) {
  detail::chaos_point();
  if (count() == 0) return true;
  return g_.wait(
      "wait_group", [](const void* p) { return static_cast<const wait_group*>(p)->count() == 0; },
      this, own, st);
}

// ---- barrier --------------------------------------------------------------------------------

barrier::barrier(std::ptrdiff_t n, std::function<void()> completion)
    : completion_(std::move(completion)), expected_(n), remaining_(n) {
  if (n <= 0) throw std::invalid_argument("stackless: barrier needs at least one participant");
}

barrier::arrival_token barrier::arrive_impl(std::ptrdiff_t n, bool drop) {
  g_.lk.lock();
  if (completing_) {
    g_.lk.unlock();
    throw usage_error("stackless: barrier arrival while the phase's completion function runs");
  }
  if (n <= 0 || n > remaining_) {
    g_.lk.unlock();
    throw usage_error("stackless: barrier::arrive() with more arrivals than the phase expects");
  }
  const std::uint64_t phase = phase_.load(std::memory_order_relaxed);
  if (drop) --expected_;
  remaining_ -= n;
  if (remaining_ > 0) {
    g_.lk.unlock();
    return {phase};
  }
  if (completion_) {  // the last arriver runs it, before anyone of the phase is released
    completing_ = true;
    g_.lk.unlock();
    completion_();
    g_.lk.lock();
    completing_ = false;
  }
  remaining_ = expected_;
  phase_.store(phase + 1, std::memory_order_release);
  g_.open_all();
  g_.lk.unlock();
  return {phase};
}

barrier::arrival_token barrier::arrive(std::ptrdiff_t n) { return arrive_impl(n, false); }
void barrier::arrive_and_drop() { (void)arrive_impl(1, true); }

bool barrier::wait_impl(arrival_token t, std::int64_t own, const std::stop_token* st) {
  detail::chaos_point();
  struct ctx {
    const barrier* b;
    std::uint64_t phase;
  } c{this, t.phase};
  return g_.wait(
      "barrier",
      [](const void* p) {
        auto* x = static_cast<const ctx*>(p);
        return x->b->phase_.load(std::memory_order_acquire) != x->phase;
      },
      &c, own, st);
}

}  // namespace stackless
