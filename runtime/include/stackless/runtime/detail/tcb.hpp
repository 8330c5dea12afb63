// SPDX-License-Identifier: Apache-2.0
// stackless/runtime/detail/tcb.hpp — the public part of a tasklet's control block: what the
// header templates (spawn, tasklet<R>::join) need, and nothing else. Everything here is internal:
// the names may change at any time.
//
// A control block is one allocation in two parts: the runtime's private `tcb` (state, park door,
// context, queues, registry links: stackless/runtime/internal/tcb.hpp, not installed) and, right
// after it, the `tcb_base` that the spawn templates derive from (the callable, its arguments,
// the result). tcb_base::operator new makes room for the private part and constructs it; the
// runtime converts between the two with tcb_of() / base_of(). Public handles hold a `tcb*`,
// which they never dereference.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <source_location>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "stackless/runtime/detail/spinlock.hpp"

namespace stackless::detail {

class scheduler_impl;
class tcb;  // the runtime's private part (stackless/runtime/internal/tcb.hpp)

/// wake_reason is why a park ended. Exactly one waker wins a park (see park.cpp).
/// cancelled: a std::stop_token's stop request (only calls that took a token can get it).
enum class wake_reason : std::uint8_t { notified = 0, timeout = 1, interrupted = 2, cancelled = 3 };

/// waiter is one entry of a wait list. A tasklet's waiter lives in its tcb (never on its stack: a
/// waker on another thread must not touch a stack that may have moved or gone). A plain thread's
/// waiter lives on that thread's stack and is removed from every list before the wait returns.
/// A proxy waiter (`notify` set: when_any/when_all) calls notify instead of waking anyone; its
/// owner removes it from the list before it goes away.
struct waiter {
  waiter* next = nullptr;
  waiter* prev = nullptr;
  tcb* t = nullptr;                                // tasklet waiter
  std::uint64_t gen = 0;                           //   the park generation it was registered for
  std::atomic<std::uint32_t>* word = nullptr;      // plain-thread waiter: its futex word
  void (*notify)(waiter*, wake_reason) = nullptr;  // proxy waiter: called (under the list's lock)
  std::uintptr_t data = 0;  // what the list's owner keeps per waiter (a count…)
  bool linked = false;      // guarded by the lock of the list it is on
};

/// tcb_base is what a spawn template allocates and derives from (tcb_impl below).
class tcb_base {
 public:
  tcb_base() noexcept = default;
  tcb_base(const tcb_base&) = delete;
  tcb_base& operator=(const tcb_base&) = delete;
  virtual ~tcb_base();

  /// body() runs the tasklet's function and stores its result. It may throw.
  virtual void body() = 0;
  /// discard() destroys the function and its arguments. Called by the tasklet itself when it
  /// ends (ran or not): captured resources go when the tasklet ends, not when its last handle
  /// does — and a chain of tasklets each holding the previous one's handle cannot turn into a
  /// chain of recursive destructors.
  virtual void discard() noexcept = 0;

  // The allocation holds the runtime's private tcb in front of this object (alloc.cpp): spawn
  // and the end of a tasklet are the hottest paths, so blocks come from a per-worker cache.
  static void* operator new(std::size_t size);
  static void operator delete(void* p, std::size_t size) noexcept;

  bool result_taken = false;  // a move-only result was handed to a joiner (join's thread only)
};

template <class R>
class tcb_result : public tcb_base {
 public:
  std::optional<R> value;
};
template <>
class tcb_result<void> : public tcb_base {};

template <class R, class F, class... A>
class tcb_impl final : public tcb_result<R> {
 public:
  template <class F2, class... A2>
  explicit tcb_impl(F2&& f, A2&&... a) {
    call_.emplace(std::forward<F2>(f), std::tuple<A...>(std::forward<A2>(a)...));
  }
  void body() override {
    auto& c = *call_;
    if constexpr (std::is_void_v<R>) {
      std::apply(std::move(c.first), std::move(c.second));
    } else {
      this->value.emplace(std::apply(std::move(c.first), std::move(c.second)));
    }
  }
  void discard() noexcept override { call_.reset(); }

 private:
  std::optional<std::pair<F, std::tuple<A...>>> call_;
};

/// base_of() is the public part of t's control block (for tasklet<R>::join's result).
tcb_base* base_of(tcb* t) noexcept;
/// tasklet_id() is t's id (tasklet::id()).
std::uint64_t tasklet_id(const tcb* t) noexcept;

// Out-of-line operations on a tcb (tasklet.cpp); the handle templates call them.
void handle_acquire(tcb*) noexcept;
void handle_release(tcb*) noexcept;
void join_wait(tcb*);                               // waits for the end; may throw deadlock_error
bool join_wait_until(tcb*, std::int64_t deadline);  // false on timeout (deadline.hpp)
void join_rethrow(tcb*, bool has_value);            // rethrows error; tasklet_killed if no value
void kill(tcb*, bool pending);
void raise(tcb*, std::exception_ptr, bool pending);
void pause(tcb*);
void resume(tcb*);
/// joiner_link() puts a (proxy) waiter on t's joiner list: woken when t ends. False, and not
/// linked, when t has already ended. joiner_unlink() takes it off (false: t's end took it).
bool joiner_link(tcb* t, waiter* w);
bool joiner_unlink(tcb* t, waiter* w);
bool is_alive(const tcb*) noexcept;
bool is_blocked(const tcb*) noexcept;
bool is_scheduled(const tcb*) noexcept;
bool is_paused(const tcb*) noexcept;
std::string get_name(tcb*);
void set_name(tcb*, std::string);
[[noreturn]] void throw_usage(const char* what);

// Scheduling entry points.
scheduler_impl* current_scheduler() noexcept;    // null outside a tasklet
tcb* current_tcb() noexcept;                     // null outside a tasklet
bool spinning_may_help() noexcept;               // another worker (or thread) may
                                                 //   release what we wait for now
const void* self_token() noexcept;               // the calling tasklet, or a token of
                                                 //   the plain thread (lock owners)
tcb* submit(scheduler_impl*, tcb_base*,          // a new tasklet (one handle): make it
            const std::source_location& where);  //   runnable; returns its control block.
                                                 //   `where`: the spawn() call, for reports

}  // namespace stackless::detail
