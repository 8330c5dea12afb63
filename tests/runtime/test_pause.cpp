// SPDX-License-Identifier: Apache-2.0
// test_pause.cpp — pause()/resume() (Stackless remove()/insert()): a paused tasklet is alive but
// does not run until resumed; pausing a blocked, running or dead tasklet is a usage_error;
// resuming a dead one is a usage_error, a runnable or blocked one is left alone.
#include <thread>
#include <vector>

#include "fixture.hpp"

namespace {

using namespace stackless_test;
using stackless::tasklet;
using stackless::usage_error;
namespace this_tasklet = stackless::this_tasklet;

class PauseTest : public runtime_test {
 protected:
  /// fillers() keeps every worker busy with yield loops (the scheduler keeps switching while a
  /// tasklet is paused); setting `stop` ends them.
  std::vector<tasklet<void>> fillers(std::atomic<bool>& stop) {
    std::vector<tasklet<void>> fs;
    for (unsigned i = 0; i < 2 * workers(); ++i) {
      fs.push_back(sched().spawn([&stop] {
        while (!stop.load()) this_tasklet::yield();
      }));
    }
    return fs;
  }
};
STACKLESS_INSTANTIATE_WORKERS(PauseTest);

TEST_P(PauseTest, APausedTaskletDoesNotRunUntilResumed) {
  std::atomic<int> count{0}, filler_loops{0};
  std::atomic<bool> stop{false}, stop_fillers{false};
  auto fs = fillers(stop_fillers);
  auto counter = sched().spawn([&] {
    while (!stop_fillers.load()) {
      filler_loops.fetch_add(1);
      this_tasklet::yield();
    }
  });
  door d;
  auto t = sched().spawn([&] {
    for (;;) {
      d.wait();
      count.fetch_add(1);
      if (stop.load()) return;
    }
  });
  sched().block_on([&] { pause_parked_on(t, d); });
  EXPECT_TRUE(t.paused());
  EXPECT_TRUE(t.alive());
  EXPECT_FALSE(t.scheduled());
  EXPECT_FALSE(t.blocked());
  const int frozen = count.load();
  // The others keep running; the paused tasklet does not.
  const int loops = filler_loops.load();
  ASSERT_TRUE(wait_until([&] { return filler_loops.load() > loops + 100; }));
  std::this_thread::sleep_for(10ms);
  EXPECT_EQ(count.load(), frozen);
  EXPECT_FALSE(t.join_for(5ms)) << "a paused tasklet cannot end";
  EXPECT_TRUE(t.paused());
  t.resume();
  EXPECT_FALSE(t.paused());
  ASSERT_TRUE(wait_until([&] { return count.load() == frozen + 1; }));
  stop = true;
  d.open();
  t.join();
  EXPECT_EQ(count.load(), frozen + 2);
  stop_fillers = true;
  for (auto& f : fs) f.join();
  counter.join();
}

TEST_P(PauseTest, PauseInsideATaskletOnANotYetStartedOne) {
  sched().block_on([] {
    std::atomic<bool> ran{false};
    auto t = stackless::spawn([&] { ran = true; });
    bool paused = false;
    try {
      t.pause();  // with one worker it is surely in runnext; with more a thief may have it
      paused = true;
    } catch (const usage_error&) {
    }
    if (paused) {
      EXPECT_TRUE(t.paused());
      for (int i = 0; i < 20; ++i) this_tasklet::yield();
      EXPECT_FALSE(ran.load());
      EXPECT_TRUE(t.alive());
      t.resume();
    }
    t.join();
    EXPECT_TRUE(ran.load());
  });
}

TEST(PauseOneWorker, PausedNewTaskletIsSkippedByTheRunLoop) {
  stackless::options o;
  o.workers = 1;
  stackless::scheduler s(o);
  std::vector<std::string> order;
  s.block_on([&] {
    auto a = stackless::spawn([&] { order.push_back("a"); });
    auto b = stackless::spawn([&] { order.push_back("b"); });
    a.pause();
    EXPECT_TRUE(a.paused());
    this_tasklet::yield();
    order.push_back("main");
    a.resume();
    a.join();
  });
  EXPECT_EQ(order, (std::vector<std::string>{"b", "main", "a"}));
  expect_clean(s);
}

TEST_P(PauseTest, PausingABlockedTaskletIsAUsageError) {
  door d;
  auto t = sched().spawn([&] { d.wait(); });
  ASSERT_TRUE(wait_until([&] { return d.occupied() && t.blocked(); }));
  EXPECT_THROW(t.pause(), usage_error);
  EXPECT_TRUE(t.blocked()) << "the failed pause must leave it blocked";
  EXPECT_FALSE(t.paused());
  // resume() of a blocked tasklet does nothing.
  EXPECT_NO_THROW(t.resume());
  EXPECT_TRUE(t.blocked());
  d.open();
  t.join();
}

TEST_P(PauseTest, PausingYourselfIsAUsageError) {
  sched().block_on([] { EXPECT_THROW(this_tasklet::current().pause(), usage_error); });
}

TEST_P(PauseTest, PausingOrResumingADeadTaskletIsAUsageError) {
  auto t = sched().spawn([] {});
  t.join();
  EXPECT_THROW(t.pause(), usage_error);
  EXPECT_THROW(t.resume(), usage_error);
  sched().block_on([t]() mutable { EXPECT_THROW(t.resume(), usage_error); });
}

TEST_P(PauseTest, ResumeOfARunnableTaskletDoesNothing) {
  std::atomic<int> runs{0};
  std::atomic<bool> stop{false};
  auto t = sched().spawn([&] {
    while (!stop.load()) {
      runs.fetch_add(1);
      this_tasklet::yield();
    }
  });
  for (int i = 0; i < 100; ++i) EXPECT_NO_THROW(t.resume());
  ASSERT_TRUE(wait_until([&] { return runs.load() > 10; }));
  stop = true;
  t.join();
}

TEST_P(PauseTest, PauseResumeManyTimes) {
  const int rounds = static_cast<int>(scaled(2000, 200));
  sched().block_on([rounds] {
    std::atomic<int> count{0};
    std::atomic<bool> stop{false};
    auto t = stackless::spawn([&] {
      while (!stop.load()) {
        count.fetch_add(1);
        this_tasklet::yield();
      }
    });
    int paused = 0;
    for (int i = 0; i < rounds; ++i) {
      try {
        t.pause();
      } catch (const usage_error&) {  // it was running on another worker
        this_tasklet::yield();
        continue;
      }
      ++paused;
      EXPECT_TRUE(t.paused());
      this_tasklet::yield();
      t.resume();
      this_tasklet::yield();
    }
    stop = true;
    t.join();
    EXPECT_GT(paused, 0);
    EXPECT_GT(count.load(), 0);
  });
}

TEST_P(PauseTest, ResumedTaskletCanBeJoinedFromAPlainThread) {
  door d;
  auto t = sched().spawn([&] {
    for (;;) d.wait();  // a kill ends it
  });
  sched().block_on([&] { pause_parked_on(t, d); });
  ASSERT_TRUE(t.paused());
  std::atomic<bool> joined{false};
  std::thread joiner([&] {
    tasklet<void>(t).join();  // blocks: paused
    joined = true;
  });
  EXPECT_FALSE(t.join_for(10ms));
  EXPECT_FALSE(joined.load());
  t.resume();  // it parks on the door again …
  ASSERT_TRUE(wait_until([&] { return d.occupied(); }));
  t.kill();  // … and a kill ends it
  joiner.join();
  EXPECT_TRUE(joined.load());
}

}  // namespace
