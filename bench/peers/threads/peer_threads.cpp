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
#include <sched.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

constexpr std::size_t kWindow = 1024;  // spawn: threads outstanding at most

struct outcome {
  double ns = 0;
  std::int64_t check = 0;
  std::int64_t ops = 0;
};

double since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::nano>(clock_type::now() - t0).count();
}

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
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s <spawn|yield> <workers> <n>\n", argv[0]);
    return 64;
  }
  std::string name = argv[1];
  long workers = std::strtol(argv[2], nullptr, 10);
  std::int64_t n = std::strtoll(argv[3], nullptr, 10);
  if (workers < 1 || n < 1) {
    std::fprintf(stderr, "workers and n must be positive\n");
    return 64;
  }

  outcome (*run)(std::int64_t) = nullptr;
  std::int64_t want = 0;
  if (name == "spawn") {
    run = run_spawn;
    want = n;
  } else if (name == "yield") {
    run = run_yield;
    want = n / 2 * 2;
  } else {
    return 2;  // fib, skynet, anything else: not applicable
  }
  if (!pin_to_first_cpus(name == "yield" ? 1 : workers)) {
    std::fprintf(stderr, "%s: sched_setaffinity failed\n", argv[0]);
    return 1;
  }

  (void)run(n / 10);  // warm-up
  outcome r = run(n);

  std::printf("RESULT workload=%s impl=threads workers=%ld n=%lld total_ms=%.3f ns_per_op=%.3f "
              "check=%lld\n",
              name.c_str(), workers, static_cast<long long>(n), r.ns / 1e6,
              r.ns / static_cast<double>(r.ops), static_cast<long long>(r.check));
  if (r.check != want) {
    std::fprintf(stderr, "%s: %s check mismatch: got %lld, want %lld\n", argv[0], name.c_str(),
                 static_cast<long long>(r.check), static_cast<long long>(want));
    return 1;
  }
  return 0;
}
