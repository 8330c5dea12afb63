// SPDX-License-Identifier: Apache-2.0
// test_mutex_leave.cpp — waiters that leave a parked lock() of stackless::mutex (sync/mutex.hpp)
// without the lock, from tasklets on every worker count and from plain threads: timeout / stop
// request / timeout_scope / kill racing an unlock never leave the mutex stuck or held by nobody;
// kill / raise_exception / stop_token / timeout_scope end a parked lock() without taking the
// lock, and the hand-off skips them.
// Exclusion, fairness, ownership, timed locking, recursive_mutex and the std wrappers are in
// test_mutex.cpp; the helpers both use in test_mutex_fixture.hpp. No test asserts how long
// anything took.
#include <atomic>
#include <barrier>
#include <chrono>
#include <exception>
#include <mutex>
#include <random>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "test_mutex_fixture.hpp"

namespace {

using namespace stackless_test;
using namespace stackless_test::mutex_test;

class Mutex : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(Mutex);

/// spin_for() busy-waits `us` microseconds (a tiny, random delay inside race loops).
inline void spin_for(unsigned us) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  while (std::chrono::steady_clock::now() < end) {
  }
}

// ---- races: a waiter leaving (timeout / timeout_scope / stop) vs the holder's unlock ----------

enum class leave { timed, scope, stop };

// Each round: H takes the lock, lets W start its attempt, waits a tiny random moment and unlocks
// (for `stop`, it also requests the stop — before or after the unlock); W tries with a tiny
// random timeout. After the round the mutex must be free: either W got it (and released it) or
// nobody has it — never stuck with a waiter that left, never lost. The round handshakes are
// channels (a buffered one each way), so nobody busy-waits except H for the moment W starts.
// unlock_vs_leave_race() runs it in steps: h_body() (H's rounds, each an h_round()), w_body()
// (W's rounds, each attempt a w_attempt()) and check_leave_race() (the accounting afterwards).

/// leave_race is what H and W of one unlock_vs_leave_race() share.
struct leave_race {
  leave_race(leave h, int n) : how(h), rounds(n) {}
  const leave how;
  const int rounds;
  sl::mutex m;
  channel<int> w_go = channel<int>(1), w_done = channel<int>(1);  // the round number; -1 ends W
  std::atomic<int> w_started{0};
  std::atomic<int> got{0}, left{0}, not_owner{0}, wrong{0};
  std::stop_source src;  // per round: written by H before w_go.send(), read by W after receive()
};

/// h_round() is H's round r: take the lock, let W start, a tiny random moment, unlock (and the
/// stop request); then W's report, and the mutex must be free. False: a failure was reported and
/// the race is over.
bool h_round(leave_race& x, std::minstd_rand& rng, int r) {
  x.src = std::stop_source();
  x.m.lock();
  x.w_go.send(r);
  if (!spin_until([&] { return x.w_started.load() == r; })) {
    ADD_FAILURE() << "W never started round " << r;
    x.m.unlock();
    return false;
  }
  const unsigned pick = rng() % 4;
  if (pick == 0) relax();
  if (pick == 1) spin_for(rng() % 30);
  const bool stop_first = x.how == leave::stop && rng() % 2;
  if (stop_first) x.src.request_stop();
  x.m.unlock();
  if (x.how == leave::stop && !stop_first) x.src.request_stop();
  if (x.w_done.receive() != r) {
    ADD_FAILURE() << "round " << r << ": out of step";
    return false;
  }
  if (!is_free(x.m)) {
    ADD_FAILURE() << "round " << r << ": the mutex is held by nobody after W left";
    return false;
  }
  return true;
}

/// h_body() is H: every round, then -1 ends W.
void h_body(leave_race& x) {
  std::minstd_rand rng(7);
  for (int r = 1; r <= x.rounds; ++r) {
    if (!h_round(x, rng, r)) break;
  }
  x.w_go.send(-1);
}

/// w_attempt() is W's attempt at the lock, which it leaves the way x.how says (its tiny timeout,
/// a timeout_scope of that length, or a stop request on st): true if it took the lock.
bool w_attempt(leave_race& x, std::chrono::microseconds tiny, const std::stop_token& st) {
  bool ok = false;
  try {
    switch (x.how) {
      case leave::timed:
        ok = x.m.try_lock_for(tiny);
        break;
      case leave::scope: {
        sl::timeout_scope sc(tiny);
        try {
          x.m.lock();
          ok = true;
        } catch (const sl::timeout_error& e) {
          if (!e.from(sc)) x.wrong.fetch_add(1);
        }
        break;
      }
      case leave::stop:
        try {
          x.m.lock(st);
          ok = true;
        } catch (const sl::operation_cancelled&) {
        }
        break;
    }
  } catch (const std::exception&) {
    x.wrong.fetch_add(1);
  }
  return ok;
}

/// w_body() is W: for each round H sends, one attempt; it checks that the ownership agrees with
/// the result, releases a lock it got, and reports the round back.
void w_body(leave_race& x) {
  std::minstd_rand rng(11);
  for (;;) {
    const int r = x.w_go.receive();
    if (r < 0) return;
    const auto tiny = std::chrono::microseconds(rng() % 40);
    const std::stop_token st = x.src.get_token();
    x.w_started.store(r);
    const bool ok = w_attempt(x, tiny, st);
    if (ok) {
      if (!x.m.owned_by_caller()) x.not_owner.fetch_add(1);
      x.m.unlock();
      x.got.fetch_add(1);
    } else {
      if (x.m.owned_by_caller()) x.not_owner.fetch_add(1);
      x.left.fetch_add(1);
    }
    x.w_done.send(r);
  }
}

/// check_leave_race() is the accounting after the race; a plain lock()/unlock() must not hang.
void check_leave_race(sl::scheduler& s, leave_race& x, int tag) {
  EXPECT_EQ(x.not_owner.load(), 0) << "ownership disagrees with what the attempt returned";
  EXPECT_EQ(x.wrong.load(), 0) << "an unexpected exception (or another scope's timeout_error)";
  EXPECT_EQ(x.got.load() + x.left.load(), x.rounds);
  // Finally a plain lock()/unlock() must not hang.
  auto fin = s.spawn([&] {
    x.m.lock();
    x.m.unlock();
  });
  EXPECT_TRUE(fin.join_for(60s)) << "lock() hangs after the race";
  if (fin.alive()) fin.kill();
  EXPECT_TRUE(is_free(x.m));
  ::testing::Test::RecordProperty("got_" + std::to_string(tag), x.got.load());
  ::testing::Test::RecordProperty("left_" + std::to_string(tag), x.left.load());
}

void unlock_vs_leave_race(sl::scheduler& s, leave how, bool h_thread, bool w_thread, int rounds,
                          int tag) {
  leave_race x(how, rounds);
  auto h = [&x] { h_body(x); };
  auto w = [&x] { w_body(x); };
  std::thread ht, wt;
  tasklet<void> htk, wtk;
  if (w_thread)
    wt = std::thread(w);
  else
    wtk = s.spawn(w);
  if (h_thread)
    ht = std::thread(h);
  else
    htk = s.spawn(h);
  if (ht.joinable())
    ht.join();
  else
    htk.join();
  if (wt.joinable())
    wt.join();
  else
    wtk.join();
  check_leave_race(s, x, tag);
}

// H / W: tasklet / tasklet, tasklet / plain thread, plain thread / tasklet.
void unlock_vs_leave_mixes(sl::scheduler& s, leave how, int rounds) {
  for (int mix = 0; mix < 3; ++mix) {
    SCOPED_TRACE(mix == 0 ? "tasklets" : mix == 1 ? "W on a plain thread" : "H on a plain thread");
    unlock_vs_leave_race(s, how, mix == 2, mix == 1, mix == 0 ? rounds : rounds / 2, mix);
  }
}

TEST_P(Mutex, TimeoutVersusUnlockRace) {
  unlock_vs_leave_mixes(sched(), leave::timed, static_cast<int>(scaled(20000, 5000, 5000)));
}

TEST_P(Mutex, TimeoutScopeVersusUnlockRace) {
  unlock_vs_leave_mixes(sched(), leave::scope, static_cast<int>(scaled(10000, 2500, 2500)));
}

TEST_P(Mutex, StopVersusUnlockRace) {
  unlock_vs_leave_mixes(sched(), leave::stop, static_cast<int>(scaled(10000, 2500, 2500)));
}

// ---- kill / raise_exception / stop / timeout_scope of a parked lock() -------------------------

// Four lockers queue in order; the first is killed and the third gets an exception raised into
// it: both end without the lock (the exception leaves lock()), and the hand-off skips them:
// the second and then the fourth get it. Afterwards the mutex works normally.
TEST_P(Mutex, KillAndRaiseIntoParkedLockers) {
  sl::mutex m;
  std::vector<int> order;  // guarded by m
  std::atomic<int> unwound{0}, poked_not_owner{0}, returned_after_kill{0};
  {
    holder<sl::mutex> h(sched(), m);
    std::vector<tasklet<void>> ls;
    for (int i = 0; i < 4; ++i) {
      ls.push_back(sched().spawn([&, i] {
        raii_count c(unwound);
        try {
          m.lock();
        } catch (const poke&) {
          if (!m.owned_by_caller()) poked_not_owner.fetch_add(1);
          throw;
        }
        if (i == 0) returned_after_kill.fetch_add(1);
        order.push_back(i);
        m.unlock();
      }));
      ASSERT_TRUE(parked(ls.back()));
    }
    ls[0].kill();
    EXPECT_FALSE(ls[0].alive());
    EXPECT_EQ(unwound.load(), 1);
    ls[2].raise_exception(std::make_exception_ptr(poke{2}));
    EXPECT_TRUE(eventually([&] { return !ls[2].alive(); }));
    EXPECT_EQ(poked_not_owner.load(), 1)
        << "the raised exception did not leave lock() (or the lock was taken)";
    try {
      ls[2].join();
      ADD_FAILURE() << "the raised exception was swallowed";
    } catch (const poke& p) {
      EXPECT_EQ(p.n, 2);
    }
    EXPECT_TRUE(ls[1].blocked());
    EXPECT_TRUE(ls[3].blocked());
    EXPECT_FALSE(m.try_lock());
    h.let_go();
    ls[1].join();
    ls[3].join();
  }
  EXPECT_EQ(returned_after_kill.load(), 0);
  EXPECT_EQ(order, (std::vector<int>{1, 3}));
  EXPECT_EQ(unwound.load(), 4);
  EXPECT_TRUE(is_free(m));
  EXPECT_TRUE(sched().block_on([&] { return is_free(m); }));
}

// A kill racing the holder's unlock. Each round a locker L is parked in lock() with a second
// one, L2, queued behind it; the holder unlocks and L is killed — before the unlock, after it,
// or from a plain thread at the same moment (both released by one std::barrier). L either got
// the lock (and released it: lock_guard) or ended without it; either way L2 gets it next, and
// the mutex is free after the round.
TEST_P(Mutex, KillVersusUnlockRace) {
  const int rounds = static_cast<int>(scaled(3000, 1000, 1000));
  sl::mutex m;
  std::minstd_rand rng(3);
  std::atomic<int> got{0}, got2{0};
  std::barrier<> bar(2);
  tasklet<void> victim;  // written before the first barrier of a round, read after it
  std::atomic<bool> killer_quit{false};
  std::thread killer([&] {
    std::minstd_rand krng(4);
    for (;;) {
      bar.arrive_and_wait();
      if (killer_quit.load()) return;
      spin_for(krng() % 4);
      victim.kill(/*pending=*/true);
      bar.arrive_and_wait();
    }
  });
  int racing = 0;
  for (int r = 0; r < rounds; ++r) {
    m.lock();
    auto l = sched().spawn([&] {
      std::lock_guard<sl::mutex> g(m);
      got.fetch_add(1);
    });
    ASSERT_TRUE(parked(l));
    auto l2 = sched().spawn([&] {
      std::lock_guard<sl::mutex> g(m);
      got2.fetch_add(1);
    });
    ASSERT_TRUE(parked(l2));
    const unsigned pick = rng() % 3;
    if (pick == 0) {  // kill first
      l.kill(true);
      m.unlock();
    } else if (pick == 1) {  // unlock first
      m.unlock();
      l.kill(true);
    } else {  // both at once
      ++racing;
      victim = l;
      bar.arrive_and_wait();
      spin_for(rng() % 4);
      m.unlock();
      bar.arrive_and_wait();
      victim = tasklet<void>();
    }
    const bool ended = l.join_for(60s) && l2.join_for(60s);
    if (!ended) {
      killer_quit = true;
      bar.arrive_and_wait();
      killer.join();
      FAIL() << "round " << r << ": a locker hangs";
    }
    if (!is_free(m)) {
      killer_quit = true;
      bar.arrive_and_wait();
      killer.join();
      FAIL() << "round " << r << ": the mutex is stuck after the lockers ended";
    }
  }
  killer_quit = true;
  bar.arrive_and_wait();
  killer.join();
  EXPECT_EQ(got2.load(), rounds) << "the second locker did not always get the lock";
  RecordProperty("got", got.load());
  RecordProperty("racing_rounds", racing);
  EXPECT_TRUE(sched().block_on([&] { return is_free(m); }));
}

TEST_P(Mutex, StopRequestCancelsAParkedLock) {
  sl::mutex m;
  {
    holder<sl::mutex> h(sched(), m);
    // A tasklet, stopped by this plain thread.
    std::stop_source src;
    auto t = sched().spawn([&m, st = src.get_token()] {
      try {
        m.lock(st);
        m.unlock();
        return std::string("locked");
      } catch (const sl::operation_cancelled&) {
        return std::string(m.owned_by_caller() ? "cancelled, but owner" : "cancelled");
      }
    });
    ASSERT_TRUE(parked(t));
    src.request_stop();
    EXPECT_EQ(t.join(), "cancelled");
    // A plain thread, stopped by a tasklet.
    std::stop_source src2;
    std::string thread_result;
    std::thread th([&] {
      try {
        m.lock(src2.get_token());
        m.unlock();
        thread_result = "locked";
      } catch (const sl::operation_cancelled&) {
        thread_result = m.owned_by_caller() ? "cancelled, but owner" : "cancelled";
      }
    });
    std::this_thread::sleep_for(2ms);  // usually queued by now; cancelled either way
    sched().block_on([&] { src2.request_stop(); });
    th.join();
    EXPECT_EQ(thread_result, "cancelled");
    // A stop requested before the call: cancelled at once, from a tasklet and a thread.
    std::stop_source done;
    done.request_stop();
    EXPECT_THROW(sched().block_on([&] { m.lock(done.get_token()); }), sl::operation_cancelled);
    EXPECT_THROW(m.lock(done.get_token()), sl::operation_cancelled);
    // A token that can never be stopped is just lock().
    auto w = sched().spawn([&] {
      m.lock(std::stop_token{});
      m.unlock();
    });
    ASSERT_TRUE(parked(w));
    h.let_go();
    w.join();
  }  // the cancelled waiters were not handed the lock
  EXPECT_TRUE(is_free(m));
  // An uncontended lock(st) takes the lock.
  std::stop_source src3;
  m.lock(src3.get_token());
  EXPECT_TRUE(m.owned_by_caller());
  m.unlock();
}

TEST_P(Mutex, TimeoutScopeAroundLockThrowsAndTakesNothing) {
  sl::mutex m;
  auto scoped = [&m] {
    sl::timeout_scope outer(60s);
    sl::timeout_scope s(20ms);
    try {
      m.lock();
      m.unlock();
      return std::string("locked");
    } catch (const sl::timeout_error& e) {
      if (!e.from(s)) return std::string("timeout_error of another scope");
      return std::string(m.owned_by_caller() ? "timed out, but owner" : "timed out");
    }
  };
  {
    holder<sl::mutex> h(sched(), m);
    EXPECT_EQ(sched().block_on(scoped), "timed out");
    EXPECT_EQ(scoped(), "timed out");
    // with_timeout() says false; a try_lock_for() longer than the scope throws the scope's error;
    // a shorter one simply returns false.
    EXPECT_FALSE(sched().block_on([&] { return sl::with_timeout(10ms, [&] { m.lock(); }); }));
    EXPECT_FALSE(sl::with_timeout(10ms, [&] { m.lock(); }));
    EXPECT_THROW(sched().block_on([&] {
      sl::timeout_scope s(10ms);
      (void)m.try_lock_for(60s);
    }),
                 sl::timeout_error);
    EXPECT_FALSE(sched().block_on([&] {
      sl::timeout_scope s(60s);
      return m.try_lock_for(5ms);
    }));
    // An expired scope: lock() would have to wait, so it throws at once.
    EXPECT_THROW(sched().block_on([&] {
      sl::timeout_scope s(0ms);
      m.lock();
    }),
                 sl::timeout_error);
  }
  EXPECT_TRUE(is_free(m)) << "a waiter that timed out was handed the lock";
  // A lock that need not wait is taken even inside an expired scope.
  EXPECT_TRUE(sched().block_on([&] {
    sl::timeout_scope s(0ms);
    m.lock();
    const bool own = m.owned_by_caller();
    m.unlock();
    return own;
  }));
}

}  // namespace
