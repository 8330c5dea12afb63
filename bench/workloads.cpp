// bench/workloads.cpp — the comparison workloads, run on stackless.
//
// Usage: stackless_bench <workload> <workers> <n>
// Prints exactly one line on stdout:
//   RESULT workload=<w> impl=stackless workers=<T> n=<n> total_ms=<f> ns_per_op=<f> check=<i>
// Exit codes: 0 ok; 1 the check failed (or the runtime threw); 2 workload not applicable /
// unknown; 64 bad command line. tools/bench.py relies on all of this.
//
// Every peer in bench/peers/ implements the same workloads with the same structure, so the
// ratio ours/peer compares runtimes, not algorithms:
//   spawn   spawn n empty tasklets from one parent, then join all.     op = one tasklet
//   yield   two tasklets yield to each other n times in total, on ONE  op = one yield (a switch)
//           worker whatever <workers> says.
//   fib     fib(n); every call above the base case spawns fib(n-1) as  op = one spawn
//           a child, computes fib(n-2) inline, joins the child, adds.
//   skynet  n leaves (a power of 10), 10-way tree; each node spawns    op = one spawn
//           10 children, joins them and sums their results.
//
// Timing starts and stops inside the root tasklet, so scheduler start-up and the wake-up of the
// main thread are not counted. An untimed warm-up at a tenth of the size runs first, on the
// same scheduler (it fills the stack pool and wakes the workers, as a long-running program has).
#include "common.hpp"
#include <stackless/runtime.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

namespace {

using bench::clock_type;
using bench::fib_spawns;
using bench::outcome;
using bench::since;
using bench::skynet_spawns;

// --- spawn ---------------------------------------------------------------------------------

outcome run_spawn(std::int64_t n) {
  std::vector<stackless::tasklet<void>> kids;
  kids.reserve(static_cast<std::size_t>(n));  // outside the timed part: not the runtime's cost
  auto t0 = clock_type::now();
  for (std::int64_t i = 0; i < n; ++i) kids.push_back(stackless::spawn([] {}));
  std::int64_t joined = 0;
  for (auto& k : kids) {
    k.join();
    ++joined;
  }
  double ns = since(t0);
  return {ns, joined, n};
}

// --- yield ---------------------------------------------------------------------------------

outcome run_yield(std::int64_t n) {
  // The root tasklet and one child each yield n/2 times; with nothing else runnable every yield
  // switches to the other one.
  std::int64_t half = n / 2;
  auto t0 = clock_type::now();
  auto other = stackless::spawn([half] {
    for (std::int64_t i = 0; i < half; ++i) stackless::this_tasklet::yield();
    return half;
  });
  for (std::int64_t i = 0; i < half; ++i) stackless::this_tasklet::yield();
  std::int64_t done = half + other.join();
  double ns = since(t0);
  return {ns, done, done};
}

// --- fib -----------------------------------------------------------------------------------

std::int64_t fib(int n) {
  if (n < 2) return n;
  auto child = stackless::spawn(fib, n - 1);
  std::int64_t b = fib(n - 2);
  return child.join() + b;
}

outcome run_fib(std::int64_t n) {
  auto t0 = clock_type::now();
  std::int64_t v = fib(static_cast<int>(n));
  double ns = since(t0);
  return {ns, v, fib_spawns(static_cast<int>(n))};
}

// --- skynet --------------------------------------------------------------------------------

std::int64_t skynet(std::int64_t num, std::int64_t size) {
  if (size == 1) return num;
  std::int64_t step = size / 10;
  stackless::tasklet<std::int64_t> kids[10];
  for (int i = 0; i < 10; ++i) kids[i] = stackless::spawn(skynet, num + i * step, step);
  std::int64_t sum = 0;
  for (auto& k : kids) sum += k.join();
  return sum;
}

outcome run_skynet(std::int64_t n) {
  auto t0 = clock_type::now();
  std::int64_t v = skynet(0, n);
  double ns = since(t0);
  return {ns, v, skynet_spawns(n)};
}

// --- driver --------------------------------------------------------------------------------

outcome (*pick(const std::string& name))(std::int64_t) {
  if (name == "spawn") return run_spawn;
  if (name == "yield") return run_yield;
  if (name == "fib") return run_fib;
  return run_skynet;
}

}  // namespace

int main(int argc, char** argv) {
  bench::cli c;
  if (int rc = bench::parse(argc, argv, c)) return rc;
  outcome (*run)(std::int64_t) = pick(c.name);
  outcome r;
  try {
    stackless::options opts;  // not options{.workers = ...}: -Wextra flags the omitted fields
    // yield measures the switch on one worker, whatever the command line asks for.
    opts.workers = c.name == "yield" ? 1u : static_cast<unsigned>(c.workers);
    stackless::scheduler s(opts);
    s.block_on([&] { (void)run(c.warm); });
    r = s.block_on([&] { return run(c.n); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s failed: %s\n", argv[0], c.name.c_str(), e.what());
    return 1;
  }
  return bench::report("stackless", c, r);
}
