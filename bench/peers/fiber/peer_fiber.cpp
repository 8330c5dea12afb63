// bench/peers/fiber/peer_fiber.cpp — the comparison workloads on Boost.Fiber (1.74).
//
// Usage: peer_fiber <workload> <workers> <n>; output, exit codes and workloads exactly as in
// bench/workloads.cpp (read its header first). Fibers use Boost's default stacks.
//
// Scheduling: T threads, every one running boost::fibers::algo::work_stealing(T) — the main
// thread plus T-1 helpers that only wait (fiber-aware) until the run is over, running stolen
// fibers meanwhile. work_stealing keeps its registry in process-global statics, so it can be set
// up once per process: the warm-up and the timed run share the same threads.
// `yield` instead uses the default round_robin algorithm on the main thread alone.
#include <boost/fiber/all.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

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

// --- workloads (each runs inside a fiber) ----------------------------------------------------

outcome run_spawn(std::int64_t n) {
  std::vector<boost::fibers::fiber> kids;
  kids.reserve(static_cast<std::size_t>(n));
  auto t0 = clock_type::now();
  for (std::int64_t i = 0; i < n; ++i) kids.emplace_back([] {});
  std::int64_t joined = 0;
  for (auto& k : kids) {
    k.join();
    ++joined;
  }
  return {since(t0), joined, n};
}

outcome run_yield(std::int64_t n) {
  std::int64_t half = n / 2;
  std::int64_t other_done = 0;
  auto t0 = clock_type::now();
  boost::fibers::fiber other([half, &other_done] {
    for (std::int64_t i = 0; i < half; ++i) boost::this_fiber::yield();
    other_done = half;
  });
  for (std::int64_t i = 0; i < half; ++i) boost::this_fiber::yield();
  other.join();
  std::int64_t done = half + other_done;
  return {since(t0), done, done};
}

std::int64_t fib(int n) {
  if (n < 2) return n;
  std::int64_t a = 0;
  boost::fibers::fiber child([&a, n] { a = fib(n - 1); });
  std::int64_t b = fib(n - 2);
  child.join();
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
  boost::fibers::fiber kids[10];
  for (int i = 0; i < 10; ++i)
    kids[i] = boost::fibers::fiber([&results, i, num, step] { results[i] = skynet(num + i * step, step); });
  std::int64_t sum = 0;
  for (int i = 0; i < 10; ++i) {
    kids[i].join();
    sum += results[i];
  }
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

// --- the work-stealing thread team --------------------------------------------------------------

/// team runs T threads under work_stealing(T) for its lifetime; the constructing thread is one of
/// them. Helpers park on a fiber condition variable, so their dispatchers keep stealing.
class team {
 public:
  explicit team(unsigned threads) {
    for (unsigned i = 1; i < threads; ++i) {
      helpers_.emplace_back([this, threads] {
        boost::fibers::use_scheduling_algorithm<boost::fibers::algo::work_stealing>(threads);
        std::unique_lock<boost::fibers::mutex> lk(mu_);
        cv_.wait(lk, [this] { return done_; });
      });
    }
    // The constructor of work_stealing waits on a barrier until all T threads have made theirs.
    boost::fibers::use_scheduling_algorithm<boost::fibers::algo::work_stealing>(threads);
  }
  ~team() {
    {
      std::unique_lock<boost::fibers::mutex> lk(mu_);
      done_ = true;
    }
    cv_.notify_all();
    for (auto& t : helpers_) t.join();
  }

 private:
  boost::fibers::mutex mu_;
  boost::fibers::condition_variable cv_;
  bool done_ = false;  // guarded by mu_
  std::vector<std::thread> helpers_;
};

/// in_fiber() runs f in a new fiber on this thread's scheduler and waits for it.
template <class F>
outcome in_fiber(F f) {
  outcome r;
  boost::fibers::fiber([&] { r = f(); }).join();
  return r;
}

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

  outcome (*run)(std::int64_t) = nullptr;
  std::int64_t warm = n / 10, want = 0;
  if (name == "spawn") {
    run = run_spawn;
    want = n;
  } else if (name == "yield") {
    run = run_yield;
    want = n / 2 * 2;
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
    return 2;  // not implemented here: "not applicable"
  }

  outcome r;
  if (name == "yield") {
    // One thread, the default round_robin scheduler.
    in_fiber([&] { return run(warm); });
    r = in_fiber([&] { return run(n); });
  } else {
    team t(static_cast<unsigned>(workers));
    in_fiber([&] { return run(warm); });
    r = in_fiber([&] { return run(n); });
  }

  std::printf("RESULT workload=%s impl=fiber workers=%ld n=%lld total_ms=%.3f ns_per_op=%.3f "
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
