// SPDX-License-Identifier: Apache-2.0
// test_stack_guard.cpp — options::stack_guard and the mapping budget, with the budget shrunk
// (set_max_map_count_for_tests) so that a few tasklets reach it:
// - always: every stack is guarded, also past the budget of canary_beyond_budget; a spawn past
//   3/8 of max_map_count throws std::system_error naming the option, and works again once
//   tasklets have ended;
// - canary_beyond_budget: past a quarter of max_map_count stacks come from slabs; a recursion
//   that runs through a slab stack (and its neighbours) is reported as a stack overflow of the
//   tasklet — the stack pointer is outside its stack — instead of a bare SIGSEGV (death test).
#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

#include "fixture.hpp"
#include "stack.hpp"

namespace {

using namespace stackless_test;

/// max_map_count_override shrinks the mapping budgets for one scope (process-wide: the tests of
/// this binary run one at a time).
struct max_map_count_override {
  explicit max_map_count_override(long n) { sd::set_max_map_count_for_tests(n); }
  ~max_map_count_override() { sd::set_max_map_count_for_tests(0); }
};

class StackGuardTest : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(StackGuardTest);

// With max_map_count 64: canary_beyond_budget guards 16 stacks, always allows 24 tasklets.
TEST_P(StackGuardTest, AlwaysGuardsEveryStackPastTheCanaryBudget) {
  max_map_count_override budget(64);
  auto o = opts();
  o.stack_size = 64 * 1024;
  o.stack_guard = sl::stack_guard_policy::always;
  auto& s = sched(std::move(o));
  std::vector<door> doors(20);
  std::vector<sl::tasklet<void>> ts;
  for (auto& d : doors) ts.push_back(s.spawn([&d] { d.wait(); }));
  for (auto& d : doors) ASSERT_TRUE(wait_until([&] { return d.occupied(); }));
  const auto st = s.stats();
  EXPECT_EQ(st.stacks_unguarded, 0u) << describe(st);
  EXPECT_GE(st.stacks_guarded, 20u) << describe(st);
  for (auto& d : doors) ASSERT_TRUE(wait_until([&] { return d.try_open(); }));
  for (auto& t : ts) t.join();
}

TEST_P(StackGuardTest, CanaryBeyondBudgetCarvesSlabsPastIt) {
  max_map_count_override budget(64);
  auto o = opts();
  o.stack_size = 64 * 1024;
  auto& s = sched(std::move(o));
  std::vector<door> doors(20);
  std::vector<sl::tasklet<void>> ts;
  for (auto& d : doors) ts.push_back(s.spawn([&d] { d.wait(); }));
  for (auto& d : doors) ASSERT_TRUE(wait_until([&] { return d.occupied(); }));
  const auto st = s.stats();
  EXPECT_GT(st.stacks_unguarded, 0u) << describe(st);
  for (auto& d : doors) ASSERT_TRUE(wait_until([&] { return d.try_open(); }));
  for (auto& t : ts) t.join();
}

TEST_P(StackGuardTest, AlwaysSpawnFailsPastTheBudgetAndRecovers) {
  max_map_count_override budget(64);
  ASSERT_EQ(sd::guarded_limit(), 24);
  auto o = opts();
  o.stack_size = 64 * 1024;
  o.stack_guard = sl::stack_guard_policy::always;
  auto& s = sched(std::move(o));
  std::vector<door> doors(24);
  std::vector<sl::tasklet<void>> ts;
  for (auto& d : doors) ts.push_back(s.spawn([&d] { d.wait(); }));
  // From a plain thread and from a tasklet alike.
  try {
    s.spawn([] {});
    ADD_FAILURE() << "a 25th tasklet was spawned";
  } catch (const std::system_error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("stackless: ", 0), 0u) << what;
    EXPECT_NE(what.find("stack_guard"), std::string::npos) << what;
    EXPECT_NE(what.find("vm.max_map_count"), std::string::npos) << what;
  }
  for (auto& d : doors) ASSERT_TRUE(wait_until([&] { return d.occupied(); }));
  // One ends; a tasklet of it may spawn one more, not two.
  ASSERT_TRUE(wait_until([&] { return doors[0].try_open(); }));
  ts[0].join();
  const int spawned = s.block_on([] {  // this one takes the freed slot itself
    try {
      sl::this_tasklet::yield();
      sl::spawn([] {}).join();
      return 1;
    } catch (const std::system_error&) {
      return 0;
    }
  });
  EXPECT_EQ(spawned, 0) << "the block_on tasklet holds the slot the ended one freed";
  for (std::size_t i = 1; i < doors.size(); ++i)
    ASSERT_TRUE(wait_until([&] { return doors[i].try_open(); }));
  for (auto& t : ts) t.join();
  s.block_on([] { sl::spawn([] {}).join(); });  // room again
}

// ---- an overflow on a slab stack (death test) ----------------------------------------------

[[gnu::noinline]] std::uint64_t dive(std::uint64_t depth) {
  volatile char frame[1024];
  frame[0] = static_cast<char>(depth);
  frame[sizeof frame - 1] = static_cast<char>(depth >> 8);
  if (depth == 0) return frame[0];
  const std::uint64_t below = dive(depth - 1);
  return below + static_cast<unsigned char>(frame[0]) +
         static_cast<unsigned char>(frame[sizeof frame - 1]);
}

void deep_recursion_on_a_slab_stack(unsigned workers) {
  sd::set_max_map_count_for_tests(1);  // a budget of 0: every stack comes from a slab
  sl::options o;
  o.workers = workers;
  o.stack_size = 64 * 1024;
  sl::scheduler s(o);
  auto t = s.spawn([] {
    sl::this_tasklet::current().set_name("slab-deep");
    return dive(std::uint64_t{1} << 20);  // 1 GiB of frames: through the slab and out of it
  });
  std::printf("joined: %llu\n", static_cast<unsigned long long>(t.join()));  // never
}

#if defined(STACKLESS_SANITIZED)
constexpr const char* kSlabOverflow = "stack.overflow";
#else
constexpr const char* kSlabOverflow =
    "stack overflow in tasklet #[0-9]+ 'slab-deep'.* \\(unguarded";
#endif

class SlabOverflowDeathTest : public ::testing::TestWithParam<unsigned> {};
INSTANTIATE_TEST_SUITE_P(Workers, SlabOverflowDeathTest, ::testing::Values(1u, 2u, 4u),
                         worker_count_name);

TEST_P(SlabOverflowDeathTest, DeepRecursionOnAnUnguardedStackIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(deep_recursion_on_a_slab_stack(GetParam()), kSlabOverflow);
}

}  // namespace
