// SPDX-License-Identifier: Apache-2.0
// test_run_for.cpp — pump mode on one worker: run() (Stackless run()) makes the calling thread the
// worker until nothing is runnable; run_for(slice) (Stackless run(timeout)) also returns the
// tasklet that ran longer than `slice` without switching, paused, for the host to resume() or
// kill(). Both throw usage_error with more than one worker or once a worker thread started.
#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "fixture.hpp"

namespace {

using namespace stackless_test;
using stackless::tasklet;
using stackless::usage_error;
namespace this_tasklet = stackless::this_tasklet;

/// busy() burns the CPU for `d` without switching — an uncooperative tasklet.
void busy(std::chrono::milliseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
  }
}

class RunForTest : public ::testing::Test {
 protected:
  RunForTest() {
    stackless::options o;
    o.workers = 1;
    o.deadlock_grace = 5s;
    o.on_error = errors_.sink();
    s_ = std::make_unique<stackless::scheduler>(std::move(o));
  }
  void TearDown() override {
    expect_clean(*s_);
    for (const auto& r : errors_.take())
      ADD_FAILURE() << "unexpected on_error report: " << report_text(r);
  }
  stackless::scheduler& s() { return *s_; }

  error_log errors_;
  std::unique_ptr<stackless::scheduler> s_;
};

TEST_F(RunForTest, RunRunsEverythingOnTheCallingThread) {
  const auto caller = std::this_thread::get_id();
  std::vector<std::string> log;  // the calling thread is the worker: no race
  std::atomic<bool> other_thread{false};
  for (int i = 0; i < 3; ++i) {
    s().spawn([&, i] {
      if (std::this_thread::get_id() != caller) other_thread = true;
      for (int k = 0; k < 3; ++k) {
        log.push_back(std::to_string(i) + "." + std::to_string(k));
        this_tasklet::yield();
      }
    });
  }
  s().run();
  EXPECT_FALSE(other_thread.load()) << "run() must use the calling thread as the worker";
  EXPECT_EQ(log.size(), 9u);
  EXPECT_EQ(s().stats().live, 0u);
  // run() again with nothing to do returns at once.
  s().run();
}

TEST_F(RunForTest, RunLeavesBlockedTaskletsAndCanBeCalledAgain) {
  door d;
  std::atomic<int> stage{0};
  auto t = s().spawn([&] {
    stage = 1;
    d.wait();
    stage = 2;
    return 5;
  });
  s().run();  // returns: the only tasklet is blocked ("do not assume they have all completed")
  EXPECT_EQ(stage.load(), 1);
  EXPECT_TRUE(t.alive());
  EXPECT_TRUE(t.blocked());
  // The host wakes it (as an event loop would) and pumps again.
  EXPECT_TRUE(d.open());
  s().run();
  EXPECT_EQ(stage.load(), 2);
  EXPECT_FALSE(t.alive());
  EXPECT_EQ(t.join(), 5);
}

TEST_F(RunForTest, RunForReturnsAnEmptyHandleWhenIdle) {
  std::atomic<int> done{0};
  for (int i = 0; i < 10; ++i) {
    s().spawn([&] {
      this_tasklet::yield();
      done.fetch_add(1);
    });
  }
  // A slice no well-behaved tasklet here comes near (this is a hang guard, not a timing claim).
  auto over = s().run_for(30s);
  EXPECT_FALSE(over);
  EXPECT_EQ(done.load(), 10);
  EXPECT_FALSE(s().run_for(30s)) << "nothing to run";
}

TEST_F(RunForTest, RunForReturnsTheTaskletThatOverranItsSlice) {
  std::atomic<int> stage{0};
  auto hog = s().spawn([&] {
    stage = 1;
    busy(30ms);             // ≫ the 1 ms slice, without switching
    this_tasklet::yield();  // the overrun is noticed here
    stage = 2;
    this_tasklet::yield();
    stage = 3;
  });
  hog.set_name("hog");
  auto over = s().run_for(1ms);
  ASSERT_TRUE(over);
  EXPECT_EQ(over.id(), hog.id());
  EXPECT_EQ(over.name(), "hog");
  EXPECT_TRUE(over.alive());
  EXPECT_TRUE(over.paused()) << "the overrunning tasklet is taken out of the run queue";
  EXPECT_FALSE(over.scheduled());
  EXPECT_EQ(stage.load(), 1);
  // Paused: pumping again does not run it.
  EXPECT_FALSE(s().run_for(30s));
  EXPECT_EQ(stage.load(), 1);
  // The host puts it back.
  over.resume();
  EXPECT_FALSE(s().run_for(30s));
  EXPECT_EQ(stage.load(), 3);
  EXPECT_FALSE(hog.alive());
}

TEST_F(RunForTest, OthersRunWhileTheOverrunnerIsPaused) {
  std::atomic<int> hog_steps{0}, good{0};
  auto hog = s().spawn([&] {
    for (;;) {
      busy(20ms);
      hog_steps.fetch_add(1);
      this_tasklet::yield();
    }
  });
  for (int i = 0; i < 5; ++i) {
    s().spawn([&] {
      for (int k = 0; k < 3; ++k) this_tasklet::yield();
      good.fetch_add(1);
    });
  }
  auto over = s().run_for(1ms);
  ASSERT_TRUE(over);
  EXPECT_EQ(over.id(), hog.id());
  const int steps = hog_steps.load();
  // With the hog paused, the rest finishes and the pump goes idle.
  EXPECT_FALSE(s().run_for(30s));
  EXPECT_EQ(good.load(), 5);
  EXPECT_EQ(hog_steps.load(), steps);
  // kill(pending) from the host, then one more pump lets it unwind.
  over.kill(true);
  EXPECT_FALSE(s().run_for(30s));
  EXPECT_FALSE(hog.alive());
}

TEST_F(RunForTest, OverrunnerCanBeKilledAndUnwinds) {
  std::atomic<bool> unwound{false};
  auto hog = s().spawn([&] {
    raii_flag guard(unwound);
    busy(30ms);
    this_tasklet::yield();
    ADD_FAILURE() << "the overrunning tasklet ran on after being returned by run_for()";
  });
  auto over = s().run_for(1ms);
  ASSERT_TRUE(over);
  EXPECT_TRUE(over.paused());
  over.kill(true);
  EXPECT_FALSE(s().run_for(30s));
  EXPECT_FALSE(hog.alive());
  EXPECT_TRUE(unwound.load());
}

TEST_F(RunForTest, EachOverrunnerIsReportedInTurn) {
  std::vector<std::uint64_t> hogs;
  for (int i = 0; i < 3; ++i) {
    hogs.push_back(s().spawn([] {
                        busy(15ms);
                        this_tasklet::yield();
                      })
                       .id());
  }
  std::vector<tasklet<void>> found;
  for (int i = 0; i < 3; ++i) {
    auto over = s().run_for(1ms);
    ASSERT_TRUE(over) << "overrun " << i;
    EXPECT_TRUE(over.paused());
    found.push_back(over);
  }
  EXPECT_FALSE(s().run_for(30s));
  std::vector<std::uint64_t> ids;
  for (auto& f : found) ids.push_back(f.id());
  std::sort(ids.begin(), ids.end());
  std::sort(hogs.begin(), hogs.end());
  EXPECT_EQ(ids, hogs);
  for (auto& f : found) f.resume();
  EXPECT_FALSE(s().run_for(30s));
  for (auto& f : found) EXPECT_FALSE(f.alive());
}

TEST_F(RunForTest, DetachedExceptionsInPumpModeGoToOnError) {
  s().spawn([] { throw std::runtime_error("pumped failure"); });
  EXPECT_FALSE(s().run_for(30s));
  auto reports = errors_.take();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(report_text(reports[0]).find("pumped failure"), std::string::npos)
      << report_text(reports[0]);
}

TEST_F(RunForTest, TaskletsSpawnedDuringThePumpRunInIt) {
  std::atomic<int> leaves{0};
  s().spawn([&] {
    for (int i = 0; i < 10; ++i) stackless::spawn([&] { leaves.fetch_add(1); });
  });
  s().run();
  EXPECT_EQ(leaves.load(), 10);
}

TEST_F(RunForTest, RunAfterAWorkerThreadStartedIsAUsageError) {
  EXPECT_EQ(s().block_on([] { return 1; }), 1);  // starts the worker thread
  EXPECT_THROW(s().run(), usage_error);
  EXPECT_THROW(s().run_for(1ms), usage_error);
}

TEST(RunForWorkers, RunWithSeveralWorkersIsAUsageError) {
  for (unsigned w : {2u, 4u}) {
    stackless::options o;
    o.workers = w;
    stackless::scheduler s(o);
    EXPECT_THROW(s.run(), usage_error) << w << " workers";
    EXPECT_THROW(s.run_for(1ms), usage_error) << w << " workers";
    EXPECT_EQ(s.block_on([] { return 2; }), 2) << "the scheduler still works";
    expect_clean(s);
  }
}

TEST(RunForWorkers, RunInsideATaskletIsAUsageError) {
  stackless::options o;
  o.workers = 1;
  stackless::scheduler s(o);
  s.spawn([&] { EXPECT_THROW(s.run(), usage_error) << "run() re-entered from its own tasklet"; });
  s.run();
  expect_clean(s);
}

}  // namespace
