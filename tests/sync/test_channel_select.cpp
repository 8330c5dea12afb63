// SPDX-License-Identifier: Apache-2.0
// test_channel_select.cpp — select(): the index of the ready case and only its function; on_send;
// after() when nothing is ready (and nothing is left registered afterwards); default_case polls;
// exactly one case happens (many selects against several producers: every value once); fairness
// among ready cases (a probability check); selects against producers on other workers; receive
// cases on a closed channel (std::optional<T> gets nullopt, T throws channel_closed); a send case
// on a closed channel throws; select from a plain thread; kill / raise_exception of a tasklet
// parked in select: no case happens.
#include <array>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "channel_fixture.hpp"

namespace {

using namespace stackless_test;
using stackless::after;
using stackless::default_case;
using stackless::on_receive;
using stackless::on_send;
using stackless::select;

class ChannelSelect : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(ChannelSelect);

TEST_P(ChannelSelect, ReceiveReturnsTheIndexOfTheReadyChannel) {
  channel<int> a(1), b(1);
  int fa = 0, fb = 0, va = 0, vb = 0;
  auto sel = [&] {
    return select(on_receive(a, [&](int v) { ++fa, va = v; }),
                  on_receive(b, [&](int v) { ++fb, vb = v; }));
  };
  b.send(2);
  EXPECT_EQ(sel(), 1u);
  EXPECT_EQ(fa, 0);
  EXPECT_EQ(fb, 1);
  EXPECT_EQ(vb, 2);
  a.send(1);
  EXPECT_EQ(sel(), 0u);
  EXPECT_EQ(fa, 1);
  EXPECT_EQ(fb, 1);
  EXPECT_EQ(va, 1);
  // In a tasklet, with a sender parked on a rendezvous channel.
  channel<int> r;
  auto tx = sched().spawn([r]() mutable { r.send(3); });
  ASSERT_TRUE(wait_parked(r, std::vector<tasklet<void>>{tx}, 1));
  const auto got = sched().block_on([&] {
    int v = 0;
    const std::size_t i =
        select(on_receive(a, [&](int) { v = -1; }), on_receive(r, [&](int x) { v = x; }));
    return std::make_pair(i, v);
  });
  EXPECT_EQ(got.first, 1u);
  EXPECT_EQ(got.second, 3);
  tx.join();
}

TEST_P(ChannelSelect, ParksUntilACaseIsReady) {
  channel<int> a, b;
  auto sel = sched().spawn([a, b]() mutable {
    int v = 0;
    const std::size_t i = select(on_receive(a, [&](int x) { v = 100 + x; }),
                                 on_receive(b, [&](int x) { v = 200 + x; }));
    return static_cast<int>(i) * 1000 + v;
  });
  ASSERT_TRUE(wait_blocked(std::vector<tasklet<int>>{sel}));
  b.send(7);  // from a plain thread: parks until the select takes it
  EXPECT_EQ(sel.join(), 1000 + 207);
  // Nothing of the finished select is left registered on a.
  int x = 1;
  EXPECT_FALSE(a.try_send(x)) << "a select that completed on b still takes values from a";
  EXPECT_TRUE(wait_balance(a, 0));
  EXPECT_TRUE(wait_balance(b, 0));
}

TEST_P(ChannelSelect, OnSend) {
  // To a parked receiver.
  channel<int> a;
  auto rx = sched().spawn([a]() mutable { return a.receive(); });
  ASSERT_TRUE(wait_parked(a, std::vector<tasklet<int>>{rx}, -1));
  int called = 0;
  EXPECT_EQ(select(on_send(a, 5, [&] { ++called; })), 0u);
  EXPECT_EQ(called, 1);
  EXPECT_EQ(rx.join(), 5);
  // Into a buffer with room, from a tasklet; the full one is not chosen.
  channel<int> full(1), room(1);
  full.send(0);
  const std::size_t i = sched().block_on([&] {
    return select(on_send(full, 1, [&] { called += 10; }),
                  on_send(room, 2, [&] { called += 100; }));
  });
  EXPECT_EQ(i, 1u);
  EXPECT_EQ(called, 101);
  EXPECT_EQ(room.receive(), 2);
  EXPECT_EQ(full.receive(), 0);
  EXPECT_FALSE(full.try_receive().has_value()) << "the send case that did not happen sent anyway";
  // A send case and a receive case: the ready receive happens, the send value is destroyed unsent.
  auto marker = std::make_shared<int>(9);
  std::weak_ptr<int> watch = marker;
  channel<std::shared_ptr<int>> nobody;  // rendezvous, no receiver
  channel<int> ready(1);
  ready.send(4);
  int got = 0;
  EXPECT_EQ(select(on_send(nobody, std::move(marker), [&] { got = -1; }),
                   on_receive(ready, [&](int v) { got = v; })),
            1u);
  EXPECT_EQ(got, 4);
  EXPECT_TRUE(watch.expired()) << "the unsent value of a send case was not destroyed";
  EXPECT_FALSE(nobody.try_receive().has_value());
  // A parked select whose send case is taken by a receiver that comes later.
  channel<int> later;
  auto sel = sched().spawn([later]() mutable {
    bool done = false;
    select(on_send(later, 11, [&] { done = true; }));
    return done;
  });
  ASSERT_TRUE(wait_blocked(std::vector<tasklet<bool>>{sel}));
  EXPECT_EQ(later.receive(), 11);
  EXPECT_TRUE(sel.join());
}

TEST_P(ChannelSelect, AfterFiresWhenNothingIsReady) {
  channel<int> a, b(1);
  const auto r = sched().block_on([&] {
    int which = -1;
    const std::size_t i =
        select(on_receive(a, [&](int) { which = 0; }), on_receive(b, [&](int) { which = 1; }),
               after(10ms, [&] { which = 2; }));
    return std::make_pair(i, which);
  });
  EXPECT_EQ(r.first, 2u);
  EXPECT_EQ(r.second, 2);
  // From a plain thread.
  int which = -1;
  EXPECT_EQ(select(on_receive(a, [&](int) { which = 0; }), after(5ms, [&] { which = 1; })), 1u);
  EXPECT_EQ(which, 1);
  // Nothing is left registered: a later send finds no receiver; b buffers normally.
  int x = 1;
  EXPECT_FALSE(a.try_send(x)) << "a timed-out select still receives";
  EXPECT_TRUE(wait_balance(a, 0));
  b.send(3);
  EXPECT_EQ(b.receive(), 3);
  // after() does not fire when a case is ready.
  b.send(4);
  EXPECT_EQ(select(on_receive(b, [&](int v) { which = v; }),
                   after(std::chrono::hours(1), [&] { which = -1; })),
            0u);
  EXPECT_EQ(which, 4);
  // A send case that cannot happen, with after().
  channel<int> full(1);
  full.send(0);
  EXPECT_EQ(select(on_send(full, 1, [&] { which = 10; }), after(5ms, [&] { which = 11; })), 1u);
  EXPECT_EQ(which, 11);
  EXPECT_EQ(full.receive(), 0);
  EXPECT_FALSE(full.try_receive().has_value());
}

TEST_P(ChannelSelect, DefaultCasePolls) {
  channel<int> a, b(1);
  // In a lone tasklet: if the select parked, nobody could wake it.
  const auto r = sched().block_on([&] {
    int which = -1;
    const std::size_t i =
        select(on_receive(a, [&](int) { which = 0; }), on_receive(b, [&](int) { which = 1; }),
               default_case([&] { which = 2; }));
    return std::make_pair(i, which);
  });
  EXPECT_EQ(r.first, 2u);
  EXPECT_EQ(r.second, 2);
  b.send(6);
  int which = -1, val = 0;
  for (int k = 0; k < 2; ++k) {
    const std::size_t i =
        select(default_case([&] { which = 2; }), on_receive(a, [&](int) { which = 0; }),
               on_receive(b, [&](int v) { which = 1, val = v; }));
    if (k == 0) {
      EXPECT_EQ(i, 2u) << "the ready case must win over default";
      EXPECT_EQ(which, 1);
      EXPECT_EQ(val, 6);
    } else {
      EXPECT_EQ(i, 0u);
      EXPECT_EQ(which, 2);
    }
  }
  // default with a send case: room → the send; full → default.
  channel<int> c(1);
  EXPECT_EQ(select(on_send(c, 1, [] {}), default_case([] {})), 0u);
  EXPECT_EQ(select(on_send(c, 2, [] {}), default_case([] {})), 1u);
  EXPECT_EQ(c.receive(), 1);
  EXPECT_FALSE(c.try_receive().has_value());
  // default with a parked partner on a rendezvous channel: the partner counts as ready.
  channel<int> rv;
  auto tx = sched().spawn([rv]() mutable { rv.send(12); });
  ASSERT_TRUE(wait_parked(rv, std::vector<tasklet<void>>{tx}, 1));
  EXPECT_EQ(select(on_receive(rv, [&](int v) { val = v; }), default_case([&] { val = -1; })), 0u);
  EXPECT_EQ(val, 12);
  tx.join();
  EXPECT_TRUE(wait_balance(a, 0));
}

// Many selects receiving from two channels while several producers send: exactly one case happens
// per select, so the total received equals the total sent, each value once.
TEST_P(ChannelSelect, ExactlyOneCaseHappens) {
  const int producers_per_channel = 2, consumers = 3;
  const int per = static_cast<int>(scaled(2000, 250));
  for (std::size_t cap : {std::size_t{0}, std::size_t{4}}) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    channel<int> a(cap), b(cap);
    const int total = 2 * producers_per_channel * per;
    std::vector<std::atomic<int>> seen(static_cast<std::size_t>(total));
    std::atomic<int> calls{0}, select_calls{0};
    std::vector<tasklet<void>> producers;
    for (int p = 0; p < 2 * producers_per_channel; ++p) {
      channel<int> out = p % 2 ? b : a;
      producers.push_back(sched().spawn([out, p, per]() mutable {
        for (int i = 0; i < per; ++i) out.send(p * per + i);
      }));
    }
    std::vector<tasklet<int>> cons;
    for (int c = 0; c < consumers; ++c) {
      cons.push_back(sched().spawn([&, a, b, per]() mutable {
        int mine = 0, selects = 0;
        bool a_closed = false, b_closed = false;
        auto take = [&](int v, int want_parity) {
          if ((v / per) % 2 != want_parity)
            ADD_FAILURE() << "value " << v << " came from the wrong channel";
          seen[static_cast<std::size_t>(v)].fetch_add(1);
          ++mine;
        };
        while (!a_closed && !b_closed) {
          ++selects;
          select(on_receive(a,
                            [&](std::optional<int> v) {
                              calls.fetch_add(1);
                              if (v)
                                take(*v, 0);
                              else
                                a_closed = true;
                            }),
                 on_receive(b, [&](std::optional<int> v) {
                   calls.fetch_add(1);
                   if (v)
                     take(*v, 1);
                   else
                     b_closed = true;
                 }));
        }
        // One is closed and drained: drain the other.
        for (int v : a_closed ? b : a) take(v, a_closed ? 1 : 0);
        select_calls.fetch_add(selects);
        return mine;
      }));
    }
    for (auto& p : producers) p.join();
    a.close();
    b.close();
    int sum = 0;
    for (auto& c : cons) sum += c.join();
    EXPECT_EQ(sum, total);
    int wrong = 0;
    for (auto& s : seen) wrong += s.load() != 1;
    EXPECT_EQ(wrong, 0) << "values lost or duplicated";
    // Every select() call ran exactly one case's function.
    EXPECT_EQ(calls.load(), select_calls.load());
  }
}

// Scenario from Go's chan_test.go, TestSelectFairness.
// Both channels always ready: each case is chosen a reasonable fraction of the time. With a fair
// coin the chance to fall outside 30–70 % is below 1e-30 in 1,000 draws (sanitizers), far
// smaller in 10,000.
TEST_P(ChannelSelect, FairnessAmongReadyCases) {
  const int n = static_cast<int>(scaled(10'000, 1'000));
  auto a = channel<int>::unbounded(), b = channel<int>::unbounded();
  for (int i = 0; i < n; ++i) {
    a.send(i);
    b.send(i);
  }
  const auto counts = sched().block_on([&] {
    std::array<int, 2> c{0, 0};
    for (int i = 0; i < n; ++i) {
      const std::size_t k = select(on_receive(a, [](int) {}), on_receive(b, [](int) {}));
      ++c[k];
    }
    return c;
  });
  EXPECT_EQ(counts[0] + counts[1], n);
  EXPECT_GE(counts[0], n * 3 / 10) << counts[0] << " of " << n;
  EXPECT_LE(counts[0], n * 7 / 10) << counts[0] << " of " << n;
  // Three cases, from a plain thread, buffered channels refilled after each select.
  channel<int> x(1), y(1), z(1);
  x.send(0);
  y.send(0);
  z.send(0);
  std::array<int, 3> c3{0, 0, 0};
  std::array<channel<int>*, 3> chans{&x, &y, &z};
  const int m = static_cast<int>(scaled(6000, 900));
  for (int i = 0; i < m; ++i) {
    const std::size_t k =
        select(on_receive(x, [](int) {}), on_receive(y, [](int) {}), on_receive(z, [](int) {}));
    ++c3[k];
    chans[k]->send(0);
  }
  for (int k = 0; k < 3; ++k) {
    EXPECT_GE(c3[k], m * 2 / 10) << "case " << k << ": " << c3[k] << " of " << m;
    EXPECT_LE(c3[k], m * 47 / 100) << "case " << k << ": " << c3[k] << " of " << m;
  }
}

// The consumer selects on one worker while the producers run on others (workers > 1) and a
// plain thread sends too.
TEST_P(ChannelSelect, SelectAcrossWorkers) {
  const int per = static_cast<int>(scaled(3000, 300));
  channel<int> a, b(2);
  auto consumer = sched().spawn([a, b, per]() mutable {
    std::int64_t sum = 0;
    for (int i = 0; i < 3 * per; ++i)
      select(on_receive(a, [&](int v) { sum += v; }), on_receive(b, [&](int v) { sum += v; }));
    return sum;
  });
  auto pa = sched().spawn([a, per]() mutable {
    for (int i = 1; i <= per; ++i) a.send(i);
  });
  auto pb = sched().spawn([b, per]() mutable {
    for (int i = 1; i <= per; ++i) b.send(i);
  });
  std::thread pt([a, per]() mutable {
    for (int i = 1; i <= per; ++i) a.send(i);
  });
  pa.join();
  pb.join();
  pt.join();
  EXPECT_EQ(consumer.join(), 3 * static_cast<std::int64_t>(per) * (per + 1) / 2);
  // Selects that send, across workers.
  channel<int> out1, out2(1);
  auto sender = sched().spawn([out1, out2, per]() mutable {
    for (int i = 1; i <= per; ++i) select(on_send(out1, i, [] {}), on_send(out2, i, [] {}));
  });
  auto r1 = sched().spawn([out1]() mutable {
    std::int64_t s = 0;
    for (;;) {
      auto v = out1.receive_for(std::chrono::hours(1));
      if (!v || *v == 0) return s;
      s += *v;
    }
  });
  std::int64_t s2 = 0;
  std::int64_t s1 = 0;
  std::thread r2([&]() {
    for (;;) {
      const int v = out2.receive();
      if (v == 0) return;
      s2 += v;
    }
  });
  sender.join();
  out1.send(0);  // end markers
  out2.send(0);
  r2.join();
  s1 = r1.join();
  EXPECT_EQ(s1 + s2, static_cast<std::int64_t>(per) * (per + 1) / 2);
}

TEST_P(ChannelSelect, ReceiveCasesOnAClosedChannel) {
  channel<int> a(2), b;
  a.send(1);
  a.close();
  // Buffered values first.
  int got = 0;
  EXPECT_EQ(select(on_receive(a, [&](std::optional<int> v) { got = v ? *v : -1; })), 0u);
  EXPECT_EQ(got, 1);
  // Closed and drained: the optional case gets nullopt, the T case throws.
  EXPECT_EQ(select(on_receive(b, [&](std::optional<int>) { got = -5; }),
                   on_receive(a, [&](std::optional<int> v) { got = v ? *v : -1; })),
            1u);
  EXPECT_EQ(got, -1);
  EXPECT_THROW(select(on_receive(a, [&](int v) { got = v; })), channel_closed);
  EXPECT_EQ(got, -1) << "the function of a T case ran on a closed channel";
  // A select parked when close() comes wakes: nullopt / channel_closed.
  channel<int> c, d;
  auto opt = sched().spawn([c, d]() mutable {
    int r = 0;
    select(on_receive(c, [&](std::optional<int> v) { r = v ? *v : -1; }),
           on_receive(d, [&](std::optional<int> v) { r = v ? *v : -2; }));
    return r;
  });
  ASSERT_TRUE(wait_blocked(std::vector<tasklet<int>>{opt}));
  c.close();
  EXPECT_EQ(opt.join(), -1);
  channel<int> e, f;
  auto plain = sched().spawn([e, f]() mutable {
    try {
      select(on_receive(e, [](int) {}), on_receive(f, [](int) {}));
    } catch (const channel_closed&) {
      return 1;
    }
    return 0;
  });
  ASSERT_TRUE(wait_blocked(std::vector<tasklet<int>>{plain}));
  f.close();
  EXPECT_EQ(plain.join(), 1);
  // A send case on a closed channel throws.
  channel<int> g(1);
  g.close();
  EXPECT_THROW(select(on_send(g, 1, [] {})), channel_closed);
  // With an open ready channel beside a closed one, the ready one may be chosen, or the closed
  // one (nullopt); never neither.
  channel<int> h(1);
  h.send(3);
  int seen = 0;
  const std::size_t i = select(on_receive(h, [&](std::optional<int> v) { seen = v ? *v : -1; }),
                               on_receive(a, [&](std::optional<int> v) { seen = v ? 100 : -100; }));
  EXPECT_TRUE((i == 0 && seen == 3) || (i == 1 && seen == -100)) << i << " " << seen;
}

TEST(ChannelSelectPlainThread, SelectFromAPlainThreadWithoutAnyScheduler) {
  channel<int> a, b(1);
  std::thread t([a]() mutable {
    for (int i = 0; i < 100; ++i) a.send(i);
  });
  std::int64_t sum = 0;
  int n = 0;
  while (n < 100) {
    select(on_receive(a, [&](int v) { sum += v, ++n; }),
           on_receive(b, [&](int) { ADD_FAILURE(); }));
  }
  t.join();
  EXPECT_EQ(sum, 4950);
  int which = -1;
  EXPECT_EQ(select(on_receive(a, [&](int) { which = 0; }), after(2ms, [&] { which = 1; })), 1u);
  EXPECT_EQ(which, 1);
  EXPECT_EQ(select(on_receive(a, [&](int) { which = 0; }), default_case([&] { which = 2; })), 1u);
  EXPECT_EQ(which, 2);
}

TEST_P(ChannelSelect, SelectFromAPlainThreadWithTasklets) {
  channel<int> a, b;
  const int per = static_cast<int>(scaled(1000, 200));
  auto pa = sched().spawn([a, per]() mutable {
    for (int i = 0; i < per; ++i) a.send(1);
  });
  auto pb = sched().spawn([b, per]() mutable {
    for (int i = 0; i < per; ++i) b.send(2);
  });
  int sa = 0, sb = 0;
  for (int i = 0; i < 2 * per; ++i)
    select(on_receive(a, [&](int v) { sa += v; }), on_receive(b, [&](int v) { sb += v; }));
  pa.join();
  pb.join();
  EXPECT_EQ(sa, per);
  EXPECT_EQ(sb, 2 * per);
  // A plain thread's select sends to a parked tasklet.
  auto rx = sched().spawn([b]() mutable { return b.receive(); });
  ASSERT_TRUE(wait_parked(b, std::vector<tasklet<int>>{rx}, -1));
  EXPECT_EQ(select(on_send(a, 1, [] {}), on_send(b, 5, [] {})), 1u);
  EXPECT_EQ(rx.join(), 5);
}

TEST_P(ChannelSelect, KillOfATaskletParkedInSelectNoCaseHappens) {
  channel<std::shared_ptr<int>> out;  // rendezvous: the send case waits for a receiver
  channel<int> in;
  auto marker = std::make_shared<int>(1);
  std::weak_ptr<int> watch = marker;
  std::atomic<int> ran{0};
  std::atomic<bool> unwound{false};
  auto victim = sched().spawn([&, out, in, m = std::move(marker)]() mutable {
    raii_flag guard(unwound);
    select(on_send(out, std::move(m), [&] { ran.fetch_add(1); }),
           on_receive(in, [&](int) { ran.fetch_add(10); }),
           after(std::chrono::hours(1), [&] { ran.fetch_add(100); }));
    ran.fetch_add(1000);
  });
  ASSERT_TRUE(wait_blocked(std::vector<tasklet<void>>{victim}));
  victim.kill();
  EXPECT_FALSE(victim.alive());
  EXPECT_TRUE(unwound.load());
  EXPECT_EQ(ran.load(), 0) << "a case happened in a killed select";
  EXPECT_TRUE(wait_until([&] { return watch.expired(); }))
      << "the on_send value was kept somewhere";
  EXPECT_FALSE(out.try_receive().has_value()) << "the killed select's on_send value was delivered";
  int v = 3;
  EXPECT_FALSE(in.try_send(v)) << "the killed select still receives";
  EXPECT_TRUE(wait_balance(out, 0));
  EXPECT_TRUE(wait_balance(in, 0));
  // raise_exception(): the same, with the exception.
  auto poked = sched().spawn([&, in]() mutable {
    try {
      select(on_receive(in, [&](int) { ran.fetch_add(1); }));
    } catch (const poke& p) {
      return p.n;
    }
    return 0;
  });
  ASSERT_TRUE(wait_blocked(std::vector<tasklet<int>>{poked}));
  poked.raise_exception(std::make_exception_ptr(poke{8}));
  EXPECT_EQ(poked.join(), 8);
  EXPECT_EQ(ran.load(), 0);
  EXPECT_FALSE(in.try_send(v));
}

// A kill racing a partner of a parked select: either the case happened (its function ran, the
// partner's operation succeeded) or it did not (the partner failed) — never half.
TEST_P(ChannelSelect, KillRacingASelectPartnerExactlyOneWins) {
  const int rounds = static_cast<int>(scaled(200, 50));
  for (int r = 0; r < rounds; ++r) {
    channel<int> a, b;
    std::atomic<int> ran{0};
    auto victim = sched().spawn([&, a, b, r]() mutable {
      select(on_send(a, r, [&] { ran.fetch_add(1); }),
             on_receive(b, [&](int) { ran.fetch_add(1); }));
      this_tasklet::yield();
    });
    ASSERT_TRUE(wait_blocked(std::vector<tasklet<void>>{victim}));
    std::atomic<int> go{0};
    bool partner_ok = false;
    std::thread partner([&] {
      go.fetch_add(1);
      while (go.load() < 2) {
      }
      if (r % 2) {
        partner_ok = a.try_receive().has_value();
      } else {
        int v = 1;
        partner_ok = b.try_send(v);
      }
    });
    std::thread killer([&] {
      go.fetch_add(1);
      while (go.load() < 2) {
      }
      victim.kill();
    });
    partner.join();
    killer.join();
    victim.join();
    EXPECT_EQ(ran.load(), partner_ok ? 1 : 0) << "round " << r;
    EXPECT_FALSE(a.try_receive().has_value());
  }
}

}  // namespace
