// SPDX-License-Identifier: Apache-2.0
// test_semaphore_event_gates.cpp — event, latch, wait_group and barrier (sync/event.hpp;
// sync/src/gates.cpp), from tasklets and from plain threads, over workers ∈ {1, 2, 4}.
//
// Gates: event (set / clear / is_set, a set immediately cleared still releases the waiters that
// were parked), latch, wait_group (reuse, a counter driven below zero changes nothing), barrier
// (nobody leaves a phase before everybody arrived; the completion runs once per phase before
// anyone is released; arrive_and_drop; a timed-out arrival still counts).
// The semaphores are in test_semaphore_event.cpp; the helper both use in
// test_semaphore_event_fixture.hpp.
// No test asserts how long anything took: every deadline here either must pass (a timeout test
// checks the outcome) or is a hang guard.
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <vector>

#include "test_semaphore_event_fixture.hpp"

namespace {

using namespace stackless_test;
using namespace stackless_test::semaphore_event_test;
using sl::barrier;
using sl::event;
using sl::latch;
using sl::operation_cancelled;
using sl::usage_error;
using sl::wait_group;

class Event : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(Event);
class Latch : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(Latch);
class WaitGroup : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(WaitGroup);
class Barrier : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(Barrier);

// ---- event ------------------------------------------------------------------------------------

TEST_P(Event, SetReleasesAllWaiters) {
  event e;
  EXPECT_FALSE(e.is_set());
  const int n = 6;
  std::atomic<int> released{0};
  std::vector<tasklet<void>> ts;
  for (int i = 0; i < n; ++i)
    ts.push_back(spawn_parked(sched(), [&, i] {
      if (i % 2) {
        e.wait();
      } else {
        EXPECT_TRUE(e.wait_for(1h));
      }
      released.fetch_add(1);
    }));
  std::vector<std::thread> th;
  for (int i = 0; i < 2; ++i)
    th.emplace_back([&] {
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
    for (int i = 0; i < 4; ++i)
      ts.push_back(spawn_parked(sched(), [&, i]() -> bool {
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
    for (auto& t : ts)
      ASSERT_TRUE(t.join()) << "round " << r << ": a waiter parked before set() timed out";
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
  for (int i = 0; i < 4; ++i)
    ts.push_back(spawn_parked(sched(), [&] {
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
    for (int i = 0; i < tasklets; ++i)
      work.push_back(sched().spawn([&, i] {
        for (int y = 0; y < i % 3; ++y) this_tasklet::yield();
        finished.fetch_add(1);
        wg.done();
      }));
    std::vector<std::thread> th;
    for (int i = 0; i < threads; ++i)
      th.emplace_back([&] {
        finished.fetch_add(1);
        wg.done();
      });
    auto check = [&] {
      if (finished.load() != tasklets + threads) early.fetch_add(1);
    };
    std::vector<tasklet<void>> waiters;
    for (int i = 0; i < 3; ++i)
      waiters.push_back(sched().spawn([&] {
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
    ASSERT_EQ(early.load(), 0) << "round " << r
                               << ": wait() returned before the counter reached zero";
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
  auto c =
      spawn_parked(sched(), [&] { EXPECT_THROW(wg.wait(ss.get_token()), operation_cancelled); });
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
  EXPECT_EQ(bad_completion.load(), 0)
      << "a completion ran early, late, or after someone was released";
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
