// SPDX-License-Identifier: Apache-2.0
// tests/sync/test_callbacks.cpp — Stackless's observation hooks, per scheduler:
// set_schedule_callback(prev, next) at every switch-in, and set_channel_callback(channel,
// tasklet, sending, will_block) at the start of every blocking send and receive.
#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "channel_fixture.hpp"

namespace {

using namespace stackless_test;

class Callbacks : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(Callbacks);

TEST_P(Callbacks, ScheduleCallbackSeesEverySwitchInWithThePreviousTaskletOfThatWorker) {
  auto& s = sched();
  auto total_runs = [&] {
    std::uint64_t n = 0;
    for (const auto& w : s.stats().workers) n += w.runs;
    return n;
  };
  const std::uint64_t runs_before = total_runs();  // idle now: nothing runs until the spawns
  std::mutex mu;
  std::vector<std::vector<std::pair<std::uint64_t, std::uint64_t>>> seen(workers());
  s.set_schedule_callback([&](std::uint64_t prev, std::uint64_t next, unsigned worker) {
    std::lock_guard g(mu);
    ASSERT_LT(worker, workers());
    seen[worker].emplace_back(prev, next);
  });
  std::vector<std::uint64_t> ids;
  std::vector<sl::tasklet<void>> ts;
  for (int i = 0; i < 8; ++i)
    ts.push_back(s.spawn([] {
      for (int k = 0; k < 3; ++k) sl::this_tasklet::yield();
    }));
  for (auto& t : ts) ids.push_back(t.id());
  for (auto& t : ts) t.join();
  s.set_schedule_callback({});  // removed: nothing more is recorded
  const std::uint64_t runs_between = total_runs() - runs_before;
  std::size_t before;
  {
    std::lock_guard g(mu);
    before = 0;
    for (auto& w : seen) before += w.size();
  }
  s.spawn([] {}).join();
  std::lock_guard g(mu);
  std::size_t after = 0;
  for (auto& w : seen) after += w.size();
  EXPECT_EQ(after, before);
  // One call per switch-in: at most one per turn (stats' runs; a yield with nothing else
  // runnable on its worker is a new turn without a switch, as in Stackless), each of the 8 at
  // least once; on each worker, every call's prev is the previous call's next.
  EXPECT_LE(before, runs_between);
  EXPECT_GE(before, ids.size());
  std::map<std::uint64_t, int> runs;
  for (auto& w : seen) {
    for (std::size_t i = 0; i < w.size(); ++i) {
      ++runs[w[i].second];
      if (i > 0) {
        EXPECT_EQ(w[i].first, w[i - 1].second);
      }
    }
  }
  for (std::uint64_t id : ids) {
    EXPECT_GE(runs[id], 1) << "tasklet #" << id;
    EXPECT_LE(runs[id], 4) << "tasklet #" << id;
  }
}

TEST_P(Callbacks, AThrowingScheduleCallbackIsReportedAndIgnored) {
  auto& s = sched();
  std::atomic<int> calls{0};
  s.set_schedule_callback([&](std::uint64_t, std::uint64_t, unsigned) {
    calls.fetch_add(1);
    throw std::runtime_error("from the callback");
  });
  EXPECT_EQ(s.block_on([] { return 7; }), 7);
  EXPECT_GE(calls.load(), 1);
  s.set_schedule_callback({});
}

TEST_P(Callbacks, ChannelCallbackSeesEachBlockingSendAndReceiveWithItsGuess) {
  auto& s = sched();
  struct event {
    const void* chan;
    std::uint64_t tasklet;
    bool sending;
    bool will_block;
  };
  std::mutex mu;
  std::vector<event> events;
  s.set_channel_callback([&](const void* c, std::uint64_t t, bool sending, bool will_block) {
    std::lock_guard g(mu);
    events.push_back({c, t, sending, will_block});
  });
  channel<int> ch;           // a rendezvous
  channel<int> buffered(2);  // room for two
  std::uint64_t receiver_id = 0, sender_id = 0;
  s.block_on([&] {
    // A receive with no sender: it will block. Then a send that finds it parked: it will not.
    auto r = sl::spawn([&] { return ch.receive(); });
    receiver_id = r.id();
    while (!r.blocked()) sl::this_tasklet::yield();
    sender_id = sl::this_tasklet::id();
    ch.send(5);
    EXPECT_EQ(r.join(), 5);
    // A buffered channel: two sends fit, the third would wait (a try_send is not reported).
    buffered.send(1);
    buffered.send(2);
    int three = 3;
    EXPECT_FALSE(buffered.try_send(three));
    EXPECT_EQ(buffered.receive(), 1);
    EXPECT_EQ(buffered.receive(), 2);
  });
  s.set_channel_callback({});
  s.block_on([&] {  // removed: not reported
    buffered.send(9);
    EXPECT_EQ(buffered.receive(), 9);
  });
  std::lock_guard g(mu);
  ASSERT_EQ(events.size(), 6u);
  const void* rv = ch.core();
  const void* bf = buffered.core();
  EXPECT_EQ(events[0].chan, rv);
  EXPECT_EQ(events[0].tasklet, receiver_id);
  EXPECT_FALSE(events[0].sending);
  EXPECT_TRUE(events[0].will_block);
  EXPECT_EQ(events[1].chan, rv);
  EXPECT_EQ(events[1].tasklet, sender_id);
  EXPECT_TRUE(events[1].sending);
  EXPECT_FALSE(events[1].will_block);
  for (int i = 2; i < 6; ++i) {
    EXPECT_EQ(events[i].chan, bf);
    EXPECT_EQ(events[i].sending, i < 4);
    EXPECT_FALSE(events[i].will_block) << i;  // room to send, an element to receive
  }
}

TEST_P(Callbacks, AChannelCallbackMayThrowAndTheCallDoesNotHappen) {
  auto& s = sched();
  channel<int> buffered(1);
  s.set_channel_callback([](const void*, std::uint64_t, bool sending, bool) {
    if (sending) throw std::runtime_error("refused by the callback");
  });
  s.block_on([&] {
    EXPECT_THROW(buffered.send(1), std::runtime_error);
    EXPECT_FALSE(buffered.try_receive().has_value());  // nothing was sent
  });
  s.set_channel_callback({});
}

}  // namespace
