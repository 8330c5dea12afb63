// SPDX-License-Identifier: Apache-2.0
// stackless/sync/channel.hpp — channels (Stackless's channel, with capacities) and select().
//
//   stackless::channel<int> ch;                     // rendezvous, as in Stackless
//   spawn([ch]() mutable { for (int i = 0; i < 3; ++i) ch.send(i); ch.close(); });
//   for (int v : ch) use(v);                        // receives 0, 1, 2, then ends
//
// Semantics (Stackless Python's, see ../shared/STACKLESS.md, plus Go's capacities and select):
//  - capacity 0 is a rendezvous: send() parks until a receiver takes the value. capacity N buffers
//    N values; unbounded() never parks a sender. Values are moved, never copied; move-only types
//    work.
//  - preference: at a rendezvous, which side resumes first (Stackless). With `receiver` (the
//    default) a send() that finds a receiver parked switches to it at once (it runs next; the
//    sender stays runnable, at the back of its worker's run queue); a receive() that finds a
//    sender parked takes its value without switching, and the sender goes to the back of the run
//    queue. `sender` is the mirror image; with `none` the caller always continues and the partner
//    goes to the back of the run queue. On several workers "at once" means "next on this worker".
//    Preference is about rendezvous: on a buffered or unbounded channel (Go's, not Stackless's) a
//    call that wakes a parked partner continues and the partner runs next, as in Go — so a
//    producer fills the buffer before it switches.
//  - A select() with a send and a receive case on one channel never pairs with itself (as Go);
//    such a select polls for its partner (50 µs, doubling to 10 ms) instead of only parking.
//  - close(): from then on no operation may park. Values already buffered and the values of
//    senders already parked are still received; receivers parked at close time wake with
//    channel_closed (Stackless left them parked: here a range-for ends); a send after close
//    throws channel_closed; closed() is closing() with nothing left to receive.
//  - kill() and raise_exception() unblock a tasklet parked in send() or receive(); the value of
//    an interrupted send is not delivered. Every value sent successfully is received exactly once.
//  - Every operation works from a plain OS thread too: the thread blocks on a futex.
//
// The engine is lock-free (Koval, Alistarh, Elizarov, PPoPP'23): see sync/src/chan_engine.hpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <iterator>
#include <new>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "stackless/runtime/detail/deadline.hpp"
#include "stackless/sync/detail/channel_core.hpp"

namespace stackless {

/// channel_closed is thrown by an operation that would have to wait on a closed channel, by a
/// send() after close(), and by a receive() once the channel is closed and drained.
class channel_closed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// preference decides who resumes first at a rendezvous (Stackless's channel.preference).
enum class preference { receiver = -1, none = 0, sender = 1 };

namespace detail {
[[noreturn]] inline void throw_closed(const char* what) { throw channel_closed(what); }

/// raw_value is storage for one T that the engine constructs.
template <class T>
struct raw_value {
  alignas(T) unsigned char bytes[sizeof(T)];
  void* ptr() noexcept { return bytes; }
  T take() {
    T* p = std::launder(reinterpret_cast<T*>(bytes));
    T v(std::move(*p));
    p->~T();
    return v;
  }
};
}  // namespace detail

/// channel<T> is a handle on a channel; copies share it, and the channel lives while a handle or
/// a parked operation uses it.
template <class T>
class channel {
  static_assert(std::is_move_constructible_v<T>, "channel<T> needs a move-constructible T");
  static_assert(std::is_nothrow_destructible_v<T>, "channel<T> needs a nothrow-destructible T");
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "channel<T> needs a nothrow move constructor (values move in and out of cells "
                "that other threads are waiting on)");

 public:
  using value_type = T;

  /// channel() makes a channel: capacity 0 is a rendezvous (the default), N buffers N values.
  explicit channel(std::size_t capacity = 0)
      : core_(detail::chan_create(&detail::elem_ops_of<T>, capacity, false)) {}
  /// unbounded() makes a channel whose send() never parks.
  static channel unbounded() {
    return channel(adopt, detail::chan_create(&detail::elem_ops_of<T>, 0, true));
  }

  channel(const channel& o) noexcept : core_(o.core_) { detail::chan_acquire(core_); }
  channel(channel&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
  channel& operator=(channel o) noexcept {
    std::swap(core_, o.core_);
    return *this;
  }
  ~channel() {
    if (core_) detail::chan_release(core_);
  }

  /// send() delivers v: it parks the calling tasklet (or blocks a plain thread) until a receiver
  /// takes it, or until there is room in the buffer. Throws channel_closed after close().
  void send(T v) { send_impl(&v, false, true, detail::no_deadline); }
  /// receive() takes the next value, parking until there is one. Throws channel_closed when the
  /// channel is closed and drained, or the exception a sender passed to send_exception().
  T receive() {
    detail::raw_value<T> r;
    if (receive_impl(r.ptr(), true, detail::no_deadline) != detail::op_status::ok)
      detail::throw_closed("stackless: receive() on a closed channel");
    return r.take();
  }
  /// try_send() sends v only if that needs no waiting (a receiver is parked, or the buffer has
  /// room): true, and v is moved-from; false otherwise, and v is untouched. Throws
  /// channel_closed after close(). It may fail spuriously while other calls are in flight — a
  /// receive that took a value but has not yet slid the buffer forward, or another failed
  /// try_send whose unused cell the buffer has not yet skipped — the price of the lock-free
  /// design (a retry, or send_for(), sees the room). Every other call is linearizable.
  bool try_send(T& v) { return send_impl(&v, false, false, 0); }
  /// try_receive() takes a value only if one is ready. Throws channel_closed when the channel is
  /// closed and drained.
  std::optional<T> try_receive() { return receive_opt(false, 0); }
  /// send_for() is send() that gives up after d: false, and v keeps its value.
  template <class Rep, class P>
  bool send_for(T& v, std::chrono::duration<Rep, P> d) {
    return send_impl(&v, false, true, detail::deadline_after(d));
  }
  template <class C, class D>
  bool send_until(T& v, std::chrono::time_point<C, D> tp) {
    return send_impl(&v, false, true, detail::deadline_at(tp));
  }
  /// receive_for() is receive() that gives up after d: std::nullopt.
  template <class Rep, class P>
  std::optional<T> receive_for(std::chrono::duration<Rep, P> d) {
    return receive_opt(true, detail::deadline_after(d));
  }
  template <class C, class D>
  std::optional<T> receive_until(std::chrono::time_point<C, D> tp) {
    return receive_opt(true, detail::deadline_at(tp));
  }
  /// send_exception() sends e like a value (parking the same way): the receiver gets it thrown
  /// from receive() (Stackless's send_exception). A null e is std::invalid_argument (the receiver
  /// would have nothing to throw and no value to return).
  void send_exception(std::exception_ptr e) {
    if (!e)
      throw std::invalid_argument(
          "stackless: channel::send_exception(nullptr): there is no exception to send");
    send_impl(&e, true, true, detail::no_deadline);
  }

  /// close() stops the channel from growing (Stackless): see the top of this file.
  void close() { detail::chan_close(core_); }
  /// closing() is true once close() was called.
  bool closing() const noexcept { return detail::chan_closing(core_); }
  /// closed() is closing() with nothing left to receive.
  bool closed() const noexcept { return detail::chan_closed(core_); }
  /// balance() is the number of senders parked (> 0) or minus the number of receivers parked (<
  /// 0), Stackless's channel.balance.
  int balance() const noexcept { return detail::chan_balance(core_); }
  void set_preference(preference p) noexcept {
    detail::chan_set_preference(core_, static_cast<int>(p));
  }
  preference get_preference() const noexcept {
    return static_cast<preference>(detail::chan_get_preference(core_));
  }
  /// capacity() is the buffer size given at construction; SIZE_MAX for unbounded().
  std::size_t capacity() const noexcept { return detail::chan_capacity(core_); }

  friend bool operator==(const channel& a, const channel& b) noexcept { return a.core_ == b.core_; }

  /// iterator receives until the channel is closed and drained: `for (T v : ch)`.
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = T*;
    using reference = T&;
    iterator() = default;
    explicit iterator(channel* c) : ch_(c) { next(); }
    T& operator*() { return *cur_; }
    T* operator->() { return &*cur_; }
    iterator& operator++() {
      next();
      return *this;
    }
    void operator++(int) { next(); }
    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept {
      return !it.cur_;
    }

   private:
    void next() {
      cur_.reset();
      detail::raw_value<T> r;
      if (ch_->receive_impl(r.ptr(), true, detail::no_deadline) == detail::op_status::ok)
        cur_.emplace(r.take());
    }
    channel* ch_ = nullptr;
    std::optional<T> cur_;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() noexcept { return {}; }

  detail::chan_core* core() const noexcept { return core_; }

 private:
  struct adopt_t {};
  static constexpr adopt_t adopt{};
  channel(adopt_t, detail::chan_core* c) noexcept
      : core_(c) {}  // a tag: channel<int>(0) is a capacity

  bool send_impl(void* src, bool is_exc, bool block, std::int64_t deadline) {
    switch (detail::chan_send(core_, src, is_exc, block, deadline)) {
      case detail::op_status::ok:
        return true;
      case detail::op_status::closed:
        detail::throw_closed("stackless: send() on a closed channel");
      default:
        return false;
    }
  }
  detail::op_status receive_impl(void* dst, bool block, std::int64_t deadline) {
    return detail::chan_receive(core_, dst, block, deadline);
  }
  std::optional<T> receive_opt(bool block, std::int64_t deadline) {
    detail::raw_value<T> r;
    switch (receive_impl(r.ptr(), block, deadline)) {
      case detail::op_status::ok:
        return std::optional<T>(r.take());
      case detail::op_status::closed:
        detail::throw_closed("stackless: receive() on a closed channel");
      default:
        return std::nullopt;
    }
  }

  detail::chan_core* core_;
};

// ---- select ----------------------------------------------------------------------------------

namespace detail {
template <class T, class F>
struct recv_case {
  channel<T>* ch;
  F f;
  raw_value<T> r;
  void fill(select_case& c) { c = select_case{select_case::kind_t::recv, ch->core(), r.ptr()}; }
  void run(select_case& c) {
    if constexpr (std::is_invocable_v<F&, std::optional<T>>) {
      if (c.closed)
        f(std::optional<T>());
      else
        f(std::optional<T>(r.take()));
    } else {
      if (c.closed) throw_closed("stackless: select() received from a closed channel");
      f(r.take());
    }
  }
};
template <class T, class F>
struct send_case {
  channel<T>* ch;
  T v;
  F f;
  void fill(select_case& c) { c = select_case{select_case::kind_t::send, ch->core(), &v}; }
  void run(select_case&) { f(); }
};
template <class F>
struct after_case {
  std::int64_t deadline;
  F f;
  void fill(select_case& c) {
    c = select_case{select_case::kind_t::after};
    c.deadline = deadline;
  }
  void run(select_case&) { f(); }
};
template <class F>
struct default_case_t {
  F f;
  void fill(select_case& c) { c = select_case{select_case::kind_t::fallback}; }
  void run(select_case&) { f(); }
};
}  // namespace detail

/// on_receive() is a select() case that receives from ch and calls f(value). If f accepts a
/// std::optional<T>, a closed and drained channel calls f(std::nullopt); otherwise select()
/// throws channel_closed then.
template <class T, class F>
detail::recv_case<T, F> on_receive(channel<T>& ch, F f) {
  return {&ch, std::move(f), {}};
}
/// on_send() is a select() case that sends v on ch and then calls f(). v is moved into the case;
/// when another case happens it is destroyed unsent.
template <class T, class U, class F>
detail::send_case<T, F> on_send(channel<T>& ch, U&& v, F f) {
  return {&ch, T(std::forward<U>(v)), std::move(f)};
}
/// after() is a select() case that happens when d has passed and no other case has.
template <class Rep, class P, class F>
detail::after_case<F> after(std::chrono::duration<Rep, P> d, F f) {
  return {detail::deadline_after(d), std::move(f)};
}
/// default_case() makes select() poll: it happens when no other case is ready at once. Over
/// several channels the check is atomic (select registers on every case and withdraws), so it
/// never chooses default while some case stayed ready throughout.
template <class F>
detail::default_case_t<F> default_case(F f) {
  return {std::move(f)};
}

/// select() waits until exactly one of its cases can happen, performs it, calls its function and
/// returns its index. Among cases ready at the same time it picks one at random (as Go). It
/// parks the calling tasklet, or blocks a plain thread; kill() and raise_exception() interrupt
/// it, and then no case happened.
template <class... Cases>
std::size_t select(Cases&&... cases) {
  static_assert(sizeof...(Cases) > 0, "select() needs at least one case");
  detail::select_case cs[sizeof...(Cases)];
  std::size_t k = 0;
  (cases.fill(cs[k++]), ...);
  std::size_t i = detail::chan_select(cs, sizeof...(Cases));
  k = 0;
  ((k++ == i ? (cases.run(cs[i]), 0) : 0), ...);
  return i;
}

}  // namespace stackless
