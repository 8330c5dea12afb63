// SPDX-License-Identifier: Apache-2.0
// stackless/sync/future.hpp — promise<T> / future<T> for tasklets and plain threads
// (stacklesslib futures), and when_any / when_all over futures and tasklets (stacklesslib
// wait.any / wait.all).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <future>  // std::future_error, std::future_errc, std::future_status
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <vector>

#include "stackless/runtime/tasklet.hpp"
#include "stackless/runtime/timeout.hpp"
#include "stackless/sync/detail/waitq.hpp"

namespace stackless {

namespace detail {

/// future_state_base is the shared state of a promise and its future (sync/src/future.cpp).
struct future_state_base : gate {  // gate::q holds waiters and when_any/when_all proxies
  std::atomic<int> refs{1};        // the promise's; get_future() adds the future's
                                   // gate::lk guards q, error, and the value before `ready`
  std::atomic<bool> ready{false};  // release-stored after the value/error, under lk
  std::exception_ptr error;
  bool retrieved = false;  // get_future() was called
  virtual ~future_state_base() = default;

  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  bool is_ready() const noexcept { return ready.load(std::memory_order_acquire); }
  /// begin_set() locks and checks that nothing was set yet (future_error otherwise);
  /// finish_set() publishes and wakes every waiter.
  void begin_set();
  void finish_set() noexcept;
  /// wait() until ready; false on timeout at `own`.
  bool wait(std::int64_t own, const std::stop_token* st);
};

template <class T>
struct future_state : future_state_base {
  std::optional<T> value;
};
template <>
struct future_state<void> : future_state_base {};

/// when_source is one thing when_any/when_all waits for: a tasklet (its end) or a future state
/// (ready).
struct when_source {
  tcb* t = nullptr;
  future_state_base* f = nullptr;
};
/// when_wait() waits until any (all = false) or all of srcs are done; returns the index of the
/// first one done (any) or 0 (all), or SIZE_MAX on timeout at `own`.
std::size_t when_wait(const when_source* srcs, std::size_t n, bool all, std::int64_t own);

}  // namespace detail

template <class T>
class promise;

/// future<T> receives the value (or exception) its promise sets. get() parks the calling tasklet
/// (blocks a plain thread) until it is ready, then returns the value (moved out: get() may be
/// called once) or rethrows the exception; std::future_error(broken_promise) if the promise was
/// destroyed unset. wait / wait_for / wait_until as std::future.
template <class T>
class future {
 public:
  future() noexcept = default;
  future(future&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  future& operator=(future&& o) noexcept {
    if (this != &o) {
      if (s_) s_->release();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  ~future() {
    if (s_) s_->release();
  }

  bool valid() const noexcept { return s_ != nullptr; }
  bool is_ready() const { return need()->is_ready(); }
  void wait() const { need()->wait(detail::no_deadline, nullptr); }
  /// wait(st): a stop request ends the wait with operation_cancelled.
  void wait(std::stop_token st) const { need()->wait(detail::no_deadline, &st); }
  template <class Rep, class P>
  std::future_status wait_for(std::chrono::duration<Rep, P> d) const {
    return need()->wait(detail::deadline_after(d), nullptr) ? std::future_status::ready
                                                            : std::future_status::timeout;
  }
  template <class C, class D>
  std::future_status wait_until(std::chrono::time_point<C, D> tp) const {
    return need()->wait(detail::deadline_at(tp), nullptr) ? std::future_status::ready
                                                          : std::future_status::timeout;
  }
  T get() {
    wait();
    auto* s = static_cast<detail::future_state<T>*>(s_);
    struct drop {  // the future is invalid after get(), as std::future
      future* f;
      ~drop() {
        f->s_->release();
        f->s_ = nullptr;
      }
    } d{this};
    if (s->error) std::rethrow_exception(s->error);
    if constexpr (!std::is_void_v<T>) return std::move(*s->value);
  }

  // Internal.
  detail::future_state_base* state() const noexcept { return s_; }

 private:
  friend class promise<T>;
  explicit future(detail::future_state_base* s) noexcept : s_(s) {}
  detail::future_state_base* need() const {
    if (!s_) throw std::future_error(std::future_errc::no_state);
    return s_;
  }
  detail::future_state_base* s_ = nullptr;
};

/// promise<T> sets the value or exception of its future once. Destroying it unset makes the
/// future throw std::future_error(broken_promise). set_value() / set_exception() never wait.
template <class T>
class promise {
 public:
  promise() : s_(new detail::future_state<T>) {}
  promise(promise&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  promise& operator=(promise&& o) noexcept {
    if (this != &o) {
      abandon();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  ~promise() { abandon(); }

  /// get_future() may be called once (std::future_error(future_already_retrieved) after).
  future<T> get_future() {
    auto* s = need();
    s->lk.lock();
    bool again = std::exchange(s->retrieved, true);
    s->lk.unlock();
    if (again) throw std::future_error(std::future_errc::future_already_retrieved);
    s->refs.fetch_add(1, std::memory_order_relaxed);  // the future's share; the promise holds one
    return future<T>(s);
  }
  template <class U = T, class = std::enable_if_t<!std::is_void_v<U>>>
  void set_value(U v) {
    auto* s = static_cast<detail::future_state<T>*>(need());
    s->begin_set();
    try {
      s->value.emplace(std::move(v));
    } catch (...) {
      s->error = std::current_exception();
    }
    s->finish_set();
  }
  template <class U = T, class = std::enable_if_t<std::is_void_v<U>>>
  void set_value() {
    auto* s = need();
    s->begin_set();
    s->finish_set();
  }
  void set_exception(std::exception_ptr e) {
    if (!e) throw std::invalid_argument("stackless: promise::set_exception(nullptr)");
    auto* s = need();
    s->begin_set();
    s->error = std::move(e);
    s->finish_set();
  }

 private:
  detail::future_state_base* need() const {
    if (!s_) throw std::future_error(std::future_errc::no_state);
    return s_;
  }
  void abandon() noexcept {
    if (!s_) return;
    if (!s_->is_ready()) {
      try {
        s_->begin_set();
        s_->error = std::make_exception_ptr(std::future_error(std::future_errc::broken_promise));
        s_->finish_set();
      } catch (...) {  // set meanwhile: nothing to break
      }
    }
    s_->release();
    s_ = nullptr;
  }
  detail::future_state_base* s_;
};

// ---- when_any / when_all ----------------------------------------------------------------------

namespace detail {
template <class T>
when_source when_source_of(const future<T>& f) {
  if (!f.valid()) throw std::future_error(std::future_errc::no_state);
  return {nullptr, f.state()};
}
template <class R>
when_source when_source_of(const tasklet<R>& t) {
  if (!t) throw usage_error("stackless: when_any/when_all on an empty tasklet handle");
  return {t.raw(), nullptr};
}
template <class T>
concept when_waitable = requires(const T& x) {
  when_source_of(x);
};
template <class Range>
std::vector<when_source> when_sources_of(const Range& r) {
  std::vector<when_source> v;
  for (const auto& x : r) v.push_back(when_source_of(x));
  return v;
}
}  // namespace detail

/// when_any(a, b, …) waits until one of the futures is ready or one of the tasklets has ended,
/// and returns its index (the lowest one if several already are). Nothing is consumed: get() /
/// join() it afterwards. Parks the calling tasklet (blocks a plain thread); kill, timeout_scope
/// apply as to any wait.
template <detail::when_waitable... W>
std::size_t when_any(const W&... w) {
  static_assert(sizeof...(W) > 0, "when_any() needs something to wait for");
  std::array<detail::when_source, sizeof...(W)> s{detail::when_source_of(w)...};
  return detail::when_wait(s.data(), s.size(), false, detail::no_deadline);
}
/// when_any_for(d, a, b, …): as when_any; std::nullopt when nothing was done within d.
template <class Rep, class P, detail::when_waitable... W>
std::optional<std::size_t> when_any_for(std::chrono::duration<Rep, P> d, const W&... w) {
  std::array<detail::when_source, sizeof...(W)> s{detail::when_source_of(w)...};
  std::size_t i = detail::when_wait(s.data(), s.size(), false, detail::deadline_after(d));
  return i == SIZE_MAX ? std::nullopt : std::optional<std::size_t>(i);
}
/// when_any over a range (a std::vector of futures or tasklets). An empty range is a usage_error.
template <class Range>
requires(!detail::when_waitable<Range>) auto when_any(const Range& r)
    -> decltype(std::begin(r), std::size_t{}) {
  auto s = detail::when_sources_of(r);
  if (s.empty()) throw usage_error("stackless: when_any() of an empty range");
  return detail::when_wait(s.data(), s.size(), false, detail::no_deadline);
}

/// when_all(a, b, …) waits until every future is ready and every tasklet has ended.
template <detail::when_waitable... W>
void when_all(const W&... w) {
  std::array<detail::when_source, sizeof...(W)> s{detail::when_source_of(w)...};
  detail::when_wait(s.data(), s.size(), true, detail::no_deadline);
}
/// when_all_for(d, a, b, …): as when_all; false when not everything was done within d.
template <class Rep, class P, detail::when_waitable... W>
bool when_all_for(std::chrono::duration<Rep, P> d, const W&... w) {
  std::array<detail::when_source, sizeof...(W)> s{detail::when_source_of(w)...};
  return detail::when_wait(s.data(), s.size(), true, detail::deadline_after(d)) != SIZE_MAX;
}
/// when_all over a range.
template <class Range>
requires(!detail::when_waitable<Range>) auto when_all(const Range& r)
    -> decltype(std::begin(r), void()) {
  auto s = detail::when_sources_of(r);
  detail::when_wait(s.data(), s.size(), true, detail::no_deadline);
}

}  // namespace stackless
