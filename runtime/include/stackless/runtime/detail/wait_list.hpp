// SPDX-License-Identifier: Apache-2.0
// stackless/runtime/detail/wait_list.hpp — the intrusive list of waiter records that every
// blocking object keeps (sync's locks and channels' plain-thread waits, io's poll descriptors).
// Internal: the names may change at any time.
#pragma once

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
    if (tail)
      tail->next = w;
    else
      head = w;
    tail = w;
    w->linked = true;
  }
  void push_front(waiter* w) noexcept {
    w->prev = nullptr;
    w->next = head;
    if (head)
      head->prev = w;
    else
      tail = w;
    head = w;
    w->linked = true;
  }
  waiter* pop_front() noexcept {
    waiter* w = head;
    if (w) erase(w);
    return w;
  }
  /// erase_if_linked() removes w if it is on the list; false if a waker took it already.
  bool erase_if_linked(waiter* w) noexcept {
    if (!w->linked) return false;
    erase(w);
    return true;
  }
  void erase(waiter* w) noexcept {
    if (w->prev)
      w->prev->next = w->next;
    else
      head = w->next;
    if (w->next)
      w->next->prev = w->prev;
    else
      tail = w->prev;
    w->next = w->prev = nullptr;
    w->linked = false;
  }
};

}  // namespace stackless::detail
