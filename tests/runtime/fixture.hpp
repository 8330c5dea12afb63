// SPDX-License-Identifier: Apache-2.0
// tests/runtime/fixture.hpp — what every runtime test shares.
//
// - runtime_test: a TEST_P fixture over workers ∈ {1, 2, 4} (STACKLESS_INSTANTIATE_WORKERS). It
//   owns one scheduler (made, with its workers running, by sched()), collects options::on_error
//   reports, and at teardown shuts the scheduler down and asserts that no tasklet is live and no
//   stack is outstanding, and that no error report arrived that the test did not take. A hang
//   guard aborts with a dump (before CTest's 300 s kill) instead of hanging CI.
// - expect_clean(s): the same teardown check for tests that make their own schedulers.
// - door: a tasklet parks on it through the runtime's one door (park.hpp); anyone opens it.
//   park_forever(): a park nobody wakes (kill / raise_exception / deadlock detection end it).
// - watchdog: aborts with a dump when a progress counter stalls.
// - wait_until / yield_until: poll with a generous hang guard.
// - scaled(full, small[, tsan_small]): loop sizes, shrunk under sanitizers (STACKLESS_SANITIZED)
//   so the whole suite stays fast there; assertions are never skipped.
// - ci_sized(n, ci): a size cut to `ci` unless STACKLESS_TEST_TIER=soak (tools/dev soak-tests).
// - big_memory_lock: one gigabyte-hungry test at a time across processes (ctest -j).
// - report_text(): an error_report's text (its `what`, or its exception's what()).
//
// Tests never assert timing; every timeout here is only a guard against hangs.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "stackless/runtime.hpp"
#include "stackless/runtime/internal/park.hpp"

#if defined(STACKLESS_TSAN)
// ThreadSanitizer suppressions for every runtime test binary (each binary is one translation
// unit that includes this header once, so this definition is not duplicated).
//
// libstdc++ is not built with TSan. An exception that escapes a tasklet is shared through
// std::exception_ptr by the tasklet's control block, every joiner that rethrows it and every
// error_report; its reference count (and the COW string inside std::runtime_error/logic_error)
// is updated with atomics inside libstdc++.so that TSan cannot see. When the last owner — often a
// worker destroying the control block — frees it, TSan reports a race with the what() reads of
// owners that had already let go. These three frames are where the free happens; they are only
// reached through that refcount.
extern "C" [[gnu::used]] const char* __tsan_default_suppressions() {
  return "race:std::__exception_ptr::exception_ptr::_M_release\n"
         "race:std::runtime_error::~runtime_error\n"
         "race:std::logic_error::~logic_error\n";
}
#endif

namespace stackless_test {

using namespace std::chrono_literals;
namespace sl = stackless;
namespace sd = stackless::detail;

#if defined(STACKLESS_SANITIZED)
inline constexpr bool sanitized = true;
#else
inline constexpr bool sanitized = false;
#endif
#if defined(STACKLESS_TSAN)
inline constexpr bool tsan = true;
#else
inline constexpr bool tsan = false;
#endif

/// scaled() is `full` in a normal build and `small` under a sanitizer (`tsan_small`, if given,
/// under ThreadSanitizer, which maps ~1.2 MiB of trace for every live fiber).
constexpr std::size_t scaled(std::size_t full, std::size_t small, std::size_t tsan_small = 0) {
  return !sanitized ? full : (tsan && tsan_small ? tsan_small : small);
}

/// soak_tier() is true under STACKLESS_TEST_TIER=soak (tools/dev soak-tests): a test whose size has
/// a CI form (ci_sized()) runs its full size. Otherwise — STACKLESS_TEST_TIER=ci (tools/dev test),
/// or unset (ctest or a test binary run by hand) — it runs the CI size, which keeps `.ci/run`
/// within its time budget.
inline bool soak_tier() {
  static const bool soak = [] {
    const char* tier = std::getenv("STACKLESS_TEST_TIER");
    return tier != nullptr && std::string(tier) == "soak";
  }();
  return soak;
}

/// ci_sized(n, ci) is `n` (usually a scaled() size) under the soak tier and at most `ci` otherwise.
inline std::size_t ci_sized(std::size_t n, std::size_t ci) {
  return soak_tier() || n < ci ? n : ci;
}

/// describe() renders scheduler stats for failure messages and watchdog dumps.
inline std::string describe(const sl::scheduler_stats& st) {
  std::ostringstream o;
  o << "spawned=" << st.spawned << " live=" << st.live << " runnable=" << st.runnable
    << " parked=" << st.parked << " steals=" << st.steals
    << " stacks_outstanding=" << st.stacks_outstanding << " stacks_pooled=" << st.stacks_pooled
    << " stacks_guarded=" << st.stacks_guarded << " stacks_unguarded=" << st.stacks_unguarded;
  for (std::size_t i = 0; i < st.workers.size(); ++i) {
    const auto& w = st.workers[i];
    o << "\n  worker " << i << ": runs=" << w.runs << " steals=" << w.steals
      << " steal_attempts=" << w.steal_attempts << " parks=" << w.parks << " spins=" << w.spins
      << " inbox=" << w.inbox << " injected=" << w.injected << " overflows=" << w.overflows;
  }
  return o.str();
}

/// expect_clean() shuts `s` down and asserts that nothing leaked: no live tasklet, no stack held.
inline void expect_clean(sl::scheduler& s) {
  s.shutdown();
  const auto st = s.stats();
  EXPECT_EQ(st.live, 0u) << describe(st);
  EXPECT_EQ(st.stacks_outstanding, 0u) << describe(st);
}

/// rss_bytes() is the resident set size of this process (/proc/self/statm).
inline std::uint64_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

/// big_memory_lock serializes the tests that need gigabytes (a million live tasklets hold ~8 GiB)
/// across processes: `ctest -j` — or two build trees tested at once — would otherwise run several
/// of them together and the OOM killer would end one. A flock() on a file in /tmp; released when
/// the lock (or the process) goes.
class big_memory_lock {
 public:
  big_memory_lock()
      : fd_(::open("/tmp/stackless-tests-big-memory.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666)) {
    if (fd_ >= 0) {
      while (::flock(fd_, LOCK_EX) != 0) {
      }
    }
  }
  ~big_memory_lock() {
    if (fd_ >= 0) ::close(fd_);
  }
  big_memory_lock(const big_memory_lock&) = delete;
  big_memory_lock& operator=(const big_memory_lock&) = delete;

 private:
  int fd_;
};

/// in_tasklet() tells whether the caller runs on a tasklet.
/// chaos_mode(): STACKLESS_CHAOS is set (tools/dev test runs the quick tier once so; chaos.cpp).
/// A test that asserts the order on one worker — which chaos mode shuffles on purpose — skips.
inline bool chaos_mode() {
  const char* e = std::getenv("STACKLESS_CHAOS");
  return e && *e;
}

inline bool in_tasklet() { return sd::current_tcb() != nullptr; }

/// relax() lets others run: a yield in a tasklet, a thread yield on a plain thread.
inline void relax() {
  if (in_tasklet()) {
    sl::this_tasklet::yield();
  } else {
    std::this_thread::yield();
  }
}

/// watchdog calls `progress` every 100 ms; when its value has not changed for `stall`, it prints
/// `what`, the `dump` and aborts — a failing test with a dump instead of a CI job that hangs.
class watchdog {
 public:
  watchdog(std::string what, std::chrono::milliseconds stall,
           std::function<std::uint64_t()> progress, std::function<std::string()> dump = {})
      : what_(std::move(what)),
        stall_(stall),
        progress_(std::move(progress)),
        dump_(std::move(dump)),
        thread_([this] { loop(); }) {}
  ~watchdog() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

 private:
  void loop() {
    std::unique_lock<std::mutex> g(mu_);
    std::uint64_t last = progress_();
    auto since = std::chrono::steady_clock::now();
    while (!cv_.wait_for(g, 100ms, [this] { return stop_; })) {
      const std::uint64_t now = progress_();
      if (now != last) {
        last = now;
        since = std::chrono::steady_clock::now();
        continue;
      }
      if (std::chrono::steady_clock::now() - since >= stall_) {
        std::fprintf(stderr, "\nWATCHDOG: %s: no progress for %lld ms (progress=%llu)\n%s\n",
                     what_.c_str(), static_cast<long long>(stall_.count()),
                     static_cast<unsigned long long>(now), dump_ ? dump_().c_str() : "");
        std::fflush(stderr);
        std::abort();
      }
    }
  }

  std::string what_;
  std::chrono::milliseconds stall_;
  std::function<std::uint64_t()> progress_;
  std::function<std::string()> dump_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;  // last: starts after everything above is ready
};

/// error_log collects options::on_error reports (they arrive on worker threads).
class error_log {
 public:
  std::function<void(const sl::error_report&)> sink() {
    return [this](const sl::error_report& r) {
      std::lock_guard<std::mutex> g(mu_);
      reports_.push_back(r);
    };
  }
  std::vector<sl::error_report> take() {
    std::lock_guard<std::mutex> g(mu_);
    return std::exchange(reports_, {});
  }
  std::size_t size() {
    std::lock_guard<std::mutex> g(mu_);
    return reports_.size();
  }

 private:
  std::mutex mu_;
  std::vector<sl::error_report> reports_;
};

/// report_text() is what an error report says: its `what`, else the what() of its exception.
inline std::string report_text(const sl::error_report& r) {
  std::string text = r.what;
  if (r.error) {
    try {
      std::rethrow_exception(r.error);
    } catch (const std::exception& e) {
      text += std::string(text.empty() ? "" : " / ") + e.what();
    } catch (...) {
    }
  }
  return text;
}

/// door lets one tasklet at a time park on it through the runtime's door (prepare_park / park /
/// throw_if_interrupted) and anyone — a tasklet of any scheduler or a plain thread — wake it.
/// The waiter record is published by park()'s unlock step, i.e. after the switch, as every
/// blocking primitive does. Whoever opens the door must keep a handle to the parked tasklet (the
/// waiter lives in its control block).
class door {
 public:
  /// wait() parks the calling tasklet until open() (or kill / raise_exception / deadlock, which it
  /// rethrows). Returns why the park ended.
  sd::wake_reason wait(const char* what = "test-door") {
    const sd::wake_reason r = park_only(what);
    sd::throw_if_interrupted();
    return r;
  }
  /// park_only() is wait() without the throw_if_interrupted() step: the caller must call it.
  sd::wake_reason park_only(const char* what = "test-door") {
    sd::waiter* w = sd::prepare_park(what);
    auto publish = [this, w] { slot_.store(w, std::memory_order_release); };
    const sd::wake_reason r = sd::park(publish, sd::no_deadline);
    if (r != sd::wake_reason::notified) {
      sd::waiter* expected = w;  // withdraw it, unless an opener took it already
      slot_.compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel);
    }
    return r;
  }
  /// occupied(): a tasklet is parked on the door (its waiter is published).
  bool occupied() const { return slot_.load(std::memory_order_acquire) != nullptr; }
  /// try_open() wakes the parked tasklet if there is one; true if this call's wake() won.
  bool try_open() {
    sd::waiter* w = slot_.exchange(nullptr, std::memory_order_acq_rel);
    return w && sd::wake(*w);
  }
  /// open() waits (yielding) until a tasklet is parked on the door, then wakes it; the result of
  /// wake().
  bool open() {
    for (;;) {
      if (sd::waiter* w = slot_.exchange(nullptr, std::memory_order_acq_rel)) return sd::wake(*w);
      relax();
    }
  }
  /// take() hands out the published waiter (for tests that race several wakers on it).
  sd::waiter* take() { return slot_.exchange(nullptr, std::memory_order_acq_rel); }

 private:
  std::atomic<sd::waiter*> slot_{nullptr};
};

/// park_forever() parks the calling tasklet through the door where nobody will wake it; only
/// kill()/raise_exception()/deadlock detection end it (by the exception it then throws).
inline void park_forever(const char* what = "test-door") {
  sd::prepare_park(what);
  auto nothing = [] {};
  sd::park(nothing, sd::no_deadline);
  sd::throw_if_interrupted();
}

/// raii_flag sets its flag when destroyed: proves that a killed tasklet unwound.
struct raii_flag {
  std::atomic<bool>* flag;
  explicit raii_flag(std::atomic<bool>& f) : flag(&f) {}
  ~raii_flag() { flag->store(true); }
};
struct raii_count {
  std::atomic<int>* count;
  explicit raii_count(std::atomic<int>& c) : count(&c) {}
  ~raii_count() { count->fetch_add(1); }
};

/// wait_until() polls `pred` from a plain thread (sleeping briefly) until it holds or `guard`
/// passes; returns the last value. The guard is a hang guard, never a timing assertion.
template <class P>
bool wait_until(P pred, std::chrono::milliseconds guard = 60s) {
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + guard;
  while (!pred()) {
    const auto now = std::chrono::steady_clock::now();
    if (now > end) return pred();
    if (now - start < 2ms) {
      std::this_thread::yield();  // most waits are short: don't pay a sleep for each
    } else {
      std::this_thread::sleep_for(1ms);
    }
  }
  return true;
}

/// yield_until() is wait_until() for a tasklet: it yields between polls.
template <class P>
bool yield_until(P pred, std::chrono::milliseconds guard = 60s) {
  const auto end = std::chrono::steady_clock::now() + guard;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return pred();
    relax();
  }
  return true;
}

/// pause_parked_on() pauses `t`, a tasklet that parks on `d` in a loop, so that pause() finds it
/// runnable: a tasklet that yields alone on its worker never is (its yield returns at once), and
/// from another worker it can only be caught between switches. Called from a tasklet of t's
/// scheduler, it opens the door — a wake from a tasklet puts t on the waker's own runnext — and
/// pauses t before this worker can switch to it. Should a thief run t first (runnext is stolen
/// only last), t parks on `d` again and it tries again.
inline void pause_parked_on(sl::tasklet<void> t, door& d) {
  for (;;) {
    if (!yield_until([&] { return d.occupied(); })) {
      ADD_FAILURE() << "pause_parked_on(): the tasklet never parked on the door";
      return;
    }
    if (!d.try_open()) continue;
    try {
      t.pause();
      return;
    } catch (const sl::usage_error&) {  // a thief ran it: it parks again
    }
  }
}

/// runtime_test is the fixture of every per-worker-count test: GetParam() is the worker count.
class runtime_test : public ::testing::TestWithParam<unsigned> {
 protected:
  unsigned workers() const { return GetParam(); }

  /// opts() are the options a test starts from: this worker count, error reports into errors_,
  /// and a deadlock grace long enough that a plain thread of the test that is about to wake a
  /// tasklet is never mistaken for a deadlock, even on a loaded sanitizer run (the deadlock tests
  /// set their own, short, grace).
  sl::options opts() {
    sl::options o;
    o.workers = workers();
    o.deadlock_grace = 5s;
    o.on_error = errors_.sink();
    o.name = "sltest";
    return o;
  }

  /// sched() is the test's scheduler, made with opts() on first use (or with `o`). Its workers are
  /// running: with workers = 1 no thread starts until a plain thread first waits (pump mode until
  /// then), so sched() does one block_on() — tests here poll from plain threads for tasklets to
  /// get somewhere. Pump-mode tests (test_run_for.cpp) make their own schedulers.
  sl::scheduler& sched() {
    if (!s_) start(opts());
    return *s_;
  }
  sl::scheduler& sched(sl::options o) {
    EXPECT_FALSE(s_) << "sched(options) after the scheduler was made";
    if (!o.on_error) o.on_error = errors_.sink();
    start(std::move(o));
    return *s_;
  }

  void start(sl::options o) {
    s_ = std::make_unique<sl::scheduler>(std::move(o));
    s_->block_on([] {});  // start the worker thread(s)
  }

  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "." + info->name();
    guard_ = std::make_unique<watchdog>(
        "hang guard of " + name, 270s,  // under the 300 s CTest TIMEOUT: a dump, not a kill
        [this] { return ticks_.fetch_add(0); },  // never changes: a deadline for the whole test
        [this] { return s_ ? describe(s_->stats()) : std::string("(no scheduler)"); });
  }

  void TearDown() override {
    if (s_) {
      expect_clean(*s_);
      s_.reset();
    }
    auto left = errors_.take();
    if (ignore_error_reports_) left.clear();
    for (const auto& r : left)
      ADD_FAILURE() << "unexpected on_error report: tasklet #" << r.id << " '" << r.name
                    << "': " << report_text(r);
    guard_.reset();
  }

  std::unique_ptr<sl::scheduler> s_;
  error_log errors_;
  bool ignore_error_reports_ = false;  // set by tests whose tasklets may legitimately end in error
  std::atomic<std::uint64_t> ticks_{0};
  std::unique_ptr<watchdog> guard_;
};

inline std::string worker_count_name(const ::testing::TestParamInfo<unsigned>& info) {
  return "workers" + std::to_string(info.param);
}

}  // namespace stackless_test

/// STACKLESS_INSTANTIATE_WORKERS(Suite) runs the TEST_Ps of Suite over workers ∈ {1, 2, 4}.
#define STACKLESS_INSTANTIATE_WORKERS(suite)                              \
  INSTANTIATE_TEST_SUITE_P(Workers, suite, ::testing::Values(1u, 2u, 4u), \
                           ::stackless_test::worker_count_name)
