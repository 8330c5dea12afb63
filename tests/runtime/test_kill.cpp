// SPDX-License-Identifier: Apache-2.0
// test_kill.cpp — kill() and raise_exception(): tasklet_exit at the suspension point of a
// runnable, parked, paused or never-started tasklet; destructors run; kill() returns once the
// tasklet ended (pending: at once); dead targets; killing yourself; swallowing tasklet_exit;
// exactly one of a racing wake() and kill() wins.
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fixture.hpp"

namespace {

using namespace stackless_test;
using stackless::tasklet;
using stackless::tasklet_exit;
using stackless::tasklet_killed;
using stackless::usage_error;
namespace this_tasklet = stackless::this_tasklet;

struct poke {
  int n;
};

class KillTest : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(KillTest);

TEST_P(KillTest, KillOfARunnableTaskletUnwindsIt) {
  std::atomic<bool> unwound{false}, after{false};
  std::atomic<int> loops{0};
  auto t = sched().spawn([&] {
    raii_flag guard(unwound);
    for (;;) {
      this_tasklet::yield();
      loops.fetch_add(1);
    }
    after = true;  // never reached
  });
  ASSERT_TRUE(wait_until([&] { return loops.load() > 3; }));
  t.kill();
  // kill() returned: the tasklet has ended and its destructors ran.
  EXPECT_FALSE(t.alive());
  EXPECT_TRUE(unwound.load());
  EXPECT_FALSE(after.load());
  EXPECT_NO_THROW(t.join());
}

TEST_P(KillTest, KillFromATaskletReturnsOnceTheTargetEnded) {
  sched().block_on([] {
    std::atomic<bool> unwound{false}, started{false};
    auto t = stackless::spawn([&] {
      raii_flag guard(unwound);
      started = true;
      for (;;) this_tasklet::yield();
    });
    EXPECT_TRUE(yield_until([&] { return started.load(); }));  // a thief may run us first
    t.kill();
    EXPECT_FALSE(t.alive());
    EXPECT_TRUE(unwound.load());
  });
}

TEST_P(KillTest, KillOfAParkedTaskletWakesItWithTaskletExit) {
  std::atomic<bool> unwound{false}, after{false}, saw_exit{false};
  door d;
  auto t = sched().spawn([&] {
    raii_flag guard(unwound);
    try {
      d.wait();
    } catch (const tasklet_exit&) {
      saw_exit = true;
      throw;
    }
    after = true;
  });
  ASSERT_TRUE(wait_until([&] { return d.occupied() && t.blocked(); }));
  t.kill();
  EXPECT_FALSE(t.alive());
  EXPECT_TRUE(unwound.load());
  EXPECT_TRUE(saw_exit.load()) << "park() must report the kill; throw_if_interrupted() throws";
  EXPECT_FALSE(after.load());
}

TEST_P(KillTest, KillOfATaskletBlockedInJoin) {
  std::atomic<bool> unwound{false};
  auto sleeper = sched().spawn([] { park_forever(); });
  auto joiner = sched().spawn([&, sleeper]() mutable {
    raii_flag guard(unwound);
    sleeper.join();
  });
  ASSERT_TRUE(wait_until([&] { return joiner.blocked() && sleeper.blocked(); }));
  joiner.kill();
  EXPECT_FALSE(joiner.alive());
  EXPECT_TRUE(unwound.load());
  EXPECT_TRUE(sleeper.alive()) << "killing the joiner must not touch the joined";
  sleeper.kill();
  EXPECT_FALSE(sleeper.alive());
}

TEST_P(KillTest, KillOfAPausedTasklet) {
  std::atomic<bool> unwound{false};
  std::atomic<int> wakes{0};
  door d;
  auto t = sched().spawn([&] {
    raii_flag guard(unwound);
    for (;;) {
      d.wait();
      wakes.fetch_add(1);
    }
  });
  sched().block_on([&] { pause_parked_on(t, d); });
  EXPECT_TRUE(t.paused());
  const int seen = wakes.load();
  t.kill();
  EXPECT_FALSE(t.alive());
  EXPECT_TRUE(unwound.load());
  EXPECT_EQ(wakes.load(), seen) << "the killed paused tasklet ran on past its suspension point";
}

TEST_P(KillTest, KillOfANeverStartedTaskletSkipsItsFunction) {
  // Inside a tasklet on one worker the new tasklet sits in runnext until the spawner switches,
  // so it has surely not started. With more workers a thief may start it; then it is killed
  // like any other, and its destructors run.
  std::atomic<bool> started{false}, unwound{false};
  sched().block_on([&] {
    auto t = stackless::spawn([&]() -> int {
      started = true;
      raii_flag guard(unwound);
      for (;;) this_tasklet::yield();
    });
    t.kill();
    EXPECT_FALSE(t.alive());
    EXPECT_THROW(t.join(), tasklet_killed);
  });
  if (workers() == 1) {
    EXPECT_FALSE(started.load()) << "a killed tasklet that never started must not run";
  }
  EXPECT_EQ(started.load(), unwound.load());
}

TEST(KillNeverStarted, FromAPlainThreadBeforeAnyWorkerRuns) {
  // workers = 1: no thread starts before one is needed, so the tasklet cannot have started.
  stackless::options o;
  o.workers = 1;
  stackless::scheduler s(o);
  std::atomic<bool> started{false};
  auto t = s.spawn([&] {
    started = true;
    return 1;
  });
  EXPECT_TRUE(t.alive());
  EXPECT_TRUE(t.scheduled());
  EXPECT_FALSE(t.paused());
  t.kill();
  EXPECT_FALSE(t.alive());
  EXPECT_FALSE(started.load());
  EXPECT_THROW(t.join(), tasklet_killed);
  // Also in pump mode: kill(pending), then run() finds nothing to run.
  stackless::options p;
  p.workers = 1;
  stackless::scheduler pump(p);
  auto u = pump.spawn([&] { started = true; });
  u.kill(true);
  pump.run();
  EXPECT_FALSE(u.alive());
  EXPECT_FALSE(started.load());
  expect_clean(s);
  expect_clean(pump);
}

TEST_P(KillTest, KillOfADeadTaskletDoesNothing) {
  auto t = sched().spawn([] { return 9; });
  EXPECT_EQ(t.join(), 9);
  EXPECT_NO_THROW(t.kill());
  EXPECT_NO_THROW(t.kill(true));
  EXPECT_EQ(t.join(), 9) << "a late kill must not change the outcome";
  sched().block_on([t]() mutable { t.kill(); });
  EXPECT_EQ(t.join(), 9);
}

TEST_P(KillTest, PendingKillReturnsAtOnce) {
  std::atomic<bool> unwound{false};
  // One worker, inside a tasklet: the target cannot run before the caller switches.
  if (workers() == 1) {
    sched().block_on([&] {
      auto t = stackless::spawn([&] {
        raii_flag guard(unwound);
        for (;;) this_tasklet::yield();
      });
      this_tasklet::yield();  // it started
      t.kill(true);
      EXPECT_TRUE(t.alive()) << "kill(pending) returned only after the tasklet ended";
      t.join();
      EXPECT_FALSE(t.alive());
    });
    EXPECT_TRUE(unwound.load());
    unwound = false;
  }
  // From a plain thread, on a parked tasklet.
  auto t = sched().spawn([&] {
    raii_flag guard(unwound);
    park_forever();
  });
  ASSERT_TRUE(wait_until([&] { return t.blocked(); }));
  t.kill(true);
  t.join();
  EXPECT_FALSE(t.alive());
  EXPECT_TRUE(unwound.load());
}

TEST_P(KillTest, KillingYourselfThrowsTaskletExitRightThere) {
  std::atomic<bool> thrown{false}, after{false};
  auto t = sched().spawn([&] {
    try {
      this_tasklet::current().kill();
    } catch (const tasklet_exit&) {
      thrown = true;
      throw;
    }
    after = true;
  });
  EXPECT_NO_THROW(t.join());
  EXPECT_TRUE(thrown.load());
  EXPECT_FALSE(after.load());
}

TEST_P(KillTest, CatchingStdExceptionDoesNotCatchTaskletExit) {
  std::atomic<bool> caught{false}, unwound{false}, started{false};
  auto t = sched().spawn([&] {
    raii_flag guard(unwound);
    started = true;
    try {
      for (;;) this_tasklet::yield();
    } catch (const std::exception&) {
      caught = true;
    }
  });
  ASSERT_TRUE(wait_until([&] { return started.load(); }));
  t.kill();
  EXPECT_FALSE(caught.load());
  EXPECT_TRUE(unwound.load());
}

TEST_P(KillTest, SwallowedTaskletExitComesBackAtTheNextSuspensionPoint) {
  std::atomic<int> swallowed{0};
  std::atomic<bool> after{false}, unwound{false};
  door d;
  auto t = sched().spawn([&] {
    raii_flag guard(unwound);
    try {
      d.wait();
    } catch (...) {
      swallowed.fetch_add(1);  // the classic bug: a bare catch-all
    }
    this_tasklet::yield();  // tasklet_exit again, here
    after = true;
  });
  ASSERT_TRUE(wait_until([&] { return t.blocked(); }));
  t.kill();
  EXPECT_FALSE(t.alive());
  EXPECT_EQ(swallowed.load(), 1);
  EXPECT_FALSE(after.load());
  EXPECT_TRUE(unwound.load());
  errors_.take();  // whether this case is also reported is not specified
}

TEST_P(KillTest, SwallowedTaskletExitIsRaisedAtEverySuspensionPoint) {
  std::atomic<int> swallowed{0};
  std::atomic<bool> started{false};
  auto t = sched().spawn([&] {
    started = true;
    for (int i = 0; i < 5; ++i) {
      try {
        this_tasklet::yield();
        for (;;) this_tasklet::yield();
      } catch (...) {
        swallowed.fetch_add(1);
      }
    }
    // …and returns normally: the swallowing is reported.
  });
  ASSERT_TRUE(wait_until([&] { return started.load(); }));
  t.set_name("swallower");
  t.kill();
  EXPECT_FALSE(t.alive());
  EXPECT_EQ(swallowed.load(), 5);
  auto reports = errors_.take();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].id, t.id());
  EXPECT_EQ(reports[0].name, "swallower");
  EXPECT_NE(reports[0].what.find("swallowed"), std::string::npos) << reports[0].what;
  EXPECT_FALSE(reports[0].error) << "a swallowed tasklet_exit is reported without an exception";
}

// A tasklet that is killed while it runs, but returns before it reaches a suspension point, never
// saw tasklet_exit: nothing was swallowed, so nothing may be reported as swallowed.
TEST_P(KillTest, EndingBeforeTheNextSuspensionPointIsNotASwallow) {
  for (int round = 0; round < 20; ++round) {
    std::atomic<bool> running{false}, go{false};
    auto t = sched().spawn([&] {
      running = true;
      while (!go.load()) {  // no suspension point
      }
    });
    ASSERT_TRUE(wait_until([&] { return running.load(); }));
    t.kill(true);  // pending: the tasklet is busy on its worker
    go = true;
    t.join();
    EXPECT_FALSE(t.alive());
  }
  sched().drain();
  auto reports = errors_.take();
  for (const auto& r : reports) ADD_FAILURE() << "false report: " << report_text(r);
}

TEST_P(KillTest, KillReachesAComputeLoopThroughCheckpoint) {
  std::atomic<bool> unwound{false};
  std::atomic<std::uint64_t> spins{0};
  auto t = sched().spawn([&] {
    raii_flag guard(unwound);
    for (;;) {
      this_tasklet::checkpoint();
      spins.fetch_add(1, std::memory_order_relaxed);
    }
  });
  ASSERT_TRUE(wait_until([&] { return spins.load() > 1000; }));
  t.kill();  // from a plain thread: the worker is busy in the loop
  EXPECT_FALSE(t.alive());
  EXPECT_TRUE(unwound.load());
}

TEST_P(KillTest, ManyKillersAtOnce) {
  const int n = static_cast<int>(scaled(400, 60));
  std::atomic<int> unwound{0}, started{0};
  std::vector<tasklet<void>> ts;
  for (int i = 0; i < n; ++i) {
    ts.push_back(sched().spawn([&, i] {
      raii_count guard(unwound);
      started.fetch_add(1);
      if (i % 2) {
        park_forever();
      } else {
        for (;;) this_tasklet::yield();
      }
    }));
  }
  ASSERT_TRUE(wait_until([&] { return started.load() == n; }));  // none is killed before it starts
  // Each tasklet is killed by two plain threads and one tasklet at once.
  std::vector<std::thread> threads;
  for (int k = 0; k < 2; ++k) {
    threads.emplace_back([&] {
      for (auto& t : ts) t.kill(true);
    });
  }
  auto killer = sched().spawn([&] {
    for (auto& t : ts) t.kill();
  });
  for (auto& th : threads) th.join();
  killer.join();
  for (auto& t : ts) t.join();
  EXPECT_EQ(unwound.load(), n);
  for (auto& t : ts) EXPECT_FALSE(t.alive());
}

// Exactly one of a wake() and a kill() racing for the same park wins: either the tasklet wakes
// normally (and the kill then ends it at its next suspension point), or it wakes with
// tasklet_exit and the wake() reports that it lost.
TEST_P(KillTest, WakeAndKillRaceExactlyOneWins) {
  const int rounds = static_cast<int>(scaled(500, 100));
  int wake_wins = 0;
  for (int r = 0; r < rounds; ++r) {
    door d;
    std::atomic<bool> notified{false}, interrupted{false}, unwound{false};
    auto t = sched().spawn([&] {
      raii_flag guard(unwound);
      // park()'s result says who won; throw_if_interrupted() then throws the kill either way
      // (when the wake won, the kill is still pending).
      const auto r = d.park_only();
      notified = r == stackless::detail::wake_reason::notified;
      interrupted = r == stackless::detail::wake_reason::interrupted;
      stackless::detail::throw_if_interrupted();
      this_tasklet::yield();  // a suspension point: a kill that lost the park ends it here
    });
    ASSERT_TRUE(wait_until([&] { return d.occupied(); }));
    stackless::detail::waiter* w = d.take();
    ASSERT_NE(w, nullptr);
    std::atomic<int> go{0};
    bool won = false;
    std::thread waker([&] {
      go.fetch_add(1);
      while (go.load() < 2) {
      }
      won = stackless::detail::wake(*w);
    });
    std::thread killer([&] {
      go.fetch_add(1);
      while (go.load() < 2) {
      }
      t.kill();
    });
    waker.join();
    killer.join();
    t.join();
    EXPECT_FALSE(t.alive());
    EXPECT_TRUE(unwound.load());
    EXPECT_NE(notified.load(), interrupted.load()) << "round " << r;
    EXPECT_EQ(won, notified.load()) << "round " << r << ": wake() result disagrees with the park";
    wake_wins += won;
  }
  RecordProperty("wake_wins", wake_wins);
  RecordProperty("rounds", rounds);
}

TEST_P(KillTest, ConcurrentWakesExactlyOneWins) {
  const int rounds = static_cast<int>(ci_sized(scaled(500, 100), 250));  // CI: 250
  for (int r = 0; r < rounds; ++r) {
    door d;
    auto t = sched().spawn([&] { return d.wait(); });
    ASSERT_TRUE(wait_until([&] { return d.occupied(); }));
    stackless::detail::waiter* w = d.take();
    std::atomic<int> go{0}, wins{0};
    std::vector<std::thread> wakers;
    for (int k = 0; k < 3; ++k) {
      wakers.emplace_back([&] {
        go.fetch_add(1);
        while (go.load() < 3) {
        }
        wins.fetch_add(stackless::detail::wake(*w) ? 1 : 0);
      });
    }
    for (auto& th : wakers) th.join();
    EXPECT_EQ(t.join(), stackless::detail::wake_reason::notified);
    EXPECT_EQ(wins.load(), 1) << "round " << r;
  }
}

TEST_P(KillTest, RaiseExceptionIsDeliveredOnceAtASuspensionPoint) {
  std::atomic<int> caught{0}, loops{0};
  std::atomic<bool> stop{false};
  auto t = sched().spawn([&] {
    while (!stop.load()) {
      try {
        this_tasklet::yield();
      } catch (const poke& p) {
        EXPECT_EQ(p.n, 5);
        caught.fetch_add(1);
      }
      loops.fetch_add(1);
    }
    return caught.load();
  });
  ASSERT_TRUE(wait_until([&] { return loops.load() > 3; }));
  t.raise_exception(std::make_exception_ptr(poke{5}));
  ASSERT_TRUE(wait_until([&] { return caught.load() == 1; }));
  const int seen = loops.load();
  ASSERT_TRUE(wait_until([&] { return loops.load() > seen + 100; }));
  stop = true;
  EXPECT_EQ(t.join(), 1);
}

TEST_P(KillTest, RaiseExceptionWakesAParkedTasklet) {
  door d;
  auto t = sched().spawn([&] {
    try {
      d.wait();
    } catch (const poke& p) {
      return p.n;
    }
    return -1;
  });
  ASSERT_TRUE(wait_until([&] { return d.occupied() && t.blocked(); }));
  t.raise_exception(std::make_exception_ptr(poke{3}));
  EXPECT_EQ(t.join(), 3);
}

TEST_P(KillTest, RaisedExceptionThatEscapesReachesTheJoiner) {
  auto t = sched().spawn([] { park_forever(); });
  ASSERT_TRUE(wait_until([&] { return t.blocked(); }));
  t.raise_exception(std::make_exception_ptr(std::runtime_error("raised")), /*pending=*/true);
  EXPECT_THROW(t.join(), std::runtime_error);
  // From a tasklet, on a runnable target.
  sched().block_on([] {
    auto u = stackless::spawn([] {
      for (;;) this_tasklet::yield();
    });
    this_tasklet::yield();
    u.raise_exception(std::make_exception_ptr(poke{1}));
    EXPECT_THROW(u.join(), poke);
  });
}

TEST_P(KillTest, RaiseExceptionInADeadTaskletIsAUsageError) {
  auto t = sched().spawn([] {});
  t.join();
  EXPECT_THROW(t.raise_exception(std::make_exception_ptr(poke{0})), usage_error);
  EXPECT_THROW(t.raise_exception(std::make_exception_ptr(poke{0}), true), usage_error);
}

}  // namespace
