// SPDX-License-Identifier: Apache-2.0
// test_channel_timeouts.cpp — try_send / try_receive never park, and succeed when a partner is
// parked or the buffer has room / a value; send_for / receive_for (and the _until forms) time
// out, and the channel then works normally: a timed-out send_for keeps its value, a timed-out
// receive_for leaves nothing behind that could swallow a later value; receive_for / send_for
// succeed when the partner comes before the deadline; many tiny timeouts mixed with traffic lose
// and duplicate nothing. No test asserts how long anything took.
#include <algorithm>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "channel_fixture.hpp"

namespace {

using namespace stackless_test;

class ChannelTimeouts : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(ChannelTimeouts);

TEST_P(ChannelTimeouts, TryOperationsNeverPark) {
  in_tasklet_and_thread(sched(), [] {
    channel<std::unique_ptr<int>> rv;
    auto v = std::make_unique<int>(1);
    EXPECT_FALSE(rv.try_send(v)) << "rendezvous with no receiver";
    ASSERT_TRUE(v);
    EXPECT_EQ(*v, 1);
    EXPECT_FALSE(rv.try_receive().has_value()) << "rendezvous with no sender";
    EXPECT_EQ(rv.balance(), 0) << "a failed try_ operation left a waiter behind";

    channel<std::unique_ptr<int>> buf(2);
    EXPECT_FALSE(buf.try_receive().has_value()) << "empty buffer";
    EXPECT_TRUE(buf.try_send(v));
    EXPECT_FALSE(v);
    auto w = std::make_unique<int>(2);
    EXPECT_TRUE(buf.try_send(w));
    auto x = std::make_unique<int>(3);
    EXPECT_FALSE(buf.try_send(x)) << "full buffer";
    ASSERT_TRUE(x);
    EXPECT_EQ(*x, 3);
    auto r = buf.try_receive();
    ASSERT_TRUE(r && *r);
    EXPECT_EQ(**r, 1);
    EXPECT_TRUE(buf.try_send(x)) << "room again";
    EXPECT_EQ(**buf.try_receive(), 2);
    EXPECT_EQ(**buf.try_receive(), 3);
    EXPECT_FALSE(buf.try_receive().has_value());
  });
}

TEST_P(ChannelTimeouts, TrySendSucceedsWhenAReceiverIsParked) {
  channel<int> ch;
  for (int from_tasklet = 0; from_tasklet < 2; ++from_tasklet) {
    auto rx = sched().spawn([ch]() mutable { return ch.receive(); });
    ASSERT_TRUE(wait_parked(ch, std::vector<tasklet<int>>{rx}, -1));
    bool ok = false;
    if (from_tasklet) {
      ok = sched().block_on([ch]() mutable {
        int v = 21;
        return ch.try_send(v);
      });
    } else {
      int v = 20;
      ok = ch.try_send(v);
    }
    EXPECT_TRUE(ok) << "try_send() failed with a receiver parked";
    if (ok) {
      EXPECT_EQ(rx.join(), 20 + from_tasklet);
    } else {
      ch.send(20 + from_tasklet);
      rx.join();
    }
    EXPECT_TRUE(wait_balance(ch, 0));
  }
}

TEST_P(ChannelTimeouts, TryReceiveSucceedsWhenASenderIsParked) {
  for (std::size_t cap : {std::size_t{0}, std::size_t{1}}) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    channel<int> ch(cap);
    if (cap) ch.send(99);  // fill the buffer so that the next sender parks
    std::atomic<bool> returned{false};
    auto tx = sched().spawn([ch, &returned]() mutable {
      ch.send(30);
      returned = true;
    });
    ASSERT_TRUE(cap ? wait_blocked(std::vector<tasklet<void>>{tx})
                    : wait_parked(ch, std::vector<tasklet<void>>{tx}, 1));
    if (cap) {
      EXPECT_EQ(ch.try_receive(), std::optional<int>(99));
    }
    EXPECT_EQ(sched().block_on([ch]() mutable { return ch.try_receive(); }),
              std::optional<int>(30));
    tx.join();
    EXPECT_TRUE(returned.load());
    EXPECT_FALSE(ch.try_receive().has_value());
  }
}

// A buffered channel whose buffer is empty has room, also right after a parked receiver was
// handed a value and before that receiver has run again. preference none / sender: the caller
// continues after serving the parked receiver, so on one worker the receiver has surely not run.
TEST_P(ChannelTimeouts, TrySendFindsRoomRightAfterServingAParkedReceiver) {
  for (auto pref : {stackless::preference::none, stackless::preference::sender}) {
    SCOPED_TRACE(pref == stackless::preference::none ? "preference none" : "preference sender");
    channel<int> ch(1);
    ch.set_preference(pref);
    auto rx = sched().spawn([ch]() mutable { return ch.receive(); });
    ASSERT_TRUE(wait_parked(ch, std::vector<tasklet<int>>{rx}, -1));
    const auto r = sched().block_on([ch]() mutable {
      int a = 1, b = 2;
      const bool first = ch.try_send(a);   // to the parked receiver
      const bool second = ch.try_send(b);  // into the empty buffer
      return std::make_pair(first, second);
    });
    EXPECT_TRUE(r.first) << "try_send() to a parked receiver failed";
    EXPECT_TRUE(r.second) << "try_send() found no room in the empty buffer of a capacity-1 channel";
    EXPECT_EQ(rx.join(), r.first ? 1 : 2);
    if (r.first && r.second) {
      EXPECT_EQ(ch.try_receive(), std::optional<int>(2));
    }
  }
}

TEST_P(ChannelTimeouts, SendForTimesOutKeepsItsValueAndTheChannelStillWorks) {
  for (std::size_t cap : {std::size_t{0}, std::size_t{1}}) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    channel<std::unique_ptr<int>> ch(cap);
    if (cap) ch.send(std::make_unique<int>(0));  // full
    // From a tasklet and from a plain thread.
    const bool in_t = sched().block_on([ch]() mutable {
      auto v = std::make_unique<int>(5);
      const bool sent = ch.send_for(v, 20ms);
      return !sent && v && *v == 5;
    });
    EXPECT_TRUE(in_t) << "send_for() in a tasklet did not time out, or lost its value";
    auto v = std::make_unique<int>(6);
    EXPECT_FALSE(ch.send_for(v, 20ms));
    ASSERT_TRUE(v) << "a timed-out send_for() gave its value away";
    EXPECT_EQ(*v, 6);
    EXPECT_TRUE(wait_balance(ch, 0)) << "a timed-out sender still counts: " << ch.balance();
    if (cap) {
      EXPECT_EQ(*ch.receive(), 0);
    }
    // Nothing of the timed-out sends is left in the channel.
    EXPECT_FALSE(ch.try_receive().has_value());
    // A later pair works, with the kept value.
    auto rx = sched().spawn([ch]() mutable { return *ch.receive(); });
    ch.send(std::move(v));
    EXPECT_EQ(rx.join(), 6);
    // And send_for succeeds when a receiver comes before the deadline.
    auto rx2 = sched().spawn([ch]() mutable { return *ch.receive(); });
    auto w = std::make_unique<int>(7);
    EXPECT_TRUE(ch.send_for(w, 60s));
    EXPECT_FALSE(w) << "a successful send_for() keeps its value";
    EXPECT_EQ(rx2.join(), 7);
    EXPECT_TRUE(wait_balance(ch, 0));
  }
}

TEST_P(ChannelTimeouts, ReceiveForTimesOutAndLeavesNothingBehind) {
  for (std::size_t cap : {std::size_t{0}, std::size_t{2}}) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    channel<int> ch(cap);
    EXPECT_FALSE(sched().block_on([ch]() mutable { return ch.receive_for(20ms); }).has_value());
    EXPECT_FALSE(ch.receive_for(20ms).has_value());
    EXPECT_TRUE(wait_balance(ch, 0)) << "a timed-out receiver still counts: " << ch.balance();
    // A value sent now must not go to a receiver that timed out.
    if (cap == 0) {
      auto tx = sched().spawn([ch]() mutable { ch.send(8); });
      ASSERT_TRUE(wait_parked(ch, std::vector<tasklet<void>>{tx}, 1))
          << "the send found a receiver that had timed out";
      EXPECT_EQ(ch.receive(), 8);
      tx.join();
    } else {
      ch.send(8);
      EXPECT_EQ(ch.try_receive(), std::optional<int>(8));
    }
    EXPECT_TRUE(wait_balance(ch, 0));
  }
}

TEST_P(ChannelTimeouts, ReceiveForSucceedsWhenAValueArrivesBeforeTheDeadline) {
  channel<int> ch;
  // A tasklet waits; a plain thread sends.
  auto rx = sched().spawn([ch]() mutable { return ch.receive_for(60s); });
  ASSERT_TRUE(wait_parked(ch, std::vector<tasklet<std::optional<int>>>{rx}, -1));
  ch.send(9);
  EXPECT_EQ(rx.join(), std::optional<int>(9));
  // A plain thread waits; a tasklet sends after a few yields.
  auto tx = sched().spawn([ch]() mutable {
    for (int i = 0; i < 10; ++i) this_tasklet::yield();
    ch.send(10);
  });
  EXPECT_EQ(ch.receive_for(60s), std::optional<int>(10));
  tx.join();
  // Buffered: the value is there already.
  channel<int> buf(1);
  buf.send(11);
  EXPECT_EQ(buf.receive_for(0ms), std::optional<int>(11));
}

TEST_P(ChannelTimeouts, UntilFormsAndZeroDurations) {
  channel<int> ch(1);
  const auto past = std::chrono::steady_clock::now() - 1s;
  EXPECT_FALSE(ch.receive_until(past).has_value());
  int v = 1;
  EXPECT_TRUE(ch.send_until(v, past)) << "room in the buffer: no waiting needed";
  int w = 2;
  EXPECT_FALSE(ch.send_until(w, std::chrono::steady_clock::now() + 10ms));
  EXPECT_EQ(w, 2);
  EXPECT_FALSE(ch.send_for(w, 0ms));
  EXPECT_EQ(ch.receive_until(std::chrono::steady_clock::now() + 10s), std::optional<int>(1));
  EXPECT_FALSE(ch.receive_for(0ms).has_value());
  EXPECT_FALSE(ch.receive_for(-5ms).has_value());
  // A zero timeout still meets a parked partner.
  channel<int> rv;
  auto rx = sched().spawn([rv]() mutable { return rv.receive(); });
  ASSERT_TRUE(wait_parked(rv, std::vector<tasklet<int>>{rx}, -1));
  int z = 12;
  const bool sent = rv.send_for(z, 0ms);
  EXPECT_TRUE(sent) << "send_for(0) with a receiver parked";
  if (!sent) rv.send(12);  // let the receiver finish anyway
  EXPECT_EQ(rx.join(), 12);
}

// Tiny timeouts racing with real traffic: every value is received exactly once; a sender retries
// its kept value after each time-out.
TEST_P(ChannelTimeouts, ManyTinyTimeoutsLoseAndDuplicateNothing) {
  const int producers = 3, consumers = 3;
  const int per = static_cast<int>(scaled(1500, 200));
  for (std::size_t cap : {std::size_t{0}, std::size_t{2}}) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    channel<std::unique_ptr<int>> ch(cap);
    std::vector<std::atomic<int>> seen(static_cast<std::size_t>(producers) * per);
    std::atomic<int> received{0}, send_timeouts{0}, receive_timeouts{0};
    std::vector<tasklet<void>> ts;
    for (int p = 0; p < producers; ++p) {
      ts.push_back(sched().spawn([&, ch, p]() mutable {
        std::minstd_rand rng(static_cast<unsigned>(p + 1));
        for (int i = 0; i < per; ++i) {
          auto v = std::make_unique<int>(p * per + i);
          while (!ch.send_for(v, std::chrono::microseconds(rng() % 50))) {
            if (!v) {
              ADD_FAILURE() << "a timed-out send_for() lost its value";
              return;
            }
            send_timeouts.fetch_add(1, std::memory_order_relaxed);
          }
          if (v) ADD_FAILURE() << "a successful send_for() kept its value";
        }
      }));
    }
    for (int c = 0; c < consumers; ++c) {
      ts.push_back(sched().spawn([&, ch, c]() mutable {
        std::minstd_rand rng(static_cast<unsigned>(100 + c));
        const int total = producers * per;
        while (received.load() < total) {
          auto r = ch.receive_for(std::chrono::microseconds(rng() % 50));
          if (!r) {
            receive_timeouts.fetch_add(1, std::memory_order_relaxed);
            continue;
          }
          seen[static_cast<std::size_t>(**r)].fetch_add(1);
          received.fetch_add(1);
        }
      }));
    }
    for (auto& t : ts) t.join();
    EXPECT_EQ(received.load(), producers * per);
    int wrong = 0;
    for (auto& s : seen) wrong += s.load() != 1;
    EXPECT_EQ(wrong, 0) << "values lost or duplicated";
    EXPECT_FALSE(ch.try_receive().has_value());
    EXPECT_TRUE(wait_balance(ch, 0));
    RecordProperty("send_timeouts_cap" + std::to_string(cap), send_timeouts.load());
    RecordProperty("receive_timeouts_cap" + std::to_string(cap), receive_timeouts.load());
  }
}

}  // namespace
