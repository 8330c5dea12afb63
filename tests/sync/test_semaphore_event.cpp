// SPDX-License-Identifier: Apache-2.0
// test_semaphore_event.cpp — counting_semaphore / bounded_semaphore (sync/semaphore.hpp;
// sync/src/gates.cpp), from tasklets and from plain threads, over workers ∈ {1, 2, 4}.
//
// Semaphore: permits are never exceeded; queued acquirers are served in arrival order and a
// newcomer never takes a permit while anyone is queued; a timeout, a stop request or a kill of a
// parked acquirer takes nothing (every test ends with a permit accounting: value() is exactly
// what was released minus what was acquired); release(n) wakes n; bad arguments throw.
// The gates (event, latch, wait_group, barrier) are in test_semaphore_event_gates.cpp; the helper
// both use in test_semaphore_event_fixture.hpp.
// No test asserts how long anything took: every deadline here either must pass (a timeout test
// checks the outcome) or is a hang guard.
#include <cstdint>
#include <mutex>
#include <random>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "test_semaphore_event_fixture.hpp"

namespace {

using namespace stackless_test;
using namespace stackless_test::semaphore_event_test;
using sl::bounded_semaphore;
using sl::counting_semaphore;
using sl::operation_cancelled;
using sl::usage_error;

class Semaphore : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(Semaphore);

// ---- counting_semaphore -----------------------------------------------------------------------

// K permits, many tasklets and a few plain threads hammering acquire/release: at no time do more
// than K hold one, and every permit comes back.
TEST_P(Semaphore, PermitsAreNeverExceeded) {
  for (std::ptrdiff_t k : {1, 3}) {
    SCOPED_TRACE("permits " + std::to_string(k));
    counting_semaphore sem(k);
    const int tasklets = 8, threads = 2;
    const int iters = static_cast<int>(scaled(600, 200, 150));
    std::atomic<int> inside{0}, most{0}, rounds{0};
    auto body = [&](int who) {
      std::minstd_rand rng(static_cast<unsigned>(who + 1));
      const int mine = who >= 100 ? iters / 4 : iters;  // a plain thread's hand-off is slower
      for (int i = 0; i < mine; ++i) {
        if (i % 3 == 2) {
          while (!sem.try_acquire_for(std::chrono::microseconds(rng() % 100))) {
          }
        } else {
          sem.acquire();
        }
        const int now = inside.fetch_add(1) + 1;
        int m = most.load();
        while (now > m && !most.compare_exchange_weak(m, now)) {
        }
        for (unsigned y = rng() % 3; y > 0; --y) relax();
        inside.fetch_sub(1);
        sem.release();
        rounds.fetch_add(1, std::memory_order_relaxed);
      }
    };
    watchdog wd("PermitsAreNeverExceeded", 60s, [&] { return std::uint64_t(rounds.load()); });
    std::vector<tasklet<void>> ts;
    for (int i = 0; i < tasklets; ++i) ts.push_back(sched().spawn(body, i));
    std::vector<std::thread> th;
    for (int i = 0; i < threads; ++i) th.emplace_back(body, 100 + i);
    for (auto& t : ts) t.join();
    for (auto& t : th) t.join();
    EXPECT_LE(most.load(), k) << "more holders than permits";
    EXPECT_GE(most.load(), 1);
    EXPECT_EQ(sem.value(), k) << "permits lost or made up";
  }
}

// Acquirers queued one after another get the released permits in that order, one per release.
TEST_P(Semaphore, HandsOffInFifoOrder) {
  counting_semaphore sem(0);
  const int n = 6;
  std::mutex mu;
  std::vector<int> order;
  std::atomic<int> done{0};
  std::vector<tasklet<void>> ts;
  for (int i = 0; i < n; ++i) {
    ts.push_back(spawn_parked(sched(), [&, i] {
      sem.acquire();
      {
        std::lock_guard<std::mutex> g(mu);
        order.push_back(i);
      }
      done.fetch_add(1);
    }));
  }
  for (int i = 0; i < n; ++i) {
    if (i % 2) {
      sem.release();  // from this plain thread
    } else {
      sched().block_on([&] { sem.release(); });  // from a tasklet
    }
    ASSERT_TRUE(wait_until([&] { return done.load() == i + 1; }))
        << "release " << i << " woke nobody";
    {
      std::lock_guard<std::mutex> g(mu);
      ASSERT_EQ(order.size(), static_cast<std::size_t>(i + 1));
      EXPECT_EQ(order.back(), i) << "permit " << i << " did not go to the longest waiter";
    }
    for (int j = i + 1; j < n; ++j)
      EXPECT_TRUE(ts[j].alive()) << "acquirer " << j << " got a permit early";
    EXPECT_EQ(sem.value(), 0);
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(sem.value(), 0);
}

// A released permit belongs to the queued acquirer even before it runs: a newcomer's try_acquire
// (or a zero-timeout try_acquire_for) fails. Without anyone queued, they succeed.
TEST_P(Semaphore, TryAcquireFailsWhileSomeoneIsQueued) {
  counting_semaphore sem(0);
  std::atomic<int> got{0};
  auto a = spawn_parked(sched(), [&] {
    sem.acquire();
    got.fetch_add(1);
  });
  auto b = spawn_parked(sched(), [&] {
    sem.acquire();
    got.fetch_add(1);
  });
  const auto r = sched().block_on([&] {
    sem.release();  // to a: it goes runnable, and has not run yet on one worker
    const bool t1 = sem.try_acquire();
    const bool t2 = sem.try_acquire_for(0ms);
    return std::make_pair(t1, t2);
  });
  EXPECT_FALSE(r.first) << "try_acquire() barged past a queued acquirer";
  EXPECT_FALSE(r.second) << "try_acquire_for(0) barged past a queued acquirer";
  a.join();
  EXPECT_TRUE(b.alive());
  // The same from a plain thread: b is queued; release and try at once.
  sem.release();
  EXPECT_FALSE(sem.try_acquire())
      << "try_acquire() from a plain thread barged past a queued acquirer";
  b.join();
  EXPECT_EQ(got.load(), 2);
  EXPECT_EQ(sem.value(), 0);
  // Nobody queued: permits are there to take.
  sem.release(2);
  EXPECT_TRUE(sched().block_on([&] { return sem.try_acquire(); }));
  EXPECT_TRUE(sem.try_acquire_for(0ms));
  EXPECT_FALSE(sem.try_acquire());
  EXPECT_EQ(sem.value(), 0);
}

// A try_acquire_for that times out takes nothing and leaves no record behind: the next release
// is a free permit (or goes to a real waiter).
TEST_P(Semaphore, TryAcquireForTimesOutAndTakesNothing) {
  counting_semaphore sem(0);
  in_tasklet_and_thread(sched(), [&] {
    EXPECT_FALSE(sem.try_acquire_for(20ms));
    EXPECT_FALSE(sem.try_acquire_until(std::chrono::steady_clock::now() + 5ms));
    EXPECT_FALSE(sem.try_acquire_until(std::chrono::steady_clock::now() - 1s));
    EXPECT_FALSE(sem.try_acquire_for(-1ms));
    EXPECT_EQ(sem.value(), 0);
    sem.release();
    EXPECT_EQ(sem.value(), 1) << "the release went to a waiter that had timed out";
    EXPECT_TRUE(sem.try_acquire());
  });
  // A real waiter queued, a timed-out one after it: the release goes to the real one.
  std::atomic<bool> got{false};
  auto a = spawn_parked(sched(), [&] {
    sem.acquire();
    got = true;
  });
  EXPECT_FALSE(sched().block_on([&] { return sem.try_acquire_for(10ms); }));
  EXPECT_FALSE(sem.try_acquire_for(10ms));
  EXPECT_FALSE(got.load());
  sem.release();
  a.join();
  EXPECT_TRUE(got.load());
  EXPECT_EQ(sem.value(), 0);
  // try_acquire_for succeeds when the permit comes before the deadline.
  auto rel = sched().spawn([&] {
    for (int i = 0; i < 10; ++i) this_tasklet::yield();
    sem.release();
  });
  EXPECT_TRUE(sem.try_acquire_for(60s));
  rel.join();
  EXPECT_EQ(sem.value(), 0);
  // A timeout_scope ends a wait the same way, with timeout_error.
  in_tasklet_and_thread(sched(), [&] {
    sl::timeout_scope scope(5ms);
    EXPECT_THROW(sem.acquire(), sl::timeout_error);
    EXPECT_EQ(sem.value(), 0);
  });
  sem.release();
  EXPECT_EQ(sem.value(), 1);
}

// release(n) hands n permits to the first n queued acquirers; the rest stay queued; permits
// beyond the queue stay free.
TEST_P(Semaphore, ReleaseNWakesNWaiters) {
  counting_semaphore sem(0);
  const int n = 5;
  std::atomic<int> done{0};
  std::vector<tasklet<void>> ts;
  for (int i = 0; i < n; ++i)
    ts.push_back(spawn_parked(sched(), [&] {
      sem.acquire();
      done.fetch_add(1);
    }));
  sem.release(3);
  for (int i = 0; i < 3; ++i) ts[i].join();
  EXPECT_EQ(sem.value(), 0);
  EXPECT_EQ(done.load(), 3);
  EXPECT_TRUE(ts[3].alive());
  EXPECT_TRUE(ts[4].alive());
  sched().block_on([&] { sem.release(5); });
  ts[3].join();
  ts[4].join();
  EXPECT_EQ(done.load(), 5);
  EXPECT_EQ(sem.value(), 3);
  sem.release(0);
  EXPECT_EQ(sem.value(), 3);
}

// acquire(stop_token): a stop request ends the wait with operation_cancelled and takes nothing.
TEST_P(Semaphore, AcquireWithStopTokenIsCancelledAndLosesNoPermit) {
  counting_semaphore sem(0);
  std::stop_source ss;
  auto a = spawn_parked(sched(), [&] {
    try {
      sem.acquire(ss.get_token());
      return 1;
    } catch (const operation_cancelled&) {
      return 2;
    }
  });
  ss.request_stop();
  EXPECT_EQ(a.join(), 2);
  EXPECT_EQ(sem.value(), 0);
  sem.release();
  EXPECT_EQ(sem.value(), 1) << "the release went to the cancelled acquirer";
  EXPECT_TRUE(sem.try_acquire());
  // A plain thread, stopped by a tasklet; and a token that is already stopped.
  std::stop_source ss2;
  std::thread th([&] { EXPECT_THROW(sem.acquire(ss2.get_token()), operation_cancelled); });
  sched().block_on([&] {
    this_tasklet::sleep_for(5ms);
    ss2.request_stop();
  });
  th.join();
  in_tasklet_and_thread(sched(),
                        [&] { EXPECT_THROW(sem.acquire(ss.get_token()), operation_cancelled); });
  EXPECT_EQ(sem.value(), 0);
  sem.release();
  EXPECT_EQ(sem.value(), 1);
}

// Killing parked acquirers takes nothing: later releases go to the survivors, then stay free.
TEST_P(Semaphore, KilledAcquirerLosesNoPermit) {
  counting_semaphore sem(0);
  const int n = 6;
  std::atomic<int> got{0}, unwound{0};
  std::vector<tasklet<void>> ts;
  for (int i = 0; i < n; ++i)
    ts.push_back(spawn_parked(sched(), [&] {
      raii_count g(unwound);
      sem.acquire();
      got.fetch_add(1);
    }));
  ts[0].kill();                             // the head of the queue
  ts[3].kill();                             // one in the middle
  sched().block_on([&] { ts[5].kill(); });  // the tail, from a tasklet
  EXPECT_EQ(unwound.load(), 3);
  EXPECT_EQ(got.load(), 0);
  sem.release(5);  // 3 survivors take 3, 2 stay free
  for (auto& t : ts) t.join();
  EXPECT_EQ(got.load(), 3);
  EXPECT_EQ(unwound.load(), 6);
  EXPECT_EQ(sem.value(), 2) << "a killed acquirer took a permit, or one was made up";
}

// kill / stop request racing a release on a parked acquirer: exactly one wins; the permit is
// either the acquirer's or still free.
TEST_P(Semaphore, KillOrStopVersusReleaseRace) {
  const int rounds = static_cast<int>(scaled(5000, 2000, 1500));
  counting_semaphore sem(0);
  std::atomic<int> acquired{0}, ended{0}, cancelled{0}, progress{0};
  int total = 0;
  watchdog wd("KillOrStopVersusReleaseRace", 60s, [&] { return std::uint64_t(progress.load()); });
  for (int r = 0; r < rounds; ++r) {
    const bool by_stop = r % 2;
    std::stop_source ss;
    auto a = spawn_parked(sched(), [&, tok = ss.get_token()] {
      raii_count g(ended);
      try {
        if (by_stop) {
          sem.acquire(tok);
        } else {
          sem.acquire();
        }
        acquired.fetch_add(1);
      } catch (const operation_cancelled&) {
        cancelled.fetch_add(1);
      }
    });
    auto stopper = sched().spawn([&] {
      if (by_stop) {
        ss.request_stop();
      } else {
        a.kill();
      }
    });
    auto releaser = sched().spawn([&] { sem.release(); });
    stopper.join();
    releaser.join();
    a.join();
    progress.fetch_add(1);
    const int taken = acquired.exchange(0);
    total += taken;
    ASSERT_EQ(sem.value() + taken, 1) << "round " << r << ": a permit was lost or duplicated";
    if (!taken) {
      ASSERT_TRUE(sem.try_acquire());  // the next round starts with none free
    }
  }
  EXPECT_EQ(ended.load(), rounds);
  EXPECT_EQ(sem.value(), 0);
  RecordProperty("acquired", total);
  RecordProperty("cancelled", cancelled.load());
}

// Many tiny try_acquire_for timeouts racing releases (tasklets and a plain thread on both sides):
// at the end value() == released − acquired. A release whose wake lost to the timeout left the
// permit free; one whose wake won made try_acquire_for return true.
TEST_P(Semaphore, TimeoutVersusReleaseRaceLosesAndDuplicatesNothing) {
  counting_semaphore sem(0);
  const int waiter_iters = static_cast<int>(scaled(10000, 4000, 2500));
  const int releases = static_cast<int>(scaled(15000, 6000, 4000));
  std::atomic<int> acquired{0}, released{0};
  std::atomic<std::uint64_t> progress{0};
  watchdog wd("TimeoutVersusReleaseRace", 60s, [&] { return progress.load(); });
  auto waiter = [&](unsigned seed, int n) {
    std::minstd_rand rng(seed);
    for (int i = 0; i < n; ++i) {
      if (sem.try_acquire_for(std::chrono::microseconds(rng() % 40))) acquired.fetch_add(1);
      progress.fetch_add(1, std::memory_order_relaxed);
    }
  };
  auto releaser = [&](unsigned seed, int n) {
    std::minstd_rand rng(seed);
    for (int i = 0; i < n; ++i) {
      const std::ptrdiff_t k = 1 + static_cast<std::ptrdiff_t>(rng() % 2);
      sem.release(k);
      released.fetch_add(static_cast<int>(k));
      if (rng() % 4 == 0) relax();
      progress.fetch_add(1, std::memory_order_relaxed);
    }
  };
  std::vector<tasklet<void>> ts;
  ts.push_back(sched().spawn(waiter, 1u, waiter_iters));
  ts.push_back(sched().spawn(waiter, 2u, waiter_iters));
  ts.push_back(sched().spawn(releaser, 3u, releases / 2));
  std::thread tw(waiter, 4u, waiter_iters / 4);  // a plain thread's timed wait is slower
  std::thread tr(releaser, 5u, releases - releases / 2);
  for (auto& t : ts) t.join();
  tw.join();
  tr.join();
  EXPECT_EQ(sem.value(), released.load() - acquired.load())
      << "released " << released.load() << ", acquired " << acquired.load();
  RecordProperty("acquired", acquired.load());
}

TEST_P(Semaphore, BadArguments) {
  EXPECT_THROW(counting_semaphore(-1), std::invalid_argument);
  EXPECT_THROW(bounded_semaphore(-1, 3), std::invalid_argument);
  EXPECT_THROW(bounded_semaphore(3, 2), std::invalid_argument) << "initial above the bound";
  counting_semaphore sem(2);
  EXPECT_EQ(sem.max(), PTRDIFF_MAX);
  EXPECT_THROW(sem.release(-1), std::invalid_argument);
  EXPECT_EQ(sem.value(), 2);
  sched().block_on([&] { EXPECT_THROW(sem.release(-5), std::invalid_argument); });
  EXPECT_EQ(sem.value(), 2);
  counting_semaphore zero(0);
  EXPECT_EQ(zero.value(), 0);
  EXPECT_FALSE(zero.try_acquire());
}

// bounded_semaphore: a release past the bound throws usage_error and changes nothing.
TEST_P(Semaphore, BoundedReleasePastTheBoundChangesNothing) {
  in_tasklet_and_thread(sched(), [] {
    bounded_semaphore b(2);
    EXPECT_EQ(b.max(), 2);
    EXPECT_THROW(b.release(), usage_error);
    EXPECT_EQ(b.value(), 2);
    b.acquire();
    EXPECT_THROW(b.release(2), usage_error);
    EXPECT_EQ(b.value(), 1);
    b.release();
    EXPECT_EQ(b.value(), 2);
    bounded_semaphore c(0, 3);
    EXPECT_EQ(c.max(), 3);
    EXPECT_THROW(c.release(4), usage_error);
    EXPECT_EQ(c.value(), 0);
    c.release(3);
    EXPECT_EQ(c.value(), 3);
    EXPECT_THROW(c.release(), usage_error);
    EXPECT_EQ(c.value(), 3);
  });
  // With an acquirer queued, a release within the bound goes to it.
  bounded_semaphore b(0, 1);
  std::atomic<bool> got{false};
  auto a = spawn_parked(sched(), [&] {
    b.acquire();
    got = true;
  });
  b.release();
  a.join();
  EXPECT_TRUE(got.load());
  EXPECT_EQ(b.value(), 0);
  b.release();
  EXPECT_THROW(b.release(), usage_error);
  EXPECT_EQ(b.value(), 1);
}

}  // namespace
