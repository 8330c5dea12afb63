// SPDX-License-Identifier: Apache-2.0
// bench/peers/threads/peer_threads.cpp — the comparison workloads on plain std::thread.
//
// Usage: peer_threads <workload> <workers> <n>; output and exit codes as in bench/workloads.cpp
// (read its header first). This is the "one kernel thread per tasklet" baseline.
//
// Workers: the process is pinned to its first T allowed CPUs (sched_setaffinity), the closest
// a thread-per-task program gets to "T workers".
//   spawn   n threads with an empty body, each joined. Unlike the other programs at most
//           kWindow threads are outstanding at once (the oldest is joined before a new one starts):
//           a million unjoined threads would exhaust memory maps (each keeps its 8 MiB stack).
//   yield   two threads, pinned to ONE CPU, each calls sched_yield() n/2 times: the kernel's
//           switch between two runnable threads.
//   mutex   8 threads (bench::mutex_tasklets) share one std::mutex and one counter, n/8
//           increments each; the process is pinned to T CPUs as for spawn.
//   sleep   the main thread calls std::this_thread::sleep_for(1ms) n times (clock_nanosleep:
//           the kernel's timer plus the thread's timer slack, 50 µs by default).
//   fib, skynet: not applicable (exit 2) — a thread per call means hundreds of thousands of live
//           threads.
#include <sched.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"

namespace {

using bench::clock_type;
using bench::outcome;
using bench::since;

constexpr std::size_t kWindow = 1024;  // spawn: threads outstanding at most

/// pin_to_first_cpus() restricts the process to the first `count` CPUs it may run on.
bool pin_to_first_cpus(long count) {
  cpu_set_t allowed, use;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return false;
  CPU_ZERO(&use);
  for (int c = 0, taken = 0; c < CPU_SETSIZE && taken < count; ++c) {
    if (CPU_ISSET(c, &allowed)) {
      CPU_SET(c, &use);
      ++taken;
    }
  }
  return sched_setaffinity(0, sizeof use, &use) == 0;
}

outcome run_spawn(std::int64_t n) {
  std::vector<std::thread> ring(kWindow);
  std::int64_t joined = 0;
  auto t0 = clock_type::now();
  for (std::int64_t i = 0; i < n; ++i) {
    auto& slot = ring[static_cast<std::size_t>(i) % kWindow];
    if (slot.joinable()) {
      slot.join();
      ++joined;
    }
    slot = std::thread([] {});
  }
  for (auto& t : ring) {
    if (t.joinable()) {
      t.join();
      ++joined;
    }
  }
  return {since(t0), joined, n};
}

outcome run_yield(std::int64_t n) {
  std::int64_t half = n / 2, other_done = 0;
  auto t0 = clock_type::now();
  std::thread other([half, &other_done] {
    for (std::int64_t i = 0; i < half; ++i) sched_yield();
    other_done = half;
  });
  for (std::int64_t i = 0; i < half; ++i) sched_yield();
  other.join();
  std::int64_t done = half + other_done;
  return {since(t0), done, done};
}

outcome run_mutex(std::int64_t n) {
  constexpr int K = bench::mutex_tasklets;
  const std::int64_t per = n / K;
  std::mutex mu;
  std::int64_t counter = 0;  // guarded by mu
  std::vector<std::thread> threads;
  threads.reserve(K);
  auto t0 = clock_type::now();
  for (int k = 0; k < K; ++k) {
    threads.emplace_back([&mu, &counter, per] {
      for (std::int64_t i = 0; i < per; ++i) {
        mu.lock();
        ++counter;
        mu.unlock();
      }
    });
  }
  for (auto& t : threads) t.join();
  double ns = since(t0);
  return {ns, counter, per * K};
}

outcome run_sleep(std::int64_t n) {
  std::vector<double> late;
  late.reserve(static_cast<std::size_t>(n));
  auto t0 = clock_type::now();
  for (std::int64_t i = 0; i < n; ++i) {
    auto start = clock_type::now();
    std::this_thread::sleep_for(bench::sleep_period);
    late.push_back(since(start + bench::sleep_period));
  }
  outcome r{since(t0), static_cast<std::int64_t>(late.size()), n};
  bench::set_lateness(r, late);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  bench::cli c;
  if (int rc = bench::parse(argc, argv, c)) return rc;
  outcome (*run)(std::int64_t) = nullptr;
  if (c.name == "spawn")
    run = run_spawn;
  else if (c.name == "yield")
    run = run_yield;
  else if (c.name == "mutex" || c.name == "mutex_tp")
    run = run_mutex;  // one mutex kind
  else if (c.name == "sleep")
    run = run_sleep;
  else
    return 2;  // fib, skynet, ...: not applicable
  if (!pin_to_first_cpus(c.name == "yield" ? 1 : c.workers)) {
    std::fprintf(stderr, "%s: sched_setaffinity failed\n", argv[0]);
    return 1;
  }
  (void)run(c.warm);  // warm-up
  return bench::report("threads", c, run(c.n));
}
