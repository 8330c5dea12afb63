// SPDX-License-Identifier: Apache-2.0
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
//   pingpong two tasklets, two rendezvous channels ping and pong: n    op = one round trip
//           round trips, the value +1 each trip (ends at n). One
//           untimed round trip first, so both sides run when the clock
//           starts.
//   pingpong_x the same on TWO workers whatever <workers> says, the     op = one round trip
//           sides forced onto different OS threads and pinned there
//           (this_tasklet::atomic); see run_pingpong_x() for how.
//   chain   n tasklets in a line, tasklet i receives from channel i    op = one tasklet
//           and sends that + 1 on channel i+1 (rendezvous); the root       (total time / n)
//           sends 0 into the first and receives n from the last. The
//           Stackless vs Go "100,000 tasklets" benchmark: the time
//           includes creating every tasklet and channel.
//   mpmc_c<cap> P = 4 producers each send 1..n/P into ONE channel of   op = one item
//           capacity cap (1, 64, 1024); C = 4 consumers sum what they
//           receive until it is closed (the last producer closes it).
//   fib     fib(n); every call above the base case spawns fib(n-1) as  op = one spawn
//           a child, computes fib(n-2) inline, joins the child, adds.
//   skynet  n leaves (a power of 10), 10-way tree; each node spawns    op = one spawn
//           10 children, joins them and sums their results.
//   mutex   8 tasklets share one stackless::mutex (the default, fair   op = one increment
//           policy: FIFO hand-off) and one counter;
//           each makes n/8 increments (lock; ++counter; unlock); the
//           check is the final counter (n). Time incl. spawns, joins.
//   mutex_tp the same with mutex_policy::throughput (Go's barging with  op = one increment
//           a 1 ms starvation bound); the peers run their one mutex.
//   sleep   one tasklet sleeps 1 ms n times in a row on an otherwise  ns_per_op = p99 lateness
//           idle scheduler; lateness = wake-up time - (start + 1 ms)
//           on the steady clock. The RESULT line adds p50_ns, p99_ns
//           and max_ns; the check is the number of sleeps (n).
//   preempt T CPU hogs (one per worker) spin on bench::hog_unit(),    ns_per_op = p99 lateness
//           calling this_tasklet::checkpoint() after every unit
//           (~350 ns), until the root tasklet — the periodic one —
//           has slept 1 ms n times in a row, measuring lateness as in
//           sleep; then it stops them (a relaxed std::atomic<bool>
//           they read every unit). options::quantum = 1 ms. The
//           check is n. The clock starts once every hog has started.
//   preempt_hard the same, but the hogs spin inside a                 ns_per_op = p99 lateness
//           this_tasklet::preemptible scope with NO checkpoint(): the
//           loop calls nothing (hard preemption by signal or nothing).
//   hog     2T hogs (two per worker) do n units of work in total       op = one unit
//           (n/2T each), checkpoint() after every unit, no periodic      (wall time / n)
//           tasklet; quantum = 1 ms: the two hogs of a worker take
//           turns every quantum (real preemptions, not just the tick).
//   hog_q0  exactly the same code with quantum = 0 (no monitor         op = one unit
//           thread): hog / hog_q0 is the throughput cost of the
//           quantum (target <= 1.02).
//           The four add soft_preemptions=, hard_preemptions=,
//           preempt_signals= and preempt_refused= (the scheduler's
//           stats() over the timed run) to the RESULT line; preempt
//           and preempt_hard also hog_ns_per_unit= (wall time x T /
//           units the hogs did while the clock ran: ~350 when every
//           hog had a whole CPU, ~2x that if two shared one worker).
//           The peers without preemption answer "not applicable".
//
// Timing starts and stops inside the root tasklet, so scheduler start-up and the wake-up of the
// main thread are not counted. An untimed warm-up at a tenth of the size runs first, on the
// same scheduler (it fills the stack pool and wakes the workers, as a long-running program has).
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <stackless/runtime.hpp>
#include <stackless/sync.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"

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

// --- pingpong, pingpong_x -----------------------------------------------------------------

using rendezvous = stackless::channel<std::int64_t>;  // capacity 0

// The pinger sends v on `ping`, the ponger answers v + 1 on `pong`; n round trips take v from 0
// to n. One untimed round trip first, so both sides run when the clock starts; the ponger
// therefore answers n + 1 times.
outcome pinger(rendezvous& ping, rendezvous& pong, std::int64_t n) {
  ping.send(0);
  (void)pong.receive();
  auto t0 = clock_type::now();
  std::int64_t v = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    ping.send(v);
    v = pong.receive();
  }
  return {since(t0), v, n};
}

void ponger(rendezvous& ping, rendezvous& pong, std::int64_t n) {
  for (std::int64_t i = 0; i <= n; ++i) pong.send(ping.receive() + 1);
}

/// run_pingpong(): the root tasklet is the pinger, a child the ponger.
outcome run_pingpong(std::int64_t n) {
  rendezvous ping, pong;
  auto other = stackless::spawn([ping, pong, n]() mutable { ponger(ping, pong, n); });
  outcome r = pinger(ping, pong, n);
  other.join();
  return r;
}

// pingpong_x: both sides pinned, each inside a this_tasklet::atomic scope (so it always resumes
// on its worker, and a wake-up from the other side goes through that worker's inbox), on
// different OS threads — verified with std::this_thread::get_id().
//
// How the two end up on different workers: not by yielding until a thief takes one. This
// runtime keeps a yielding tasklet on its worker's yield list, which thieves only see once two
// or more yielders wait there, and a tasklet's spawn() goes to the spawner's runnext, which is
// not stolen and wakes nobody; two tasklets yielding to each other then stay on one worker for
// good while the other sleeps. So the sides are placed by construction: side 0 is spawned from
// the main thread, pins itself on the worker it starts on, publishes that thread and then holds
// the worker — spinning, neither yielding nor parking — until side 1 has published its own.
// Side 1 is spawned from the main thread only once side 0 holds its worker (a spawn from a plain
// thread goes to the injection queue and wakes an idle worker), so only the other worker can
// run it; it pins itself and checks that its thread differs. Then both stay pinned for the run.
// Every wait is bounded: a runtime that never runs side 1 makes the workload fail, not hang.

constexpr auto place_timeout = std::chrono::seconds(10);

/// apart is what the two sides of pingpong_x share while they take their places.
struct apart {
  std::atomic<std::thread::id> where[2] = {{std::thread::id()}, {std::thread::id()}};
  std::atomic<bool> failed{false};
};

outcome run_pingpong_x(stackless::scheduler& s, std::int64_t n) {
  rendezvous ping, pong;
  apart a;
  auto fail = [&](const char* what) {
    a.failed.store(true);
    ping.close();  // unblocks the other side (its channel operation throws channel_closed)
    pong.close();
    throw std::runtime_error(what);
  };
  auto side0 = s.spawn([&]() -> outcome {
    stackless::this_tasklet::atomic pin;
    a.where[0].store(std::this_thread::get_id());
    const auto t0 = clock_type::now();
    while (a.where[1].load() == std::thread::id()) {  // hold this worker until side 1 runs
      if (a.failed.load()) throw std::runtime_error("pingpong_x: side 1 failed to take its place");
      if (clock_type::now() - t0 > place_timeout)
        fail("pingpong_x: side 1 never started on the other worker (10 s)");
    }
    return pinger(ping, pong, n);
  });
  // The main thread waits (plainly, it is not a tasklet) until side 0 holds its worker.
  const auto t0 = clock_type::now();
  while (a.where[0].load() == std::thread::id() && !a.failed.load()) {
    if (clock_type::now() - t0 > place_timeout) {
      a.failed.store(true);
      break;
    }
    std::this_thread::yield();
  }
  if (a.failed.load()) {
    (void)side0.join();  // rethrows side 0's error if it has one
    throw std::runtime_error("pingpong_x: side 0 never started (10 s)");
  }
  auto side1 = s.spawn([&] {
    stackless::this_tasklet::atomic pin;
    const std::thread::id me = std::this_thread::get_id();
    if (me == a.where[0].load()) fail("pingpong_x: side 1 started on side 0's thread");
    a.where[1].store(me);
    ponger(ping, pong, n);
  });
  // Join both before reporting the first error, so that nothing outlives `ping`, `pong` and `a`.
  std::exception_ptr err;
  outcome r;
  try {
    r = side0.join();
  } catch (...) {
    err = std::current_exception();
  }
  try {
    side1.join();
  } catch (...) {
    if (!err) err = std::current_exception();
  }
  if (err) std::rethrow_exception(err);
  return r;
}

// --- chain ---------------------------------------------------------------------------------

outcome run_chain(std::int64_t n) {
  auto t0 = clock_type::now();
  rendezvous first;
  rendezvous left = first;
  for (std::int64_t i = 0; i < n; ++i) {
    rendezvous right;
    // The handle is dropped at once: the tasklet is detached (as a goroutine), and the channels
    // it holds live as long as it does.
    (void)stackless::spawn([in = left, out = right]() mutable { out.send(in.receive() + 1); });
    left = std::move(right);
  }
  first.send(0);
  std::int64_t v = left.receive();
  double ns = since(t0);
  return {ns, v, n};
}

// --- mpmc ----------------------------------------------------------------------------------

outcome run_mpmc(std::size_t cap, std::int64_t n) {
  constexpr int P = bench::mpmc_producers, C = bench::mpmc_consumers;
  const std::int64_t per = n / P;
  auto t0 = clock_type::now();
  stackless::channel<std::int64_t> ch(cap);
  std::atomic<int> producing{P};  // the producer that takes it to 0 closes the channel
  std::vector<stackless::tasklet<void>> producers;
  std::vector<stackless::tasklet<std::int64_t>> consumers;
  producers.reserve(P);
  consumers.reserve(C);
  for (int p = 0; p < P; ++p) {
    producers.push_back(stackless::spawn([ch, per, &producing]() mutable {
      for (std::int64_t v = 1; v <= per; ++v) ch.send(v);
      if (producing.fetch_sub(1) == 1) ch.close();
    }));
  }
  for (int c = 0; c < C; ++c) {
    consumers.push_back(stackless::spawn([ch]() mutable {
      std::int64_t sum = 0;
      for (std::int64_t v : ch) sum += v;
      return sum;
    }));
  }
  for (auto& p : producers) p.join();
  std::int64_t total = 0;
  for (auto& c : consumers) total += c.join();
  double ns = since(t0);
  return {ns, total, per * P};
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

// --- mutex ---------------------------------------------------------------------------------

outcome run_mutex(std::int64_t n, stackless::mutex_policy policy) {
  constexpr int K = bench::mutex_tasklets;
  const std::int64_t per = n / K;
  stackless::mutex mu(policy);
  std::int64_t counter = 0;  // guarded by mu
  std::vector<stackless::tasklet<void>> kids;
  kids.reserve(K);
  auto t0 = clock_type::now();
  for (int k = 0; k < K; ++k) {
    kids.push_back(stackless::spawn([&mu, &counter, per] {
      for (std::int64_t i = 0; i < per; ++i) {
        mu.lock();
        ++counter;
        mu.unlock();
      }
    }));
  }
  for (auto& k : kids) k.join();
  double ns = since(t0);
  return {ns, counter, per * K};
}

// --- sleep ---------------------------------------------------------------------------------

/// run_sleep() sleeps bench::sleep_period n times in a row in the calling tasklet and reports the
/// lateness of each wake-up (also the periodic tasklet of preempt and preempt_hard).
outcome run_sleep(std::int64_t n) {
  std::vector<double> late;
  late.reserve(static_cast<std::size_t>(n));
  auto t0 = clock_type::now();
  for (std::int64_t i = 0; i < n; ++i) {
    auto start = clock_type::now();
    stackless::this_tasklet::sleep_for(bench::sleep_period);
    late.push_back(since(start + bench::sleep_period));
  }
  outcome r{since(t0), static_cast<std::int64_t>(late.size()), n};
  bench::set_lateness(r, late);
  return r;
}

// --- preempt, preempt_hard, hog, hog_q0 -------------------------------------------------------

/// preempt_quantum is options::quantum for preempt, preempt_hard and hog (hog_q0: 0).
constexpr std::chrono::microseconds preempt_quantum{1000};

/// hog_counter is one hog's count of finished units, published (relaxed store, a plain mov) after
/// every unit so that the root can tell how much the hogs did while its clock ran. One cache line
/// each: the hogs must not slow each other down.
struct alignas(64) hog_counter {
  std::atomic<std::int64_t> units{0};
};

/// hog_sink keeps every hog's result alive, so the compiler cannot drop the work.
std::atomic<std::uint64_t> hog_sink{0};

void keep(const bench::hog_state& s) {
  std::uint64_t bits;
  static_assert(sizeof bits == sizeof s.f);
  __builtin_memcpy(&bits, &s.f, sizeof bits);
  hog_sink.fetch_xor(s.x ^ bits, std::memory_order_relaxed);
}

/// soft_hog() spins until `stop`, with a safe point after every unit (noinline as hard_hog(), so
/// the two differ only in the scope and the checkpoint).
[[gnu::noinline]] void soft_hog(const std::atomic<bool>& stop, hog_counter& done) {
  bench::hog_state s;
  std::int64_t units = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    bench::hog_unit(s);
    done.units.store(++units, std::memory_order_relaxed);
    stackless::this_tasklet::checkpoint();
  }
  keep(s);
}

/// hard_hog() spins until `stop` inside a preemptible scope; the loop calls no function at all
/// (hog_unit() is always_inline, the loads and stores are plain movs), so only the signal can
/// take the worker away from it. (noinline like soft_hog(), so that the two loops compile alike.)
[[gnu::noinline]] void hard_hog(const std::atomic<bool>& stop, hog_counter& done) {
  bench::hog_state s;
  std::int64_t units = 0;
  {
    stackless::this_tasklet::preemptible scope;
    while (!stop.load(std::memory_order_relaxed)) {
      bench::hog_unit(s);
      done.units.store(++units, std::memory_order_relaxed);
    }
  }
  keep(s);
}

std::int64_t hog_units(const std::vector<hog_counter>& done) {
  std::int64_t sum = 0;
  for (const auto& d : done) sum += d.units.load(std::memory_order_relaxed);
  return sum;
}

/// run_preempt(): the root tasklet starts `hogs` hogs, waits (sleeping, so it does not hold a
/// worker) until each has finished a unit, then is the periodic tasklet: run_sleep(n). Bounded:
/// hogs that never start make the workload fail, not hang.
outcome run_preempt(std::int64_t n, unsigned hogs, bool hard) {
  std::atomic<bool> stop{false};
  std::vector<hog_counter> done(hogs);
  std::vector<stackless::tasklet<void>> kids;
  kids.reserve(hogs);
  for (unsigned i = 0; i < hogs; ++i) {
    kids.push_back(stackless::spawn([&stop, &d = done[i], hard] {
      if (hard)
        hard_hog(stop, d);
      else
        soft_hog(stop, d);
    }));
  }
  auto all_started = [&] {
    for (const auto& d : done)
      if (d.units.load(std::memory_order_relaxed) == 0) return false;
    return true;
  };
  const auto wait0 = clock_type::now();
  bool started = true;
  while (!all_started()) {
    if (clock_type::now() - wait0 > std::chrono::seconds(10)) {
      started = false;
      break;
    }
    stackless::this_tasklet::sleep_for(std::chrono::microseconds(200));
  }
  outcome r;
  if (started) {
    const std::int64_t units0 = hog_units(done);
    r = run_sleep(n);
    const std::int64_t units = hog_units(done) - units0;
    if (units > 0) {
      r.extra.emplace_back("hog_ns_per_unit",
                           static_cast<std::int64_t>(r.ns * hogs / static_cast<double>(units)));
    }
  }
  stop.store(true, std::memory_order_relaxed);
  for (auto& k : kids) k.join();
  if (!started) throw std::runtime_error("preempt: the hogs did not all start within 10 s");
  return r;
}

/// run_hog(): `hogs` hogs do n units in total (n/hogs each, the first n % hogs one more), a
/// checkpoint() after every unit — the same code whatever the quantum.
outcome run_hog(std::int64_t n, unsigned hogs) {
  std::vector<stackless::tasklet<std::int64_t>> kids;
  kids.reserve(hogs);
  auto t0 = clock_type::now();
  for (unsigned i = 0; i < hogs; ++i) {
    const std::int64_t mine = n / hogs + (static_cast<std::int64_t>(i) < n % hogs ? 1 : 0);
    kids.push_back(stackless::spawn([mine] {
      bench::hog_state s;
      for (std::int64_t u = 0; u < mine; ++u) {
        bench::hog_unit(s);
        stackless::this_tasklet::checkpoint();
      }
      keep(s);
      return mine;
    }));
  }
  std::int64_t units = 0;
  for (auto& k : kids) units += k.join();
  double ns = since(t0);
  return {ns, units, n};
}

/// add_preemptions() appends the preemption counters of the timed run (stats() after minus
/// before) to r's RESULT line.
void add_preemptions(outcome& r, const stackless::scheduler_stats& before,
                     const stackless::scheduler_stats& after) {
  auto delta = [](std::uint64_t a, std::uint64_t b) { return static_cast<std::int64_t>(a - b); };
  r.extra.emplace_back("soft_preemptions", delta(after.soft_preemptions, before.soft_preemptions));
  r.extra.emplace_back("hard_preemptions", delta(after.hard_preemptions, before.hard_preemptions));
  r.extra.emplace_back("preempt_signals", delta(after.preempt_signals, before.preempt_signals));
  const std::uint64_t refused_after = after.refused_disabled + after.refused_atomic +
                                      after.refused_not_preemptible + after.refused_runtime_code +
                                      after.refused_stack;
  const std::uint64_t refused_before = before.refused_disabled + before.refused_atomic +
                                       before.refused_not_preemptible +
                                       before.refused_runtime_code + before.refused_stack;
  r.extra.emplace_back("preempt_refused", delta(refused_after, refused_before));
}

// --- driver --------------------------------------------------------------------------------

std::function<outcome(std::int64_t)> pick(const std::string& name, unsigned workers) {
  if (name == "spawn") return run_spawn;
  if (name == "yield") return run_yield;
  if (name == "pingpong") return run_pingpong;
  if (name == "chain") return run_chain;
  if (name == "pingpong_x") return nullptr;  // main() drives it: run_pingpong_x()
  if (name == "fib") return run_fib;
  if (name == "mutex")
    return [](std::int64_t n) { return run_mutex(n, stackless::mutex_policy::fair); };
  if (name == "mutex_tp")
    return [](std::int64_t n) { return run_mutex(n, stackless::mutex_policy::throughput); };
  if (name == "sleep") return run_sleep;
  // One hog per worker: every worker is busy.
  if (name == "preempt")
    return [workers](std::int64_t n) { return run_preempt(n, workers, false); };
  if (name == "preempt_hard")
    return [workers](std::int64_t n) { return run_preempt(n, workers, true); };
  // Two hogs per worker: with the quantum on they take turns, so the cost includes the switches.
  if (name == "hog" || name == "hog_q0")
    return [workers](std::int64_t n) { return run_hog(n, 2 * workers); };
  if (std::size_t cap = bench::mpmc_capacity(name)) {
    return [cap](std::int64_t n) { return run_mpmc(cap, n); };
  }
  return run_skynet;
}

}  // namespace

int main(int argc, char** argv) {
  bench::cli c;
  if (int rc = bench::parse(argc, argv, c)) return rc;
  std::function<outcome(std::int64_t)> run = pick(c.name, static_cast<unsigned>(c.workers));
  outcome r;
  try {
    stackless::options opts;  // not options{.workers = ...}: -Wextra flags the omitted fields
    // yield measures the switch on one worker, whatever the command line asks for (and
    // pingpong_x runs on two: bench::parse() already set c.workers = 2).
    opts.workers = c.name == "yield" ? 1u : static_cast<unsigned>(c.workers);
    // Preemption only where the workload is about it: elsewhere the monitor thread would be
    // one more thing on the two CPUs.
    const bool preempting = bench::preempt_workload(c.name);
    if (preempting && c.name != "hog_q0") opts.quantum = preempt_quantum;
    stackless::scheduler s(opts);
    if (c.name == "pingpong_x") {
      // Driven from the main thread, which places the two sides itself.
      (void)run_pingpong_x(s, c.warm);
      r = run_pingpong_x(s, c.n);
    } else {
      s.block_on([&] { (void)run(c.warm); });
      const stackless::scheduler_stats before = s.stats();
      r = s.block_on([&] { return run(c.n); });
      if (preempting) add_preemptions(r, before, s.stats());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s failed: %s\n", argv[0], c.name.c_str(), e.what());
    return 1;
  }
  return bench::report("stackless", c, r);
}
