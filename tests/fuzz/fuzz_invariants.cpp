// SPDX-License-Identifier: Apache-2.0
// tests/fuzz/fuzz_invariants.cpp — libFuzzer target: a decoded workload at workers = 2, checked
// for invariants only (the interleaving is not deterministic, so there is nothing to compare
// with a model).
//
// The input chooses a channel capacity (0–3), semaphore permits (1–2), and a crowd of tasklets:
// producers sending unique values with send / send_for / try_send, consumers receiving with
// receive / receive_for / select with an after() case, lockers taking the mutex (lock or
// try_lock_for) around a yield, semaphore users doing the same with acquire / try_acquire_for,
// and event waiters (wait or a wait_for loop). Then a plan of kills and pause/resume pairs, each
// after a chosen number of yields, against chosen tasklets, while everything runs on two workers.
// The controller then adds a drainer that nobody kills, joins the producers, closes the channel,
// joins the consumers, sets the event, joins the rest; the main thread shuts the scheduler down.
//
// Checked:
//  - exactly-once: no value is received twice, every received value was sent by someone, every
//    value whose send returned true was received (a producer killed mid-send may or may not have
//    delivered; nothing else may be lost);
//  - mutual exclusion: never two tasklets inside the mutex; permits: never more holders than
//    permits; at the end the mutex is free and the semaphore has all its permits (kills unwind
//    through the RAII guards);
//  - no lost wake-ups: every tasklet ends (each join has a 5 s guard; a deadlock_error fails too),
//    every event waiter that was not killed returned from its wait;
//  - clean teardown: after shutdown(), no live tasklet and no stack outstanding.
// A violation prints the decoded workload and aborts.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <stackless/runtime.hpp>
#include <stackless/sync.hpp>
#include <string>
#include <vector>

#include "decoder.hpp"

namespace {

using namespace std::chrono_literals;
using stackless::fuzz::decoder;
namespace this_tasklet = stackless::this_tasklet;

std::string g_trace;  // the decoded workload of the current input (printed on a failure)

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz_invariants: VIOLATION: %s\nworkload:\n%s\n", what.c_str(),
               g_trace.c_str());
  std::fflush(stderr);
  std::abort();
}

struct counter {  // a count of holders and the most ever seen at once
  std::atomic<int> now{0}, peak{0};
  void enter() {
    int n = now.fetch_add(1, std::memory_order_acq_rel) + 1;
    int p = peak.load(std::memory_order_relaxed);
    while (n > p && !peak.compare_exchange_weak(p, n, std::memory_order_relaxed)) {
    }
  }
  void leave() { now.fetch_sub(1, std::memory_order_acq_rel); }
};

struct holder {  // RAII: a kill while inside unwinds through it
  counter& c;
  explicit holder(counter& x) : c(x) { c.enter(); }
  ~holder() { c.leave(); }
};

struct world {
  stackless::channel<int> ch;
  stackless::mutex m;
  stackless::counting_semaphore sem;
  stackless::event ev;
  counter in_mutex, in_sem;
  std::ptrdiff_t permits;
  // Written by one tasklet each, read by the controller after that tasklet ended.
  std::vector<std::vector<int>> sent;       // per producer: values whose send returned true
  std::vector<std::vector<int>> attempted;  // per producer: every value it tried
  std::vector<std::vector<int>> received;   // per consumer (the drainer last)
  std::vector<char> waited;                 // per event waiter: returned from its wait
  world(std::size_t cap, std::ptrdiff_t p) : ch(cap), sem(p), permits(p) {}
};

void producer(world& w, int id, std::vector<std::uint8_t> modes) {
  for (std::size_t i = 0; i < modes.size(); ++i) {
    int v = id * 1000 + static_cast<int>(i) + 1;
    w.attempted[id].push_back(v);
    bool ok = false;
    switch (modes[i] % 3) {
      case 0:
        w.ch.send(v);
        ok = true;
        break;
      case 1:
        ok = w.ch.send_for(v, 50us);
        break;
      default:
        for (int tries = 0; tries < 64 && !ok; ++tries) {
          ok = w.ch.try_send(v);
          if (!ok) this_tasklet::yield();
        }
    }
    if (ok) w.sent[id].push_back(v);
  }
}

void consumer(world& w, int id, int mode) {
  auto& got = w.received[id];
  try {
    for (;;) {
      switch (mode) {
        case 0:
          got.push_back(w.ch.receive());  // no suspension point between receive and record
          break;
        case 1:
          if (auto v = w.ch.receive_for(100us)) got.push_back(*v);
          break;
        default: {
          bool closed = false;
          stackless::select(stackless::on_receive(w.ch,
                                                  [&](std::optional<int> v) {
                                                    if (v)
                                                      got.push_back(*v);
                                                    else
                                                      closed = true;
                                                  }),
                            stackless::after(100us, [] {}));
          if (closed) return;
        }
      }
    }
  } catch (const stackless::channel_closed&) {
  }
}

void locker(world& w, bool timed) {
  for (int i = 0; i < 3; ++i) {
    std::unique_lock<stackless::mutex> lk(w.m, std::defer_lock);
    if (timed) {
      if (!lk.try_lock_for(50us)) continue;
    } else {
      lk.lock();
    }
    holder h(w.in_mutex);
    this_tasklet::yield();
  }
}

void sem_user(world& w, bool timed) {
  for (int i = 0; i < 3; ++i) {
    if (timed) {
      if (!w.sem.try_acquire_for(50us)) continue;
    } else {
      w.sem.acquire();
    }
    struct release_on_exit {
      stackless::counting_semaphore& s;
      ~release_on_exit() { s.release(); }
    } r{w.sem};
    holder h(w.in_sem);
    this_tasklet::yield();
  }
}

void ev_waiter(world& w, int id, bool timed) {
  if (timed) {
    while (!w.ev.wait_for(100us)) {
    }
  } else {
    w.ev.wait();
  }
  w.waited[id] = 1;
}

void join_or_fail(stackless::tasklet<void>& t, const char* what) {
  try {
    if (!t.join_for(5s)) fail(std::string(what) + " did not end within 5 s (a lost wake-up?)");
    t.join();
  } catch (const stackless::deadlock_error& e) {
    fail(std::string(what) + ": deadlock_error: " + e.what());
  }
}

struct plan_step {
  bool kill;  // else pause, resumed after the plan
  int delay;  // yields before it
  int target;
};

struct workload {
  std::size_t cap;
  std::ptrdiff_t permits;
  std::vector<std::vector<std::uint8_t>> producers;  // send modes
  std::vector<int> consumers;                        // receive modes
  std::vector<bool> lockers, sem_users, ev_waiters;  // timed?
  std::vector<plan_step> plan;
};

workload decode(decoder& in) {
  workload wl;
  wl.cap = in.below(4);
  wl.permits = 1 + in.below(2);
  wl.producers.resize(1 + in.below(3));
  for (auto& p : wl.producers) {
    p.resize(1 + in.below(8));
    for (auto& m : p) m = in.byte();
  }
  wl.consumers.resize(1 + in.below(2));
  for (auto& c : wl.consumers) c = static_cast<int>(in.below(3));
  wl.lockers.resize(in.below(4));
  for (std::size_t i = 0; i < wl.lockers.size(); ++i) wl.lockers[i] = in.flag();
  wl.sem_users.resize(in.below(4));
  for (std::size_t i = 0; i < wl.sem_users.size(); ++i) wl.sem_users[i] = in.flag();
  wl.ev_waiters.resize(in.below(3));
  for (std::size_t i = 0; i < wl.ev_waiters.size(); ++i) wl.ev_waiters[i] = in.flag();
  while (!in.done() && wl.plan.size() < 8) {
    plan_step s;
    s.kill = in.flag();
    s.delay = static_cast<int>(in.below(16));
    s.target = static_cast<int>(in.byte());
    wl.plan.push_back(s);
  }
  g_trace = "capacity " + std::to_string(wl.cap) + ", permits " + std::to_string(wl.permits) +
            ", producers";
  for (auto& p : wl.producers) {
    g_trace += " [";
    for (auto m : p) g_trace += "srt"[m % 3];
    g_trace += "]";
  }
  g_trace += ", consumers";
  for (int c : wl.consumers) g_trace += std::string(" ") + "rfs"[c];
  g_trace += ", lockers " + std::to_string(wl.lockers.size()) + ", sem users " +
             std::to_string(wl.sem_users.size()) + ", event waiters " +
             std::to_string(wl.ev_waiters.size()) + "\nplan:";
  for (auto& s : wl.plan)
    g_trace += std::string(" ") + (s.kill ? "kill" : "pause") + "(#" + std::to_string(s.target) +
               " after " + std::to_string(s.delay) + ")";
  return wl;
}

void controller(world& w, const workload& wl) {
  std::vector<stackless::tasklet<void>> all, producers, consumers, rest;
  for (std::size_t i = 0; i < wl.producers.size(); ++i)
    producers.push_back(
        stackless::spawn(producer, std::ref(w), static_cast<int>(i), wl.producers[i]));
  for (std::size_t i = 0; i < wl.consumers.size(); ++i)
    consumers.push_back(
        stackless::spawn(consumer, std::ref(w), static_cast<int>(i), wl.consumers[i]));
  for (bool t : wl.lockers) rest.push_back(stackless::spawn(locker, std::ref(w), t));
  for (bool t : wl.sem_users) rest.push_back(stackless::spawn(sem_user, std::ref(w), t));
  for (std::size_t i = 0; i < wl.ev_waiters.size(); ++i)
    rest.push_back(stackless::spawn(ev_waiter, std::ref(w), static_cast<int>(i),
                                    static_cast<bool>(wl.ev_waiters[i])));
  for (auto* v : {&producers, &consumers, &rest}) all.insert(all.end(), v->begin(), v->end());

  std::vector<stackless::tasklet<void>> paused;
  for (const plan_step& s : wl.plan) {
    for (int i = 0; i < s.delay; ++i) this_tasklet::yield();
    auto& t = all[static_cast<std::size_t>(s.target) % all.size()];
    if (s.kill) {
      t.kill();
      if (t.alive()) fail("a tasklet outlived kill()");
    } else {
      try {
        t.pause();  // usage_error when it is blocked or has ended: fine
        paused.push_back(t);
      } catch (const stackless::usage_error&) {
      }
    }
  }
  for (auto& t : paused) {
    try {
      t.resume();
    } catch (const stackless::usage_error&) {  // it was killed meanwhile
    }
  }

  auto drainer = stackless::spawn(consumer, std::ref(w), static_cast<int>(wl.consumers.size()), 0);
  for (auto& t : producers) join_or_fail(t, "a producer");
  w.ch.close();
  for (auto& t : consumers) join_or_fail(t, "a consumer");
  join_or_fail(drainer, "the drainer");
  w.ev.set();
  for (auto& t : rest) join_or_fail(t, "a locker, semaphore user or event waiter");

  // Exactly once.
  std::vector<int> got, sent, attempted;
  for (auto& v : w.received) got.insert(got.end(), v.begin(), v.end());
  for (auto& v : w.sent) sent.insert(sent.end(), v.begin(), v.end());
  for (auto& v : w.attempted) attempted.insert(attempted.end(), v.begin(), v.end());
  std::sort(got.begin(), got.end());
  std::sort(sent.begin(), sent.end());
  std::sort(attempted.begin(), attempted.end());
  if (std::adjacent_find(got.begin(), got.end()) != got.end())
    fail("a value was received twice: " +
         std::to_string(*std::adjacent_find(got.begin(), got.end())));
  for (int v : got)
    if (!std::binary_search(attempted.begin(), attempted.end(), v))
      fail("received a value nobody sent: " + std::to_string(v));
  for (int v : sent)
    if (!std::binary_search(got.begin(), got.end(), v))
      fail("a value whose send returned true was never received: " + std::to_string(v));

  if (w.in_mutex.peak.load() > 1) fail("two tasklets inside the mutex at once");
  if (w.in_sem.peak.load() > w.permits)
    fail("more semaphore holders than permits: " + std::to_string(w.in_sem.peak.load()));
  if (w.in_mutex.now.load() != 0 || w.in_sem.now.load() != 0)
    fail("a holder count did not return to 0");
  if (!w.m.try_lock()) fail("the mutex is still held after every locker ended");
  w.m.unlock();
  if (w.sem.value() != w.permits)
    fail("semaphore value " + std::to_string(w.sem.value()) + " at the end, permits " +
         std::to_string(w.permits));
  // Every event waiter that was not killed returned from its wait.
  const std::size_t first_waiter = all.size() - wl.ev_waiters.size();
  for (std::size_t i = 0; i < wl.ev_waiters.size(); ++i) {
    bool killed = false;
    for (const plan_step& s : wl.plan)
      killed |= s.kill && static_cast<std::size_t>(s.target) % all.size() == first_waiter + i;
    if (!killed && !w.waited[i]) fail("an event waiter that was not killed never returned");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  decoder in(data, size);
  const workload wl = decode(in);
  stackless::options o;
  o.workers = 2;
  o.deadlock_grace = 500ms;
  {
    stackless::scheduler s(o);
    {
      world w(wl.cap, wl.permits);
      w.sent.resize(wl.producers.size());
      w.attempted.resize(wl.producers.size());
      w.received.resize(wl.consumers.size() + 1);
      w.waited.assign(wl.ev_waiters.size(), 0);
      try {
        s.block_on([&] { controller(w, wl); });
      } catch (const stackless::deadlock_error& e) {
        fail(std::string("deadlock_error: ") + e.what());
      }
      s.drain();
    }
    s.shutdown();
    const auto stats = s.stats();
    if (stats.live != 0 || stats.stacks_outstanding != 0)
      fail("after shutdown: live " + std::to_string(stats.live) + ", stacks outstanding " +
           std::to_string(stats.stacks_outstanding));
  }
  return 0;
}
