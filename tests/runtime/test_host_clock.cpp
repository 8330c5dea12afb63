// SPDX-License-Identifier: Apache-2.0
// tests/runtime/test_host_clock.cpp — options::clock = clock_source::host: tasklets sleep and
// time out in the host's time, which moves only by advance(); a paused host pauses every timer;
// plain threads keep the steady clock; a clock that would go backwards is refused.
#include <chrono>
#include <stdexcept>
#include <thread>

#include "fixture.hpp"

namespace {

using namespace stackless_test;
using std::chrono::steady_clock;

sl::options host_options(unsigned workers) {
  sl::options o;
  o.workers = workers;
  o.clock = sl::clock_source::host;
  o.deadlock_grace = 5s;
  return o;
}

// A frame loop as a game has one: pump 4 ms, then advance the game clock by one frame.
TEST(HostClock, ATaskletSleepsThreeFramesOfGameTime) {
  sl::scheduler s(host_options(1));
  constexpr auto frame = 16ms;
  const auto t0 = s.now();
  steady_clock::time_point woke{};
  int frames_seen = -1;
  int frame_no = 0;
  auto t = s.spawn([&] {
    const auto before = sl::this_tasklet::now();
    EXPECT_EQ(before, t0);  // nobody advanced yet
    sl::this_tasklet::sleep_for(3 * frame);
    woke = sl::this_tasklet::now();
    frames_seen = frame_no;
  });
  for (; frame_no < 10 && t.alive(); ++frame_no) {
    s.run_for(4ms);
    if (!t.alive()) break;
    s.advance(frame);
  }
  EXPECT_FALSE(t.alive());
  EXPECT_EQ(frames_seen, 3);        // woke in the pump after the third advance
  EXPECT_EQ(woke - t0, 3 * frame);  // exactly: game time is the host's
  EXPECT_EQ(s.now() - t0, 3 * frame);
  expect_clean(s);
}

TEST(HostClock, APausedHostPausesEveryTimer) {
  sl::scheduler s(host_options(1));
  std::atomic<bool> woke{false};
  auto t = s.spawn([&] {
    sl::this_tasklet::sleep_for(1ms);
    woke.store(true);
  });
  // Plenty of wall-clock time passes, the game clock does not: the 1 ms sleep never ends.
  for (int i = 0; i < 20; ++i) {
    s.run_for(2ms);
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_FALSE(woke.load());
  EXPECT_TRUE(t.blocked());
  s.advance(1ms);
  s.run_for(2ms);
  EXPECT_TRUE(woke.load());
  expect_clean(s);
}

class HostClockWorkers : public runtime_test {};

TEST_P(HostClockWorkers, AdvanceWakesSleepersAndTimeoutsOnWorkerThreads) {
  auto o = opts();
  o.clock = sl::clock_source::host;
  auto& s = sched(o);
  std::atomic<int> slept{0};
  std::atomic<int> timed_out{0};
  std::vector<sl::tasklet<void>> ts;
  for (int i = 0; i < 8; ++i)
    ts.push_back(s.spawn([&] {
      sl::this_tasklet::sleep_for(1h);  // an hour of game time: wall time would never get there
      slept.fetch_add(1);
    }));
  for (int i = 0; i < 4; ++i)
    ts.push_back(s.spawn([&] {
      try {
        sl::timeout_scope scope(30min);
        sl::this_tasklet::sleep_for(2h);  // the scope ends it first
      } catch (const sl::timeout_error&) {
        timed_out.fetch_add(1);
      }
    }));
  ASSERT_TRUE(wait_until([&] {
    for (auto& t : ts)
      if (!t.blocked()) return false;
    return true;
  }));
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(slept.load() + timed_out.load(), 0);
  s.advance(30min);
  ASSERT_TRUE(wait_until([&] { return timed_out.load() == 4; }));
  EXPECT_EQ(slept.load(), 0);
  s.advance(30min);
  for (auto& t : ts) t.join();
  EXPECT_EQ(slept.load(), 8);
}

TEST_P(HostClockWorkers, PlainThreadsKeepTheSteadyClock) {
  auto o = opts();
  o.clock = sl::clock_source::host;
  auto& s = sched(o);
  auto t = s.spawn([] { park_forever(); });
  ASSERT_TRUE(wait_until([&] { return t.blocked(); }));
  // A plain thread's join_for() waits 20 ms of wall time, game clock or not.
  EXPECT_FALSE(t.join_for(20ms));
  // A tasklet's join_for() waits in game time: it ends only when the host advances.
  std::atomic<int> result{-1};
  auto joiner = s.spawn([&] { result.store(t.join_for(10s) ? 1 : 0); });
  ASSERT_TRUE(wait_until([&] { return joiner.blocked(); }));
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(result.load(), -1);
  s.advance(10s);
  joiner.join();
  EXPECT_EQ(result.load(), 0);
  t.kill();
}

TEST_P(HostClockWorkers, AClockThatGoesBackwardsIsRefused) {
  auto o = opts();
  o.clock = sl::clock_source::host;
  auto& s = sched(o);
  const auto t0 = s.now();
  EXPECT_THROW(s.advance(-1ns), std::invalid_argument);
  s.advance(5ms);
  try {
    s.advance_to(t0);
    ADD_FAILURE() << "advance_to() into the past returned";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("backwards"), std::string::npos) << e.what();
  }
  EXPECT_EQ(s.now() - t0, 5ms);  // unchanged by the refused calls
  s.advance_to(t0 + 5ms);        // not backwards: a no-op
  EXPECT_THROW(s.block_on([&] { s.advance(1ms); }), sl::usage_error);  // the host's, not ours
}

TEST_P(HostClockWorkers, TheSteadyClockCannotBeAdvanced) {
  auto& s = sched();
  try {
    s.advance(1ms);
    ADD_FAILURE() << "advance() on a steady-clock scheduler returned";
  } catch (const sl::usage_error& e) {
    EXPECT_NE(std::string(e.what()).find("clock_source::host"), std::string::npos) << e.what();
  }
  const auto a = s.now();
  EXPECT_LE(a, steady_clock::now());
}

STACKLESS_INSTANTIATE_WORKERS(HostClockWorkers);

TEST(HostClock, AFrameBudgetOfZeroIsRefused) {
  sl::scheduler s(host_options(1));
  EXPECT_THROW(s.run_for(0ms), std::invalid_argument);
  EXPECT_THROW(s.run_for(-1ms), std::invalid_argument);
}

}  // namespace
