// SPDX-License-Identifier: Apache-2.0
// test_preempt_scopes.cpp — preemption's scopes and edges (runtime/src/preempt.cpp):
// - refusals: inside an atomic scope (either nesting with preemptible) a hog is neither hard- nor
//   soft-preempted — nothing else runs on its one worker meanwhile — and the request that waited
//   is honoured at the first checkpoint() after the scope; in_atomic()/in_preemptible() nest, and
//   the published hard_ok word follows "an atomic scope inside a preemptible one wins";
// - run_for() (pump mode, quantum 0 and 1 ms): a checkpoint() loop and (hard) a preemptible loop
//   with no safe point are returned paused; resume()/kill() work on them; a cooperative tasklet
//   keeps running; an idle pump returns an empty handle;
// - the monitor thread "<name>-mon" exists only with quantum > 0, and only until shutdown;
// - checkpoint() outside a tasklet does nothing; preemptible/atomic/in_* outside one throw
//   usage_error;
// - stall warnings: a hog that runs 200 ms in an atomic scope while work waits gets one stderr
//   line naming it (stats().stalls_reported), and none with stall_warning = 0.
//
// Hard-preemption tests skip on non-x86-64 and under ThreadSanitizer (see test_preempt.cpp).
// No timing bound is asserted.
#include "preempt_fixture.hpp"

namespace {

using namespace stackless_test;
using namespace stackless_test::preempt;
using stackless::tasklet;
using stackless::usage_error;
namespace this_tasklet = stackless::this_tasklet;

// ---- refusals: atomic scopes win ----------------------------------------------------------------

/// A one-worker scheduler with quantum 1 ms and a tasklet that counts its turns (it yields in a
/// loop): while a hog is inside an atomic scope, the count must not move.
class AtomicRefusal : public ::testing::Test {
 protected:
  void SetUp() override {
    auto o = one_worker(1ms, "patomic");
    o.on_error = errors_.sink();
    s_ = std::make_unique<sl::scheduler>(std::move(o));
    s_->block_on([] {});  // the worker thread runs
    other_ = s_->spawn([this] {
      while (!stop_.load()) {
        other_runs_.fetch_add(1);
        this_tasklet::yield();
      }
    });
  }
  void TearDown() override {
    stop_ = true;
    other_.join();
    expect_clean(*s_);
    for (const auto& r : errors_.take())
      ADD_FAILURE() << "unexpected on_error report: " << report_text(r);
  }
  /// honoured_after() waits, calling checkpoint(), until the other tasklet runs again: the request
  /// that the atomic scope made wait is honoured at the first safe point after it.
  void honoured_after(long count) {
    const auto guard = std::chrono::steady_clock::now() + 60s;
    while (other_runs_.load() == count && std::chrono::steady_clock::now() < guard)
      this_tasklet::checkpoint();
    EXPECT_GT(other_runs_.load(), count) << "checkpoint() after the atomic scope never yielded";
  }

  hang_guard guard_;
  error_log errors_;
  std::unique_ptr<sl::scheduler> s_;
  std::atomic<bool> stop_{false};
  std::atomic<long> other_runs_{0};
  tasklet<void> other_;
};

/// spin_for() computes without a safe point for `d` (checking the clock every 4096 iterations).
void spin_for(std::chrono::milliseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  long moves = 0;
  while (std::chrono::steady_clock::now() < end) compute_scalar(4096, 1, &moves);
}

TEST_F(AtomicRefusal, CheckpointInsideAnAtomicScopeNeverYields) {
  const auto h0 = s_->stats().soft_preemptions;
  s_->block_on([&] {
    ASSERT_TRUE(yield_until([&] { return other_runs_.load() > 0; }));
    long before = 0, after = 0;
    {
      this_tasklet::atomic a;
      before = other_runs_.load();
      const auto end = std::chrono::steady_clock::now() + 150ms;  // ≫ the quantum
      while (std::chrono::steady_clock::now() < end) this_tasklet::checkpoint();
      after = other_runs_.load();
    }
    EXPECT_EQ(after, before) << "another tasklet ran on the only worker inside an atomic scope";
    honoured_after(after);
  });
  EXPECT_GT(s_->stats().soft_preemptions, h0) << "the request that waited was honoured softly";
}

TEST_F(AtomicRefusal, PreemptibleInsideOrAroundAnAtomicScopeIsNeverHardPreempted) {
  s_->block_on([&] {
    ASSERT_TRUE(yield_until([&] { return other_runs_.load() > 0; }));
    long before = 0, after = 0;
    {
      this_tasklet::preemptible p;
      this_tasklet::atomic a;  // an atomic scope inside a preemptible one wins
      before = other_runs_.load();
      spin_for(150ms);
      after = other_runs_.load();
    }
    EXPECT_EQ(after, before) << "preemptible { atomic { … } } was switched out";
    honoured_after(after);
    {
      this_tasklet::atomic a;
      this_tasklet::preemptible p;  // and a preemptible scope inside an atomic one changes nothing
      before = other_runs_.load();
      spin_for(150ms);
      after = other_runs_.load();
    }
    EXPECT_EQ(after, before) << "atomic { preemptible { … } } was switched out";
    honoured_after(after);
  });
  const auto st = s_->stats();
  EXPECT_EQ(st.hard_preemptions, 0u) << "refused_atomic=" << st.refused_atomic;
}

TEST_F(AtomicRefusal, ControlAPreemptibleScopeAloneIsHardPreempted) {
  // The same hog without the atomic scope is switched out on this very setup — so the two tests
  // above show the atomic scope's effect, not a monitor that never asked.
  SKIP_WITHOUT_HARD_PREEMPTION();
  s_->block_on([&] {
    ASSERT_TRUE(yield_until([&] { return other_runs_.load() > 0; }));
    long moves = 0;
    const long before = other_runs_.load();
    const auto guard = std::chrono::steady_clock::now() + 60s;
    {
      this_tasklet::preemptible p;
      while (other_runs_.load(std::memory_order_relaxed) == before &&
             std::chrono::steady_clock::now() < guard)
        compute_scalar(4096, 2, &moves);
    }
    EXPECT_GT(other_runs_.load(), before);
    EXPECT_EQ(moves, 0);
  });
  EXPECT_GT(s_->stats().hard_preemptions, 0u);
}

TEST(PreemptScopes, ScopesNestAndAtomicWins) {
  hang_guard guard;
  sl::scheduler s(one_worker(1ms, "pscopes"));
  // The handler is installed with the first monitor (this scheduler's): hard_ok is published
  // only where hard preemption can happen.
  const bool hard = built_for_hard_preemption();
  s.block_on([&] {
    auto hard_ok = [] { return sd::this_thread_block()->hard_ok.load(std::memory_order_relaxed); };
    EXPECT_FALSE(this_tasklet::in_preemptible());
    EXPECT_FALSE(this_tasklet::in_atomic());
    EXPECT_EQ(hard_ok(), 0u);
    {
      this_tasklet::preemptible p1;
      EXPECT_TRUE(this_tasklet::in_preemptible());
      EXPECT_FALSE(this_tasklet::in_atomic());
      EXPECT_EQ(hard_ok(), hard ? 1u : 0u);
      {
        this_tasklet::preemptible p2;
        EXPECT_TRUE(this_tasklet::in_preemptible());
        {
          this_tasklet::atomic a;
          EXPECT_TRUE(this_tasklet::in_atomic());
          EXPECT_TRUE(this_tasklet::in_preemptible());
          EXPECT_EQ(hard_ok(), 0u) << "an atomic scope inside a preemptible one wins";
        }
        EXPECT_FALSE(this_tasklet::in_atomic());
        EXPECT_EQ(hard_ok(), hard ? 1u : 0u);
      }
      EXPECT_TRUE(this_tasklet::in_preemptible()) << "the outer scope is still open";
      EXPECT_EQ(hard_ok(), hard ? 1u : 0u);
    }
    EXPECT_FALSE(this_tasklet::in_preemptible());
    EXPECT_EQ(hard_ok(), 0u);
    {
      this_tasklet::atomic a1;
      {
        this_tasklet::atomic a2;
        this_tasklet::preemptible p;
        EXPECT_TRUE(this_tasklet::in_atomic());
        EXPECT_TRUE(this_tasklet::in_preemptible());
        EXPECT_EQ(hard_ok(), 0u);
      }
      EXPECT_TRUE(this_tasklet::in_atomic()) << "the outer atomic scope is still open";
      EXPECT_FALSE(this_tasklet::in_preemptible());
      {
        this_tasklet::preemptible p;
        EXPECT_EQ(hard_ok(), 0u) << "still inside the outer atomic scope";
      }
    }
    EXPECT_FALSE(this_tasklet::in_atomic());
    EXPECT_EQ(hard_ok(), 0u);
  });
  expect_clean(s);
}

// ---- run_for(): pump mode ---------------------------------------------------------------------

/// RunForPreempt: a one-worker scheduler in pump mode; the parameter is options::quantum (0: the
/// run_for() slice alone starts the monitor; 1 ms: it was running already, and the slice rules).
class RunForPreempt : public ::testing::TestWithParam<std::chrono::microseconds> {
 protected:
  RunForPreempt() {
    auto o = one_worker(GetParam(), "prunfor");
    o.on_error = errors_.sink();
    s_ = std::make_unique<sl::scheduler>(std::move(o));
  }
  void TearDown() override {
    expect_clean(*s_);
    for (const auto& r : errors_.take())
      ADD_FAILURE() << "unexpected on_error report: " << report_text(r);
  }
  sl::scheduler& s() { return *s_; }

  hang_guard guard_;
  error_log errors_;
  std::unique_ptr<sl::scheduler> s_;
};
INSTANTIATE_TEST_SUITE_P(Quantum, RunForPreempt, ::testing::Values(0us, 1000us),
                         [](const ::testing::TestParamInfo<std::chrono::microseconds>& i) {
                           return "quantum" + std::to_string(i.param.count()) + "us";
                         });

/// A slice no well-behaved tasklet comes near, for pumps that must go idle (a hang guard, not a
/// timing claim), and the slice the hogs overrun.
constexpr auto long_slice = 30s;
constexpr auto short_slice = 10ms;

/// pump_until() pumps with short_slice until run_for() returns tasklet `id` (or nothing: the pump
/// went idle). A cooperative tasklet returned meanwhile — a loaded machine can stall one for a
/// whole slice between two of its yields — is resumed, and the pump goes on.
tasklet<void> pump_until(sl::scheduler& s, std::uint64_t id) {
  for (int i = 0; i < 1000; ++i) {
    auto over = s.run_for(short_slice);
    if (!over || over.id() == id) return over;
    over.resume();
  }
  ADD_FAILURE() << "run_for() returned other tasklets 1000 times";
  return {};
}

TEST_P(RunForPreempt, IdleReturnsAnEmptyHandle) {
  EXPECT_FALSE(s().run_for(short_slice));
  std::atomic<int> done{0};
  s().spawn([&] {
    this_tasklet::checkpoint();
    done = 1;
  });
  EXPECT_FALSE(s().run_for(long_slice));
  EXPECT_EQ(done.load(), 1);
  EXPECT_FALSE(s().run_for(short_slice));
}

TEST_P(RunForPreempt, ACheckpointLoopIsReturnedPausedAndCanBeResumedAndKilled) {
  std::atomic<long> iters{0};
  std::atomic<bool> unwound{false};
  auto spinner = s().spawn([&] {
    raii_flag flag(unwound);
    for (;;) {
      this_tasklet::checkpoint();
      iters.fetch_add(1, std::memory_order_relaxed);
    }
  });
  spinner.set_name("spinner");
  constexpr int rounds = 200;
  std::atomic<int> coop{0};
  auto cooperative = s().spawn([&] {
    for (int i = 0; i < rounds; ++i) {
      coop.fetch_add(1);
      this_tasklet::yield();
    }
  });
  auto over = pump_until(s(), spinner.id());
  ASSERT_TRUE(over);
  EXPECT_EQ(over.id(), spinner.id());
  EXPECT_EQ(over.name(), "spinner");
  EXPECT_TRUE(over.paused());
  EXPECT_FALSE(over.scheduled());
  // frozen may be 0: under TSan the 1 ms slice can pass before the spinner's first checkpoint,
  // which then returns it (run_for bounds the whole pump). What matters is that it stays frozen.
  const long frozen = iters.load();
  // With the spinner paused, the cooperative tasklet runs to its end and the pump goes idle.
  EXPECT_FALSE(s().run_for(long_slice));
  EXPECT_EQ(coop.load(), rounds);
  EXPECT_FALSE(cooperative.alive());
  EXPECT_EQ(iters.load(), frozen) << "a paused tasklet ran";
  // The host resumes it: it spins again, next to a new cooperative tasklet, and is returned again.
  over.resume();
  std::atomic<int> coop2{0};
  auto cooperative2 = s().spawn([&] {
    for (int i = 0; i < rounds; ++i) {
      coop2.fetch_add(1);
      this_tasklet::yield();
    }
  });
  auto again = pump_until(s(), spinner.id());
  ASSERT_TRUE(again);
  EXPECT_EQ(again.id(), spinner.id());
  EXPECT_GT(iters.load(), frozen);
  // The host kills it: one more pump lets it unwind (at its next checkpoint()).
  again.kill(true);
  EXPECT_FALSE(s().run_for(long_slice));
  EXPECT_FALSE(spinner.alive());
  EXPECT_TRUE(unwound.load());
  EXPECT_EQ(coop2.load(), rounds);
  EXPECT_FALSE(cooperative2.alive());
  EXPECT_GT(s().stats().soft_preemptions, 0u);
}

TEST_P(RunForPreempt, APreemptibleLoopWithoutSafePointIsReturnedHard) {
  SKIP_WITHOUT_HARD_PREEMPTION();
  std::atomic<bool> stop{false};
  std::atomic<long> chunks{0}, moves_total{0};
  auto hog = s().spawn([&] {
    this_tasklet::preemptible p;
    long moves = 0;
    while (!stop.load(std::memory_order_relaxed)) {  // no safe point: only the signal switches it
      compute_scalar(4096, 3, &moves);
      moves_total.fetch_add(moves, std::memory_order_relaxed);
      chunks.fetch_add(1, std::memory_order_relaxed);
    }
  });
  const auto h0 = s().stats().hard_preemptions;
  auto over = s().run_for(short_slice);  // the hog is alone: nothing else can be returned
  ASSERT_TRUE(over);
  EXPECT_EQ(over.id(), hog.id());
  EXPECT_TRUE(over.paused());
  const auto h1 = s().stats().hard_preemptions;
  EXPECT_GT(h1, h0) << "nothing but the signal could have switched it";
  // A cooperative tasklet runs while it is paused.
  std::atomic<int> coop{0};
  s().spawn([&] {
    for (int i = 0; i < 50; ++i) {
      coop.fetch_add(1);
      this_tasklet::yield();
    }
  });
  const long frozen = chunks.load();
  EXPECT_FALSE(s().run_for(long_slice));
  EXPECT_EQ(coop.load(), 50);
  EXPECT_EQ(chunks.load(), frozen) << "a paused tasklet ran";
  // Resumed exactly where it was, it is returned again.
  over.resume();
  auto again = s().run_for(short_slice);
  ASSERT_TRUE(again);
  EXPECT_EQ(again.id(), hog.id());
  EXPECT_GT(chunks.load(), frozen);
  EXPECT_GT(s().stats().hard_preemptions, h1);
  // Let it finish.
  stop = true;
  again.resume();
  EXPECT_FALSE(s().run_for(long_slice));
  EXPECT_FALSE(hog.alive());
  EXPECT_EQ(moves_total.load(), 0) << "pump mode has one thread";
}

// ---- the monitor thread -----------------------------------------------------------------------

TEST(PreemptMonitor, OnlyWithAQuantumAndOnlyUntilShutdown) {
  hang_guard guard;
  {
    sl::options o;
    o.workers = 2;
    o.name = "pmonq0";  // quantum 0: the default
    sl::scheduler s(o);
    s.block_on([] {});
    // The worker threads name themselves: once they have, /proc is known to show names.
    ASSERT_TRUE(wait_until(
        [] { return threads_named("pmonq0-0") == 1 && threads_named("pmonq0-1") == 1; }));
    EXPECT_EQ(threads_named("pmonq0-mon"), 0) << "quantum 0 means no monitor thread";
    EXPECT_FALSE(s.stats().monitor_running);
    s.block_on([] { this_tasklet::checkpoint(); });  // checkpoint() needs no monitor
    EXPECT_EQ(threads_named("pmonq0-mon"), 0);
    expect_clean(s);
  }
  {
    sl::options o;
    o.workers = 2;
    o.quantum = 1ms;
    o.name = "pmonq1";
    sl::scheduler s(o);
    s.block_on([] {});
    EXPECT_TRUE(s.stats().monitor_running);
    EXPECT_TRUE(wait_until([] { return threads_named("pmonq1-mon") >= 1; }));  // it names itself
    EXPECT_EQ(threads_named("pmonq1-mon"), 1) << "one monitor per scheduler";
    s.shutdown();
    EXPECT_FALSE(s.stats().monitor_running);
    // Joined by shutdown(); /proc may show an exiting thread for a moment.
    EXPECT_TRUE(wait_until([] { return threads_named("pmonq1-mon") == 0; }));
    expect_clean(s);
  }
}

// ---- outside a tasklet -----------------------------------------------------------------------

TEST(PreemptOutsideTasklet, CheckpointDoesNothingAndScopesThrow) {
  for (int i = 0; i < 1000; ++i) this_tasklet::checkpoint();
  std::thread([] {
    for (int i = 0; i < 1000; ++i) this_tasklet::checkpoint();
  }).join();
  {
    // Also while a scheduler with a monitor runs (its workers' blocks are theirs alone).
    sl::options o;
    o.workers = 2;
    o.quantum = 1ms;
    o.name = "poutside";
    sl::scheduler s(o);
    s.block_on([] {});
    for (int i = 0; i < 1000; ++i) this_tasklet::checkpoint();
    expect_clean(s);
  }
  EXPECT_THROW(this_tasklet::preemptible p, usage_error);
  EXPECT_THROW(this_tasklet::atomic a, usage_error);
  EXPECT_THROW(this_tasklet::in_preemptible(), usage_error);
  EXPECT_THROW(this_tasklet::in_atomic(), usage_error);
}

// ---- stall warnings -----------------------------------------------------------------------------

/// stall_run() runs, on a one-worker scheduler with quantum 1 ms and `warning`, a hog that spends
/// 200 ms in an atomic scope calling checkpoint() (never preempted, never a switch) while another
/// tasklet waits; returns what stderr got and the stats taken before shutdown.
std::pair<std::string, sl::scheduler_stats> stall_run(std::chrono::milliseconds warning) {
  auto o = one_worker(1ms, "pstall");
  o.stall_warning = warning;
  sl::scheduler s(o);
  s.block_on([] {});
  std::atomic<bool> in_scope{false}, other_waits{false};
  std::atomic<int> other_ran{0};
  ::testing::internal::CaptureStderr();
  auto hog = s.spawn([&] {
    this_tasklet::current().set_name("stall-hog");
    this_tasklet::atomic a;
    in_scope = true;
    const auto guard = std::chrono::steady_clock::now() + 60s;
    while (!other_waits.load() && std::chrono::steady_clock::now() < guard)
      this_tasklet::checkpoint();
    // 200 ms from the moment the other tasklet is known to wait (≫ the 50 ms warning).
    const auto end = std::chrono::steady_clock::now() + 200ms;
    while (std::chrono::steady_clock::now() < end) this_tasklet::checkpoint();
  });
  EXPECT_TRUE(wait_until([&] { return in_scope.load(); }));
  auto other = s.spawn([&] { other_ran = 1; });  // waits behind the hog
  other_waits = true;
  hog.join();
  other.join();
  auto st = s.stats();  // before shutdown: the monitor's counts go with it
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(other_ran.load(), 1);
  expect_clean(s);
  return {err, st};
}

TEST(PreemptStall, AHogInAnAtomicScopeIsReportedByName) {
  hang_guard guard;
  auto [err, st] = stall_run(50ms);
  EXPECT_NE(err.find("stall"), std::string::npos) << "stderr: " << err;
  EXPECT_NE(err.find("stall-hog"), std::string::npos) << "stderr: " << err;
  EXPECT_GE(st.stalls_reported, 1u);
  EXPECT_EQ(st.soft_preemptions, 0u) << "an atomic scope is never preempted";
}

TEST(PreemptStall, NoWarningWhenTurnedOff) {
  hang_guard guard;
  auto [err, st] = stall_run(0ms);
  EXPECT_EQ(err.find("stall"), std::string::npos) << "stderr: " << err;
  EXPECT_EQ(st.stalls_reported, 0u);
}

}  // namespace
