// SPDX-License-Identifier: Apache-2.0
// stackless/sync/event.hpp — event, latch, wait_group and barrier for tasklets and plain threads
// (stacklesslib locks.Event / Barrier, std::latch / std::barrier, Go's sync.WaitGroup).
//
// Every wait parks the calling tasklet (blocks a plain thread), has _for / _until forms that
// return false on timeout, honours timeout_scope (timeout_error) and kill (tasklet_exit), and
// where it takes a std::stop_token ends with operation_cancelled on a stop request.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stop_token>

#include "stackless/runtime/errors.hpp"
#include "stackless/runtime/timeout.hpp"
#include "stackless/sync/detail/waitq.hpp"

namespace stackless {

/// event is a manual-reset event (stacklesslib Event): set() releases every waiter and keeps the
/// event set until clear(); wait() returns at once while it is set. A waiter released by set()
/// returns true even if clear() follows at once.
class event {
 public:
  event() = default;
  explicit event(bool initially_set) : set_(initially_set) {}
  event(const event&) = delete;
  event& operator=(const event&) = delete;

  void set() noexcept;
  void clear() noexcept;
  bool is_set() const noexcept { return set_.load(std::memory_order_acquire); }  // pairs with set()
  void wait() { wait_impl(detail::no_deadline, nullptr); }
  void wait(std::stop_token st) { wait_impl(detail::no_deadline, &st); }
  template <class Rep, class P>
  bool wait_for(std::chrono::duration<Rep, P> d) {
    return wait_impl(detail::deadline_after(d), nullptr);
  }
  template <class C, class D>
  bool wait_until(std::chrono::time_point<C, D> tp) {
    return wait_impl(detail::deadline_at(tp), nullptr);
  }

 private:
  bool wait_impl(std::int64_t own, const std::stop_token* st);
  std::atomic<bool> set_{false};  // written under g_.lk
  detail::gate g_;
};

/// latch is a single-use countdown (std::latch): wait() returns once count_down() has brought the
/// count to zero.
class latch {
 public:
  /// latch(n): n >= 0, else std::invalid_argument.
  explicit latch(std::ptrdiff_t n);
  latch(const latch&) = delete;
  latch& operator=(const latch&) = delete;

  /// count_down(n) subtracts n (0 <= n <= the count, else usage_error); never waits.
  void count_down(std::ptrdiff_t n = 1);
  bool try_wait() const noexcept { return count_.load(std::memory_order_acquire) == 0; }
  void wait() const { const_cast<latch*>(this)->wait_impl(detail::no_deadline, nullptr); }
  void wait(std::stop_token st) const {
    const_cast<latch*>(this)->wait_impl(detail::no_deadline, &st);
  }
  template <class Rep, class P>
  bool wait_for(std::chrono::duration<Rep, P> d) const {
    return const_cast<latch*>(this)->wait_impl(detail::deadline_after(d), nullptr);
  }
  template <class C, class D>
  bool wait_until(std::chrono::time_point<C, D> tp) const {
    return const_cast<latch*>(this)->wait_impl(detail::deadline_at(tp), nullptr);
  }
  /// arrive_and_wait(n): count_down(n), then wait().
  void arrive_and_wait(std::ptrdiff_t n = 1) {
    count_down(n);
    wait();
  }

 private:
  bool wait_impl(std::int64_t own, const std::stop_token* st);
  std::atomic<std::ptrdiff_t> count_;  // written under g_.lk
  detail::gate g_;
};

/// wait_group is Go's sync.WaitGroup: add(n) before starting work, done() when a piece ends,
/// wait() until the counter is zero. Reusable. A counter driven below zero is a usage_error
/// (Go panics) and leaves the counter unchanged.
class wait_group {
 public:
  wait_group() = default;
  wait_group(const wait_group&) = delete;
  wait_group& operator=(const wait_group&) = delete;

  void add(std::ptrdiff_t delta = 1);
  void done() { add(-1); }
  std::ptrdiff_t count() const noexcept { return count_.load(std::memory_order_acquire); }
  void wait() { wait_impl(detail::no_deadline, nullptr); }
  void wait(std::stop_token st) { wait_impl(detail::no_deadline, &st); }
  template <class Rep, class P>
  bool wait_for(std::chrono::duration<Rep, P> d) {
    return wait_impl(detail::deadline_after(d), nullptr);
  }
  template <class C, class D>
  bool wait_until(std::chrono::time_point<C, D> tp) {
    return wait_impl(detail::deadline_at(tp), nullptr);
  }

 private:
  bool wait_impl(std::int64_t own, const std::stop_token* st);
  std::atomic<std::ptrdiff_t> count_{0};  // written under g_.lk
  detail::gate g_;
};

/// barrier is a reusable rendezvous of n participants (std::barrier, stacklesslib Barrier): each
/// phase completes when n arrivals have happened; then the completion function (if any) runs on
/// the last arriver, and every waiter of that phase is released. An arrival is never undone: a
/// waiter that times out, is cancelled or killed has still arrived. The completion function must
/// not throw; an arrival for the next phase while the completion runs is a usage_error.
class barrier {
 public:
  /// arrival_token names the phase an arrive() belongs to.
  struct arrival_token {
    std::uint64_t phase;
  };

  /// barrier(n): n > 0 participants, else std::invalid_argument.
  explicit barrier(std::ptrdiff_t n, std::function<void()> completion = {});
  barrier(const barrier&) = delete;
  barrier& operator=(const barrier&) = delete;

  [[nodiscard]] arrival_token arrive(std::ptrdiff_t n = 1);
  void wait(arrival_token t) const {
    const_cast<barrier*>(this)->wait_impl(t, detail::no_deadline, nullptr);
  }
  template <class Rep, class P>
  bool wait_for(arrival_token t, std::chrono::duration<Rep, P> d) const {
    return const_cast<barrier*>(this)->wait_impl(t, detail::deadline_after(d), nullptr);
  }
  void arrive_and_wait() { wait(arrive()); }
  template <class Rep, class P>
  bool arrive_and_wait_for(std::chrono::duration<Rep, P> d) {
    return wait_for(arrive(), d);
  }
  /// arrive_and_drop() arrives and leaves: later phases expect one participant fewer.
  void arrive_and_drop();

 private:
  bool wait_impl(arrival_token t, std::int64_t own, const std::stop_token* st);
  arrival_token arrive_impl(std::ptrdiff_t n, bool drop);

  std::function<void()> completion_;
  std::ptrdiff_t expected_;              // guarded by g_.lk
  std::ptrdiff_t remaining_;             // guarded by g_.lk
  std::atomic<std::uint64_t> phase_{0};  // written under g_.lk
  bool completing_ = false;              // guarded by g_.lk
  detail::gate g_;
};

}  // namespace stackless
