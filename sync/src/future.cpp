// SPDX-License-Identifier: Apache-2.0
// sync/src/future.cpp — the shared state of promise/future, and when_any / when_all
// (sync/future.hpp).
//
// when_any / when_all subscribe one *proxy* waiter per source: on a tasklet's joiner list
// (woken when it ends, under its lock) or on a future's wait list (woken when it becomes ready,
// under its lock). A proxy's notify() records the event in the call's group and, when the call
// is satisfied (the first event for any, the last for all), wakes the caller's park door (or a
// plain thread's futex word) — once. Invariants:
//  - A proxy is notified only under the lock of the list it is on, and the caller takes every
//    proxy off its list (under that lock) before it returns: no notify runs after the call ended,
//    so the proxies and the group may live on the caller's stack.
//  - The caller's park generation is taken before any proxy is published, so a notify that comes
//    before the caller parks ends that park at once (door phase PARKING → WOKEN).
#include "stackless/sync/future.hpp"

#include <vector>

#include "stackless/runtime/internal/park.hpp"

namespace stackless::detail {

void future_state_base::begin_set() {
  lk.lock();
  if (ready.load(std::memory_order_relaxed)) {
    lk.unlock();
    throw std::future_error(std::future_errc::promise_already_satisfied);
  }
}

void future_state_base::finish_set() noexcept {
  ready.store(true, std::memory_order_release);  // pairs with the acquire in is_ready()
  open_all();
  lk.unlock();
}

bool future_state_base::wait(std::int64_t own, const std::stop_token* st) {
  if (is_ready()) return true;
  return gate::wait(
      "future", [](const void* p) { return static_cast<const future_state_base*>(p)->is_ready(); },
      this, own, st);
}

namespace {

struct when_group {
  spinlock lk;
  bool all = false;
  std::size_t first = SIZE_MAX;  // any: the first source done
  std::size_t left = 0;          // all: sources not done yet
  bool signalled = false;
  waiter* caller = nullptr;  // the caller's record (wait_here): woken once

  bool satisfied() const noexcept { return all ? left == 0 : first != SIZE_MAX; }
  // done(i): source i is done. Called under the source's lock (or by the caller itself).
  void done(std::size_t i) noexcept {
    lk.lock();
    if (all)
      --left;
    else if (first == SIZE_MAX)
      first = i;
    bool wake_now = satisfied() && !signalled;
    if (wake_now) signalled = true;
    lk.unlock();
    if (!wake_now) return;
    // Under the source's lock; the caller unsubscribes (under that lock) before its record can
    // belong to a later wait.
    wake(*caller);
  }
};

struct proxy : waiter {
  when_group* g = nullptr;
  std::size_t index = 0;
  bool subscribed = false;
};

void proxy_notify(waiter* w, wake_reason) {
  auto* p = static_cast<proxy*>(w);
  p->g->done(p->index);
}

// subscribe(): true if the source is already done (then p is not linked anywhere).
bool subscribe(const when_source& s, proxy* p) {
  if (s.t) {
    if (!joiner_link(s.t, p)) return true;
    p->subscribed = true;
    return false;
  }
  s.f->lk.lock();
  if (s.f->is_ready()) {
    s.f->lk.unlock();
    return true;
  }
  s.f->q.push_back(p);
  p->subscribed = true;
  s.f->lk.unlock();
  return false;
}

void unsubscribe(const when_source& s, proxy* p) {
  if (!p->subscribed) return;
  if (s.t) {
    joiner_unlink(s.t, p);
  } else {
    s.f->lk.lock();
    if (p->linked) s.f->q.erase(p);
    s.f->lk.unlock();
  }
  p->subscribed = false;
}

}  // namespace

std::size_t when_wait(const when_source* srcs, std::size_t n, bool all, std::int64_t own) {
  const std::int64_t deadline = scoped_deadline(own);
  for (;;) {
    when_group g;
    g.all = all;
    g.left = n;
    std::vector<proxy> px(n);
    wait_here wh(all ? "when_all" : "when_any");  // before any proxy is published
    g.caller = wh.record();
    for (std::size_t i = 0; i < n; ++i) {
      px[i].notify = proxy_notify;
      px[i].g = &g;
      px[i].index = i;
      if (subscribe(srcs[i], &px[i])) g.done(i);
      if (!all) {  // any: one is enough (g.first is written by notifications, under g.lk)
        g.lk.lock();
        const bool found = g.first != SIZE_MAX;
        g.lk.unlock();
        if (found) break;
      }
    }
    wake_reason r = wake_reason::notified;
    g.lk.lock();
    bool sat = g.satisfied();
    g.lk.unlock();
    if (sat)
      wh.cancel();
    else
      r = wh.wait([] {}, deadline);
    for (std::size_t i = 0; i < n; ++i) unsubscribe(srcs[i], &px[i]);
    // Every proxy is off its list: g is final.
    if (g.satisfied()) return all ? 0 : g.first;
    if (r == wake_reason::notified) continue;  // cannot happen; be safe: look again
    if (settle(r, own) == settled::timed_out) return SIZE_MAX;
  }
}

}  // namespace stackless::detail
