// test_timeout_scope.cpp — stackless::timeout_scope, timeout_error and with_timeout
// (runtime/include/stackless/runtime/timeout.hpp), through every blocking call of the library:
//  - each blocking call inside a scope throws timeout_error naming that scope when the deadline
//    passes while it waits (sleep, join, channel send/receive, select, mutex, condition_variable,
//    semaphore, event, latch, wait_group, barrier, future, when_any/when_all, task_group);
//  - afterwards nothing was taken and nothing is lost: a receive that timed out does not eat a
//    later value, a lock that timed out is not held, a permit is not swallowed;
//  - a call whose own timeout is earlier returns its normal timeout result; one whose own timeout
//    is later throws; a call that need not wait completes after the deadline; a call that would
//    wait after the deadline throws;
//  - nesting (the earliest deadline fires and names its scope; with_timeout swallows only its
//    own), restoring on exit, with_timeout's results, swallowing does not extend the deadline;
//  - a scope belongs to the tasklet (or plain thread) that made it; kill() still gives
//    tasklet_exit;
//  - races of scope deadlines against notifies (channel, semaphore, mutex): nothing lost, nothing
//    taken twice.
// Every test runs over workers ∈ {1, 2, 4}, most in a tasklet and on a plain thread. No test
// asserts how long anything took; "it did not throw before the deadline" is checked (safe).
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "channel_fixture.hpp"

namespace {

using namespace stackless_test;
using sl::timeout_error;
using sl::timeout_scope;
using sl::with_timeout;
using clock_type = std::chrono::steady_clock;

class TimeoutScope : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(TimeoutScope);

const std::string kThis = "timeout_error of this scope";
const std::string kReturned = "returned";

/// run_in() runs f (inside scope s, which the caller made) and tells how it ended: kReturned,
/// kThis (a timeout_error naming s, thrown once s's deadline had passed), or what else.
template <class F>
std::string run_in(const timeout_scope& s, F&& f) {
  try {
    f();
  } catch (const timeout_error& e) {
    if (!e.from(s)) return "timeout_error of another scope";
    if (!s.expired()) return "timeout_error before the scope's deadline";
    return kThis;
  } catch (const std::exception& e) {
    return std::string("exception: ") + e.what();
  }
  return kReturned;
}

/// in_scope() runs f inside a fresh timeout_scope of d: see run_in().
template <class F>
std::string in_scope(std::chrono::nanoseconds d, F&& f) {
  timeout_scope s(d);
  return run_in(s, std::forward<F>(f));
}

/// expired_scope_run() runs f inside a scope whose deadline has already passed.
template <class F>
std::string in_expired_scope(F&& f) {
  timeout_scope s(clock_type::now() - 1ms);
  EXPECT_TRUE(s.expired());
  return run_in(s, std::forward<F>(f));
}

constexpr auto kShort = 20ms;                  // a scope that ends during the wait
constexpr auto kLong = std::chrono::hours(1);  // never ends during a test

/// scope_top() is the calling tasklet's (or thread's) innermost scope.
const timeout_scope* scope_top() { return sl::detail::scope_top(); }

// ---- every blocking call throws when the scope ends -------------------------------------------

TEST_P(TimeoutScope, SleepThrows) {
  in_tasklet_and_thread(sched(), [] {
    EXPECT_EQ(in_scope(kShort, [] { this_tasklet::sleep_for(kLong); }), kThis);
    EXPECT_EQ(in_scope(kShort, [] { this_tasklet::sleep_until(clock_type::now() + kLong); }),
              kThis);
    // Its own deadline first: a normal sleep.
    EXPECT_EQ(in_scope(kLong,
                       [] {
                         const auto until = clock_type::now() + 2ms;
                         this_tasklet::sleep_until(until);
                         EXPECT_GE(clock_type::now(), until);
                       }),
              kReturned);
    EXPECT_EQ(scope_top(), nullptr) << "a scope outlived its block";
  });
}

TEST_P(TimeoutScope, JoinThrowsAndTheTaskletLivesOn) {
  auto& s = sched();
  in_tasklet_and_thread(s, [&s] {
    sl::event go;
    auto t = s.spawn([&go] {
      go.wait();
      return 5;
    });
    EXPECT_EQ(in_scope(kShort, [&] { t.join(); }), kThis);
    EXPECT_TRUE(t.alive()) << "a timed-out join() ended the joined tasklet";
    EXPECT_EQ(in_scope(kShort, [&] { t.join_for(kLong); }), kThis) << "own timeout later";
    EXPECT_EQ(in_scope(kShort, [&] { t.join_until(clock_type::now() + kLong); }), kThis);
    EXPECT_EQ(in_scope(kLong, [&] { EXPECT_FALSE(t.join_for(1ms)); }), kReturned)
        << "own timeout earlier";
    EXPECT_EQ(in_scope(kLong, [&] { EXPECT_FALSE(t.join_until(clock_type::now() + 1ms)); }),
              kReturned);
    go.set();
    EXPECT_EQ(t.join(), 5);
  });
}

TEST_P(TimeoutScope, ChannelReceiveThrowsAndEatsNothing) {
  auto& s = sched();
  in_tasklet_and_thread(s, [&s] {
    for (std::size_t cap : {std::size_t{0}, std::size_t{2}}) {
      // (No SCOPED_TRACE inside a tasklet: gtest keeps traces per thread, and a tasklet may
      // resume on another worker thread. The capacity goes into the messages instead.)
      const std::string at = "capacity " + std::to_string(cap);
      channel<int> ch(cap);
      EXPECT_EQ(in_scope(kShort, [&] { ch.receive(); }), kThis) << at;
      EXPECT_EQ(ch.balance(), 0) << at << ": the timed-out receiver is still registered";
      EXPECT_EQ(in_scope(kShort, [&] { (void)ch.receive_for(kLong); }), kThis)
          << at << ": own timeout later";
      EXPECT_EQ(in_scope(kLong, [&] { EXPECT_FALSE(ch.receive_for(1ms).has_value()); }), kReturned)
          << at << ": own timeout earlier";
      EXPECT_EQ(ch.balance(), 0) << at;
      if (cap == 0) {
        int v = 41;
        EXPECT_FALSE(ch.try_send(v)) << "a departed receiver took a value";
      }
      // A value sent later reaches the next receiver.
      auto tx = s.spawn([ch]() mutable { ch.send(42); });
      EXPECT_EQ(ch.receive(), 42) << at;
      tx.join();
      EXPECT_FALSE(ch.try_receive().has_value()) << at;
    }
  });
}

TEST_P(TimeoutScope, ChannelSendThrowsAndDeliversNothing) {
  in_tasklet_and_thread(sched(), [] {
    {  // rendezvous
      channel<std::unique_ptr<int>> ch;
      EXPECT_EQ(in_scope(kShort, [&] { ch.send(std::make_unique<int>(1)); }), kThis);
      EXPECT_EQ(ch.balance(), 0) << "the timed-out sender is still registered";
      EXPECT_FALSE(ch.try_receive().has_value()) << "the value of a timed-out send was delivered";
      auto v = std::make_unique<int>(2);
      EXPECT_EQ(in_scope(kShort, [&] { ch.send_for(v, kLong); }), kThis) << "own timeout later";
      ASSERT_TRUE(v) << "send_for() that timed out gave its value away";
      EXPECT_EQ(*v, 2);
      EXPECT_EQ(in_scope(kLong, [&] { EXPECT_FALSE(ch.send_for(v, 1ms)); }), kReturned);
      ASSERT_TRUE(v);
      EXPECT_FALSE(ch.try_receive().has_value());
    }
    {  // a full buffer
      channel<int> ch(1);
      ch.send(1);
      EXPECT_EQ(in_scope(kShort, [&] { ch.send(2); }), kThis);
      EXPECT_EQ(ch.receive(), 1);
      EXPECT_FALSE(ch.try_receive().has_value()) << "the value of a timed-out send was buffered";
      int three = 3;
      EXPECT_TRUE(ch.try_send(three)) << "the buffer has room again";
      EXPECT_EQ(ch.receive(), 3);
    }
  });
}

TEST_P(TimeoutScope, SelectThrowsUnlessItsOwnAfterComesFirst) {
  auto& s = sched();
  in_tasklet_and_thread(s, [&s] {
    channel<int> a, b;
    int got = -1;
    EXPECT_EQ(in_scope(kShort,
                       [&] {
                         sl::select(sl::on_receive(a, [&](int v) { got = v; }),
                                    sl::on_receive(b, [&](int v) { got = v; }));
                       }),
              kThis);
    EXPECT_EQ(in_scope(kShort,
                       [&] {
                         sl::select(sl::on_receive(a, [&](int v) { got = v; }),
                                    sl::after(kLong, [] {}));
                       }),
              kThis)
        << "an after() later than the scope";
    EXPECT_EQ(
        in_scope(kShort, [&] { sl::select(sl::on_send(a, 7, [] {}), sl::on_send(b, 8, [] {})); }),
        kThis);
    EXPECT_EQ(a.balance(), 0);
    EXPECT_EQ(b.balance(), 0);
    EXPECT_FALSE(a.try_receive().has_value()) << "a timed-out select delivered its send";
    std::size_t idx = 99;
    EXPECT_EQ(in_scope(kLong,
                       [&] {
                         idx = sl::select(sl::on_receive(a, [&](int v) { got = v; }),
                                          sl::after(1ms, [] {}));
                       }),
              kReturned);
    EXPECT_EQ(idx, 1u) << "the after() case";
    EXPECT_EQ(got, -1);
    // A value sent later reaches the next receiver: the timed-out selects took nothing.
    auto tx = s.spawn([a]() mutable { a.send(9); });
    idx = sl::select(sl::on_receive(a, [&](int v) { got = v; }),
                     sl::on_receive(b, [&](int v) { got = v; }));
    EXPECT_EQ(idx, 0u);
    EXPECT_EQ(got, 9);
    tx.join();
  });
}

// A holder tasklet keeps m until released.
struct held_mutex {
  sl::mutex m;
  sl::event held, release;
  tasklet<void> holder;
  explicit held_mutex(sl::scheduler& s, sl::mutex_policy p = sl::mutex_policy::fair) : m(p) {
    holder = s.spawn([this] {
      std::lock_guard<sl::mutex> g(m);
      held.set();
      release.wait();
    });
    held.wait();
  }
  void let_go() {
    release.set();
    holder.join();
  }
};

TEST_P(TimeoutScope, MutexLockThrowsAndDoesNotHoldTheLock) {
  auto& s = sched();
  in_tasklet_and_thread(s, [&s] {
    for (auto policy : {sl::mutex_policy::fair, sl::mutex_policy::throughput}) {
      const char* at = policy == sl::mutex_policy::fair ? "fair" : "throughput";
      held_mutex h(s, policy);
      EXPECT_EQ(in_scope(kShort, [&] { h.m.lock(); }), kThis) << at;
      EXPECT_FALSE(h.m.owned_by_caller()) << at;
      EXPECT_EQ(in_scope(kShort, [&] { (void)h.m.try_lock_for(kLong); }), kThis)
          << at << ": own timeout later";
      EXPECT_EQ(in_scope(kLong, [&] { EXPECT_FALSE(h.m.try_lock_for(1ms)); }), kReturned) << at;
      EXPECT_FALSE(h.m.try_lock()) << at << ": still the holder's";
      h.let_go();
      EXPECT_TRUE(h.m.try_lock()) << at
                                  << ": the unlock handed the lock to a waiter that had timed out";
      h.m.unlock();
    }
  });
}

TEST_P(TimeoutScope, ConditionVariableWaitThrowsWithTheLockHeld) {
  in_tasklet_and_thread(sched(), [] {
    sl::mutex m;
    sl::condition_variable cv;
    std::unique_lock<sl::mutex> lk(m);
    EXPECT_EQ(in_scope(kShort, [&] { cv.wait(lk); }), kThis);
    EXPECT_TRUE(lk.owns_lock());
    EXPECT_TRUE(m.owned_by_caller()) << "wait() threw without taking the lock again";
    EXPECT_EQ(in_scope(kShort, [&] { cv.wait(lk, [] { return false; }); }), kThis);
    EXPECT_TRUE(m.owned_by_caller());
    EXPECT_EQ(in_scope(kShort, [&] { (void)cv.wait_for(lk, kLong); }), kThis)
        << "own timeout later";
    EXPECT_TRUE(m.owned_by_caller());
    std::cv_status st = std::cv_status::no_timeout;
    EXPECT_EQ(in_scope(kLong, [&] { st = cv.wait_for(lk, 1ms); }), kReturned);
    EXPECT_EQ(st, std::cv_status::timeout);
    bool pred_result = true;
    EXPECT_EQ(in_scope(kLong, [&] { pred_result = cv.wait_for(lk, 1ms, [] { return false; }); }),
              kReturned);
    EXPECT_FALSE(pred_result);
    EXPECT_TRUE(m.owned_by_caller());
  });
}

// The scope ends while another tasklet holds the mutex: wait() must still take it again before
// it throws (the relock ignores the scope), and throw this scope's timeout_error. The holder takes
// the mutex once wait() has released it and keeps it until after the waiter's deadline. Should
// the waiter get the mutex back first (a machine so slow that the holder had not taken it by the
// deadline), the round proves nothing and is repeated with a longer scope.
TEST_P(TimeoutScope, ConditionVariableRelocksAMutexHeldPastTheDeadline) {
  auto& s = sched();
  in_tasklet_and_thread(s, [&s] {
    bool proved = false;
    for (int attempt = 0; attempt < 6 && !proved; ++attempt) {
      sl::mutex m;
      sl::condition_variable cv;
      std::atomic<std::int64_t> deadline_ns{0};
      std::atomic<bool> parked{false}, holder_took{false}, holder_done{false};
      auto holder = s.spawn([&] {
        while (!parked.load()) this_tasklet::yield();
        std::lock_guard<sl::mutex> g(m);  // the waiter releases it inside wait()
        holder_took = true;
        this_tasklet::sleep_until(
            clock_type::time_point(std::chrono::nanoseconds(deadline_ns.load())) + 10ms);
        holder_done = true;
      });
      std::unique_lock<sl::mutex> lk(m);
      std::string r;
      {
        timeout_scope sc(kShort * (1 << attempt));
        deadline_ns = sc.deadline().time_since_epoch().count();
        r = run_in(sc, [&] {
          parked = true;  // m is released inside wait(), after the waiter is queued
          cv.wait(lk);
        });
      }
      EXPECT_EQ(r, kThis);
      EXPECT_TRUE(m.owned_by_caller()) << "wait() threw without the lock";
      // We hold m: if the holder took it meanwhile, it has released it again — after its sleep.
      if (holder_took.load()) {
        proved = true;
        EXPECT_TRUE(holder_done.load()) << "wait() returned while the other tasklet held the mutex";
      }
      lk.unlock();
      holder.join();
    }
    EXPECT_TRUE(proved) << "the holder never took the mutex before the waiter's deadline";
  });
}

TEST_P(TimeoutScope, SemaphoreAcquireThrowsAndTakesNoPermit) {
  in_tasklet_and_thread(sched(), [] {
    sl::counting_semaphore sem(0);
    EXPECT_EQ(in_scope(kShort, [&] { sem.acquire(); }), kThis);
    EXPECT_EQ(in_scope(kShort, [&] { (void)sem.try_acquire_for(kLong); }), kThis);
    EXPECT_EQ(in_scope(kLong, [&] { EXPECT_FALSE(sem.try_acquire_for(1ms)); }), kReturned);
    sem.release(1);
    EXPECT_EQ(sem.value(), 1) << "a timed-out acquirer took the permit";
    EXPECT_TRUE(sem.try_acquire());
    EXPECT_EQ(sem.value(), 0);
  });
}

TEST_P(TimeoutScope, EventLatchWaitGroupThrow) {
  in_tasklet_and_thread(sched(), [] {
    sl::event ev;
    EXPECT_EQ(in_scope(kShort, [&] { ev.wait(); }), kThis);
    EXPECT_EQ(in_scope(kShort, [&] { (void)ev.wait_for(kLong); }), kThis);
    EXPECT_EQ(in_scope(kLong, [&] { EXPECT_FALSE(ev.wait_for(1ms)); }), kReturned);
    ev.set();
    ev.wait();

    sl::latch l(1);
    EXPECT_EQ(in_scope(kShort, [&] { l.wait(); }), kThis);
    EXPECT_EQ(in_scope(kShort, [&] { (void)l.wait_for(kLong); }), kThis);
    EXPECT_EQ(in_scope(kLong, [&] { EXPECT_FALSE(l.wait_for(1ms)); }), kReturned);
    EXPECT_FALSE(l.try_wait());
    l.count_down();
    l.wait();

    sl::wait_group wg;
    wg.add(1);
    EXPECT_EQ(in_scope(kShort, [&] { wg.wait(); }), kThis);
    EXPECT_EQ(in_scope(kShort, [&] { (void)wg.wait_for(kLong); }), kThis);
    EXPECT_EQ(in_scope(kLong, [&] { EXPECT_FALSE(wg.wait_for(1ms)); }), kReturned);
    EXPECT_EQ(wg.count(), 1);
    wg.done();
    wg.wait();
  });
}

// An arrival is never undone: the timed-out waiter has arrived, so one more arrival completes
// the phase.
TEST_P(TimeoutScope, BarrierWaitThrowsAndTheArrivalStands) {
  in_tasklet_and_thread(sched(), [] {
    int phases = 0;
    sl::barrier b(2, [&] { ++phases; });
    EXPECT_EQ(in_scope(kShort, [&] { b.arrive_and_wait(); }), kThis);
    EXPECT_EQ(phases, 0);
    b.wait(b.arrive());  // the second arrival: the phase completes
    EXPECT_EQ(phases, 1);
    EXPECT_EQ(in_scope(kShort, [&] { (void)b.arrive_and_wait_for(kLong); }), kThis);
    b.wait(b.arrive());
    EXPECT_EQ(phases, 2);
    EXPECT_EQ(in_scope(kLong, [&] { EXPECT_FALSE(b.arrive_and_wait_for(1ms)); }), kReturned);
    b.wait(b.arrive());
    EXPECT_EQ(phases, 3);
  });
}

TEST_P(TimeoutScope, FutureGetThrowsAndTheFutureStaysValid) {
  in_tasklet_and_thread(sched(), [] {
    sl::promise<int> p;
    auto f = p.get_future();
    EXPECT_EQ(in_scope(kShort, [&] { f.get(); }), kThis);
    EXPECT_TRUE(f.valid()) << "a get() that timed out consumed the future";
    EXPECT_EQ(in_scope(kShort, [&] { f.wait(); }), kThis);
    EXPECT_EQ(in_scope(kShort, [&] { (void)f.wait_for(kLong); }), kThis);
    std::future_status st = std::future_status::ready;
    EXPECT_EQ(in_scope(kLong, [&] { st = f.wait_for(1ms); }), kReturned);
    EXPECT_EQ(st, std::future_status::timeout);
    p.set_value(3);
    EXPECT_EQ(f.get(), 3);
  });
}

TEST_P(TimeoutScope, WhenAnyWhenAllThrow) {
  auto& s = sched();
  in_tasklet_and_thread(s, [&s] {
    sl::promise<int> p;
    auto f = p.get_future();
    sl::event go;
    auto t = s.spawn([&go] { go.wait(); });
    EXPECT_EQ(in_scope(kShort, [&] { sl::when_any(f, t); }), kThis);
    EXPECT_EQ(in_scope(kShort, [&] { sl::when_all(f, t); }), kThis);
    EXPECT_EQ(in_scope(kShort, [&] { (void)sl::when_any_for(kLong, f, t); }), kThis);
    EXPECT_EQ(in_scope(kShort, [&] { (void)sl::when_all_for(kLong, f, t); }), kThis);
    EXPECT_EQ(in_scope(kLong, [&] { EXPECT_FALSE(sl::when_any_for(1ms, f, t).has_value()); }),
              kReturned);
    EXPECT_EQ(in_scope(kLong, [&] { EXPECT_FALSE(sl::when_all_for(1ms, f, t)); }), kReturned);
    std::vector<tasklet<void>> ts{t};
    EXPECT_EQ(in_scope(kShort, [&] { sl::when_any(ts); }), kThis);
    EXPECT_EQ(in_scope(kShort, [&] { sl::when_all(ts); }), kThis);
    go.set();
    EXPECT_EQ(sl::when_any(f, t), 1u);
    p.set_value(1);
    sl::when_all(f, t);
    EXPECT_EQ(f.get(), 1);
  });
}

TEST_P(TimeoutScope, TaskGroupWaitThrowsAndTheGroupCanBeWaitedAgain) {
  auto& s = sched();
  in_tasklet_and_thread(s, [&s] {
    sl::event go;
    std::atomic<int> ran{0};
    sl::task_group g(s);
    for (int i = 0; i < 3; ++i)
      g.run([&] {
        go.wait();
        ran.fetch_add(1);
      });
    EXPECT_EQ(in_scope(kShort, [&] { g.wait(); }), kThis);
    EXPECT_EQ(in_scope(kShort, [&] { (void)g.wait_for(kLong); }), kThis) << "own timeout later";
    EXPECT_EQ(in_scope(kLong, [&] { EXPECT_FALSE(g.wait_for(1ms)); }), kReturned)
        << "own timeout earlier";
    EXPECT_FALSE(g.cancelled()) << "a timed-out wait() cancelled the group";
    EXPECT_EQ(ran.load(), 0);
    go.set();
    g.wait();
    EXPECT_EQ(ran.load(), 3);
  });
}

// ---- after the deadline --------------------------------------------------------------------

// A call that does not have to wait completes normally, deadline or not.
TEST_P(TimeoutScope, CallsThatNeedNotWaitCompleteAfterTheDeadline) {
  auto& s = sched();
  in_tasklet_and_thread(s, [&s] {
    channel<int> buf(2);
    buf.send(1);
    buf.send(2);
    channel<int> rv;
    sl::mutex m;
    sl::counting_semaphore sem(1);
    sl::event ev(true);
    sl::latch l(0);
    sl::wait_group wg;
    sl::promise<int> p;
    auto f = p.get_future();
    p.set_value(4);
    auto ended = s.spawn([] { return 6; });
    ended.join();
    EXPECT_EQ(in_expired_scope([&] {
                EXPECT_EQ(buf.try_receive(), std::optional<int>(1));
                EXPECT_EQ(buf.receive(), 2) << "a buffered value";
                int x = 3;
                EXPECT_TRUE(buf.try_send(x));
                buf.send(5);  // room in the buffer
                EXPECT_EQ(sl::select(sl::on_receive(buf, [](int v) { EXPECT_EQ(v, 3); }),
                                     sl::on_receive(rv, [](int) {})),
                          0u);
                m.lock();  // free
                m.unlock();
                sem.acquire();
                ev.wait();
                l.wait();
                wg.wait();
                EXPECT_EQ(f.get(), 4);
                EXPECT_EQ(ended.join(), 6);
                EXPECT_EQ(sl::when_any(ended), 0u);
                this_tasklet::sleep_until(clock_type::now() - 1s);
              }),
              kReturned);
    EXPECT_EQ(buf.receive(), 5);
    EXPECT_EQ(sem.value(), 0);
  });
}

// sleep_for(0) has nothing to wait for: in an expired scope it returns, like any call that need
// not wait (timeout.hpp: "A call that does not have to wait completes normally, deadline or
// not"; sleep_until() of a past time already does, when that time is before the scope's deadline).
TEST_P(TimeoutScope, AZeroSleepInAnExpiredScopeReturns) {
  in_tasklet_and_thread(sched(), [] {
    EXPECT_EQ(in_expired_scope([] { this_tasklet::sleep_for(0ms); }), kReturned);
  });
}

// A call that would have to wait, made after the deadline has passed, throws (at once; the
// duration is not asserted).
TEST_P(TimeoutScope, BlockingCallsAfterTheDeadlineThrow) {
  auto& s = sched();
  in_tasklet_and_thread(s, [&s] {
    channel<int> rv, full(1);
    full.send(1);
    held_mutex h(s);
    sl::mutex m2;
    sl::condition_variable cv;
    sl::counting_semaphore sem(0);
    sl::event ev;
    sl::latch l(1);
    sl::wait_group wg;
    wg.add(1);
    sl::barrier b(2);
    sl::promise<int> p;
    auto f = p.get_future();
    sl::event go;
    auto t = s.spawn([&go] { go.wait(); });
    EXPECT_EQ(in_expired_scope([&] { this_tasklet::sleep_for(kLong); }), kThis);
    EXPECT_EQ(in_expired_scope([&] { rv.receive(); }), kThis);
    EXPECT_EQ(in_expired_scope([&] { rv.send(1); }), kThis);
    EXPECT_EQ(in_expired_scope([&] { full.send(2); }), kThis);
    EXPECT_EQ(in_expired_scope([&] { sl::select(sl::on_receive(rv, [](int) {})); }), kThis);
    EXPECT_EQ(in_expired_scope([&] { h.m.lock(); }), kThis);
    EXPECT_EQ(in_expired_scope([&] {
                std::unique_lock<sl::mutex> lk(m2);
                cv.wait(lk);
              }),
              kThis);
    EXPECT_EQ(in_expired_scope([&] { sem.acquire(); }), kThis);
    EXPECT_EQ(in_expired_scope([&] { ev.wait(); }), kThis);
    EXPECT_EQ(in_expired_scope([&] { l.wait(); }), kThis);
    EXPECT_EQ(in_expired_scope([&] { wg.wait(); }), kThis);
    EXPECT_EQ(in_expired_scope([&] { b.arrive_and_wait(); }), kThis);
    EXPECT_EQ(in_expired_scope([&] { f.get(); }), kThis);
    EXPECT_EQ(in_expired_scope([&] { t.join(); }), kThis);
    EXPECT_EQ(in_expired_scope([&] { sl::when_any(f, t); }), kThis);
    // Nothing was taken.
    EXPECT_EQ(rv.balance(), 0);
    EXPECT_EQ(full.receive(), 1);
    EXPECT_FALSE(full.try_receive().has_value());
    EXPECT_FALSE(m2.owned_by_caller());
    EXPECT_TRUE(m2.try_lock());
    m2.unlock();
    sem.release();
    EXPECT_EQ(sem.value(), 1);
    h.let_go();
    EXPECT_TRUE(h.m.try_lock());
    h.m.unlock();
    go.set();
    t.join();
    b.wait(b.arrive());  // the expired arrive_and_wait() did arrive
  });
}

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
    std::atomic<bool> child_had_scope{true};
    {
      timeout_scope sc(kShort);
      child = s.spawn([ch, &child_had_scope]() mutable {
        child_had_scope = scope_top() != nullptr;
        this_tasklet::sleep_for(2 * kShort);  // across the parent's deadline
        return ch.receive();
      });
      EXPECT_EQ(run_in(sc, [] { this_tasklet::sleep_for(kLong); }), kThis);
      EXPECT_TRUE(child.alive());
    }
    EXPECT_FALSE(child_had_scope.load());
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
