// SPDX-License-Identifier: Apache-2.0
// stackless/io/thread.hpp — stackless::thread: std::thread's interface whose body is a tasklet
// (stacklesslib's "threads will actually be tasklets"), for code templated on its thread type:
//
//   template <class Thread> void fan_out(...) { std::vector<Thread> ts; ...; for (auto& t : ts)
//   t.join(); } fan_out<std::thread>(...);        // OS threads fan_out<stackless::thread>(...); //
//   tasklets, from inside a tasklet
//
// What matches std::thread: the constructor (f and its arguments decay-copied, run with
// std::invoke), join(), detach(), joinable(), get_id(), swap(), hardware_concurrency(); join()
// of a thread that is not joinable throws std::system_error (errc::invalid_argument), of
// itself errc::resource_deadlock_would_occur; destroying or assigning over a joinable thread
// calls std::terminate(); an exception that escapes the body calls std::terminate().
// What differs: the body runs on the calling tasklet's scheduler (the constructor throws
// usage_error from a plain thread, unless given a scheduler first); join() parks the calling
// tasklet; a kill() of the body's tasklet (tasklet_handle()) ends it as usual. Blocking
// calls inside the body should be stackless's, or libc's with the hooks (hooks.hpp).
#pragma once

#include <compare>
#include <cstdint>
#include <exception>
#include <functional>
#include <ostream>
#include <system_error>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>

#include "stackless/runtime/errors.hpp"
#include "stackless/runtime/scheduler.hpp"
#include "stackless/runtime/tasklet.hpp"
#include "stackless/runtime/this_tasklet.hpp"

namespace stackless {

class thread {
 public:
  /// id identifies a thread's tasklet (std::thread::id's role): default-constructed it names no
  /// thread; ids compare, hash and print.
  class id {
   public:
    id() noexcept = default;
    explicit id(std::uint64_t v) noexcept : v_(v) {}
    std::uint64_t value() const noexcept { return v_; }
    friend bool operator==(id a, id b) noexcept { return a.v_ == b.v_; }
    friend auto operator<=>(id a, id b) noexcept { return a.v_ <=> b.v_; }
    friend std::ostream& operator<<(std::ostream& o, id i) { return o << i.v_; }

   private:
    std::uint64_t v_ = 0;
  };

  thread() noexcept = default;

  /// thread(f, args...) runs std::invoke(f, args...) in a new tasklet of the calling tasklet's
  /// scheduler. From a plain thread it throws usage_error: use thread(sched, f, args...).
  template <class F, class... A,
            class = std::enable_if_t<!std::is_same_v<std::remove_cvref_t<F>, thread> &&
                                     !std::is_same_v<std::remove_cvref_t<F>, scheduler>>>
  explicit thread(F&& f, A&&... a)
      : t_(stackless::spawn(body<std::decay_t<F>, std::decay_t<A>...>{
            std::forward<F>(f), std::tuple<std::decay_t<A>...>(std::forward<A>(a)...)})) {}

  /// thread(sched, f, args...) runs it in a new tasklet of `sched` (from any thread).
  template <class F, class... A>
  thread(scheduler& sched, F&& f, A&&... a)
      : t_(sched.spawn(body<std::decay_t<F>, std::decay_t<A>...>{
            std::forward<F>(f), std::tuple<std::decay_t<A>...>(std::forward<A>(a)...)})) {}

  thread(thread&& o) noexcept : t_(std::move(o.t_)) {}
  thread& operator=(thread&& o) noexcept {
    if (joinable()) std::terminate();  // as std::thread
    t_ = std::move(o.t_);
    return *this;
  }
  thread(const thread&) = delete;
  thread& operator=(const thread&) = delete;
  ~thread() {
    if (joinable()) std::terminate();  // as std::thread: join() or detach() first
  }

  bool joinable() const noexcept { return static_cast<bool>(t_); }
  id get_id() const noexcept { return t_ ? id(t_.id()) : id(); }

  /// join() waits for the body to end (parking a calling tasklet). Throws std::system_error:
  /// invalid_argument when not joinable, resource_deadlock_would_occur when joining itself.
  void join() {
    if (!joinable())
      throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                              "stackless::thread::join: not joinable");
    if (current_id() == get_id())
      throw std::system_error(std::make_error_code(std::errc::resource_deadlock_would_occur),
                              "stackless::thread::join: a thread cannot join itself");
    t_.join();
    t_ = tasklet<void>();
  }

  /// detach() lets the body run on without a handle.
  void detach() {
    if (!joinable())
      throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                              "stackless::thread::detach: not joinable");
    t_ = tasklet<void>();
  }

  void swap(thread& o) noexcept { std::swap(t_, o.t_); }
  friend void swap(thread& a, thread& b) noexcept { a.swap(b); }

  /// tasklet() is the body's tasklet (to kill() it, for instance); empty when not joinable.
  const tasklet<void>& tasklet_handle() const noexcept { return t_; }

  static unsigned hardware_concurrency() noexcept { return std::thread::hardware_concurrency(); }

  /// current_id() is the id of the calling tasklet's thread (every tasklet has one); id() on a
  /// plain thread.
  static id current_id() noexcept {
    try {
      return id(this_tasklet::id());
    } catch (...) {
      return id();
    }
  }

 private:
  template <class F, class... A>
  struct body {
    F f;
    std::tuple<A...> args;
    void operator()() {
      try {
        std::apply([this](A&... a) { std::invoke(std::move(f), std::move(a)...); }, args);
      } catch (const tasklet_exit&) {
        throw;  // a kill ends the tasklet as usual
      } catch (...) {
        std::terminate();  // as std::thread: an exception may not escape the body
      }
    }
  };

  tasklet<void> t_;
};

}  // namespace stackless

template <>
struct std::hash<stackless::thread::id> {
  std::size_t operator()(stackless::thread::id i) const noexcept {
    return std::hash<std::uint64_t>{}(i.value());
  }
};
