// SPDX-License-Identifier: Apache-2.0
// test_sleep.cpp — this_tasklet::sleep_for / sleep_until: a sleeping tasklet parks (its worker
// runs others), wakes no earlier than asked, can be killed early, blocks a plain thread, and a
// pending sleep is not a deadlock. (A file of its own: timers may land after the rest.)
#include <random>
#include <vector>

#include "fixture.hpp"

namespace {

using namespace stackless_test;
using stackless::tasklet;
namespace this_tasklet = stackless::this_tasklet;

class SleepTest : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(SleepTest);

TEST_P(SleepTest, SleepsAtLeastTheDuration) {
  const auto elapsed = sched().block_on([] {
    const auto t0 = std::chrono::steady_clock::now();
    this_tasklet::sleep_for(20ms);
    return std::chrono::steady_clock::now() - t0;
  });
  EXPECT_GE(elapsed, 20ms) << "woke early";
}

TEST_P(SleepTest, SleepUntilAPastTimeReturns) {
  EXPECT_EQ(sched().block_on([] {
    this_tasklet::sleep_until(std::chrono::steady_clock::now() - 1s);
    this_tasklet::sleep_for(0ms);
    return 1;
  }),
            1);
}

TEST_P(SleepTest, ASleeperDoesNotHoldItsWorker) {
  std::atomic<bool> other_ran{false}, unwound{false};
  auto sleeper = sched().spawn([&] {
    raii_flag guard(unwound);
    this_tasklet::sleep_for(std::chrono::hours(1));
  });
  ASSERT_TRUE(wait_until([&] { return sleeper.blocked(); }));
  sched().block_on([&] { other_ran = true; });
  EXPECT_TRUE(other_ran.load());
  EXPECT_TRUE(sleeper.alive());
  sleeper.kill();  // wakes it early with tasklet_exit
  EXPECT_FALSE(sleeper.alive());
  EXPECT_TRUE(unwound.load());
}

TEST_P(SleepTest, ManySleepersAllWake) {
  const int n = static_cast<int>(scaled(2000, 200));
  std::mt19937 rng(42);
  std::vector<tasklet<int>> ts;
  for (int i = 0; i < n; ++i) {
    const auto d = std::chrono::microseconds(rng() % 20000);
    ts.push_back(sched().spawn([d, i] {
      const auto t0 = std::chrono::steady_clock::now();
      this_tasklet::sleep_for(d);
      return std::chrono::steady_clock::now() - t0 >= d ? i : -1;
    }));
  }
  for (int i = 0; i < n; ++i) EXPECT_EQ(ts[i].join(), i) << "tasklet " << i << " woke early";
}

TEST_P(SleepTest, PlainThreadSleepBlocksTheThread) {
  const auto t0 = std::chrono::steady_clock::now();
  this_tasklet::sleep_for(10ms);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 10ms);
}

TEST_P(SleepTest, APendingSleepIsNotADeadlock) {
  auto o = opts();
  o.deadlock_grace = 50ms;
  auto& s = sched(std::move(o));
  auto t = s.spawn([] {
    this_tasklet::sleep_for(300ms);
    return 7;
  });
  EXPECT_EQ(t.join(), 7);
  EXPECT_EQ(s.block_on([] {
    auto c = stackless::spawn([] {
      this_tasklet::sleep_for(200ms);
      return 1;
    });
    return c.join();
  }),
            1);
}

}  // namespace
