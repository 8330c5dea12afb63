// SPDX-License-Identifier: Apache-2.0
// test_stack_limits.cpp — stacks that cannot be had: an absurd options::stack_size is refused by
// the scheduler's constructor (std::invalid_argument naming the option and the limit), and a
// stack the kernel refuses to map (RLIMIT_AS) ends its tasklet with std::system_error, which its
// join() rethrows — the scheduler goes on, and works again once the limit is lifted.
//
// The RLIMIT_AS test runs in a death-test child (the limit is per process) and is skipped under
// the sanitizers: their shadow memory needs terabytes of address space. So the same failure is
// also injected (stackless/runtime/internal/faults.hpp: the stack's mmap fails with ENOMEM),
// which runs in every build.
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <tuple>
#include <vector>

#include "fixture.hpp"
#include "stackless/runtime/internal/faults.hpp"

namespace {

using namespace stackless_test;

constexpr std::size_t kGiB = std::size_t{1} << 30;

// ---- options::stack_size -------------------------------------------------------------------

class StackSizeLimitTest : public ::testing::TestWithParam<std::size_t> {};
INSTANTIATE_TEST_SUITE_P(Absurd, StackSizeLimitTest,
                         ::testing::Values(SIZE_MAX, std::size_t{1} << 58, std::size_t{1} << 63,
                                           std::size_t{1} << 40, kGiB + 1));

TEST_P(StackSizeLimitTest, TheConstructorRefusesIt) {
  sl::options o;
  o.workers = 1;
  o.stack_size = GetParam();
  try {
    sl::scheduler s(o);
    ADD_FAILURE() << "stack_size " << GetParam() << " was accepted";
    s.block_on([] {});  // (before the fix: a segfault or bad_alloc in the stack pool)
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("stackless: ", 0), 0u) << what;
    EXPECT_NE(what.find("options::stack_size"), std::string::npos) << what;
    EXPECT_NE(what.find("1 GiB"), std::string::npos) << what;
    EXPECT_NE(what.find(std::to_string(GetParam())), std::string::npos) << what;
  }
}

// The limit itself is fine: a few 1 GiB stacks (address space only).
class StackSizeAtTheLimitTest : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(StackSizeAtTheLimitTest);

TEST_P(StackSizeAtTheLimitTest, OneGiBStacksWork) {
  auto o = opts();
  o.stack_size = kGiB;
  auto& s = sched(std::move(o));
  std::vector<sl::tasklet<int>> ts;
  for (int i = 0; i < 4; ++i) ts.push_back(s.spawn([i] { return i; }));
  int sum = 0;
  for (auto& t : ts) sum += t.join();
  EXPECT_EQ(sum, 6);
}

// ---- a stack the kernel refuses ------------------------------------------------------------

// The process's address space, in bytes (/proc/self/statm: pages).
std::size_t address_space_bytes() {
  std::ifstream f("/proc/self/statm");
  std::size_t pages = 0;
  f >> pages;
  return pages * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

[[noreturn]] void child_fails(const std::string& why) {
  std::fprintf(stderr, "map-failure: %s\n", why.c_str());
  std::_Exit(1);
}

/// batch is what run_batch() saw: 8 tasklets that each hold a stack for 20 ms, joined.
struct batch {
  int ran = 0, failed = 0;
  std::string message;  // the last join's std::system_error
  int not_enomem = 0;   // failures whose error code was not ENOMEM
};

batch run_batch(sl::scheduler& s) {
  batch b;
  std::vector<sl::tasklet<int>> ts;
  for (int i = 0; i < 8; ++i)
    ts.push_back(s.spawn([] {
      sl::this_tasklet::sleep_for(20ms);  // holds its stack while the others start
      return 1;
    }));
  for (auto& t : ts) {
    try {
      b.ran += t.join();
    } catch (const std::system_error& e) {
      ++b.failed;
      b.message = e.what();
      if (e.code() != std::errc::not_enough_memory) ++b.not_enomem;
    }
  }
  return b;
}

// map_failure_child() runs in the death-test child: 8 tasklets with 1 GiB stacks under an
// RLIMIT_AS that leaves 512 MiB: at most the one stack cached by the warm-up can be had; the
// others end with std::system_error. Then the limit goes back and all 8 run.
void map_failure_child(unsigned workers) {
  sl::options o;
  o.workers = workers;
  o.stack_size = kGiB;
  o.deadlock_grace = 5s;
  sl::scheduler s(o);
  s.block_on([] {});  // the worker threads start (and one stack is mapped and cached)

  rlimit old{};
  if (getrlimit(RLIMIT_AS, &old) != 0) child_fails("getrlimit");
  rlimit low = old;
  low.rlim_cur = address_space_bytes() + 512 * 1024 * 1024;
  if (setrlimit(RLIMIT_AS, &low) != 0) child_fails("setrlimit");

  const batch b = run_batch(s);
  if (b.failed == 0) child_fails("every tasklet got a 1 GiB stack under the limit");
  if (b.ran + b.failed != 8) child_fails("a tasklet was lost");
  if (b.message.rfind("stackless: ", 0) != 0 || b.message.find("stack") == std::string::npos)
    child_fails("unclear error: " + b.message);

  if (setrlimit(RLIMIT_AS, &old) != 0) child_fails("setrlimit back");
  const batch b2 = run_batch(s);
  if (b2.ran != 8 || b2.failed != 0) child_fails("the scheduler did not recover: " + b2.message);
  s.drain();
  const auto st = s.stats();
  if (st.live != 0 || st.stacks_outstanding != 0) child_fails("leak: " + describe(st));
  std::fprintf(stderr, "map-failure-ok: %d of 8 failed under the limit: %s\n", b.failed,
               b.message.c_str());
  std::_Exit(0);
}

class StackMapFailureDeathTest : public ::testing::TestWithParam<unsigned> {};
INSTANTIATE_TEST_SUITE_P(Workers, StackMapFailureDeathTest, ::testing::Values(1u, 2u, 4u),
                         worker_count_name);

TEST_P(StackMapFailureDeathTest, JoinGetsTheErrorAndTheSchedulerGoesOn) {
  if (sanitized) GTEST_SKIP() << "the sanitizers' shadow memory cannot live under RLIMIT_AS";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(map_failure_child(GetParam()), ::testing::ExitedWithCode(0), "map-failure-ok");
}

// ---- the same, injected (every build) --------------------------------------------------------

struct disarm_on_exit {
  ~disarm_on_exit() { sl::detail::arm_fault(sl::detail::fault::stack_map, 0, 0); }
};

class StackMapFailureInjected
    : public ::testing::TestWithParam<std::tuple<unsigned, sl::stack_guard_policy>> {};
INSTANTIATE_TEST_SUITE_P(
    Workers, StackMapFailureInjected,
    ::testing::Combine(::testing::Values(1u, 2u, 4u),
                       ::testing::Values(sl::stack_guard_policy::canary_beyond_budget,
                                         sl::stack_guard_policy::always)),
    [](const auto& info) {
      return "w" + std::to_string(std::get<0>(info.param)) +
             (std::get<1>(info.param) == sl::stack_guard_policy::always ? "_always" : "_canary");
    });

// Every stack map fails while armed: the tasklets that got no stack (all but the ones the pool
// had cached) end with std::system_error (ENOMEM, "stackless: ..."), which join() rethrows;
// none is lost; once disarmed all 8 of the next batch run, and nothing leaks.
TEST_P(StackMapFailureInjected, JoinGetsTheErrorAndTheSchedulerGoesOn) {
  using sl::detail::arm_fault;
  using sl::detail::fault;
  disarm_on_exit disarm;
  sl::options o;
  o.workers = std::get<0>(GetParam());
  o.stack_guard = std::get<1>(GetParam());
  o.deadlock_grace = 5s;
  sl::scheduler s(o);
  s.block_on([] {});  // the worker threads start (and a stack is mapped and cached)

  arm_fault(fault::stack_map, 0, -1);
  const batch b = run_batch(s);
  arm_fault(fault::stack_map, 0, 0);
  EXPECT_GT(b.failed, 0) << "every tasklet got a stack with every map failing";
  EXPECT_EQ(b.ran + b.failed, 8) << "a tasklet was lost";
  EXPECT_EQ(b.not_enomem, 0) << b.message;
  EXPECT_EQ(b.message.rfind("stackless: ", 0), 0u) << b.message;
  EXPECT_NE(b.message.find("stack"), std::string::npos) << b.message;

  const batch b2 = run_batch(s);
  EXPECT_EQ(b2.ran, 8);
  EXPECT_EQ(b2.failed, 0) << b2.message;
  s.drain();
  expect_clean(s);
}

}  // namespace
