// test_semaphore_event.cpp — counting_semaphore / bounded_semaphore, event, latch, wait_group and
// barrier (sync/semaphore.hpp, sync/event.hpp; sync/src/gates.cpp), from tasklets and from plain
// threads, over workers ∈ {1, 2, 4}.
//
// Semaphore: permits are never exceeded; queued acquirers are served in arrival order and a
// newcomer never takes a permit while anyone is queued; a timeout, a stop request or a kill of a
// parked acquirer takes nothing (every test ends with a permit accounting: value() is exactly
// what was released minus what was acquired); release(n) wakes n; bad arguments throw.
// Gates: event (set / clear / is_set, a set immediately cleared still releases the waiters that
// were parked), latch, wait_group (reuse, a counter driven below zero changes nothing), barrier
// (nobody leaves a phase before everybody arrived; the completion runs once per phase before
// anyone is released; arrive_and_drop; a timed-out arrival still counts).
// No test asserts how long anything took: every deadline here either must pass (a timeout test
// checks the outcome) or is a hang guard.
#include <algorithm>
#include <memory>
#include <mutex>
#include <random>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "channel_fixture.hpp"

namespace {

using namespace stackless_test;
using sl::barrier;
using sl::bounded_semaphore;
using sl::counting_semaphore;
using sl::event;
using sl::latch;
using sl::operation_cancelled;
using sl::usage_error;
using sl::wait_group;

class Semaphore : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(Semaphore);
class Event : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(Event);
class Latch : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(Latch);
class WaitGroup : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(WaitGroup);
class Barrier : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(Barrier);

/// spawn_parked() spawns f and waits until it parks: queued acquirers / waiters in a known order.
template <class F>
auto spawn_parked(sl::scheduler& s, F&& f) {
  auto t = s.spawn(std::forward<F>(f));
  EXPECT_TRUE(parked(t)) << "the tasklet never parked";
  return t;
}

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
    ASSERT_TRUE(wait_until([&] { return done.load() == i + 1; })) << "release " << i << " woke nobody";
    {
      std::lock_guard<std::mutex> g(mu);
      ASSERT_EQ(order.size(), static_cast<std::size_t>(i + 1));
      EXPECT_EQ(order.back(), i) << "permit " << i << " did not go to the longest waiter";
    }
    for (int j = i + 1; j < n; ++j) EXPECT_TRUE(ts[j].alive()) << "acquirer " << j << " got a permit early";
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
  EXPECT_FALSE(sem.try_acquire()) << "try_acquire() from a plain thread barged past a queued acquirer";
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
  for (int i = 0; i < n; ++i) ts.push_back(spawn_parked(sched(), [&] {
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
  in_tasklet_and_thread(sched(), [&] { EXPECT_THROW(sem.acquire(ss.get_token()), operation_cancelled); });
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
  for (int i = 0; i < n; ++i) ts.push_back(spawn_parked(sched(), [&] {
    raii_count g(unwound);
    sem.acquire();
    got.fetch_add(1);
  }));
  ts[0].kill();  // the head of the queue
  ts[3].kill();  // one in the middle
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

// ---- event ------------------------------------------------------------------------------------

TEST_P(Event, SetReleasesAllWaiters) {
  event e;
  EXPECT_FALSE(e.is_set());
  const int n = 6;
  std::atomic<int> released{0};
  std::vector<tasklet<void>> ts;
  for (int i = 0; i < n; ++i) ts.push_back(spawn_parked(sched(), [&, i] {
    if (i % 2) {
      e.wait();
    } else {
      EXPECT_TRUE(e.wait_for(1h));
    }
    released.fetch_add(1);
  }));
  std::vector<std::thread> th;
  for (int i = 0; i < 2; ++i) th.emplace_back([&] {
    e.wait();
    released.fetch_add(1);
  });
  EXPECT_EQ(released.load(), 0);
  sched().block_on([&] { e.set(); });
  for (auto& t : ts) t.join();
  for (auto& t : th) t.join();
  EXPECT_EQ(released.load(), n + 2);
  EXPECT_TRUE(e.is_set());
}

TEST_P(Event, WaitsAfterSetReturnAtOnceUntilClear) {
  event e(true);
  EXPECT_TRUE(e.is_set());
  in_tasklet_and_thread(sched(), [&] {
    e.wait();
    EXPECT_TRUE(e.wait_for(0ms));
    EXPECT_TRUE(e.wait_until(std::chrono::steady_clock::now() - 1s));
    e.set();  // setting again changes nothing
    EXPECT_TRUE(e.is_set());
  });
  e.clear();
  EXPECT_FALSE(e.is_set());
  in_tasklet_and_thread(sched(), [&] {
    EXPECT_FALSE(e.wait_for(10ms));
    EXPECT_FALSE(e.is_set());
  });
  e.clear();  // clearing twice is fine
  e.set();
  in_tasklet_and_thread(sched(), [&] { EXPECT_TRUE(e.wait_for(0ms)); });
}

TEST_P(Event, WaitForTimesOutThenSetStillWorks) {
  event e;
  in_tasklet_and_thread(sched(), [&] {
    EXPECT_FALSE(e.wait_for(20ms));
    EXPECT_FALSE(e.wait_until(std::chrono::steady_clock::now() + 5ms));
    sl::timeout_scope scope(5ms);
    EXPECT_THROW(e.wait(), sl::timeout_error);
  });
  EXPECT_FALSE(e.is_set());
  // A waiter that comes after the timed-out ones is released normally.
  auto w = spawn_parked(sched(), [&] { return e.wait_for(1h); });
  e.set();
  EXPECT_TRUE(w.join());
}

// set() followed at once by clear() still releases every waiter that was parked before set(), and
// each of them returns true; a wait that starts after the clear waits again.
TEST_P(Event, SetThenImmediatelyClearStillReleasesParkedWaiters) {
  event e;
  const int rounds = static_cast<int>(scaled(200, 100, 60));
  for (int r = 0; r < rounds; ++r) {
    std::vector<tasklet<bool>> ts;
    for (int i = 0; i < 4; ++i) ts.push_back(spawn_parked(sched(), [&, i]() -> bool {
      if (i == 0) {
        e.wait();
        return true;
      }
      return e.wait_for(1h);
    }));
    if (r % 2) {
      e.set();
      e.clear();
    } else {
      sched().block_on([&] {
        e.set();
        e.clear();
      });
    }
    for (auto& t : ts) ASSERT_TRUE(t.join()) << "round " << r << ": a waiter parked before set() timed out";
    EXPECT_FALSE(e.is_set());
  }
  EXPECT_FALSE(sched().block_on([&] { return e.wait_for(5ms); }));
}

TEST_P(Event, WaitWithStopToken) {
  event e;
  std::stop_source ss;
  auto cancelled = spawn_parked(sched(), [&] {
    try {
      e.wait(ss.get_token());
      return 1;
    } catch (const operation_cancelled&) {
      return 2;
    }
  });
  auto other = spawn_parked(sched(), [&] { e.wait(); });
  std::stop_source ss2;
  std::thread th([&] { EXPECT_THROW(e.wait(ss2.get_token()), operation_cancelled); });
  ss.request_stop();
  EXPECT_EQ(cancelled.join(), 2);
  sched().block_on([&] {
    this_tasklet::sleep_for(5ms);
    ss2.request_stop();
  });
  th.join();
  EXPECT_TRUE(other.alive()) << "a stop request on another waiter's token released this one";
  EXPECT_FALSE(e.is_set());
  e.set();
  other.join();
  // Set: a stopped token does not matter when there is nothing to wait for.
  std::stop_source stopped;
  stopped.request_stop();
  in_tasklet_and_thread(sched(), [&] { e.wait(stopped.get_token()); });
}

// ---- latch ------------------------------------------------------------------------------------

TEST_P(Latch, CountDownToZeroReleasesWaiters) {
  latch l(3);
  EXPECT_FALSE(l.try_wait());
  std::atomic<int> released{0};
  std::vector<tasklet<void>> ts;
  for (int i = 0; i < 4; ++i) ts.push_back(spawn_parked(sched(), [&] {
    l.wait();
    released.fetch_add(1);
  }));
  std::thread th([&] {
    EXPECT_TRUE(l.wait_for(1h));
    released.fetch_add(1);
  });
  l.count_down();
  EXPECT_FALSE(l.try_wait());
  sched().block_on([&] { l.count_down(); });
  EXPECT_FALSE(l.try_wait());
  EXPECT_EQ(released.load(), 0);
  for (auto& t : ts) EXPECT_TRUE(t.alive());
  auto last = sched().spawn([&] { l.count_down(1); });
  last.join();
  for (auto& t : ts) t.join();
  th.join();
  EXPECT_EQ(released.load(), 5);
  EXPECT_TRUE(l.try_wait());
  in_tasklet_and_thread(sched(), [&] {
    l.wait();
    EXPECT_TRUE(l.wait_for(0ms));
  });
}

TEST_P(Latch, ArriveAndWait) {
  const int tasklets = 5, threads = 2;
  latch l(tasklets + threads);
  std::atomic<int> arrived{0}, early{0};
  auto body = [&] {
    arrived.fetch_add(1);
    l.arrive_and_wait();
    if (arrived.load() != tasklets + threads) early.fetch_add(1);
  };
  std::vector<tasklet<void>> ts;
  for (int i = 0; i < tasklets; ++i) ts.push_back(sched().spawn(body));
  std::vector<std::thread> th;
  for (int i = 0; i < threads; ++i) th.emplace_back(body);
  for (auto& t : ts) t.join();
  for (auto& t : th) t.join();
  EXPECT_EQ(early.load(), 0) << "arrive_and_wait() returned before everybody arrived";
  EXPECT_TRUE(l.try_wait());
  // arrive_and_wait(n) with the whole count at once returns at once.
  latch one(2);
  in_tasklet_and_thread(sched(), [&] {
    if (!one.try_wait()) one.arrive_and_wait(2);
    EXPECT_TRUE(one.try_wait());
  });
}

TEST_P(Latch, BadArgumentsChangeNothing) {
  EXPECT_THROW(latch(-1), std::invalid_argument);
  latch zero(0);
  EXPECT_TRUE(zero.try_wait());
  zero.wait();
  EXPECT_THROW(zero.count_down(), usage_error);
  EXPECT_TRUE(zero.try_wait());
  latch l(2);
  in_tasklet_and_thread(sched(), [&] {
    EXPECT_THROW(l.count_down(3), usage_error);
    EXPECT_THROW(l.count_down(-1), usage_error);
    EXPECT_FALSE(l.try_wait());
  });
  auto w = spawn_parked(sched(), [&] { l.wait(); });
  EXPECT_THROW(l.count_down(3), usage_error);
  EXPECT_TRUE(w.alive()) << "a rejected count_down() released a waiter";
  l.count_down(2);
  w.join();
  EXPECT_TRUE(l.try_wait());
  EXPECT_THROW(l.count_down(), usage_error) << "count_down past zero";
  EXPECT_TRUE(l.try_wait());
}

TEST_P(Latch, WaitForTimesOut) {
  latch l(1);
  in_tasklet_and_thread(sched(), [&] {
    EXPECT_FALSE(l.wait_for(20ms));
    EXPECT_FALSE(l.wait_until(std::chrono::steady_clock::now() + 5ms));
    sl::timeout_scope scope(5ms);
    EXPECT_THROW(l.wait(), sl::timeout_error);
  });
  EXPECT_FALSE(l.try_wait());
  std::stop_source ss;
  ss.request_stop();
  EXPECT_THROW(l.wait(ss.get_token()), operation_cancelled);
  auto w = spawn_parked(sched(), [&] { return l.wait_for(1h); });
  l.count_down();
  EXPECT_TRUE(w.join());
}

// ---- wait_group -------------------------------------------------------------------------------

// Work done by tasklets and plain threads, waited for by tasklets and plain threads, several
// rounds on the same group (reuse after zero).
TEST_P(WaitGroup, AddDoneWaitAcrossWorkersAndThreadsWithReuse) {
  wait_group wg;
  EXPECT_EQ(wg.count(), 0);
  in_tasklet_and_thread(sched(), [&] {
    wg.wait();  // zero: returns at once
    EXPECT_TRUE(wg.wait_for(0ms));
  });
  const int rounds = static_cast<int>(scaled(40, 10, 5));
  const int tasklets = 6, threads = 2;
  for (int r = 0; r < rounds; ++r) {
    std::atomic<int> finished{0}, early{0};
    wg.add(tasklets);
    wg.add(threads);
    std::vector<tasklet<void>> work;
    for (int i = 0; i < tasklets; ++i) work.push_back(sched().spawn([&, i] {
      for (int y = 0; y < i % 3; ++y) this_tasklet::yield();
      finished.fetch_add(1);
      wg.done();
    }));
    std::vector<std::thread> th;
    for (int i = 0; i < threads; ++i) th.emplace_back([&] {
      finished.fetch_add(1);
      wg.done();
    });
    auto check = [&] {
      if (finished.load() != tasklets + threads) early.fetch_add(1);
    };
    std::vector<tasklet<void>> waiters;
    for (int i = 0; i < 3; ++i) waiters.push_back(sched().spawn([&] {
      wg.wait();
      check();
    }));
    std::thread tw([&] {
      wg.wait();
      check();
    });
    wg.wait();
    check();
    for (auto& t : work) t.join();
    for (auto& t : th) t.join();
    for (auto& t : waiters) t.join();
    tw.join();
    ASSERT_EQ(early.load(), 0) << "round " << r << ": wait() returned before the counter reached zero";
    ASSERT_EQ(wg.count(), 0);
  }
}

TEST_P(WaitGroup, MoreDoneThanAddIsUsageErrorAndChangesNothing) {
  wait_group wg;
  in_tasklet_and_thread(sched(), [&] {
    EXPECT_THROW(wg.done(), usage_error);
    EXPECT_EQ(wg.count(), 0);
    wg.add(2);
    wg.done();
    wg.done();
    EXPECT_THROW(wg.done(), usage_error);
    EXPECT_EQ(wg.count(), 0);
  });
  wg.add(2);
  auto w = spawn_parked(sched(), [&] { wg.wait(); });
  EXPECT_THROW(wg.add(-3), usage_error);
  EXPECT_EQ(wg.count(), 2);
  EXPECT_TRUE(w.alive()) << "a rejected add() released a waiter";
  wg.add(-2);
  w.join();
  EXPECT_EQ(wg.count(), 0);
}

TEST_P(WaitGroup, WaitForTimesOut) {
  wait_group wg;
  wg.add(1);
  in_tasklet_and_thread(sched(), [&] {
    EXPECT_FALSE(wg.wait_for(20ms));
    EXPECT_FALSE(wg.wait_until(std::chrono::steady_clock::now() + 5ms));
    EXPECT_EQ(wg.count(), 1);
  });
  std::stop_source ss;
  auto c = spawn_parked(sched(), [&] { EXPECT_THROW(wg.wait(ss.get_token()), operation_cancelled); });
  ss.request_stop();
  c.join();
  auto w = spawn_parked(sched(), [&] { return wg.wait_for(1h); });
  wg.done();
  EXPECT_TRUE(w.join());
}

// ---- barrier ----------------------------------------------------------------------------------

// N participants (tasklets and plain threads) through several phases: nobody leaves phase k
// before all arrived in it; the completion runs exactly once per phase, after the last arrival
// and before anybody of that phase is released.
TEST_P(Barrier, PhasesWithCompletion) {
  const int tasklets = 5, threads = 2, n = tasklets + threads;
  const int phases = static_cast<int>(scaled(60, 30, 20));
  std::vector<std::atomic<int>> arrived(phases), left(phases);
  std::atomic<int> completions{0}, bad_completion{0}, early{0};
  barrier b(n, [&] {
    const int k = completions.fetch_add(1);
    if (k >= phases || arrived[k].load() != n || left[k].load() != 0) bad_completion.fetch_add(1);
  });
  auto body = [&](int who) {
    for (int k = 0; k < phases; ++k) {
      arrived[k].fetch_add(1);
      if (who % 3 == 0) relax();
      if (k % 2) {
        b.arrive_and_wait();
      } else {
        b.wait(b.arrive());
      }
      if (arrived[k].load() != n || completions.load() != k + 1) early.fetch_add(1);
      left[k].fetch_add(1);
    }
  };
  std::vector<tasklet<void>> ts;
  for (int i = 0; i < tasklets; ++i) ts.push_back(sched().spawn(body, i));
  std::vector<std::thread> th;
  for (int i = 0; i < threads; ++i) th.emplace_back(body, tasklets + i);
  for (auto& t : ts) t.join();
  for (auto& t : th) t.join();
  EXPECT_EQ(early.load(), 0) << "a participant left a phase before everybody arrived / completed";
  EXPECT_EQ(completions.load(), phases) << "the completion did not run exactly once per phase";
  EXPECT_EQ(bad_completion.load(), 0) << "a completion ran early, late, or after someone was released";
  for (int k = 0; k < phases; ++k) EXPECT_EQ(left[k].load(), n);
}

TEST_P(Barrier, ArriveAndDrop) {
  std::atomic<int> completions{0};
  barrier b(3, [&] { completions.fetch_add(1); });
  auto a = sched().spawn([&] {
    b.arrive_and_wait();  // phase 0, with the dropper
    b.arrive_and_wait();  // phase 1, two participants left
    b.arrive_and_wait();  // phase 2
  });
  auto dropper = sched().spawn([&] { b.arrive_and_drop(); });
  b.arrive_and_wait();  // this plain thread: phase 0
  dropper.join();
  b.arrive_and_wait();  // phase 1
  b.arrive_and_wait();  // phase 2
  a.join();
  EXPECT_EQ(completions.load(), 3);
  // Dropping down to one participant: it passes alone.
  barrier solo(2);
  sched().block_on([&] { solo.arrive_and_drop(); });
  in_tasklet_and_thread(sched(), [&] { solo.arrive_and_wait(); });
}

// A waiter that times out has still arrived: the phase completes without it arriving again.
TEST_P(Barrier, ArriveAndWaitForTimeoutStillCounts) {
  std::atomic<int> completions{0};
  barrier b(2, [&] { completions.fetch_add(1); });
  in_tasklet_and_thread(sched(), [&] {
    const int before = completions.load();
    EXPECT_FALSE(b.arrive_and_wait_for(10ms));
    EXPECT_EQ(completions.load(), before);
    // The other participant's arrival completes the phase; it does not wait.
    auto other = sched().spawn([&] { b.arrive_and_wait(); });
    other.join();
    EXPECT_EQ(completions.load(), before + 1);
  });
  // The barrier goes on normally, with a token wait that succeeds.
  auto other = sched().spawn([&] { return b.arrive_and_wait_for(1h); });
  EXPECT_TRUE(b.wait_for(b.arrive(), 1h));
  EXPECT_TRUE(other.join());
  EXPECT_EQ(completions.load(), 3);
  // Waiting on the token of a phase that is over returns at once.
  auto t = b.arrive();
  sched().block_on([&] { b.arrive_and_wait(); });
  EXPECT_TRUE(b.wait_for(t, 0ms));
}

// While the completion function runs (here it parks), an arrival for the next phase is a
// usage_error; the phase's waiters are released only once it has returned.
TEST_P(Barrier, ArrivalDuringTheCompletionIsUsageError) {
  sl::event release_completion;
  std::atomic<bool> in_completion{false};
  barrier b(2, [&] {
    in_completion = true;
    release_completion.wait();
    in_completion = false;
  });
  std::atomic<bool> released{false};
  auto first = sched().spawn([&] {
    b.arrive_and_wait();
    released = true;
  });
  auto last = sched().spawn([&] { b.arrive_and_wait(); });  // runs the completion
  ASSERT_TRUE(wait_until([&] { return in_completion.load(); }));
  EXPECT_THROW((void)b.arrive(), usage_error);
  EXPECT_THROW(sched().block_on([&] { b.arrive_and_drop(); }), usage_error);
  EXPECT_FALSE(released.load()) << "a waiter was released before the completion returned";
  release_completion.set();
  first.join();
  last.join();
  EXPECT_TRUE(released.load());
  // The next phase is intact: both participants are still expected.
  auto other = sched().spawn([&] { b.arrive_and_wait(); });
  b.arrive_and_wait();
  other.join();
}

TEST_P(Barrier, BadArguments) {
  EXPECT_THROW(barrier(0), std::invalid_argument);
  EXPECT_THROW(barrier(-2), std::invalid_argument);
  barrier b(2);
  EXPECT_THROW((void)b.arrive(3), usage_error);
  EXPECT_THROW((void)b.arrive(0), usage_error);
  auto t = b.arrive(2);  // the whole phase at once
  b.wait(t);
}

}  // namespace
