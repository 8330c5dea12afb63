// SPDX-License-Identifier: Apache-2.0
// test_deadlock.cpp — deadlock detection: when the tasklet a join()/block_on() caller waits for
// can never be woken (every tasklet parked, nothing runnable, no timer), the caller gets
// deadlock_error listing every blocked tasklet (id, name, what it waits on). No false alarm while
// anything is runnable or a timed park is pending; deadlock_grace = 0 turns detection off.
// Tasklets park forever through the internal door (park.hpp) until channels exist.
#include <string>
#include <vector>

#include "fixture.hpp"

namespace {

using namespace stackless_test;
using stackless::deadlock_error;
using stackless::tasklet;
namespace this_tasklet = stackless::this_tasklet;

class DeadlockTest : public runtime_test {
 protected:
  void SetUp() override {
    runtime_test::SetUp();
    // Tasklets of these tests may end with deadlock_error (if the runtime interrupts tasklet
    // joiners) and be reported when detached; that is allowed here.
    ignore_error_reports_ = true;
  }
  /// dsched() is the test's scheduler with a short grace.
  stackless::scheduler& dsched(std::chrono::milliseconds grace = 50ms) {
    auto o = opts();
    o.deadlock_grace = grace;
    return sched(std::move(o));
  }
  /// finish() kills t and joins it, whatever it ended with.
  template <class R>
  static void finish(tasklet<R>& t) {
    t.kill();
    try {
      t.join();
    } catch (...) {
    }
    EXPECT_FALSE(t.alive());
  }
  static bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
  }
};
STACKLESS_INSTANTIATE_WORKERS(DeadlockTest);

TEST_P(DeadlockTest, JoinOfAForeverParkedTaskletThrows) {
  auto& s = dsched();
  std::atomic<bool> unwound{false};
  auto t = s.spawn([&] {
    raii_flag guard(unwound);
    park_forever("test-door");
  });
  t.set_name("sleepy");
  std::string what;
  try {
    t.join();
    ADD_FAILURE() << "join() returned";
  } catch (const deadlock_error& e) {
    what = e.what();
  }
  EXPECT_TRUE(contains(what, "test-door")) << what;
  EXPECT_TRUE(contains(what, std::to_string(t.id()))) << what;
  EXPECT_TRUE(contains(what, "sleepy")) << what;
  finish(t);
  EXPECT_TRUE(unwound.load());
}

TEST_P(DeadlockTest, BlockOnThrows) {
  auto& s = dsched();
  EXPECT_THROW(s.block_on([] { park_forever("test-door"); }), deadlock_error);
  EXPECT_THROW(s.block_on([]() -> int {
    park_forever("test-door");
    return 0;
  }),
               deadlock_error);
  // The scheduler still works; shutdown() at teardown kills the two parked tasklets.
  EXPECT_EQ(s.block_on([] { return 4; }), 4);
}

TEST_P(DeadlockTest, ReportListsEveryBlockedTaskletAndWhatItWaitsOn) {
  auto& s = dsched();
  auto a = s.spawn([] { park_forever("test-door"); });
  a.set_name("alpha");
  auto b = s.spawn([a]() mutable { a.join(); });
  b.set_name("beta");
  std::string what;
  try {
    b.join();
    ADD_FAILURE() << "join() returned";
  } catch (const deadlock_error& e) {
    what = e.what();
  }
  EXPECT_TRUE(contains(what, "alpha")) << what;
  EXPECT_TRUE(contains(what, "beta")) << what;
  EXPECT_TRUE(contains(what, std::to_string(a.id()))) << what;
  EXPECT_TRUE(contains(what, std::to_string(b.id()))) << what;
  EXPECT_TRUE(contains(what, "test-door")) << what;
  EXPECT_TRUE(contains(what, "join")) << "beta waits on a join of alpha: " << what;
  finish(b);
  finish(a);
}

TEST_P(DeadlockTest, MutualJoinIsADeadlock) {
  auto& s = dsched();
  std::atomic<bool> ready{false};
  tasklet<void> a, b;
  a = s.spawn([&] {
    while (!ready.load()) this_tasklet::yield();
    b.join();
  });
  b = s.spawn([&] {
    while (!ready.load()) this_tasklet::yield();
    a.join();
  });
  ready = true;
  try {
    a.join();
    ADD_FAILURE() << "join() returned";
  } catch (const deadlock_error& e) {
    const std::string what = e.what();
    EXPECT_TRUE(contains(what, std::to_string(a.id()))) << what;
    EXPECT_TRUE(contains(what, std::to_string(b.id()))) << what;
  }
  finish(a);
  finish(b);
}

TEST_P(DeadlockTest, ATaskletJoinerGetsTheErrorAndCanRecover) {
  auto& s = dsched();
  const std::string what = s.block_on([] {
    auto sleeper = stackless::spawn([] { park_forever("test-door"); });
    std::string msg;
    try {
      sleeper.join();
    } catch (const deadlock_error& e) {
      msg = e.what();
    }
    sleeper.kill();
    EXPECT_FALSE(sleeper.alive());
    return msg;
  });
  EXPECT_TRUE(contains(what, "test-door")) << what;
}

TEST_P(DeadlockTest, LongChainAcrossWorkers) {
  auto& s = dsched();
  const int n = 16;
  std::vector<tasklet<void>> chain;
  chain.push_back(s.spawn([] { park_forever("chain-end"); }));
  for (int i = 1; i < n; ++i)
    chain.push_back(s.spawn([prev = chain.back()]() mutable { prev.join(); }));
  std::string what;
  try {
    chain.back().join();
    ADD_FAILURE() << "join() returned";
  } catch (const deadlock_error& e) {
    what = e.what();
  }
  EXPECT_TRUE(contains(what, "chain-end")) << what;
  EXPECT_TRUE(contains(what, std::to_string(chain.front().id()))) << what;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) finish(*it);
}

TEST_P(DeadlockTest, NoFalseAlarmWhileSomethingIsRunnable) {
  auto& s = dsched();
  door d;
  auto waiter = s.spawn([&] {
    d.wait();
    return 1;
  });
  // A busy tasklet that yields for many grace periods before it opens the door.
  auto busy = s.spawn([&] {
    const auto end = std::chrono::steady_clock::now() + 300ms;
    while (std::chrono::steady_clock::now() < end) this_tasklet::yield();
    d.open();
  });
  EXPECT_EQ(waiter.join(), 1);
  busy.join();
}

TEST_P(DeadlockTest, NoFalseAlarmWhileATimedParkIsPending) {
  auto& s = dsched();
  auto t = s.spawn([] {
    stackless::detail::prepare_park("timed");
    auto nothing = [] {};
    const auto r = stackless::detail::park(nothing, stackless::detail::now_ns() + 300'000'000);
    stackless::detail::throw_if_interrupted();
    return r;
  });
  EXPECT_EQ(t.join(), stackless::detail::wake_reason::timeout);
}

// A timed wait that ended early (join_for, a sleep cut short by kill) must not keep deadlock
// detection off until its deadline passes: its timer is no longer pending.
TEST_P(DeadlockTest, DetectedAfterTimedWaitsThatEndedEarly) {
  auto& s = dsched();
  auto quick = s.spawn([] { return 1; });
  EXPECT_TRUE(s.block_on([quick]() mutable { return quick.join_for(std::chrono::hours(1)); }));
  auto sleeper = s.spawn([] { this_tasklet::sleep_for(std::chrono::hours(1)); });
  ASSERT_TRUE(wait_until([&] { return sleeper.blocked(); }));
  sleeper.kill();
  std::atomic<std::uint64_t> done{0};
  watchdog w(
      "deadlock detection after early-ended timed waits", 30s, [&] { return done.load(); },
      [&] { return describe(s.stats()); });
  auto t = s.spawn([] { park_forever("test-door"); });
  EXPECT_THROW(t.join(), deadlock_error);
  done = 1;
  finish(t);
}

TEST_P(DeadlockTest, GraceZeroTurnsDetectionOff) {
  auto& s = dsched(0ms);
  auto t = s.spawn([] { park_forever("test-door"); });
  EXPECT_FALSE(t.join_for(300ms));
  EXPECT_TRUE(t.alive());
  EXPECT_TRUE(t.blocked());
  finish(t);
}

TEST_P(DeadlockTest, SchedulerWorksAfterADeadlock) {
  auto& s = dsched();
  for (int round = 0; round < 3; ++round) {
    auto t = s.spawn([] { park_forever("test-door"); });
    EXPECT_THROW(t.join(), deadlock_error);
    finish(t);
    EXPECT_EQ(s.block_on([] {
      auto c = stackless::spawn([] { return 20; });
      return c.join() + 1;
    }),
              21);
  }
}

}  // namespace
