// SPDX-License-Identifier: Apache-2.0
// test_run_for.cpp — pump mode on one worker: run() (Stackless run()) makes the calling thread the
// worker until nothing is runnable; run_for(slice) (Stackless run(timeout)) also returns the
// tasklet that ran longer than `slice` without switching, paused, for the host to resume() or
// kill(). Both throw usage_error with more than one worker or once a worker thread started.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
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

/// rescue runs `action` on its own thread once `after` has passed, unless it is destroyed first:
/// it ends a test that would hang (a run_for() that does not return, a kill() that never ends)
/// by making its tasklets stop, so the test fails on its assertions instead of hanging.
class rescue {
 public:
  rescue(std::chrono::milliseconds after, std::function<void()> action)
      : action_(std::move(action)), thread_([this, after] {
          std::unique_lock g(mu_);
          if (!cv_.wait_for(g, after, [this] { return done_; })) {
            fired_ = true;
            action_();
          }
        }) {}
  ~rescue() {
    {
      std::lock_guard g(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  bool fired() {
    std::lock_guard g(mu_);
    return fired_;
  }

 private:
  std::function<void()> action_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false, fired_ = false;
  std::thread thread_;
};

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

// run_for(slice) bounds the whole pump, not one tasklet's turn: two tasklets that switch to each
// other all the time (neither ever runs a whole slice) used to keep run_for(1ms) busy until the OS
// happened to stall one of them for a slice (100–600 ms here, once over 3 s). The bounds below are
// generous hang guards (the fixed pump returns after about a millisecond); the loop makes the old
// behaviour fail its total bound every time.
TEST_F(RunForTest, RunForReturnsWhileTaskletsKeepSwitching) {
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> switches{0};
  for (int i = 0; i < 2; ++i) {
    s().spawn([&] {
      while (!stop.load()) {
        switches.fetch_add(1);
        this_tasklet::yield();  // the other one runs; nobody runs a whole slice
      }
    });
  }
  constexpr int rounds = 300;
  int done = 0;
  auto longest = std::chrono::steady_clock::duration::zero();
  {
    rescue r(20s, [&] { stop = true; });  // the old pump: 300 × (100–600 ms)
    for (; done < rounds && !r.fired(); ++done) {
      const auto t0 = std::chrono::steady_clock::now();
      auto over = s().run_for(1ms);
      longest = std::max(longest, std::chrono::steady_clock::now() - t0);
      if (over) over.resume();  // the OS stalled a tasklet for a whole slice: put it back
    }
    EXPECT_FALSE(r.fired()) << "run_for(1ms) did not return " << rounds << " times in 20 s; "
                            << done << " did";
  }
  EXPECT_LT(longest, 2s) << "one run_for(1ms) took "
                         << std::chrono::duration_cast<std::chrono::milliseconds>(longest).count()
                         << " ms";
  EXPECT_GT(switches.load(), 0u);
  stop = true;
  s().run();
}

// The same with a slice far longer than the OS ever stalls a thread: the old pump returned only
// when one turn overran the whole slice, so it never did; the fixed one after about a slice.
TEST_F(RunForTest, RunForWithALongSliceReturnsWhileTaskletsKeepSwitching) {
  std::atomic<bool> stop{false};
  for (int i = 0; i < 2; ++i) {
    s().spawn([&] {
      while (!stop.load()) this_tasklet::yield();
    });
  }
  rescue r(30s, [&] { stop = true; });
  for (int i = 0; i < 5 && !r.fired(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto over = s().run_for(200ms);
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_LT(took, 10s) << "run_for(200ms) round " << i;
    if (over) over.resume();
  }
  EXPECT_FALSE(r.fired()) << "run_for(200ms) did not return 5 times in 30 s";
  stop = true;
  s().run();
}

// A tasklet that yields with nothing else runnable carries on without a switch: the pump's
// deadline must still end run_for().
TEST_F(RunForTest, RunForReturnsWhileALoneTaskletKeepsYielding) {
  std::atomic<bool> stop{false};
  s().spawn([&] {
    while (!stop.load()) this_tasklet::yield();
  });
  rescue r(20s, [&] { stop = true; });
  for (int i = 0; i < 100 && !r.fired(); ++i) {
    auto over = s().run_for(1ms);
    if (over) over.resume();
  }
  EXPECT_FALSE(r.fired()) << "run_for(1ms) did not return 100 times in 20 s";
  stop = true;
  s().run();
}

// The README's "comes back paused — resume() or kill() it": a blocking kill() from the host that
// pumps must not start the worker thread (the next run_for() then threw usage_error), and must
// return even with another hog queued in front of the victim.
TEST_F(RunForTest, BlockingKillFromTheHostPumpsTheVictimToItsEnd) {
  std::atomic<bool> unwound{false}, stop{false};
  std::atomic<int> hog2_turns{0};
  auto hog1 = s().spawn([&] {
    raii_flag guard(unwound);
    busy(30ms);
    this_tasklet::yield();  // the overrun is noticed here; killed, it unwinds from here
    ADD_FAILURE() << "the killed tasklet ran on";
  });
  auto hog2 = s().spawn([&] {
    while (!stop.load()) {
      busy(5ms);
      hog2_turns.fetch_add(1);
      this_tasklet::checkpoint();  // a safe point, never a switch of its own
    }
  });
  auto over = s().run_for(1ms);
  ASSERT_TRUE(over);
  ASSERT_EQ(over.id(), hog1.id());
  ASSERT_TRUE(over.paused());
  {
    rescue r(10s, [&] { stop = true; });  // a kill() that hangs behind hog2 ends when hog2 does
    over.kill();
    EXPECT_FALSE(r.fired()) << "kill() from the host did not return within 10 s";
  }
  EXPECT_FALSE(hog1.alive());
  EXPECT_TRUE(unwound.load());
  // The host still pumps: no worker thread was started.
  tasklet<void> over2;
  EXPECT_NO_THROW(over2 = s().run_for(1ms));
  ASSERT_TRUE(over2) << "hog2 overruns its slice";
  EXPECT_EQ(over2.id(), hog2.id());
  // join() and kill() of the paused hog2 from the host: pumped too.
  stop = true;
  over2.kill();
  EXPECT_FALSE(hog2.alive());
  EXPECT_NO_THROW(hog2.join());
  EXPECT_NO_THROW(s().run_for(1ms));
}

// join() from the host on a tasklet killed with pending = true: the host pumps it to its end.
TEST_F(RunForTest, JoinFromTheHostOfAKilledTaskletPumps) {
  std::atomic<bool> unwound{false};
  auto hog = s().spawn([&] {
    raii_flag guard(unwound);
    busy(30ms);
    this_tasklet::yield();
    ADD_FAILURE() << "the killed tasklet ran on";
  });
  auto over = s().run_for(1ms);
  ASSERT_TRUE(over);
  over.kill(true);
  over.join();
  EXPECT_TRUE(unwound.load());
  EXPECT_NO_THROW(s().run_for(1ms));
  EXPECT_NO_THROW(s().run());
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
