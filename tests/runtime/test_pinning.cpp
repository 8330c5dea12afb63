// SPDX-License-Identifier: Apache-2.0
// Pinned tasklets (inside this_tasklet::atomic): they park, get woken by other workers and by
// plain threads, yield among runnable work that other workers steal — and always resume on the
// worker thread they were pinned to.
#include <gtest/gtest.h>

#include <atomic>
#include <stackless/runtime.hpp>
#include <thread>
#include <vector>

#include "scheduler_impl.hpp"
#include "stackless/runtime/internal/park.hpp"

namespace {

using namespace stackless;

class Pinning : public ::testing::TestWithParam<unsigned> {};

TEST_P(Pinning, AtomicScopeKeepsTheWorkerThread) {
  options o;
  o.workers = GetParam();
  scheduler s(o);
#ifdef STACKLESS_SANITIZED
  const int rounds = 300;
#else
  const int rounds = 5000;
#endif
  std::atomic<int> moved{0};
  std::atomic<detail::waiter*> slot{nullptr};
  std::atomic<bool> done{false};
  // A waker tasklet and a plain thread take turns waking the pinned one.
  auto waker_body = [&] {
    while (!done.load()) {
      detail::waiter* w = slot.exchange(nullptr);
      if (w) {
        detail::wake(*w);
      } else if (detail::current_tcb()) {
        this_tasklet::yield();
      } else {
        std::this_thread::yield();
      }
    }
  };
  auto pinned = s.spawn([&] {
    // Runnable neighbours for the thieves.
    std::vector<tasklet<void>> noise;
    for (int i = 0; i < 8; ++i)
      noise.push_back(spawn([&] {
        while (!done.load()) this_tasklet::yield();
      }));
    {
      this_tasklet::atomic a;
      const auto me = std::this_thread::get_id();
      EXPECT_TRUE(this_tasklet::in_atomic());
      for (int i = 0; i < rounds; ++i) {
        if (i % 3 == 0) {
          this_tasklet::yield();
        } else {
          // The waker finds our waiter record only after the park is published: park's unlock
          // step publishes it, so no lock is needed here.
          detail::waiter* w = detail::prepare_park("pinned-test");
          detail::park([&] { slot.store(w); });
          detail::throw_if_interrupted();
        }
        if (std::this_thread::get_id() != me) moved.fetch_add(1);
      }
    }
    EXPECT_FALSE(this_tasklet::in_atomic());
    done = true;
    for (auto& n : noise) n.join();
  });
  auto waker = s.spawn(waker_body);
  std::thread plain(waker_body);
  pinned.join();
  waker.join();
  plain.join();
  EXPECT_EQ(moved.load(), 0) << "a pinned tasklet resumed on another worker";
  s.shutdown();
  EXPECT_EQ(s.stats().live, 0u);
  EXPECT_EQ(s.stats().stacks_outstanding, 0u);
}

INSTANTIATE_TEST_SUITE_P(Workers, Pinning, ::testing::Values(1u, 2u, 4u));

}  // namespace
