// SPDX-License-Identifier: Apache-2.0
// test_future.cpp — promise<T> / future<T> (sync/future.hpp; sync/src/future.cpp), from
// tasklets and plain threads, over workers ∈ {1, 2, 4}: for int, void and a move-only type, in
// every direction (tasklet ↔ tasklet, tasklet ↔ plain thread); exceptions; broken promise; the
// std::future_error codes; wait_for / wait_until; wait(stop_token).
// when_any / when_all are in test_future_when.cpp, task_group in test_future_task_group.cpp.
// Orderings come from events and parks, never from sleeps; no test asserts how long anything took.
#include <memory>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>

#include "test_future_fixture.hpp"

namespace {

using namespace stackless_test;
using namespace stackless_test::future_test;
using sl::future;
using sl::operation_cancelled;
using sl::promise;

class Future : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(Future);

/// future_error_code() runs f and returns the code of the std::future_error it throws.
template <class F>
std::optional<std::error_code> future_error_code(F&& f) {
  try {
    f();
  } catch (const std::future_error& e) {
    return e.code();
  }
  return std::nullopt;
}
std::optional<std::error_code> code(std::future_errc e) { return std::make_error_code(e); }

/// waiters(): how many wait records and when_any/when_all proxies are on the future's list.
template <class T>
int waiters(const future<T>& f) {
  auto* s = f.state();
  int n = 0;
  s->lk.lock();
  for (sd::waiter* w = s->q.head; w; w = w->next) ++n;
  s->lk.unlock();
  return n;
}
template <class T>
bool has_waiters(const future<T>& f) {
  return waiters(f) > 0;
}
/// joiners(): how many join records and when_any/when_all proxies are on the tasklet's list.
template <class R>
int joiners(const tasklet<R>& t) {
  auto* c = t.raw();
  int n = 0;
  c->lk.lock();
  for (sd::waiter* w = c->joiners; w; w = w->next) ++n;
  c->lk.unlock();
  return n;
}
template <class R>
bool has_joiners(const tasklet<R>& t) {
  return joiners(t) > 0;
}

// put / take: one value through promise<T> / future<T> for the three kinds of T.
void put(promise<int>& p, int v) { p.set_value(v); }
void put(promise<void>& p, int) { p.set_value(); }
void put(promise<std::unique_ptr<int>>& p, int v) { p.set_value(std::make_unique<int>(v)); }
int take(future<int>& f) { return f.get(); }
int take(future<void>& f) {
  f.get();
  return 0;
}
int take(future<std::unique_ptr<int>>& f) {
  auto p = f.get();
  return p ? *p : -1;
}
template <class T>
int expected(int v) {
  return std::is_void_v<T> ? 0 : v;
}

// ---- promise / future -------------------------------------------------------------------------

template <class T>
void round_trips(sl::scheduler& s) {
  {
    SCOPED_TRACE("tasklet -> tasklet, the getter parked first");
    promise<T> p;
    auto getter = spawn_parked(s, [f = p.get_future()]() mutable { return take(f); });
    s.spawn([p = std::move(p)]() mutable { put(p, 1); }).join();
    EXPECT_EQ(getter.join(), expected<T>(1));
  }
  {
    SCOPED_TRACE("tasklet -> tasklet, set before get");
    promise<T> p;
    future<T> f = p.get_future();
    s.spawn([&] { put(p, 2); }).join();
    EXPECT_TRUE(f.is_ready());
    EXPECT_EQ(s.spawn([&] { return take(f); }).join(), expected<T>(2));
    EXPECT_FALSE(f.valid()) << "a future stays valid after get()";
  }
  {
    SCOPED_TRACE("tasklet -> plain thread");
    promise<T> p;
    future<T> f = p.get_future();
    auto setter = s.spawn([&] {
      for (int i = 0; i < 5; ++i) this_tasklet::yield();
      put(p, 3);
    });
    EXPECT_EQ(take(f), expected<T>(3));
    setter.join();
  }
  {
    SCOPED_TRACE("plain thread -> tasklet");
    promise<T> p;
    auto getter = spawn_parked(s, [f = p.get_future()]() mutable { return take(f); });
    std::thread th([&] { put(p, 4); });
    th.join();
    EXPECT_EQ(getter.join(), expected<T>(4));
  }
  {
    SCOPED_TRACE("plain thread -> plain thread");
    promise<T> p;
    std::thread getter([f = p.get_future()]() mutable { EXPECT_EQ(take(f), expected<T>(5)); });
    put(p, 5);
    getter.join();
  }
}

TEST_P(Future, IntRoundTrips) { round_trips<int>(sched()); }
TEST_P(Future, VoidRoundTrips) { round_trips<void>(sched()); }
TEST_P(Future, MoveOnlyRoundTrips) { round_trips<std::unique_ptr<int>>(sched()); }

TEST_P(Future, GetRethrowsTheExceptionSet) {
  auto boom = [] { return std::make_exception_ptr(std::runtime_error("boom")); };
  {  // a tasklet sets, a parked tasklet gets
    promise<std::unique_ptr<int>> p;
    auto getter = spawn_parked(sched(), [f = p.get_future()]() mutable {
      try {
        (void)f.get();
      } catch (const std::runtime_error& e) {
        return std::string(e.what());
      }
      return std::string("no exception");
    });
    sched().block_on([&] { p.set_exception(boom()); });
    EXPECT_EQ(getter.join(), "boom");
  }
  {  // a tasklet sets, a plain thread gets
    promise<void> p;
    future<void> f = p.get_future();
    sched().spawn([&] { p.set_exception(boom()); }).join();
    EXPECT_TRUE(f.is_ready());
    EXPECT_THROW(f.get(), std::runtime_error);
    EXPECT_FALSE(f.valid());
  }
  {  // set_exception(nullptr) is refused, and the promise can still be set
    promise<int> p;
    future<int> f = p.get_future();
    EXPECT_THROW(p.set_exception(nullptr), std::invalid_argument);
    EXPECT_FALSE(f.is_ready());
    p.set_value(9);
    EXPECT_EQ(f.get(), 9);
  }
}

TEST_P(Future, BrokenPromise) {
  {  // a parked getter; the promise dies unset in a tasklet
    promise<int> p;
    auto getter = spawn_parked(sched(), [f = p.get_future()]() mutable {
      return future_error_code([&] { (void)f.get(); });
    });
    sched().spawn([p = std::move(p)] {}).join();
    EXPECT_EQ(getter.join(), code(std::future_errc::broken_promise));
  }
  in_tasklet_and_thread(sched(), [] {  // the promise gone before anyone waits
    future<std::unique_ptr<int>> f;
    {
      promise<std::unique_ptr<int>> p;
      f = p.get_future();
    }
    EXPECT_TRUE(f.is_ready());
    EXPECT_EQ(future_error_code([&] { (void)f.get(); }), code(std::future_errc::broken_promise));
  });
  {  // a promise moved-from and then destroyed does not break the future; the one moved into does
    promise<void> a;
    future<void> f = a.get_future();
    promise<void> b = std::move(a);
    { promise<void> dead = std::move(a); }
    EXPECT_FALSE(f.is_ready());
    b.set_value();
    { promise<void> gone = std::move(b); }
    EXPECT_NO_THROW(f.get());
  }
}

TEST_P(Future, FutureErrorCodes) {
  in_tasklet_and_thread(sched(), [] {
    promise<int> p;
    future<int> f = p.get_future();
    EXPECT_EQ(future_error_code([&] { (void)p.get_future(); }),
              code(std::future_errc::future_already_retrieved));
    p.set_value(1);
    EXPECT_EQ(future_error_code([&] { p.set_value(2); }),
              code(std::future_errc::promise_already_satisfied));
    EXPECT_EQ(future_error_code(
                  [&] { p.set_exception(std::make_exception_ptr(std::runtime_error("x"))); }),
              code(std::future_errc::promise_already_satisfied));
    EXPECT_EQ(f.get(), 1) << "a second set changed the value";
    // After get() the future is invalid.
    EXPECT_FALSE(f.valid());
    EXPECT_EQ(future_error_code([&] { (void)f.get(); }), code(std::future_errc::no_state));
    future<int> none;
    EXPECT_FALSE(none.valid());
    EXPECT_EQ(future_error_code([&] { (void)none.get(); }), code(std::future_errc::no_state));
    EXPECT_EQ(future_error_code([&] { none.wait(); }), code(std::future_errc::no_state));
    EXPECT_EQ(future_error_code([&] { (void)none.wait_for(1ms); }),
              code(std::future_errc::no_state));
    EXPECT_EQ(future_error_code([&] { (void)none.is_ready(); }), code(std::future_errc::no_state));
    // A moved-from promise has no state.
    promise<void> a;
    future<void> fa = a.get_future();
    promise<void> b = std::move(a);
    EXPECT_EQ(future_error_code([&] { a.set_value(); }), code(std::future_errc::no_state));
    EXPECT_EQ(future_error_code([&] { (void)a.get_future(); }), code(std::future_errc::no_state));
    b.set_value();
    EXPECT_NO_THROW(fa.get());
    // set_value after set_exception.
    promise<void> e;
    future<void> fe = e.get_future();
    e.set_exception(std::make_exception_ptr(std::runtime_error("first")));
    EXPECT_EQ(future_error_code([&] { e.set_value(); }),
              code(std::future_errc::promise_already_satisfied));
    EXPECT_THROW(fe.get(), std::runtime_error);
  });
}

// A promise whose future was never retrieved frees its shared state — and the value set in it —
// when it goes.
TEST_P(Future, PromiseWithoutGetFutureFreesItsState) {
  struct tracked {
    std::atomic<int>* destroyed;
    explicit tracked(std::atomic<int>& d) : destroyed(&d) {}
    tracked(tracked&& o) noexcept : destroyed(std::exchange(o.destroyed, nullptr)) {}
    ~tracked() {
      if (destroyed) destroyed->fetch_add(1);
    }
  };
  std::atomic<int> destroyed{0};
  in_tasklet_and_thread(sched(), [&] {
    const int before = destroyed.load();
    {
      promise<tracked> p;
      p.set_value(tracked(destroyed));
    }
    EXPECT_EQ(destroyed.load(), before + 1)
        << "the value of a promise whose future was never retrieved was not destroyed";
    { promise<int> unset; }  // LeakSanitizer checks this one
  });
}

TEST_P(Future, WaitForTimeoutThenReady) {
  in_tasklet_and_thread(sched(), [this] {
    promise<int> p;
    future<int> f = p.get_future();
    EXPECT_EQ(f.wait_for(10ms), std::future_status::timeout);
    EXPECT_EQ(f.wait_until(std::chrono::steady_clock::now() + 5ms), std::future_status::timeout);
    EXPECT_EQ(f.wait_for(0ms), std::future_status::timeout);
    {
      sl::timeout_scope scope(5ms);
      EXPECT_THROW(f.wait(), sl::timeout_error);
      EXPECT_THROW((void)f.get(), sl::timeout_error);
    }
    EXPECT_TRUE(f.valid()) << "a timed-out get() consumed the future";
    EXPECT_FALSE(has_waiters(f)) << "a timed-out wait left its record behind";
    auto setter = sched().spawn([&] {
      this_tasklet::yield();
      p.set_value(6);
    });
    EXPECT_EQ(f.wait_for(1h), std::future_status::ready);
    EXPECT_EQ(f.wait_for(0ms), std::future_status::ready);
    EXPECT_EQ(f.wait_until(std::chrono::steady_clock::now() - 1s), std::future_status::ready);
    EXPECT_EQ(f.get(), 6);
    setter.join();
  });
}

TEST_P(Future, WaitWithStopTokenIsCancelled) {
  promise<int> p;
  future<int> f = p.get_future();
  std::stop_source ss;
  auto w = spawn_parked(sched(), [&] {
    try {
      f.wait(ss.get_token());
      return 1;
    } catch (const operation_cancelled&) {
      return 2;
    }
  });
  ss.request_stop();
  EXPECT_EQ(w.join(), 2);
  // A plain thread, stopped from a tasklet.
  std::stop_source ss2;
  std::thread th([&] { EXPECT_THROW(f.wait(ss2.get_token()), operation_cancelled); });
  sched().block_on([&] {
    this_tasklet::sleep_for(5ms);
    ss2.request_stop();
  });
  th.join();
  EXPECT_FALSE(has_waiters(f));
  EXPECT_TRUE(f.valid());
  p.set_value(7);
  // Ready: a stopped token does not matter when there is nothing to wait for.
  in_tasklet_and_thread(sched(), [&] { f.wait(ss.get_token()); });
  EXPECT_EQ(f.get(), 7);
}

}  // namespace
