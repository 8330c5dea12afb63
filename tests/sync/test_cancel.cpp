// test_cancel.cpp — std::stop_token cancellation of blocking calls (operation_cancelled,
// runtime/include/stackless/runtime/timeout.hpp): sleep_for / sleep_until(…, st),
// mutex::lock(st), counting_semaphore::acquire(st), event::wait(st), latch::wait(st),
// wait_group::wait(st), future::wait(st).
//  - a stop requested before a call that would wait: it throws at once; before a call that need
//    not wait: the call completes;
//  - a stop requested while the caller is parked — by another tasklet, a tasklet of another
//    scheduler (another worker thread), a plain thread — unblocks it; nothing is taken (no
//    permit, no lock);
//  - stop against notify, many rounds: exactly one outcome each round (the call succeeded and
//    the resource is held / consumed, or it threw and the resource is intact); the final
//    accounting is exact;
//  - a token with no stop_source (a default std::stop_token) behaves like no token;
//  - condition_variable's std forms (wait(lock, st, pred), wait_for / wait_until with a token)
//    do not throw: they return pred() (false) on a stop, with the lock held;
//  - kill() of a tasklet parked with a token still gives tasklet_exit; a timeout_scope and a
//    token on one call each do their own thing.
// Every test runs over workers ∈ {1, 2, 4}. No test asserts how long anything took.
#include <memory>
#include <mutex>
#include <random>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "channel_fixture.hpp"

namespace {

using namespace stackless_test;
using sl::operation_cancelled;
using clock_type = std::chrono::steady_clock;

class Cancel : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(Cancel);

const std::string kCancelled = "operation_cancelled";
const std::string kReturned = "returned";

/// outcome_of() runs f and tells how it ended: kReturned, kCancelled, or what else.
template <class F>
std::string outcome_of(F&& f) {
  try {
    f();
  } catch (const operation_cancelled&) {
    return kCancelled;
  } catch (const std::exception& e) {
    return std::string("exception: ") + e.what();
  }
  return kReturned;
}

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
