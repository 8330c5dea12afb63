// SPDX-License-Identifier: Apache-2.0
// test_timeout_scope_rules.cpp — the rules of stackless::timeout_scope, timeout_error and
// with_timeout (runtime/include/stackless/runtime/timeout.hpp) beyond a single blocking call:
//  - nesting (the earliest deadline fires and names its scope; with_timeout swallows only its
//    own), restoring on exit, with_timeout's results, swallowing does not extend the deadline;
//  - a scope belongs to the tasklet (or plain thread) that made it; kill() still gives
//    tasklet_exit;
//  - races of scope deadlines against notifies (channel, semaphore, mutex): nothing lost, nothing
//    taken twice.
// Each blocking call inside a scope is in test_timeout_scope.cpp; the helpers both use in
// test_timeout_scope_fixture.hpp.
// Every test runs over workers ∈ {1, 2, 4}, most in a tasklet and on a plain thread. No test
// asserts how long anything took; "it did not throw before the deadline" is checked (safe).
#include <atomic>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "test_timeout_scope_fixture.hpp"

namespace {

using namespace stackless_test;
using namespace stackless_test::timeout_scope_test;

class TimeoutScope : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(TimeoutScope);

// ---- nesting ---------------------------------------------------------------------------------

TEST_P(TimeoutScope, TheInnerScopeEndingFirstNamesTheInner) {
  in_tasklet_and_thread(sched(), [] {
    channel<int> ch;
    timeout_scope outer(kLong);
    timeout_scope inner(kShort);
    try {
      ch.receive();
      ADD_FAILURE() << "receive() returned";
    } catch (const timeout_error& e) {
      EXPECT_TRUE(e.from(inner));
      EXPECT_FALSE(e.from(outer));
      EXPECT_EQ(e.scope(), &inner);
    }
    EXPECT_TRUE(inner.expired());
    EXPECT_FALSE(outer.expired());
  });
}

TEST_P(TimeoutScope, TheOuterScopeEndingFirstNamesTheOuterAndPassesThroughWithTimeout) {
  in_tasklet_and_thread(sched(), [] {
    channel<int> ch;
    timeout_scope outer(kShort);
    {
      timeout_scope inner(kLong);
      try {
        ch.receive();
        ADD_FAILURE() << "receive() returned";
      } catch (const timeout_error& e) {
        EXPECT_TRUE(e.from(outer));
        EXPECT_FALSE(e.from(inner));
      }
      EXPECT_FALSE(inner.expired());
    }
    // with_timeout() returns false only for its own scope; the outer one's error passes through.
    bool returned = false;
    try {
      returned = with_timeout(kLong, [&] { ch.receive(); });
      ADD_FAILURE() << "with_timeout() returned " << returned;
    } catch (const timeout_error& e) {
      EXPECT_TRUE(e.from(outer)) << "the error of another scope";
    }
    try {
      auto v = with_timeout(kLong, [&] { return ch.receive(); });
      ADD_FAILURE() << "with_timeout() returned " << (v ? "a value" : "nullopt");
    } catch (const timeout_error& e) {
      EXPECT_TRUE(e.from(outer));
    }
  });
}

TEST_P(TimeoutScope, ScopesRestoreOnExit) {
  in_tasklet_and_thread(sched(), [] {
    channel<int> ch;
    EXPECT_EQ(scope_top(), nullptr);
    {
      timeout_scope outer(300ms);
      EXPECT_EQ(scope_top(), &outer);
      {
        timeout_scope inner(10ms);
        EXPECT_EQ(scope_top(), &inner);
        EXPECT_EQ(run_in(inner, [&] { ch.receive(); }), kThis);
      }
      EXPECT_EQ(scope_top(), &outer) << "the inner scope did not restore the outer one";
      if (outer.deadline() - clock_type::now() > 100ms) {  // (else the outer one would end first)
        EXPECT_FALSE(with_timeout(5ms, [&] { ch.receive(); })) << "a with_timeout() inside";
        EXPECT_EQ(scope_top(), &outer);
      }
      // The outer one applies again: its error, not the inner's.
      EXPECT_EQ(run_in(outer, [&] { ch.receive(); }), kThis);
    }
    EXPECT_EQ(scope_top(), nullptr) << "a scope survived its block";
    // No deadline any more: a timed receive times out normally, nothing throws.
    EXPECT_FALSE(ch.receive_for(5ms).has_value());
  });
}

TEST_P(TimeoutScope, DeadlineExpiredAndTimePointConstructor) {
  const auto tp = clock_type::now() + kLong;
  timeout_scope a(tp);
  EXPECT_EQ(a.deadline(), tp);
  EXPECT_FALSE(a.expired());
  timeout_scope b(clock_type::now() - 1s);
  EXPECT_TRUE(b.expired());
  EXPECT_EQ(b.effective_owner(), &b);
  timeout_scope c(kLong);
  EXPECT_EQ(c.effective_owner(), &b) << "an enclosing scope ends first";
  EXPECT_FALSE(c.expired()) << "expired() is about this scope's own deadline";
  timeout_scope d(-5s);  // a negative duration: already due
  EXPECT_TRUE(d.expired());
  timeout_scope e(std::chrono::duration<long long, std::nano>::max());  // saturates, no overflow
  EXPECT_FALSE(e.expired());
}

TEST_P(TimeoutScope, WithTimeoutResults) {
  in_tasklet_and_thread(sched(), [] {
    channel<int> ch;
    EXPECT_TRUE(with_timeout(kLong, [] {}));
    EXPECT_FALSE(with_timeout(kShort, [&] { ch.receive(); }));
    EXPECT_EQ(with_timeout(kLong, [] { return 5; }), std::optional<int>(5));
    EXPECT_FALSE(with_timeout(kShort, [&] { return ch.receive(); }).has_value());
    auto p = with_timeout(kLong, [] { return std::make_unique<int>(8); });  // move-only value
    ASSERT_TRUE(p && *p);
    EXPECT_EQ(**p, 8);
    // Other exceptions pass through.
    EXPECT_THROW(with_timeout(kLong, [] { throw std::invalid_argument("x"); }),
                 std::invalid_argument);
    EXPECT_EQ(scope_top(), nullptr);
  });
}

// Catching timeout_error (as any std::exception) inside the scope does not extend it: every
// later blocking call inside it throws again.
TEST_P(TimeoutScope, SwallowingTheErrorDoesNotExtendTheScope) {
  auto& s = sched();
  in_tasklet_and_thread(s, [&s] {
    channel<int> ch;
    held_mutex h(s);
    {
      timeout_scope sc(kShort);
      int caught = 0;
      for (int i = 0; i < 3; ++i) {
        try {
          ch.receive();
        } catch (const std::exception& e) {
          ++caught;
          EXPECT_NE(dynamic_cast<const timeout_error*>(&e), nullptr) << e.what();
        }
      }
      EXPECT_EQ(caught, 3);
      EXPECT_EQ(run_in(sc, [&] { this_tasklet::sleep_for(kLong); }), kThis);
      EXPECT_EQ(run_in(sc, [&] { h.m.lock(); }), kThis);
      EXPECT_EQ(run_in(sc, [&] { (void)ch.receive_for(kLong); }), kThis);
    }
    h.let_go();  // outside the scope: let_go() joins the holder
  });
}

// ---- whose scope -----------------------------------------------------------------------------

// A tasklet spawned inside a scope does not inherit it: it stays parked across the deadline, and
// takes a value sent after it.
TEST_P(TimeoutScope, ATaskletSpawnedInsideAScopeIsNotAffected) {
  auto& s = sched();
  in_tasklet_and_thread(s, [&s] {
    channel<int> ch;
    tasklet<int> child;
    std::atomic<int> child_had_scope{-1};  // -1: the child has not looked yet
    {
      timeout_scope sc(kShort);
      child = s.spawn([ch, &child_had_scope]() mutable {
        child_had_scope = scope_top() != nullptr ? 1 : 0;
        this_tasklet::sleep_for(2 * kShort);  // across the parent's deadline
        return ch.receive();
      });
      EXPECT_EQ(run_in(sc, [] { this_tasklet::sleep_for(kLong); }), kThis);
      EXPECT_TRUE(child.alive());
    }
    // The child may not have run yet (chaos mode queues it last; a loaded sanitizer run).
    EXPECT_TRUE(yield_until([&] { return child_had_scope.load() != -1; }));
    EXPECT_EQ(child_had_scope.load(), 0);
    ch.send(11);
    EXPECT_EQ(child.join(), 11) << "the child was hit by its parent's scope";
  });
}

// Scopes timing out on one tasklet (or thread) over and over, while other tasklets — on other
// workers when there are several — and other plain threads wait without a scope: none of those is
// affected.
TEST_P(TimeoutScope, OtherTaskletsAndThreadsAreNotAffected) {
  auto& s = sched();
  const int n = 16;
  channel<int> ch;
  std::atomic<int> wrong{0};
  std::vector<tasklet<int>> waiters;
  for (int i = 0; i < n; ++i)
    waiters.push_back(s.spawn([ch, &wrong]() mutable {
      if (scope_top() != nullptr) wrong.fetch_add(1);
      this_tasklet::sleep_for(30ms);  // a plain sleep overlapping the deadlines below
      return ch.receive();
    }));
  std::thread other([&] {
    timeout_scope mine(kLong);
    this_tasklet::sleep_for(30ms);
    EXPECT_EQ(scope_top(), &mine);
  });
  auto timer = s.spawn([] {
    int thrown = 0;
    for (int i = 0; i < 10; ++i)
      thrown += in_scope(2ms, [] { this_tasklet::sleep_for(kLong); }) == kThis;
    return thrown;
  });
  int thrown_here = 0;
  for (int i = 0; i < 10; ++i)
    thrown_here += in_scope(2ms, [&] { channel<int>(0).receive(); }) == kThis;
  EXPECT_EQ(timer.join(), 10);
  EXPECT_EQ(thrown_here, 10);
  other.join();
  for (int i = 0; i < n; ++i) ch.send(i);
  int sum = 0;
  for (auto& w : waiters) sum += w.join();
  EXPECT_EQ(sum, n * (n - 1) / 2) << "a waiter without a scope lost its value";
  EXPECT_EQ(wrong.load(), 0);
}

// The scope works on plain threads: a plain thread blocking on a channel, a mutex, a future
// inside its scope throws; block_on()'s tasklet does not inherit the thread's scope.
TEST_P(TimeoutScope, PlainThreadsHaveTheirOwnScopes) {
  auto& s = sched();
  held_mutex h(s);
  sl::promise<int> p;
  auto f = p.get_future();
  channel<int> ch;
  std::string on_thread[3];
  std::thread th([&] {
    on_thread[0] = in_scope(kShort, [&] { ch.receive(); });
    on_thread[1] = in_scope(kShort, [&] { h.m.lock(); });
    on_thread[2] = in_scope(kShort, [&] { f.get(); });
  });
  {
    timeout_scope sc(kLong);
    EXPECT_TRUE(s.block_on([] { return scope_top() == nullptr; }))
        << "a tasklet inherited the thread's scope";
    EXPECT_EQ(scope_top(), &sc);
  }
  th.join();
  for (const auto& r : on_thread) EXPECT_EQ(r, kThis);
  EXPECT_EQ(scope_top(), nullptr);
  h.let_go();
  p.set_value(1);
  EXPECT_EQ(f.get(), 1);
}

// ---- kill ------------------------------------------------------------------------------------

// A tasklet parked inside a scope and killed gets tasklet_exit, not timeout_error; so does one
// that keeps swallowing timeout_error in a loop (tasklet_exit is no std::exception).
TEST_P(TimeoutScope, AKillWhileParkedInAScopeGivesTaskletExit) {
  auto& s = sched();
  channel<int> ch;
  held_mutex h(s);
  sl::condition_variable cv;
  sl::mutex cm;
  for (int which = 0; which < 4; ++which) {
    SCOPED_TRACE("blocking call " + std::to_string(which));
    std::atomic<bool> exit_seen{false}, timeout_seen{false};
    auto t = s.spawn([&, ch, which]() mutable {
      timeout_scope sc(kLong);
      try {
        switch (which) {
          case 0:
            ch.receive();
            break;
          case 1:
            this_tasklet::sleep_for(kLong);
            break;
          case 2:
            h.m.lock();
            break;
          default: {
            std::unique_lock<sl::mutex> lk(cm);
            cv.wait(lk);
          }
        }
      } catch (const sl::tasklet_exit&) {
        exit_seen = true;
        throw;
      } catch (const timeout_error&) {
        timeout_seen = true;
      }
    });
    ASSERT_TRUE(wait_until([&] { return t.blocked(); }));
    t.kill();
    EXPECT_FALSE(t.alive());
    EXPECT_TRUE(exit_seen.load());
    EXPECT_FALSE(timeout_seen.load());
  }
  const bool cm_free = cm.try_lock();
  EXPECT_TRUE(cm_free) << "the killed condition_variable waiter kept the mutex";
  if (cm_free) cm.unlock();
  h.let_go();

  std::atomic<int> swallowed{0};
  std::atomic<bool> exit_seen{false};
  auto stubborn = s.spawn([&] {
    timeout_scope sc(1ms);
    try {
      for (;;) {
        try {
          this_tasklet::sleep_for(kLong);
        } catch (const std::exception&) {
          swallowed.fetch_add(1);
        }
        this_tasklet::yield();
      }
    } catch (const sl::tasklet_exit&) {
      exit_seen = true;
      throw;
    }
  });
  ASSERT_TRUE(wait_until([&] { return swallowed.load() > 3; }));
  stubborn.kill();
  EXPECT_TRUE(exit_seen.load());
}

// ---- races: the scope's deadline against a notify ---------------------------------------------
//
// The notifying side waits a random 0–30 µs before each notify, half the time by sleeping (its
// worker then looks for work and fires due timers: on one worker, the only way a scope's timer
// fires while the notifier is active), half the time by spinning; the scopes are a random 0–30 µs.

/// spin_for() busy-waits for d (no yield).
void spin_for(std::chrono::microseconds d) {
  const auto until = clock_type::now() + d;
  while (clock_type::now() < until) {
  }
}

/// pause_a_little() sleeps or spins a random 0–30 µs.
void pause_a_little(std::mt19937& rng) {
  const auto d = std::chrono::microseconds(rng() % 31);
  if (rng() % 2)
    this_tasklet::sleep_for(d);
  else
    spin_for(d);
}

// A producer sends 0, 1, 2, … on a rendezvous channel at random moments; the consumer receives
// with a random tiny scope each time, retrying when it times out. Every value arrives exactly
// once and in order: a receive that timed out ate nothing, and no value was delivered twice.
TEST_P(TimeoutScope, RaceReceiveDeadlineAgainstSend) {
  const int n = static_cast<int>(scaled(10000, 2000, 1000));
  for (std::size_t cap : {std::size_t{0}, std::size_t{1}}) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    channel<int> ch(cap);
    auto producer = sched().spawn([ch, n]() mutable {
      std::mt19937 rng(1);
      for (int i = 0; i < n; ++i) {
        pause_a_little(rng);
        ch.send(i);
      }
    });
    const auto r = sched().block_on([ch, n]() mutable {
      std::mt19937 rng(2);
      int expect = 0, timeouts = 0, wrong = 0;
      while (expect < n) {
        auto v = with_timeout(std::chrono::microseconds(rng() % 31), [&] { return ch.receive(); });
        if (!v) {
          ++timeouts;
          continue;
        }
        if (*v != expect) ++wrong;
        expect = *v + 1;
      }
      return std::make_pair(wrong, timeouts);
    });
    producer.join();
    EXPECT_EQ(r.first, 0) << "values lost, duplicated or out of order";
    std::printf("receive race, capacity %zu: %d values, %d timeouts\n", cap, n, r.second);
    EXPECT_FALSE(ch.try_receive().has_value()) << "a value left over";
    EXPECT_EQ(ch.balance(), 0);
  }
}

// Permits released one at a time at random moments; acquirers with random tiny scopes. Every
// permit is taken exactly once: acquired == released, and none is left.
TEST_P(TimeoutScope, RaceAcquireDeadlineAgainstRelease) {
  const int n = static_cast<int>(scaled(10000, 2000, 1000));
  const int acquirers = 3;
  sl::counting_semaphore sem(0);
  std::atomic<int> acquired{0}, timeouts{0};
  std::atomic<bool> done{false};
  std::vector<tasklet<void>> ts;
  for (int a = 0; a < acquirers; ++a)
    ts.push_back(sched().spawn([&, a] {
      std::mt19937 rng(10 + a);
      while (!done.load()) {
        if (with_timeout(std::chrono::microseconds(rng() % 31), [&] { sem.acquire(); }))
          acquired.fetch_add(1);
        else
          timeouts.fetch_add(1);
      }
    }));
  sched().block_on([&] {
    std::mt19937 rng(3);
    for (int i = 0; i < n; ++i) {
      pause_a_little(rng);
      sem.release(1);
    }
    // Wait until every permit is taken (or, if one were lost, for the hang guard).
    yield_until([&] { return acquired.load() + sem.value() >= n && sem.value() == 0; });
    done = true;
  });
  for (auto& t : ts) t.join();
  EXPECT_EQ(acquired.load() + sem.value(), n) << "permits lost or taken twice";
  std::printf("acquire race: %d acquired, %d timeouts\n", acquired.load(), timeouts.load());
  EXPECT_EQ(sem.value(), 0);
}

// Lockers with random tiny scopes against lockers without: mutual exclusion holds, every lock
// that returned is counted once, and the mutex ends free (never handed to a waiter that left).
TEST_P(TimeoutScope, RaceLockDeadlineAgainstUnlock) {
  const int rounds = static_cast<int>(scaled(20000, 4000, 2000));
  for (auto policy : {sl::mutex_policy::fair, sl::mutex_policy::throughput}) {
    SCOPED_TRACE(policy == sl::mutex_policy::fair ? "fair" : "throughput");
    sl::mutex m(policy);
    int inside = 0, protected_count = 0;  // guarded by m
    std::atomic<int> locked{0}, timeouts{0}, overlaps{0};
    std::vector<tasklet<void>> ts;
    for (int a = 0; a < 4; ++a)
      ts.push_back(sched().spawn([&, a] {
        std::mt19937 rng(20 + a);
        for (int i = 0; i < rounds / 4; ++i) {
          const bool scoped = a % 2 == 0;
          const bool ok =
              !scoped || with_timeout(std::chrono::microseconds(rng() % 31), [&] { m.lock(); });
          if (!scoped) m.lock();
          if (!ok) {
            timeouts.fetch_add(1);
            EXPECT_FALSE(m.owned_by_caller());
            continue;
          }
          if (inside++ != 0) overlaps.fetch_add(1);
          ++protected_count;
          if (rng() % 4 == 0) pause_a_little(rng);
          --inside;
          m.unlock();
          locked.fetch_add(1);
        }
      }));
    for (auto& t : ts) t.join();
    EXPECT_EQ(overlaps.load(), 0);
    std::printf("lock race (%s): %d locked, %d timeouts\n",
                policy == sl::mutex_policy::fair ? "fair" : "throughput", locked.load(),
                timeouts.load());
    EXPECT_EQ(protected_count, locked.load());
    EXPECT_EQ(locked.load() + timeouts.load(), rounds / 4 * 4);
    EXPECT_TRUE(m.try_lock()) << "the mutex was left held (handed to a waiter that timed out?)";
    m.unlock();
  }
}

}  // namespace
