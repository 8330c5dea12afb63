// SPDX-License-Identifier: Apache-2.0
// stackless/runtime/detail/deadline.hpp — the one vocabulary for time in every blocking call.
// Internal: the names may change at any time.
//
// A deadline is a point of the steady clock in nanoseconds (std::int64_t). no_deadline means
// "wait forever". Every timed call of the library converts its duration or time point with
// deadline_after() / deadline_at(), which saturate: a duration too large for the clock
// (hours::max(), nanoseconds::max()) is no_deadline, a negative or zero one is "now", and no
// conversion overflows a signed integer.
#pragma once

#include <chrono>
#include <cstdint>
#include <type_traits>

namespace stackless::detail {

/// no_deadline is the deadline of a wait without one.
inline constexpr std::int64_t no_deadline = INT64_MAX;

/// now_ns() is the steady clock in nanoseconds (runtime/src/clock.cpp).
std::int64_t now_ns() noexcept;

/// clock_ns() is the time of the caller in nanoseconds: inside a tasklet (or a pump) of a
/// scheduler with options::clock = clock_source::host, that scheduler's host clock; elsewhere
/// now_ns(). Every deadline a tasklet computes comes from it (timeout.cpp).
std::int64_t clock_ns() noexcept;

/// saturating_ns() is d in nanoseconds, rounded up; 0 for d <= 0, no_deadline for anything over
/// 1e9 s (which ceil<nanoseconds> would overflow).
template <class Rep, class P>
constexpr std::int64_t saturating_ns(std::chrono::duration<Rep, P> d) noexcept {
  if (d <= d.zero()) return 0;
  if (std::chrono::duration<double>(d).count() > 1e9) return no_deadline;
  return std::chrono::ceil<std::chrono::nanoseconds>(d).count();
}

/// add_saturating() is now + d_ns, at most no_deadline; d_ns <= 0 gives now.
constexpr std::int64_t add_saturating(std::int64_t now, std::int64_t d_ns) noexcept {
  if (d_ns <= 0) return now;
  return d_ns >= no_deadline - now ? no_deadline : now + d_ns;
}

/// deadline_after() is now + d on the caller's clock (clock_ns()), saturating.
template <class Rep, class P>
std::int64_t deadline_after(std::chrono::duration<Rep, P> d) {
  return add_saturating(clock_ns(), saturating_ns(d));
}

/// deadline_at() is tp on the steady clock (other clocks: converted through their now()),
/// saturating: time_point::max() is no_deadline, time_point::min() is now.
template <class C, class D>
std::int64_t deadline_at(std::chrono::time_point<C, D> tp) {
  using tp_t = std::chrono::time_point<C, D>;
  if (tp == tp_t::max()) return no_deadline;
  if (tp == tp_t::min()) return clock_ns();
  if constexpr (std::is_same_v<C, std::chrono::steady_clock>) {
    const auto since = tp.time_since_epoch();
    if (since <= since.zero()) return 0;
    return saturating_ns(since);
  } else {
    const auto now = C::now();
    if (tp <= now) return clock_ns();
    return deadline_after(tp - now);
  }
}

}  // namespace stackless::detail
