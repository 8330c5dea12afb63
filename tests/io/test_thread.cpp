// SPDX-License-Identifier: Apache-2.0
// test_thread.cpp — stackless::thread, workers ∈ {1, 2, 4}: the same code templated on its
// thread type runs with std::thread and with stackless::thread (whose "threads" are tasklets:
// a thousand of them block on a channel at once on one worker); and std::thread's contract —
// joinable/join/detach/get_id/swap, the errors of join and detach.
#include <atomic>
#include <thread>
#include <unordered_set>
#include <vector>

#include "fixture.hpp"
#include "stackless/io.hpp"

namespace {

using namespace stackless_test;

class Thread : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(Thread);

// sum_in_parallel() is library code written against std::thread's interface.
template <class ThreadT>
long sum_in_parallel(int parts, int per_part) {
  std::vector<long> sums(static_cast<std::size_t>(parts));
  std::vector<ThreadT> ts;
  for (int p = 0; p < parts; ++p)
    ts.emplace_back(
        [&sums, per_part](int part) {
          long s = 0;
          for (int i = 0; i < per_part; ++i) s += part * per_part + i;
          sums[static_cast<std::size_t>(part)] = s;
        },
        p);
  for (auto& t : ts) t.join();
  long total = 0;
  for (long s : sums) total += s;
  return total;
}

TEST_P(Thread, CodeTemplatedOnItsThreadTypeRunsWithTasklets) {
  const int parts = 64, per = 1000;
  const long n = static_cast<long>(parts) * per;
  const long expect = n * (n - 1) / 2;
  EXPECT_EQ(sum_in_parallel<std::thread>(parts, per), expect);
  EXPECT_EQ(sched().block_on([&] { return sum_in_parallel<stackless::thread>(parts, per); }),
            expect);
}

TEST_P(Thread, AThousandThreadsBlockOnAChannelAtOnce) {
  // 1,000 OS threads would be 1,000 stacks of 8 MiB; these are tasklets, all parked at once.
  const int n = static_cast<int>(scaled(1000, 200));
  std::atomic<int> got{0};
  sched().block_on([&] {
    sl::channel<int> ch;
    std::vector<stackless::thread> ts;
    for (int i = 0; i < n; ++i) ts.emplace_back([&] { got += ch.receive(); });
    while (ch.balance() > -n) sl::this_tasklet::yield();  // every receiver is parked
    for (int i = 0; i < n; ++i) ch.send(1);
    for (auto& t : ts) t.join();
  });
  EXPECT_EQ(got.load(), n);
}

TEST_P(Thread, StdThreadsContract) {
  sched().block_on([] {
    stackless::thread empty;
    EXPECT_FALSE(empty.joinable());
    EXPECT_EQ(empty.get_id(), stackless::thread::id());
    try {
      empty.join();
      ADD_FAILURE() << "join of a thread that is not joinable did not throw";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::invalid_argument);
    }
    EXPECT_THROW(empty.detach(), std::system_error);

    std::atomic<bool> ran{false};
    stackless::thread a([&ran](int x) { ran = x == 7; }, 7);
    EXPECT_TRUE(a.joinable());
    EXPECT_NE(a.get_id(), stackless::thread::id());
    EXPECT_NE(a.get_id(), stackless::thread::current_id());
    stackless::thread b;
    swap(a, b);
    EXPECT_FALSE(a.joinable());
    EXPECT_TRUE(b.joinable());
    b.join();
    EXPECT_FALSE(b.joinable());
    EXPECT_TRUE(ran.load());

    // join() of itself: resource_deadlock_would_occur, as std::thread.
    stackless::thread* self_ptr = nullptr;
    std::atomic<bool> self_ok{false};
    sl::event go;
    stackless::thread self([&] {
      go.wait();
      try {
        self_ptr->join();
      } catch (const std::system_error& e) {
        self_ok = e.code() == std::errc::resource_deadlock_would_occur;
      }
    });
    self_ptr = &self;
    go.set();
    // Wait for the body to try; then join it from here.
    while (!self_ok.load() && self.tasklet_handle().alive()) sl::this_tasklet::yield();
    self.join();
    EXPECT_TRUE(self_ok.load());

    // Ids are distinct and hashable; a detached thread runs on without its handle.
    std::unordered_set<stackless::thread::id> ids;
    std::atomic<int> done{0};
    for (int i = 0; i < 10; ++i) {
      stackless::thread t([&done] { ++done; });
      ids.insert(t.get_id());
      t.detach();
      EXPECT_FALSE(t.joinable());
    }
    EXPECT_EQ(ids.size(), 10u);
    while (done.load() < 10) sl::this_tasklet::yield();
  });
}

TEST_P(Thread, FromAPlainThreadItNeedsAScheduler) {
  EXPECT_THROW(stackless::thread([] {}), sl::usage_error);
  stackless::thread t(sched(), [] {});
  t.join();  // a plain thread blocks
  EXPECT_FALSE(t.joinable());
}

}  // namespace
