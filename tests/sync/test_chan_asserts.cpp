// SPDX-License-Identifier: Apache-2.0
// The channel's executable invariants (sync/src/chan_engine.hpp): the cell state machine
// (cell_transition_ok / check_cell_transition, leave_claim, cell_state_broken) and the select
// `sel` word's (sel_transition_ok / check_sel_transition). The tables are checked in every
// build; the death tests call the checks with illegal transitions and need STACKLESS_ASSERT
// compiled in (debug and sanitizer builds) — in release they skip.
#include <gtest/gtest.h>

#include <cstdint>

#include "chan_engine.hpp"

namespace {

using namespace stackless::detail;

// Records stand in the cell as pointers; these are never dereferenced.
case_rec a_record;
state_t receiver_rec() { return reinterpret_cast<state_t>(&a_record); }
state_t sender_rec() { return reinterpret_cast<state_t>(&a_record) | send_bit; }

constexpr std::uint32_t done(std::uint32_t i) { return SEL_DONE | i; }

TEST(ChanCellTransitions, TheDiagramsEdgesAreLegal) {
  const state_t legal[][2] = {
      {C_EMPTY, C_BUFFERED},       {C_EMPTY, C_IN_BUFFER},     {C_EMPTY, C_INT_SEND},
      {C_EMPTY, C_INT_RCV},        {C_EMPTY, C_POISONED},      {C_EMPTY, C_CLOSED},
      {C_IN_BUFFER, C_BUFFERED},   {C_IN_BUFFER, C_INT_RCV},   {C_IN_BUFFER, C_POISONED},
      {C_IN_BUFFER, C_CLOSED},     {C_BUFFERED, C_DONE},       {C_RESUMING_S, C_INT_RCV},
      {C_RESUMING_R, C_DONE},      {C_RESUMING_R, C_INT_SEND}, {C_RESUMING_EB, C_BUFFERED},
      {C_RESUMING_EB, C_INT_SEND}, {C_CLOSING, C_CLOSED},      {C_CLOSING, C_INT_RCV},
  };
  for (const auto& t : legal) EXPECT_TRUE(cell_transition_ok(t[0], t[1])) << t[0] << " -> " << t[1];
  EXPECT_TRUE(cell_transition_ok(C_EMPTY, sender_rec()));
  EXPECT_TRUE(cell_transition_ok(C_EMPTY, receiver_rec()));
  EXPECT_TRUE(cell_transition_ok(C_IN_BUFFER, receiver_rec()));
  EXPECT_TRUE(cell_transition_ok(sender_rec(), C_RESUMING_R));
  EXPECT_TRUE(cell_transition_ok(sender_rec(), C_RESUMING_EB));
  EXPECT_TRUE(cell_transition_ok(sender_rec(), C_INT_SEND));
  EXPECT_TRUE(cell_transition_ok(receiver_rec(), C_RESUMING_S));
  EXPECT_TRUE(cell_transition_ok(receiver_rec(), C_CLOSING));
  EXPECT_TRUE(cell_transition_ok(receiver_rec(), C_INT_RCV));
}

TEST(ChanCellTransitions, FinalStatesAndWrongSidesAreIllegal) {
  for (state_t final_state : {C_DONE, C_POISONED, C_INT_SEND, C_INT_RCV, C_CLOSED})
    for (state_t to = 0; to < C_MARKERS; ++to) EXPECT_FALSE(cell_transition_ok(final_state, to));
  EXPECT_FALSE(cell_transition_ok(C_IN_BUFFER, sender_rec()));  // only a receiver waits there
  EXPECT_FALSE(cell_transition_ok(C_IN_BUFFER, C_INT_SEND));
  EXPECT_FALSE(cell_transition_ok(C_BUFFERED, C_INT_SEND));         // a buffered element is taken
  EXPECT_FALSE(cell_transition_ok(C_RESUMING_S, C_DONE));           // a won RESUMING_S stays
  EXPECT_FALSE(cell_transition_ok(sender_rec(), C_RESUMING_S));     // a sender claims a sender
  EXPECT_FALSE(cell_transition_ok(receiver_rec(), C_RESUMING_R));   // a receiver claims a receiver
  EXPECT_FALSE(cell_transition_ok(receiver_rec(), C_RESUMING_EB));  // expand_buffer: senders only
  EXPECT_FALSE(cell_transition_ok(C_EMPTY, receiver_rec() | 1));    // a misaligned record
}

TEST(ChanSelTransitions, TheDiagramsEdgesAreLegal) {
  EXPECT_TRUE(sel_transition_ok(SEL_REG, SEL_REG | SEL_REREG));
  EXPECT_TRUE(sel_transition_ok(SEL_REG, SEL_WAITING));
  EXPECT_TRUE(sel_transition_ok(SEL_REG, done(3)));
  EXPECT_TRUE(sel_transition_ok(SEL_REG | SEL_REREG, SEL_REG));
  EXPECT_TRUE(sel_transition_ok(SEL_REG | SEL_REREG, done(0)));
  EXPECT_TRUE(sel_transition_ok(SEL_WAITING, done(7)));
  EXPECT_TRUE(sel_transition_ok(SEL_WAITING, SEL_CANCELLED));
  EXPECT_TRUE(sel_transition_ok(SEL_WAITING, done(7) | SEL_WAKING));  // a tasklet's partner won
  EXPECT_TRUE(sel_transition_ok(done(7) | SEL_WAKING, done(7)));      //   and has woken it
  for (std::uint32_t ended : {SEL_WAITING, SEL_CANCELLED, done(0), done(5)}) {
    EXPECT_TRUE(sel_transition_ok(ended, SEL_REG));      // a select begins
    EXPECT_TRUE(sel_transition_ok(ended, SEL_WAITING));  // a send or receive begins
  }
}

TEST(ChanSelTransitions, DecidedWordsStayDecided) {
  EXPECT_FALSE(sel_transition_ok(SEL_CANCELLED, done(1)));
  EXPECT_FALSE(sel_transition_ok(done(1), done(2)));
  EXPECT_FALSE(sel_transition_ok(done(1), SEL_CANCELLED));
  EXPECT_FALSE(sel_transition_ok(SEL_WAITING, SEL_REG | SEL_REREG));  // only a registering word
  EXPECT_FALSE(sel_transition_ok(SEL_REG | SEL_REREG, SEL_WAITING));  // must re-check first
  EXPECT_FALSE(sel_transition_ok(SEL_REG, SEL_CANCELLED));            // cancel after registering
  EXPECT_FALSE(sel_transition_ok(SEL_WAITING, SEL_DONE | SEL_CANCELLED));
  // While the partner wakes it, only that partner moves the word, and only to its own case.
  EXPECT_FALSE(sel_transition_ok(done(7) | SEL_WAKING, done(6)));
  EXPECT_FALSE(sel_transition_ok(done(7) | SEL_WAKING, SEL_REG));
  EXPECT_FALSE(sel_transition_ok(done(7) | SEL_WAKING, SEL_WAITING));
  EXPECT_FALSE(sel_transition_ok(done(7) | SEL_WAKING, SEL_CANCELLED));
  EXPECT_FALSE(sel_transition_ok(SEL_REG, done(7) | SEL_WAKING));  // a registering owner decides
  EXPECT_FALSE(sel_transition_ok(SEL_WAKING, SEL_WAITING));        // WAKING only with DONE
}

// cell_state_broken() is on in every build (it replaced an abort that always ran).
TEST(ChanAssertsDeathTest, AnImpossibleCellStateAbortsInEveryBuild) {
  testing::GTEST_FLAG(death_test_style) = "threadsafe";
  EXPECT_DEATH(cell_state_broken(C_DONE, "channel: sender found an impossible cell state"),
               "invariant broken: channel: sender found an impossible cell state");
}

#if STACKLESS_ASSERTS_ON

TEST(ChanAssertsDeathTest, AnIllegalCellTransitionAborts) {
  testing::GTEST_FLAG(death_test_style) = "threadsafe";
  check_cell_transition(C_EMPTY, C_BUFFERED);  // legal: returns
  check_cell_transition(receiver_rec(), C_RESUMING_S);
  EXPECT_DEATH(check_cell_transition(C_DONE, C_EMPTY),
               "invariant broken: channel: illegal cell transition");
  EXPECT_DEATH(check_cell_transition(C_BUFFERED, C_INT_SEND), "invariant broken");
  EXPECT_DEATH(check_cell_transition(receiver_rec(), C_RESUMING_R), "invariant broken");
  EXPECT_DEATH(check_cell_transition(C_IN_BUFFER, sender_rec()), "invariant broken");
}

TEST(ChanAssertsDeathTest, AClaimLeftByAnotherThanItsClaimerAborts) {
  testing::GTEST_FLAG(death_test_style) = "threadsafe";
  cell c;
  c.state.store(C_RESUMING_S);
  leave_claim(c, C_RESUMING_S, C_INT_RCV);  // legal: the claimer leaves its claim
  EXPECT_EQ(c.state.load(), C_INT_RCV);
  // The cell is no longer RESUMING_R when its claimer leaves it.
  c.state.store(C_DONE);
  EXPECT_DEATH(leave_claim(c, C_RESUMING_R, C_INT_SEND),
               "invariant broken: channel: a claimed cell changed under its claimer");
  // The claimer leaves for a state its claim cannot end in.
  c.state.store(C_CLOSING);
  EXPECT_DEATH(leave_claim(c, C_CLOSING, C_DONE),
               "invariant broken: channel: illegal cell transition");
}

TEST(ChanAssertsDeathTest, AnIllegalSelTransitionAborts) {
  testing::GTEST_FLAG(death_test_style) = "threadsafe";
  check_sel_transition(SEL_WAITING, done(2));  // legal: returns
  EXPECT_DEATH(check_sel_transition(SEL_CANCELLED, done(1)),
               "invariant broken: channel: illegal select \\(sel\\) transition");
  EXPECT_DEATH(check_sel_transition(done(1), SEL_CANCELLED), "invariant broken");
  EXPECT_DEATH(check_sel_transition(SEL_WAITING, SEL_REG | SEL_REREG), "invariant broken");
  EXPECT_DEATH(check_sel_transition(SEL_REG | SEL_REREG, SEL_WAITING), "invariant broken");
}

#else

TEST(ChanAssertsDeathTest, AnIllegalCellTransitionAborts) {
  GTEST_SKIP() << "STACKLESS_ASSERT is compiled out in release builds (NDEBUG, no sanitizer)";
}
TEST(ChanAssertsDeathTest, AClaimLeftByAnotherThanItsClaimerAborts) {
  GTEST_SKIP() << "STACKLESS_ASSERT is compiled out in release builds (NDEBUG, no sanitizer)";
}
TEST(ChanAssertsDeathTest, AnIllegalSelTransitionAborts) {
  GTEST_SKIP() << "STACKLESS_ASSERT is compiled out in release builds (NDEBUG, no sanitizer)";
}

#endif

}  // namespace
