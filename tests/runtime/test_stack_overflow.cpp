// SPDX-License-Identifier: Apache-2.0
// test_stack_overflow.cpp — a tasklet that overflows its guarded stack hits the guard page (a deep
// recursion, or a frame larger than the whole stack); the runtime's handler (on an alternate
// signal stack) prints "stack overflow" with the tasklet's id, name and stack size, and aborts —
// instead of a bare SIGSEGV. Death tests.
//
// Under ASan (STACKLESS_SANITIZED without STACKLESS_TSAN) ASan's own SEGV handler may report the
// overflow first, as "stack-overflow"; under TSan either text is accepted.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "fixture.hpp"

namespace {

using namespace stackless_test;

#if defined(STACKLESS_SANITIZED)
// Either our handler's message or the sanitizer's ("AddressSanitizer: stack-overflow").
constexpr const char* kOverflow = "stack.overflow";
constexpr const char* kOverflowNamed = "stack.overflow";
constexpr const char* kOverflowBigFrame = "stack.overflow";
#else
constexpr const char* kOverflow = "stack overflow";
// Our handler names the tasklet; in either order relative to the words "stack overflow".
constexpr const char* kOverflowNamed =
    "(stack overflow(.|\n)*deep-diver)|(deep-diver(.|\n)*stack overflow)";
constexpr const char* kOverflowBigFrame = "stack overflow in tasklet #[0-9]+ 'big-frame'";
#endif

/// dive() recurses `depth` levels, each with a 1 KiB frame the compiler cannot elide: the volatile
/// array is written and read back after the call, so the call is not a tail call.
[[gnu::noinline]] std::uint64_t dive(std::uint64_t depth) {
  volatile char frame[1024];
  frame[0] = static_cast<char>(depth);
  frame[sizeof frame - 1] = static_cast<char>(depth >> 8);
  if (depth == 0) return frame[0];
  const std::uint64_t below = dive(depth - 1);
  return below + static_cast<unsigned char>(frame[0]) +
         static_cast<unsigned char>(frame[sizeof frame - 1]);
}

stackless::options small_stacks(unsigned workers) {
  stackless::options o;
  o.workers = workers;
  o.stack_size = 64 * 1024;
  return o;
}

/// overflow() runs a tasklet that dives far deeper than 64 KiB (1 GiB of frames) and joins it.
void overflow(unsigned workers) {
  stackless::scheduler s(small_stacks(workers));
  auto t = s.spawn([] {
    stackless::this_tasklet::current().set_name("deep-diver");  // before it can overflow
    return dive(std::uint64_t{1} << 20);
  });
  std::printf("joined: %llu\n", static_cast<unsigned long long>(t.join()));  // never
}

/// big_frame() has a 2 MiB frame — far larger than a stack and its guard page — and writes its
/// lowest byte first, as code that jumps its stack pointer over the guard would.
[[gnu::noinline]] int big_frame() {
  volatile char frame[2 << 20];
  frame[0] = 1;
  frame[sizeof frame - 1] = 2;
  return frame[0] + frame[sizeof frame - 1];
}

/// big_frame_overflow() runs big_frame() in a tasklet with the default (256 KiB) stack. The
/// runtime's CMake target gives its users -fstack-clash-protection, so the frame is probed page
/// by page and the guard page is hit; without it the stack pointer lands 2 MiB below the stack,
/// and the handler still reports it (the stack pointer is outside the tasklet's stack).
void big_frame_overflow(unsigned workers) {
  stackless::options o;
  o.workers = workers;
  stackless::scheduler s(o);
  auto t = s.spawn([] {
    stackless::this_tasklet::current().set_name("big-frame");
    return big_frame();
  });
  std::printf("joined: %d\n", t.join());  // never
}

class StackOverflowDeathTest : public ::testing::TestWithParam<unsigned> {};
INSTANTIATE_TEST_SUITE_P(Workers, StackOverflowDeathTest, ::testing::Values(1u, 2u, 4u),
                         worker_count_name);

TEST_P(StackOverflowDeathTest, GuardPageHitPrintsAMessageAndAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(overflow(GetParam()), kOverflow);
}

TEST_P(StackOverflowDeathTest, MessageNamesTheTasklet) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(overflow(GetParam()), kOverflowNamed);
}

TEST_P(StackOverflowDeathTest, AFrameBiggerThanTheStackIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(big_frame_overflow(GetParam()), kOverflowBigFrame);
}

// Using most of a small stack is fine: 32 levels of 1 KiB frames in 64 KiB.
class StackUseTest : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(StackUseTest);

TEST_P(StackUseTest, DeepButBoundedRecursionFits) {
  auto o = opts();
  o.stack_size = 64 * 1024;
  auto& s = sched(std::move(o));
  std::vector<stackless::tasklet<std::uint64_t>> ts;
  for (int i = 0; i < 16; ++i) ts.push_back(s.spawn([] { return dive(32); }));
  const std::uint64_t expect = dive(32);
  for (auto& t : ts) EXPECT_EQ(t.join(), expect);
}

// Stacks are reused: many sequential tasklets that touch their stacks do not leave stacks
// outstanding, and the pool holds some for reuse.
TEST_P(StackUseTest, StacksGoBackToThePool) {
  auto o = opts();
  o.stack_size = 64 * 1024;
  auto& s = sched(std::move(o));
  for (int round = 0; round < 20; ++round) {
    std::vector<stackless::tasklet<std::uint64_t>> ts;
    for (int i = 0; i < 50; ++i) ts.push_back(s.spawn([] { return dive(16); }));
    for (auto& t : ts) t.join();
  }
  s.drain();
  const auto st = s.stats();
  EXPECT_EQ(st.stacks_outstanding, 0u) << describe(st);
  EXPECT_EQ(st.live, 0u) << describe(st);
  EXPECT_GT(st.stacks_pooled, 0u) << "finished tasklets' stacks are kept for reuse: "
                                  << describe(st);
  EXPECT_LT(st.stacks_guarded + st.stacks_unguarded, 20u * 50u)
      << "20 sequential batches of 50 should reuse stacks: " << describe(st);
}

// Stacks come back untrimmed and stay mapped while tasklets run (stack.hpp, "Trimming"); once
// the scheduler is idle, the pool keeps at most 1,024 guarded stacks (plus the workers' caches
// of up to 32 each): a burst of 1,500 tasklets alive at once leaves no more mapped than that.
// And the next burst reuses them (dirty or trimmed) before it maps new ones. (Under TSan, whose
// fiber for each new stack is slow to make, a burst of 300: the reuse is checked, the bound is
// not reached.)
TEST_P(StackUseTest, AfterABurstTheIdlePoolGivesBackWhatItHoldsBeyondItsBound) {
  const int burst = static_cast<int>(scaled(1500, 1500, 300));
  auto o = opts();
  o.stack_size = 64 * 1024;
  auto& s = sched(std::move(o));
  auto one_burst = [&] {
    std::vector<door> doors(static_cast<std::size_t>(burst));
    std::vector<stackless::tasklet<std::uint64_t>> ts;
    ts.reserve(static_cast<std::size_t>(burst));
    for (int i = 0; i < burst; ++i)
      ts.push_back(s.spawn([d = &doors[i]] {
        d->wait();  // all alive at once, each on its own stack
        return dive(4);
      }));
    for (auto& d : doors) ASSERT_TRUE(wait_until([&] { return d.occupied(); }));
    for (auto& d : doors) ASSERT_TRUE(d.try_open());
    for (auto& t : ts) t.join();
  };
  one_burst();
  const std::uint64_t bound = 1024 + 32 * workers();
  ASSERT_TRUE(wait_until([&] { return s.stats().stacks_pooled <= bound; }))
      << "the idle scheduler kept more than " << bound << " stacks: " << describe(s.stats());
  const auto idle = s.stats();
  const auto made = idle.stacks_guarded + idle.stacks_unguarded;
  EXPECT_GE(made, static_cast<std::uint64_t>(burst)) << describe(idle);
  one_burst();  // the same again: the pooled ones first, fresh ones for the rest
  const auto st = s.stats();
  // (A worker whose cache is empty while another's is not maps a fresh one: up to 32 each.)
  const auto fresh = static_cast<std::int64_t>(st.stacks_guarded + st.stacks_unguarded - made);
  const std::int64_t reusable = static_cast<std::int64_t>(idle.stacks_pooled);
  EXPECT_LE(fresh, std::max<std::int64_t>(0, burst - reusable) + 32 * workers()) << describe(st);
}

}  // namespace
