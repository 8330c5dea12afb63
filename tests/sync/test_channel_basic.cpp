// SPDX-License-Identifier: Apache-2.0
// test_channel_basic.cpp — channel<T> basics: rendezvous send/receive between tasklets, buffered
// FIFO order (capacities 1, 3, 64), unbounded() never parks a sender, move-only values through
// every path, zero copies, balance() with parked senders and receivers, capacity(), handles that
// share one channel, values left in a dropped channel are destroyed.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <numeric>
#include <vector>

#include "channel_fixture.hpp"

namespace {

using namespace stackless_test;
using stackless::on_receive;
using stackless::on_send;
using stackless::select;

class ChannelBasic : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(ChannelBasic);

TEST_P(ChannelBasic, DefaultChannelIsARendezvous) {
  channel<int> ch;
  EXPECT_EQ(ch.capacity(), 0u);
  EXPECT_EQ(ch.balance(), 0);
  EXPECT_FALSE(ch.closing());
  EXPECT_FALSE(ch.closed());
  EXPECT_EQ(ch.get_preference(), stackless::preference::receiver);
  // send() parks until a receiver takes the value.
  std::atomic<bool> returned{false};
  auto tx = sched().spawn([ch, &returned]() mutable {
    ch.send(42);
    returned = true;
  });
  ASSERT_TRUE(wait_parked(ch, std::vector<tasklet<void>>{tx}, 1));
  EXPECT_FALSE(returned.load()) << "send() on a rendezvous channel returned without a receiver";
  EXPECT_EQ(ch.receive(), 42);
  tx.join();
  EXPECT_TRUE(returned.load());
  EXPECT_TRUE(wait_balance(ch, 0));
}

TEST_P(ChannelBasic, RendezvousSendReceiveBetweenTasklets) {
  const int n = static_cast<int>(scaled(3000, 400));
  channel<int> ch;
  auto rx = sched().spawn([ch, n]() mutable {
    std::int64_t sum = 0;
    for (int i = 0; i < n; ++i) {
      const int v = ch.receive();
      if (v != i) return -1 - static_cast<std::int64_t>(i);  // out of order
      sum += v;
    }
    return sum;
  });
  auto tx = sched().spawn([ch, n]() mutable {
    for (int i = 0; i < n; ++i) ch.send(i);
  });
  tx.join();
  EXPECT_EQ(rx.join(), static_cast<std::int64_t>(n) * (n - 1) / 2);
  EXPECT_TRUE(wait_balance(ch, 0));
}

TEST_P(ChannelBasic, PingPongBetweenTwoTasklets) {
  const int rounds = static_cast<int>(scaled(2000, 300));
  channel<int> ping, pong;
  auto a = sched().spawn([ping, pong, rounds]() mutable {
    int v = 0;
    for (int i = 0; i < rounds; ++i) {
      ping.send(v);
      v = pong.receive() + 1;
    }
    return v;
  });
  auto b = sched().spawn([ping, pong, rounds]() mutable {
    for (int i = 0; i < rounds; ++i) pong.send(ping.receive() + 1);
  });
  EXPECT_EQ(a.join(), 2 * rounds);
  b.join();
}

TEST_P(ChannelBasic, BufferedFifoOrderSingleProducerSingleConsumer) {
  for (std::size_t cap : {std::size_t{1}, std::size_t{3}, std::size_t{64}}) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    const int n = static_cast<int>(scaled(5000, 600));
    channel<int> ch(cap);
    EXPECT_EQ(ch.capacity(), cap);
    auto rx = sched().spawn([ch, n]() mutable {
      int bad = 0;
      for (int i = 0; i < n; ++i)
        if (ch.receive() != i) ++bad;
      return bad;
    });
    auto tx = sched().spawn([ch, n]() mutable {
      for (int i = 0; i < n; ++i) {
        ch.send(i);
        if (i % 17 == 0) this_tasklet::yield();
      }
    });
    tx.join();
    EXPECT_EQ(rx.join(), 0) << "values arrived out of FIFO order";
    EXPECT_TRUE(wait_balance(ch, 0));
  }
}

TEST_P(ChannelBasic, BufferedSendDoesNotParkWhileThereIsRoom) {
  for (std::size_t cap : {std::size_t{1}, std::size_t{3}, std::size_t{64}}) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    // One tasklet alone: if a send parked, nobody could wake it (block_on would report a
    // deadlock instead of hanging).
    const bool ok = sched().block_on([cap] {
      channel<int> ch(cap);
      for (std::size_t i = 0; i < cap; ++i) ch.send(static_cast<int>(i));
      int extra = 999;
      if (ch.try_send(extra)) return false;  // full: no room
      if (extra != 999) return false;
      for (std::size_t i = 0; i < cap; ++i)
        if (ch.receive() != static_cast<int>(i)) return false;
      return !ch.try_receive().has_value();
    });
    EXPECT_TRUE(ok);
  }
}

TEST_P(ChannelBasic, UnboundedNeverParksTheSender) {
  const int n = 10'000;
  // In a tasklet with no receiver anywhere: a parked send would never be woken.
  const int bad = sched().block_on([n] {
    auto ch = channel<int>::unbounded();
    if (ch.capacity() != SIZE_MAX) return -1;
    for (int i = 0; i < n; ++i) ch.send(i);
    int wrong = 0;
    for (int i = 0; i < n; ++i)
      if (ch.receive() != i) ++wrong;
    if (ch.try_receive()) ++wrong;
    return wrong;
  });
  EXPECT_EQ(bad, 0);
  // From a plain thread too.
  auto ch = channel<int>::unbounded();
  for (int i = 0; i < n; ++i) ch.send(i);
  auto rx = sched().spawn([ch, n]() mutable {
    int wrong = 0;
    for (int i = 0; i < n; ++i)
      if (ch.receive() != i) ++wrong;
    return wrong;
  });
  EXPECT_EQ(rx.join(), 0);
  EXPECT_FALSE(ch.try_receive().has_value());
}

TEST_P(ChannelBasic, MoveOnlyThroughRendezvous) {
  const int n = 200;
  channel<std::unique_ptr<int>> ch;
  auto rx = sched().spawn([ch, n]() mutable {
    int bad = 0;
    for (int i = 0; i < n; ++i) {
      std::unique_ptr<int> p = ch.receive();
      if (!p || *p != i) ++bad;
    }
    return bad;
  });
  auto tx = sched().spawn([ch, n]() mutable {
    for (int i = 0; i < n; ++i) ch.send(std::make_unique<int>(i));
  });
  tx.join();
  EXPECT_EQ(rx.join(), 0);
  // A sender parked first, a receiver from a plain thread; and the other way round.
  auto tx2 = sched().spawn([ch]() mutable { ch.send(std::make_unique<int>(7)); });
  ASSERT_TRUE(wait_parked(ch, std::vector<tasklet<void>>{tx2}, 1));
  auto p = ch.receive();
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, 7);
  tx2.join();
  auto rx2 = sched().spawn([ch]() mutable { return *ch.receive(); });
  ASSERT_TRUE(wait_parked(ch, std::vector<tasklet<int>>{rx2}, -1));
  ch.send(std::make_unique<int>(8));
  EXPECT_EQ(rx2.join(), 8);
}

TEST_P(ChannelBasic, MoveOnlyThroughBufferedAndTryOperations) {
  channel<std::unique_ptr<int>> ch(2);
  auto a = std::make_unique<int>(1);
  EXPECT_TRUE(ch.try_send(a));
  EXPECT_FALSE(a) << "a successful try_send() moves the value out";
  ch.send(std::make_unique<int>(2));
  auto c = std::make_unique<int>(3);
  EXPECT_FALSE(ch.try_send(c)) << "the buffer is full";
  ASSERT_TRUE(c) << "a failed try_send() leaves the value alone";
  EXPECT_EQ(*c, 3);
  auto r1 = ch.try_receive();
  ASSERT_TRUE(r1 && *r1);
  EXPECT_EQ(**r1, 1);
  EXPECT_TRUE(ch.send_for(c, 1s));
  EXPECT_FALSE(c);
  auto r2 = ch.receive_for(1s);
  ASSERT_TRUE(r2 && *r2);
  EXPECT_EQ(**r2, 2);
  // Across tasklets, buffered.
  const int n = 300;
  auto rx = sched().spawn([ch, n]() mutable {
    int bad = 0;
    auto first = ch.receive();  // the 3 sent above
    if (!first || *first != 3) ++bad;
    for (int i = 0; i < n; ++i) {
      auto p = ch.receive();
      if (!p || *p != i) ++bad;
    }
    return bad;
  });
  auto tx = sched().spawn([ch, n]() mutable {
    for (int i = 0; i < n; ++i) ch.send(std::make_unique<int>(i));
  });
  tx.join();
  EXPECT_EQ(rx.join(), 0);
}

TEST_P(ChannelBasic, MoveOnlyThroughSelect) {
  channel<std::unique_ptr<int>> rv;      // rendezvous
  channel<std::unique_ptr<int>> buf(1);  // buffered
  const int n = 100;
  auto rx = sched().spawn([rv, buf, n]() mutable {
    int bad = 0, got = 0;
    while (got < 2 * n) {
      select(on_receive(rv,
                        [&](std::unique_ptr<int> p) {
                          if (!p || *p < 0 || *p >= n) ++bad;
                          ++got;
                        }),
             on_receive(buf, [&](std::unique_ptr<int> p) {
               if (!p || *p < n || *p >= 2 * n) ++bad;
               ++got;
             }));
    }
    return bad;
  });
  auto tx = sched().spawn([rv, buf, n]() mutable {
    for (int i = 0; i < n; ++i) {
      int sent = 0;
      // on_send of a move-only value into both channels; exactly one happens per select.
      const std::size_t k = select(on_send(rv, std::make_unique<int>(i), [&] { ++sent; }),
                                   on_send(buf, std::make_unique<int>(n + i), [&] { ++sent; }));
      if (sent != 1 || k > 1) return false;
      // The other one goes by a plain send, so that every value of both ranges is sent once.
      if (k == 0)
        buf.send(std::make_unique<int>(n + i));
      else
        rv.send(std::make_unique<int>(i));
    }
    return true;
  });
  EXPECT_TRUE(tx.join());
  EXPECT_EQ(rx.join(), 0);
}

TEST_P(ChannelBasic, ValuesAreNeverCopied) {
  counted::reset();
  const int n = 50;
  {
    // Rendezvous, both hand-off directions, between tasklets.
    channel<counted> rv;
    auto rx = sched().spawn([rv, n]() mutable {
      int sum = 0;
      for (int i = 0; i < n; ++i) sum += rv.receive().v;
      return sum;
    });
    auto tx = sched().spawn([rv, n]() mutable {
      for (int i = 0; i < n; ++i) {
        counted c(i);
        rv.send(std::move(c));
        if (i % 3 == 0) this_tasklet::yield();
      }
    });
    tx.join();
    EXPECT_EQ(rx.join(), n * (n - 1) / 2);
    // A parked sender (receive takes from it) and a parked receiver (send hands to it).
    auto ps = sched().spawn([rv]() mutable { rv.send(counted(5)); });
    ASSERT_TRUE(wait_parked(rv, std::vector<tasklet<void>>{ps}, 1));
    EXPECT_EQ(rv.receive().v, 5);
    ps.join();
    auto pr = sched().spawn([rv]() mutable { return rv.receive().v; });
    ASSERT_TRUE(wait_parked(rv, std::vector<tasklet<int>>{pr}, -1));
    rv.send(counted(6));
    EXPECT_EQ(pr.join(), 6);
  }
  {
    // Buffered, try_, timed, unbounded, range-for.
    channel<counted> ch(4);
    counted a(1), b(2), c(3);
    ch.send(std::move(a));
    EXPECT_TRUE(ch.try_send(b));
    EXPECT_TRUE(ch.send_for(c, 1s));
    EXPECT_EQ(ch.receive().v, 1);
    EXPECT_EQ(ch.try_receive()->v, 2);
    EXPECT_EQ(ch.receive_for(1s)->v, 3);
    auto ub = channel<counted>::unbounded();
    for (int i = 0; i < 10; ++i) ub.send(counted(i));
    ub.close();
    int sum = 0;
    for (auto&& x : ub) sum += x.v;
    EXPECT_EQ(sum, 45);
  }
  {
    // select: on_send and on_receive.
    channel<counted> ch(1);
    select(on_send(ch, counted(9), [] {}));
    int got = 0;
    select(on_receive(ch, [&](counted x) { got = x.v; }));
    EXPECT_EQ(got, 9);
    ch.send(counted(10));
    select(on_receive(ch, [&](std::optional<counted> x) { got = x ? x->v : -1; }));
    EXPECT_EQ(got, 10);
  }
  EXPECT_EQ(counted::copies.load(), 0)
      << "a channel copied a value (moves: " << counted::moves.load() << ")";
}

TEST_P(ChannelBasic, BalanceCountsParkedSendersAndReceivers) {
  channel<int> ch;
  EXPECT_EQ(ch.balance(), 0) << "idle";
  const int k = 5;
  std::vector<tasklet<void>> senders;
  for (int i = 0; i < k; ++i) senders.push_back(sched().spawn([ch, i]() mutable { ch.send(i); }));
  ASSERT_TRUE(wait_parked(ch, senders, k)) << "balance " << ch.balance();
  EXPECT_EQ(ch.balance(), k);
  // Serve them one by one from a plain thread.
  std::vector<int> got;
  for (int i = 0; i < k; ++i) {
    got.push_back(ch.receive());
    EXPECT_TRUE(wait_balance(ch, k - 1 - i)) << "after " << i + 1 << " receives: " << ch.balance();
  }
  for (auto& t : senders) t.join();
  std::sort(got.begin(), got.end());
  std::vector<int> want(k);
  std::iota(want.begin(), want.end(), 0);
  EXPECT_EQ(got, want);
  EXPECT_TRUE(wait_balance(ch, 0));
  EXPECT_EQ(ch.balance(), 0);

  std::vector<tasklet<int>> receivers;
  for (int i = 0; i < k; ++i)
    receivers.push_back(sched().spawn([ch]() mutable { return ch.receive(); }));
  ASSERT_TRUE(wait_parked(ch, receivers, -k)) << "balance " << ch.balance();
  EXPECT_EQ(ch.balance(), -k);
  for (int i = 0; i < k; ++i) {
    ch.send(100 + i);
    EXPECT_TRUE(wait_balance(ch, -k + 1 + i)) << "after " << i + 1 << " sends: " << ch.balance();
  }
  got.clear();
  for (auto& t : receivers) got.push_back(t.join());
  std::sort(got.begin(), got.end());
  for (auto& w : want) w += 100;
  EXPECT_EQ(got, want);
  EXPECT_TRUE(wait_balance(ch, 0));
  EXPECT_EQ(ch.balance(), 0);
}

TEST_P(ChannelBasic, BalanceCountsSendersParkedOnAFullBuffer) {
  channel<int> ch(2);
  ch.send(0);
  ch.send(1);
  EXPECT_EQ(ch.balance(), 0) << "buffered values are not parked senders";
  const int k = 3;
  std::vector<tasklet<void>> senders;
  for (int i = 0; i < k; ++i)
    senders.push_back(sched().spawn([ch, i]() mutable { ch.send(2 + i); }));
  ASSERT_TRUE(wait_parked(ch, senders, k)) << "balance " << ch.balance();
  std::vector<int> got;
  for (int i = 0; i < k + 2; ++i) got.push_back(ch.receive());
  for (auto& t : senders) t.join();
  EXPECT_EQ(got[0], 0);
  EXPECT_EQ(got[1], 1);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_TRUE(wait_balance(ch, 0));
}

TEST_P(ChannelBasic, CapacityAndSharedHandles) {
  EXPECT_EQ(channel<int>().capacity(), 0u);
  EXPECT_EQ(channel<int>(1).capacity(), 1u);
  EXPECT_EQ(channel<int>(3).capacity(), 3u);
  EXPECT_EQ(channel<int>(1000).capacity(), 1000u);
  EXPECT_EQ(channel<int>::unbounded().capacity(), SIZE_MAX);
  channel<int> a(3);
  channel<int> b = a;  // copies share the channel
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a == channel<int>(3));
  b.send(5);
  EXPECT_EQ(a.receive(), 5);
  channel<int> c(std::move(b));
  EXPECT_TRUE(c == a);
  channel<int> d;
  d = c;
  EXPECT_TRUE(d == a);
  EXPECT_EQ(d.capacity(), 3u);
  d.set_preference(stackless::preference::sender);
  EXPECT_EQ(a.get_preference(), stackless::preference::sender);
  a.close();
  EXPECT_TRUE(d.closing());
  // A handle captured by a tasklet shares it too.
  channel<int> e(1);
  sched().block_on([e]() mutable { e.send(77); });
  EXPECT_EQ(e.receive(), 77);
}

TEST_P(ChannelBasic, ValuesLeftInADroppedChannelAreDestroyed) {
  auto token = std::make_shared<int>(1);
  {
    channel<std::shared_ptr<int>> ch(8);
    for (int i = 0; i < 5; ++i) ch.send(token);
    EXPECT_EQ(token.use_count(), 6);
    auto first = ch.receive();
    EXPECT_EQ(token.use_count(), 6);
  }
  EXPECT_EQ(token.use_count(), 1) << "a dropped channel leaked its buffered values";
  {
    auto ub = channel<std::shared_ptr<int>>::unbounded();
    for (int i = 0; i < 100; ++i) ub.send(token);
    sched().block_on([&ub] { (void)ub.receive(); });
  }
  EXPECT_EQ(token.use_count(), 1) << "a dropped unbounded channel leaked its values";
}

}  // namespace
