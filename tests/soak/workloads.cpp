// SPDX-License-Identifier: Apache-2.0
// tests/soak/workloads.cpp — the soak's other sub-workloads, each a driver that loops over rounds:
//   mutex      fair and throughput mutexes: lock and try_lock_for users (tasklets and a plain
//              thread) that check mutual exclusion, some parking while they hold the lock;
//   semaphore  counting and bounded semaphores: acquire and try_acquire_for users that check
//              that no more than the permits are held, and that all permits are back at the end;
//   event      waiters (wait, wait_for; tasklets and a plain thread) that must pass only after
//              set(), all of them except those killed while waiting;
//   timers     sleep_for, sleep_until, select+after, with_timeout and nested timeout_scopes on a
//              channel nobody sends on: each must fire, and never before its deadline;
//   hogs       a CPU hog in a this_tasklet::preemptible scope (hard preemption) and one that
//              calls checkpoint() (soft), on a scheduler with options::quantum set;
//   threads    plain threads that come and go, each spawning and joining tasklets, block_on,
//              channel calls and detached spawns counted down through a wait_group.
// Every round but the threads' kills (and replaces) tasklets at random while it runs.
#include <memory>
#include <mutex>
#include <vector>

#include "soak.hpp"

namespace soak {

namespace sl = stackless;
namespace {

constexpr auto relaxed = std::memory_order_relaxed;

void pause_briefly(bool in_tasklet, rng& r) {
  if (!in_tasklet) {
    std::this_thread::yield();
  } else if (r.below(4) == 0) {
    sl::this_tasklet::sleep_for(r.us(50));
  } else {
    sl::this_tasklet::yield();
  }
}

// crew_round() runs body(i, true) in n tasklets and body(n, false) in one plain thread for
// `length`, killing a random tasklet and starting a new one in its place every few
// milliseconds; then sets `over` (the bodies loop until it is set) and joins them all.
template <class Body>
void crew_round(ctx& c, rng& r, unsigned n, std::chrono::milliseconds length,
                std::atomic<bool>& over, const char* what, Body body) {
  std::vector<sl::tasklet<void>> crew(n);
  auto start = [&](unsigned i) {
    crew[i] = sl::spawn([body, i] { body(i, true); });
    crew[i].set_name(what);
  };
  for (unsigned i = 0; i < n; ++i) start(i);
  plain_thread t(c, what, [body, n] { body(n, false); });
  const auto end = clock::now() + length;
  while (clock::now() < end && !c.stopping()) {
    sl::this_tasklet::sleep_for(r.us(4000));
    if (!c.kills) continue;
    auto k = static_cast<unsigned>(r.below(n));
    crew[k].kill();
    start(k);
    c.n.kills.fetch_add(1, relaxed);
  }
  over.store(true, relaxed);
  for (auto& tk : crew) tk.join();
  t.finish();
}

// holder counts the holders of a lock or permit while it lives; more than `limit` at once is an
// error. Declared after the lock (or permit) it counts, so it ends first, also when a kill
// unwinds the holder.
class holder {
 public:
  holder(ctx& c, std::atomic<int>& count, int limit, const char* what) : count_(count) {
    if (count_.fetch_add(1, std::memory_order_acq_rel) + 1 > limit)
      c.fail("%s: more than %d holders at once", what, limit);
  }
  ~holder() { count_.fetch_sub(1, std::memory_order_acq_rel); }
  holder(const holder&) = delete;
  holder& operator=(const holder&) = delete;

 private:
  std::atomic<int>& count_;
};

void mutex_round(ctx& c, rng& r, sl::mutex_policy policy) {
  sl::mutex m(policy);
  std::atomic<int> inside{0};
  std::atomic<bool> over{false};
  crew_round(c, r, std::max(2u, 6 / c.scale), 1000ms, over, "mutex",
             [&](unsigned i, bool in_tasklet) {
               rng rr(seed());
               while (!over.load(relaxed)) {
                 std::unique_lock<sl::mutex> lk(m, std::defer_lock);
                 if (i % 2 == 0) {
                   lk.lock();
                 } else if (!lk.try_lock_for(rr.us(500))) {
                   continue;
                 }
                 holder h(c, inside, 1, "mutex");
                 pause_briefly(in_tasklet, rr);  // parks (or yields) while holding the lock
                 c.n.locks.fetch_add(1, relaxed);
               }
             });
  if (inside.load() != 0) c.fail("mutex: %d holders left after the round", inside.load());
  if (!m.try_lock()) {
    c.fail("mutex: still locked after the round");
  } else {
    m.unlock();
  }
}

template <class Semaphore>
void semaphore_round(ctx& c, rng& r, const char* what) {
  constexpr int permits = 3;
  Semaphore sem(permits);
  std::atomic<int> holding{0};
  std::atomic<bool> over{false};
  crew_round(c, r, std::max(4u, 8 / c.scale), 1000ms, over, what, [&](unsigned i, bool in_tasklet) {
    rng rr(seed());
    while (!over.load(relaxed)) {
      if (i % 2 == 0) {
        sem.acquire();
      } else if (!sem.try_acquire_for(rr.us(500))) {
        continue;
      }
      struct permit {  // gives the permit back, also when a kill unwinds the holder
        Semaphore& s;
        ~permit() { s.release(); }
      } p{sem};
      holder h(c, holding, permits, what);
      pause_briefly(in_tasklet, rr);
      c.n.permits.fetch_add(1, relaxed);
    }
  });
  if (sem.value() != permits)
    c.fail("%s: %td permits after the round, not %d", what, sem.value(), permits);
}

void event_round(ctx& c, rng& r) {
  enum : int { not_started, waiting, passed, killed_waiting };
  const unsigned n = std::max(2u, 6 / c.scale);
  sl::event ev;
  std::atomic<bool> armed{false};
  std::vector<std::atomic<int>> state(n + 1);
  auto waiter = [&](unsigned i, bool in_tasklet) {
    rng rr(seed());
    state[i].store(waiting);
    try {
      if (i % 2 == 0 && in_tasklet) {
        ev.wait();
      } else {
        while (!ev.wait_for(rr.us(1000))) {
        }
      }
    } catch (const sl::tasklet_exit&) {
      state[i].store(killed_waiting);
      throw;
    }
    if (!armed.load()) c.fail("event: a wait returned before set()");
    state[i].store(passed);
    c.n.events.fetch_add(1, relaxed);
  };
  std::vector<sl::tasklet<void>> ws;
  for (unsigned i = 0; i < n; ++i) {
    ws.push_back(sl::spawn(waiter, i, true));
    ws.back().set_name("event waiter");
  }
  plain_thread t(c, "event waiter", [&waiter, n] { waiter(n, false); });
  sl::this_tasklet::sleep_for(r.us(2000));
  std::vector<bool> killed(n, false);
  for (std::uint64_t k = c.kills ? r.below(3) : 0; k > 0; --k) {
    auto i = static_cast<unsigned>(r.below(n));
    ws[i].kill();
    killed[i] = true;
    c.n.kills.fetch_add(1, relaxed);
  }
  armed.store(true);
  ev.set();
  for (auto& w : ws) w.join();
  t.finish();
  for (unsigned i = 0; i <= n; ++i) {
    int s = state[i].load();
    bool ok = s == passed || (i < n && killed[i] && (s == killed_waiting || s == not_started));
    if (!ok) c.fail("event: waiter %u ended in state %d (killed: %d)", i, s, i < n && killed[i]);
  }
}

// timed_op() does one timed operation on `never` (nobody sends on it) and checks that it timed
// out, and not before its deadline.
void timed_op(ctx& c, rng& r, sl::channel<int>& never) {
  const auto d = r.us(3000);
  const auto t0 = clock::now();
  const auto op = r.below(5);
  switch (op) {
    case 0:
      sl::this_tasklet::sleep_for(d);
      break;
    case 1:
      sl::this_tasklet::sleep_until(t0 + d);
      break;
    case 2:
      if (sl::select(sl::on_receive(never, [](int) {}), sl::after(d, [] {})) != 1)
        c.fail("timers: select chose a channel nobody sends on over after()");
      break;
    case 3:
      if (sl::with_timeout(d, [&] { never.receive(); }))
        c.fail("timers: with_timeout around a receive nobody serves finished");
      break;
    default: {
      sl::timeout_scope outer(d);  // fires first: the inner scope's deadline is 10 ms later
      try {
        sl::with_timeout(d + 10ms, [&] { never.receive(); });
        c.fail("timers: nested timeout_scope: neither scope fired");
      } catch (const sl::timeout_error& e) {
        if (!e.from(outer)) c.fail("timers: nested timeout_scope: the wrong scope fired");
      }
    }
  }
  auto took = clock::now() - t0;
  if (took < d) {
    c.fail("timers: operation %llu ended %lld us before its deadline", (unsigned long long)op,
           (long long)std::chrono::duration_cast<std::chrono::microseconds>(d - took).count());
  }
  c.n.sleeps.fetch_add(1, relaxed);
}

void timers_round(ctx& c, rng& r) {
  sl::channel<int> never;
  std::atomic<bool> over{false};
  crew_round(c, r, std::max(4u, 16 / c.scale), 1000ms, over, "timers",
             [&](unsigned, bool in_tasklet) {
               rng rr(seed());
               if (!in_tasklet) {  // a plain thread sleeps through the same calls
                 while (!over.load(relaxed)) {
                   if (never.receive_for(rr.us(2000)))
                     c.fail("timers: receive_for got a value nobody sent");
                   c.n.sleeps.fetch_add(1, relaxed);
                 }
                 return;
               }
               sl::channel<int> mine = never;
               while (!over.load(relaxed)) timed_op(c, rr, mine);
             });
}

// hog() computes in slices of about a millisecond (an LCG: pure arithmetic, no calls), then
// sleeps a little. hard: inside a preemptible scope, with a checkpoint() only every quarter of a
// slice (so kill() is delivered); otherwise a checkpoint() every 1,024 steps.
void hog(ctx& c, std::atomic<bool>& over, bool hard) {
  rng rr(seed());
  const std::uint32_t steps = 1u << 18;
  while (!over.load(relaxed)) {
    std::uint64_t x = rr.next();
    if (hard) {
      sl::this_tasklet::preemptible p;
      for (int q = 0; q < 4; ++q) {
        for (std::uint32_t i = 0; i < steps; ++i)
          x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        sl::this_tasklet::checkpoint();
      }
    } else {
      for (std::uint32_t i = 0; i < 4 * steps; ++i) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        if ((i & 1023) == 0) sl::this_tasklet::checkpoint();
      }
    }
    if (x == 0) c.n.hog_slices.fetch_add(0, relaxed);  // keeps x alive
    c.n.hog_slices.fetch_add(1, relaxed);
    sl::this_tasklet::sleep_for(rr.us(2000));
  }
}

void hogs_round(ctx& c, rng& r) {
  std::atomic<bool> over{false};
  crew_round(c, r, 2, 1000ms, over, "hogs", [&](unsigned i, bool in_tasklet) {
    if (in_tasklet) {
      hog(c, over, i == 0);
    } else {
      while (!over.load(relaxed)) std::this_thread::sleep_for(1ms);
    }
  });
}

// thread_work() is what each short-lived plain thread does: tasklet calls from outside.
void thread_work(ctx& c) {
  sl::scheduler& s = *c.s;
  rng r(seed());
  for (int k = 0; k < 20; ++k) {
    switch (r.below(4)) {
      case 0: {
        auto t = s.spawn([] {
          sl::this_tasklet::yield();
          return 7;
        });
        if (t.join() != 7) c.fail("threads: join returned the wrong value");
        break;
      }
      case 1:
        if (s.block_on([] {
              sl::this_tasklet::sleep_for(50us);
              return 1;
            }) != 1)
          c.fail("threads: block_on returned the wrong value");
        break;
      case 2: {
        sl::channel<int> ch;
        auto t = s.spawn([ch]() mutable {
          ch.send(1);
          ch.send(2);
        });
        int a = ch.receive(), b = ch.receive();
        if (a != 1 || b != 2) c.fail("threads: channel values %d %d, not 1 2", a, b);
        t.join();
        break;
      }
      default: {
        auto wg = std::make_shared<sl::wait_group>();
        wg->add(4);
        for (int i = 0; i < 4; ++i) s.spawn([wg] { wg->done(); });
        wg->wait();
      }
    }
    c.n.thread_calls.fetch_add(1, relaxed);
  }
}

}  // namespace

void drive_mutex(ctx& c) {
  rng r(seed());
  for (unsigned round = 0; !c.stopping(); ++round) {
    try {
      mutex_round(c, r, round % 2 ? sl::mutex_policy::throughput : sl::mutex_policy::fair);
      c.n.rounds.fetch_add(1, relaxed);
    } catch (const std::exception& e) {
      c.fail("mutex round: unexpected exception: %s", e.what());
    }
  }
}

void drive_semaphore(ctx& c) {
  rng r(seed());
  for (unsigned round = 0; !c.stopping(); ++round) {
    try {
      if (round % 2)
        semaphore_round<sl::bounded_semaphore>(c, r, "bounded_semaphore");
      else
        semaphore_round<sl::counting_semaphore>(c, r, "counting_semaphore");
      c.n.rounds.fetch_add(1, relaxed);
    } catch (const std::exception& e) {
      c.fail("semaphore round: unexpected exception: %s", e.what());
    }
  }
}

void drive_event(ctx& c) {
  rng r(seed());
  while (!c.stopping()) {
    try {
      event_round(c, r);
      c.n.rounds.fetch_add(1, relaxed);
    } catch (const std::exception& e) {
      c.fail("event round: unexpected exception: %s", e.what());
    }
  }
}

void drive_timers(ctx& c) {
  rng r(seed());
  while (!c.stopping()) {
    try {
      timers_round(c, r);
      c.n.rounds.fetch_add(1, relaxed);
    } catch (const std::exception& e) {
      c.fail("timers round: unexpected exception: %s", e.what());
    }
  }
}

void drive_hogs(ctx& c) {
  rng r(seed());
  while (!c.stopping()) {
    try {
      hogs_round(c, r);
      c.n.rounds.fetch_add(1, relaxed);
    } catch (const std::exception& e) {
      c.fail("hogs round: unexpected exception: %s", e.what());
    }
  }
}

void drive_plain_threads(ctx& c) {
  rng r(seed());
  while (!c.stopping()) {
    std::vector<std::thread> ts;
    for (int i = 0; i < 2; ++i) {
      ts.emplace_back([&c] {
        try {
          thread_work(c);
        } catch (const std::exception& e) {
          c.fail("threads: unexpected exception: %s", e.what());
        }
      });
    }
    for (auto& t : ts) t.join();
    std::this_thread::sleep_for(r.us(5000));
  }
}

}  // namespace soak
