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
#include "common.hpp"
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

using bench::clock_type;
using bench::fib_spawns;
using bench::outcome;
using bench::since;
using bench::skynet_spawns;

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

outcome run_fib(std::int64_t n) {
  auto t0 = clock_type::now();
  std::int64_t v = fib(static_cast<int>(n));
  return {since(t0), v, fib_spawns(static_cast<int>(n))};
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

outcome run_skynet(std::int64_t n) {
  auto t0 = clock_type::now();
  std::int64_t v = skynet(0, n);
  return {since(t0), v, skynet_spawns(n)};
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
  bench::cli c;
  if (int rc = bench::parse(argc, argv, c)) return rc;
  outcome (*run)(std::int64_t) = nullptr;
  if (c.name == "spawn") run = run_spawn;
  else if (c.name == "yield") run = run_yield;
  else if (c.name == "fib") run = run_fib;
  else run = run_skynet;

  outcome r;
  if (c.name == "yield") {
    // One thread, the default round_robin scheduler.
    in_fiber([&] { return run(c.warm); });
    r = in_fiber([&] { return run(c.n); });
  } else {
    team t(static_cast<unsigned>(c.workers));
    in_fiber([&] { return run(c.warm); });
    r = in_fiber([&] { return run(c.n); });
  }
  return bench::report("fiber", c, r);
}
