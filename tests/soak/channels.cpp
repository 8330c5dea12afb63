// SPDX-License-Identifier: Apache-2.0
// tests/soak/channels.cpp — the soak's exactly-once workloads: channel rounds (rendezvous,
// buffered and unbounded; tasklet and plain-thread producers and consumers, each with its own
// API: send, send_for, select+after, try_send; receive, receive_for, select+after, with_timeout)
// with producers and consumers killed and replaced at random, and a bounded queue under a
// stackless::mutex and two condition_variables, with the same killing. Each round ends
// quiescent and checks its ledger (soak.hpp says why the accounting is exact under kills).
#include <deque>
#include <mutex>
#include <vector>

#include "soak.hpp"

namespace soak {

namespace sl = stackless;
using chan = sl::channel<std::uint64_t>;

std::uint64_t seed() {
  static std::atomic<std::uint64_t> next{0x5eed};
  return next.fetch_add(0x9e3779b97f4a7c15ULL, std::memory_order_relaxed);
}

const char* name_of(chan_kind k) {
  switch (k) {
    case chan_kind::rendezvous:
      return "rendezvous";
    case chan_kind::buffered:
      return "buffered";
    default:
      return "unbounded";
  }
}

std::uint64_t ledger::check(const char* what) const {
  std::uint64_t bad = 0, taken = std::min<std::uint64_t>(next_.load(), size_);
  for (std::uint64_t i = 0; i < size_; ++i) {
    std::uint8_t b = bits_[i].load(std::memory_order_acquire);
    const char* problem = nullptr;
    if (i >= taken) {
      if (b != 0) problem = "marked but never handed out";
    } else if (b == (sent_bit | received_bit) || b == aborted_bit) {
      continue;
    } else if (b == sent_bit) {
      problem = "sent but never received (lost)";
    } else if (b == received_bit) {
      problem = "received but its send never returned";
    } else if (b == 0) {
      problem = "handed out but neither sent nor aborted";
    } else {
      problem = "received after its send was aborted";
    }
    if (problem != nullptr) {
      if (++bad <= 5) c_.fail("%s: sequence %llu %s", what, (unsigned long long)i, problem);
    }
  }
  if (bad > 5) c_.fail("%s: %llu sequence numbers wrong in all", what, (unsigned long long)bad);
  return bad;
}

namespace {

chan make_channel(chan_kind k) {
  switch (k) {
    case chan_kind::rendezvous:
      return chan(0);
    case chan_kind::buffered:
      return chan(16);
    default:
      return chan::unbounded();
  }
}

void pause_briefly(bool in_tasklet) {
  if (in_tasklet)
    sl::this_tasklet::yield();
  else
    std::this_thread::yield();
}

// send_one() delivers v in the producer's style; it returns once v was delivered and throws
// tasklet_exit, having delivered nothing, when killed.
void send_one(chan& ch, std::uint64_t v, unsigned style, rng& r, bool in_tasklet) {
  switch (style % 4) {
    case 0:
      ch.send(v);
      return;
    case 1:
      while (!ch.send_for(v, r.us(2000))) {
      }
      return;
    case 2:
      while (sl::select(sl::on_send(ch, v, [] {}), sl::after(r.us(2000), [] {})) != 0) {
      }
      return;
    default:
      if (ch.try_send(v)) return;
      pause_briefly(in_tasklet);
      ch.send(v);
      return;
  }
}

// receive_one() is the next value in the consumer's style, or nullopt once the channel is closed
// and drained. Each style's interruption (kill, timeout, with_timeout) takes nothing.
std::optional<std::uint64_t> receive_one(ctx& c, chan& ch, unsigned style, rng& r) {
  switch (style % 4) {
    case 0:
      try {
        return ch.receive();
      } catch (const sl::channel_closed&) {
        return std::nullopt;
      }
    case 1:
      try {
        for (;;) {
          if (auto v = ch.receive_for(r.us(2000))) return v;
        }
      } catch (const sl::channel_closed&) {
        return std::nullopt;
      }
    case 2:
      for (;;) {
        std::optional<std::uint64_t> got;
        bool closed = false;
        auto on_value = [&](std::optional<std::uint64_t> v) {
          closed = !v;
          got = v;
        };
        if (sl::select(sl::on_receive(ch, on_value), sl::after(r.us(2000), [] {})) == 0)
          return closed ? std::nullopt : got;
      }
    default:
      for (;;) {
        std::optional<std::uint64_t> got;
        bool closed = false;
        bool finished = sl::with_timeout(r.us(2000), [&] {
          try {
            got = ch.receive();
          } catch (const sl::channel_closed&) {
            closed = true;
          }
        });
        if (finished) return closed ? std::nullopt : got;
        c.n.sleeps.fetch_add(1, std::memory_order_relaxed);
      }
  }
}

void producer(chan ch, ledger& l, unsigned style, bool in_tasklet) {
  rng r(seed());
  while (auto seq = l.take()) {
    try {
      send_one(ch, *seq, style, r, in_tasklet);
    } catch (const sl::tasklet_exit&) {
      l.aborted(*seq);
      throw;
    }
    l.sent(*seq);  // no suspension point since send returned: a kill cannot come between
  }
}

void consumer(ctx& c, chan ch, ledger& l, unsigned style) {
  rng r(seed());
  while (auto v = receive_one(c, ch, style, r)) l.received(*v);
}

}  // namespace

void channel_round(ctx& c, const channel_round_spec& sp, rng& r) {
  chan ch = make_channel(sp.kind);
  ledger l(c, sp.messages, c.n.messages);
  const unsigned np = sp.producers, nc = sp.consumers;
  // Each tasklet's style is its index plus a per-round offset, so that small crews (the
  // sanitizer builds') still use every style over the rounds.
  const auto salt = static_cast<unsigned>(r.below(4));
  std::vector<sl::tasklet<void>> prod(np), cons(nc);
  auto start_producer = [&](unsigned i) {
    prod[i] = sl::spawn(producer, ch, std::ref(l), i + salt, true);
    prod[i].set_name("channel producer");
  };
  auto start_consumer = [&](unsigned i) {
    cons[i] = sl::spawn(consumer, std::ref(c), ch, std::ref(l), i + salt);
    cons[i].set_name("channel consumer");
  };
  for (unsigned i = 0; i < nc; ++i) start_consumer(i);
  for (unsigned i = 0; i < np; ++i) start_producer(i);
  std::optional<plain_thread> tp, tc;
  if (sp.threads) {
    unsigned ps = static_cast<unsigned>(r.below(3)), cs = static_cast<unsigned>(r.below(4));
    tc.emplace(c, "channel consumer", [&c, ch, &l, cs] { consumer(c, ch, l, cs); });
    tp.emplace(c, "channel producer", [ch, &l, ps] { producer(ch, l, ps, false); });
  }
  // Kill (and replace) producers and consumers until every sequence number is handed out: the
  // replacements keep the channel drained, so the round always ends.
  if (sp.kills && c.kills) {
    while (!l.exhausted()) {  // exhausted() is also true once the run is stopping
      sl::this_tasklet::sleep_for(r.us(static_cast<std::uint64_t>(sp.kill_gap.count()) + 1));
      auto k = static_cast<unsigned>(r.below(np + nc));
      if (k < np) {
        prod[k].kill();
        start_producer(k);
      } else {
        cons[k - np].kill();
        start_consumer(k - np);
      }
      c.n.kills.fetch_add(1, std::memory_order_relaxed);
    }
  }
  for (auto& t : prod) t.join();
  if (tp) tp->finish();
  ch.close();  // the consumers drain what is buffered, then see channel_closed
  for (auto& t : cons) t.join();
  if (tc) tc->finish();
  l.check(name_of(sp.kind));
  c.n.rounds.fetch_add(1, std::memory_order_relaxed);
}

void drive_channels(ctx& c, chan_kind k) {
  rng r(seed());
  channel_round_spec sp;
  sp.kind = k;
  sp.messages = 20000 / c.scale;
  sp.producers = std::max(2u, 4 / c.scale);
  sp.consumers = std::max(2u, 4 / c.scale);
  while (!c.stopping()) {
    try {
      channel_round(c, sp, r);
    } catch (const std::exception& e) {
      c.fail("%s channel round: unexpected exception: %s", name_of(k), e.what());
    }
  }
}

// ---- channels that live for the whole run -----------------------------------------------------

// A rendezvous and an unbounded channel made once and used until the stop: an echo tasklet
// receives each sequence number on the first and sends it back on the second, in order. The
// rounds above make fresh channels; this is the shape of a long-lived server channel, whose
// memory must not grow with the values it carries (a rendezvous or unbounded channel used to
// keep every segment it ever used: RSS then grows by ~45 bytes per value here).
void drive_long_lived_channels(ctx& c) {
  sl::channel<std::uint64_t> there;                     // rendezvous
  auto back = sl::channel<std::uint64_t>::unbounded();  // never parks the echo
  auto echo = sl::spawn([there, back]() mutable {
    try {
      for (;;) back.send(there.receive());
    } catch (const sl::channel_closed&) {
    }
  });
  echo.set_name("long-lived echo");
  std::uint64_t next = 1;
  while (!c.stopping()) {
    for (int i = 0; i < 1000; ++i, ++next) {
      there.send(next);
      const std::uint64_t got = back.receive();
      if (got != next) {
        c.fail("long-lived channels: sent %llu, got %llu back",
               static_cast<unsigned long long>(next), static_cast<unsigned long long>(got));
        return;
      }
      c.n.messages.fetch_add(2, std::memory_order_relaxed);
    }
  }
  there.close();
  echo.join();
}

// ---- the mutex + condition_variable queue ----------------------------------------------------

namespace {

// cv_queue is a bounded FIFO under a stackless::mutex; not_full / not_empty are its two
// conditions. done (under m) tells the consumers that no producer is left.
struct cv_queue {
  static constexpr std::size_t capacity = 8;
  sl::mutex m;
  sl::condition_variable not_full, not_empty;
  std::deque<std::uint64_t> q;  // guarded by m
  bool done = false;            // guarded by m
};

void cv_producer(cv_queue& q, ledger& l, unsigned style) {
  rng r(seed());
  auto room = [&] { return q.q.size() < cv_queue::capacity; };
  while (auto seq = l.take()) {
    try {
      std::unique_lock lk(q.m);
      if (style % 2 == 0) {
        q.not_full.wait(lk, room);
      } else {
        while (!q.not_full.wait_for(lk, r.us(1000), room)) {
        }
      }
      q.q.push_back(*seq);
      l.sent(*seq);  // under the lock: no consumer can take it before it is marked
    } catch (const sl::tasklet_exit&) {
      l.aborted(*seq);  // killed in lock() or wait(): nothing was pushed
      throw;
    }
    q.not_empty.notify_one();
  }
}

void cv_consumer(cv_queue& q, ledger& l, unsigned style) {
  rng r(seed());
  auto ready = [&] { return !q.q.empty() || q.done; };
  for (;;) {
    std::unique_lock lk(q.m);
    if (style % 2 == 0) {
      q.not_empty.wait(lk, ready);
    } else {
      while (!q.not_empty.wait_for(lk, r.us(1000), ready)) {
      }
    }
    if (q.q.empty()) return;  // done and drained
    std::uint64_t v = q.q.front();
    q.q.pop_front();
    l.received(v);
    lk.unlock();
    q.not_full.notify_one();
  }
}

void cv_round(ctx& c, rng& r) {
  cv_queue q;
  ledger l(c, 10000 / c.scale, c.n.cv_items);
  const unsigned np = std::max(2u, 3 / c.scale), nc = std::max(2u, 3 / c.scale);
  std::vector<sl::tasklet<void>> prod(np), cons(nc);
  auto start_producer = [&](unsigned i) {
    prod[i] = sl::spawn(cv_producer, std::ref(q), std::ref(l), i);
    prod[i].set_name("queue producer");
  };
  auto start_consumer = [&](unsigned i) {
    cons[i] = sl::spawn(cv_consumer, std::ref(q), std::ref(l), i);
    cons[i].set_name("queue consumer");
  };
  for (unsigned i = 0; i < nc; ++i) start_consumer(i);
  for (unsigned i = 0; i < np; ++i) start_producer(i);
  std::optional<plain_thread> tp, tc;
  tc.emplace(c, "cv consumer", [&q, &l] { cv_consumer(q, l, 1); });
  tp.emplace(c, "cv producer", [&q, &l] { cv_producer(q, l, 0); });
  while (c.kills && !l.exhausted()) {
    sl::this_tasklet::sleep_for(r.us(3000));
    auto k = static_cast<unsigned>(r.below(np + nc));
    if (k < np) {
      prod[k].kill();
      start_producer(k);
    } else {
      cons[k - np].kill();
      start_consumer(k - np);
    }
    c.n.kills.fetch_add(1, std::memory_order_relaxed);
  }
  for (auto& t : prod) t.join();
  tp->finish();
  {
    std::lock_guard g(q.m);
    q.done = true;
  }
  q.not_empty.notify_all();
  for (auto& t : cons) t.join();
  tc->finish();
  l.check("mutex+condition_variable queue");
  c.n.rounds.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

void drive_cv_queue(ctx& c) {
  rng r(seed());
  while (!c.stopping()) {
    try {
      cv_round(c, r);
    } catch (const std::exception& e) {
      c.fail("condition_variable round: unexpected exception: %s", e.what());
    }
  }
}

}  // namespace soak
