// SPDX-License-Identifier: Apache-2.0
// bench/common.hpp — what every comparison program shares: the command line, the workloads'
// sizes and expected results, timing, and the one RESULT line tools/bench.py reads.
//
//   PROG <workload> <workers> <n>
//   RESULT workload=<w> impl=<impl> workers=<T> n=<n> total_ms=<f> ns_per_op=<f> check=<i>
//          [p50_ns=<f> p99_ns=<f> max_ns=<f>]   (the lateness workloads: sleep, preempt,
//                                                 preempt_hard)
//          [<name>=<i> ...]                      (optional counters, e.g. ours' preemptions)
//
// Exit codes: 0 ok; 1 the check failed (or the runtime threw); 2 workload not applicable /
// unknown; 64 bad command line.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace bench {

using clock_type = std::chrono::steady_clock;

/// outcome is what one workload run measured.
struct outcome {
  double ns = 0;           // wall time of the timed part
  std::int64_t check = 0;  // the workload's result, compared with plan::want
  std::int64_t ops = 0;    // the denominator of ns_per_op
  // The lateness workloads (sleep, preempt, preempt_hard) only: percentiles of the measured
  // lateness, ns. When has_lateness (set_lateness() sets it), ns_per_op is p99_ns and the
  // RESULT line carries all three.
  bool has_lateness = false;
  double p50_ns = 0;
  double p99_ns = 0;
  double max_ns = 0;
  // Optional integer fields appended to the RESULT line as name=value, in this order (ours: the
  // preemptions of the timed run). tools/bench.py keeps the ones it knows and ignores the rest.
  std::vector<std::pair<std::string, std::int64_t>> extra{};
};

inline double since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::nano>(clock_type::now() - t0).count();
}

/// percentile() is the nearest-rank pct-th percentile (0 < pct <= 100) of `sorted` (ascending,
/// not empty): the value of rank ceil(pct * size / 100), in integers (no rounding surprises).
inline double percentile(const std::vector<double>& sorted, int pct) {
  std::size_t rank = (static_cast<std::size_t>(pct) * sorted.size() + 99) / 100;
  if (rank < 1) rank = 1;
  return sorted[rank - 1];
}

/// set_lateness() stores p50, p99 and max of the lateness samples `ns` (sorts them) in r.
inline void set_lateness(outcome& r, std::vector<double>& ns) {
  if (ns.empty()) return;
  std::sort(ns.begin(), ns.end());
  r.p50_ns = percentile(ns, 50);
  r.p99_ns = percentile(ns, 99);
  r.max_ns = ns.back();
  r.has_lateness = true;
}

/// mutex_tasklets is how many tasklets (goroutines, fibers, threads) share the one mutex of the
/// mutex workload; each makes n / mutex_tasklets of the n increments.
constexpr int mutex_tasklets = 8;

/// sleep_period is the one sleep the sleep workload repeats n times in one tasklet.
constexpr std::chrono::milliseconds sleep_period{1};

/// hog_state and hog_unit() are the work of the CPU hogs (preempt, preempt_hard, hog): one unit
/// is hog_unit_steps steps of two serial dependency chains, a 64-bit LCG and a float that mixes
/// its high bits in — pure register arithmetic, no memory traffic, no calls, nothing a compiler
/// can skip or vectorise (each step needs the previous one). About 350 ns a unit on the
/// machines here; bench/peers/go/peer.go has the same loop (hogUnit, with x and f in locals so
/// that Go keeps them in registers too; measured equal to this one).
struct hog_state {
  std::uint64_t x = 1;
  double f = 0;
};
constexpr int hog_unit_steps = 256;

[[gnu::always_inline]] inline void hog_unit(hog_state& s) {
  std::uint64_t x = s.x;
  double f = s.f;
  for (int i = 0; i < hog_unit_steps; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    f = f * 0.5 + static_cast<double>(x >> 11) * 0x1p-53;
  }
  s.x = x;
  s.f = f;
}

/// preempt_workload() tells whether `name` needs a preemptive scheduler: CPU hogs that never
/// block occupy every worker (preempt, preempt_hard: and a periodic tasklet must still wake up;
/// hog, hog_q0: the quantum's cost). A runtime without preemption would never run the periodic
/// tasklet, so the peers without it report "not applicable" (exit 2).
inline bool preempt_workload(const std::string& name) {
  return name == "preempt" || name == "preempt_hard" || name == "hog" || name == "hog_q0";
}

/// fib_value() is fib(n), iteratively.
inline std::int64_t fib_value(int n) {
  std::int64_t a = 0, b = 1;
  for (int i = 0; i < n; ++i) {
    std::int64_t c = a + b;
    a = b;
    b = c;
  }
  return a;
}

/// fib_spawns() is how many spawns fib(n) makes: one per call above the base case.
inline std::int64_t fib_spawns(int n) { return fib_value(n + 1) - 1; }

/// mpmc_producers and mpmc_consumers are P and C of the mpmc workloads: P producers each send
/// 1, 2, ..., n/P into one buffered channel, C consumers sum what they receive.
constexpr int mpmc_producers = 4;
constexpr int mpmc_consumers = 4;

/// mpmc_capacity() is the channel capacity of an mpmc workload (mpmc_c<cap>), or 0 if `name` is
/// not one.
inline std::size_t mpmc_capacity(const std::string& name) {
  if (name == "mpmc_c1") return 1;
  if (name == "mpmc_c64") return 64;
  if (name == "mpmc_c1024") return 1024;
  return 0;
}

/// mpmc_sum() is what the consumers of an mpmc run of n items receive in total.
inline std::int64_t mpmc_sum(std::int64_t n) {
  const std::int64_t per = n / mpmc_producers;
  return mpmc_producers * (per * (per + 1) / 2);
}

/// skynet_spawns() is the number of tasklets below skynet's root: n + n/10 + ... + 10.
inline std::int64_t skynet_spawns(std::int64_t n) {
  std::int64_t total = 0;
  for (std::int64_t level = n; level > 1; level /= 10) total += level;
  return total;
}

inline bool power_of_10(std::int64_t n) {
  while (n > 1 && n % 10 == 0) n /= 10;
  return n == 1;
}

struct cli {
  std::string name;
  long workers = 0;
  std::int64_t n = 0;
  std::int64_t warm = 0;  // the untimed warm-up's size
  std::int64_t want = 0;  // the check a correct run produces
};

constexpr const char* usage_names =
    "<spawn|yield|pingpong|pingpong_x|chain|fib|skynet|mpmc_c1|mpmc_c64|mpmc_c1024|mutex|mutex_tp|"
    "sleep|"
    "preempt|preempt_hard|hog|hog_q0>";

/// parse() reads the command line and sizes the workload; 0, or the exit code to return.
inline int parse(int argc, char** argv, cli& c) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s %s <workers> <n>\n", argv[0], usage_names);
    return 64;
  }
  c.name = argv[1];
  c.workers = std::strtol(argv[2], nullptr, 10);
  c.n = std::strtoll(argv[3], nullptr, 10);
  if (c.workers < 1 || c.n < 1) {
    std::fprintf(stderr, "%s: workers and n must be positive\n", argv[0]);
    return 64;
  }
  const std::int64_t n = c.n;
  if (c.name == "spawn") {
    c.warm = n / 10;
    c.want = n;
  } else if (c.name == "yield") {
    c.warm = n / 10;
    c.want = n / 2 * 2;
  } else if (c.name == "fib") {
    if (n > 40) {
      std::fprintf(stderr, "%s: fib: n > 40 would take hours\n", argv[0]);
      return 64;
    }
    c.warm = n > 5 ? n - 5 : n;
    c.want = fib_value(static_cast<int>(n));
  } else if (c.name == "skynet") {
    if (!power_of_10(n)) {
      std::fprintf(stderr, "%s: skynet: n must be a power of 10\n", argv[0]);
      return 64;
    }
    c.warm = n >= 100 ? n / 10 : n;
    c.want = n * (n - 1) / 2;
  } else if (c.name == "pingpong" || c.name == "pingpong_x") {
    // n round trips; the value makes one trip ping -> pong, +1 each time, so ends at n.
    c.warm = n >= 10 ? n / 10 : n;
    c.want = n;
    // pingpong_x is defined on two workers (the sides on different threads), whatever the
    // command line says; the RESULT line says so.
    if (c.name == "pingpong_x") c.workers = 2;
  } else if (c.name == "chain") {
    // n tasklets in a line, each adds 1 to the value passing through: 0 comes out as n.
    c.warm = n >= 10 ? n / 10 : n;
    c.want = n;
  } else if (mpmc_capacity(c.name) != 0) {
    if (n % mpmc_producers != 0) {
      std::fprintf(stderr, "%s: %s: n must be a multiple of %d (the producers)\n", argv[0],
                   c.name.c_str(), mpmc_producers);
      return 64;
    }
    // The warm-up: a tenth, rounded down to a multiple of P (at least one item per producer).
    c.warm = n / 10 / mpmc_producers * mpmc_producers;
    if (c.warm == 0) c.warm = mpmc_producers;
    c.want = mpmc_sum(n);
  } else if (c.name == "mutex" || c.name == "mutex_tp") {
    if (n % mutex_tasklets != 0) {
      std::fprintf(stderr, "%s: mutex: n must be a multiple of %d (the tasklets)\n", argv[0],
                   mutex_tasklets);
      return 64;
    }
    // The warm-up: a tenth, rounded down to a multiple of the tasklets (at least one each).
    c.warm = n / 10 / mutex_tasklets * mutex_tasklets;
    if (c.warm == 0) c.warm = mutex_tasklets;
    c.want = n;  // the counter's final value
  } else if (c.name == "sleep" || c.name == "preempt" || c.name == "preempt_hard") {
    c.warm = n >= 10 ? n / 10 : 1;
    c.want = n;  // the sleeps (periods) done
  } else if (c.name == "hog" || c.name == "hog_q0") {
    c.warm = n >= 10 ? n / 10 : 1;
    c.want = n;  // the units of work done, by all hogs together
  } else {
    std::fprintf(stderr, "%s: unknown workload '%s'\n", argv[0], c.name.c_str());
    return 2;
  }
  return 0;
}

/// report() prints the RESULT line and checks the result; returns the exit code. A lateness
/// workload (r.has_lateness) reports p99 as ns_per_op and appends p50_ns, p99_ns and max_ns.
inline int report(const char* impl, const cli& c, const outcome& r) {
  const bool lateness = r.has_lateness;
  std::printf(
      "RESULT workload=%s impl=%s workers=%ld n=%lld total_ms=%.3f ns_per_op=%.3f "
      "check=%lld",
      c.name.c_str(), impl, c.workers, static_cast<long long>(c.n), r.ns / 1e6,
      lateness ? r.p99_ns : r.ns / static_cast<double>(r.ops), static_cast<long long>(r.check));
  if (lateness) std::printf(" p50_ns=%.3f p99_ns=%.3f max_ns=%.3f", r.p50_ns, r.p99_ns, r.max_ns);
  for (const auto& [name, value] : r.extra)
    std::printf(" %s=%lld", name.c_str(), static_cast<long long>(value));
  std::printf("\n");
  if (r.check != c.want) {
    std::fprintf(stderr, "%s: %s check mismatch: got %lld, want %lld\n", impl, c.name.c_str(),
                 static_cast<long long>(r.check), static_cast<long long>(c.want));
    return 1;
  }
  return 0;
}

}  // namespace bench
