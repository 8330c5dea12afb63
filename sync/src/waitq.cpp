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
#include <optional>

#include "stackless/runtime/internal/park.hpp"
#include "stackless/runtime/timeout.hpp"
#include "stackless/sync/detail/waitq.hpp"

namespace stackless::detail {

wake_reason block(spinlock& lk, wait_list& q, const char* what, std::int64_t deadline,
                  const std::stop_token* st, std::uintptr_t data, void (*after_publish)(void*),
                  void* arg, std::uintptr_t* data_out, bool front) {
  if (tcb* t = current_tcb()) {
    waiter* w = prepare_park(what);
    w->data = data;
    w->notify = nullptr;
    if (front) q.push_front(w); else q.push_back(w);
    lk.unlock();
    if (after_publish) {
      try {
        after_publish(arg);
      } catch (...) {  // e.g. unlocking a lock the caller does not hold: leave, no wait
        lk.lock();
        if (w->linked) q.erase(w);
        lk.unlock();
        cancel_park();
        throw;
      }
    }
    wake_reason r;
    {
      // A stop already requested runs the callback right here: the door ends at once.
      std::optional<std::stop_callback<stop_waker>> cb;
      if (st && st->stop_possible()) cb.emplace(*st, stop_waker{t, current_park_gen(), nullptr});
      r = park([] {}, deadline);
    }
    if (r != wake_reason::notified) {
      lk.lock();
      if (w->linked) q.erase(w);
      lk.unlock();
    }
    if (data_out && r == wake_reason::notified) *data_out = w->data;  // written before the wake
    return r;
  }
  thread_waiter tw;
  tw.w.data = data;
  if (front) q.push_front(&tw.w); else q.push_back(&tw.w);
  lk.unlock();
  if (after_publish) {
    try {
      after_publish(arg);
    } catch (...) {
      lk.lock();
      if (tw.w.linked) q.erase(&tw.w);
      lk.unlock();
      throw;
    }
  }
  wake_reason r;
  {
    std::optional<std::stop_callback<stop_waker>> cb;
    if (st && st->stop_possible()) cb.emplace(*st, stop_waker{nullptr, 0, &tw});
    plain_thread_will_block();  // a single-worker scheduler nobody drives yet may hold the waker
    r = tw.wait(deadline);
  }
  if (r != wake_reason::notified) {
    lk.lock();
    if (tw.w.linked) q.erase(&tw.w);
    else r = wake_reason::notified;  // a waker took it first and signalled under the lock
    lk.unlock();
  }
  if (data_out && r == wake_reason::notified) *data_out = tw.w.data;
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
    switch (settle(block(lk, q, what, deadline, st), own)) {
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
