// SPDX-License-Identifier: Apache-2.0
// test_future_task_group.cpp — task_group (sync/task_group.hpp), from tasklets and plain
// threads, over workers ∈ {1, 2, 4}: the first exception is rethrown and the other tasks are
// killed (they unwind); tasks run tasks; run() after cancel; cancel(); the destructor of an
// unwaited group; reuse.
// Orderings come from events and parks, never from sleeps; no test asserts how long anything took.
#include <functional>
#include <stdexcept>
#include <string>

#include "channel_fixture.hpp"

namespace {

using namespace stackless_test;
using sl::task_group;
using sl::usage_error;

class TaskGroup : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(TaskGroup);

// ---- task_group -------------------------------------------------------------------------------

TEST_P(TaskGroup, RunManyAndWait) {
  const int n = static_cast<int>(scaled(500, 100));
  std::atomic<int> count{0};
  auto task = [&] {
    this_tasklet::yield();
    count.fetch_add(1);
  };
  sched().block_on([&] {
    task_group g;  // inside a tasklet: the caller's scheduler
    for (int i = 0; i < n; ++i) g.run(task);
    g.wait();
    EXPECT_FALSE(g.cancelled());
  });
  EXPECT_EQ(count.load(), n);
  task_group g(sched());  // from a plain thread: the scheduler given
  for (int i = 0; i < n; ++i) g.run(task);
  g.wait();
  EXPECT_EQ(count.load(), 2 * n);
  // From a plain thread without a scheduler, run() cannot spawn.
  task_group nowhere;
  EXPECT_THROW(nowhere.run(task), usage_error);
  nowhere.wait();
}

// The first exception is rethrown by wait(); every other task, parked, is killed: it sees
// tasklet_exit and its destructors run.
TEST_P(TaskGroup, FirstExceptionIsRethrownAndTheOthersAreKilled) {
  for (int from_thread = 0; from_thread < 2; ++from_thread) {
    SCOPED_TRACE(from_thread ? "group on a plain thread" : "group in a tasklet");
    const int k = 6;
    sl::event never;
    std::atomic<int> started{0}, saw_exit{0}, unwound{0}, finished{0};
    auto scenario = [&] {
      task_group g = from_thread ? task_group(sched()) : task_group();
      for (int i = 0; i < k; ++i)
        g.run([&] {
          raii_count d(unwound);
          try {
            started.fetch_add(1);
            never.wait();
            finished.fetch_add(1);
          } catch (const tasklet_exit&) {
            saw_exit.fetch_add(1);
            throw;
          }
        });
      g.run([&] {
        yield_until([&] { return started.load() == k; });
        throw std::runtime_error("boom");
      });
      try {
        g.wait();
        ADD_FAILURE() << "wait() did not rethrow the task's exception";
      } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "boom");
      }
    };
    if (from_thread) {
      scenario();
    } else {
      sched().block_on(scenario);
    }
    EXPECT_EQ(saw_exit.load(), k);
    EXPECT_EQ(unwound.load(), k);
    EXPECT_EQ(finished.load(), 0);
  }
}

// Several tasks throw: wait() rethrows one of them, once; the group is reusable afterwards and
// its next round is neither cancelled nor failed.
TEST_P(TaskGroup, OneOfSeveralErrorsAndReuse) {
  task_group g(sched());
  std::atomic<int> count{0};
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const bool failing = round == 1;
    for (int i = 0; i < 8; ++i)
      g.run([&, i, failing] {
        this_tasklet::yield();
        if (failing) throw std::runtime_error(std::to_string(i));
        count.fetch_add(1);
      });
    if (failing) {
      try {
        g.wait();
        ADD_FAILURE() << "no exception";
      } catch (const std::runtime_error& e) {
        const int which = std::stoi(e.what());
        EXPECT_TRUE(which >= 0 && which < 8);
      }
    } else {
      g.wait();
    }
    EXPECT_FALSE(g.cancelled()) << "the group is still cancelled after wait()";
    EXPECT_EQ(count.load(), round == 2 ? 16 : 8);
  }
  g.wait();  // an empty group
}

TEST_P(TaskGroup, TasksStartedByTasks) {
  const int depth = static_cast<int>(scaled(7, 5));
  std::atomic<int> count{0};
  for (int from_thread = 0; from_thread < 2; ++from_thread) {
    count = 0;
    auto scenario = [&] {
      task_group g = from_thread ? task_group(sched()) : task_group();
      std::function<void(int)> node = [&](int d) {
        count.fetch_add(1);
        if (d == 0) return;
        for (int c = 0; c < 2; ++c) g.run([&node, d] { node(d - 1); });
        this_tasklet::yield();
      };
      g.run([&] { node(depth); });
      g.wait();
    };
    if (from_thread) {
      scenario();
    } else {
      sched().block_on(scenario);
    }
    EXPECT_EQ(count.load(), (1 << (depth + 1)) - 1) << "wait() returned before every task ended";
  }
}

// After cancel(), run() kills the new task at once: wait() does not wait for its park.
TEST_P(TaskGroup, RunAfterCancelIsKilledAtOnce) {
  for (int from_thread = 0; from_thread < 2; ++from_thread) {
    SCOPED_TRACE(from_thread ? "group on a plain thread" : "group in a tasklet");
    sl::event never;
    std::atomic<int> started{0}, finished{0}, ran_after{0};
    auto scenario = [&] {
      task_group g = from_thread ? task_group(sched()) : task_group();
      g.cancel();
      EXPECT_TRUE(g.cancelled());
      for (int i = 0; i < 4; ++i)
        g.run([&] {
          started.fetch_add(1);
          never.wait();
          finished.fetch_add(1);
        });
      if (!from_thread && workers() == 1) {
        EXPECT_EQ(started.load(), 0) << "a task run after cancel() ran (nobody else could take it)";
      }
      g.wait();  // no exception: cancel() is not an error
      EXPECT_FALSE(g.cancelled());
      g.run([&] { ran_after.fetch_add(1); });  // reused: runs normally
      g.wait();
    };
    if (from_thread) {
      scenario();
    } else {
      sched().block_on(scenario);
    }
    EXPECT_EQ(finished.load(), 0);
    EXPECT_EQ(ran_after.load(), 1);
  }
}

// cancel() kills the running tasks (from outside, and from one of the tasks, which itself goes
// on); wait() then returns normally.
TEST_P(TaskGroup, CancelKillsTheRunningTasks) {
  const int k = 5;
  sl::event never;
  std::atomic<int> started{0}, saw_exit{0}, finished{0};
  auto parker = [&] {
    try {
      started.fetch_add(1);
      never.wait();
      finished.fetch_add(1);
    } catch (const tasklet_exit&) {
      saw_exit.fetch_add(1);
      throw;
    }
  };
  {
    task_group g(sched());
    for (int i = 0; i < k; ++i) g.run(parker);
    ASSERT_TRUE(wait_until([&] { return started.load() == k; }));
    g.cancel();
    EXPECT_TRUE(g.cancelled());
    g.wait();
    EXPECT_EQ(saw_exit.load(), k);
  }
  {
    started = 0;
    saw_exit = 0;
    std::atomic<bool> canceller_done{false};
    task_group g(sched());
    for (int i = 0; i < k; ++i) g.run(parker);
    g.run([&] {
      yield_until([&] { return started.load() == k; });
      g.cancel();
      canceller_done = true;  // a task's own cancel() does not kill it
    });
    g.wait();
    EXPECT_EQ(saw_exit.load(), k);
    EXPECT_TRUE(canceller_done.load());
  }
  EXPECT_EQ(finished.load(), 0);
}

// The tasklet waiting in a group's wait() is killed: it unwinds, and the group's destructor kills
// the tasks and waits for them — all of them have ended when kill() returns.
TEST_P(TaskGroup, KilledOwnerTakesItsTasksAlong) {
  const int k = 5;
  sl::event never;
  std::atomic<int> started{0}, saw_exit{0}, owner_exit{0};
  auto owner = sched().spawn([&] {
    task_group g;
    for (int i = 0; i < k; ++i)
      g.run([&] {
        try {
          started.fetch_add(1);
          never.wait();
        } catch (const tasklet_exit&) {
          saw_exit.fetch_add(1);
          throw;
        }
      });
    try {
      g.wait();
    } catch (const tasklet_exit&) {
      owner_exit.fetch_add(1);
      throw;
    }
  });
  ASSERT_TRUE(wait_until([&] { return started.load() == k && owner.blocked(); }));
  owner.kill();
  EXPECT_EQ(owner_exit.load(), 1);
  EXPECT_EQ(saw_exit.load(), k) << "the owner's kill() returned before its group's tasks ended";
}

// Destroying a group nobody waited for kills what still runs and waits for it; an error nobody
// collected is dropped (no report).
TEST_P(TaskGroup, DestructorOfAnUnwaitedGroupKillsAndWaits) {
  const int k = 5;
  sl::event never;
  std::atomic<int> started{0}, unwound{0};
  auto parker = [&] {
    raii_count d(unwound);
    started.fetch_add(1);
    never.wait();
  };
  {
    task_group g(sched());
    for (int i = 0; i < k; ++i) g.run(parker);
    ASSERT_TRUE(wait_until([&] { return started.load() == k; }));
  }
  EXPECT_EQ(unwound.load(), k) << "the destructor returned before its tasks ended";
  sched().block_on([&] {
    task_group g;
    for (int i = 0; i < k; ++i) g.run(parker);
    g.run([&] {
      yield_until([&] { return started.load() == 2 * k; });
      throw std::runtime_error("nobody collects this");
    });
    yield_until([&] { return g.cancelled(); });
  });
  EXPECT_EQ(unwound.load(), 2 * k);
  // A group whose tasks were never started is destroyed too.
  sched().block_on([&] {
    task_group g;
    for (int i = 0; i < k; ++i) g.run(parker);
  });
  EXPECT_TRUE(wait_until([&] { return sched().stats().live == 0; }));
  // Teardown: expect_clean (nothing live, no stack held) and no unexpected error report.
}

}  // namespace
