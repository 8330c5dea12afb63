// SPDX-License-Identifier: Apache-2.0
// test_cancel.cpp — std::stop_token cancellation of blocking calls (operation_cancelled,
// runtime/include/stackless/runtime/timeout.hpp): sleep_for / sleep_until(…, st),
// mutex::lock(st), counting_semaphore::acquire(st), event::wait(st), latch::wait(st),
// wait_group::wait(st), future::wait(st).
//  - a stop requested before a call that would wait: it throws at once; before a call that need
//    not wait: the call completes;
//  - a stop requested while the caller is parked — by another tasklet, a tasklet of another
//    scheduler (another worker thread), a plain thread — unblocks it; nothing is taken (no
//    permit, no lock);
//  - a token with no stop_source (a default std::stop_token) behaves like no token;
//  - condition_variable's std forms (wait(lock, st, pred), wait_for / wait_until with a token)
//    do not throw: they return pred() (false) on a stop, with the lock held;
//  - kill() of a tasklet parked with a token still gives tasklet_exit; a timeout_scope and a
//    token on one call each do their own thing.
// Stop against notify, many rounds, is in test_cancel_race.cpp; the helpers both use in
// test_cancel_fixture.hpp.
// Every test runs over workers ∈ {1, 2, 4}. No test asserts how long anything took.
#include <atomic>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>

#include "test_cancel_fixture.hpp"

namespace {

using namespace stackless_test;
using namespace stackless_test::cancel_test;

class Cancel : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(Cancel);

// ---- the calls, with their resources made unavailable ---------------------------------------

enum class call { sleep, mutex, semaphore, event, latch, wait_group, future };
constexpr call all_calls[] = {call::sleep, call::mutex,      call::semaphore, call::event,
                              call::latch, call::wait_group, call::future};

const char* name_of(call c) {
  switch (c) {
    case call::sleep:
      return "sleep_for";
    case call::mutex:
      return "mutex::lock";
    case call::semaphore:
      return "counting_semaphore::acquire";
    case call::event:
      return "event::wait";
    case call::latch:
      return "latch::wait";
    case call::wait_group:
      return "wait_group::wait";
    case call::future:
      return "future::wait";
  }
  return "?";
}

/// blockers holds one of each resource, all unavailable: a call on any of them would wait. The
/// mutex is held by a holder tasklet until release_all().
struct blockers {
  sl::scheduler& s;
  sl::mutex m;
  sl::event held, let_go;
  tasklet<void> holder;
  sl::counting_semaphore sem{0};
  sl::event ev;
  sl::latch l{1};
  sl::wait_group wg;
  sl::promise<int> p;
  sl::future<int> f = p.get_future();
  bool released = false;

  explicit blockers(sl::scheduler& sched) : s(sched) {
    wg.add(1);
    holder = s.spawn([this] {
      std::lock_guard<sl::mutex> g(m);
      held.set();
      let_go.wait();
    });
    held.wait();
  }
  ~blockers() {
    if (!released) release_all();
  }

  /// wait() makes call c with token st.
  void wait(call c, std::stop_token st) {
    switch (c) {
      case call::sleep:
        this_tasklet::sleep_for(std::chrono::hours(1), st);
        break;
      case call::mutex:
        m.lock(st);
        break;  // (the caller unlocks if it ever returns)
      case call::semaphore:
        sem.acquire(st);
        break;
      case call::event:
        ev.wait(st);
        break;
      case call::latch:
        l.wait(st);
        break;
      case call::wait_group:
        wg.wait(st);
        break;
      case call::future:
        f.wait(st);
        break;
    }
  }

  /// expect_intact(): nothing was taken; every resource still unavailable.
  void expect_intact(const std::string& at) {
    EXPECT_FALSE(m.owned_by_caller()) << at;
    EXPECT_TRUE(holder.alive()) << at;
    EXPECT_EQ(sem.value(), 0) << at;
    EXPECT_FALSE(ev.is_set()) << at;
    EXPECT_FALSE(l.try_wait()) << at;
    EXPECT_EQ(wg.count(), 1) << at;
    EXPECT_FALSE(f.is_ready()) << at;
  }

  /// release_all() makes everything available again and checks that a cancelled waiter took
  /// nothing: the mutex is free after the holder lets go, a released permit is there.
  void release_all() {
    released = true;
    let_go.set();
    holder.join();
    const bool free = m.try_lock();
    EXPECT_TRUE(free) << "the mutex was handed to a waiter that had been cancelled";
    if (free) m.unlock();
    sem.release(1);
    EXPECT_EQ(sem.value(), 1) << "a permit went to a waiter that had been cancelled";
    EXPECT_TRUE(sem.try_acquire());
    ev.set();
    l.count_down();
    wg.done();
    p.set_value(1);
  }
};

// ---- a stop requested before the call ---------------------------------------------------------

TEST_P(Cancel, AStopRequestedBeforeACallThatWouldWaitThrowsAtOnce) {
  auto& s = sched();
  in_tasklet_and_thread(s, [&s] {
    blockers b(s);
    std::stop_source src;
    src.request_stop();
    for (call c : all_calls)
      EXPECT_EQ(outcome_of([&] { b.wait(c, src.get_token()); }), kCancelled) << name_of(c);
    EXPECT_EQ(outcome_of([&] {
                this_tasklet::sleep_until(clock_type::now() + std::chrono::hours(1),
                                          src.get_token());
              }),
              kCancelled);
    b.expect_intact("after the cancelled calls");
    b.release_all();
  });
}

// A stop requested before a call that does not have to wait: the call completes (the token only
// ends waits).
TEST_P(Cancel, AStopRequestedBeforeACallThatNeedNotWaitLetsItComplete) {
  in_tasklet_and_thread(sched(), [] {
    std::stop_source src;
    src.request_stop();
    const auto st = src.get_token();
    sl::mutex m;
    sl::counting_semaphore sem(1);
    sl::event ev(true);
    sl::latch l(0);
    sl::wait_group wg;
    sl::promise<int> p;
    auto f = p.get_future();
    p.set_value(2);
    EXPECT_EQ(outcome_of([&] {
                m.lock(st);  // free
                EXPECT_TRUE(m.owned_by_caller());
                m.unlock();
                sem.acquire(st);
                ev.wait(st);
                l.wait(st);
                wg.wait(st);
                f.wait(st);
                this_tasklet::sleep_for(0ms, st);
                this_tasklet::sleep_until(clock_type::now() - 1s, st);
              }),
              kReturned);
    EXPECT_EQ(sem.value(), 0) << "acquire(st) took its permit";
    EXPECT_EQ(f.get(), 2);
  });
}

// ---- a stop requested while parked ------------------------------------------------------------

enum class waiter_kind { tasklet, thread };
enum class stopper_kind { tasklet, other_scheduler, thread };

const char* name_of(stopper_kind k) {
  switch (k) {
    case stopper_kind::tasklet:
      return "a tasklet";
    case stopper_kind::other_scheduler:
      return "a tasklet of another scheduler";
    case stopper_kind::thread:
      return "a plain thread";
  }
  return "?";
}

// Each call, parked in a tasklet or a plain thread, is unblocked by a stop requested from a
// tasklet (of this scheduler: with several workers, maybe on another one), a tasklet of a second
// scheduler (surely another worker thread), or a plain thread. Nothing was taken.
TEST_P(Cancel, AStopWhileParkedUnblocks) {
  auto& s = sched();
  sl::options o2;
  o2.workers = 1;
  o2.name = "other";
  o2.deadlock_grace = 5s;
  sl::scheduler s2(o2);
  for (waiter_kind wk : {waiter_kind::tasklet, waiter_kind::thread}) {
    for (stopper_kind sk :
         {stopper_kind::tasklet, stopper_kind::other_scheduler, stopper_kind::thread}) {
      for (call c : all_calls) {
        const std::string at =
            std::string(name_of(c)) +
            (wk == waiter_kind::tasklet ? " in a tasklet" : " on a plain thread") +
            ", stopped by " + name_of(sk);
        blockers b(s);
        std::stop_source src;
        std::string result;
        std::atomic<bool> started{false};
        auto body = [&] {
          started = true;
          result = outcome_of([&] { b.wait(c, src.get_token()); });
        };
        tasklet<void> wt;
        std::thread th;
        if (wk == waiter_kind::tasklet) {
          wt = s.spawn(body);
          ASSERT_TRUE(wait_until([&] { return wt.blocked(); })) << at;
        } else {
          th = std::thread(body);
          // A plain thread's park cannot be observed: give it time to get there. (Coverage only:
          // a stop that comes first must cancel just the same.)
          ASSERT_TRUE(wait_until([&] { return started.load(); })) << at;
          std::this_thread::sleep_for(5ms);
        }
        switch (sk) {
          case stopper_kind::tasklet:
            s.spawn([&] { src.request_stop(); }).join();
            break;
          case stopper_kind::other_scheduler:
            s2.block_on([&] { src.request_stop(); });
            break;
          case stopper_kind::thread:
            std::thread([&] { src.request_stop(); }).join();
            break;
        }
        if (wt) wt.join();
        if (th.joinable()) th.join();
        EXPECT_EQ(result, kCancelled) << at;
        b.expect_intact(at);
      }
    }
  }
  expect_clean(s2);
}

// ---- tokens that can never stop ---------------------------------------------------------------

// A default std::stop_token (no stop_source), or one whose source is gone without a stop, can
// never be stopped: the call behaves as without a token — it waits until notified.
TEST_P(Cancel, ATokenThatCannotStopBehavesLikeNone) {
  auto& s = sched();
  std::stop_token orphan;
  {
    std::stop_source gone;
    orphan = gone.get_token();
  }
  ASSERT_FALSE(orphan.stop_possible());
  for (const std::stop_token& st : {std::stop_token{}, orphan}) {
    in_tasklet_and_thread(s, [&s, st] {
      blockers b(s);
      // Each call parks; another tasklet releases its resource after a moment.
      for (call c : all_calls) {
        if (c == call::sleep) {
          const auto until = clock_type::now() + 2ms;
          this_tasklet::sleep_until(until, st);
          EXPECT_GE(clock_type::now(), until);
          continue;
        }
        if (c == call::mutex) {
          // The holder lets go after a moment.
          auto opener = s.spawn([&b] {
            this_tasklet::sleep_for(2ms);
            b.let_go.set();
          });
          EXPECT_EQ(outcome_of([&] { b.wait(c, st); }), kReturned) << name_of(c);
          EXPECT_TRUE(b.m.owned_by_caller());
          b.m.unlock();
          opener.join();
          b.holder.join();
          continue;
        }
        auto opener = s.spawn([&b, c] {
          this_tasklet::sleep_for(2ms);
          switch (c) {
            case call::semaphore:
              b.sem.release(1);
              break;
            case call::event:
              b.ev.set();
              break;
            case call::latch:
              b.l.count_down();
              break;
            case call::wait_group:
              b.wg.done();
              break;
            case call::future:
              b.p.set_value(3);
              break;
            default:
              break;
          }
        });
        EXPECT_EQ(outcome_of([&] { b.wait(c, st); }), kReturned) << name_of(c);
        opener.join();
      }
      EXPECT_EQ(b.sem.value(), 0) << "acquire() took the released permit";
      // Everything is open now; release_all() must not release again.
      b.released = true;
    });
  }
}

// ---- condition_variable's std forms -------------------------------------------------------------

// wait(lock, st, pred) and the timed forms return pred() — false — on a stop, never throw, and
// hold the lock again; a stop before the call returns at once; pred() true wins.
TEST_P(Cancel, ConditionVariableStdFormsReturnFalseOnStop) {
  auto& s = sched();
  in_tasklet_and_thread(s, [&s] {
    sl::mutex m;
    sl::condition_variable cv;
    bool flag = false;  // guarded by m
    std::unique_lock<sl::mutex> lk(m);
    {  // a stop requested before the call
      std::stop_source src;
      src.request_stop();
      bool r = true;
      EXPECT_EQ(outcome_of([&] { r = cv.wait(lk, src.get_token(), [&] { return flag; }); }),
                kReturned);
      EXPECT_FALSE(r);
      EXPECT_TRUE(lk.owns_lock());
      flag = true;
      EXPECT_TRUE(cv.wait(lk, src.get_token(), [&] { return flag; })) << "pred() true wins";
      flag = false;
      EXPECT_FALSE(cv.wait_for(lk, src.get_token(), std::chrono::hours(1), [&] { return flag; }));
      EXPECT_FALSE(cv.wait_until(lk, src.get_token(), clock_type::now() + std::chrono::hours(1),
                                 [&] { return flag; }));
    }
    for (int form = 0; form < 3; ++form) {  // a stop while parked, from another tasklet
      std::stop_source src;
      auto stopper = s.spawn([&] {
        this_tasklet::sleep_for(3ms);
        src.request_stop();
      });
      bool r = true;
      const std::string out = outcome_of([&] {
        const auto pred = [&] { return flag; };
        if (form == 0)
          r = cv.wait(lk, src.get_token(), pred);
        else if (form == 1)
          r = cv.wait_for(lk, src.get_token(), std::chrono::hours(1), pred);
        else
          r = cv.wait_until(lk, src.get_token(), clock_type::now() + std::chrono::hours(1), pred);
      });
      EXPECT_EQ(out, kReturned) << "form " << form << ": the std forms do not throw";
      EXPECT_FALSE(r) << "form " << form;
      EXPECT_TRUE(lk.owns_lock());
      EXPECT_TRUE(m.owned_by_caller()) << "form " << form << ": returned without the lock";
      lk.unlock();  // the stopper needs no lock, but let others in between
      stopper.join();
      lk.lock();
    }
    {  // notified with pred() true: true
      std::stop_source src;
      auto notifier = s.spawn([&] {
        this_tasklet::sleep_for(2ms);
        std::lock_guard<sl::mutex> g(m);
        flag = true;
        cv.notify_all();
      });
      EXPECT_TRUE(cv.wait(lk, src.get_token(), [&] { return flag; }));
      lk.unlock();
      notifier.join();
      lk.lock();
      flag = false;
    }
    {  // its own timeout: false, no stop
      std::stop_source src;
      EXPECT_FALSE(cv.wait_for(lk, src.get_token(), 2ms, [&] { return flag; }));
      EXPECT_FALSE(src.stop_requested());
      EXPECT_TRUE(m.owned_by_caller());
    }
  });
}

// ---- with kill, with a timeout_scope ------------------------------------------------------------

TEST_P(Cancel, AKillWhileParkedWithATokenGivesTaskletExit) {
  auto& s = sched();
  for (call c : all_calls) {
    blockers b(s);
    std::stop_source src;
    std::atomic<bool> exit_seen{false}, cancelled_seen{false};
    auto t = s.spawn([&] {
      try {
        b.wait(c, src.get_token());
      } catch (const sl::tasklet_exit&) {
        exit_seen = true;
        throw;
      } catch (const operation_cancelled&) {
        cancelled_seen = true;
      }
    });
    ASSERT_TRUE(wait_until([&] { return t.blocked(); })) << name_of(c);
    t.kill();
    EXPECT_TRUE(exit_seen.load()) << name_of(c);
    EXPECT_FALSE(cancelled_seen.load()) << name_of(c);
    src.request_stop();  // after the call ended: nothing left to cancel
    b.expect_intact(name_of(c));
  }
}

// A token and a timeout_scope on one call: the scope's deadline gives timeout_error, the stop
// gives operation_cancelled.
TEST_P(Cancel, ATokenInsideATimeoutScope) {
  auto& s = sched();
  in_tasklet_and_thread(s, [&s] {
    for (call c : all_calls) {
      blockers b(s);
      std::stop_source src;
      std::string r;
      {
        sl::timeout_scope sc(10ms);
        try {
          b.wait(c, src.get_token());
          r = kReturned;
        } catch (const sl::timeout_error& e) {
          r = e.from(sc) ? "timeout_error" : "timeout_error of another scope";
        } catch (const operation_cancelled&) {
          r = kCancelled;
        }
      }
      EXPECT_EQ(r, "timeout_error") << name_of(c);
      auto stopper = s.spawn([&] {
        this_tasklet::sleep_for(2ms);
        src.request_stop();
      });
      {
        sl::timeout_scope sc(std::chrono::hours(1));
        EXPECT_EQ(outcome_of([&] { b.wait(c, src.get_token()); }), kCancelled) << name_of(c);
      }
      stopper.join();
      b.expect_intact(name_of(c));
    }
  });
}

}  // namespace
