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

namespace stackless::detail {

/// wait_list is an intrusive FIFO of waiter records (a tasklet's lives in its control block, a
/// plain thread's on its stack). Guarded by the lock of the object that owns it.
struct wait_list {
  waiter* head = nullptr;
  waiter* tail = nullptr;

  bool empty() const noexcept { return head == nullptr; }
  void push_back(waiter* w) noexcept {
    w->next = nullptr;
    w->prev = tail;
    if (tail) tail->next = w; else head = w;
    tail = w;
    w->linked = true;
  }
  void push_front(waiter* w) noexcept {
    w->prev = nullptr;
    w->next = head;
    if (head) head->prev = w; else tail = w;
    head = w;
    w->linked = true;
  }
  waiter* pop_front() noexcept {
    waiter* w = head;
    if (w) erase(w);
    return w;
  }
  void erase(waiter* w) noexcept {
    if (w->prev) w->prev->next = w->next; else head = w->next;
    if (w->next) w->next->prev = w->prev; else tail = w->prev;
    w->next = w->prev = nullptr;
    w->linked = false;
  }
};

/// block() makes the caller wait at the back of q. Called with `lk` held; returns with it
/// released and the caller's record off q in every case. `after_publish` (may be null) runs once
/// the record is published and lk released, before the wait (a condition variable releases the
/// user's mutex there). The outcome:
///   notified   a waker took the record off q and woke it: whatever it handed over is the caller's
///   timeout    `deadline` (already shortened by timeout_scope) passed
///   cancelled  *st (if given) was asked to stop
///   interrupted  kill() / raise_exception() (the caller calls settle(), which throws)
/// Nothing is handed over on any outcome but notified: a waker whose wake() fails (the waiter
/// timed out first) moves on to the next record.
/// `data` is stored in the record (waiter::data) for the waker to read; a waker may write it
/// back before it wakes, and *data_out (if given) receives it after a notified wait. `front`
/// queues at the front instead of the back.
wake_reason block(spinlock& lk, wait_list& q, const char* what, std::int64_t deadline,
                  const std::stop_token* st, std::uintptr_t data = 0,
                  void (*after_publish)(void*) = nullptr, void* arg = nullptr,
                  std::uintptr_t* data_out = nullptr, bool front = false);

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
