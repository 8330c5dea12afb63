// SPDX-License-Identifier: Apache-2.0
// bench/micro.cpp — Google Benchmark microbenchmarks of the runtime, one worker.
//
//   BM_spawn/<batch>  spawn <batch> empty tasklets, then join them all; repeated inside ONE
//                     block_on, so what is timed is the tasklet's life only. items/s and
//                     ns_per_tasklet count tasklets.
//   BM_yield          the root tasklet and a partner yield to each other; one iteration is two
//                     switches (root -> partner -> root). ns_per_switch counts switches.
//   BM_mutex_uncontended  lock + unlock of a stackless::mutex inside a tasklet, nobody else
//                     around (issue 5's target: <= 10 ns); BM_std_mutex_uncontended is the
//                     same with std::mutex on the same thread, for scale.
//   BM_sleep_timer    arm and fire one timer: sleep_until(now) parks and the worker fires the
//                     already-due timer (the cost of the timer path, not of waiting).
//   BM_checkpoint/<q> 1000 this_tasklet::checkpoint() calls in a loop that also adds to a
//                     counter, inside a tasklet, with options::quantum = q µs (0: no monitor;
//                     1000: the monitor ticks, nothing else waits, so it never asks). The cost
//                     of one call is (this - BM_checkpoint_baseline) / 1000 (issue 6's target:
//                     <= 1 ns); ns_per_call reports this loop's time per call.
//   BM_checkpoint_baseline  the same loop without the calls.
//
// The benchmark loop runs inside a tasklet, i.e. on the worker thread: Google Benchmark only needs
// the loop to stay on one thread, which workers = 1 guarantees. Real time is reported.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stackless/runtime.hpp>
#include <stackless/sync.hpp>
#include <vector>

namespace {

/// one_worker() is options{.workers = 1}, spelled so -Wextra does not flag the omitted fields.
stackless::options one_worker() {
  stackless::options o;
  o.workers = 1;
  return o;
}

void BM_spawn(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  stackless::scheduler s(one_worker());
  s.block_on([&] {
    std::vector<stackless::tasklet<void>> kids;
    kids.reserve(batch);
    for (auto _ : state) {
      for (std::size_t i = 0; i < batch; ++i) kids.push_back(stackless::spawn([] {}));
      for (auto& k : kids) k.join();
      kids.clear();
    }
  });
  auto tasklets = static_cast<double>(state.iterations()) * static_cast<double>(batch);
  state.SetItemsProcessed(static_cast<std::int64_t>(tasklets));
  state.counters["ns_per_tasklet"] =
      benchmark::Counter(tasklets, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_spawn)->Arg(1)->Arg(64)->Arg(1024)->UseRealTime();

void BM_yield(benchmark::State& state) {
  stackless::scheduler s(one_worker());
  s.block_on([&] {
    // Only ever touched on the one worker; atomic so the partner's loop re-reads it.
    std::atomic<bool> stop{false};
    auto partner = stackless::spawn([&stop] {
      while (!stop.load(std::memory_order_relaxed)) stackless::this_tasklet::yield();
    });
    stackless::this_tasklet::yield();  // let the partner start before timing
    for (auto _ : state) stackless::this_tasklet::yield();
    stop.store(true, std::memory_order_relaxed);
    partner.join();
  });
  state.counters["ns_per_switch"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 2,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_yield)->UseRealTime();

void BM_mutex_uncontended(benchmark::State& state) {
  stackless::scheduler s(one_worker());
  stackless::mutex m;
  s.block_on([&] {
    for (auto _ : state) {
      m.lock();
      m.unlock();
    }
  });
}
BENCHMARK(BM_mutex_uncontended)->UseRealTime();

void BM_std_mutex_uncontended(benchmark::State& state) {
  std::mutex m;
  for (auto _ : state) {
    m.lock();
    m.unlock();
  }
}
BENCHMARK(BM_std_mutex_uncontended)->UseRealTime();

void BM_sleep_timer(benchmark::State& state) {
  stackless::scheduler s(one_worker());
  s.block_on([&] {
    for (auto _ : state) {
      // A deadline 1 ns ahead: the park arms a timer that is due by the time the worker looks.
      stackless::this_tasklet::sleep_until(std::chrono::steady_clock::now() +
                                           std::chrono::nanoseconds(1));
    }
  });
}
BENCHMARK(BM_sleep_timer)->UseRealTime();

constexpr int checkpoint_batch = 1000;

void BM_checkpoint(benchmark::State& state) {
  stackless::options o = one_worker();
  o.quantum = std::chrono::microseconds(state.range(0));
  stackless::scheduler s(o);
  s.block_on([&] {
    std::uint64_t sum = 0;
    for (auto _ : state) {
      for (int i = 0; i < checkpoint_batch; ++i) {
        stackless::this_tasklet::checkpoint();
        sum += static_cast<std::uint64_t>(i);
        benchmark::DoNotOptimize(sum);
      }
    }
  });
  state.counters["ns_per_call"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * checkpoint_batch,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_checkpoint)->Arg(0)->Arg(1000)->UseRealTime();

void BM_checkpoint_baseline(benchmark::State& state) {
  stackless::scheduler s(one_worker());
  s.block_on([&] {
    std::uint64_t sum = 0;
    for (auto _ : state) {
      for (int i = 0; i < checkpoint_batch; ++i) {
        sum += static_cast<std::uint64_t>(i);
        benchmark::DoNotOptimize(sum);
      }
    }
  });
  state.counters["ns_per_call"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * checkpoint_batch,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_checkpoint_baseline)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
