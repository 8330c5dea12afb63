// SPDX-License-Identifier: Apache-2.0
// test_scheduler_misuse.cpp — a scheduler made or destroyed where a careful user would not
// (issue 13, §1): destroyed inside a tasklet of another scheduler (it terminated the process:
// ~scheduler → shutdown() → run() threw usage_error out of a noexcept destructor); a constructor
// whose worker threads cannot all start (it unwound with joinable std::threads: terminate); a
// constructor that throws (it leaked its error sink: LeakSanitizer in the ASan build).
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <system_error>

#include "fixture.hpp"
#include "stackless/runtime/internal/faults.hpp"

namespace {

using namespace stackless_test;
using stackless::tasklet;
namespace this_tasklet = stackless::this_tasklet;

class SchedulerMisuse : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(SchedulerMisuse);

stackless::options inner_options(unsigned w) {
  stackless::options o;
  o.workers = w;
  o.name = "inner";
  return o;
}

// A scheduler destroyed inside a tasklet of another, unused, used, with tasklets still parked in
// it, with one or two workers: the destructor kills and runs what is left (the inner scheduler
// gets its thread; the outer tasklet's worker blocks meanwhile) and returns.
TEST_P(SchedulerMisuse, DestroyedInsideATaskletOfAnotherScheduler) {
  for (unsigned inner_workers : {1u, 2u}) {
    SCOPED_TRACE("inner workers = " + std::to_string(inner_workers));
    // Unused.
    sched().block_on([&] { stackless::scheduler inner(inner_options(inner_workers)); });
    // Used: a tasklet joined, from the outer tasklet.
    const int v = sched().block_on([&] {
      stackless::scheduler inner(inner_options(inner_workers));
      return inner.spawn([] { return 41; }).join() + 1;
    });
    EXPECT_EQ(v, 42);
    // Destroyed with tasklets parked forever and runnable ones queued: they are killed; those
    // that had started unwind, the others end without running (kill before the first run).
    std::atomic<int> unwound{0}, parked{0};
    sched().block_on([&] {
      stackless::scheduler inner(inner_options(inner_workers));
      for (int i = 0; i < 8; ++i) {
        inner.spawn([&] {
          raii_count c(unwound);
          parked.fetch_add(1);
          park_forever();
        });
      }
      while (parked.load() < 8) inner.spawn([] {}).join();  // the join starts inner's thread
      for (int i = 0; i < 8; ++i) {
        inner.spawn([&] {
          raii_count c(unwound);
          this_tasklet::yield();
        });
      }
    });
    EXPECT_GE(unwound.load(), 8);
    EXPECT_LE(unwound.load(), 16);
    // shutdown() from the outer tasklet, then the destructor.
    sched().block_on([&] {
      stackless::scheduler inner(inner_options(inner_workers));
      inner.spawn([] { park_forever(); });
      inner.shutdown();
      EXPECT_THROW(inner.spawn([] {}), stackless::usage_error);
    });
  }
}

// vm_bytes() is the process's virtual size (/proc/self/statm, first field).
std::size_t vm_bytes() {
  std::ifstream f("/proc/self/statm");
  std::size_t pages = 0;
  f >> pages;
  return pages * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

// thread_creation_fails_in_child() is the child's side: exit code 0 when all went as expected.
[[noreturn]] void thread_creation_fails_in_child() {
  const rlim_t limit = vm_bytes() + (48u << 20);
  const rlimit rl{limit, limit};
  if (setrlimit(RLIMIT_AS, &rl) != 0) std::_Exit(3);
  bool threw = false;
  try {
    stackless::options o;
    o.workers = 64;
    o.name = "huge";
    stackless::scheduler s(o);
  } catch (const std::system_error& e) {
    threw = std::string(e.what()).find("'huge'") != std::string::npos;
  }
  if (!threw) std::_Exit(4);
  stackless::options small;
  small.workers = 1;
  stackless::scheduler s(small);
  std::_Exit(s.block_on([] { return 5; }) == 5 ? 0 : 6);
}

// With the address space nearly full, a scheduler of 64 workers cannot start all its threads
// (each wants an 8 MiB stack): the constructor throws std::system_error naming the scheduler,
// after joining the threads that did start, and the process goes on — a smaller scheduler works.
// In a child process (the limit must not reach the other tests); not under the sanitizers, whose
// shadow memory needs terabytes of address space.
TEST(SchedulerMisuseDeathTest, ThreadCreationFailureThrowsAndJoinsWhatStarted) {
  if (sanitized) GTEST_SKIP() << "RLIMIT_AS cannot be lowered under ASan/TSan";
  testing::GTEST_FLAG(death_test_style) = "threadsafe";
  EXPECT_EXIT(thread_creation_fails_in_child(), testing::ExitedWithCode(0), "");
}

// The same failure injected (stackless/runtime/internal/faults.hpp), so that it runs in every
// build, the sanitizers' included: the sixth worker thread cannot start. The constructor throws
// std::system_error naming the scheduler and how many started, after joining those five; then
// a single-worker scheduler whose lazy start fails throws from the block_on() that starts it,
// and a later block_on() starts it (the worker is nobody's again after the failure).
struct disarm_on_exit {
  ~disarm_on_exit() { stackless::detail::arm_fault(stackless::detail::fault::thread_start, 0, 0); }
};

TEST(SchedulerMisuseInjected, ThreadCreationFailureThrowsAndJoinsWhatStarted) {
  using stackless::detail::arm_fault;
  using stackless::detail::fault;
  disarm_on_exit disarm;
  arm_fault(fault::thread_start, 5, -1);
  try {
    stackless::options o;
    o.workers = 8;
    o.name = "huge";
    stackless::scheduler s(o);
    ADD_FAILURE() << "the constructor started 8 workers with the 6th failing";
  } catch (const std::system_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'huge'"), std::string::npos) << what;
    EXPECT_NE(what.find("(5 of 8 started)"), std::string::npos) << what;
    EXPECT_EQ(e.code(), std::errc::resource_unavailable_try_again) << what;
  }
  arm_fault(fault::thread_start, 0, 1);
  stackless::options one;
  one.workers = 1;
  stackless::scheduler s(one);
  auto t = s.spawn([] { return 6; });
  EXPECT_THROW(s.block_on([] { return 5; }), std::system_error);
  EXPECT_EQ(s.block_on([] { return 5; }), 5);  // the injected failure was the only one
  EXPECT_EQ(t.join(), 6);
  s.drain();
  expect_clean(s);
}

// A constructor that throws gives back what it allocated (the ASan build's LeakSanitizer fails
// the test otherwise); a good scheduler made afterwards works.
TEST(SchedulerMisuseCtor, AThrowingConstructorLeaksNothing) {
  for (int i = 0; i < 3; ++i) {
    stackless::options o;
    o.workers = 2;
    o.local_queue_capacity = 3;  // not a power of two
    EXPECT_THROW(stackless::scheduler s(o), std::invalid_argument);
  }
  stackless::options o;
  o.workers = 2;
  stackless::scheduler s(o);
  EXPECT_EQ(s.block_on([] { return 7; }), 7);
}

}  // namespace
