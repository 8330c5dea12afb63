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
#include <stackless/runtime.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

/// outcome is what one workload run measured.
struct outcome {
  double ns = 0;            // wall time of the timed part
  std::int64_t check = 0;   // the workload's result, compared with expected()
  std::int64_t ops = 0;     // the denominator of ns_per_op
};

double since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::nano>(clock_type::now() - t0).count();
}

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

/// fib_value() is fib(n), iteratively.
std::int64_t fib_value(int n) {
  std::int64_t a = 0, b = 1;
  for (int i = 0; i < n; ++i) {
    std::int64_t c = a + b;
    a = b;
    b = c;
  }
  return a;
}

/// fib_spawns() is how many calls of fib(n) are above the base case: fib(n+1) - 1.
std::int64_t fib_spawns(int n) { return fib_value(n + 1) - 1; }

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

/// skynet_spawns() is the number of tasklets below the root: n + n/10 + ... + 10.
std::int64_t skynet_spawns(std::int64_t n) {
  std::int64_t total = 0;
  for (std::int64_t level = n; level > 1; level /= 10) total += level;
  return total;
}

bool power_of_10(std::int64_t n) {
  while (n > 1 && n % 10 == 0) n /= 10;
  return n == 1;
}

outcome run_skynet(std::int64_t n) {
  auto t0 = clock_type::now();
  std::int64_t v = skynet(0, n);
  double ns = since(t0);
  return {ns, v, skynet_spawns(n)};
}

// --- driver --------------------------------------------------------------------------------

struct workload {
  const char* name;
  outcome (*run)(std::int64_t n);
  std::int64_t (*warmup_n)(std::int64_t n);  // the size of the untimed warm-up round
  std::int64_t (*expected)(std::int64_t n);  // the check value a correct run produces
};

const workload workloads[] = {
    {"spawn", run_spawn, [](std::int64_t n) { return n / 10; }, [](std::int64_t n) { return n; }},
    {"yield", run_yield, [](std::int64_t n) { return n / 10; },
     [](std::int64_t n) { return n / 2 * 2; }},
    {"fib", run_fib, [](std::int64_t n) { return n > 5 ? n - 5 : n; },
     [](std::int64_t n) { return fib_value(static_cast<int>(n)); }},
    {"skynet", run_skynet, [](std::int64_t n) { return n >= 100 ? n / 10 : n; },
     [](std::int64_t n) { return n * (n - 1) / 2; }},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s <spawn|yield|fib|skynet> <workers> <n>\n", argv[0]);
    return 64;
  }
  std::string name = argv[1];
  long workers = std::strtol(argv[2], nullptr, 10);
  std::int64_t n = std::strtoll(argv[3], nullptr, 10);
  if (workers < 1 || n < 1) {
    std::fprintf(stderr, "workers and n must be positive\n");
    return 64;
  }
  const workload* w = nullptr;
  for (const auto& c : workloads)
    if (name == c.name) w = &c;
  if (!w) {
    std::fprintf(stderr, "%s: unknown workload '%s'\n", argv[0], name.c_str());
    return 2;
  }
  if (name == "skynet" && !power_of_10(n)) {
    std::fprintf(stderr, "skynet: n must be a power of 10\n");
    return 64;
  }
  if (name == "fib" && n > 40) {
    std::fprintf(stderr, "fib: n > 40 would take hours\n");
    return 64;
  }

  // yield measures the switch on one worker, whatever the command line asks for.
  unsigned used = name == "yield" ? 1u : static_cast<unsigned>(workers);
  outcome r;
  try {
    stackless::options opts;  // not options{.workers = ...}: -Wextra flags the omitted fields
    opts.workers = used;
    stackless::scheduler s(opts);
    s.block_on([&] { (void)w->run(w->warmup_n(n)); });
    r = s.block_on([&] { return w->run(n); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s failed: %s\n", argv[0], name.c_str(), e.what());
    return 1;
  }

  std::printf("RESULT workload=%s impl=stackless workers=%ld n=%lld total_ms=%.3f ns_per_op=%.3f "
              "check=%lld\n",
              name.c_str(), workers, static_cast<long long>(n), r.ns / 1e6,
              r.ns / static_cast<double>(r.ops), static_cast<long long>(r.check));
  std::int64_t want = w->expected(n);
  if (r.check != want) {
    std::fprintf(stderr, "%s: %s check mismatch: got %lld, want %lld\n", argv[0], name.c_str(),
                 static_cast<long long>(r.check), static_cast<long long>(want));
    return 1;
  }
  return 0;
}
