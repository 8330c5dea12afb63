// SPDX-License-Identifier: Apache-2.0
// test_channel_threads.cpp — plain OS threads (no tasklet) as channel clients: thread to thread
// with no scheduler at all, thread to tasklet and back, select between threads, several plain
// threads and tasklets mixed as producers and consumers (every value once, per-producer order),
// timeouts and close seen by a plain thread.
#include <algorithm>
#include <thread>
#include <vector>

#include "channel_fixture.hpp"

namespace {

using namespace stackless_test;
using stackless::after;
using stackless::on_receive;
using stackless::on_send;
using stackless::select;

class ChannelThreads : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(ChannelThreads);

// ---- plain threads only (no scheduler) -------------------------------------------------------

TEST(ChannelThreadsOnly, ThreadToThreadInOrder) {
  const int n = static_cast<int>(scaled(20'000, 2'000));
  for (std::size_t cap : {std::size_t{0}, std::size_t{1}, std::size_t{16}}) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    channel<int> ch(cap);
    std::thread producer([ch, n]() mutable {
      for (int i = 0; i < n; ++i) ch.send(i);
      ch.close();
    });
    int expect = 0, wrong = 0;
    for (int v : ch) wrong += v != expect++;
    producer.join();
    EXPECT_EQ(expect, n);
    EXPECT_EQ(wrong, 0);
  }
}

TEST(ChannelThreadsOnly, ThreadPingPongAndSelect) {
  const int rounds = static_cast<int>(scaled(5'000, 500));
  channel<int> ping, pong;
  std::thread other([&] {
    for (int i = 0; i < rounds; ++i) pong.send(ping.receive() + 1);
  });
  int v = 0;
  for (int i = 0; i < rounds; ++i) {
    ping.send(v);
    v = pong.receive();
  }
  other.join();
  EXPECT_EQ(v, rounds);
  // Two threads select on send and receive of the same pair of channels.
  channel<int> a, b;
  std::atomic<int> done{0};
  auto worker = [&](int id) {
    int sent = 0, got = 0;
    while (sent < 200 || got < 200) {
      if (sent < 200 && got < 200) {
        select(on_send(a, id, [&] { ++sent; }), on_receive(b, [&](int) { ++got; }));
      } else if (sent < 200) {
        a.send(id), ++sent;
      } else {
        (void)b.receive(), ++got;
      }
    }
    done.fetch_add(1);
  };
  // A forwarder thread moves a → b.
  std::thread fwd([&] {
    for (int i = 0; i < 400; ++i) b.send(a.receive());
  });
  std::thread t1(worker, 1), t2(worker, 2);
  t1.join();
  t2.join();
  fwd.join();
  EXPECT_EQ(done.load(), 2);
}

TEST(ChannelThreadsOnly, ReceiveForTimesOutOnAPlainThread) {
  channel<int> ch;
  EXPECT_FALSE(ch.receive_for(10ms).has_value());
  int v = 4;
  EXPECT_FALSE(ch.send_for(v, 10ms));
  EXPECT_EQ(v, 4);
  EXPECT_EQ(ch.balance(), 0);
  std::thread t([ch]() mutable { ch.send(5); });
  EXPECT_EQ(ch.receive_for(60s), std::optional<int>(5));
  t.join();
}

// ---- plain threads with tasklets -------------------------------------------------------------

TEST_P(ChannelThreads, PlainThreadToTaskletAndBack) {
  const int n = static_cast<int>(scaled(5'000, 500));
  for (std::size_t cap : {std::size_t{0}, std::size_t{1}, std::size_t{8}}) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    channel<int> to_t(cap), to_p(cap);
    auto echo = sched().spawn([to_t, to_p]() mutable {
      for (int v : to_t) to_p.send(v * 2);
      to_p.close();
    });
    std::thread feeder([to_t, n]() mutable {
      for (int i = 0; i < n; ++i) to_t.send(i);
      to_t.close();
    });
    int expect = 0, wrong = 0;
    for (int v : to_p) wrong += v != 2 * expect++;
    feeder.join();
    echo.join();
    EXPECT_EQ(expect, n);
    EXPECT_EQ(wrong, 0);
  }
}

TEST_P(ChannelThreads, PlainThreadParkedReceiverAndSender) {
  // A plain thread blocked in receive() is served by a tasklet.
  channel<int> ch;
  std::optional<int> got;
  std::thread rx([&] { got = ch.receive(); });
  ASSERT_TRUE(wait_balance(ch, -1));
  sched().block_on([ch]() mutable { ch.send(1); });
  rx.join();
  EXPECT_EQ(got, std::optional<int>(1));
  // A plain thread blocked in send() is served by a tasklet's try_receive.
  std::thread tx([ch]() mutable { ch.send(2); });
  ASSERT_TRUE(wait_balance(ch, 1));
  EXPECT_EQ(sched().block_on([ch]() mutable { return ch.try_receive(); }), std::optional<int>(2));
  tx.join();
  // A plain thread blocked in receive() wakes with channel_closed when a tasklet closes.
  bool closed = false;
  std::thread rx2([&] {
    try {
      (void)ch.receive();
    } catch (const channel_closed&) {
      closed = true;
    }
  });
  ASSERT_TRUE(wait_balance(ch, -1));
  sched().block_on([ch]() mutable { ch.close(); });
  rx2.join();
  EXPECT_TRUE(closed);
}

TEST_P(ChannelThreads, PlainThreadSelectWithTasklets) {
  channel<int> a, b(2), out;
  const int per = static_cast<int>(scaled(2'000, 300));
  auto pa = sched().spawn([a, per]() mutable {
    for (int i = 0; i < per; ++i) a.send(1);
  });
  auto pb = sched().spawn([b, per]() mutable {
    for (int i = 0; i < per; ++i) b.send(1);
  });
  auto sink = sched().spawn([out]() mutable {
    int n = 0;
    for (int v : out) n += v;
    return n;
  });
  // The plain thread receives from a and b and forwards to `out`, all by select.
  int pending = 0, received = 0, forwarded = 0;
  while (received < 2 * per || pending > 0) {
    if (pending > 0 && received < 2 * per) {
      select(on_receive(a, [&](int) { ++received, ++pending; }),
             on_receive(b, [&](int) { ++received, ++pending; }),
             on_send(out, 1, [&] { --pending, ++forwarded; }));
    } else if (pending > 0) {
      select(on_send(out, 1, [&] { --pending, ++forwarded; }));
    } else {
      select(on_receive(a, [&](int) { ++received, ++pending; }),
             on_receive(b, [&](int) { ++received, ++pending; }));
    }
  }
  out.close();
  pa.join();
  pb.join();
  EXPECT_EQ(received, 2 * per);
  EXPECT_EQ(forwarded, 2 * per);
  EXPECT_EQ(sink.join(), 2 * per);
}

// Several plain threads and tasklets, mixed as producers and consumers, on one channel: every
// value is received exactly once, and each consumer sees each producer's values in order.
TEST_P(ChannelThreads, MixedThreadsAndTaskletsProducersAndConsumers) {
  const int thread_producers = 2, tasklet_producers = 3, thread_consumers = 2,
            tasklet_consumers = 2;
  const int producers = thread_producers + tasklet_producers;
  const int per = static_cast<int>(scaled(3'000, 300));
  for (std::size_t cap : {std::size_t{0}, std::size_t{4}}) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    channel<int> ch(cap);
    std::vector<std::atomic<int>> seen(static_cast<std::size_t>(producers) * per);
    std::atomic<int> order_violations{0}, received{0};
    auto produce = [ch, per](int p) mutable {
      for (int i = 0; i < per; ++i) ch.send(p * per + i);
    };
    auto consume = [&, ch]() mutable {
      std::vector<int> last(static_cast<std::size_t>(producers), -1);
      for (int v : ch) {
        const int p = v / per, i = v % per;
        if (i <= last[static_cast<std::size_t>(p)]) order_violations.fetch_add(1);
        last[static_cast<std::size_t>(p)] = i;
        seen[static_cast<std::size_t>(v)].fetch_add(1);
        received.fetch_add(1);
      }
    };
    std::vector<tasklet<void>> ts;
    std::vector<std::thread> threads;
    for (int c = 0; c < tasklet_consumers; ++c) ts.push_back(sched().spawn(consume));
    for (int c = 0; c < thread_consumers; ++c) threads.emplace_back(consume);
    std::vector<tasklet<void>> tprod;
    std::vector<std::thread> thprod;
    for (int p = 0; p < tasklet_producers; ++p) tprod.push_back(sched().spawn(produce, p));
    for (int p = tasklet_producers; p < producers; ++p) thprod.emplace_back(produce, p);
    for (auto& t : tprod) t.join();
    for (auto& th : thprod) th.join();
    ch.close();
    for (auto& t : ts) t.join();
    for (auto& th : threads) th.join();
    EXPECT_EQ(received.load(), producers * per);
    int wrong = 0;
    for (auto& s : seen) wrong += s.load() != 1;
    EXPECT_EQ(wrong, 0) << "values lost or duplicated";
    EXPECT_EQ(order_violations.load(), 0) << "a consumer saw a producer's values out of order";
  }
}

TEST_P(ChannelThreads, ReceiveForFromAPlainThreadTimesOutWhileTaskletsRun) {
  channel<int> ch;
  std::atomic<bool> stop{false};
  // Busy tasklets on every worker; none of them touches ch.
  std::vector<tasklet<void>> busy;
  for (unsigned i = 0; i < workers(); ++i) {
    busy.push_back(sched().spawn([&] {
      while (!stop.load()) this_tasklet::yield();
    }));
  }
  EXPECT_FALSE(ch.receive_for(10ms).has_value());
  int v = 1;
  EXPECT_FALSE(ch.send_for(v, 10ms));
  EXPECT_EQ(v, 1);
  EXPECT_TRUE(wait_balance(ch, 0));
  // And the channel still works between a plain thread and a tasklet.
  auto rx = sched().spawn([ch]() mutable { return ch.receive(); });
  ch.send(v);
  EXPECT_EQ(rx.join(), 1);
  stop = true;
  for (auto& t : busy) t.join();
}

TEST_P(ChannelThreads, PlainThreadAndTaskletAlternateDirections) {
  // Pairs of (plain thread, tasklet), each pair on its own rendezvous channel, taking turns to
  // send and to receive: both directions of the hand-off between a thread and a tasklet.
  const int rounds = static_cast<int>(scaled(2'000, 300));
  const int pairs = 2;
  std::vector<channel<int>> chans(pairs);
  std::atomic<long> sum_sent{0}, sum_got{0};
  std::vector<std::thread> threads;
  std::vector<tasklet<void>> ts;
  auto& s = sched();  // the scheduler runs before the threads start (see the test below for why)
  for (int k = 0; k < pairs; ++k) {
    channel<int> ch = chans[static_cast<std::size_t>(k)];
    threads.emplace_back([&, ch]() mutable {
      for (int i = 0; i < rounds; ++i) {
        if (i % 2) {
          ch.send(i);
          sum_sent.fetch_add(i);
        } else {
          sum_got.fetch_add(ch.receive());
        }
      }
    });
    ts.push_back(s.spawn([&, ch]() mutable {
      for (int i = 0; i < rounds; ++i) {
        if (i % 2 == 0) {
          ch.send(i);
          sum_sent.fetch_add(i);
        } else {
          sum_got.fetch_add(ch.receive());
        }
      }
    }));
  }
  for (auto& th : threads) th.join();
  for (auto& t : ts) t.join();
  EXPECT_EQ(sum_sent.load(), sum_got.load());
  EXPECT_EQ(sum_got.load(), static_cast<long>(pairs) * rounds * (rounds - 1) / 2);
  for (auto& ch : chans) EXPECT_TRUE(wait_balance(ch, 0));
}

// Plain threads that block in channel operations while schedulers are being made and destroyed:
// a plain thread about to block starts the threads of every scheduler that nothing drives yet
// (plain_thread_will_block), which must not race with a scheduler's own start-up.
TEST_P(ChannelThreads, PlainThreadsBlockingWhileSchedulersAreCreated) {
  const int rounds = static_cast<int>(scaled(200, 40));
  channel<int> ch;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int k = 0; k < 2; ++k) {
    threads.emplace_back([ch, &stop]() mutable {
      while (!stop.load()) (void)ch.receive_for(std::chrono::microseconds(20));
    });
  }
  for (int r = 0; r < rounds; ++r) {
    sl::options o = opts();
    sl::scheduler s(o);
    auto t = s.spawn([r] { return r; });
    if (!t.join_for(30s)) {
      // The tasklet never ran: the scheduler has no running worker. Its teardown would hang too,
      // so say why and stop here rather than wait for the hang guard.
      std::fprintf(
          stderr,
          "FATAL: round %d: a tasklet of a fresh %u-worker scheduler never ran while plain "
          "threads were blocking in channel operations (no worker thread started)\n%s\n",
          r, workers(), describe(s.stats()).c_str());
      std::fflush(stderr);
      std::abort();
    }
    EXPECT_EQ(t.join(), r);
    expect_clean(s);
  }
  stop = true;
  for (auto& th : threads) th.join();
}

}  // namespace
