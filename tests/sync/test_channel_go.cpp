// SPDX-License-Identifier: Apache-2.0
// test_channel_go.cpp — scenarios of Go's own channel tests (src/runtime/chan_test.go), rewritten
// here in C++ from their idea for tasklets and channel<T>; where Go panics (send on a closed
// channel) or hands out a zero value (receive from a closed channel), the scenario uses our
// semantics (channel_closed, Stackless's close). Plus a ring and a daisy chain of tasklets
// passing a token.
#include <algorithm>
#include <array>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "channel_fixture.hpp"

namespace {

using namespace stackless_test;
using stackless::default_case;
using stackless::on_receive;
using stackless::on_send;
using stackless::select;

class ChannelGo : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(ChannelGo);

const std::size_t kCaps[] = {0, 1, 10, 100};

// Scenario from Go's chan_test.go, TestChan: for each capacity, receive from an empty channel
// blocks, a non-blocking receive does not, a send to a full channel blocks, close unblocks
// receive, 100 values arrive in FIFO order.
TEST_P(ChannelGo, TestChanBasicsPerCapacity) {
  for (std::size_t cap : kCaps) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    {
      // Receive from an empty channel blocks.
      channel<int> c(cap);
      std::atomic<bool> received{false};
      auto rx = sched().spawn([c, &received]() mutable {
        (void)c.receive();
        received = true;
      });
      ASSERT_TRUE(wait_blocked(std::vector<tasklet<void>>{rx}));
      EXPECT_FALSE(received.load()) << "receive from an empty channel did not block";
      c.send(0);
      rx.join();
      EXPECT_TRUE(received.load());
    }
    {
      // A non-blocking receive does not block.
      channel<int> c(cap);
      EXPECT_FALSE(sched().block_on([c]() mutable { return c.try_receive(); }).has_value());
      int which = -1;
      select(on_receive(c, [&](int) { which = 0; }), default_case([&] { which = 1; }));
      EXPECT_EQ(which, 1);
    }
    {
      // A send to a full channel blocks.
      channel<int> c(cap);
      for (std::size_t i = 0; i < cap; ++i) {
        int v = static_cast<int>(i);
        ASSERT_TRUE(c.try_send(v));
      }
      std::atomic<bool> sent{false};
      auto tx = sched().spawn([c, &sent]() mutable {
        c.send(-1);
        sent = true;
      });
      ASSERT_TRUE(wait_blocked(std::vector<tasklet<void>>{tx}));
      EXPECT_FALSE(sent.load()) << "send to a full channel did not block";
      for (std::size_t i = 0; i < cap; ++i) EXPECT_EQ(c.receive(), static_cast<int>(i));
      EXPECT_EQ(c.receive(), -1);
      tx.join();
      EXPECT_TRUE(sent.load());
    }
    {
      // Close unblocks receive (Go: with the zero value; here: channel_closed).
      channel<int> c(cap);
      auto rx = sched().spawn([c]() mutable {
        try {
          (void)c.receive();
        } catch (const channel_closed&) {
          return true;
        }
        return false;
      });
      ASSERT_TRUE(wait_blocked(std::vector<tasklet<bool>>{rx}));
      c.close();
      EXPECT_TRUE(rx.join());
      // "Ensure that we receive 0 from closed chan": a closed drained channel keeps saying so.
      for (int i = 0; i < 3; ++i) EXPECT_THROW(c.receive(), channel_closed);
    }
    {
      // Send 100 integers, ensure that we receive them non-corrupted in FIFO order.
      channel<int> c(cap);
      auto tx = sched().spawn([c]() mutable {
        for (int i = 0; i < 100; ++i) c.send(i);
      });
      int wrong = 0;
      for (int i = 0; i < 100; ++i) wrong += c.receive() != i;
      tx.join();
      EXPECT_EQ(wrong, 0);
    }
  }
}

// Scenario from Go's chan_test.go, TestChan ("Send 1000 integers in 4 goroutines, ensure that we
// receive what we send"): many producers and consumers on channels of capacity 0, 1, 10, 100;
// every value is received exactly once.
TEST_P(ChannelGo, ManyProducersManyConsumersEveryValueOnce) {
  const int P = 4, C = 4;
  const int per = static_cast<int>(scaled(1000, 150));
  for (std::size_t cap : kCaps) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    channel<int> c(cap);
    std::vector<std::atomic<int>> recv(static_cast<std::size_t>(P) * per);
    std::vector<tasklet<void>> ps;
    std::vector<tasklet<int>> cs;
    for (int p = 0; p < P; ++p) {
      ps.push_back(sched().spawn([c, p, per]() mutable {
        for (int i = 0; i < per; ++i) c.send(p * per + i);
      }));
    }
    for (int k = 0; k < C; ++k) {
      cs.push_back(sched().spawn([c, &recv]() mutable {
        int n = 0;
        for (int v : c) {
          recv[static_cast<std::size_t>(v)].fetch_add(1);
          ++n;
        }
        return n;
      }));
    }
    for (auto& t : ps) t.join();
    c.close();
    int total = 0;
    for (auto& t : cs) total += t.join();
    EXPECT_EQ(total, P * per);
    int wrong = 0;
    for (auto& r : recv) wrong += r.load() != 1;
    EXPECT_EQ(wrong, 0) << "values lost or received twice";
  }
}

// Scenario from Go's chan_test.go, TestMultiConsumer: workers read from q, some yield, and write
// to r; the sum and the count of what comes out match what went in.
TEST_P(ChannelGo, TestMultiConsumer) {
  const int nwork = 23;
  const int niter = static_cast<int>(scaled(27'182, 3'000, 2'000));
  const int pn[] = {2, 3, 7, 11, 13, 17, 19, 23, 27, 31};
  channel<int> q(nwork * 3), r(nwork * 3);
  std::vector<tasklet<void>> ws;
  std::atomic<int> alive{nwork};
  for (int w = 0; w < nwork; ++w) {
    ws.push_back(sched().spawn([q, r, w, &pn, &alive]() mutable {
      for (int v : q) {
        if (pn[w % 10] == v) this_tasklet::yield();  // mess with the fifo-ish nature of range
        r.send(v);
      }
      if (alive.fetch_sub(1) == 1) r.close();
    }));
  }
  auto collector = sched().spawn([r]() mutable {
    long n = 0, s = 0;
    for (int v : r) {
      ++n;
      s += v;
    }
    return std::make_pair(n, s);
  });
  long expect = 0;
  for (int i = 0; i < niter; ++i) {
    const int v = pn[i % 10];
    expect += v;
    q.send(v);
  }
  q.close();
  for (auto& w : ws) w.join();
  const auto got = collector.join();
  EXPECT_EQ(got.first, niter);
  EXPECT_EQ(got.second, expect);
}

// A ring of tasklets passing a token: each adds one and passes it on (not from chan_test.go).
TEST_P(ChannelGo, RingOfTaskletsPassesAToken) {
  const int n = static_cast<int>(scaled(100, 30));
  const int laps = static_cast<int>(scaled(100, 10));
  std::vector<channel<int>> links(static_cast<std::size_t>(n));
  std::vector<tasklet<void>> ring;
  for (int i = 1; i < n; ++i) {
    channel<int> in = links[static_cast<std::size_t>(i - 1)],
                 out = links[static_cast<std::size_t>(i)];
    ring.push_back(sched().spawn([in, out, laps]() mutable {
      for (int l = 0; l < laps; ++l) out.send(in.receive() + 1);
    }));
  }
  // The first member of the ring is this block_on tasklet.
  const int token = sched().block_on([&, laps] {
    int t = 0;
    for (int l = 0; l < laps; ++l) {
      links[0].send(t);
      t = links[static_cast<std::size_t>(n - 1)].receive() + 1;
    }
    return t;
  });
  for (auto& t : ring) t.join();
  EXPECT_EQ(token, n * laps);
}

// A daisy chain (the "whispers" of Pike's Go talk, not from chan_test.go): n tasklets, each
// receives from its right neighbour and sends one more to its left; a buffered variant too.
TEST_P(ChannelGo, DaisyChain) {
  const int n = static_cast<int>(scaled(2000, 200, 100));
  for (std::size_t cap : {std::size_t{0}, std::size_t{1}}) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    channel<int> leftmost(cap);
    channel<int> left = leftmost;
    std::vector<tasklet<void>> chain;
    for (int i = 0; i < n; ++i) {
      channel<int> right(cap);
      chain.push_back(sched().spawn([left, right]() mutable { left.send(1 + right.receive()); }));
      left = right;
    }
    left.send(1);  // into the rightmost
    EXPECT_EQ(leftmost.receive(), n + 1);
    for (auto& t : chain) t.join();
  }
}

// Scenario from Go's chan_test.go, TestChan ("close unblocks receive"), with many receivers at
// once; and the Stackless twist for senders: close while they are blocked, their values are still
// received and they return normally.
TEST_P(ChannelGo, CloseWhileSendersOrReceiversAreBlocked) {
  const int k = static_cast<int>(scaled(40, 12));
  for (std::size_t cap : kCaps) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    channel<int> c(cap);
    std::vector<tasklet<bool>> rs;
    for (int i = 0; i < k; ++i) {
      rs.push_back(sched().spawn([c]() mutable {
        try {
          (void)c.receive();
        } catch (const channel_closed&) {
          return true;
        }
        return false;
      }));
    }
    ASSERT_TRUE(wait_blocked(rs));
    c.close();
    for (auto& r : rs) EXPECT_TRUE(r.join());
  }
  for (std::size_t cap : kCaps) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    channel<int> c(cap);
    for (std::size_t i = 0; i < cap; ++i) c.send(-1);  // full
    std::vector<tasklet<bool>> ss;
    for (int i = 0; i < k; ++i) {
      ss.push_back(sched().spawn([c, i]() mutable {
        try {
          c.send(i);
        } catch (const channel_closed&) {
          return false;
        }
        return true;
      }));
    }
    ASSERT_TRUE(wait_blocked(ss));
    c.close();
    long sum = 0;
    int n = 0;
    for (int v : c) sum += v, ++n;  // the buffer, then the blocked senders' values
    for (auto& s : ss) EXPECT_TRUE(s.join()) << "a sender blocked at close() got channel_closed";
    EXPECT_EQ(n, static_cast<int>(cap) + k);
    EXPECT_EQ(sum, -static_cast<long>(cap) + static_cast<long>(k) * (k - 1) / 2);
  }
}

// Scenario from Go's chan_test.go, TestSelfSelect: send and receive on the same channel in one
// select, from several tasklets: no crash, no deadlock, and on a rendezvous channel a tasklet
// never receives its own value.
TEST_P(ChannelGo, TestSelfSelect) {
  const int iters = static_cast<int>(scaled(1000, 200));
  for (std::size_t cap : {std::size_t{0}, std::size_t{10}}) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    channel<int> c(cap);
    // Rendezvous: two tasklets, whose selects pair up one to one (so both finish). Buffered:
    // four, whose selects never need a partner (the buffer is never both full and empty).
    const int n = cap == 0 ? 2 : 4;
    std::atomic<int> self_receives{0};
    std::vector<tasklet<void>> ts;
    for (int p = 0; p < n; ++p) {
      ts.push_back(sched().spawn([c, p, iters, cap, &self_receives]() mutable {
        for (int i = 0; i < iters; ++i) {
          auto on_value = [&](int v) {
            if (cap == 0 && v == p) self_receives.fetch_add(1);
          };
          if (p == 0 || i % 2 == 0) {
            select(on_send(c, p, [] {}), on_receive(c, on_value));
          } else {
            select(on_receive(c, on_value), on_send(c, p, [] {}));
          }
        }
      }));
    }
    for (auto& t : ts) t.join();
    EXPECT_EQ(self_receives.load(), 0) << "a select received its own send";
  }
}

// Scenario from Go's chan_test.go, TestNonblockRecvRace: a non-blocking receive on a channel that
// holds a value, racing close(): the default case must never be chosen.
TEST_P(ChannelGo, TestNonblockRecvRace) {
  const int rounds = static_cast<int>(scaled(1000, 150));
  int defaults = 0;
  for (int r = 0; r < rounds; ++r) {
    channel<int> c(1);
    c.send(1);
    auto t = sched().spawn([c]() mutable {
      int got = 0;  // 1: the value, 2: closed and drained, 3: default
      select(on_receive(c, [&](std::optional<int> v) { got = v ? 1 : 2; }),
             default_case([&] { got = 3; }));
      return got;
    });
    c.close();
    int main_got = 0;
    try {
      main_got = c.receive();
    } catch (const channel_closed&) {
      main_got = 2;
    }
    const int got = t.join();
    defaults += got == 3;
    // Exactly one of the two received the value.
    EXPECT_TRUE((got == 1 && main_got == 2) || (got == 2 && main_got == 1) || got == 3)
        << "round " << r << ": tasklet " << got << ", main " << main_got;
  }
  EXPECT_EQ(defaults, 0) << "a non-blocking receive chose default while a value was ready";
}

// Scenario from Go's chan_test.go, TestNonblockSelectRace: at every moment one of c1, c2 holds a
// value, so a non-blocking select over both must never choose default.
TEST_P(ChannelGo, TestNonblockSelectRace) {
  const int rounds = static_cast<int>(scaled(1000, 150));
  int defaults = 0;
  for (int r = 0; r < rounds; ++r) {
    channel<int> c1(1), c2(1);
    c1.send(1);
    auto t = sched().spawn([c1, c2]() mutable {
      bool dflt = false;
      select(on_receive(c1, [](int) {}), on_receive(c2, [](int) {}),
             default_case([&] { dflt = true; }));
      return dflt;
    });
    c2.send(1);
    select(on_receive(c1, [](int) {}), default_case([] {}));
    defaults += t.join();
  }
  EXPECT_EQ(defaults, 0) << "no channel was ready according to a non-blocking select";
}

// Scenario from Go's chan_test.go, TestNonblockSelectRace2: the same with close() making c2 ready.
TEST_P(ChannelGo, TestNonblockSelectRace2) {
  const int rounds = static_cast<int>(scaled(1000, 150));
  int defaults = 0;
  for (int r = 0; r < rounds; ++r) {
    channel<int> c1(1), c2(1);
    c1.send(1);
    auto t = sched().spawn([c1, c2]() mutable {
      bool dflt = false;
      select(on_receive(c1, [](std::optional<int>) {}), on_receive(c2, [](std::optional<int>) {}),
             default_case([&] { dflt = true; }));
      return dflt;
    });
    c2.close();
    select(on_receive(c1, [](std::optional<int>) {}), default_case([] {}));
    defaults += t.join();
  }
  EXPECT_EQ(defaults, 0) << "no channel was ready according to a non-blocking select";
}

// Scenario from Go's chan_test.go, TestSelectDuplicateChannel: one select with two cases on the
// same channel (and one on another); exactly one case runs, the other registration is gone.
TEST_P(ChannelGo, TestSelectDuplicateChannel) {
  channel<int> c, d;
  std::atomic<int> ran{0};
  auto t = sched().spawn([c, d, &ran]() mutable {
    return select(on_receive(c, [&](int) { ran.fetch_add(1); }),
                  on_receive(c, [&](int) { ran.fetch_add(1); }),
                  on_receive(d, [&](int) { ran.fetch_add(100); }));
  });
  ASSERT_TRUE(wait_blocked(std::vector<tasklet<std::size_t>>{t}));
  c.send(9);
  const std::size_t i = t.join();
  EXPECT_TRUE(i == 0 || i == 1) << i;
  EXPECT_EQ(ran.load(), 1);
  int v = 1;
  EXPECT_FALSE(c.try_send(v)) << "the other case on the same channel still receives";
  EXPECT_FALSE(d.try_send(v));
  EXPECT_TRUE(wait_balance(c, 0));
  // Another tasklet can wait on c as usual afterwards.
  auto u = sched().spawn([c]() mutable { return c.receive(); });
  c.send(10);
  EXPECT_EQ(u.join(), 10);
}

// Scenario from Go's chan_test.go, TestPseudoRandomSend: a select with two send cases on the same
// channel; the receiver sees both values, each a fair share of the time.
TEST_P(ChannelGo, TestPseudoRandomSend) {
  const int n = static_cast<int>(scaled(1000, 300));
  for (std::size_t cap : {std::size_t{0}, static_cast<std::size_t>(n)}) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    channel<int> c(cap);
    auto rx = sched().spawn([c, n]() mutable {
      int ones = 0;
      for (int i = 0; i < n; ++i) ones += c.receive();
      return ones;
    });
    for (int i = 0; i < n; ++i) select(on_send(c, 1, [] {}), on_send(c, 0, [] {}));
    const int ones = rx.join();
    EXPECT_GT(ones, n / 10) << "too few 1s: " << ones << " of " << n;
    EXPECT_LT(ones, n - n / 10) << "too few 0s: " << n - ones << " of " << n;
  }
}

// Scenario from Go's chan_test.go, TestSelectStress: channels of capacity 0, 0, 2, 3; on each a
// plain sender and a plain receiver, plus one tasklet that sends to all of them by select and one
// that receives from all of them by select (they fall back to plain operations once one channel
// has had its share, as Go's test sets finished channels to nil).
TEST_P(ChannelGo, TestSelectStress) {
  const int N = static_cast<int>(scaled(4000, 400));
  std::array<channel<int>, 4> c{channel<int>(0), channel<int>(0), channel<int>(2), channel<int>(3)};
  std::vector<tasklet<void>> ts;
  for (int k = 0; k < 4; ++k) {
    channel<int> ch = c[static_cast<std::size_t>(k)];
    ts.push_back(sched().spawn([ch, N]() mutable {
      for (int i = 0; i < N; ++i) ch.send(0);
    }));
    ts.push_back(sched().spawn([ch, N]() mutable {
      for (int i = 0; i < N; ++i) (void)ch.receive();
    }));
  }
  ts.push_back(sched().spawn([c, N]() mutable {
    std::array<int, 4> n{0, 0, 0, 0};
    while (*std::max_element(n.begin(), n.end()) < N) {
      select(on_send(c[0], 0, [&] { ++n[0]; }), on_send(c[1], 0, [&] { ++n[1]; }),
             on_send(c[2], 0, [&] { ++n[2]; }), on_send(c[3], 0, [&] { ++n[3]; }));
    }
    for (int k = 0; k < 4; ++k)
      for (; n[static_cast<std::size_t>(k)] < N; ++n[static_cast<std::size_t>(k)])
        c[static_cast<std::size_t>(k)].send(0);
  }));
  ts.push_back(sched().spawn([c, N]() mutable {
    std::array<int, 4> n{0, 0, 0, 0};
    while (*std::max_element(n.begin(), n.end()) < N) {
      select(on_receive(c[0], [&](int) { ++n[0]; }), on_receive(c[1], [&](int) { ++n[1]; }),
             on_receive(c[2], [&](int) { ++n[2]; }), on_receive(c[3], [&](int) { ++n[3]; }));
    }
    for (int k = 0; k < 4; ++k)
      for (; n[static_cast<std::size_t>(k)] < N; ++n[static_cast<std::size_t>(k)])
        (void)c[static_cast<std::size_t>(k)].receive();
  }));
  for (auto& t : ts) t.join();
  for (auto& ch : c) {
    EXPECT_FALSE(ch.try_receive().has_value()) << "a value too many";
    EXPECT_TRUE(wait_balance(ch, 0));
  }
}

}  // namespace
