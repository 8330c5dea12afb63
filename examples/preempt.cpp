// SPDX-License-Identifier: Apache-2.0
// examples/preempt.cpp — a 1 ms periodic tasklet next to CPU hogs on every worker, three ways:
//
//   quantum 0          the hogs call checkpoint(), but nobody asks them to switch: the periodic
//                      tasklet waits until a hog's whole computation is done;
//   quantum 1 ms, soft the monitor asks; the hogs yield at their next checkpoint();
//   quantum 1 ms, hard the hogs run inside this_tasklet::preemptible with no checkpoint at all;
//                      a signal interrupts them (x86-64 Linux; elsewhere it stays soft).
//
// It prints the lateness of the periodic tasklet's wake-ups (p50 / p99 / max) and the scheduler's
// preemption counts, and checks that every hog computed the same result as an uninterrupted run.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stackless/runtime.hpp>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
namespace tt = stackless::this_tasklet;

enum class mode { off, soft, hard };

// crunch() is one unit of pure computation: integer hashing and floating point.
std::uint64_t crunch(std::uint64_t h, int n) {
  double x = 1.0;
  for (int i = 0; i < n; ++i) {
    h = (h ^ static_cast<std::uint64_t>(i)) * 1099511628211ULL;
    x = x * 1.0000001 + static_cast<double>(h & 15) * 0.25;
    if (x > 1e9) x *= 1e-9;
  }
  return h ^ static_cast<std::uint64_t>(x);
}

constexpr int units = 4000;  // a hog's work: units × crunch(…, 20'000), ~0.2 s here

std::uint64_t hog_work(bool checkpoints) {
  std::uint64_t h = 1469598103934665603ULL;
  for (int u = 0; u < units; ++u) {
    h = crunch(h, 20'000);
    if (checkpoints) tt::checkpoint();
  }
  return h;
}

void run(mode m, unsigned workers, std::uint64_t expected) {
  stackless::options o;
  o.workers = workers;
  o.quantum = m == mode::off ? 0us : 1000us;
  stackless::scheduler s(o);
  std::atomic<int> wrong{0};
  std::vector<stackless::tasklet<void>> hogs;
  std::vector<double> late;
  auto periodic = s.spawn([&] {
    // The hogs start once this tasklet sleeps: every worker is then busy.
    for (unsigned i = 0; i < workers; ++i) {
      hogs.push_back(stackless::spawn([&, m] {
        std::uint64_t h;
        if (m == mode::hard) {
          tt::preemptible p;
          h = hog_work(false);
        } else {
          h = hog_work(true);
        }
        if (h != expected) wrong.fetch_add(1);
      }));
    }
    for (int i = 0; i < 100; ++i) {
      auto start = clock_type::now();
      tt::sleep_for(1ms);
      late.push_back(
          std::chrono::duration<double, std::micro>(clock_type::now() - start - 1ms).count());
      bool any = false;
      for (auto& h : hogs) any = any || h.alive();
      if (!any) break;
    }
    for (auto& h : hogs) h.join();
  });
  periodic.join();
  std::sort(late.begin(), late.end());
  auto pct = [&](double p) {
    return late[static_cast<std::size_t>(p * static_cast<double>(late.size() - 1))];
  };
  auto st = s.stats();
  std::printf(
      "  %-18s T=%u  %3zu wake-ups  lateness p50 %8.0f µs  p99 %8.0f µs  max %8.0f µs"
      "  soft %4llu  hard %4llu%s%s\n",
      m == mode::off    ? "quantum 0"
      : m == mode::soft ? "quantum 1 ms, soft"
                        : "quantum 1 ms, hard",
      workers, late.size(), pct(0.5), pct(0.99), late.back(),
      static_cast<unsigned long long>(st.soft_preemptions),
      static_cast<unsigned long long>(st.hard_preemptions),
      m != mode::off && !st.monitor_realtime ? "  (monitor not real-time)" : "",
      wrong.load() ? "  WRONG RESULT" : "");
  if (wrong.load()) std::exit(1);
}

}  // namespace

int main() {
  const std::uint64_t expected = hog_work(false);  // on this thread, never interrupted
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  std::printf("preemption: a 1 ms periodic tasklet next to a CPU hog on every worker\n");
  for (unsigned w : {1u, cores}) {
    for (mode m : {mode::off, mode::soft, mode::hard}) run(m, w, expected);
    if (cores == 1) break;
  }
}
