// SPDX-License-Identifier: Apache-2.0
// stackless/runtime/submission.hpp — what scheduler::submit() returns, and its admission policy.
//
// submit() is the door for work that comes from outside the runtime: a compute service's own
// threads, a host's callbacks. It differs from spawn() in two ways: a bounded admission queue
// (options::max_pending: submitted tasklets that have not started yet) whose overflow the caller
// handles (when_full), and a handle with std::future's vocabulary (get, wait, wait_for).
//
// Invariant (admission.cpp): a slot is taken before the tasklet exists and given back exactly
// once — when its function starts, or when the function is destroyed unrun (killed before it
// started, the scheduler shut down, spawn() threw). admitted<Fn> below carries the slot.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include "stackless/runtime/errors.hpp"
#include "stackless/runtime/tasklet.hpp"

namespace stackless {

/// when_full says what submit() does when options::max_pending submitted tasklets are still
/// waiting for their first run.
enum class when_full : std::uint8_t {
  block,       // wait for a slot (a tasklet parks, a plain thread blocks; obeys timeout_scope)
  fail,        // throw queue_full
  run_inline,  // run the function on the calling thread now, as a plain call (not a tasklet)
};

/// submission<R> is the handle submit() returns: get() waits for the result (a calling tasklet
/// parks, a plain thread blocks) and returns it or rethrows the exception. A submission that ran
/// inline (when_full::run_inline) is ready at once and has no tasklet.
template <class R>
class submission {
  using stored = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

 public:
  submission() = default;
  explicit submission(tasklet<R> t) noexcept : t_(std::move(t)) {}

  /// get() waits for the end and returns the value, or rethrows what the function threw; a
  /// killed tasklet's get() throws tasklet_killed (R not void). A move-only result is handed out
  /// once; a later get() throws usage_error.
  R get() {
    if (t_) return t_.join();
    if (!ran_inline_) detail::throw_usage("stackless: get() on an empty submission");
    if (error_) std::rethrow_exception(error_);
    if constexpr (!std::is_void_v<R>) {
      if constexpr (std::is_copy_constructible_v<R>) {
        return *value_;
      } else {
        if (!value_)
          detail::throw_usage("stackless: get(): the move-only result was already taken");
        R r = std::move(*value_);
        value_.reset();
        return r;
      }
    }
  }
  /// wait() waits for the end without taking the result.
  void wait() {
    if (t_) t_.join_until(std::chrono::steady_clock::time_point::max());
  }
  /// wait_for() / wait_until(): true once the work has ended (then get() returns at once).
  template <class Rep, class P>
  bool wait_for(std::chrono::duration<Rep, P> d) {
    return !t_ || t_.join_for(d);
  }
  template <class C, class D>
  bool wait_until(std::chrono::time_point<C, D> tp) {
    return !t_ || t_.join_until(tp);
  }
  /// ready(): the work has ended.
  bool ready() const noexcept { return t_ ? !t_.alive() : ran_inline_; }
  bool valid() const noexcept { return t_ || ran_inline_; }
  /// ran_inline(): when_full::run_inline ran the function on the submitting thread.
  bool ran_inline() const noexcept { return ran_inline_; }
  /// handle() is the tasklet (to kill it, name it, or join it as a tasklet); empty if it ran
  /// inline.
  tasklet<R>& handle() noexcept { return t_; }

  // Internal: when_full::run_inline.
  template <class F>
  static submission run_here(F&& f) {
    submission s;
    s.ran_inline_ = true;
    try {
      if constexpr (std::is_void_v<R>)
        std::invoke(std::forward<F>(f));
      else
        s.value_.emplace(std::invoke(std::forward<F>(f)));
    } catch (const tasklet_exit&) {
      throw;  // the calling tasklet was killed: it must end, not store it
    } catch (...) {
      s.error_ = std::current_exception();
    }
    return s;
  }

 private:
  tasklet<R> t_;
  bool ran_inline_ = false;
  std::optional<stored> value_;
  std::exception_ptr error_;
};

namespace detail {

enum class admission : std::uint8_t { unlimited, slot, run_inline };
/// admit() takes a slot of options::max_pending for a submit() (admission.cpp): `unlimited`
/// when the option is 0, `slot` when one was taken (waiting for it under when_full::block),
/// `run_inline` when the queue is full and the caller asked for that. Throws scheduler_closed
/// once shutdown() has begun, queue_full under when_full::fail.
admission admit(scheduler_impl* s, when_full full);
/// admit_release() gives a slot back: to the first blocked submitter, or to the count.
void admit_release(scheduler_impl* s) noexcept;

/// admitted<Fn> is a submitted function holding its admission slot: released when the function
/// starts, or when it is destroyed without having run.
template <class Fn>
class admitted {
 public:
  template <class F>
  admitted(F&& f, scheduler_impl* s) : f_(std::forward<F>(f)), s_(s) {}
  admitted(admitted&& o) noexcept(std::is_nothrow_move_constructible_v<Fn>)
      : f_(std::move(o.f_)), s_(std::exchange(o.s_, nullptr)) {}
  admitted(const admitted&) = delete;
  admitted& operator=(const admitted&) = delete;
  admitted& operator=(admitted&&) = delete;
  ~admitted() {
    if (s_) admit_release(s_);
  }
  decltype(auto) operator()() {
    admit_release(std::exchange(s_, nullptr));
    return std::invoke(std::move(f_));
  }

 private:
  Fn f_;
  scheduler_impl* s_;
};

}  // namespace detail
}  // namespace stackless
