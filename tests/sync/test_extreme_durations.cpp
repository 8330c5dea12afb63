// SPDX-License-Identifier: Apache-2.0
// test_extreme_durations.cpp — every timed call of the library, with every extreme duration and
// time point (issue 13, §1.2). A duration too large for the clock (hours::max(),
// nanoseconds::max(), time_point::max() of the steady and the system clock) waits forever: the
// call has not returned while the test looks, and kill() ends it. A negative, zero, minimal or
// past one (hours::min(), nanoseconds::min(), -1 ns, 0, 1 ns, time_point::min(), the epoch) times
// out at once, with the call's timeout result. Before the fix, sleep_for(hours::max()),
// join_for(nanoseconds::max()), task_group::wait_for(nanoseconds::max()) and the time_point forms
// of sleep and timeout_scope returned at once or overflowed a signed integer (undefined
// behaviour). No test asserts how long anything took: "has not returned" is checked once, after
// a short pause, of calls that must never return by themselves.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "channel_fixture.hpp"
#include "stackless/sync/condition_variable.hpp"
#include "stackless/sync/event.hpp"
#include "stackless/sync/future.hpp"
#include "stackless/sync/mutex.hpp"
#include "stackless/sync/semaphore.hpp"
#include "stackless/sync/task_group.hpp"

namespace {

using namespace stackless_test;
using namespace stackless;
using std::chrono::hours;
using std::chrono::nanoseconds;
using steady_tp = std::chrono::steady_clock::time_point;
using system_tp = std::chrono::system_clock::time_point;

// when_t is one extreme: a duration (for the _for form) or a time point (for the _until form).
using when_t = std::variant<hours, nanoseconds, steady_tp, system_tp>;

struct extreme {
  const char* name;
  when_t when;
  bool forever;  // the call must wait until something else ends it
};

std::vector<extreme> extremes() {
  return {
      {"hours::max()", hours::max(), true},
      {"nanoseconds::max()", nanoseconds::max(), true},
      {"steady time_point::max()", steady_tp::max(), true},
      {"system time_point::max()", system_tp::max(), true},
      {"hours::min()", hours::min(), false},
      {"nanoseconds::min()", nanoseconds::min(), false},
      {"-1 ns", nanoseconds(-1), false},
      {"0 ns", nanoseconds(0), false},
      {"1 ns", nanoseconds(1), false},
      {"steady time_point::min()", steady_tp::min(), false},
      {"system time_point::min()", system_tp::min(), false},
      {"the steady clock's epoch", steady_tp(), false},
  };
}

// timed(w, for_, until_): calls for_(duration) or until_(time point), whichever w holds.
template <class For, class Until>
bool timed(const when_t& w, For for_, Until until_) {
  return std::visit(
      [&](auto x) -> bool {
        if constexpr (std::is_same_v<decltype(x), hours> ||
                      std::is_same_v<decltype(x), nanoseconds>)
          return for_(x);
        else
          return until_(x);
      },
      w);
}

// A timed call: setup() runs on the test's thread and returns the waiting call, which runs in a
// tasklet (or a plain thread) and returns true when it ended with its timeout result. What setup()
// leaves to undo goes into `cleanup`, run on the test's thread after the waiter ended.
struct env {
  scheduler& s;
  std::vector<std::function<void()>> cleanup;
  std::vector<tasklet<void>> helpers;  // killed after the waiter ended
};
using waiter_fn = std::function<bool(const when_t&)>;
struct timed_call {
  const char* name;
  std::function<waiter_fn(env&)> setup;
  bool tasklet_only = false;  // needs a tasklet to wait (join of a tasklet, a sleep's kill)
};

std::vector<timed_call> timed_calls() {
  std::vector<timed_call> v;
  v.push_back({"this_tasklet::sleep_for/until", [](env&) -> waiter_fn {
                 return [](const when_t& w) {
                   return timed(
                       w,
                       [](auto d) {
                         this_tasklet::sleep_for(d);
                         return true;
                       },
                       [](auto tp) {
                         if constexpr (std::is_same_v<decltype(tp), steady_tp>) {
                           this_tasklet::sleep_until(tp);
                         } else {  // sleep_until takes the steady clock only
                           this_tasklet::sleep_for(tp == system_tp::max() ? hours::max()
                                                                          : hours::min());
                         }
                         return true;
                       });
                 };
               }});
  v.push_back({"tasklet::join_for/until", [](env& e) -> waiter_fn {
                 tasklet<void> t = e.s.spawn([] { park_forever(); });
                 e.helpers.push_back(t);
                 return [t](const when_t& w) {
                   tasklet<void> u = t;
                   return !timed(
                       w, [&](auto d) { return u.join_for(d); },
                       [&](auto tp) { return u.join_until(tp); });
                 };
               }});
  v.push_back({"task_group::wait_for/until", [](env& e) -> waiter_fn {
                 auto g = std::make_shared<task_group>(e.s);
                 g->run([] { park_forever(); });
                 e.cleanup.push_back([g] {
                   g->cancel();
                   g->wait();
                 });
                 return [g](const when_t& w) {
                   return !timed(
                       w, [&](auto d) { return g->wait_for(d); },
                       [&](auto tp) { return g->wait_until(tp); });
                 };
               }});
  v.push_back({"channel::receive_for/until", [](env&) -> waiter_fn {
                 channel<int> ch;
                 return [ch](const when_t& w) {
                   channel<int> c = ch;
                   return !timed(
                       w, [&](auto d) { return c.receive_for(d).has_value(); },
                       [&](auto tp) { return c.receive_until(tp).has_value(); });
                 };
               }});
  v.push_back({"channel::send_for/until", [](env&) -> waiter_fn {
                 channel<std::string> ch;
                 return [ch](const when_t& w) {
                   channel<std::string> c = ch;
                   std::string s = "kept";
                   const bool sent = timed(
                       w, [&](auto d) { return c.send_for(s, d); },
                       [&](auto tp) { return c.send_until(s, tp); });
                   EXPECT_EQ(s, "kept") << "a timed-out send_for lost its value";
                   return !sent;
                 };
               }});
  v.push_back(
      {"select(after(d))", [](env&) -> waiter_fn {
         channel<int> ch;
         return [ch](const when_t& w) {
           channel<int> c = ch;
           return timed(
               w, [&](auto d) { return select(on_receive(c, [](int) {}), after(d, [] {})) == 1; },
               [&](auto tp) {  // after() takes a duration: the time point's distance
                 const nanoseconds d =
                     tp == decltype(tp)::max() ? nanoseconds::max() : nanoseconds::min();
                 return select(on_receive(c, [](int) {}), after(d, [] {})) == 1;
               });
         };
       }});
  v.push_back({"timed_mutex::try_lock_for/until", [](env& e) -> waiter_fn {
                 auto m = std::make_shared<timed_mutex>();
                 m->lock();  // held by the test's thread
                 e.cleanup.push_back([m] { m->unlock(); });
                 return [m](const when_t& w) {
                   return !timed(
                       w, [&](auto d) { return m->try_lock_for(d); },
                       [&](auto tp) { return m->try_lock_until(tp); });
                 };
               }});
  v.push_back({"counting_semaphore::try_acquire_for/until", [](env&) -> waiter_fn {
                 auto sem = std::make_shared<counting_semaphore>(0);
                 return [sem](const when_t& w) {
                   return !timed(
                       w, [&](auto d) { return sem->try_acquire_for(d); },
                       [&](auto tp) { return sem->try_acquire_until(tp); });
                 };
               }});
  v.push_back({"event::wait_for/until", [](env&) -> waiter_fn {
                 auto ev = std::make_shared<event>();
                 return [ev](const when_t& w) {
                   return !timed(
                       w, [&](auto d) { return ev->wait_for(d); },
                       [&](auto tp) { return ev->wait_until(tp); });
                 };
               }});
  v.push_back({"latch::wait_for/until", [](env&) -> waiter_fn {
                 auto l = std::make_shared<latch>(1);
                 return [l](const when_t& w) {
                   return !timed(
                       w, [&](auto d) { return l->wait_for(d); },
                       [&](auto tp) { return l->wait_until(tp); });
                 };
               }});
  v.push_back({"wait_group::wait_for/until", [](env&) -> waiter_fn {
                 auto g = std::make_shared<wait_group>();
                 g->add(1);
                 return [g](const when_t& w) {
                   return !timed(
                       w, [&](auto d) { return g->wait_for(d); },
                       [&](auto tp) { return g->wait_until(tp); });
                 };
               }});
  v.push_back({"condition_variable::wait_for/until", [](env&) -> waiter_fn {
                 auto m = std::make_shared<mutex>();
                 auto cv = std::make_shared<condition_variable>();
                 return [m, cv](const when_t& w) {
                   std::unique_lock lk(*m);
                   return timed(
                       w, [&](auto d) { return cv->wait_for(lk, d) == std::cv_status::timeout; },
                       [&](auto tp) { return cv->wait_until(lk, tp) == std::cv_status::timeout; });
                 };
               }});
  v.push_back({"future::wait_for/until", [](env& e) -> waiter_fn {
                 auto p = std::make_shared<promise<int>>();
                 auto f = std::make_shared<future<int>>(p->get_future());
                 e.cleanup.push_back([p] { p->set_value(1); });
                 return [f](const when_t& w) {
                   return timed(
                       w, [&](auto d) { return f->wait_for(d) == std::future_status::timeout; },
                       [&](auto tp) { return f->wait_until(tp) == std::future_status::timeout; });
                 };
               }});
  v.push_back(
      {"when_any_for/when_all_for", [](env& e) -> waiter_fn {
         auto p = std::make_shared<promise<int>>();
         auto f = std::make_shared<future<int>>(p->get_future());
         e.cleanup.push_back([p] { p->set_value(1); });
         return [f](const when_t& w) {
           return timed(
               w, [&](auto d) { return !when_any_for(d, *f).has_value() && !when_all_for(d, *f); },
               [&](auto tp) {  // no _until forms: the distance, saturated
                 const nanoseconds d =
                     tp == decltype(tp)::max() ? nanoseconds::max() : nanoseconds::min();
                 return !when_any_for(d, *f).has_value();
               });
         };
       }});
  v.push_back({"timeout_scope(d / tp) around receive()", [](env&) -> waiter_fn {
                 channel<int> ch;
                 return [ch](const when_t& w) {
                   channel<int> c = ch;
                   auto receive_in = [&](auto at) {
                     try {
                       timeout_scope scope(at);
                       (void)c.receive();
                       return false;
                     } catch (const timeout_error&) {
                       return true;
                     }
                   };
                   return timed(
                       w, [&](auto d) { return receive_in(d); },
                       [&](auto tp) {
                         if constexpr (std::is_same_v<decltype(tp), steady_tp>) {
                           return receive_in(tp);
                         } else {  // the scope takes the steady clock only
                           return receive_in(tp == system_tp::max() ? hours::max() : hours::min());
                         }
                       });
                 };
               }});
  return v;
}

class ExtremeDurations : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(ExtremeDurations);

// Every call with every past or zero extreme returns at once with its timeout result, from a
// tasklet and from a plain thread.
TEST_P(ExtremeDurations, PastOrZeroTimesOutAtOnce) {
  for (const timed_call& c : timed_calls()) {
    for (const extreme& x : extremes()) {
      if (x.forever) continue;
      for (int from_thread = 0; from_thread < 2; ++from_thread) {
        SCOPED_TRACE(std::string(c.name) + " with " + x.name +
                     (from_thread ? " from a plain thread" : " from a tasklet"));
        env e{sched(), {}, {}};
        waiter_fn f = c.setup(e);
        bool timed_out = false;
        if (from_thread) {
          std::thread th([&] { timed_out = f(x.when); });
          th.join();
        } else {
          timed_out = sched().block_on([&] { return f(x.when); });
        }
        EXPECT_TRUE(timed_out) << "the call did not end with its timeout result";
        for (auto& h : e.helpers) h.kill();
        for (auto& fn : e.cleanup) fn();
      }
    }
  }
}

// Every call with every extreme too large for the clock waits: it has not returned while the
// test looks (all at once, one pause per extreme), and kill() ends it.
TEST_P(ExtremeDurations, TooLargeWaitsUntilKilled) {
  for (const extreme& x : extremes()) {
    if (!x.forever) continue;
    SCOPED_TRACE(x.name);
    env e{sched(), {}, {}};
    std::vector<std::pair<const char*, tasklet<bool>>> waiters;
    auto returned = std::make_shared<std::atomic<int>>(0);
    for (const timed_call& c : timed_calls()) {
      waiter_fn f = c.setup(e);
      waiters.emplace_back(c.name, sched().spawn([f, w = x.when, returned] {
        const bool r = f(w);
        returned->fetch_add(1);
        return r;
      }));
    }
    std::this_thread::sleep_for(30ms);
    for (auto& [name, t] : waiters) {
      EXPECT_TRUE(t.alive()) << name << " with " << x.name << " returned at once";
      t.kill();
    }
    EXPECT_EQ(returned->load(), 0);
    for (auto& h : e.helpers) h.kill();
    for (auto& fn : e.cleanup) fn();
  }
}

// A plain thread's receive_for(hours::max()) (it segfaulted or hung at -O2 when the conversion
// overflowed) and send_for(nanoseconds::max()) wait for their partner and complete with it.
TEST_P(ExtremeDurations, APlainThreadWaitsForeverForItsPartner) {
  channel<int> ch;
  std::optional<int> got;
  std::thread rx([&] { got = ch.receive_for(hours::max()); });
  sched().block_on([&] { ch.send(7); });
  rx.join();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, 7);

  bool sent = false;
  std::thread tx([&] {
    int v = 8;
    sent = ch.send_for(v, nanoseconds::max());
  });
  EXPECT_EQ(sched().block_on([&] { return ch.receive(); }), 8);
  tx.join();
  EXPECT_TRUE(sent);

  auto ev = std::make_shared<event>();
  bool woke = false;
  std::thread w([&] { woke = ev->wait_until(system_tp::max()); });
  std::this_thread::sleep_for(10ms);
  ev->set();
  w.join();
  EXPECT_TRUE(woke);
}

}  // namespace
