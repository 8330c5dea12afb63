// SPDX-License-Identifier: Apache-2.0
// tests/sync/test_mutex_policy.cpp — mutex_policy::throughput (Go's sync.Mutex rules: barging,
// one woken waiter competing, FIFO hand-off once a waiter has waited 1 ms). The default, fair
// policy is tested in test_mutex.cpp; here: the same safety properties under the other rules, and
// that no waiter starves while others hammer the lock.
//
// Tests never assert timing: every wait here is a hang guard.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "fixture.hpp"
#include "stackless/sync.hpp"

namespace stackless_test {
namespace {

using namespace std::chrono_literals;
using stackless::mutex;
using stackless::mutex_policy;

class MutexPolicy : public runtime_test {};

// Mutual exclusion with tasklets on every worker and plain threads mixed in: a non-atomic counter
// and an "inside" flag that two holders at once would trip.
TEST_P(MutexPolicy, ThroughputExcludesAcrossWorkersAndThreads) {
  mutex m(mutex_policy::throughput);
  long counter = 0;
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  const int per = static_cast<int>(ci_sized(scaled(5000, 1000, 300), 1500));  // CI: 1,500
  auto body = [&] {
    for (int i = 0; i < per; ++i) {
      std::lock_guard g(m);
      if (inside.fetch_add(1, std::memory_order_relaxed) != 0) overlaps.fetch_add(1);
      ++counter;
      inside.fetch_sub(1, std::memory_order_relaxed);
      if (i % 64 == 0) relax();
    }
  };
  std::vector<stackless::tasklet<void>> ts;
  for (int k = 0; k < 8; ++k) ts.push_back(sched().spawn(body));
  std::thread a(body), b(body);
  for (auto& t : ts) t.join();
  a.join();
  b.join();
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(counter, 10L * per);
}

// A waiter is not starved: one tasklet asks for the lock once while eight others hammer it
// (re-locking right after each unlock, which barging favours); it must get it (the 1 ms rule
// switches the lock to hand-off).
TEST_P(MutexPolicy, ThroughputWaiterIsNotStarved) {
  mutex m(mutex_policy::throughput);
  std::atomic<bool> stop{false};
  std::atomic<long> rounds{0};
  std::vector<stackless::tasklet<void>> hammers;
  for (int k = 0; k < 8; ++k)
    hammers.push_back(sched().spawn([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 64; ++i) {
          m.lock();
          rounds.fetch_add(1, std::memory_order_relaxed);
          m.unlock();
        }
        stackless::this_tasklet::yield();  // one worker has no preemption: let the victim start
      }
    }));
  while (rounds.load() < 1000) std::this_thread::yield();
  auto victim = sched().spawn([&] {
    m.lock();
    m.unlock();
  });
  victim.join();  // hangs (watchdog) if starved
  stop = true;
  for (auto& t : hammers) t.join();
}

// try_lock_for() against unlocks in a loop: after each round the lock is free or held by the
// waiter (then it unlocks); never held by nobody, never lost.
TEST_P(MutexPolicy, ThroughputTimedLockRacesUnlock) {
  mutex m(mutex_policy::throughput);
  const int rounds = static_cast<int>(scaled(5000, 500, 200));
  int got = 0;
  sched().block_on([&] {
    for (int r = 0; r < rounds; ++r) {
      m.lock();
      auto w = stackless::spawn([&] {
        if (m.try_lock_for(std::chrono::microseconds(r % 50))) {
          ++got;
          m.unlock();
        }
      });
      if (r % 3) stackless::this_tasklet::yield();
      m.unlock();
      w.join();
      ASSERT_TRUE(m.try_lock()) << "round " << r << ": the lock was lost";
      m.unlock();
    }
  });
  EXPECT_LE(got, rounds);
}

// Kill a tasklet parked in lock(): the queue stays consistent, the lock still works.
TEST_P(MutexPolicy, ThroughputKillParkedLocker) {
  mutex m(mutex_policy::throughput);
  sched().block_on([&] {
    m.lock();
    std::vector<stackless::tasklet<void>> ws;
    for (int k = 0; k < 4; ++k)
      ws.push_back(stackless::spawn([&] {
        m.lock();
        m.unlock();
      }));
    while (!ws[1].blocked()) stackless::this_tasklet::yield();
    ws[1].kill();
    m.unlock();
    for (auto& w : ws) w.join();
    ASSERT_TRUE(m.try_lock());
    m.unlock();
  });
}

// unlock() by a tasklet that does not hold it throws, under either policy.
TEST_P(MutexPolicy, ThroughputUnlockByNonOwnerThrows) {
  mutex m(mutex_policy::throughput);
  sched().block_on([&] {
    m.lock();
    auto other = stackless::spawn([&] { EXPECT_THROW(m.unlock(), stackless::usage_error); });
    other.join();
    m.unlock();
    EXPECT_THROW(m.unlock(), stackless::usage_error);
  });
}

STACKLESS_INSTANTIATE_WORKERS(MutexPolicy);

}  // namespace
}  // namespace stackless_test
