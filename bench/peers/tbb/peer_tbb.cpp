// SPDX-License-Identifier: Apache-2.0
// bench/peers/tbb/peer_tbb.cpp — the comparison workloads on oneTBB.
//
// Usage: peer_tbb <workload> <workers> <n>; output, exit codes and workloads exactly as in
// bench/workloads.cpp (read its header first).
//
// oneTBB tasks are stackless: a task_group::wait() does not suspend, it runs other tasks on the
// waiting thread's stack. So this is the "run-to-completion tasks" point of comparison, and
// `yield` (a suspension) is not applicable: exit code 2.
// Workers: a task_arena of T slots (the main thread is one of them) under a global_control that
// caps the whole process at T threads.
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common.hpp"

namespace {

using bench::clock_type;
using bench::fib_spawns;
using bench::outcome;
using bench::since;
using bench::skynet_spawns;

outcome run_spawn(std::int64_t n) {
  auto t0 = clock_type::now();
  tbb::task_group g;
  for (std::int64_t i = 0; i < n; ++i) g.run([] {});
  g.wait();
  return {since(t0), n, n};
}

std::int64_t fib(int n) {
  if (n < 2) return n;
  std::int64_t a = 0;
  tbb::task_group g;
  g.run([&a, n] { a = fib(n - 1); });
  std::int64_t b = fib(n - 2);
  g.wait();
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
  tbb::task_group g;
  for (int i = 0; i < 10; ++i)
    g.run([&results, i, num, step] { results[i] = skynet(num + i * step, step); });
  g.wait();
  std::int64_t sum = 0;
  for (auto v : results) sum += v;
  return sum;
}

outcome run_skynet(std::int64_t n) {
  auto t0 = clock_type::now();
  std::int64_t v = skynet(0, n);
  return {since(t0), v, skynet_spawns(n)};
}

}  // namespace

int main(int argc, char** argv) {
  bench::cli c;
  if (int rc = bench::parse(argc, argv, c)) return rc;
  outcome (*run)(std::int64_t) = nullptr;
  if (c.name == "spawn")
    run = run_spawn;
  else if (c.name == "fib")
    run = run_fib;
  else if (c.name == "skynet")
    run = run_skynet;
  else
    return 2;  // yield: not applicable to run-to-completion tasks

  tbb::global_control cap(tbb::global_control::max_allowed_parallelism,
                          static_cast<std::size_t>(c.workers));
  tbb::task_arena arena(static_cast<int>(c.workers));
  outcome r;
  arena.execute([&] {
    (void)run(c.warm);
    r = run(c.n);
  });
  return bench::report("tbb", c, r);
}
