// SPDX-License-Identifier: Apache-2.0
// stackless/sync/detail/waitq.hpp — the wait queue every lock, condition variable, semaphore,
// event, latch, barrier and future is built on (sync/src/waitq.cpp). Internal: the names may
// change at any time.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stop_token>

#include "stackless/runtime/detail/deadline.hpp"
#include "stackless/runtime/detail/tcb.hpp"
#include "stackless/runtime/detail/wait_list.hpp"

namespace stackless::detail {

/// block_options says how block() waits.
struct block_options {
  const char* what = "wait";               // what the caller waits on (deadlock reports)
  std::int64_t deadline = no_deadline;     // already shortened by timeout_scope
  const std::stop_token* st = nullptr;     // a stop request ends the wait with `cancelled`
  bool front = false;                      // queue at the front instead of the back
  std::uintptr_t data = 0;                 // stored in the record (waiter::data) for the waker
  std::uintptr_t* data_out = nullptr;      // after a notified wait: the record's data (a waker
                                           //   may write it back before it wakes)
  void (*after_publish)(void*) = nullptr;  // runs once the record is published and lk released,
  void* arg = nullptr;                     //   before the wait (a condition variable releases
                                           //   the user's mutex there); may throw: no wait then
};

/// block() makes the caller wait on q. Called with `lk` held; returns with it released and the
/// caller's record off q in every case. The outcome:
///   notified   a waker took the record off q and woke it: whatever it handed over is the caller's
///   timeout    o.deadline passed
///   cancelled  *o.st was asked to stop
///   interrupted  kill() / raise_exception() (the caller calls settle(), which throws)
/// Nothing is handed over on any outcome but notified: a waker whose wake() fails (the waiter
/// timed out first) moves on to the next record.
wake_reason block(spinlock& lk, wait_list& q, const block_options& o);

/// wake_first() pops records off q and wakes them until one wake succeeds; returns it (or null
/// when q ran out). Called with the owner's lock held.
waiter* wake_first(wait_list& q, wake_reason r = wake_reason::notified) noexcept;
/// wake_all() wakes every record of q; returns how many wakes succeeded. Lock held.
std::size_t wake_all(wait_list& q, wake_reason r = wake_reason::notified) noexcept;

/// gate is a wait list that opens: its waiters all wake when the owner opens it
/// (sync/src/waitq.cpp). Events, latches, wait groups, barriers and futures are gates.
struct gate {
  mutable spinlock lk;
  wait_list q;
  /// wait() waits until open(self) holds (checked under lk) or the gate is opened while waiting.
  /// false on timeout at `own`.
  bool wait(const char* what, bool (*open)(const void*), const void* self, std::int64_t own,
            const std::stop_token* st);
  /// open_all() wakes every waiter. Called with lk held.
  void open_all() noexcept { wake_all(q); }
};
/// settled is what a blocking primitive does after block(): done (notified), timed_out (its own
/// deadline passed — a timeout_scope's throws timeout_error instead), or retry (an interrupt that
/// cannot be thrown now: the caller is unwinding; wait again).
enum class settled : std::uint8_t { done, timed_out, retry };
/// settle() turns block()'s outcome into one: it throws operation_cancelled for `cancelled`,
/// the pending tasklet_exit / exception for `interrupted`, and timeout_error when the deadline
/// that passed was an enclosing timeout_scope's (earlier than `own`).
settled settle(wake_reason r, std::int64_t own);

/// relock_uninterruptibly() runs lock(arg) with interrupts held back and outside any
/// timeout_scope: a condition variable must own its lock again before any exception leaves
/// wait(). A pending kill is delivered at the next suspension point.
void relock_uninterruptibly(void (*lock)(void*), void* arg);

}  // namespace stackless::detail
