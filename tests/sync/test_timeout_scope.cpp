// SPDX-License-Identifier: Apache-2.0
// test_timeout_scope.cpp — stackless::timeout_scope, timeout_error and with_timeout
// (runtime/include/stackless/runtime/timeout.hpp), through every blocking call of the library:
//  - each blocking call inside a scope throws timeout_error naming that scope when the deadline
//    passes while it waits (sleep, join, channel send/receive, select, mutex, condition_variable,
//    semaphore, event, latch, wait_group, barrier, future, when_any/when_all, task_group);
//  - afterwards nothing was taken and nothing is lost: a receive that timed out does not eat a
//    later value, a lock that timed out is not held, a permit is not swallowed;
//  - a call whose own timeout is earlier returns its normal timeout result; one whose own timeout
//    is later throws; a call that need not wait completes after the deadline; a call that would
//    wait after the deadline throws.
// Nesting, whose scope, kill and the races of deadlines against notifies are in
// test_timeout_scope_rules.cpp; the helpers both use in test_timeout_scope_fixture.hpp.
// Every test runs over workers ∈ {1, 2, 4}, most in a tasklet and on a plain thread. No test
// asserts how long anything took; "it did not throw before the deadline" is checked (safe).
#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "test_timeout_scope_fixture.hpp"

namespace {

using namespace stackless_test;
using namespace stackless_test::timeout_scope_test;

class TimeoutScope : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(TimeoutScope);

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

}  // namespace
