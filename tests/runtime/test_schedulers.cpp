// SPDX-License-Identifier: Apache-2.0
// test_schedulers.cpp — schedulers as values: created and destroyed 1,000 times, several at once,
// tasklets of one joining / waking / killing tasklets of another, shutdown() semantics (idempotent,
// kills live tasklets, refuses new work), workers = 0.
#include <string>
#include <thread>
#include <vector>

#include "fixture.hpp"

namespace {

using namespace stackless_test;
using stackless::tasklet;
using stackless::usage_error;
namespace this_tasklet = stackless::this_tasklet;

stackless::options with_workers(unsigned w) {
  stackless::options o;
  o.workers = w;
  o.deadlock_grace = 5s;
  return o;
}

/// start() makes sure s has its worker thread(s): with workers = 1 none starts before a plain
/// thread first waits, and these tests poll from plain threads.
void start(stackless::scheduler& s) {
  s.block_on([] {});
}

class SchedulersTest : public ::testing::TestWithParam<unsigned> {
 protected:
  unsigned workers() const { return GetParam(); }
};
INSTANTIATE_TEST_SUITE_P(Workers, SchedulersTest, ::testing::Values(1u, 2u, 4u), worker_count_name);

TEST_P(SchedulersTest, CreateAndDestroyAThousandTimes) {
  const int rounds = static_cast<int>(scaled(1000, 60));
  std::atomic<int> ran{0}, unwound{0}, looper_started{0};
  watchdog w("create/destroy loop", 60s, [&] { return static_cast<std::uint64_t>(ran.load()); });
  for (int r = 0; r < rounds; ++r) {
    stackless::scheduler s(with_workers(workers()));
    auto a = s.spawn([&] {
      ran.fetch_add(1);
      this_tasklet::yield();
      return 1;
    });
    s.spawn([&] { ran.fetch_add(1); });
    auto c = s.spawn([&] {
      looper_started.fetch_add(1);
      raii_count guard(unwound);
      ran.fetch_add(1);
      for (;;) this_tasklet::yield();  // still running when the scheduler goes
    });
    if (r % 3 == 0) {
      EXPECT_EQ(s.block_on([] { return 2; }), 2);
    }
    EXPECT_EQ(a.join(), 1);
    if (r % 2 == 0) {
      expect_clean(s);  // an explicit shutdown(); the destructor then has nothing to do
    }
    // else: the destructor shuts down with `c` still looping
  }
  // Each round's looping tasklet was killed: if it had started, it unwound.
  EXPECT_EQ(unwound.load(), looper_started.load());
  EXPECT_GE(ran.load(), 2 * rounds);
}

TEST_P(SchedulersTest, CreateAndDestroyWithoutTasklets) {
  const int rounds = static_cast<int>(scaled(1000, 60));
  for (int r = 0; r < rounds; ++r) {
    stackless::scheduler s(with_workers(workers()));
    if (r % 2) s.shutdown();
  }
  SUCCEED();
}

TEST_P(SchedulersTest, ShutdownIsIdempotentAndRefusesNewWork) {
  stackless::scheduler s(with_workers(workers()));
  EXPECT_EQ(s.block_on([] { return 3; }), 3);
  s.shutdown();
  EXPECT_NO_THROW(s.shutdown());
  EXPECT_THROW(s.spawn([] {}), usage_error);
  EXPECT_THROW(s.block_on([] { return 1; }), usage_error);
  const auto st = s.stats();
  EXPECT_EQ(st.live, 0u);
  EXPECT_EQ(st.stacks_outstanding, 0u);
}

TEST_P(SchedulersTest, ShutdownKillsLiveTaskletsAndRunsTheirDestructors) {
  stackless::scheduler s(with_workers(workers()));
  start(s);
  std::atomic<int> unwound{0}, started{0};
  const int n = 40;
  std::vector<tasklet<int>> ts;
  for (int i = 0; i < n; ++i) {
    ts.push_back(s.spawn([&, i]() -> int {
      started.fetch_add(1);
      raii_count guard(unwound);
      if (i % 2) park_forever();
      for (;;) this_tasklet::yield();
    }));
  }
  ASSERT_TRUE(wait_until([&] { return started.load() == n; }));
  expect_clean(s);
  EXPECT_EQ(unwound.load(), n);
  for (auto& t : ts) {
    EXPECT_FALSE(t.alive());
    EXPECT_THROW(t.join(), stackless::tasklet_killed);
  }
}

TEST_P(SchedulersTest, PlainThreadJoinersWakeWhenShutdownKillsTheTarget) {
  stackless::scheduler s(with_workers(workers()));
  start(s);
  auto t = s.spawn([]() -> int {
    park_forever();
    return 0;
  });
  std::atomic<int> killed{0};
  std::vector<std::thread> joiners;
  for (int i = 0; i < 3; ++i) {
    joiners.emplace_back([&] {
      try {
        tasklet<int>(t).join();
      } catch (const stackless::tasklet_killed&) {
        killed.fetch_add(1);
      }
    });
  }
  ASSERT_TRUE(wait_until([&] { return t.blocked(); }));
  std::this_thread::sleep_for(10ms);  // let the joiners block (not required for correctness)
  expect_clean(s);
  for (auto& j : joiners) j.join();
  EXPECT_EQ(killed.load(), 3);
}

TEST_P(SchedulersTest, SpawnFromADyingTaskletDuringShutdownNeverRuns) {
  stackless::scheduler s(with_workers(workers()));
  start(s);
  std::atomic<bool> child_ran{false}, spawned{false}, threw{false}, started{false};
  struct spawn_on_unwind {
    stackless::scheduler& s;
    std::atomic<bool>& child_ran;
    std::atomic<bool>& spawned;
    std::atomic<bool>& threw;
    ~spawn_on_unwind() {
      try {
        auto child = s.spawn([flag = &child_ran] { *flag = true; });
        spawned = true;
      } catch (...) {  // spawn() must not throw here; a throw while unwinding would terminate
        threw = true;
      }
    }
  };
  s.spawn([&] {
    spawn_on_unwind g{s, child_ran, spawned, threw};
    started = true;
    for (;;) this_tasklet::yield();
  });
  ASSERT_TRUE(wait_until([&] { return started.load(); }));
  expect_clean(s);
  EXPECT_FALSE(threw.load()) << "spawn() inside a dying tasklet threw";
  EXPECT_TRUE(spawned.load());
  EXPECT_FALSE(child_ran.load())
      << "a tasklet spawned during shutdown must come back already killed";
}

TEST_P(SchedulersTest, TwoSchedulersAtOnce) {
  stackless::scheduler s1(with_workers(workers()));
  stackless::scheduler s2(with_workers(workers()));
  const int n = static_cast<int>(scaled(2000, 200));
  auto work = [n](stackless::scheduler& s) {
    auto* impl = s.impl();
    return s.block_on([n, impl] {
      std::vector<tasklet<int>> kids;
      for (int i = 0; i < n; ++i) {
        kids.push_back(stackless::spawn([impl, i] {
          EXPECT_EQ(stackless::detail::current_scheduler(), impl);
          this_tasklet::yield();
          return i;
        }));
      }
      long sum = 0;
      for (auto& k : kids) sum += k.join();
      return sum;
    });
  };
  long r1 = 0, r2 = 0;
  std::thread t1([&] { r1 = work(s1); });
  std::thread t2([&] { r2 = work(s2); });
  t1.join();
  t2.join();
  const long expect = static_cast<long>(n) * (n - 1) / 2;
  EXPECT_EQ(r1, expect);
  EXPECT_EQ(r2, expect);
  EXPECT_EQ(s1.stats().spawned, static_cast<std::uint64_t>(n) + 1);
  EXPECT_EQ(s2.stats().spawned, static_cast<std::uint64_t>(n) + 1);
  expect_clean(s1);
  expect_clean(s2);
}

TEST_P(SchedulersTest, ATaskletJoinsATaskletOfAnotherScheduler) {
  stackless::scheduler s1(with_workers(workers()));
  stackless::scheduler s2(with_workers(workers()));
  start(s1);
  start(s2);
  auto b = s2.spawn([] {
    for (int i = 0; i < 10; ++i) this_tasklet::yield();
    return 41;
  });
  EXPECT_EQ(s1.block_on([b]() mutable { return b.join() + 1; }), 42);
  // Both ways at once, many times.
  const int n = static_cast<int>(scaled(500, 50));
  auto c1 = s1.spawn([&s2, n] {
    int sum = 0;
    for (int i = 0; i < n; ++i) sum += s2.spawn([i] { return i; }).join();
    return sum;
  });
  auto c2 = s2.spawn([&s1, n] {
    int sum = 0;
    for (int i = 0; i < n; ++i) sum += s1.spawn([i] { return i; }).join();
    return sum;
  });
  EXPECT_EQ(c1.join(), n * (n - 1) / 2);
  EXPECT_EQ(c2.join(), n * (n - 1) / 2);
  expect_clean(s1);
  expect_clean(s2);
}

TEST_P(SchedulersTest, WakeAndKillAcrossSchedulers) {
  stackless::scheduler s1(with_workers(workers()));
  stackless::scheduler s2(with_workers(workers()));
  start(s1);
  start(s2);
  door d;
  auto sleeper = s2.spawn([&] {
    d.wait();
    return stackless::detail::current_scheduler();
  });
  // A tasklet of s1 wakes a tasklet of s2: it resumes on s2.
  s1.block_on([&] { EXPECT_TRUE(d.open()); });
  EXPECT_EQ(sleeper.join(), s2.impl());
  // A tasklet of s1 kills a parked tasklet of s2 and waits for its end.
  std::atomic<bool> unwound{false};
  auto victim = s2.spawn([&] {
    raii_flag guard(unwound);
    park_forever();
  });
  ASSERT_TRUE(wait_until([&] { return victim.blocked(); }));
  s1.block_on([victim]() mutable {
    victim.kill();
    EXPECT_FALSE(victim.alive());
  });
  EXPECT_TRUE(unwound.load());
  expect_clean(s1);
  expect_clean(s2);
}

// A workers = 1 scheduler whose thread has not started yet (no plain thread waited on it) is
// waited on by a tasklet of another scheduler: for it that tasklet is an outside waiter just like a
// plain thread, and nothing else will ever run it, so the wait must start it (as a plain thread's
// join does) rather than hang or be reported as a deadlock.
TEST(SchedulerWorkers, JoinFromAnotherSchedulerStartsAPumpModeScheduler) {
  stackless::scheduler s1(with_workers(1));
  stackless::options o = with_workers(1);
  stackless::scheduler s2(o);
  auto b = s2.spawn([] {
    this_tasklet::yield();
    return 41;
  });
  try {
    EXPECT_EQ(s1.block_on([b]() mutable { return b.join() + 1; }), 42);
  } catch (const stackless::deadlock_error& e) {
    ADD_FAILURE() << "a runnable tasklet of another scheduler was reported as a deadlock: "
                  << e.what();
  }
  expect_clean(s1);
  expect_clean(s2);
}

TEST(SchedulerWorkers, ZeroMeansOnePerHardwareThread) {
  stackless::options o;
  o.workers = 0;
  stackless::scheduler s(o);
  const unsigned hw = std::thread::hardware_concurrency();
  if (hw > 0) {
    EXPECT_EQ(s.workers(), hw);
  } else {
    EXPECT_GE(s.workers(), 1u);
  }
  EXPECT_EQ(s.stats().workers.size(), s.workers());
  EXPECT_EQ(s.block_on([] { return 1; }), 1);
  expect_clean(s);
}

TEST(SchedulerWorkers, DestroyingASchedulerWhileHandlesRemain) {
  tasklet<int> done, never;
  {
    stackless::scheduler s(with_workers(2));
    done = s.spawn([] { return 5; });
    never = s.spawn([]() -> int {
      park_forever();
      return 0;
    });
    EXPECT_EQ(done.join(), 5);
    ASSERT_TRUE(wait_until([&] { return never.blocked(); }));
  }  // ~scheduler: shutdown kills `never`; the handles outlive the scheduler
  EXPECT_FALSE(done.alive());
  EXPECT_FALSE(never.alive());
  EXPECT_EQ(done.join(), 5);
  EXPECT_THROW(never.join(), stackless::tasklet_killed);
}

}  // namespace
