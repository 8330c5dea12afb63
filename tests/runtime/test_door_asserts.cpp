// SPDX-License-Identifier: Apache-2.0
// tests/runtime/test_door_asserts.cpp — the park door's transition check (park.cpp,
// STACKLESS_ASSERT): legal transitions pass, each kind of illegal one aborts with a report that
// names the invariant. Death tests; skipped where asserts are compiled out (release).
#include <gtest/gtest.h>

#include "door.hpp"
#include "stackless/runtime/internal/assert.hpp"

namespace {

using stackless::detail::check_door_transition_for_test;
constexpr unsigned RUNNING = 0, PARKING = 1, PARKED = 2, WOKEN = 3;

TEST(DoorAsserts, LegalTransitionsPass) {
  check_door_transition_for_test(0, RUNNING, 1, PARKING);  // prepare_park
  check_door_transition_for_test(1, PARKING, 1, RUNNING);  // cancel_park
  check_door_transition_for_test(1, PARKING, 1, PARKED);   // the worker, after the switch
  check_door_transition_for_test(1, PARKING, 1, WOKEN);    // a waker before the switch
  check_door_transition_for_test(1, PARKED, 1, WOKEN);     // a waker
  check_door_transition_for_test(1, WOKEN, 2, PARKING);    // the next park
  SUCCEED();
}

#if STACKLESS_ASSERTS_ON
TEST(DoorAssertsDeathTest, IllegalTransitionsAbortWithAReport) {
  testing::GTEST_FLAG(death_test_style) = "threadsafe";
  // A second wake of the same park.
  EXPECT_DEATH(check_door_transition_for_test(1, WOKEN, 1, WOKEN),
               "invariant broken: park door: illegal transition");
  // A wake with a stale generation.
  EXPECT_DEATH(check_door_transition_for_test(2, PARKED, 1, WOKEN), "invariant broken");
  // PARKED straight back to RUNNING (nobody woke it).
  EXPECT_DEATH(check_door_transition_for_test(1, PARKED, 1, RUNNING), "invariant broken");
  // A new park that does not bump the generation.
  EXPECT_DEATH(check_door_transition_for_test(1, WOKEN, 1, PARKING), "invariant broken");
  // The report names where the check ran from (no tasklet, no worker here).
  EXPECT_DEATH(check_door_transition_for_test(1, PARKED, 1, PARKING), "tasklet: none");
}
#else
TEST(DoorAssertsDeathTest, IllegalTransitionsAbortWithAReport) {
  GTEST_SKIP() << "STACKLESS_ASSERT is compiled out in this (release) build";
}
#endif

}  // namespace
