// SPDX-License-Identifier: Apache-2.0
// The work-stealing deque on its own: single-threaded behaviour (LIFO take, FIFO steal,
// wrap-around, full), and a stress test with one owner and several thieves that checks every
// element is taken exactly once.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "deque.hpp"

namespace {

using stackless::detail::steal_status;
using stackless::detail::ws_deque;

struct item {
  int v;
};

TEST(WsDeque, TakeIsLifoStealIsFifo) {
  ws_deque<item> d(8);
  item xs[5] = {{0}, {1}, {2}, {3}, {4}};
  for (auto& x : xs) ASSERT_TRUE(d.push(&x));
  EXPECT_EQ(d.size(), 5);
  EXPECT_EQ(d.take()->v, 4);
  item* s = nullptr;
  ASSERT_EQ(d.steal(s), steal_status::success);
  EXPECT_EQ(s->v, 0);
  EXPECT_EQ(d.take()->v, 3);
  ASSERT_EQ(d.steal(s), steal_status::success);
  EXPECT_EQ(s->v, 1);
  EXPECT_EQ(d.take()->v, 2);
  EXPECT_EQ(d.take(), nullptr);
  EXPECT_EQ(d.steal(s), steal_status::empty);
  EXPECT_TRUE(d.empty());
}

TEST(WsDeque, FullPushFailsAndWrapAroundKeepsOrder) {
  ws_deque<item> d(4);
  std::vector<item> xs(1000);
  for (int i = 0; i < 1000; ++i) xs[i].v = i;
  int next_in = 0, next_out = 0;
  // Push until full, steal two, push two more: the indices wrap around the ring many times.
  for (int round = 0; round < 200; ++round) {
    while (d.push(&xs[next_in])) ++next_in;
    EXPECT_EQ(d.size(), 4);
    for (int k = 0; k < 2; ++k) {
      item* s = nullptr;
      ASSERT_EQ(d.steal(s), steal_status::success);
      EXPECT_EQ(s->v, next_out++);
    }
  }
  while (item* t = d.take()) {  // LIFO from the newest
    EXPECT_EQ(t->v, --next_in);
  }
  EXPECT_EQ(next_in, next_out);
}

TEST(WsDeque, TakeOldestAndStealHalf) {
  ws_deque<item> d(16);
  std::vector<item> xs(10);
  for (int i = 0; i < 10; ++i) {
    xs[i].v = i;
    ASSERT_TRUE(d.push(&xs[i]));
  }
  item* out[16];
  ASSERT_EQ(d.take_oldest(out, 4), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i]->v, i);
  ASSERT_EQ(d.steal_half(out, 32), 3u);  // ceil(6 / 2)
  for (int i = 0; i < 3; ++i) EXPECT_EQ(out[i]->v, 4 + i);
  ASSERT_EQ(d.steal_half(out, 1), 1u);  // capped
  EXPECT_EQ(out[0]->v, 7);
  EXPECT_EQ(d.size(), 2);
}

// One owner pushes and takes; thieves steal and steal half. Every element is taken once.
void stress(std::size_t capacity, int thieves) {
#ifdef STACKLESS_SANITIZED
  const int n = 200000;
#else
  const int n = 3000000;
#endif
  ws_deque<item> d(capacity);
  std::vector<item> xs(n);
  std::vector<std::atomic<int>> seen(n);
  for (int i = 0; i < n; ++i) xs[i].v = i;
  std::atomic<bool> done{false};
  std::atomic<long> stolen{0};
  std::vector<std::thread> ts;
  for (int k = 0; k < thieves; ++k) {
    ts.emplace_back([&, k] {
      item* buf[32];
      while (!done.load(std::memory_order_acquire) || !d.empty()) {
        if (k % 2) {
          std::size_t got = d.steal_half(buf, 32);
          for (std::size_t i = 0; i < got; ++i) seen[buf[i]->v].fetch_add(1);
          stolen.fetch_add(static_cast<long>(got));
        } else {
          item* s = nullptr;
          if (d.steal(s) == steal_status::success) {
            seen[s->v].fetch_add(1);
            stolen.fetch_add(1);
          }
        }
      }
    });
  }
  long taken = 0;
  for (int i = 0; i < n; ++i) {
    while (!d.push(&xs[i])) {  // full: take a few ourselves
      if (item* t = d.take()) {
        seen[t->v].fetch_add(1);
        ++taken;
      }
    }
    if (i % 3 == 0) {
      if (item* t = d.take()) {
        seen[t->v].fetch_add(1);
        ++taken;
      }
    }
  }
  while (item* t = d.take()) {
    seen[t->v].fetch_add(1);
    ++taken;
  }
  done.store(true, std::memory_order_release);
  for (auto& t : ts) t.join();
  long once = 0;
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(seen[i].load(), 1) << "element " << i;
    ++once;
  }
  EXPECT_EQ(once, n);
  EXPECT_EQ(taken + stolen.load(), n);
}

TEST(WsDeque, StressOneOwnerThreeThieves) { stress(256, 3); }
TEST(WsDeque, StressTinyCapacity) { stress(4, 2); }

}  // namespace
