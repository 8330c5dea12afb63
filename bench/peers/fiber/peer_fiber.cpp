// SPDX-License-Identifier: Apache-2.0
// bench/peers/fiber/peer_fiber.cpp — the comparison workloads on Boost.Fiber (1.74).
//
// Usage: peer_fiber <workload> <workers> <n>; output, exit codes and workloads exactly as in
// bench/workloads.cpp (read its header first). Fibers use Boost's default stacks.
//
// Scheduling: T threads, every one running boost::fibers::algo::work_stealing(T) — the main
// thread plus T-1 helpers that only wait (fiber-aware) until the run is over, running stolen
// fibers meanwhile. work_stealing keeps its registry in process-global statics, so it can be set
// up once per process: the warm-up and the timed run share the same threads.
// `yield` (and `sleep` at T=1) instead uses the default round_robin algorithm on the main thread
// alone.
//
// Channels: rendezvous channels are boost::fibers::unbuffered_channel (push() returns once a
// consumer has taken the value, as our send() at capacity 0). The mpmc workloads use
// boost::fibers::buffered_channel, which only takes a power-of-2 capacity >= 2 and then holds
// capacity - 1 values (one slot stays empty to tell full from empty). So the capacities used are:
//   mpmc_c1     buffered_channel(2)     holds 1 value    (exactly ours)
//   mpmc_c64    buffered_channel(64)    holds 63 values  (128 would hold 127; 64 is closer)
//   mpmc_c1024  buffered_channel(1024)  holds 1023 values
// `pingpong_x` does not use the team: see run_pingpong_x() for how it forces two threads.
//
// mutex: 8 fibers on the team share one boost::fibers::mutex (fiber-aware: a fiber that finds it
// locked is suspended, not the thread). sleep: one fiber calls boost::this_fiber::sleep_for(1ms)
// n times. How Boost.Fiber sleeps differs with T:
//   T >= 2: the team's work_stealing is built with its default suspend = false, so an idle
//           thread's suspend_until() returns at once and its dispatcher spins (polling its sleep
//           queue and trying to steal) instead of blocking until the deadline: every idle thread
//           burns its CPU meanwhile, and on a loaded machine the kernel preempts the spinner.
//   T = 1:  work_stealing(1) cannot be used: with its own ready queue empty, pick_next() loops
//           forever drawing a random victim other than itself, and with one thread there is none
//           (the other workloads never empty the queue, sleep does at once). So sleep at T=1 runs
//           on the default round_robin on the main thread alone, as yield does; its
//           suspend_until() blocks on a condition variable until the earliest deadline.
#include <atomic>
#include <boost/fiber/all.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"

namespace {

using bench::clock_type;
using bench::fib_spawns;
using bench::outcome;
using bench::since;
using bench::skynet_spawns;

// --- workloads (each runs inside a fiber) ----------------------------------------------------

outcome run_spawn(std::int64_t n) {
  std::vector<boost::fibers::fiber> kids;
  kids.reserve(static_cast<std::size_t>(n));
  auto t0 = clock_type::now();
  for (std::int64_t i = 0; i < n; ++i) kids.emplace_back([] {});
  std::int64_t joined = 0;
  for (auto& k : kids) {
    k.join();
    ++joined;
  }
  return {since(t0), joined, n};
}

outcome run_yield(std::int64_t n) {
  std::int64_t half = n / 2;
  std::int64_t other_done = 0;
  auto t0 = clock_type::now();
  boost::fibers::fiber other([half, &other_done] {
    for (std::int64_t i = 0; i < half; ++i) boost::this_fiber::yield();
    other_done = half;
  });
  for (std::int64_t i = 0; i < half; ++i) boost::this_fiber::yield();
  other.join();
  std::int64_t done = half + other_done;
  return {since(t0), done, done};
}

std::int64_t fib(int n) {
  if (n < 2) return n;
  std::int64_t a = 0;
  boost::fibers::fiber child([&a, n] { a = fib(n - 1); });
  std::int64_t b = fib(n - 2);
  child.join();
  return a + b;
}

outcome run_fib(std::int64_t n) {
  auto t0 = clock_type::now();
  std::int64_t v = fib(static_cast<int>(n));
  return {since(t0), v, fib_spawns(static_cast<int>(n))};
}

std::int64_t skynet(std::int64_t num, std::int64_t size) {
  if (size == 1) return num;
  std::int64_t step = size / 10;
  std::int64_t results[10];
  boost::fibers::fiber kids[10];
  for (int i = 0; i < 10; ++i)
    kids[i] = boost::fibers::fiber(
        [&results, i, num, step] { results[i] = skynet(num + i * step, step); });
  std::int64_t sum = 0;
  for (int i = 0; i < 10; ++i) {
    kids[i].join();
    sum += results[i];
  }
  return sum;
}

outcome run_skynet(std::int64_t n) {
  auto t0 = clock_type::now();
  std::int64_t v = skynet(0, n);
  return {since(t0), v, skynet_spawns(n)};
}

using rendezvous = boost::fibers::unbuffered_channel<std::int64_t>;

// pingpong: the pinger sends v on `ping`, the ponger answers v + 1 on `pong`; n round trips take
// v from 0 to n. One untimed round trip first, so both sides are running (and, in pingpong_x, on
// their own threads) when the clock starts; the ponger therefore answers n + 1 times.
outcome pinger(rendezvous& ping, rendezvous& pong, std::int64_t n) {
  ping.push(0);
  (void)pong.value_pop();
  auto t0 = clock_type::now();
  std::int64_t v = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    ping.push(v);
    v = pong.value_pop();
  }
  return {since(t0), v, n};
}

void ponger(rendezvous& ping, rendezvous& pong, std::int64_t n) {
  for (std::int64_t i = 0; i <= n; ++i) pong.push(ping.value_pop() + 1);
}

outcome run_pingpong(std::int64_t n) {
  rendezvous ping, pong;
  boost::fibers::fiber other([&] { ponger(ping, pong, n); });
  outcome r = pinger(ping, pong, n);
  other.join();
  return r;
}

// pingpong_x: the two sides on different OS threads. Forced by construction: two std::threads,
// each with its own fiber scheduler (the default round_robin, which never migrates a fiber) and
// one fiber; every wake-up crosses threads. Called from main(), not from inside a fiber.
outcome run_pingpong_x(std::int64_t n) {
  rendezvous ping, pong;
  outcome r;
  std::thread a([&] { boost::fibers::fiber([&] { r = pinger(ping, pong, n); }).join(); });
  std::thread b([&] { boost::fibers::fiber([&] { ponger(ping, pong, n); }).join(); });
  a.join();
  b.join();
  return r;
}

// chain: n fibers in a line; fiber i receives from links[i] and sends that + 1 on links[i + 1].
// The clock covers creating every channel and fiber and the value's trip; the joins come after
// it (Go has no join, ours detaches), and only make it safe to destroy the channels.
outcome run_chain(std::int64_t n) {
  std::vector<std::unique_ptr<rendezvous>> links;
  std::vector<boost::fibers::fiber> line;
  links.reserve(static_cast<std::size_t>(n) + 1);  // outside the timed part, as in spawn
  line.reserve(static_cast<std::size_t>(n));
  auto t0 = clock_type::now();
  links.push_back(std::make_unique<rendezvous>());
  for (std::int64_t i = 0; i < n; ++i) {
    links.push_back(std::make_unique<rendezvous>());
    rendezvous* in = links[static_cast<std::size_t>(i)].get();
    rendezvous* out = links[static_cast<std::size_t>(i) + 1].get();
    line.emplace_back([in, out] { out->push(in->value_pop() + 1); });
  }
  links.front()->push(0);
  std::int64_t v = links.back()->value_pop();
  double ns = since(t0);
  for (auto& f : line) f.join();
  return {ns, v, n};
}

// mpmc: P producers send 1..n/P each into one buffered channel, C consumers pop until it is
// closed and drained; the last producer to finish closes it. See the top of the file for the
// capacity: Boost's buffered_channel(cap) holds cap - 1 values.
std::size_t fiber_capacity(std::size_t cap) { return cap < 2 ? 2 : cap; }

outcome run_mpmc(std::size_t cap, std::int64_t n) {
  using boost::fibers::channel_op_status;
  constexpr int P = bench::mpmc_producers, C = bench::mpmc_consumers;
  const std::int64_t per = n / P;
  auto t0 = clock_type::now();
  boost::fibers::buffered_channel<std::int64_t> ch(fiber_capacity(cap));
  std::atomic<int> producing{P};
  std::int64_t sums[C] = {};
  std::vector<boost::fibers::fiber> fibers;
  fibers.reserve(P + C);
  for (int p = 0; p < P; ++p) {
    fibers.emplace_back([&ch, &producing, per] {
      for (std::int64_t v = 1; v <= per; ++v) ch.push(v);
      if (producing.fetch_sub(1) == 1) ch.close();
    });
  }
  for (int c = 0; c < C; ++c) {
    fibers.emplace_back([&ch, &sums, c] {
      std::int64_t sum = 0, v = 0;
      while (ch.pop(v) == channel_op_status::success) sum += v;
      sums[c] = sum;
    });
  }
  for (auto& f : fibers) f.join();
  std::int64_t total = 0;
  for (std::int64_t s : sums) total += s;
  return {since(t0), total, per * P};
}

// mutex: mutex_tasklets fibers, each makes n / mutex_tasklets increments of one counter under one
// fiber mutex. The clock covers creating the fibers, the increments and the joins.
outcome run_mutex(std::int64_t n) {
  constexpr int K = bench::mutex_tasklets;
  const std::int64_t per = n / K;
  boost::fibers::mutex mu;
  std::int64_t counter = 0;  // guarded by mu
  std::vector<boost::fibers::fiber> fibers;
  fibers.reserve(K);
  auto t0 = clock_type::now();
  for (int k = 0; k < K; ++k) {
    fibers.emplace_back([&mu, &counter, per] {
      for (std::int64_t i = 0; i < per; ++i) {
        mu.lock();
        ++counter;
        mu.unlock();
      }
    });
  }
  for (auto& f : fibers) f.join();
  double ns = since(t0);
  return {ns, counter, per * K};
}

// sleep: one fiber sleeps 1 ms n times in a row; lateness = wake-up time - (start + 1 ms).
outcome run_sleep(std::int64_t n) {
  std::vector<double> late;
  late.reserve(static_cast<std::size_t>(n));
  auto t0 = clock_type::now();
  for (std::int64_t i = 0; i < n; ++i) {
    auto start = clock_type::now();
    boost::this_fiber::sleep_for(bench::sleep_period);
    late.push_back(since(start + bench::sleep_period));
  }
  outcome r{since(t0), static_cast<std::int64_t>(late.size()), n};
  bench::set_lateness(r, late);
  return r;
}

// --- the work-stealing thread team --------------------------------------------------------------

/// team runs T threads under work_stealing(T) for its lifetime; the constructing thread is one of
/// them. Helpers park on a fiber condition variable, so their dispatchers keep stealing.
class team {
 public:
  explicit team(unsigned threads) {
    for (unsigned i = 1; i < threads; ++i) {
      helpers_.emplace_back([this, threads] {
        boost::fibers::use_scheduling_algorithm<boost::fibers::algo::work_stealing>(threads);
        std::unique_lock<boost::fibers::mutex> lk(mu_);
        cv_.wait(lk, [this] { return done_; });
      });
    }
    // The constructor of work_stealing waits on a barrier until all T threads have made theirs.
    boost::fibers::use_scheduling_algorithm<boost::fibers::algo::work_stealing>(threads);
  }
  ~team() {
    {
      std::unique_lock<boost::fibers::mutex> lk(mu_);
      done_ = true;
    }
    cv_.notify_all();
    for (auto& t : helpers_) t.join();
  }

 private:
  boost::fibers::mutex mu_;
  boost::fibers::condition_variable cv_;
  bool done_ = false;  // guarded by mu_
  std::vector<std::thread> helpers_;
};

/// in_fiber() runs f in a new fiber on this thread's scheduler and waits for it.
template <class F>
outcome in_fiber(F f) {
  outcome r;
  boost::fibers::fiber([&] { r = f(); }).join();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  bench::cli c;
  if (int rc = bench::parse(argc, argv, c)) return rc;
  std::function<outcome(std::int64_t)> run;
  if (c.name == "spawn")
    run = run_spawn;
  else if (c.name == "yield")
    run = run_yield;
  else if (c.name == "pingpong")
    run = run_pingpong;
  else if (c.name == "chain")
    run = run_chain;
  else if (c.name == "fib")
    run = run_fib;
  else if (c.name == "skynet")
    run = run_skynet;
  else if (std::size_t cap = bench::mpmc_capacity(c.name))
    run = [cap](std::int64_t n) { return run_mpmc(cap, n); };
  else if (c.name == "mutex" || c.name == "mutex_tp")
    run = run_mutex;  // one mutex kind
  else if (c.name == "sleep")
    run = run_sleep;
  // preempt, preempt_hard: not applicable — fibers are never preempted, so a hog would hold
  // its thread until the run ends and the periodic fiber would never wake. hog, hog_q0 measure
  // the cost of a preemption quantum, which fibers do not have.
  else if (bench::preempt_workload(c.name))
    return 2;

  outcome r;
  if (c.name == "yield" || (c.name == "sleep" && c.workers == 1)) {
    // One thread, the default round_robin scheduler (sleep: see the top of the file).
    in_fiber([&] { return run(c.warm); });
    r = in_fiber([&] { return run(c.n); });
  } else if (c.name == "pingpong_x") {
    // Its own two threads, each with its own scheduler (see run_pingpong_x()).
    (void)run_pingpong_x(c.warm);
    r = run_pingpong_x(c.n);
  } else {
    team t(static_cast<unsigned>(c.workers));
    in_fiber([&] { return run(c.warm); });
    r = in_fiber([&] { return run(c.n); });
  }
  return bench::report("fiber", c, r);
}
