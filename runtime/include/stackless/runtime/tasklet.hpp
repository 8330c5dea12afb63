// SPDX-License-Identifier: Apache-2.0
// stackless/runtime/tasklet.hpp — tasklet<R>, the handle to a tasklet.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "stackless/runtime/detail/deadline.hpp"
#include "stackless/runtime/detail/tcb.hpp"
#include "stackless/runtime/errors.hpp"

namespace stackless {

/// tasklet<R> is a handle to a tasklet whose function returns R. Copies share the tasklet;
/// dropping the last handle detaches it (it runs on; an exception that escapes it then goes to
/// options::on_error). Any tasklet<R> converts to tasklet<void>, a view that can do everything but
/// return the value. An empty handle (default constructed, moved from) throws usage_error.
template <class R = void>
class tasklet {
 public:
  tasklet() noexcept = default;
  tasklet(const tasklet& o) noexcept : t_(o.t_) {
    if (t_) detail::handle_acquire(t_);
  }
  tasklet(tasklet&& o) noexcept : t_(std::exchange(o.t_, nullptr)) {}
  template <class U, class = std::enable_if_t<std::is_void_v<R> && !std::is_void_v<U>>>
  tasklet(const tasklet<U>& o) noexcept : t_(o.raw()) {  // NOLINT: implicit view as tasklet<void>
    if (t_) detail::handle_acquire(t_);
  }
  tasklet& operator=(tasklet o) noexcept {
    std::swap(t_, o.t_);
    return *this;
  }
  ~tasklet() {
    if (t_) detail::handle_release(t_);
  }

  /// join() waits until the tasklet has ended — parking the calling tasklet, or blocking a plain
  /// thread — then returns its value or rethrows its exception. A killed tasklet<void> joins
  /// normally; a killed tasklet<R> throws tasklet_killed. Joining yourself throws usage_error; a
  /// join that can never finish throws deadlock_error. A copyable result can be joined any
  /// number of times; a move-only one is handed out once (later joins throw usage_error).
  R join() {
    detail::join_wait(need());
    return result();
  }

  /// join_for() waits at most `d` for the tasklet to end; true if it has (then join() returns at
  /// once).
  template <class Rep, class P>
  bool join_for(std::chrono::duration<Rep, P> d) {
    return detail::join_wait_until(need(), detail::deadline_after(d));
  }
  /// join_until() waits until `tp` at most; true if the tasklet has ended.
  template <class C, class D>
  bool join_until(std::chrono::time_point<C, D> tp) {
    return detail::join_wait_until(need(), detail::deadline_at(tp));
  }

  /// kill() raises tasklet_exit in the tasklet at its suspension point and unblocks it if it is
  /// parked, paused or not yet started (a tasklet that never started ends without running). It
  /// returns once the tasklet has ended — parking or blocking the caller meanwhile — or at once
  /// with pending = true. Killing a dead tasklet does nothing; killing yourself throws
  /// tasklet_exit right here.
  void kill(bool pending = false) { detail::kill(need(), pending); }

  /// raise_exception() delivers `e` the same way as kill() delivers tasklet_exit, once. Returns
  /// when it is queued (pending = true) or after giving the target a chance to run (the calling
  /// tasklet yields). Raising in a dead tasklet throws usage_error.
  void raise_exception(std::exception_ptr e, bool pending = false) {
    detail::raise(need(), std::move(e), pending);
  }

  /// pause() takes a runnable tasklet out of the run queue (Stackless remove()): it stays alive and
  /// does not run until resume(). A tasklet running on another worker is paused at its next
  /// switch; pause() waits for that (yielding the calling tasklet, or the calling thread). Pausing
  /// a blocked or dead tasklet, or yourself, throws usage_error; a killed one is never paused.
  void pause() { detail::pause(need()); }
  /// resume() puts a paused tasklet back in the run queue (Stackless insert()). Resuming a dead
  /// tasklet throws usage_error; resuming a runnable or blocked one does nothing.
  void resume() { detail::resume(need()); }

  /// alive(): not yet ended.
  bool alive() const noexcept { return t_ && detail::is_alive(t_); }
  /// blocked(): parked (waiting on a join, channel, lock, timer, …).
  bool blocked() const noexcept { return t_ && detail::is_blocked(t_); }
  /// scheduled(): runnable, running or blocked (Stackless: runnable or blocked).
  bool scheduled() const noexcept { return t_ && detail::is_scheduled(t_); }
  /// paused(): alive, but neither scheduled nor blocked.
  bool paused() const noexcept { return t_ && detail::is_paused(t_); }
  /// id(): unique within the process, never 0.
  std::uint64_t id() const { return detail::tasklet_id(need()); }
  std::string name() const { return detail::get_name(need()); }
  void set_name(std::string n) { detail::set_name(need(), std::move(n)); }
  explicit operator bool() const noexcept { return t_ != nullptr; }
  friend bool operator==(const tasklet& a, const tasklet& b) noexcept { return a.t_ == b.t_; }

  // Internal: adopt a tcb reference (the caller has already counted the handle).
  struct adopt_t {};
  tasklet(detail::tcb* t, adopt_t) noexcept : t_(t) {}
  detail::tcb* raw() const noexcept { return t_; }

 private:
  detail::tcb* need() const {
    if (!t_) detail::throw_usage("stackless: operation on an empty tasklet handle");
    return t_;
  }
  R result() {
    if constexpr (std::is_void_v<R>) {
      detail::join_rethrow(t_, true);
    } else {
      auto* r = static_cast<detail::tcb_result<R>*>(detail::base_of(t_));
      detail::join_rethrow(t_, r->value.has_value());
      if constexpr (std::is_copy_constructible_v<R>) {
        return *r->value;
      } else {
        if (std::exchange(r->result_taken, true))
          detail::throw_usage("stackless: join(): the move-only result was already taken");
        return std::move(*r->value);
      }
    }
  }

  detail::tcb* t_ = nullptr;
};

}  // namespace stackless
