// SPDX-License-Identifier: Apache-2.0
// test_mutex.cpp — stackless::mutex, timed_mutex and recursive_mutex (sync/mutex.hpp), from
// tasklets on every worker count and from plain threads: mutual exclusion under contention; FIFO
// hand-off with no barging (try_lock() fails while anyone is queued); a holder may park and its
// worker runs other tasklets meanwhile; the owner is the tasklet (it may migrate), so unlock() by
// anyone else, unlock() of a free mutex and a second lock() by the owner throw usage_error;
// try_lock_for / try_lock_until time out while held and succeed when released in time, and a
// waiter that left is never handed the lock; huge timeouts mean no deadline; recursive_mutex
// depth; std::lock_guard / unique_lock / scoped_lock.
// Waiters that leave a parked lock() (timeout / stop request / timeout_scope / kill /
// raise_exception, alone and racing an unlock) are in test_mutex_leave.cpp; the helpers both use
// in test_mutex_fixture.hpp. No test asserts how long anything took.
#include <chrono>
#include <memory>
#include <mutex>
#include <random>
#include <set>
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

// ---- mutual exclusion ------------------------------------------------------------------------

// N tasklets and a few plain threads take the lock K times each (by lock(), try_lock() then
// lock(), or try_lock_for()); inside, a non-atomic counter is read, the holder sometimes yields
// (parks with the lock held), and writes it back; a flag catches two holders at once.
template <class M>
void contend(sl::scheduler& s, int tasklets, int threads, int per) {
  M m;
  long counter = 0;  // guarded by m; deliberately not atomic (TSan sees any overlap too)
  std::atomic<int> inside{0}, overlaps{0}, failed_timed{0};
  auto body = [&](int id) {
    std::minstd_rand rng(static_cast<unsigned>(id) + 1);
    for (int i = 0; i < per; ++i) {
      switch (rng() % 3) {
        case 0:
          m.lock();
          break;
        case 1:
          if (!m.try_lock()) m.lock();
          break;
        default:
          if (!m.try_lock_for(std::chrono::minutes(2))) {
            failed_timed.fetch_add(1);
            m.lock();
          }
      }
      if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
      const long c = counter;
      if (rng() % 8 == 0) relax();  // park (or yield the thread) holding the lock
      counter = c + 1;
      inside.fetch_sub(1);
      m.unlock();
      if (rng() % 4 == 0) relax();
    }
  };
  std::vector<tasklet<void>> ts;
  for (int i = 0; i < tasklets; ++i) ts.push_back(s.spawn(body, i));
  std::vector<std::thread> th;
  for (int i = 0; i < threads; ++i) th.emplace_back(body, 1000 + i);
  for (auto& t : ts) t.join();
  for (auto& t : th) t.join();
  EXPECT_EQ(overlaps.load(), 0) << "two holders inside at once";
  EXPECT_EQ(failed_timed.load(), 0) << "try_lock_for(2 min) gave up";
  EXPECT_EQ(counter, static_cast<long>(tasklets + threads) * per) << "increments lost";
  EXPECT_TRUE(is_free(m));
}

TEST_P(Mutex, MutualExclusionUnderContention) {
  const int per = static_cast<int>(scaled(1500, 500, 500));
  {
    SCOPED_TRACE("mutex, tasklets only");
    contend<sl::mutex>(sched(), 16, 0, per);
  }
  {
    SCOPED_TRACE("mutex, tasklets and plain threads");
    contend<sl::mutex>(sched(), 8, 2, per);
  }
  {
    SCOPED_TRACE("timed_mutex, tasklets and plain threads");
    contend<sl::timed_mutex>(sched(), 8, 2, per);
  }
  {
    SCOPED_TRACE("recursive_mutex, tasklets and plain threads");
    contend<sl::recursive_mutex>(sched(), 8, 2, per);
  }
}

// ---- fairness --------------------------------------------------------------------------------

// With the lock held, waiters queue in a known order (each parked before the next is spawned);
// unlock() hands the lock to the first — still held, so nobody can barge in, not even the
// previous holder — and each unlock passes it on in queue order. A newcomer's try_lock() fails
// while anyone is queued, and its lock() queues behind them.
TEST_P(Mutex, FifoHandOffAndNoBarging) {
  for (int holder_kind = 0; holder_kind < 2; ++holder_kind) {  // 0: this plain thread, 1: a tasklet
    SCOPED_TRACE(holder_kind ? "held by a tasklet" : "held by a plain thread");
    sl::mutex m;
    std::vector<int> order;  // guarded by m
    std::atomic<bool> go{false};
    door release;
    std::atomic<bool> held{false}, retook{true};
    tasklet<void> h;
    if (holder_kind) {
      h = sched().spawn([&] {
        m.lock();
        held = true;
        release.wait("holder");
        m.unlock();
        retook = m.try_lock();  // the lock went to the first waiter: must fail
        if (retook) m.unlock();
      });
      ASSERT_TRUE(wait_until([&] { return held.load() && release.occupied(); }));
    } else {
      m.lock();
    }
    const int n = 8;
    std::vector<tasklet<void>> ws;
    for (int i = 0; i < n; ++i) {
      ws.push_back(sched().spawn([&, i] {
        m.lock();
        order.push_back(i);
        yield_until([&] { return go.load(); });  // keep it: the next ones stay queued
        m.unlock();
      }));
      ASSERT_TRUE(parked(ws.back())) << "waiter " << i << " never parked";
    }
    // Newcomers fail while waiters are queued: a tasklet and a plain thread.
    EXPECT_FALSE(sched().block_on([&] { return m.try_lock(); }))
        << "a tasklet barged past the queue";
    bool thread_took = true;
    std::thread([&] {
      thread_took = m.try_lock();
      if (thread_took) m.unlock();
    }).join();
    EXPECT_FALSE(thread_took) << "a plain thread barged past the queue";
    if (holder_kind) {
      release.open();
      h.join();
      EXPECT_FALSE(retook.load()) << "the previous holder took the lock back past the queue";
    } else {
      m.unlock();
      EXPECT_FALSE(m.try_lock()) << "unlock() did not hand the lock to the first waiter";
    }
    // Waiter 0 owns it now; a newcomer that calls lock() queues behind the others.
    auto late = sched().spawn([&] {
      m.lock();
      order.push_back(n);
      m.unlock();
    });
    ASSERT_TRUE(parked(late));
    EXPECT_FALSE(m.try_lock());
    go = true;
    for (auto& w : ws) w.join();
    late.join();
    std::vector<int> want(n + 1);
    for (int i = 0; i <= n; ++i) want[static_cast<std::size_t>(i)] = i;
    EXPECT_EQ(order, want) << "the lock was not handed over in FIFO order";
    EXPECT_TRUE(is_free(m));
  }
}

// ---- a holder may park -----------------------------------------------------------------------

// A tasklet holding the lock sleeps and receives on a channel; meanwhile another tasklet — on the
// same worker when workers = 1 — makes progress, and a third waits for the lock without stalling
// anyone.
TEST_P(Mutex, HolderMayParkWhileItsWorkerRunsOthers) {
  sl::mutex m;
  channel<int> ch;
  std::atomic<int> progress{0};
  std::atomic<bool> saw_held{false}, waiter_got{false};
  auto h = sched().spawn([&, ch]() mutable {
    std::lock_guard<sl::mutex> g(m);
    auto waiter = sl::spawn([&] {
      std::lock_guard<sl::mutex> g2(m);
      waiter_got = true;
    });
    auto busy = sl::spawn([&, ch]() mutable {
      for (int i = 0; i < 100; ++i) {
        progress.fetch_add(1);
        this_tasklet::yield();
      }
      saw_held = !m.try_lock();
      if (!saw_held) m.unlock();
      ch.send(7);
    });
    this_tasklet::sleep_for(2ms);  // parked, lock held
    EXPECT_EQ(ch.receive(), 7);    // parked again, lock held
    EXPECT_EQ(progress.load(), 100);
    EXPECT_FALSE(waiter_got.load()) << "a waiter got the lock while its holder was parked";
    busy.join();
    EXPECT_TRUE(m.owned_by_caller());
  });
  h.join();
  EXPECT_TRUE(saw_held.load()) << "try_lock() succeeded while the holder was parked";
  EXPECT_TRUE(eventually([&] { return waiter_got.load(); }));
  EXPECT_TRUE(eventually([&] { return is_free(m); }));
}

// ---- ownership -------------------------------------------------------------------------------

// The owner is the tasklet: it locks, yields many times (migrating between workers when there
// are several), and unlocks wherever it is then.
TEST_P(Mutex, OwnerIsTheTaskletAcrossMigration) {
  sl::mutex m;
  sl::recursive_mutex rm;
  std::atomic<bool> stop{false};
  std::vector<tasklet<void>> busy;
  for (unsigned i = 0; i < 2 * workers(); ++i)  // keep the other workers hungry: they steal
    busy.push_back(sched().spawn([&] {
      while (!stop.load()) this_tasklet::yield();
    }));
  const int yields = static_cast<int>(scaled(3000, 500));
  auto t = sched().spawn([&] {
    std::set<std::thread::id> threads;
    m.lock();
    rm.lock();
    rm.lock();
    for (int i = 0; i < yields; ++i) {
      threads.insert(std::this_thread::get_id());
      this_tasklet::yield();
      if (!m.owned_by_caller()) ADD_FAILURE() << "the tasklet lost its ownership at yield " << i;
    }
    threads.insert(std::this_thread::get_id());
    EXPECT_NO_THROW(m.unlock());
    EXPECT_NO_THROW(rm.unlock());
    EXPECT_NO_THROW(rm.unlock());
    return threads.size();
  });
  const std::size_t seen = t.join();
  stop = true;
  for (auto& b : busy) b.join();
  RecordProperty("threads_seen", static_cast<int>(seen));
  EXPECT_TRUE(is_free(m));
  EXPECT_TRUE(is_free(rm));
}

TEST_P(Mutex, UnlockByAnyoneButTheOwnerThrows) {
  for (int kind = 0; kind < 2; ++kind) {  // 0: mutex, 1: recursive_mutex
    SCOPED_TRACE(kind ? "recursive_mutex" : "mutex");
    sl::mutex m;
    sl::recursive_mutex rm;
    auto unlock = [&] { kind ? rm.unlock() : m.unlock(); };
    // Unlocking a free mutex: from a tasklet and from a plain thread.
    EXPECT_THROW(sched().block_on(unlock), sl::usage_error);
    EXPECT_THROW(unlock(), sl::usage_error);
    // Held by a parked tasklet: another tasklet — on the same worker when workers = 1 — and a
    // plain thread may not unlock it.
    {
      std::unique_ptr<holder<sl::mutex>> hm;
      std::unique_ptr<holder<sl::recursive_mutex>> hr;
      if (kind)
        hr = std::make_unique<holder<sl::recursive_mutex>>(sched(), rm);
      else
        hm = std::make_unique<holder<sl::mutex>>(sched(), m);
      EXPECT_THROW(sched().block_on(unlock), sl::usage_error);
      EXPECT_THROW(unlock(), sl::usage_error);
      std::thread([&] { EXPECT_THROW(unlock(), sl::usage_error); }).join();
      // Still held by the holder.
      EXPECT_FALSE(kind ? rm.try_lock() : m.try_lock());
      EXPECT_FALSE(sched().block_on([&] { return kind ? rm.try_lock() : m.try_lock(); }));
    }  // the holder unlocks without an error
    EXPECT_TRUE(kind ? is_free(rm) : is_free(m));
    // Held by this plain thread: a tasklet may not unlock it.
    kind ? rm.lock() : m.lock();
    EXPECT_THROW(sched().block_on(unlock), sl::usage_error);
    EXPECT_NO_THROW(unlock());
    EXPECT_THROW(unlock(), sl::usage_error) << "unlock() of a mutex that was just released";
  }
}

// lock() by the tasklet (or thread) that holds a (non-recursive) mutex throws usage_error instead
// of deadlocking; the mutex stays held and works normally afterwards.
TEST_P(Mutex, SecondLockByTheOwnerThrows) {
  sl::mutex m;
  auto twice = [&] {
    m.lock();
    EXPECT_THROW(m.lock(), sl::usage_error);
    std::stop_source src;
    EXPECT_THROW(m.lock(src.get_token()), sl::usage_error);
    EXPECT_FALSE(m.try_lock()) << "try_lock() by the owner must fail, not succeed";
    EXPECT_TRUE(m.owned_by_caller());
    m.unlock();
    EXPECT_FALSE(m.owned_by_caller());
  };
  {
    SCOPED_TRACE("in a tasklet");
    sched().block_on(twice);
  }
  {
    SCOPED_TRACE("on a plain thread");
    twice();
  }
  EXPECT_TRUE(is_free(m));
  // And another tasklet can still take it.
  EXPECT_TRUE(sched().block_on([&] { return is_free(m); }));
}

// ---- timed locking ---------------------------------------------------------------------------

TEST_P(Mutex, TimedLockTimesOutWhileHeldAndNothingIsHandedToALeaver) {
  sl::timed_mutex m;
  auto attempts = [&] {
    EXPECT_FALSE(m.try_lock_for(20ms));
    EXPECT_FALSE(m.try_lock_until(std::chrono::steady_clock::now() + 10ms));
    EXPECT_FALSE(m.try_lock_until(std::chrono::system_clock::now() + 10ms));
    EXPECT_FALSE(m.try_lock_for(0ms));
    EXPECT_FALSE(m.try_lock_for(-5ms));
    EXPECT_FALSE(m.try_lock_until(std::chrono::steady_clock::now() - 1s));
    EXPECT_FALSE(m.owned_by_caller());
  };
  {
    holder<sl::timed_mutex> h(sched(), m);
    {
      SCOPED_TRACE("in a tasklet");
      sched().block_on(attempts);
    }
    {
      SCOPED_TRACE("on a plain thread");
      attempts();
    }
    // Several waiters time out together, tasklets and plain threads.
    std::vector<tasklet<bool>> ts;
    for (int i = 0; i < 4; ++i)
      ts.push_back(
          sched().spawn([&m, i] { return m.try_lock_for(std::chrono::milliseconds(5 + 5 * i)); }));
    std::vector<std::thread> th;
    std::atomic<int> thread_got{0};
    for (int i = 0; i < 2; ++i)
      th.emplace_back([&m, &thread_got, i] {
        thread_got += m.try_lock_for(std::chrono::milliseconds(5 + 10 * i));
      });
    for (auto& t : ts) EXPECT_FALSE(t.join());
    for (auto& t : th) t.join();
    EXPECT_EQ(thread_got.load(), 0);
  }  // the holder unlocks now: the waiters that left must not be handed the lock
  EXPECT_TRUE(is_free(m)) << "the lock went to a waiter that had timed out";
  // The lock still counts right: one holder at a time.
  std::atomic<int> inside{0}, overlaps{0};
  std::vector<tasklet<void>> ts;
  for (int i = 0; i < 8; ++i)
    ts.push_back(sched().spawn([&] {
      for (int k = 0; k < 50; ++k) {
        std::lock_guard<sl::timed_mutex> g(m);
        if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
        this_tasklet::yield();
        inside.fetch_sub(1);
      }
    }));
  for (auto& t : ts) t.join();
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_TRUE(is_free(m));
}

TEST_P(Mutex, TimedLockSucceedsWhenReleasedInTime) {
  for (int kind = 0; kind < 4;
       ++kind) {  // try_lock_for / try_lock_until / hours::max() / time_point::max()
    SCOPED_TRACE("variant " + std::to_string(kind));
    sl::timed_mutex m;
    auto attempt = [&m, kind] {
      bool ok = false;
      switch (kind) {
        case 0:
          ok = m.try_lock_for(60s);
          break;
        case 1:
          ok = m.try_lock_until(std::chrono::steady_clock::now() + 60s);
          break;
        case 2:
          ok = m.try_lock_for(std::chrono::hours::max());
          break;
        default:
          ok = m.try_lock_until(std::chrono::steady_clock::time_point::max());
      }
      const bool owned = ok && m.owned_by_caller();
      if (ok) m.unlock();
      return owned;
    };
    {  // A tasklet waits (parked, then handed the lock).
      auto h = std::make_unique<holder<sl::timed_mutex>>(sched(), m);
      auto w = sched().spawn(attempt);
      ASSERT_TRUE(parked(w));
      h.reset();
      EXPECT_TRUE(w.join()) << "the timed waiter was not handed the lock";
    }
    {  // A plain thread waits.
      auto h = std::make_unique<holder<sl::timed_mutex>>(sched(), m);
      bool got = false;
      std::thread th([&] { got = attempt(); });
      std::this_thread::sleep_for(2ms);  // usually parked by now; either way it must succeed
      h.reset();
      th.join();
      EXPECT_TRUE(got);
    }
    EXPECT_TRUE(is_free(m));
  }
}

// ---- huge durations mean "no deadline" -------------------------------------------------------

// huge_wait() holds m (a holder tasklet), lets a tasklet run `attempt` — a wait with a huge
// timeout — and checks it parks and is handed the lock when the holder lets go (as
// mutex::try_lock_for(hours::max()) does: detail::deadline_after saturates).
template <class M, class F>
void huge_wait(sl::scheduler& s, M& m, F attempt) {
  auto h = std::make_unique<holder<M>>(s, m);
  auto w = s.spawn([&m, attempt] {
    const bool ok = attempt();
    if (ok) m.unlock();
    return ok;
  });
  const bool waited = eventually([&] { return w.blocked() || !w.alive(); }) && w.alive();
  h.reset();
  EXPECT_TRUE(waited) << "the wait with a huge timeout ended at once (overflow?)";
  EXPECT_TRUE(w.join()) << "the wait with a huge timeout did not wait for the lock";
  EXPECT_TRUE(is_free(m));
}

TEST_P(Mutex, HugeTimeoutsMeanForever) {
  sl::timed_mutex m;
  sl::recursive_mutex rm;
  huge_wait(sched(), m, [&m] { return m.try_lock_for(std::chrono::hours::max()); });
  huge_wait(sched(), m, [&m] { return m.try_lock_for(std::chrono::nanoseconds::max()); });
  huge_wait(sched(), m,
            [&m] { return m.try_lock_until(std::chrono::steady_clock::time_point::max()); });
  huge_wait(sched(), rm,
            [&rm] { return rm.try_lock_until(std::chrono::steady_clock::time_point::max()); });
}

TEST_P(Mutex, RecursiveTryLockForWithAHugeDurationWaits) {
  sl::recursive_mutex rm;
  huge_wait(sched(), rm, [&rm] { return rm.try_lock_for(std::chrono::hours::max()); });
  huge_wait(sched(), rm, [&rm] { return rm.try_lock_for(std::chrono::seconds::max()); });
}

TEST_P(Mutex, LockInsideAHugeTimeoutScopeWaits) {
  sl::mutex m;
  huge_wait(sched(), m, [&m] {
    sl::timeout_scope sc(std::chrono::hours::max());
    m.lock();
    return true;
  });
}

// ---- recursive_mutex -------------------------------------------------------------------------

TEST_P(Mutex, RecursiveMutexDepth) {
  sl::recursive_mutex m;
  std::atomic<bool> other_got{false};
  tasklet<void> other;
  sched().block_on([&] {
    m.lock();
    m.lock();
    EXPECT_TRUE(m.try_lock());
    EXPECT_TRUE(m.try_lock_for(1ms));
    EXPECT_TRUE(m.try_lock_until(std::chrono::steady_clock::now()));  // depth 5
    // Another tasklet cannot take it; its timed attempts time out.
    EXPECT_FALSE(sl::spawn([&] { return m.try_lock(); }).join());
    EXPECT_FALSE(sl::spawn([&] { return m.try_lock_for(5ms); }).join());
    EXPECT_THROW(sl::spawn([&] { m.unlock(); }).join(), sl::usage_error);
    other = sl::spawn([&] {
      m.lock();
      other_got = true;
      m.lock();  // its own depth 2
      m.unlock();
      m.unlock();
    });
    EXPECT_TRUE(yield_until([&] { return other.blocked(); }));
    for (int i = 0; i < 4; ++i) {
      m.unlock();
      this_tasklet::yield();
      EXPECT_FALSE(other_got.load()) << "released after " << i + 1 << " of 5 unlocks";
    }
    // The plain thread cannot release it either.
    std::thread([&] { EXPECT_THROW(m.unlock(), sl::usage_error); }).join();
    m.unlock();  // the last one
  });
  other.join();
  EXPECT_TRUE(other_got.load());
  EXPECT_TRUE(is_free(m));
  EXPECT_THROW(m.unlock(), sl::usage_error);
  // From a plain thread: the same counting.
  m.lock();
  m.lock();
  m.unlock();
  EXPECT_FALSE(sched().block_on([&] { return m.try_lock(); }));
  m.unlock();
  EXPECT_TRUE(sched().block_on([&] { return is_free(m); }));
}

// ---- std wrappers ----------------------------------------------------------------------------

TEST_P(Mutex, StdLockGuardUniqueLockScopedLock) {
  sl::mutex a, b;
  sl::timed_mutex tm;
  sl::recursive_mutex rm;
  // lock_guard / unique_lock in a tasklet and on a plain thread.
  auto basics = [&] {
    {
      std::lock_guard<sl::mutex> g(a);
      EXPECT_TRUE(a.owned_by_caller());
    }
    EXPECT_FALSE(a.owned_by_caller());
    std::unique_lock<sl::mutex> u(a, std::defer_lock);
    EXPECT_FALSE(u.owns_lock());
    u.lock();
    EXPECT_TRUE(a.owned_by_caller());
    u.unlock();
    EXPECT_TRUE(u.try_lock());
    u.unlock();
    std::unique_lock<sl::timed_mutex> ut(tm, 5ms);
    EXPECT_TRUE(ut.owns_lock());
    std::unique_lock<sl::timed_mutex> ut2(tm, std::try_to_lock);
    EXPECT_FALSE(ut2.owns_lock()) << "try_to_lock by the owner of a non-recursive mutex";
    {
      std::lock_guard<sl::recursive_mutex> g1(rm);
      std::lock_guard<sl::recursive_mutex> g2(rm);
      std::scoped_lock<sl::recursive_mutex, sl::mutex> g3(rm, b);
    }
    EXPECT_TRUE(is_free(b));
  };
  sched().block_on(basics);
  basics();
  {  // unique_lock's timed constructor times out against a holder.
    holder<sl::timed_mutex> h(sched(), tm);
    EXPECT_FALSE(
        sched().block_on([&] { return std::unique_lock<sl::timed_mutex>(tm, 5ms).owns_lock(); }));
  }
  // scoped_lock(a, b) and scoped_lock(b, a) from many tasklets and threads: no deadlock, and
  // both counters stay consistent.
  long in_a = 0, in_b = 0;  // guarded by a / b
  const int per = static_cast<int>(scaled(500, 200, 200));
  auto body = [&](int id) {
    for (int i = 0; i < per; ++i) {
      if ((id + i) % 2) {
        std::scoped_lock g(a, b);
        ++in_a;
        if (i % 7 == 0) relax();
        ++in_b;
      } else {
        std::scoped_lock g(b, a);
        ++in_b;
        if (i % 5 == 0) relax();
        ++in_a;
      }
    }
  };
  std::vector<tasklet<void>> ts;
  for (int i = 0; i < 8; ++i) ts.push_back(sched().spawn(body, i));
  std::vector<std::thread> th;
  for (int i = 0; i < 2; ++i) th.emplace_back(body, 100 + i);
  for (auto& t : ts) t.join();
  for (auto& t : th) t.join();
  EXPECT_EQ(in_a, 10L * per);
  EXPECT_EQ(in_b, 10L * per);
  EXPECT_TRUE(is_free(a));
  EXPECT_TRUE(is_free(b));
}

}  // namespace
