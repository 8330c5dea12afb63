// SPDX-License-Identifier: Apache-2.0
// bench/submit_rtt.cpp — the "Embedding" issue's part 1: a plain thread submits work, a tasklet
// runs it, the result comes back to the thread; the round trip's p50/p99 (tools/bench_submit.py
// runs it with its peers and compares).
//
//   stackless_submit_rtt submit|futex|async [--workers T] [--n N] [--warmup W]
//
// Output: bench/submit_rtt.hpp. Variants:
//   submit  ours: stackless::scheduler with options.workers = T, max_pending 0 (unbounded), and
//           `s.submit([i] { return i + 1; }).get()` from main. The workers are started before the
//           warm-up by one submit (with T = 1 the first get() starts the worker thread).
//   futex   this machine's floor: main and one other thread ping-pong through two futex words
//           (raw FUTEX_WAIT / FUTEX_WAKE, private, no spinning): main stores i + 1 in `ping` and
//           wakes it, the other thread copies it to `pong` and wakes that. A round trip is two
//           wake-ups of a sleeping thread, what any hand-off to another thread and back costs at
//           least once both sides sleep. The target (p50 <= 1.5x this) is against this figure of
//           the same run. --workers is ignored (one thread).
//   async   std::async(std::launch::async, ...).get(): libstdc++ starts a new thread for every
//           call (and joins it in the future's destructor), so this is thread creation + exit +
//           join per round trip, not a pool. --workers is ignored.
// The peers: bench/peers/tbb/submit_tbb.cpp, bench/peers/asio/submit_asio.cpp.
#include "submit_rtt.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <future>
#include <stackless/runtime/scheduler.hpp>
#include <thread>

namespace {

using bench::submit::cli;
using bench::submit::measure;

int run_submit(const cli& c) {
  stackless::options o;
  o.workers = c.workers;
  o.name = "submit-rtt";
  stackless::scheduler s(std::move(o));
  (void)s.submit([] { return 0; }).get();  // starts the workers before anything is timed
  return measure("stackless", c,
                 [&](std::int64_t i) { return s.submit([i] { return i + 1; }).get(); });
}

long futex(std::atomic<std::int32_t>& word, int op, std::int32_t val) {
  static_assert(sizeof(std::atomic<std::int32_t>) == sizeof(std::int32_t));
  return syscall(SYS_futex, reinterpret_cast<std::int32_t*>(&word), op | FUTEX_PRIVATE_FLAG, val,
                 nullptr, nullptr, 0);
}

int run_futex(const cli& c) {
  // ping: the latest request (i + 1), -1 to stop; pong: the latest answer. Both start at 0.
  std::atomic<std::int32_t> ping{0}, pong{0};
  std::thread other([&] {
    std::int32_t seen = 0;
    for (;;) {
      std::int32_t v = ping.load(std::memory_order_acquire);
      while (v == seen) {
        futex(ping, FUTEX_WAIT, seen);
        v = ping.load(std::memory_order_acquire);
      }
      if (v < 0) return;
      seen = v;
      pong.store(v, std::memory_order_release);
      futex(pong, FUTEX_WAKE, 1);
    }
  });
  std::int32_t seq = 0;  // requests so far (the warm-up's too): values stay distinct
  auto round_trip = [&](std::int64_t i) -> std::int64_t {
    const std::int32_t want = ++seq;
    ping.store(want, std::memory_order_release);
    futex(ping, FUTEX_WAKE, 1);
    std::int32_t v = pong.load(std::memory_order_acquire);
    while (v != want) {
      futex(pong, FUTEX_WAIT, v);
      v = pong.load(std::memory_order_acquire);
    }
    return i + 1;  // the other side echoed `want`; the check counts round trips
  };
  const int rc = measure("futex", c, round_trip);
  ping.store(-1, std::memory_order_release);
  futex(ping, FUTEX_WAKE, 1);
  other.join();
  return rc;
}

int run_async(const cli& c) {
  return measure("async", c, [](std::int64_t i) {
    return std::async(std::launch::async, [i] { return i + 1; }).get();
  });
}

}  // namespace

int main(int argc, char** argv) {
  cli c;
  if (int rc = bench::submit::parse(argc, argv, c, "submit|futex|async")) return rc;
  if (c.variant == "submit") return run_submit(c);
  if (c.variant == "futex") return run_futex(c);
  if (c.variant == "async") return run_async(c);
  std::fprintf(stderr, "%s: unknown variant '%s'\n", argv[0], c.variant.c_str());
  return 2;
}
