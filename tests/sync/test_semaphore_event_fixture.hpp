// SPDX-License-Identifier: Apache-2.0
// tests/sync/test_semaphore_event_fixture.hpp — what the semaphore tests
// (test_semaphore_event.cpp) and the gate tests (test_semaphore_event_gates.cpp) share, on top of
// channel_fixture.hpp: spawn_parked(s, f).
#pragma once

#include <utility>

#include "channel_fixture.hpp"

namespace stackless_test::semaphore_event_test {

/// spawn_parked() spawns f and waits until it parks: queued acquirers / waiters in a known order.
template <class F>
auto spawn_parked(sl::scheduler& s, F&& f) {
  auto t = s.spawn(std::forward<F>(f));
  EXPECT_TRUE(parked(t)) << "the tasklet never parked";
  return t;
}

}  // namespace stackless_test::semaphore_event_test
