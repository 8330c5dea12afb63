// SPDX-License-Identifier: Apache-2.0
// test_cancel_race.cpp — std::stop_token cancellation of blocking calls (operation_cancelled,
// runtime/include/stackless/runtime/timeout.hpp) racing the notify that would have ended the
// wait anyway:
//  - stop against notify, many rounds (counting_semaphore::acquire(st) against release — the
//    waiter a tasklet or a plain thread, the stop from a tasklet or a plain thread —,
//    mutex::lock(st) against unlock, event / latch / wait_group / future waits against opening
//    the gate): exactly one outcome each round (the call succeeded and the resource is held /
//    consumed, or it threw and the resource is intact); the final accounting is exact;
//  - condition_variable::wait(lock, st, pred) against a notify that sets the predicate: true
//    means the predicate held, false that a stop was requested; the lock is held either way.
// The stop before / while parked, tokens that cannot stop, the std forms, kill and timeout_scope
// are in test_cancel.cpp; the helpers both use in test_cancel_fixture.hpp.
// Every test runs over workers ∈ {1, 2, 4}. No test asserts how long anything took.
#include <atomic>
#include <cstdio>
#include <mutex>
#include <random>
#include <stop_token>
#include <string>

#include "test_cancel_fixture.hpp"

namespace {

using namespace stackless_test;
using namespace stackless_test::cancel_test;

class Cancel : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(Cancel);

/// spin_for() busy-waits for d (no yield): a random delay finer than any timer.
void spin_for(std::chrono::microseconds d) {
  const auto until = clock_type::now() + d;
  while (clock_type::now() < until) {
  }
}

/// yields() yields k times (a tasklet) or spins a little (a plain thread): random interleavings.
void yields(unsigned k) {
  for (unsigned i = 0; i < k; ++i) relax();
}

// ---- stop against notify: exactly one outcome per round ---------------------------------------

struct tally {
  std::size_t took = 0, cancelled = 0, wrong = 0;
};

// race_round() runs one round, inside a tasklet: a waiter tasklet calls wait(st); a notifier
// tasklet calls notify() (makes the resource available), and the stop is requested by a third
// tasklet or by the caller, each after a random number of yields. check(took) validates the
// round once everything has ended.
template <class Wait, class Notify, class Check>
void race_round(std::mt19937& rng, Wait wait, Notify notify, Check check, tally& t) {
  std::stop_source src;
  std::atomic<int> outcome{0};  // 1 returned, 2 cancelled, 3 anything else
  auto w = stackless::spawn([&] {
    const std::string r = outcome_of([&] { wait(src.get_token()); });
    outcome = r == kReturned ? 1 : r == kCancelled ? 2 : 3;
  });
  const unsigned k1 = rng() % 4, k2 = rng() % 4;
  const bool stop_here = rng() % 2 == 0;
  auto n = stackless::spawn([&, k1] {
    yields(k1);
    notify();
  });
  tasklet<void> st;
  if (stop_here) {
    yields(k2);
    src.request_stop();
  } else {
    st = stackless::spawn([&, k2] {
      yields(k2);
      src.request_stop();
    });
  }
  w.join();
  n.join();
  if (st) st.join();
  const int o = outcome.load();
  if (o == 1)
    ++t.took;
  else if (o == 2)
    ++t.cancelled;
  if (o == 3 || !check(o == 1)) ++t.wrong;
}

// Semaphore: a permit released in a round is either taken by the waiter (then none is left) or
// left there (the waiter was cancelled).
TEST_P(Cancel, RaceStopAgainstReleaseOfASemaphore) {
  const std::size_t rounds = scaled(20000, 4000, 2000);
  sl::counting_semaphore sem(0);
  std::size_t released = 0, left_over = 0;
  auto check = [&](bool took) {
    ++released;
    const auto v = sem.value();
    if (!took && v == 1) {
      ++left_over;
      sem.try_acquire();  // reset for the next round
      return true;
    }
    return took && v == 0;
  };
  auto wait = [&](std::stop_token st) { sem.acquire(st); };
  auto notify = [&] { sem.release(1); };
  tally t;
  sched().block_on([&] {  // the waiter a tasklet
    std::mt19937 rng(1);
    for (std::size_t i = 0; i < rounds; ++i) race_round(rng, wait, notify, check, t);
  });
  EXPECT_EQ(t.wrong, 0u) << "a round with a permit lost, taken twice, or both outcomes";
  EXPECT_EQ(t.took + t.cancelled, rounds);
  EXPECT_EQ(t.took + left_over, released) << "permits lost";
  EXPECT_EQ(sem.value(), 0);
  std::printf("semaphore, waiter a tasklet: %zu took / %zu cancelled\n", t.took, t.cancelled);
}

// The same with the waiter a plain thread (this one): the notifier and the stopper are tasklets.
TEST_P(Cancel, RaceStopAgainstReleaseWithAPlainThreadWaiting) {
  const std::size_t rounds = scaled(5000, 1000, 500);
  sl::counting_semaphore sem(0);
  std::size_t released = 0, left_over = 0;
  tally t;
  std::mt19937 rng(2);
  for (std::size_t i = 0; i < rounds; ++i) {
    std::stop_source src;
    // The tasklets start at once (on other worker threads): a random spin of 0–20 µs each
    // spreads their actions around this thread's call.
    const auto d1 = std::chrono::microseconds(rng() % 21),
               d2 = std::chrono::microseconds(rng() % 21);
    auto release = [&, d1] {
      spin_for(d1);
      sem.release(1);
    };
    auto stop = [&, d2] {
      spin_for(d2);
      src.request_stop();
    };
    // Either may be spawned first (with one worker, the first one spawned acts first).
    tasklet<void> n, st;
    if (rng() % 2) {
      n = sched().spawn(release);
      st = sched().spawn(stop);
    } else {
      st = sched().spawn(stop);
      n = sched().spawn(release);
    }
    const std::string r = outcome_of([&] { sem.acquire(src.get_token()); });
    n.join();
    st.join();
    ++released;
    const auto v = sem.value();
    if (r == kReturned && v == 0) {
      ++t.took;
    } else if (r == kCancelled && v == 1) {
      ++t.cancelled;
      ++left_over;
      sem.try_acquire();
    } else {
      ++t.wrong;
      ADD_FAILURE() << "round " << i << ": " << r << " with " << v << " permits left";
      break;
    }
  }
  EXPECT_EQ(t.wrong, 0u);
  EXPECT_EQ(t.took + left_over, released);
  std::printf("semaphore, waiter a plain thread: %zu took / %zu cancelled\n", t.took, t.cancelled);
}

// The waiter a tasklet, the stop requested by this plain thread.
TEST_P(Cancel, RaceStopFromAPlainThreadAgainstRelease) {
  const std::size_t rounds = scaled(5000, 1000, 500);
  sl::counting_semaphore sem(0);
  tally t;
  std::mt19937 rng(3);
  for (std::size_t i = 0; i < rounds; ++i) {
    std::stop_source src;
    const auto d1 = std::chrono::microseconds(rng() % 21),
               d2 = std::chrono::microseconds(rng() % 21);
    std::atomic<int> outcome{0};
    auto w = sched().spawn([&] {
      const std::string r = outcome_of([&] { sem.acquire(src.get_token()); });
      outcome = r == kReturned ? 1 : r == kCancelled ? 2 : 3;
    });
    auto n = sched().spawn([&, d1] {
      spin_for(d1);
      sem.release(1);
    });
    spin_for(d2);
    src.request_stop();
    w.join();
    n.join();
    const auto v = sem.value();
    if (outcome == 1 && v == 0) {
      ++t.took;
    } else if (outcome == 2 && v == 1) {
      ++t.cancelled;
      sem.try_acquire();
    } else {
      ADD_FAILURE() << "round " << i << ": outcome " << outcome.load() << " with " << v
                    << " permits left";
      break;
    }
  }
  EXPECT_EQ(t.took + t.cancelled, rounds);
  EXPECT_EQ(sem.value(), 0);
  std::printf("semaphore, stop from a plain thread: %zu took / %zu cancelled\n", t.took,
              t.cancelled);
}

// Mutex: the holder (the driver tasklet) unlocks while the stop comes. The waiter either got the
// lock (and held it: owned_by_caller()) or was cancelled; either way, after the round the mutex is
// free — a cancelled waiter was never handed the lock.
TEST_P(Cancel, RaceStopAgainstUnlock) {
  const std::size_t rounds = scaled(20000, 4000, 2000);
  std::atomic<std::size_t> not_owned{0};
  tally u;
  for (auto policy : {sl::mutex_policy::fair, sl::mutex_policy::throughput}) {
    sched().block_on([&] {
      sl::mutex m(policy);
      std::mt19937 rng(5);
      for (std::size_t i = 0; i < rounds; ++i) {
        m.lock();
        std::stop_source src;
        std::atomic<int> outcome{0};
        auto w = stackless::spawn([&] {
          const std::string r = outcome_of([&] {
            m.lock(src.get_token());
            if (!m.owned_by_caller()) not_owned.fetch_add(1);
            m.unlock();
          });
          outcome = r == kReturned ? 1 : r == kCancelled ? 2 : 3;
        });
        const unsigned k1 = rng() % 4, k2 = rng() % 4;
        auto x = stackless::spawn([&, k1] {
          yields(k1);
          src.request_stop();
        });
        yields(k2);
        m.unlock();
        w.join();
        x.join();
        const bool free = m.try_lock();
        if (free) m.unlock();
        if (!free || outcome == 3) {
          ++u.wrong;
          ADD_FAILURE() << "round " << i << ": outcome " << outcome.load()
                        << ", mutex free: " << free;
          break;
        }
        if (outcome == 1)
          ++u.took;
        else
          ++u.cancelled;
      }
    });
  }
  EXPECT_EQ(not_owned.load(), 0u) << "lock(st) returned without the lock";
  EXPECT_EQ(u.wrong, 0u);
  EXPECT_EQ(u.took + u.cancelled, 2 * rounds);
  std::printf("mutex (fair and throughput): %zu took / %zu cancelled\n", u.took, u.cancelled);
}

// The gates (event, latch, wait_group, future) open while the stop comes: a wait that returned
// found its gate open; one that was cancelled threw operation_cancelled; nothing else.
TEST_P(Cancel, RaceStopAgainstOpeningAGate) {
  const std::size_t rounds = scaled(20000, 4000, 2000);
  tally t;
  sched().block_on([&] {
    std::mt19937 rng(6);
    for (std::size_t i = 0; i < rounds; ++i) {
      const int kind = static_cast<int>(i % 4);
      sl::event ev;
      sl::latch l(1);
      sl::wait_group wg;
      wg.add(1);
      sl::promise<void> p;
      auto f = p.get_future();
      auto wait = [&](std::stop_token st) {
        switch (kind) {
          case 0:
            ev.wait(st);
            break;
          case 1:
            l.wait(st);
            break;
          case 2:
            wg.wait(st);
            break;
          default:
            f.wait(st);
            break;
        }
      };
      auto open = [&] {
        switch (kind) {
          case 0:
            ev.set();
            break;
          case 1:
            l.count_down();
            break;
          case 2:
            wg.done();
            break;
          default:
            p.set_value();
            break;
        }
      };
      auto is_open = [&] {
        switch (kind) {
          case 0:
            return ev.is_set();
          case 1:
            return l.try_wait();
          case 2:
            return wg.count() == 0;
          default:
            return f.is_ready();
        }
      };
      race_round(
          rng, wait, open, [&](bool took) { return !took || is_open(); }, t);
    }
  });
  EXPECT_EQ(t.wrong, 0u);
  EXPECT_EQ(t.took + t.cancelled, rounds);
  std::printf("gates: %zu returned / %zu cancelled\n", t.took, t.cancelled);
}

// ---- condition_variable: stop against notify ---------------------------------------------------

// cv.wait(lk, st, pred) against a notify that sets the predicate, and a stop: a true result means
// the predicate held; a false one means a stop was requested; the lock is held either way.
TEST_P(Cancel, RaceConditionVariableStopAgainstNotify) {
  const std::size_t rounds = scaled(20000, 4000, 2000);
  std::size_t trues = 0, falses = 0, wrong = 0;
  sched().block_on([&] {
    std::mt19937 rng(7);
    sl::mutex m;
    sl::condition_variable cv;
    for (std::size_t i = 0; i < rounds; ++i) {
      bool flag = false;  // guarded by m
      std::stop_source src;
      std::atomic<int> outcome{0};  // 1 true, 2 false, 3 wrong
      auto w = stackless::spawn([&] {
        std::unique_lock<sl::mutex> lk(m);
        const bool r = cv.wait(lk, src.get_token(), [&] { return flag; });
        const bool ok = lk.owns_lock() && m.owned_by_caller() && (r ? flag : src.stop_requested());
        outcome = !ok ? 3 : r ? 1 : 2;
      });
      const unsigned k1 = rng() % 4, k2 = rng() % 4;
      auto n = stackless::spawn([&, k1] {
        yields(k1);
        std::lock_guard<sl::mutex> g(m);
        flag = true;
        cv.notify_one();
      });
      yields(k2);
      src.request_stop();
      w.join();
      n.join();
      if (outcome == 1)
        ++trues;
      else if (outcome == 2)
        ++falses;
      else
        ++wrong;
    }
  });
  EXPECT_EQ(wrong, 0u);
  EXPECT_EQ(trues + falses, rounds);
  std::printf("condition_variable: %zu true / %zu false\n", trues, falses);
}

}  // namespace
