// SPDX-License-Identifier: Apache-2.0
// stackless/sync/detail/channel_core.hpp — the type-erased channel engine (sync/src/chan_engine.hpp
// describes it) that channel<T> and select() wrap. Internal: the names may change at any time.
// Deadlines are points of the steady clock in nanoseconds, no_deadline for none
// (stackless/runtime/detail/deadline.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

#include "stackless/runtime/detail/deadline.hpp"

namespace stackless::detail {

/// elem_ops tells the engine how to move and destroy the element type.
struct elem_ops {
  std::size_t size;
  std::size_t align;
  bool trivial;                                  // memcpy moves it, nothing destroys it
  void (*move_construct)(void* dst, void* src);  // dst is raw storage; src stays a (moved-from) T
  void (*destroy)(void* p) noexcept;
};

template <class T>
inline constexpr elem_ops elem_ops_of{
    sizeof(T), alignof(T), std::is_trivially_copyable_v<T>&& std::is_trivially_destructible_v<T>,
    [](void* d, void* s) { ::new (d) T(std::move(*static_cast<T*>(s))); },
    [](void* p) noexcept { static_cast<T*>(p)->~T(); }};

class chan_core;

/// op_status is how a channel operation ended when it did not throw.
enum class op_status : std::uint8_t { ok, would_block, timeout, closed };

chan_core* chan_create(const elem_ops* ops, std::size_t capacity, bool unbounded);
void chan_acquire(chan_core*) noexcept;
void chan_release(chan_core*) noexcept;

/// chan_send() moves *src into the channel (is_exc: src is a std::exception_ptr). On `ok` *src
/// is moved-from; otherwise it keeps its value. block = false: never parks (would_block).
/// Throws tasklet_exit / a raised exception when the caller is interrupted while parked (then
/// *src keeps its value).
op_status chan_send(chan_core*, void* src, bool is_exc, bool block, std::int64_t deadline);
/// chan_receive() move-constructs the next element into raw storage *dst on `ok`. An element
/// that send_exception() sent is thrown instead. `closed`: closed and drained.
op_status chan_receive(chan_core*, void* dst, bool block, std::int64_t deadline);

void chan_close(chan_core*);
bool chan_closing(const chan_core*) noexcept;
bool chan_closed(const chan_core*) noexcept;
int chan_balance(const chan_core*) noexcept;
void chan_set_preference(chan_core*, int) noexcept;
int chan_get_preference(const chan_core*) noexcept;
std::size_t chan_capacity(const chan_core*) noexcept;

/// select_case is one case of select(): an operation on a channel, a deadline, or the default.
struct select_case {
  enum class kind_t : std::uint8_t { recv, send, after, fallback };
  kind_t kind;
  chan_core* ch = nullptr;    // recv / send
  void* buf = nullptr;        // send: the T to move from; recv: raw storage for a T
  bool is_exc = false;        // send: buf is a std::exception_ptr
  std::int64_t deadline = 0;  // after
  // out: the receive found the channel closed and drained (recv cases only)
  bool closed = false;
};

/// chan_select() performs exactly one of the cases and returns its index. A recv case that finds
/// the channel closed and drained is performed with `closed` set (nothing was constructed in
/// buf); a send case on a closed channel throws channel_closed. Ready cases are chosen at random.
std::size_t chan_select(select_case* cases, std::size_t n);

}  // namespace stackless::detail
