// SPDX-License-Identifier: Apache-2.0
// test_condition_variable.cpp — stackless::condition_variable (sync/condition_variable.hpp) with
// std::unique_lock<stackless::mutex>, from tasklets on every worker count and from plain threads:
// a producer/consumer queue delivers every item exactly once; notify_one wakes exactly one waiter,
// the longest (FIFO), notify_all every waiter, and a notify with nobody waiting is not kept;
// wait_for / wait_until time out holding the lock again, and the predicate forms return pred();
// a tiny wait_for racing a notify_one: the notify wakes exactly one waiter — the racing one or,
// if it timed out, the one queued behind it — never both, never none; kill / raise_exception /
// timeout_scope end a wait with the lock held again (re-taken before the exception leaves, also
// when someone else holds it at that moment); the std::stop_token forms return false with the
// lock held when stopped. No test asserts how long anything took.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "channel_fixture.hpp"

namespace {

using namespace stackless_test;
using lock_t = std::unique_lock<sl::mutex>;

class CondVar : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(CondVar);

/// under() runs f with m held and returns its value.
template <class F>
auto under(sl::mutex& m, F f) {
  std::lock_guard<sl::mutex> g(m);
  return f();
}

/// is_free() tells whether m can be taken right now (and leaves it free).
inline bool is_free(sl::mutex& m) {
  if (!m.try_lock()) return false;
  m.unlock();
  return true;
}

/// at_exit runs f when destroyed (on a normal exit and while unwinding).
struct at_exit {
  std::function<void()> f;
  ~at_exit() { f(); }
};

inline void spin_for(unsigned us) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  while (std::chrono::steady_clock::now() < end) {
  }
}

// ---- producer / consumer ---------------------------------------------------------------------

/// bounded_queue: the textbook monitor, two condition variables, predicate waits.
class bounded_queue {
 public:
  explicit bounded_queue(std::size_t cap) : cap_(cap) {}
  void push(int v, bool notify_under_lock) {
    lock_t lk(m_);
    not_full_.wait(lk, [&] { return q_.size() < cap_; });
    q_.push_back(v);
    if (!notify_under_lock) lk.unlock();
    not_empty_.notify_one();
  }
  std::optional<int> pop(bool notify_under_lock) {
    lock_t lk(m_);
    not_empty_.wait(lk, [&] { return !q_.empty() || closed_; });
    if (q_.empty()) return std::nullopt;
    const int v = q_.front();
    q_.pop_front();
    if (!notify_under_lock) lk.unlock();
    not_full_.notify_one();
    return v;
  }
  void close() {
    lock_t lk(m_);
    closed_ = true;
    not_empty_.notify_all();
  }

 private:
  sl::mutex m_;
  sl::condition_variable not_empty_, not_full_;
  std::deque<int> q_;  // guarded by m_
  std::size_t cap_;
  bool closed_ = false;  // guarded by m_
};

TEST_P(CondVar, ProducerConsumerDeliversEveryItemExactlyOnce) {
  // CI: 400 per producer (3,200 items): with 4 workers and 4 plain threads on 2 cores every fair
  // hand-off may wait for a descheduled thread (25 s at 1,500 on the 2-core VM, workers = 4).
  const int per = static_cast<int>(ci_sized(scaled(1500, 500, 500), 400));
  const int tp = 6, thp = 2, tc = 6, thc = 2;  // producers / consumers: tasklets, plain threads
  const int total = (tp + thp) * per;
  bounded_queue q(4);
  std::vector<std::atomic<int>> seen(static_cast<std::size_t>(total));
  std::atomic<int> bad{0};
  auto produce = [&](int id) {
    for (int i = 0; i < per; ++i) q.push(id * per + i, (id + i) % 2 == 0);
  };
  auto consume = [&](int id) {
    int n = 0;
    while (auto v = q.pop((id + n++) % 2 == 0)) {
      if (*v < 0 || *v >= total) {
        bad.fetch_add(1);
        continue;
      }
      seen[static_cast<std::size_t>(*v)].fetch_add(1);
    }
  };
  std::vector<tasklet<void>> producers, consumers;
  std::vector<std::thread> pth, cth;
  for (int i = 0; i < tc; ++i) consumers.push_back(sched().spawn(consume, i));
  for (int i = 0; i < thc; ++i) cth.emplace_back(consume, 100 + i);
  for (int i = 0; i < tp; ++i) producers.push_back(sched().spawn(produce, i));
  for (int i = 0; i < thp; ++i) pth.emplace_back(produce, tp + i);
  for (auto& t : producers) t.join();
  for (auto& t : pth) t.join();
  q.close();
  for (auto& t : consumers) t.join();
  for (auto& t : cth) t.join();
  EXPECT_EQ(bad.load(), 0);
  int lost = 0, dup = 0;
  for (auto& s : seen) {
    lost += s.load() == 0;
    dup += s.load() > 1;
  }
  EXPECT_EQ(lost, 0) << "items never delivered";
  EXPECT_EQ(dup, 0) << "items delivered twice";
}

// ---- how many, and which, a notify wakes -----------------------------------------------------

// n tasklets wait (each known to be queued: it counted itself under the mutex, which it releases
// only inside wait()); one notify_one; once one has returned, every other one must still be
// parked in wait(): an exception raised into each comes out of its wait(). Exactly one notified.
TEST_P(CondVar, NotifyOneWakesExactlyOne) {
  for (int variant = 0; variant < 4; ++variant) {  // notifier: thread / tasklet × lock held / not
    SCOPED_TRACE("variant " + std::to_string(variant));
    const bool from_tasklet = variant & 1, under_lock = variant & 2;
    sl::mutex m;
    sl::condition_variable cv;
    const int n = 6;
    int in_wait = 0;                // guarded by m
    std::vector<int> result(n, 0);  // guarded by m: 1 notified, 2 poked
    std::atomic<int> not_owner{0};
    std::vector<tasklet<void>> ws;
    for (int i = 0; i < n; ++i)
      ws.push_back(sched().spawn([&, i] {
        lock_t lk(m);
        ++in_wait;
        int r = 0;
        try {
          cv.wait(lk);
          r = 1;
        } catch (const poke&) {
          r = 2;
        }
        if (!lk.owns_lock() || !m.owned_by_caller()) not_owner.fetch_add(1);
        result[static_cast<std::size_t>(i)] = r;
      }));
    ASSERT_TRUE(eventually([&] { return under(m, [&] { return in_wait == n; }); }));
    auto notify = [&] {
      if (under_lock) {
        std::lock_guard<sl::mutex> g(m);
        cv.notify_one();
      } else {
        cv.notify_one();
      }
    };
    if (from_tasklet)
      sched().block_on(notify);
    else
      notify();
    auto count = [&](int what) {
      return under(
          m, [&] { return static_cast<int>(std::count(result.begin(), result.end(), what)); });
    };
    ASSERT_TRUE(eventually([&] { return count(1) >= 1; })) << "notify_one() woke nobody";
    std::vector<int> still = under(m, [&] {
      std::vector<int> v;
      for (int i = 0; i < n; ++i)
        if (result[static_cast<std::size_t>(i)] == 0) v.push_back(i);
      return v;
    });
    EXPECT_EQ(still.size(), static_cast<std::size_t>(n - 1)) << "notify_one() woke more than one";
    for (int i : still)
      ws[static_cast<std::size_t>(i)].raise_exception(std::make_exception_ptr(poke{i}));
    for (auto& w : ws) w.join();
    EXPECT_EQ(count(1), 1) << "notify_one() woke more than one waiter";
    EXPECT_EQ(count(2), n - 1);
    EXPECT_EQ(not_owner.load(), 0) << "wait() returned (or threw) without the lock";
    EXPECT_TRUE(is_free(m));
  }
}

// Waiters queue in a known order — tasklets and plain threads mixed — and each notify_one wakes
// the next one in that order.
TEST_P(CondVar, NotifyOneWakesInFifoOrder) {
  sl::mutex m;
  sl::condition_variable cv;
  const int n = 9;
  int in_wait = 0;         // guarded by m
  std::vector<int> order;  // guarded by m
  auto waiter = [&](int i) {
    lock_t lk(m);
    ++in_wait;
    cv.wait(lk);
    order.push_back(i);
  };
  std::vector<tasklet<void>> ts;
  std::vector<std::thread> th;
  for (int i = 0; i < n; ++i) {
    if (i % 3 == 2)
      th.emplace_back(waiter, i);
    else
      ts.push_back(sched().spawn(waiter, i));
    ASSERT_TRUE(eventually([&] { return under(m, [&] { return in_wait == i + 1; }); }));
  }
  for (int k = 0; k < n; ++k) {
    if (k % 2)
      sched().block_on([&] { cv.notify_one(); });
    else
      cv.notify_one();
    ASSERT_TRUE(eventually(
        [&] { return under(m, [&] { return order.size() >= static_cast<std::size_t>(k + 1); }); }));
    const auto got = under(m, [&] { return order; });
    ASSERT_EQ(got.size(), static_cast<std::size_t>(k + 1)) << "one notify_one() woke several";
    EXPECT_EQ(got.back(), k) << "notify_one() did not wake the longest waiter";
  }
  for (auto& t : ts) t.join();
  for (auto& t : th) t.join();
}

TEST_P(CondVar, NotifyAllWakesEveryWaiterAndIsNotKept) {
  sl::mutex m;
  sl::condition_variable cv;
  // Nobody waits: the notifies are no-ops, and not remembered.
  cv.notify_one();
  cv.notify_all();
  sched().block_on([&] {
    cv.notify_one();
    cv.notify_all();
  });
  const int nt = 8, nth = 3;
  int in_wait = 0, woke = 0;  // guarded by m
  auto waiter = [&] {
    lock_t lk(m);
    ++in_wait;
    cv.wait(lk);
    ++woke;
  };
  std::vector<tasklet<void>> ts;
  for (int i = 0; i < nt; ++i) ts.push_back(sched().spawn(waiter));
  std::vector<std::thread> th;
  for (int i = 0; i < nth; ++i) th.emplace_back(waiter);
  ASSERT_TRUE(eventually([&] { return under(m, [&] { return in_wait == nt + nth; }); }));
  sched().block_on([&] { cv.notify_all(); });
  for (auto& t : ts) EXPECT_TRUE(t.join_for(60s)) << "a tasklet waiter missed notify_all()";
  for (auto& t : th) t.join();
  EXPECT_EQ(under(m, [&] { return woke; }), nt + nth);
  // A waiter that comes after notify_all() is not woken by it.
  auto late = [&] {
    lock_t lk(m);
    return cv.wait_for(lk, 10ms) == std::cv_status::timeout;
  };
  EXPECT_TRUE(sched().block_on(late));
  EXPECT_TRUE(late());
}

// ---- timed waits -----------------------------------------------------------------------------

TEST_P(CondVar, TimedWaitsTimeOutHoldingTheLockAndPredicateFormsReturnPred) {
  sl::mutex m;
  sl::condition_variable cv;
  auto body = [&] {
    lock_t lk(m);
    auto owns = [&] { return lk.owns_lock() && m.owned_by_caller(); };
    EXPECT_EQ(cv.wait_for(lk, 10ms), std::cv_status::timeout);
    EXPECT_TRUE(owns());
    EXPECT_EQ(cv.wait_until(lk, std::chrono::steady_clock::now() + 5ms), std::cv_status::timeout);
    EXPECT_TRUE(owns());
    EXPECT_EQ(cv.wait_until(lk, std::chrono::system_clock::now() + 5ms), std::cv_status::timeout);
    EXPECT_TRUE(owns());
    EXPECT_EQ(cv.wait_for(lk, 0ms), std::cv_status::timeout);
    EXPECT_EQ(cv.wait_for(lk, -3ms), std::cv_status::timeout);
    EXPECT_EQ(cv.wait_until(lk, std::chrono::steady_clock::now() - 1s), std::cv_status::timeout);
    EXPECT_TRUE(owns());
    EXPECT_FALSE(cv.wait_for(lk, 5ms, [] { return false; }));
    EXPECT_TRUE(owns());
    EXPECT_FALSE(cv.wait_until(lk, std::chrono::steady_clock::now() + 5ms, [] { return false; }));
    EXPECT_TRUE(owns());
    int calls = 0;
    EXPECT_TRUE(cv.wait_for(lk, 0ms, [&] { return ++calls > 0; }));
    EXPECT_EQ(calls, 1) << "a true predicate must be checked once, without waiting";
    EXPECT_TRUE(cv.wait_until(lk, std::chrono::steady_clock::now() - 1s, [] { return true; }));
    EXPECT_TRUE(owns());
    // After the timeout the predicate is evaluated again, and that is what is returned (here it
    // turns true by then, as if set by someone who did not notify).
    calls = 0;
    EXPECT_TRUE(cv.wait_for(lk, 5ms, [&] { return ++calls >= 2; }));
    calls = 0;
    EXPECT_TRUE(
        cv.wait_until(lk, std::chrono::steady_clock::now() + 5ms, [&] { return ++calls >= 2; }));
    EXPECT_TRUE(owns());
  };
  {
    SCOPED_TRACE("in a tasklet");
    sched().block_on(body);
  }
  {
    SCOPED_TRACE("on a plain thread");
    body();
  }
  EXPECT_TRUE(is_free(m));
}

// While a tasklet (or thread) waits — for 60 s — the mutex is free for others: a tasklet (or a
// plain thread) takes it, makes the predicate true and notifies, and the wait ends with true.
TEST_P(CondVar, WaitReleasesTheLockForOthers) {
  for (int waiter_thread = 0; waiter_thread < 2; ++waiter_thread) {
    SCOPED_TRACE(waiter_thread ? "waiter on a plain thread, notifier a tasklet"
                               : "waiter in a tasklet, notifier a plain thread");
    sl::mutex m;
    sl::condition_variable cv;
    bool flag = false;  // guarded by m
    int in_wait = 0;    // guarded by m
    auto wait_flag = [&] {
      lock_t lk(m);
      ++in_wait;
      const bool r = cv.wait_for(lk, 60s, [&] { return flag; });
      return r && lk.owns_lock() && m.owned_by_caller();
    };
    auto notify = [&] {
      EXPECT_TRUE(eventually([&] { return under(m, [&] { return in_wait == 1; }); }));
      under(m, [&] { return flag = true; });
      cv.notify_one();
    };
    bool r = false;
    if (waiter_thread) {
      std::thread t([&] { r = wait_flag(); });
      sched().block_on(notify);
      t.join();
    } else {
      auto t = sched().spawn(wait_flag);
      notify();
      r = t.join();
    }
    EXPECT_TRUE(r);
  }
}

// ---- timeout vs notify -----------------------------------------------------------------------

// Each round: A waits with wait_for(tiny); B waits without a timeout, queued (under the mutex)
// after A has entered its wait — so behind A, or alone if A already timed out. Then one
// notify_one(), racing A's timeout. Exactly one of them must be woken by it:
//   A returned no_timeout  ⇒ B is still parked in wait(): an exception raised into it comes out
//                            of wait() (not a notified return);
//   A returned timeout     ⇒ the notify went to B: B returns notified (it must not hang).
// No notify is lost while a waiter was queued, none wakes two. A and B are long-lived (A a
// tasklet or a plain thread, B a tasklet: it is raised into); the round handshakes are
// buffered channels, so only the driver polls — for A to be in its wait and B to be queued.
// timeout_vs_notify() runs it in steps: a_body() (A), b_body() (B), and the driver's rounds
// (drive_round(): start A and B, the notify, then which of them woke).

/// notify_race is what A, B and the driver of one timeout_vs_notify() share.
struct notify_race {
  sl::mutex m;
  sl::condition_variable cv;
  channel<int> a_go = channel<int>(1),
               a_done = channel<int>(1);  // A: round or -1 / 1 no_timeout, 2 timeout
  channel<int> b_go = channel<int>(1),
               b_done = channel<int>(1);  // B: round or -1 / 1 notified, 2 poked
  // Written under m just before each wait (so whoever reads them under m knows the waiter is
  // queued, or already woken); a_left: A's wait has returned (it then sends on a_done).
  std::atomic<int> a_in{0}, b_in{0}, a_left{0};
  std::atomic<int> not_owner{0}, a_woken{0}, b_woken{0};
};

/// a_body() is A: each round, one wait_for(tiny); it reports no_timeout (1) or timeout (2).
void a_body(notify_race& x) {
  std::minstd_rand rng(5);
  for (;;) {
    const int r = x.a_go.receive();
    if (r < 0) return;
    const auto tiny = std::chrono::microseconds(rng() % 60);
    int res = 0;
    {
      lock_t lk(x.m);
      x.a_in.store(r);
      res = x.cv.wait_for(lk, tiny) == std::cv_status::no_timeout ? 1 : 2;
      if (!lk.owns_lock() || !x.m.owned_by_caller()) x.not_owner.fetch_add(1);
      x.a_left.store(r);
    }
    x.a_done.send(res);
  }
}

/// b_body() is B: each round, one wait() without a timeout; it reports notified (1) or poked (2).
void b_body(notify_race& x) {
  for (;;) {
    int r = 0;
    try {
      r = x.b_go.receive();
    } catch (const poke& p) {
      ADD_FAILURE() << "round " << p.n << ": B was poked outside its wait (it had been woken too)";
      return;
    }
    if (r < 0) return;
    int res = 0;
    {
      lock_t lk(x.m);
      x.b_in.store(r);
      try {
        x.cv.wait(lk);
        res = 1;
      } catch (const poke&) {
        res = 2;
      }
      if (!lk.owns_lock() || !x.m.owned_by_caller()) x.not_owner.fetch_add(1);
    }
    x.b_done.send(res);
  }
}

/// drive_round() is the driver's round r: A enters its wait, B queues behind it, the notify;
/// then exactly one of them must have been woken by it (btk is B). False: a failure was reported
/// and the race is over.
bool drive_round(notify_race& x, tasklet<void>& btk, std::minstd_rand& rng, int r) {
  x.a_go.send(r);
  if (!spin_until([&] { return x.a_in.load() == r || x.a_left.load() == r; })) {
    ADD_FAILURE() << "round " << r << ": A never started";
    return false;
  }
  x.b_go.send(r);
  if (!spin_until([&] { return under(x.m, [&] { return x.b_in.load() == r; }); })) {
    ADD_FAILURE() << "round " << r << ": B never queued";
    return false;
  }
  // B is queued. A tiny random moment, then the notify (with or without the lock).
  const unsigned pick = rng() % 4;
  if (pick == 1) relax();
  if (pick == 2) spin_for(rng() % 40);
  if (rng() % 2) {
    std::lock_guard<sl::mutex> g(x.m);
    x.cv.notify_one();
  } else {
    x.cv.notify_one();
  }
  if (x.a_done.receive() == 1) {
    x.a_woken.fetch_add(1);
    btk.raise_exception(std::make_exception_ptr(poke{r}));
    if (x.b_done.receive() != 2) {
      ADD_FAILURE() << "round " << r << ": one notify_one() woke both A and B";
      return false;
    }
  } else {
    const auto b = x.b_done.receive_for(60s);
    if (!b) {
      ADD_FAILURE() << "round " << r
                    << ": A timed out and the notify was lost although B was queued";
      btk.raise_exception(std::make_exception_ptr(poke{r}));  // let it end
      x.b_done.receive();
      return false;
    }
    if (*b != 1) {
      ADD_FAILURE() << "round " << r << ": B ended its wait without the notify";
      return false;
    }
    x.b_woken.fetch_add(1);
  }
  return true;
}

void timeout_vs_notify(sl::scheduler& s, bool driver_thread, bool a_thread, int rounds, int tag) {
  notify_race x;
  auto a = [&x] { a_body(x); };
  std::thread at;
  tasklet<void> atk;
  if (a_thread)
    at = std::thread(a);
  else
    atk = s.spawn(a);
  tasklet<void> btk = s.spawn([&x] { b_body(x); });
  auto driver = [&] {
    std::minstd_rand rng(9);
    for (int r = 1; r <= rounds; ++r) {
      if (!drive_round(x, btk, rng, r)) break;
    }
    x.a_go.send(-1);
    x.b_go.send(-1);
  };
  if (driver_thread)
    driver();
  else
    s.block_on(driver);
  if (at.joinable())
    at.join();
  else
    atk.join();
  EXPECT_TRUE(btk.join_for(60s));
  EXPECT_EQ(x.not_owner.load(), 0) << "a wait returned without the lock";
  EXPECT_EQ(x.a_woken.load() + x.b_woken.load(), rounds)
      << "a_woken=" << x.a_woken.load() << " b_woken=" << x.b_woken.load();
  ::testing::Test::RecordProperty("a_woken_" + std::to_string(tag), x.a_woken.load());
  ::testing::Test::RecordProperty("b_woken_" + std::to_string(tag), x.b_woken.load());
}

TEST_P(CondVar, TimeoutVersusNotifyRace) {
  const int rounds = static_cast<int>(ci_sized(scaled(20000, 5000, 5000), 6000));  // CI: 6,000
  for (int mix = 0; mix < 3; ++mix) {
    SCOPED_TRACE(mix == 0   ? "driver on a plain thread"
                 : mix == 1 ? "driver in a tasklet"
                            : "A on a plain thread");
    timeout_vs_notify(sched(), mix == 0, mix == 2, mix == 0 ? rounds : rounds / 2, mix);
  }
}

// ---- kill / raise_exception / timeout_scope of a waiter --------------------------------------

enum class interrupt { kill, raise, scope };

// W waits; the test (a plain thread) holds the mutex while W is interrupted, so W must re-take it
// before the exception may leave wait(): W stays alive until the test lets go. Then W unwinds with
// the lock held (checked by a destructor that runs before the unique_lock's), and the unique_lock
// releases it: the mutex is free afterwards.
// Returns false when the scenario could not be set up: W's own timeout_scope (interrupt::scope)
// expired, and W ended, before the test took the mutex (a loaded machine; TSan CI saw it). The
// caller tries again.
bool interrupt_waiter(sl::scheduler& s, interrupt how, bool hold_during) {
  sl::mutex m;
  sl::condition_variable cv;
  int in_wait = 0;  // guarded by m
  std::atomic<bool> returned{false}, owned_at_unwind{false}, caught_owned{false};
  auto w = s.spawn([&] {
    lock_t lk(m);
    at_exit probe{[&] { owned_at_unwind = lk.owns_lock() && m.owned_by_caller(); }};
    ++in_wait;
    switch (how) {
      case interrupt::kill:
        cv.wait(lk);
        break;
      case interrupt::raise:
        try {
          cv.wait(lk);
        } catch (const poke&) {
          caught_owned = lk.owns_lock() && m.owned_by_caller();
          throw;
        }
        break;
      case interrupt::scope: {
        sl::timeout_scope sc(10ms);
        try {
          cv.wait(lk);
        } catch (const sl::timeout_error& e) {
          caught_owned = e.from(sc) && lk.owns_lock() && m.owned_by_caller();
          throw;
        }
        break;
      }
    }
    returned = true;
  });
  if (!eventually([&] { return under(m, [&] { return in_wait == 1; }); })) {
    ADD_FAILURE() << "W never waited";
    return true;
  }
  if (hold_during) {
    m.lock();  // W is queued on cv (it released m only inside wait()), or its scope expired
    if (how == interrupt::scope && !w.alive()) {  // it expired, and W ended, before we took m
      m.unlock();
      EXPECT_THROW(w.join(), sl::timeout_error);
      return false;
    }
  }
  switch (how) {
    case interrupt::kill:
      w.kill(/*pending=*/true);
      break;
    case interrupt::raise:
      w.raise_exception(std::make_exception_ptr(poke{1}));
      break;
    case interrupt::scope:
      break;  // its own deadline
  }
  if (hold_during) {
    // W cannot finish: it must own m again before the exception leaves wait().
    if (how == interrupt::scope)
      std::this_thread::sleep_for(20ms);  // let the scope expire (usually)
    EXPECT_TRUE(eventually([&] { return w.blocked(); }));
    EXPECT_TRUE(w.alive()) << "the exception left wait() while another held the mutex";
    m.unlock();
  }
  if (!w.join_for(60s)) {
    ADD_FAILURE() << "W did not end";
    return true;
  }
  switch (how) {
    case interrupt::kill:
      EXPECT_NO_THROW(w.join());
      break;
    case interrupt::raise:
      EXPECT_THROW(w.join(), poke);
      break;
    case interrupt::scope:
      EXPECT_THROW(w.join(), sl::timeout_error);
      break;
  }
  EXPECT_FALSE(returned.load()) << "wait() returned normally";
  EXPECT_TRUE(owned_at_unwind.load()) << "the exception left wait() without the lock";
  if (how != interrupt::kill) {
    EXPECT_TRUE(caught_owned.load()) << "caught without the lock (or another scope's error)";
  }
  EXPECT_TRUE(is_free(m)) << "the unique_lock did not release the mutex";
  // Others can lock it and the condition variable still works.
  EXPECT_TRUE(s.block_on([&] { return is_free(m); }));
  bool flag = false;
  auto waiter = s.spawn([&] {
    lock_t lk(m);
    cv.wait(lk, [&] { return flag; });
  });
  under(m, [&] { return flag = true; });
  cv.notify_all();
  EXPECT_TRUE(waiter.join_for(60s));
  return true;
}

TEST_P(CondVar, KilledWaiterEndsWithTheMutexReleased) {
  for (bool hold : {false, true}) {
    SCOPED_TRACE(hold ? "mutex held by another meanwhile" : "mutex free");
    interrupt_waiter(sched(), interrupt::kill, hold);
  }
}

TEST_P(CondVar, RaisedExceptionLeavesWaitWithTheLockHeld) {
  for (bool hold : {false, true}) {
    SCOPED_TRACE(hold ? "mutex held by another meanwhile" : "mutex free");
    interrupt_waiter(sched(), interrupt::raise, hold);
  }
}

TEST_P(CondVar, TimeoutScopeLeavesWaitWithTheLockHeld) {
  for (bool hold : {false, true}) {
    SCOPED_TRACE(hold ? "mutex held by another meanwhile" : "mutex free");
    int tries = 1;
    while (!interrupt_waiter(sched(), interrupt::scope, hold)) ASSERT_LT(++tries, 100);
  }
  // A plain thread: timeout_error with the lock held, also when a tasklet held it meanwhile.
  sl::mutex m;
  sl::condition_variable cv;
  std::string what;
  std::thread t([&] {
    lock_t lk(m);
    sl::timeout_scope sc(10ms);
    try {
      cv.wait(lk);
      what = "returned";
    } catch (const sl::timeout_error& e) {
      what = !e.from(sc)                               ? "another scope"
             : (lk.owns_lock() && m.owned_by_caller()) ? "owned"
                                                       : "not owned";
    }
  });
  t.join();
  EXPECT_EQ(what, "owned");
  EXPECT_TRUE(is_free(m));
  // with_timeout() around a predicate wait says false, the lock released by then.
  EXPECT_FALSE(sched().block_on([&] {
    return sl::with_timeout(10ms, [&] {
      lock_t lk(m);
      cv.wait(lk, [] { return false; });
    });
  }));
  EXPECT_TRUE(is_free(m));
}

// ---- stop_token forms ------------------------------------------------------------------------

TEST_P(CondVar, StopTokenFormsReturnFalseWithTheLockHeld) {
  for (int form = 0; form < 3; ++form) {  // wait(st) / wait_for(st, 60s) / wait_until(st, +60s)
    for (int waiter_thread = 0; waiter_thread < 2; ++waiter_thread) {
      SCOPED_TRACE("form " + std::to_string(form) +
                   (waiter_thread ? ", plain thread" : ", tasklet"));
      sl::mutex m;
      sl::condition_variable cv;
      std::stop_source src;
      int entered = 0;  // guarded by m: the predicate was evaluated (the waiter is about to queue)
      auto body = [&, st = src.get_token()] {
        lock_t lk(m);
        auto pred = [&] {
          ++entered;
          return false;
        };
        bool r = true;
        if (form == 0) r = cv.wait(lk, st, pred);
        if (form == 1) r = cv.wait_for(lk, st, 60s, pred);
        if (form == 2) r = cv.wait_until(lk, st, std::chrono::steady_clock::now() + 60s, pred);
        return !r && lk.owns_lock() && m.owned_by_caller();
      };
      bool ok = false;
      std::thread th;
      tasklet<bool> tk;
      if (waiter_thread)
        th = std::thread([&] { ok = body(); });
      else
        tk = sched().spawn(body);
      ASSERT_TRUE(eventually([&] { return under(m, [&] { return entered > 0; }); }));
      if (waiter_thread)
        sched().block_on([&] { src.request_stop(); });
      else
        src.request_stop();
      if (waiter_thread)
        th.join();
      else
        ok = tk.join();
      EXPECT_TRUE(ok) << "did not return false with the lock held";
      EXPECT_TRUE(is_free(m));
    }
  }
}

TEST_P(CondVar, StopTokenFormsEdgeCases) {
  auto body = [] {
    sl::mutex m;
    sl::condition_variable cv;
    lock_t lk(m);
    std::stop_source stopped;
    stopped.request_stop();
    // Stopped before the call: pred() at once.
    EXPECT_FALSE(cv.wait(lk, stopped.get_token(), [] { return false; }));
    EXPECT_TRUE(cv.wait(lk, stopped.get_token(), [] { return true; }));
    EXPECT_FALSE(cv.wait_for(lk, stopped.get_token(), 60s, [] { return false; }));
    EXPECT_FALSE(cv.wait_until(lk, stopped.get_token(), std::chrono::steady_clock::now() + 60s,
                               [] { return false; }));
    EXPECT_TRUE(lk.owns_lock() && m.owned_by_caller());
    // Not stopped: a timed form times out and returns pred().
    std::stop_source live;
    EXPECT_FALSE(cv.wait_for(lk, live.get_token(), 5ms, [] { return false; }));
    EXPECT_FALSE(cv.wait_until(lk, live.get_token(), std::chrono::steady_clock::now() + 5ms,
                               [] { return false; }));
    EXPECT_TRUE(cv.wait_for(lk, live.get_token(), 0ms, [] { return true; }));
    // A token that can never be stopped.
    EXPECT_FALSE(cv.wait_for(lk, std::stop_token{}, 5ms, [] { return false; }));
    EXPECT_TRUE(lk.owns_lock() && m.owned_by_caller());
  };
  sched().block_on(body);
  body();
  // A notify with the predicate true ends the wait: true, and the stop source is untouched.
  sl::mutex m;
  sl::condition_variable cv;
  bool flag = false;
  int entered = 0;
  std::stop_source src;
  auto w = sched().spawn([&, st = src.get_token()] {
    lock_t lk(m);
    return cv.wait(lk, st, [&] {
      ++entered;
      return flag;
    });
  });
  ASSERT_TRUE(eventually([&] { return under(m, [&] { return entered > 0; }); }));
  under(m, [&] { return flag = true; });
  cv.notify_one();
  EXPECT_TRUE(w.join());
  EXPECT_FALSE(src.stop_requested());
}

// Huge durations mean "no deadline" (as for mutex::try_lock_for): the wait lasts until notified.
// huge_wait() runs `wait(lk, pred)` in a tasklet, checks it parks, then makes pred true and
// notifies: the wait must return true.
template <class W>
void huge_wait(sl::scheduler& s, W wait) {
  sl::mutex m;
  sl::condition_variable cv;
  bool flag = false;  // guarded by m
  int entered = 0;    // guarded by m
  auto w = s.spawn([&] {
    lock_t lk(m);
    return wait(cv, lk, [&] {
      ++entered;
      return flag;
    });
  });
  ASSERT_TRUE(eventually([&] { return under(m, [&] { return entered > 0; }); }));
  const bool waited = eventually([&] { return w.blocked() || !w.alive(); }) && w.alive();
  EXPECT_TRUE(waited) << "the wait with a huge timeout ended at once (overflow?)";
  under(m, [&] { return flag = true; });
  cv.notify_one();
  EXPECT_TRUE(w.join());
}

using pred_t = std::function<bool()>;

TEST_P(CondVar, HugeTimeoutsMeanForever) {
  huge_wait(sched(), [](sl::condition_variable& cv, lock_t& lk, pred_t p) {
    return cv.wait_for(lk, std::chrono::hours::max(), p);
  });
  huge_wait(sched(), [](sl::condition_variable& cv, lock_t& lk, pred_t p) {
    return cv.wait_until(lk, std::chrono::steady_clock::time_point::max(), p);
  });
  huge_wait(sched(), [](sl::condition_variable& cv, lock_t& lk, pred_t p) {
    std::stop_source src;
    return cv.wait_until(lk, src.get_token(), std::chrono::steady_clock::time_point::max(), p);
  });
}

TEST_P(CondVar, StopTokenWaitForWithAHugeDurationWaits) {
  huge_wait(sched(), [](sl::condition_variable& cv, lock_t& lk, pred_t p) {
    std::stop_source src;
    return cv.wait_for(lk, src.get_token(), std::chrono::hours::max(), p);
  });
}

// ---- plain threads and tasklets together -----------------------------------------------------

// A ring of four — plain thread, tasklet, plain thread, tasklet — passes a turn around many times
// through one condition variable (notify_all; each waits for its turn with a predicate).
TEST_P(CondVar, PlainThreadsAndTaskletsPassATurnAround) {
  sl::mutex m;
  sl::condition_variable cv;
  // CI: 300 (each pass hands the turn between OS threads: on 2 busy cores, ms each)
  const int laps = static_cast<int>(ci_sized(scaled(2000, 500, 500), 300));
  int turn = 0;     // guarded by m
  long passes = 0;  // guarded by m
  auto member = [&](int me) {
    for (int i = 0; i < laps; ++i) {
      lock_t lk(m);
      cv.wait(lk, [&] { return turn == me; });
      turn = (me + 1) % 4;
      ++passes;
      if (i % 2) lk.unlock();
      cv.notify_all();
    }
  };
  std::thread t0(member, 0), t2(member, 2);
  auto k1 = sched().spawn(member, 1);
  auto k3 = sched().spawn(member, 3);
  t0.join();
  t2.join();
  k1.join();
  k3.join();
  EXPECT_EQ(passes, 4L * laps);
  // A single pair with notify_one: a plain thread waits, a tasklet notifies, and vice versa.
  bool ping = false, pong = false;  // guarded by m
  auto tk = sched().spawn([&] {
    for (int i = 0; i < laps; ++i) {
      lock_t lk(m);
      cv.wait(lk, [&] { return ping; });
      ping = false;
      pong = true;
      cv.notify_one();
    }
  });
  for (int i = 0; i < laps; ++i) {
    lock_t lk(m);
    ping = true;
    cv.notify_one();
    cv.wait(lk, [&] { return pong; });
    pong = false;
  }
  tk.join();
}

}  // namespace
