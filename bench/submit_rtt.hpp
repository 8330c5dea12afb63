// SPDX-License-Identifier: Apache-2.0
// bench/submit_rtt.hpp — what the submit round-trip programs share (the "Embedding" issue, part
// 1): the command line, the timed loop and the one JSON line tools/bench_submit.py reads.
//
//   PROG <variant> [--workers T] [--n N] [--warmup W]
//   {"impl": "...", "variant": "...", "workers": T, "n": N, "warmup": W, "p50_us": f,
//    "p99_us": f, "mean_us": f, "max_us": f, "check": i}
//
// One plain thread (main) makes W untimed round trips, then N timed ones, back to back; each
// round trip hands the value i to the other side, which returns i + 1, and is timed alone with
// steady_clock (two now() calls, ~20–40 ns on these VMs, are part of every sample, of every
// variant alike). check is the sum of the N results; the program verifies it (exit code 1 if
// wrong). Exit codes: 0 ok; 1 a wrong check or an exception; 2 unknown variant; 64 bad command
// line.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "common.hpp"  // bench::percentile

namespace bench::submit {

struct cli {
  std::string variant;
  unsigned workers = 1;
  std::int64_t n = 20'000;
  std::int64_t warmup = 2'000;
};

/// parse() reads the command line; 0, or the exit code to return.
inline int parse(int argc, char** argv, cli& c, const char* variants) {
  auto usage = [&] {
    std::fprintf(stderr, "usage: %s %s [--workers T] [--n N] [--warmup W]\n", argv[0], variants);
    return 64;
  };
  if (argc < 2 || argv[1][0] == '-') return usage();
  c.variant = argv[1];
  for (int i = 2; i < argc; i += 2) {
    if (i + 1 >= argc) return usage();
    const long long v = std::strtoll(argv[i + 1], nullptr, 10);
    if (std::strcmp(argv[i], "--workers") == 0) {
      c.workers = static_cast<unsigned>(v);
    } else if (std::strcmp(argv[i], "--n") == 0) {
      c.n = v;
    } else if (std::strcmp(argv[i], "--warmup") == 0) {
      c.warmup = v;
    } else {
      return usage();
    }
  }
  if (c.workers < 1 || c.n < 1 || c.warmup < 0) return usage();
  return 0;
}

/// measure() runs round_trip(i) (which must return i + 1) warmup + n times from the calling
/// thread, times the last n, prints the JSON line and returns the exit code.
template <class RoundTrip>
int measure(const char* impl, const cli& c, RoundTrip&& round_trip) {
  try {
    for (std::int64_t i = 0; i < c.warmup; ++i) (void)round_trip(i);
    std::vector<double> us(static_cast<std::size_t>(c.n));
    std::int64_t check = 0;
    for (std::int64_t i = 0; i < c.n; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      const std::int64_t r = round_trip(i);
      const auto t1 = std::chrono::steady_clock::now();
      us[static_cast<std::size_t>(i)] = std::chrono::duration<double, std::micro>(t1 - t0).count();
      check += r;
    }
    const std::int64_t want = c.n * (c.n + 1) / 2;
    if (check != want) {
      std::fprintf(stderr, "%s %s: check %lld != %lld\n", impl, c.variant.c_str(),
                   static_cast<long long>(check), static_cast<long long>(want));
      return 1;
    }
    double sum = 0;
    for (double x : us) sum += x;
    std::sort(us.begin(), us.end());
    std::printf(
        "{\"impl\": \"%s\", \"variant\": \"%s\", \"workers\": %u, \"n\": %lld, \"warmup\": %lld, "
        "\"p50_us\": %.3f, \"p99_us\": %.3f, \"mean_us\": %.3f, \"max_us\": %.3f, \"check\": "
        "%lld}\n",
        impl, c.variant.c_str(), c.workers, static_cast<long long>(c.n),
        static_cast<long long>(c.warmup), bench::percentile(us, 50), bench::percentile(us, 99),
        sum / static_cast<double>(c.n), us.back(), static_cast<long long>(check));
    std::fflush(stdout);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s %s: %s\n", impl, c.variant.c_str(), e.what());
    return 1;
  }
}

}  // namespace bench::submit
