// SPDX-License-Identifier: Apache-2.0
// stackless/runtime/timeout.hpp — deadlines and cancellation for every blocking call:
// timeout_scope (stacklesslib util.timeout), timeout_error, operation_cancelled.
//
// Every blocking call of the library (join, sleep, channel send/receive/select, the locks,
// condition variables, semaphores, events, barriers, latches, wait groups, futures, when_any /
// when_all, task_group::wait) honours the innermost timeout_scope of the calling tasklet (or
// plain thread): when the scope's deadline passes while the call waits — or has passed when the
// call would have to wait — the call gives up exactly as its own timeout would (nothing is taken,
// nothing is lost) and throws timeout_error naming the scope. A call that does not have to wait
// completes normally, deadline or not (stacklesslib: the timeout interrupts a wait).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "stackless/runtime/detail/deadline.hpp"

namespace stackless {

class timeout_scope;

/// timeout_error is thrown by a blocking call when the deadline of an enclosing timeout_scope
/// passed. scope() tells which scope: an outer scope's timeout is never mistaken for an inner
/// one's (from(s) compares). It derives from std::runtime_error so that logging handlers see it;
/// swallowing it does not extend the deadline — the next blocking call inside the scope throws
/// again.
class timeout_error : public std::runtime_error {
 public:
  explicit timeout_error(const timeout_scope* s)
      : std::runtime_error("stackless: timeout_scope deadline passed"), scope_(s) {}
  const timeout_scope* scope() const noexcept { return scope_; }
  bool from(const timeout_scope& s) const noexcept { return scope_ == &s; }

 private:
  const timeout_scope* scope_;
};

/// operation_cancelled is thrown by a blocking call given a std::stop_token when a stop was
/// requested before or while it waited (nothing was taken).
class operation_cancelled : public std::runtime_error {
 public:
  operation_cancelled() : std::runtime_error("stackless: operation cancelled (stop requested)") {}
};

namespace detail {
/// scope_top() is the innermost timeout_scope of the calling tasklet (or plain thread), or null.
timeout_scope*& scope_top() noexcept;
}  // namespace detail

/// timeout_scope is an RAII deadline (stacklesslib util.timeout): every blocking call made inside
/// it, by the tasklet (or plain thread) that created it, throws timeout_error once the deadline
/// has passed. Scopes nest; the earliest deadline of the enclosing scopes is the one that fires,
/// and the error names the scope that owns it. A scope belongs to the tasklet that made it: it
/// does not reach tasklets spawned inside it. Destroy scopes in reverse order of creation (as
/// RAII does).
class timeout_scope {
 public:
  template <class Rep, class P>
  explicit timeout_scope(std::chrono::duration<Rep, P> d)
      : timeout_scope(detail::add_saturating(detail::clock_ns(), detail::saturating_ns(d))) {}
  template <class D>
  explicit timeout_scope(std::chrono::time_point<std::chrono::steady_clock, D> tp)
      : timeout_scope(detail::deadline_at(tp), 0) {}
  ~timeout_scope() { detail::scope_top() = prev_; }
  timeout_scope(const timeout_scope&) = delete;
  timeout_scope& operator=(const timeout_scope&) = delete;

  /// deadline() is this scope's own deadline.
  std::chrono::steady_clock::time_point deadline() const {
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadline_ns_));
  }
  /// expired() tells whether this scope's own deadline has passed.
  bool expired() const noexcept { return detail::clock_ns() >= deadline_ns_; }

  // For the library: the effective deadline (the earliest of this and the enclosing scopes) and
  // the scope it belongs to.
  std::int64_t effective_ns() const noexcept { return eff_ns_; }
  const timeout_scope* effective_owner() const noexcept { return eff_owner_; }

 private:
  // A scope's deadline is always a real one (no_deadline - 1 at most): "the scope passed" must
  // never compare equal to a call's own no_deadline.
  timeout_scope(std::int64_t deadline_ns, int)
      : deadline_ns_(deadline_ns), prev_(detail::scope_top()) {
    if (deadline_ns_ >= detail::no_deadline) deadline_ns_ = detail::no_deadline - 1;
    eff_ns_ = deadline_ns_;
    eff_owner_ = this;
    if (prev_ && prev_->eff_ns_ <= eff_ns_) {  // an enclosing scope ends first (or together)
      eff_ns_ = prev_->eff_ns_;
      eff_owner_ = prev_->eff_owner_;
    }
    detail::scope_top() = this;
  }
  explicit timeout_scope(std::int64_t deadline_ns) : timeout_scope(deadline_ns, 0) {}

  std::int64_t deadline_ns_;
  std::int64_t eff_ns_ = 0;
  const timeout_scope* eff_owner_ = nullptr;
  timeout_scope* prev_;
};

/// with_timeout() runs f inside a timeout_scope of `d`. It returns true (or f's value) when f
/// finished, false (or nullopt) when *this* scope's deadline interrupted it; a timeout_error of an
/// enclosing scope passes through.
template <class Rep, class P, class F>
auto with_timeout(std::chrono::duration<Rep, P> d, F&& f) {
  using R = std::invoke_result_t<F>;
  timeout_scope s(d);
  if constexpr (std::is_void_v<R>) {
    try {
      std::forward<F>(f)();
      return true;
    } catch (const timeout_error& e) {
      if (!e.from(s)) throw;
      return false;
    }
  } else {
    try {
      return std::optional<R>(std::forward<F>(f)());
    } catch (const timeout_error& e) {
      if (!e.from(s)) throw;
      return std::optional<R>();
    }
  }
}

}  // namespace stackless
