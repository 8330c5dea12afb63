// SPDX-License-Identifier: Apache-2.0
// test_plain_threads.cpp — plain OS threads as clients: spawn, join, block_on and drain from
// several threads at once; plain threads waking tasklets through the door (and being woken back)
// without a lost wakeup.
#include <thread>
#include <vector>

#include "fixture.hpp"

namespace {

using namespace stackless_test;
using stackless::tasklet;
namespace this_tasklet = stackless::this_tasklet;

constexpr int kThreads = 6;

class PlainThreadsTest : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(PlainThreadsTest);

TEST_P(PlainThreadsTest, SpawnAndJoinFromManyThreadsAtOnce) {
  auto& s = sched();
  const auto spawned_before = s.stats().spawned;
  const int per = static_cast<int>(scaled(4000, 300));
  std::vector<std::atomic<int>> slots(static_cast<std::size_t>(kThreads) * per);
  std::vector<std::thread> threads;
  std::atomic<long> sum{0};
  for (int k = 0; k < kThreads; ++k) {
    threads.emplace_back([&, k] {
      std::vector<tasklet<int>> mine;
      for (int i = 0; i < per; ++i) {
        const int slot = k * per + i;
        mine.push_back(s.spawn([&slots, slot] {
          slots[slot].fetch_add(1);
          if (slot % 7 == 0) this_tasklet::yield();
          return slot;
        }));
      }
      long local = 0;
      for (auto& t : mine) local += t.join();
      sum.fetch_add(local);
    });
  }
  for (auto& th : threads) th.join();
  const long n = static_cast<long>(kThreads) * per;
  EXPECT_EQ(sum.load(), n * (n - 1) / 2);
  for (auto& c : slots) ASSERT_EQ(c.load(), 1);
  EXPECT_EQ(s.stats().spawned, spawned_before + static_cast<std::uint64_t>(n));
}

TEST_P(PlainThreadsTest, DetachedSpawnsFromManyThreadsThenDrain) {
  auto& s = sched();
  const int per = static_cast<int>(scaled(4000, 300));
  std::atomic<int> ran{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < kThreads; ++k) {
    threads.emplace_back([&] {
      for (int i = 0; i < per; ++i) s.spawn([&] { ran.fetch_add(1); });
    });
  }
  for (auto& th : threads) th.join();
  s.drain();
  EXPECT_EQ(ran.load(), kThreads * per);
  EXPECT_EQ(s.stats().live, 0u);
}

TEST_P(PlainThreadsTest, ThreadsJoinTaskletsOthersSpawned) {
  auto& s = sched();
  const int n = 64;
  std::vector<tasklet<int>> ts;
  for (int i = 0; i < n; ++i) {
    ts.push_back(s.spawn([i] {
      for (int k = 0; k < i % 5; ++k) this_tasklet::yield();
      return i * i;
    }));
  }
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int k = 0; k < kThreads; ++k) {
    threads.emplace_back([&, k] {
      for (int i = 0; i < n; ++i) {
        auto& t = ts[(i + k * 11) % n];
        if (t.join() == ((i + k * 11) % n) * ((i + k * 11) % n)) ok.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * n);
}

TEST_P(PlainThreadsTest, BlockOnFromManyThreadsAtOnce) {
  auto& s = sched();
  const int rounds = static_cast<int>(scaled(300, 30));
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < kThreads; ++k) {
    threads.emplace_back([&, k] {
      for (int r = 0; r < rounds; ++r) {
        const int v = s.block_on([k, r] {
          auto a = stackless::spawn([k] { return k; });
          auto b = stackless::spawn([r] {
            this_tasklet::yield();
            return r;
          });
          this_tasklet::yield();
          return a.join() + b.join();
        });
        if (v == k + r) good.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(good.load(), kThreads * rounds);
}

TEST_P(PlainThreadsTest, BlockOnRethrowsIntoEachThread) {
  auto& s = sched();
  std::atomic<int> caught{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < kThreads; ++k) {
    threads.emplace_back([&, k] {
      for (int r = 0; r < 20; ++r) {
        try {
          s.block_on([k]() -> int { throw std::runtime_error(std::to_string(k)); });
        } catch (const std::runtime_error& e) {
          if (e.what() == std::to_string(k)) caught.fetch_add(1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(caught.load(), kThreads * 20);
}

TEST_P(PlainThreadsTest, DrainFromSeveralThreadsAtOnce) {
  auto& s = sched();
  std::atomic<int> done{0};
  for (int i = 0; i < 200; ++i) {
    s.spawn([&] {
      for (int k = 0; k < 5; ++k) this_tasklet::yield();
      done.fetch_add(1);
    });
  }
  std::vector<std::thread> drainers;
  for (int k = 0; k < 3; ++k) drainers.emplace_back([&] { s.drain(); });
  for (auto& d : drainers) d.join();
  EXPECT_EQ(done.load(), 200);
}

TEST_P(PlainThreadsTest, StatsWhileBusy) {
  auto& s = sched();
  std::atomic<bool> stop{false};
  std::vector<tasklet<void>> ts;
  for (int i = 0; i < 8; ++i) {
    ts.push_back(s.spawn([&] {
      while (!stop.load()) this_tasklet::yield();
    }));
  }
  for (int i = 0; i < 200; ++i) {
    const auto st = s.stats();
    EXPECT_EQ(st.workers.size(), workers());
    EXPECT_LE(st.live, 8u);
  }
  stop = true;
  for (auto& t : ts) t.join();
}

// A plain thread and a tasklet take turns: the thread wakes the tasklet through the door, the
// tasklet wakes the thread through an atomic. No round may be lost.
TEST_P(PlainThreadsTest, PlainThreadAndTaskletPingPong) {
  auto& s = sched();
  const std::uint64_t rounds = scaled(20'000, 2'000);
  door d;
  std::atomic<std::uint64_t> pongs{0};
  auto t = s.spawn([&] {
    for (std::uint64_t r = 1; r <= rounds; ++r) {
      d.wait();
      pongs.store(r);
      pongs.notify_one();
    }
  });
  watchdog w(
      "plain-thread ping-pong", 30s, [&] { return pongs.load(); },
      [&] { return describe(s.stats()); });
  for (std::uint64_t r = 1; r <= rounds; ++r) {
    EXPECT_TRUE(d.open());
    std::uint64_t seen = pongs.load();
    while (seen < r) {
      pongs.wait(seen);
      seen = pongs.load();
    }
  }
  t.join();
  EXPECT_EQ(pongs.load(), rounds);
}

// Several plain threads, each with its own partner tasklet, at once.
TEST_P(PlainThreadsTest, ManyPlainThreadsWakeTheirTasklets) {
  auto& s = sched();
  const std::uint64_t rounds = scaled(5'000, 500);
  std::atomic<std::uint64_t> progress{0};
  watchdog w(
      "plain-thread wakes", 30s, [&] { return progress.load(); },
      [&] { return describe(s.stats()); });
  std::vector<std::thread> threads;
  for (int k = 0; k < kThreads; ++k) {
    threads.emplace_back([&] {
      door d;
      std::atomic<std::uint64_t> pongs{0};
      auto t = s.spawn([&] {
        for (std::uint64_t r = 1; r <= rounds; ++r) {
          d.wait();
          pongs.store(r);
          pongs.notify_one();
        }
      });
      for (std::uint64_t r = 1; r <= rounds; ++r) {
        d.open();
        std::uint64_t seen = pongs.load();
        while (seen < r) {
          pongs.wait(seen);
          seen = pongs.load();
        }
        progress.fetch_add(1);
      }
      t.join();
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(progress.load(), rounds * kThreads);
}

}  // namespace
