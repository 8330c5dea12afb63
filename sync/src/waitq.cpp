// SPDX-License-Identifier: Apache-2.0
// sync/src/waitq.cpp — block(), the one wait of every lock, condition variable, semaphore,
// event, latch, barrier and future (detail/waitq.hpp).
//
// Invariants (see also runtime/src/park.cpp, the door it uses):
//  - A record is on at most one wait_list, linked and unlinked only under that list's lock.
//  - A waker pops a record and wakes it under the lock. For a tasklet, the park door's single
//    CAS decides between that wake, the timeout, a stop request and kill: exactly one wins. If
//    the wake loses (the tasklet timed out a moment earlier) the waker hands nothing over and
//    moves on to the next record.
//  - A waiter whose wait ended any other way takes the lock and unlinks its record if it is still
//    linked. If it is not (a plain thread only: its futex word has no door), a waker took it and
//    signalled under the lock, so the wait counts as notified — the handed-over thing is not lost.
//  - The stop_callback is destroyed before block() returns; its destructor waits for a callback
//    that is running, so the callback never touches a record or door of a later wait (and a late
//    one on a door loses the generation check anyway).
#include "stackless/sync/detail/waitq.hpp"

#include "stackless/runtime/internal/park.hpp"
#include "stackless/runtime/internal/scheduling.hpp"
#include "stackless/runtime/timeout.hpp"

namespace stackless::detail {

wake_reason block(spinlock& lk, wait_list& q, const block_options& o) {
  if (!current_tcb()) {  // a fork() child with an inherited scheduler: refused, unpublished
    try {
      plain_thread_check_fork();
    } catch (...) {
      lk.unlock();  // as on the other exceptional exit below: the caller's lock is released
      throw;
    }
  }
  wait_here wh(o.what);
  waiter* w = wh.record();
  w->data = o.data;
  w->notify = nullptr;
  if (o.front)
    q.push_front(w);
  else
    q.push_back(w);
  lk.unlock();
  if (o.after_publish) {
    try {
      o.after_publish(o.arg);
    } catch (...) {  // e.g. unlocking a lock the caller does not hold: leave, no wait
      lk.lock();
      q.erase_if_linked(w);
      lk.unlock();
      wh.cancel();
      throw;
    }
  }
  wake_reason r = wh.wait([] {}, o.deadline, o.st);
  if (r != wake_reason::notified) {
    lk.lock();
    r = wh.unlinked(r, q.erase_if_linked(w));
    lk.unlock();
  }
  if (o.data_out && r == wake_reason::notified) *o.data_out = w->data;  // written before the wake
  return r;
}

waiter* wake_first(wait_list& q, wake_reason r) noexcept {
  while (waiter* w = q.pop_front()) {
    if (wake(*w, r)) return w;
  }
  return nullptr;
}

std::size_t wake_all(wait_list& q, wake_reason r) noexcept {
  std::size_t n = 0;
  while (waiter* w = q.pop_front()) n += wake(*w, r);
  return n;
}

bool gate::wait(const char* what, bool (*open)(const void*), const void* self, std::int64_t own,
                const std::stop_token* st) {
  const std::int64_t deadline = scoped_deadline(own);
  for (;;) {
    lk.lock();
    if (open(self)) {
      lk.unlock();
      return true;
    }
    switch (settle(block(lk, q, {.what = what, .deadline = deadline, .st = st}), own)) {
      case settled::done:
        return true;
      case settled::timed_out:
        return false;
      case settled::retry:
        break;
    }
  }
}
settled settle(wake_reason r, std::int64_t own) {
  switch (r) {
    case wake_reason::notified:
      return settled::done;
    case wake_reason::timeout:
      scope_check(own);
      return settled::timed_out;
    case wake_reason::cancelled:
      throw operation_cancelled();
    case wake_reason::interrupted:
      throw_if_interrupted();
      return settled::retry;
  }
  return settled::retry;
}

void relock_uninterruptibly(void (*lock)(void*), void* arg) {
  irq_mask mask;
  timeout_scope*& top = scope_top();
  timeout_scope* saved = top;
  top = nullptr;
  struct restore {
    timeout_scope*& top;
    timeout_scope* saved;
    ~restore() { top = saved; }
  } r{top, saved};
  lock(arg);
}

}  // namespace stackless::detail
