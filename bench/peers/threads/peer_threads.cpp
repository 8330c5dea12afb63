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
//   fib, skynet: not applicable (exit 2) — a thread per call means hundreds of thousands of live
//           threads.
#include "common.hpp"
#include <sched.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

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

}  // namespace

int main(int argc, char** argv) {
  bench::cli c;
  if (int rc = bench::parse(argc, argv, c)) return rc;
  outcome (*run)(std::int64_t) = nullptr;
  if (c.name == "spawn") run = run_spawn;
  else if (c.name == "yield") run = run_yield;
  else return 2;  // fib, skynet: not applicable
  if (!pin_to_first_cpus(c.name == "yield" ? 1 : c.workers)) {
    std::fprintf(stderr, "%s: sched_setaffinity failed\n", argv[0]);
    return 1;
  }
  (void)run(c.n / 10);  // warm-up
  return bench::report("threads", c, run(c.n));
}
