// SPDX-License-Identifier: Apache-2.0
// test_chaos.cpp — chaos mode (options::chaos, STACKLESS_CHAOS; runtime/src/chaos.cpp): on one
// worker the same seed replays the same schedule and another seed gives another; it changes the
// order the runtime is free to choose (spawned tasklets no longer always run next); it keeps every
// guarantee (exactly-once delivery through channels, mutual exclusion, no sleep ends early) over
// 1, 2 and 4 workers; STACKLESS_CHAOS turns it on for a scheduler whose options leave it off.
#include <cstdlib>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "stackless/sync.hpp"

namespace {

using namespace stackless_test;
namespace this_tasklet = stackless::this_tasklet;

// schedule() is the order in which 8 tasklets, each spawning 2 and yielding 3 times, take their
// steps on one worker with chaos seed `seed` (0: off).
std::vector<int> schedule(std::uint64_t seed) {
  stackless::options o;
  o.workers = 1;
  o.chaos = seed;
  stackless::scheduler s(o);
  std::vector<int> steps;  // one worker: no lock needed
  for (int i = 0; i < 8; ++i) {
    s.spawn([&steps, &s, i] {
      for (int j = 0; j < 2; ++j) s.spawn([&steps, i, j] { steps.push_back(1000 + 10 * i + j); });
      for (int k = 0; k < 3; ++k) {
        steps.push_back(100 * i + k);
        this_tasklet::yield();
      }
    });
  }
  s.run();
  return steps;
}

TEST(Chaos, OneWorkerReplaysTheSameScheduleForTheSameSeed) {
  if (std::getenv("STACKLESS_CHAOS")) GTEST_SKIP() << "compares chaos off with on";
  const auto plain = schedule(0);
  EXPECT_EQ(plain, schedule(0));
  const auto a = schedule(42), b = schedule(42), c = schedule(7);
  EXPECT_EQ(a.size(), plain.size());
  EXPECT_EQ(a, b) << "the same seed must replay the same schedule";
  EXPECT_NE(a, plain) << "chaos changed nothing";
  EXPECT_NE(a, c) << "two seeds gave the same schedule";
}

class ChaosWorkers : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(ChaosWorkers);

// Under chaos every value sent through a channel arrives exactly once, a mutex still excludes,
// and no sleep ends before its time.
TEST_P(ChaosWorkers, GuaranteesHold) {
  auto o = opts();
  o.chaos = 1234 + workers();
  auto& s = sched(o);
  constexpr int producers = 4, per = 500;
  stackless::channel<int> ch(3);
  std::vector<int> seen(producers * per, 0);
  stackless::mutex m;
  int inside = 0, overlaps = 0;
  std::vector<stackless::tasklet<void>> ts;
  for (int p = 0; p < producers; ++p)
    ts.push_back(s.spawn([ch, p]() mutable {
      for (int i = 0; i < per; ++i) ch.send(p * per + i);
    }));
  for (int c = 0; c < 3; ++c)
    ts.push_back(s.spawn([ch, &seen, &m, &inside, &overlaps]() mutable {
      for (;;) {
        auto v = ch.receive_for(200ms);
        if (!v) return;
        std::lock_guard g(m);
        if (++inside != 1) ++overlaps;
        ++seen[static_cast<std::size_t>(*v)];
        --inside;
      }
    }));
  bool early = false;
  ts.push_back(s.spawn([&early] {
    for (int i = 0; i < 20; ++i) {
      const auto start = std::chrono::steady_clock::now();
      this_tasklet::sleep_for(100us);
      if (std::chrono::steady_clock::now() - start < 100us) early = true;
    }
  }));
  for (auto& t : ts) t.join();
  for (std::size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], 1) << "value " << i;
  EXPECT_EQ(overlaps, 0);
  EXPECT_FALSE(early) << "a sleep ended before its time";
}

TEST(Chaos, TheEnvironmentTurnsItOn) {
  if (std::getenv("STACKLESS_CHAOS")) GTEST_SKIP() << "sets STACKLESS_CHAOS itself";
  ::setenv("STACKLESS_CHAOS", "42", 1);
  const auto from_env = schedule(0);
  ::unsetenv("STACKLESS_CHAOS");
  EXPECT_EQ(from_env, schedule(42));
}

}  // namespace
