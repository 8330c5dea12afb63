// SPDX-License-Identifier: Apache-2.0
// test_tasklet.cpp — the tasklet itself: handles, ids, names, the state machine as seen through
// alive/blocked/scheduled/paused, this_tasklet, the workers = 1 scheduling order, and the logic
// errors of calling tasklet-only functions from a plain thread.
#include <memory>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "fixture.hpp"

namespace {

using namespace stackless_test;
using stackless::tasklet;
using stackless::usage_error;
namespace this_tasklet = stackless::this_tasklet;

class TaskletTest : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(TaskletTest);

TEST_P(TaskletTest, BlockOnReturnsTheValue) {
  EXPECT_EQ(sched().block_on([] { return 6 * 7; }), 42);
  EXPECT_EQ(sched().block_on([] { return std::string("tasklet"); }), "tasklet");
  bool ran = false;
  sched().block_on([&] { ran = true; });
  EXPECT_TRUE(ran);
}

TEST_P(TaskletTest, SpawnPassesDecayedCopiesOfArguments) {
  std::string text = "abc";
  auto t = sched().spawn([](std::string s, int n) { return s + std::to_string(n); }, text, 7);
  text = "changed";
  EXPECT_EQ(t.join(), "abc7");

  auto u = sched().spawn([](std::unique_ptr<int> p) { return *p + 1; }, std::make_unique<int>(41));
  EXPECT_EQ(u.join(), 42);
}

TEST_P(TaskletTest, IdsAreUniqueAndNonZero) {
  std::vector<tasklet<std::uint64_t>> ts;
  for (int i = 0; i < 100; ++i) ts.push_back(sched().spawn([] { return this_tasklet::id(); }));
  std::set<std::uint64_t> ids;
  for (auto& t : ts) {
    const auto inside = t.join();
    EXPECT_NE(t.id(), 0u);
    EXPECT_EQ(inside, t.id()) << "this_tasklet::id() inside differs from the handle's id()";
    ids.insert(t.id());
  }
  EXPECT_EQ(ids.size(), ts.size());
}

TEST_P(TaskletTest, CurrentIsAHandleToTheCaller) {
  // The handle goes out through a variable, not the result: a tasklet whose result holds a handle
  // to itself is a reference cycle (like a shared_ptr that owns itself) and would leak.
  tasklet<void> seen;
  auto t = sched().spawn([&seen] {
    auto me = this_tasklet::current();
    EXPECT_TRUE(me);
    EXPECT_EQ(me.id(), this_tasklet::id());
    EXPECT_TRUE(me.alive());
    EXPECT_TRUE(me.scheduled()) << "a running tasklet is scheduled";
    EXPECT_FALSE(me.blocked());
    EXPECT_FALSE(me.paused());
    seen = me;
  });
  t.join();
  EXPECT_TRUE(seen == tasklet<void>(t)) << "current() and the spawn handle name the same tasklet";
  EXPECT_FALSE(seen.alive());
}

TEST_P(TaskletTest, NamesCanBeSetFromOutsideAndInside) {
  door d;
  auto t = sched().spawn([&] {
    d.wait();
    const std::string seen = this_tasklet::current().name();
    this_tasklet::current().set_name("renamed-inside");
    return seen;
  });
  t.set_name("worker-bee");
  EXPECT_EQ(t.name(), "worker-bee");
  d.open();
  EXPECT_EQ(t.join(), "worker-bee");
  EXPECT_EQ(t.name(), "renamed-inside");
}

TEST_P(TaskletTest, CopiesShareTheTaskletAndDroppingDetaches) {
  std::atomic<int> ran{0};
  {
    auto t = sched().spawn([&] {
      this_tasklet::yield();
      ran.fetch_add(1);
    });
    tasklet<void> copy = t;
    EXPECT_TRUE(copy == tasklet<void>(t));
    EXPECT_EQ(copy.id(), t.id());
    tasklet<void> moved = std::move(copy);
    EXPECT_FALSE(copy);  // NOLINT(bugprone-use-after-move): a moved-from handle is empty
    EXPECT_TRUE(moved);
  }
  // Every handle is gone: the tasklet is detached and still runs to its end.
  for (int i = 0; i < 10; ++i) sched().spawn([&] { ran.fetch_add(1); });
  sched().drain();
  EXPECT_EQ(ran.load(), 11);
  EXPECT_EQ(sched().stats().live, 0u);
}

TEST_P(TaskletTest, StatePredicatesFollowTheStateMachine) {
  door d;
  auto t = sched().spawn([&] {
    d.wait();
    return 1;
  });
  // Parked through the door: alive, blocked, scheduled (Stackless: blocked counts as scheduled).
  ASSERT_TRUE(wait_until([&] { return d.occupied() && t.blocked(); }));
  EXPECT_TRUE(t.alive());
  EXPECT_TRUE(t.blocked());
  EXPECT_TRUE(t.scheduled());
  EXPECT_FALSE(t.paused());
  EXPECT_TRUE(d.open());
  EXPECT_EQ(t.join(), 1);
  // Dead: nothing.
  EXPECT_FALSE(t.alive());
  EXPECT_FALSE(t.blocked());
  EXPECT_FALSE(t.scheduled());
  EXPECT_FALSE(t.paused());
}

TEST_P(TaskletTest, StatePredicatesOfARunnableTaskletSeenFromAnother) {
  sched().block_on([] {
    std::atomic<bool> stop{false};
    auto spinner = stackless::spawn([&] {
      while (!stop.load()) this_tasklet::yield();
    });
    for (int i = 0; i < 5; ++i) {
      EXPECT_TRUE(spinner.alive());
      EXPECT_TRUE(spinner.scheduled()) << "runnable or running";
      EXPECT_FALSE(spinner.blocked());
      EXPECT_FALSE(spinner.paused());
      this_tasklet::yield();
    }
    stop = true;
    spinner.join();
    EXPECT_FALSE(spinner.alive());
  });
}

TEST_P(TaskletTest, FreeSpawnInsideATaskletUsesTheSameScheduler) {
  auto* impl = sched().impl();
  const bool same = sched().block_on([impl] {
    auto child = stackless::spawn([] { return stackless::detail::current_scheduler(); });
    return child.join() == impl && stackless::detail::current_scheduler() == impl;
  });
  EXPECT_TRUE(same);
}

TEST_P(TaskletTest, SpawnedCountsInStats) {
  const auto before = sched().stats().spawned;
  for (int i = 0; i < 25; ++i) sched().spawn([] {});
  sched().drain();
  const auto st = sched().stats();
  EXPECT_EQ(st.spawned, before + 25);
  EXPECT_EQ(st.live, 0u);
  EXPECT_EQ(st.workers.size(), workers());
  EXPECT_EQ(sched().workers(), workers());
}

TEST_P(TaskletTest, AtomicScopesNest) {
  sched().block_on([] {
    EXPECT_FALSE(this_tasklet::in_atomic());
    {
      this_tasklet::atomic a;
      EXPECT_TRUE(this_tasklet::in_atomic());
      {
        this_tasklet::atomic b;
        EXPECT_TRUE(this_tasklet::in_atomic());
      }
      EXPECT_TRUE(this_tasklet::in_atomic());
    }
    EXPECT_FALSE(this_tasklet::in_atomic());
  });
}

TEST_P(TaskletTest, CheckpointIsHarmlessWithoutAnInterrupt) {
  EXPECT_EQ(sched().block_on([] {
    int n = 0;
    for (int i = 0; i < 1000; ++i) {
      this_tasklet::checkpoint();
      ++n;
    }
    return n;
  }),
            1000);
}

TEST_P(TaskletTest, EmptyHandleOperationsThrowUsageError) {
  tasklet<int> empty;
  EXPECT_FALSE(empty);
  EXPECT_FALSE(empty.alive());
  EXPECT_FALSE(empty.blocked());
  EXPECT_FALSE(empty.scheduled());
  EXPECT_FALSE(empty.paused());
  EXPECT_THROW(empty.join(), usage_error);
  EXPECT_THROW(empty.join_for(1ms), usage_error);
  EXPECT_THROW(empty.kill(), usage_error);
  EXPECT_THROW(empty.raise_exception(std::make_exception_ptr(std::runtime_error("x"))),
               usage_error);
  EXPECT_THROW(empty.pause(), usage_error);
  EXPECT_THROW(empty.resume(), usage_error);
  EXPECT_THROW(empty.id(), usage_error);
  EXPECT_THROW(empty.name(), usage_error);
  EXPECT_THROW(empty.set_name("x"), usage_error);
  // The same inside a tasklet.
  sched().block_on([] {
    tasklet<void> e;
    EXPECT_THROW(e.join(), usage_error);
    EXPECT_THROW(e.kill(), usage_error);
  });
}

TEST_P(TaskletTest, UsageErrorIsALogicError) {
  static_assert(std::is_base_of_v<std::logic_error, usage_error>);
  static_assert(!std::is_base_of_v<std::exception, stackless::tasklet_exit>,
                "tasklet_exit must not be caught by catch (const std::exception&)");
  static_assert(std::is_base_of_v<std::runtime_error, stackless::deadlock_error>);
  SUCCEED();
}

// The order on one worker: a new tasklet goes to runnext and runs next (the previous occupant
// drops to the LIFO local deque); yield() goes to the back. Main spawns A, B, C, then yields.
TEST(TaskletOrder, OneWorkerRunsNewestFirstAndTheYielderLast) {
  if (chaos_mode()) GTEST_SKIP() << "asserts the order on one worker; chaos mode shuffles it";
  stackless::options o;
  o.workers = 1;
  stackless::scheduler s(o);
  std::vector<std::string> order;  // one worker: no data race
  s.block_on([&] {
    stackless::spawn([&] { order.push_back("A"); });
    stackless::spawn([&] { order.push_back("B"); });
    stackless::spawn([&] { order.push_back("C"); });
    this_tasklet::yield();
    order.push_back("main");
  });
  EXPECT_EQ(order, (std::vector<std::string>{"C", "B", "A", "main"}));
  expect_clean(s);
}

// raii_flag_log records that the killed tasklet of determinism_program() unwound.
struct raii_flag_log {
  std::vector<std::string>& log;
  ~raii_flag_log() { log.push_back("victim:unwound"); }
};

// determinism_program() mixes spawn, yield, join, door wakes, kill and pause, and records the
// order in which things happen.
std::vector<std::string> determinism_program(bool pump) {
  stackless::options o;
  o.workers = 1;
  stackless::scheduler s(o);
  std::vector<std::string> log;
  auto root = [&] {
    door d;
    std::vector<tasklet<int>> kids;
    for (int i = 0; i < 6; ++i) {
      kids.push_back(stackless::spawn([&, i] {
        log.push_back("kid" + std::to_string(i) + ":start");
        for (int k = 0; k < i % 3; ++k) {
          this_tasklet::yield();
          log.push_back("kid" + std::to_string(i) + ":y" + std::to_string(k));
        }
        if (i == 2) {
          d.wait();
          log.push_back("kid2:woken");
        }
        if (i == 4) {
          auto grandchild = stackless::spawn([&] {
            log.push_back("grandchild");
            return 40;
          });
          return grandchild.join() + i;
        }
        return i;
      }));
    }
    auto victim = stackless::spawn([&] {
      raii_flag_log guard{log};
      for (;;) {
        this_tasklet::yield();
        log.push_back("victim:y");
      }
    });
    auto sleeper = stackless::spawn([&] { log.push_back("sleeper:run"); });
    sleeper.pause();
    this_tasklet::yield();
    log.push_back("root:after-yield");
    d.open();
    victim.kill();
    log.push_back("root:killed");
    sleeper.resume();
    int sum = 0;
    for (auto& k : kids) sum += k.join();
    log.push_back("root:sum=" + std::to_string(sum));
  };
  if (pump) {
    s.spawn(root);
    s.run();
  } else {
    s.block_on(root);
  }
  s.drain();
  expect_clean(s);
  return log;
}

TEST(TaskletOrder, OneWorkerIsDeterministic) {
  const auto first = determinism_program(false);
  const auto second = determinism_program(false);
  EXPECT_EQ(first, second);
  EXPECT_GT(first.size(), 10u);
  const auto pumped1 = determinism_program(true);
  const auto pumped2 = determinism_program(true);
  EXPECT_EQ(pumped1, pumped2);
}

// Logic errors: tasklet-only calls from a plain thread.
TEST(TaskletUsage, ThisTaskletCallsFromAPlainThreadThrow) {
  EXPECT_THROW(this_tasklet::yield(), usage_error);
  EXPECT_THROW(this_tasklet::id(), usage_error);
  EXPECT_THROW(this_tasklet::current(), usage_error);
  EXPECT_THROW(stackless::spawn([] {}), usage_error);
  // The message says what was wrong.
  try {
    this_tasklet::yield();
  } catch (const usage_error& e) {
    EXPECT_GT(std::string(e.what()).size(), 10u) << e.what();
  }
  // From another plain thread too.
  std::thread([] {
    EXPECT_THROW(this_tasklet::yield(), usage_error);
    EXPECT_THROW(stackless::spawn([] { return 1; }), usage_error);
  }).join();
}

}  // namespace
