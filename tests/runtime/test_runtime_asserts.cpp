// SPDX-License-Identifier: Apache-2.0
// The runtime's executable invariants: the tasklet state machine (runtime/src/tstate.hpp:
// tstate_transition_ok / check_tstate_transition / set_tstate, and tstate_broken) and the
// work-stealing deque's indices (runtime/src/deque.hpp: deque_indices_ok / check_deque_indices).
// The tables are checked in every build; the death tests call the checks with illegal inputs and
// need STACKLESS_ASSERT compiled in (debug and sanitizer builds) — in release they skip, except
// tstate_broken(), which aborts in every build.
#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <utility>

#include "deque.hpp"
#include "tstate.hpp"

namespace {

using namespace stackless::detail;

// The edges of the diagram at the top of tstate.hpp.
const std::set<std::pair<std::uint32_t, std::uint32_t>> legal_edges = {
    {S_NEW, S_RUNNABLE},                                         // submit
    {S_RUNNABLE, S_RUNNING},     {S_RUNNABLE, S_PAUSED_QUEUED},  // pop, pause
    {S_RUNNABLE, S_RUNNABLE},    {S_RUNNABLE, S_PAUSED},         // resume's store, a pause
    {S_RUNNING, S_RUNNABLE},     {S_RUNNING, S_PARKED},          // yield, park
    {S_RUNNING, S_DEAD},         {S_RUNNING, S_PAUSED},          // end, take_pause / overrun
    {S_PARKED, S_RUNNABLE},      {S_PARKED, S_PAUSED},           // wake, take_pause at the wake
    {S_PAUSED_QUEUED, S_PAUSED}, {S_PAUSED_QUEUED, S_RUNNABLE},  // pop (dropped), resume
    {S_PAUSED, S_RUNNABLE},                                      // resume
};

TEST(TstateTransitions, TheDiagramsEdgesAreLegal) {
  for (const auto& [from, to] : legal_edges)
    EXPECT_TRUE(tstate_transition_ok(from, to)) << from << " -> " << to;
}

TEST(TstateTransitions, EverythingElseIsIllegal) {
  for (std::uint32_t from = 0; from < 9; ++from) {
    for (std::uint32_t to = 0; to < 9; ++to) {
      if (!legal_edges.count({from, to})) {
        EXPECT_FALSE(tstate_transition_ok(from, to)) << from << " -> " << to;
      }
    }
  }
  for (std::uint32_t to = 0; to < 9; ++to) EXPECT_FALSE(tstate_transition_ok(S_DEAD, to));  // final
  for (std::uint32_t from = 0; from < 9; ++from)
    EXPECT_FALSE(tstate_transition_ok(from, S_NEW)) << from << ": nothing goes back to NEW";
}

TEST(DequeIndices, TheOwnersRangeIsLegal) {
  EXPECT_TRUE(deque_indices_ok(0, 0, 4));       // empty
  EXPECT_TRUE(deque_indices_ok(7, 3, 4));       // full
  EXPECT_TRUE(deque_indices_ok(1000, 998, 4));  // wrapped many times
  // take() checks the bottom before its decrement: decremented to 4 with top 5 (a thief took
  // the last element) is bottom >= top - 1, legal; decremented to 3 is not.
  EXPECT_TRUE(deque_indices_ok(4 + 1, 5, 4));
  EXPECT_FALSE(deque_indices_ok(3 + 1, 5, 4));
  EXPECT_FALSE(deque_indices_ok(3, 4, 4));  // top past bottom
  EXPECT_FALSE(deque_indices_ok(8, 3, 4));  // more elements than slots
}

TEST(DequeIndices, ADequeUsedWithinItsRulesNeverTrips) {
  // The checks inside push(), take() and take_oldest() (debug builds), over full cycles that
  // wrap around the array.
  ws_deque<int> d(4);
  int xs[6] = {0, 1, 2, 3, 4, 5};
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(d.push(&xs[i]));
    EXPECT_FALSE(d.push(&xs[4]));  // full
    int* out[2];
    EXPECT_EQ(d.take_oldest(out, 2), 2u);
    EXPECT_EQ(d.take(), &xs[3]);
    EXPECT_EQ(d.take(), &xs[2]);
    EXPECT_EQ(d.take(), nullptr);
  }
}

// tstate_broken() is on in every build (it replaced an abort that always ran).
TEST(RuntimeAssertsDeathTest, AnImpossiblePoppedStateAbortsInEveryBuild) {
  testing::GTEST_FLAG(death_test_style) = "threadsafe";
  tcb t;  // a control block that is never scheduled: only its state word and id are used
  t.id = 42;
  EXPECT_DEATH(tstate_broken(&t, S_PARKED, "worker: popped a tasklet that is not RUNNABLE"),
               "tasklet #42 is in state 3.*invariant broken: worker: popped a tasklet");
}

#if STACKLESS_ASSERTS_ON

TEST(RuntimeAssertsDeathTest, AnIllegalTstateTransitionAborts) {
  testing::GTEST_FLAG(death_test_style) = "threadsafe";
  check_tstate_transition(S_RUNNABLE, S_RUNNING);  // legal: returns
  check_tstate_transition(S_PARKED, S_RUNNABLE);
  EXPECT_DEATH(check_tstate_transition(S_DEAD, S_RUNNABLE),
               "invariant broken: tasklet state: illegal transition");
  EXPECT_DEATH(check_tstate_transition(S_PARKED, S_RUNNING), "invariant broken");  // a wake skipped
  EXPECT_DEATH(check_tstate_transition(S_RUNNABLE, S_PARKED), "invariant broken");
  EXPECT_DEATH(check_tstate_transition(S_PAUSED, S_RUNNING), "invariant broken");
  EXPECT_DEATH(check_tstate_transition(S_NEW, S_RUNNING), "invariant broken");  // never queued
  EXPECT_DEATH(check_tstate_transition(S_RUNNING, S_PAUSED_QUEUED), "invariant broken");
  EXPECT_DEATH(check_tstate_transition(99, S_RUNNABLE), "invariant broken");  // not a state
}

TEST(RuntimeAssertsDeathTest, AnIllegalStoreOfTheStateWordAborts) {
  testing::GTEST_FLAG(death_test_style) = "threadsafe";
  tcb t;  // a control block that is never scheduled: only its state word and id are used
  set_tstate(&t, S_RUNNABLE, std::memory_order_relaxed);  // NEW → RUNNABLE: legal
  EXPECT_EQ(t.state.load(), S_RUNNABLE);
  set_tstate(&t, S_RUNNING, std::memory_order_relaxed);
  set_tstate(&t, S_DEAD, std::memory_order_release);
  EXPECT_DEATH(set_tstate(&t, S_RUNNABLE, std::memory_order_relaxed),
               "invariant broken: tasklet state: illegal transition");
  EXPECT_EQ(t.state.load(), S_DEAD);  // (in this process: the death happened in a child)
}

TEST(RuntimeAssertsDeathTest, DequeIndicesOutOfRangeAbort) {
  testing::GTEST_FLAG(death_test_style) = "threadsafe";
  check_deque_indices(5, 1, 4);  // legal: returns
  EXPECT_DEATH(check_deque_indices(3, 4, 4),
               "invariant broken: ws_deque: top/bottom out of range");  // top past bottom
  EXPECT_DEATH(check_deque_indices(9, 4, 4), "invariant broken");       // 5 elements, 4 slots
  // take()'s check is on the bottom before its decrement: bottom >= top - 1 after it.
  EXPECT_DEATH(check_deque_indices(3 + 1, 5, 4), "invariant broken");  // take(): bottom 3, top 5
}

#else

TEST(RuntimeAssertsDeathTest, AnIllegalTstateTransitionAborts) {
  GTEST_SKIP() << "STACKLESS_ASSERT is compiled out in release builds (NDEBUG, no sanitizer)";
}
TEST(RuntimeAssertsDeathTest, AnIllegalStoreOfTheStateWordAborts) {
  GTEST_SKIP() << "STACKLESS_ASSERT is compiled out in release builds (NDEBUG, no sanitizer)";
}
TEST(RuntimeAssertsDeathTest, DequeIndicesOutOfRangeAbort) {
  GTEST_SKIP() << "STACKLESS_ASSERT is compiled out in release builds (NDEBUG, no sanitizer)";
}

#endif

}  // namespace
