// SPDX-License-Identifier: Apache-2.0
// tests/sync/test_timeout_scope_fixture.hpp — what the timeout_scope tests share
// (test_timeout_scope.cpp: every blocking call inside a scope; test_timeout_scope_rules.cpp:
// nesting, whose scope, kill, races), on top of channel_fixture.hpp:
//
// - run_in(s, f) / in_scope(d, f) / in_expired_scope(f): run f inside a scope and tell how it
//   ended: kReturned, kThis (a timeout_error naming that scope, thrown once its deadline had
//   passed), or what else;
// - kShort (a scope that ends during the wait), kLong (never ends during a test);
// - scope_top(): the calling tasklet's (or thread's) innermost scope;
// - held_mutex: a holder tasklet keeps a mutex until let_go().
#pragma once

#include <chrono>
#include <exception>
#include <mutex>
#include <string>
#include <utility>

#include "channel_fixture.hpp"

namespace stackless_test::timeout_scope_test {

using sl::timeout_error;
using sl::timeout_scope;
using sl::with_timeout;
using clock_type = std::chrono::steady_clock;

inline const std::string kThis = "timeout_error of this scope";
inline const std::string kReturned = "returned";

/// run_in() runs f (inside scope s, which the caller made) and tells how it ended: kReturned,
/// kThis (a timeout_error naming s, thrown once s's deadline had passed), or what else.
template <class F>
std::string run_in(const timeout_scope& s, F&& f) {
  try {
    f();
  } catch (const timeout_error& e) {
    if (!e.from(s)) return "timeout_error of another scope";
    if (!s.expired()) return "timeout_error before the scope's deadline";
    return kThis;
  } catch (const std::exception& e) {
    return std::string("exception: ") + e.what();
  }
  return kReturned;
}

/// in_scope() runs f inside a fresh timeout_scope of d: see run_in().
template <class F>
std::string in_scope(std::chrono::nanoseconds d, F&& f) {
  timeout_scope s(d);
  return run_in(s, std::forward<F>(f));
}

/// in_expired_scope() runs f inside a scope whose deadline has already passed.
template <class F>
std::string in_expired_scope(F&& f) {
  timeout_scope s(clock_type::now() - 1ms);
  EXPECT_TRUE(s.expired());
  return run_in(s, std::forward<F>(f));
}

inline constexpr auto kShort = 20ms;                  // a scope that ends during the wait
inline constexpr auto kLong = std::chrono::hours(1);  // never ends during a test

/// scope_top() is the calling tasklet's (or thread's) innermost scope.
inline const timeout_scope* scope_top() { return sl::detail::scope_top(); }

// A holder tasklet keeps m until released.
struct held_mutex {
  sl::mutex m;
  sl::event held, release;
  tasklet<void> holder;
  explicit held_mutex(sl::scheduler& s, sl::mutex_policy p = sl::mutex_policy::fair) : m(p) {
    holder = s.spawn([this] {
      std::lock_guard<sl::mutex> g(m);
      held.set();
      release.wait();
    });
    held.wait();
  }
  void let_go() {
    release.set();
    holder.join();
  }
};

}  // namespace stackless_test::timeout_scope_test
