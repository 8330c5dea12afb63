// SPDX-License-Identifier: Apache-2.0
// tests/runtime/test_submit.cpp — work from outside: scheduler::submit() (its handle, the
// admission queue of options::max_pending and the three when_full policies) and the graceful
// scheduler::shutdown(deadline) with its report, under load from eight submitting threads.
//
// Holding admission slots needs submitted tasklets that cannot start: hog_workers() keeps every
// worker busy with a spinning tasklet (no safe point but checkpoint(), which only a kill or a
// preemption request acts on; quantum is 0 here) until release() lets them return.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "fixture.hpp"

namespace {

using namespace stackless_test;

class Submit : public runtime_test {
 protected:
  /// hog_workers() occupies every worker with a spinning tasklet and returns once all spin.
  void hog_workers() {
    go_.store(false);
    spinning_.store(0);
    for (unsigned i = 0; i < workers(); ++i)
      hogs_.push_back(sched().spawn([this] {
        spinning_.fetch_add(1);
        while (!go_.load()) sl::this_tasklet::checkpoint();
      }));
    ASSERT_TRUE(wait_until([&] { return spinning_.load() == workers(); }));
  }
  /// release() lets the hogs return and joins them.
  void release() {
    go_.store(true);
    for (auto& h : hogs_) h.join();
    hogs_.clear();
  }

  std::atomic<bool> go_{true};
  std::atomic<unsigned> spinning_{0};
  std::vector<sl::tasklet<void>> hogs_;
};

TEST_P(Submit, ResultsComeBackToThePlainThreadAndToATasklet) {
  auto s = sched().submit([] { return 6 * 7; });
  EXPECT_EQ(s.get(), 42);
  EXPECT_TRUE(s.ready());
  EXPECT_FALSE(s.ran_inline());
  auto v = sched().submit([] {});
  EXPECT_TRUE(v.wait_for(60s));
  v.get();
  // A tasklet waits on a submission (parks), and through its handle.
  int got = sched().block_on([&] {
    auto inner = sched().submit([] { return 5; });
    int a = inner.get();
    return a + sched().submit([] { return 1; }).handle().join();
  });
  EXPECT_EQ(got, 6);
}

TEST_P(Submit, ExceptionsCrossToTheWaiter) {
  auto s = sched().submit([]() -> int { throw std::runtime_error("boom in submitted work"); });
  try {
    s.get();
    ADD_FAILURE() << "get() returned";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "boom in submitted work");
  }
}

TEST_P(Submit, AFullQueueFailsOrRunsInlineAsTheCallerChooses) {
  auto o = opts();
  o.max_pending = 2;
  sched(o);
  hog_workers();
  auto a = sched().submit([] { return 1; }, sl::when_full::fail);
  auto b = sched().submit([] { return 2; }, sl::when_full::fail);
  EXPECT_THROW(sched().submit([] { return 3; }, sl::when_full::fail), sl::queue_full);
  try {
    sched().submit([] { return 3; }, sl::when_full::fail);
  } catch (const sl::queue_full& e) {
    EXPECT_NE(std::string(e.what()).find("max_pending"), std::string::npos) << e.what();
  }
  const auto me = std::this_thread::get_id();
  auto c = sched().submit([me] { return std::this_thread::get_id() == me ? 30 : -1; },
                          sl::when_full::run_inline);
  EXPECT_TRUE(c.ran_inline());
  EXPECT_TRUE(c.ready());
  EXPECT_EQ(c.get(), 30);
  auto d = sched().submit([]() -> int { throw std::logic_error("inline failure"); },
                          sl::when_full::run_inline);
  EXPECT_THROW(d.get(), std::logic_error);
  EXPECT_FALSE(a.ready());
  release();
  EXPECT_EQ(a.get() + b.get(), 3);
  // Every slot came back: the queue takes max_pending again, and no more.
  hog_workers();
  auto e = sched().submit([] { return 1; }, sl::when_full::fail);
  auto f = sched().submit([] { return 1; }, sl::when_full::fail);
  EXPECT_THROW(sched().submit([] { return 1; }, sl::when_full::fail), sl::queue_full);
  release();
  EXPECT_EQ(e.get() + f.get(), 2);
}

TEST_P(Submit, ABlockedSubmitterGetsTheSlotOfTheFirstToStart) {
  auto o = opts();
  o.max_pending = 1;
  sched(o);
  hog_workers();
  auto first = sched().submit([] { return 1; });
  std::atomic<bool> admitted{false};
  std::atomic<int> result{0};
  std::thread t([&] {
    auto s = sched().submit([] { return 2; });  // blocks: the queue is full
    admitted.store(true);
    result.store(s.get());
  });
  // It cannot be admitted while `first` waits for its first run.
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(admitted.load());
  release();
  t.join();
  EXPECT_TRUE(admitted.load());
  EXPECT_EQ(first.get(), 1);
  EXPECT_EQ(result.load(), 2);
}

TEST_P(Submit, AKilledOrTimedOutBlockedSubmitterLeaksNoSlot) {
  auto o = opts();
  o.max_pending = 1;
  sched(o);
  auto& s = sched();
  // Tasklets of another scheduler block in submit(): one is killed, one times out.
  sl::options o2;
  o2.workers = 2;
  sl::scheduler other(o2);
  hog_workers();
  auto held = s.submit([] { return 1; });
  auto killed_one = other.spawn([&] { s.submit([] { return 99; }); });
  std::atomic<bool> timed_out{false};
  auto timed_one = other.spawn([&] {
    sl::timeout_scope scope(20ms);
    try {
      s.submit([] { return 98; });
    } catch (const sl::timeout_error&) {
      timed_out.store(true);
    }
  });
  ASSERT_TRUE(wait_until([&] { return killed_one.blocked(); }));
  killed_one.kill();
  timed_one.join();
  EXPECT_TRUE(timed_out.load());
  release();
  EXPECT_EQ(held.get(), 1);
  // The slot is free again: exactly one more fits behind the hogs.
  hog_workers();
  auto again = s.submit([] { return 2; }, sl::when_full::fail);
  EXPECT_THROW(s.submit([] { return 3; }, sl::when_full::fail), sl::queue_full);
  release();
  EXPECT_EQ(again.get(), 2);
  other.shutdown();
}

TEST_P(Submit, EightThreadsThroughASmallQueueGetEveryResultOnce) {
  auto o = opts();
  o.max_pending = 4;
  sched(o);
  const int per = static_cast<int>(scaled(400, 100, 40));
  std::vector<std::thread> threads;
  std::atomic<long> sum{0};
  std::atomic<int> runs{0};
  for (int k = 0; k < 8; ++k)
    threads.emplace_back([&, k] {
      std::vector<sl::submission<int>> subs;
      for (int i = 0; i < per; ++i)
        subs.push_back(sched().submit([&runs, k, i] {
          runs.fetch_add(1);
          if (i % 7 == 0) sl::this_tasklet::yield();
          return k * 100000 + i;
        }));
      long local = 0;
      for (int i = 0; i < per; ++i) {
        const int v = subs[static_cast<std::size_t>(i)].get();
        EXPECT_EQ(v, k * 100000 + i);
        local += v;
      }
      sum.fetch_add(local);
    });
  for (auto& t : threads) t.join();
  long expect = 0;
  for (int k = 0; k < 8; ++k)
    for (int i = 0; i < per; ++i) expect += k * 100000 + i;
  EXPECT_EQ(sum.load(), expect);
  EXPECT_EQ(runs.load(), 8 * per);
}

TEST_P(Submit, ShutdownWithADeadlineReportsFinishedKilledAndNeverStarted) {
  auto& s = sched();
  std::atomic<int> finished_bodies{0};
  std::atomic<int> unwound{0};
  std::atomic<int> unstarted_ran{0};
  const int finishers = 5, parkers = 3, unstarted = 4;
  // The finishers end only once shutdown() has begun (a loaded sanitizer run may take longer
  // than any fixed sleep to reach the call, and a tasklet that ended before it is not counted).
  std::atomic<bool> shutting_down{false};
  std::vector<sl::tasklet<void>> keep;
  for (int i = 0; i < finishers; ++i)
    keep.push_back(s.spawn([&] {
      while (!shutting_down.load()) sl::this_tasklet::sleep_for(1ms);
      finished_bodies.fetch_add(1);
    }));
  for (int i = 0; i < parkers; ++i)
    keep.push_back(s.spawn([&] {
      struct guard {
        std::atomic<int>* n;
        ~guard() { n->fetch_add(1); }
      } g{&unwound};
      park_forever();
    }));
  // Never started: spawned and paused before their first run, by a tasklet that keeps them. (With
  // several workers a thief may run one first: it then ends at once, before the shutdown.)
  s.block_on([&] {
    for (int i = 0; i < unstarted; ++i) {
      auto t = sl::spawn([&] { unstarted_ran.fetch_add(1); });
      try {
        t.pause();
      } catch (const sl::usage_error&) {  // it ran and ended first
      }
      keep.push_back(t);
    }
  });
  ASSERT_TRUE(wait_until([&] {
    return std::all_of(keep.begin() + finishers, keep.begin() + finishers + parkers,
                       [](auto& t) { return t.blocked(); });
  }));
  std::thread opener([&] {
    // shutdown() has begun when submit() from here is refused.
    for (;;) {
      try {
        s.submit([] {}).get();
      } catch (const sl::scheduler_closed&) {
        break;
      }
      std::this_thread::sleep_for(1ms);
    }
    shutting_down.store(true);
  });
  // The paused ones could be resumed by someone, so this is not a deadlock and the call waits
  // for its deadline: long enough for the finishers to end in a loaded sanitizer run.
  const sl::shutdown_report r = s.shutdown_for(1500ms);
  opener.join();
  // The opener's last probe may have been admitted just before the close and end during the call.
  EXPECT_GE(r.finished, static_cast<std::uint64_t>(finishers));
  EXPECT_LE(r.finished, static_cast<std::uint64_t>(finishers + 1));
  EXPECT_EQ(r.killed, static_cast<std::uint64_t>(parkers));
  EXPECT_EQ(r.never_started, static_cast<std::uint64_t>(unstarted - unstarted_ran.load()));
  if (workers() == 1) {
    EXPECT_EQ(unstarted_ran.load(), 0);
  }
  EXPECT_EQ(finished_bodies.load(), finishers);
  EXPECT_EQ(unwound.load(), parkers);  // their destructors ran
  EXPECT_EQ(s.stats().live, 0u);
  EXPECT_THROW(s.submit([] {}), sl::scheduler_closed);
  EXPECT_THROW(s.spawn([] {}), sl::scheduler_closed);
  EXPECT_EQ(s.shutdown_for(1s).finished, 0u);  // idempotent: nothing left
}

TEST_P(Submit, DuringTheGracePeriodTaskletsMaySpawnButNobodySubmits) {
  auto& s = sched();
  std::atomic<bool> refused{false}, child_ran{false};
  door d;
  auto t = s.spawn([&] {
    d.wait();
    try {
      s.submit([] {});
    } catch (const sl::scheduler_closed&) {
      refused.store(true);
    }
    sl::spawn([&] { child_ran.store(true); }).join();
  });
  std::thread opener([&] {
    // Open the door once shutdown() has begun: when submit() from here is refused.
    for (;;) {
      try {
        s.submit([] {}).get();
      } catch (const sl::scheduler_closed&) {
        break;
      }
      std::this_thread::sleep_for(1ms);
    }
    d.open();
  });
  const auto r = s.shutdown_for(60s);
  opener.join();
  EXPECT_TRUE(refused.load());
  EXPECT_TRUE(child_ran.load());
  EXPECT_EQ(r.killed + r.never_started, 0u);
}

TEST_P(Submit, ShutdownUnderLoadFromEightSubmittingThreads) {
  auto o = opts();
  o.max_pending = 32;
  sched(o);
  auto& s = sched();
  std::atomic<long> accepted{0}, ok{0}, killed{0}, refused{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < 8; ++k)
    threads.emplace_back([&, k] {
      std::vector<sl::submission<int>> subs;
      std::vector<int> want;
      for (int i = 0;; ++i) {  // until shutdown() refuses: every thread sees it
        try {
          subs.push_back(s.submit([k, i] {
            if (i % 3 == 0) sl::this_tasklet::sleep_for(std::chrono::microseconds(200 * (i % 5)));
            return k * 1000000 + i;
          }));
          want.push_back(k * 1000000 + i);
          accepted.fetch_add(1);
        } catch (const sl::scheduler_closed&) {
          refused.fetch_add(1);
          break;
        }
      }
      for (std::size_t j = 0; j < subs.size(); ++j) {
        try {
          EXPECT_EQ(subs[j].get(), want[j]);
          ok.fetch_add(1);
        } catch (const sl::tasklet_killed&) {
          killed.fetch_add(1);
        }
      }
    });
  std::this_thread::sleep_for(30ms);
  const auto r = s.shutdown_for(20ms);
  for (auto& t : threads) t.join();
  EXPECT_EQ(refused.load(), 8);                           // every thread saw the shutdown
  EXPECT_EQ(ok.load() + killed.load(), accepted.load());  // every accepted one answered, once
  // Every kill happened inside the call, and every end there was counted.
  EXPECT_EQ(static_cast<long>(r.killed + r.never_started), killed.load());
  EXPECT_LE(static_cast<long>(r.finished), ok.load());
  EXPECT_EQ(s.stats().live, 0u);
}

TEST_P(Submit, SubmitAfterShutdownIsAClearError) {
  auto& s = sched();
  s.shutdown();
  try {
    s.submit([] {});
    ADD_FAILURE() << "submit() after shutdown() returned";
  } catch (const sl::scheduler_closed& e) {
    EXPECT_NE(std::string(e.what()).find("shutdown"), std::string::npos) << e.what();
  }
}

STACKLESS_INSTANTIATE_WORKERS(Submit);

}  // namespace
