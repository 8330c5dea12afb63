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

namespace {

using clock_type = std::chrono::steady_clock;

struct outcome {
  double ns = 0;
  std::int64_t check = 0;
  std::int64_t ops = 0;
};

double since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::nano>(clock_type::now() - t0).count();
}

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

std::int64_t fib_value(int n) {
  std::int64_t a = 0, b = 1;
  for (int i = 0; i < n; ++i) {
    std::int64_t c = a + b;
    a = b;
    b = c;
  }
  return a;
}

outcome run_fib(std::int64_t n) {
  auto t0 = clock_type::now();
  std::int64_t v = fib(static_cast<int>(n));
  return {since(t0), v, fib_value(static_cast<int>(n) + 1) - 1};
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

std::int64_t skynet_spawns(std::int64_t n) {
  std::int64_t total = 0;
  for (std::int64_t level = n; level > 1; level /= 10) total += level;
  return total;
}

outcome run_skynet(std::int64_t n) {
  auto t0 = clock_type::now();
  std::int64_t v = skynet(0, n);
  return {since(t0), v, skynet_spawns(n)};
}

bool power_of_10(std::int64_t n) {
  while (n > 1 && n % 10 == 0) n /= 10;
  return n == 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s <spawn|fib|skynet> <workers> <n>\n", argv[0]);
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
  std::int64_t warm = n / 10, want = 0;
  if (name == "spawn") {
    run = run_spawn;
    want = n;
  } else if (name == "fib") {
    if (n > 40) return 64;
    run = run_fib;
    warm = n > 5 ? n - 5 : n;
    want = fib_value(static_cast<int>(n));
  } else if (name == "skynet") {
    if (!power_of_10(n)) {
      std::fprintf(stderr, "skynet: n must be a power of 10\n");
      return 64;
    }
    run = run_skynet;
    warm = n >= 100 ? n / 10 : n;
    want = n * (n - 1) / 2;
  } else {
    return 2;  // yield and anything else: not applicable to run-to-completion tasks
  }

  tbb::global_control cap(tbb::global_control::max_allowed_parallelism,
                          static_cast<std::size_t>(workers));
  tbb::task_arena arena(static_cast<int>(workers));
  outcome r;
  arena.execute([&] {
    (void)run(warm);
    r = run(n);
  });

  std::printf("RESULT workload=%s impl=tbb workers=%ld n=%lld total_ms=%.3f ns_per_op=%.3f "
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
