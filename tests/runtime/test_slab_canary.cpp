// SPDX-License-Identifier: Apache-2.0
// Past the guard-page budget stacks come from unguarded slabs; an overflow there is caught by the
// canary check at the tasklet's next switch: a message naming the tasklet, then abort.
// Not under ThreadSanitizer: exhausting the guard budget takes ~16k live tasklets, and a TSan
// fiber costs ~1 MiB each.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <stackless/runtime.hpp>
#include <vector>

#include "stackless/runtime/internal/park.hpp"

namespace {

#if !defined(STACKLESS_TSAN)

// An ordinary deep recursion: frames of ~100 bytes, every word written.
[[gnu::noinline]] std::uint64_t dive(std::uint64_t depth) {
  volatile std::uint64_t frame[8];
  for (auto& f : frame) f = depth;
  if (depth == 0) return frame[0];
  return dive(depth - 1) + frame[7];
}

void overflow_an_unguarded_stack() {
  stackless::options o;
  o.workers = 1;
  o.stack_size = 64 * 1024;
  stackless::scheduler s(o);
  std::atomic<long> parked{0};
  // Park tasklets until the stacks come from slabs.
  std::vector<stackless::tasklet<void>> keep;
  while (s.stats().stacks_unguarded < 4) {
    for (int i = 0; i < 1024; ++i)
      keep.push_back(s.spawn([&] {
        stackless::detail::prepare_park("keep");
        stackless::detail::park([&] { parked.fetch_add(1); });
        stackless::detail::throw_if_interrupted();
      }));
    s.block_on([] {});  // runs them all until they park
  }
  // 64 KiB of stack, ~100 bytes a level: 1000 levels overrun it by about half.
  auto diver = s.spawn([] {
    stackless::this_tasklet::current().set_name("slab-diver");
    std::uint64_t v = dive(1000);
    stackless::this_tasklet::yield();  // a switch: the canary is checked
    return v;
  });
  diver.join();
}

// Under AddressSanitizer the overflow may be caught before the canary is: an unguarded slab can
// lie next to a heap block, whose redzone the diving frames write into (about one run in three,
// by where the slab was mapped). Either report is the overflow caught.
#if defined(__SANITIZE_ADDRESS__)
constexpr const char* caught =
    "stack overflow in tasklet #[0-9]+ 'slab-diver'|AddressSanitizer: heap-buffer-overflow";
#else
constexpr const char* caught = "stack overflow in tasklet #[0-9]+ 'slab-diver'";
#endif

TEST(SlabCanaryDeathTest, OverflowOfAnUnguardedStackIsCaughtAtTheNextSwitch) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(overflow_an_unguarded_stack(), caught);
}
#endif

}  // namespace
