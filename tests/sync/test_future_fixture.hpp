// SPDX-License-Identifier: Apache-2.0
// tests/sync/test_future_fixture.hpp — what the promise/future tests (test_future.cpp) and the
// when_any / when_all tests (test_future_when.cpp) share, on top of channel_fixture.hpp:
//
// - spawn_parked(s, f): spawns f and waits until it parks;
// - waiters(f) / has_waiters(f): the wait records and when_any/when_all proxies on a future's list;
// - joiners(t) / has_joiners(t): the join records and proxies on a tasklet's list.
#pragma once

#include <utility>

#include "channel_fixture.hpp"

namespace stackless_test::future_test {

template <class F>
auto spawn_parked(sl::scheduler& s, F&& f) {
  auto t = s.spawn(std::forward<F>(f));
  EXPECT_TRUE(parked(t)) << "the tasklet never parked";
  return t;
}

/// waiters(): how many wait records and when_any/when_all proxies are on the future's list.
template <class T>
int waiters(const sl::future<T>& f) {
  auto* s = f.state();
  int n = 0;
  s->lk.lock();
  for (sd::waiter* w = s->q.head; w; w = w->next) ++n;
  s->lk.unlock();
  return n;
}
template <class T>
bool has_waiters(const sl::future<T>& f) {
  return waiters(f) > 0;
}
/// joiners(): how many join records and when_any/when_all proxies are on the tasklet's list.
template <class R>
int joiners(const tasklet<R>& t) {
  auto* c = t.raw();
  int n = 0;
  c->lk.lock();
  for (sd::waiter* w = c->joiners; w; w = w->next) ++n;
  c->lk.unlock();
  return n;
}
template <class R>
bool has_joiners(const tasklet<R>& t) {
  return joiners(t) > 0;
}

}  // namespace stackless_test::future_test
