// SPDX-License-Identifier: Apache-2.0
// tests/soak/soak.cpp — stackless_soak: the soak program (`tools/dev soak [minutes]`; CTest
// `soak_short` in every test build). It checks that a long mixed run neither leaks nor loses
// anything:
//
//   stackless_soak [--seconds N | --minutes N] [--workers N] [--warmup S] [--report S] [--no-kill]
//   stackless_soak --messages N [--workers N] [--no-kill]
//
// Soak mode runs every sub-workload at once on one scheduler (default 4 workers, quantum 1 ms):
// channel rounds of each kind and a mutex + condition_variable queue with exactly-once accounting
// (channels.cpp), mutex, semaphore, event, timer and preemption users and plain threads
// (workloads.cpp), killing tasklets at random throughout. Every second it samples the RSS
// (/proc/self/statm), open fds (/proc/self/fd), threads (/proc/self/status) and live tasklets and
// stacks (scheduler::stats()); it prints a line every --report seconds (default 60) and at the
// end. It fails (exit 1) on
//   - an accounting error (a lost, duplicated or phantom value, two lock holders, too many permit
//     holders, an early timer, an unexpected exception: soak.hpp and the workloads say what each
//     checks);
//   - growth: after the warm-up (the first 20 % of the run, at least 5 s, at most 5 minutes), the
//     minimum of each figure over the last W samples (W: a tenth of the run, 3 to 30 samples)
//     exceeds the maximum seen during the warm-up by more than 5 % (20 % in a run under a
//     minute: see short_run_fraction) and by more than a floor (RSS
//     2 MiB, threads 4, live tasklets 16, fds 0: the floors' comment says why). Max-over-warm-up
//     against min-over-window
//     is robust to noise: a spike cannot fail it, only a level that stayed above the warm-up's
//     peak for W seconds can, which is what a leak looks like. RSS is not judged under the
//     sanitizers (their allocators keep freed memory in quarantine and shadow), only reported;
//   - a hang (no operation completed for 60 s; 180 s under sanitizers): exit 3, with the stats;
//   - anything left at the end: live tasklets after the drivers were joined and the scheduler
//     drained, stacks outstanding after shutdown().
// Messages mode is the exactly-once run by hand: N values in rounds of at most a million over the
// three channel kinds in turn, 8 producer and 8 consumer tasklets plus a plain thread of each,
// a producer or consumer killed (and replaced) after a random pause of up to 1 ms; it prints the
// wall time and rates.
#include "soak.hpp"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#if defined(STACKLESS_TSAN)
// The same suppressions as tests/runtime/fixture.hpp, for the same reason: libstdc++ is not
// built with TSan, and an exception shared through std::exception_ptr (a tasklet's result,
// rethrown by join) is freed under reference counts that TSan cannot see.
extern "C" [[gnu::used]] const char* __tsan_default_suppressions() {
  return "race:std::__exception_ptr::exception_ptr::_M_release\n"
         "race:std::runtime_error::~runtime_error\n"
         "race:std::logic_error::~logic_error\n";
}
#endif

namespace soak {
namespace {

namespace sl = stackless;

struct config {
  double seconds = 60;
  unsigned workers = 4;
  double warmup = -1;  // < 0: 20 % of the run, 5 s to 300 s
  double report = 60;
  std::uint64_t messages = 0;  // > 0: messages mode
  bool kills = true;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "stackless_soak: %s\n"
               "usage: stackless_soak [--seconds N | --minutes N] [--workers N] [--warmup S] "
               "[--report S] [--no-kill]\n"
               "       stackless_soak --messages N [--workers N] [--no-kill]\n",
               why);
  std::exit(2);
}

config parse(int argc, char** argv) {
  config cf;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> double {
      if (i + 1 >= argc) usage(("missing value after " + a).c_str());
      char* end = nullptr;
      double v = std::strtod(argv[++i], &end);
      if (end == argv[i] || *end != '\0' || v < 0) usage(("bad value for " + a).c_str());
      return v;
    };
    if (a == "--seconds") {
      cf.seconds = value();
    } else if (a == "--minutes") {
      cf.seconds = 60 * value();
    } else if (a == "--workers") {
      cf.workers = static_cast<unsigned>(value());
    } else if (a == "--warmup") {
      cf.warmup = value();
    } else if (a == "--report") {
      cf.report = value();
    } else if (a == "--messages") {
      cf.messages = static_cast<std::uint64_t>(value());
    } else if (a == "--no-kill") {
      cf.kills = false;
    } else {
      usage(("unknown argument " + a).c_str());
    }
  }
  if (cf.workers == 0) usage("--workers must be at least 1");
  return cf;
}

// ---- the process's figures -------------------------------------------------------------------

struct sample {
  double rss_mib = 0;
  double fds = 0;
  double threads = 0;
  double live = 0;
  std::uint64_t stacks_outstanding = 0, stacks_pooled = 0;
};

double rss_mib() {
  std::ifstream f("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  f >> size >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1 << 20);
}

double fd_count() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n - 1;  // not the descriptor of the directory being read
}

double thread_count() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::strtod(line.c_str() + 8, nullptr);
  }
  return -1;
}

sample take_sample(const sl::scheduler& s) {
  sample x;
  x.rss_mib = rss_mib();
  x.fds = fd_count();
  x.threads = thread_count();
  auto st = s.stats();
  x.live = static_cast<double>(st.live);
  x.stacks_outstanding = st.stacks_outstanding;
  x.stacks_pooled = st.stacks_pooled;
  return x;
}

// ---- the growth rule -------------------------------------------------------------------------

struct series {
  const char* name;
  double sample::*field;
  bool judged;
  double floor;  // the smallest growth that fails, whatever 5 % of the baseline is
  std::vector<double> v;
};

// The floors: growth below them never fails, whatever 5 % of the baseline is. The process is
// small, so 5 % is little: of ~12 MiB of RSS (release) it is 0.6 MiB — a couple of stacks first
// touched, or a malloc arena a new plain thread started, both bounded — and short runs (CI's
// 20 s) would fail on that ramp, not on a leak. Threads (~20) and live tasklets (~80) come and go
// in bulk with each round, so a sample lands anywhere between the rounds' low and high points.
// A leak grows without bound and passes any floor in a long run.
constexpr double rss_floor_mib = 2, threads_floor = 4, live_floor = 16;
// A run under a minute (CI's soak_short: 20 s beside the other tests on 2 cores) may end its
// warm-up half-way up the allocator's ramp: a fresh-clone .ci/run of f405ef2's parent measured
// RSS 25.6 MiB at the end of the 10 s warm-up and 29.7 MiB flat after it, the plateau an idle
// run reaches by 10 s (28.9 -> 29.1). There growth must also exceed 20 % of the baseline to fail;
// a leak is judged by the long runs (tools/dev soak), which keep the 5 %.
constexpr double short_run_seconds = 60, short_run_fraction = 0.20;

// growth_check() applies the rule (top of file) after each sample; it returns a message when a
// series failed it.
class growth_check {
 public:
  growth_check(std::size_t warm, std::size_t window, double fraction)
      : warm_(warm), window_(window), fraction_(fraction) {
    s_.push_back({"rss", &sample::rss_mib, !sanitized, rss_floor_mib, {}});
    s_.push_back({"fds", &sample::fds, true, 0, {}});
    s_.push_back({"threads", &sample::threads, true, threads_floor, {}});
    s_.push_back({"live tasklets", &sample::live, true, live_floor, {}});
  }

  std::string add(const sample& x) {
    std::string failure;
    for (auto& s : s_) {
      s.v.push_back(x.*s.field);
      std::size_t n = s.v.size();
      if (!s.judged || n < warm_ + window_) continue;
      double base = baseline(s), level = *std::min_element(s.v.end() - window_, s.v.end());
      if (level - base > std::max(base * fraction_, s.floor) && failure.empty()) {
        char buf[256];
        std::snprintf(buf, sizeof buf,
                      "%s grew: the minimum over the last %zu s is %.1f, more than %.0f %% (and "
                      "more than %.0f) above the warm-up's maximum %.1f",
                      s.name, window_, level, fraction_ * 100, s.floor, base);
        failure = buf;
      }
    }
    return failure;
  }
  std::string summary() const {
    std::string out;
    char buf[160];
    for (auto& s : s_) {
      if (s.v.size() <= warm_) continue;
      double base = baseline(s);
      double level = *std::min_element(s.v.end() - std::min(window_, s.v.size()), s.v.end());
      std::snprintf(buf, sizeof buf, "%s%s %.1f -> %.1f (%+.1f %%%s)", out.empty() ? "" : ", ",
                    s.name, base, level, base > 0 ? 100 * (level - base) / base : 0.0,
                    s.judged ? "" : ", not judged");
      out += buf;
    }
    return out.empty() ? "still warming up" : out;
  }

 private:
  double baseline(const series& s) const {
    return *std::max_element(s.v.begin(), s.v.begin() + static_cast<std::ptrdiff_t>(warm_));
  }
  std::size_t warm_, window_;
  double fraction_;  // growth above the baseline that fails, besides the floor
  std::vector<series> s_;
};

// ---- reporting -------------------------------------------------------------------------------

struct totals {
  std::uint64_t messages, cv, locks, permits, events, sleeps, hog, threads, kills, aborted, rounds;
  static totals of(const counters& n) {
    return {n.messages.load(), n.cv_items.load(), n.locks.load(),      n.permits.load(),
            n.events.load(),   n.sleeps.load(),   n.hog_slices.load(), n.thread_calls.load(),
            n.kills.load(),    n.aborted.load(),  n.rounds.load()};
  }
};

void report_line(double t, const sample& x, const totals& now, const totals& before, double dt,
                 const sl::scheduler_stats& st, std::uint64_t errors) {
  auto rate = [&](std::uint64_t a, std::uint64_t b) { return dt > 0 ? (a - b) / dt : 0.0; };
  std::printf(
      "soak %3d:%02d  rss %.1f MiB  fds %.0f  threads %.0f  live %.0f  stacks %llu+%llu pooled | "
      "per s: msgs %.0f  cv %.0f  locks %.0f  permits %.0f  events %.0f  timers %.0f  hog %.0f  "
      "thread-calls %.0f  kills %.0f | preempt soft %llu hard %llu | rounds %llu  errors %llu\n",
      static_cast<int>(t) / 60, static_cast<int>(t) % 60, x.rss_mib, x.fds, x.threads, x.live,
      (unsigned long long)x.stacks_outstanding, (unsigned long long)x.stacks_pooled,
      rate(now.messages, before.messages), rate(now.cv, before.cv), rate(now.locks, before.locks),
      rate(now.permits, before.permits), rate(now.events, before.events),
      rate(now.sleeps, before.sleeps), rate(now.hog, before.hog), rate(now.threads, before.threads),
      rate(now.kills, before.kills), (unsigned long long)st.soft_preemptions,
      (unsigned long long)st.hard_preemptions, (unsigned long long)now.rounds,
      (unsigned long long)errors);
  std::fflush(stdout);
}

sl::options scheduler_options(ctx& c, const config& cf) {
  sl::options o;
  o.workers = cf.workers;
  o.quantum = 1ms;
  o.name = "soak";
  // A plain thread of a round may wake a tasklet after a long descheduling on a loaded machine;
  // the hang watchdog catches a real deadlock anyway.
  o.deadlock_grace = 2s;
  // A stall line names a tasklet that ran 100 ms without a safe point; on the loaded 2-core
  // machine a sanitizer build gets there through the OS's scheduling alone.
  if (sanitized) o.stall_warning = 1s;
  o.on_error = [&c](const sl::error_report& r) {
    std::string what = r.what;
    if (r.error) {
      try {
        std::rethrow_exception(r.error);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
        what = "a non-std exception";
      }
    }
    c.fail("tasklet %llu (%s) ended with an error: %s", (unsigned long long)r.id, r.name.c_str(),
           what.c_str());
  };
  return o;
}

// finish() checks what must hold at the end: nothing live once the drivers are joined and the
// scheduler drained, no stack outstanding after shutdown().
void finish(ctx& c, sl::scheduler& s) {
  s.drain();
  auto st = s.stats();
  if (st.live != 0) c.fail("%llu tasklets still live after drain()", (unsigned long long)st.live);
  s.shutdown();
  st = s.stats();
  if (st.stacks_outstanding != 0)
    c.fail("%llu stacks outstanding after shutdown()", (unsigned long long)st.stacks_outstanding);
}

int messages_mode(const config& cf) {
  ctx c;
  c.kills = cf.kills;
  sl::scheduler s(scheduler_options(c, cf));
  c.s = &s;
  sample first = take_sample(s);
  const auto t0 = clock::now();
  const std::uint64_t round_size = 1000000;
  s.block_on([&] {
    rng r(seed());
    std::uint64_t left = cf.messages;
    for (unsigned k = 0; left > 0; ++k) {
      channel_round_spec sp;
      sp.kind = static_cast<chan_kind>(k % 3);
      sp.messages = std::min(left, round_size);
      sp.producers = sp.consumers = 8;
      sp.kills = cf.kills;
      sp.kill_gap = 1000us;
      auto r0 = clock::now();
      channel_round(c, sp, r);
      std::printf("round %u: %zu values over a %s channel in %.2f s\n", k, sp.messages,
                  name_of(sp.kind), std::chrono::duration<double>(clock::now() - r0).count());
      std::fflush(stdout);
      left -= sp.messages;
    }
  });
  double wall = std::chrono::duration<double>(clock::now() - t0).count();
  c.pool.stop();
  sample last = take_sample(s);
  finish(c, s);
  auto st = s.stats();
  std::printf(
      "messages: %llu values exactly once in %.1f s (%.0f per s) over %u workers; %llu kills, %llu "
      "sends aborted by them and accounted; %llu tasklets spawned; rss %.1f -> %.1f MiB, fds "
      "%.0f -> %.0f, threads %.0f -> %.0f; errors %llu\n",
      (unsigned long long)c.n.messages.load(), wall, c.n.messages.load() / wall, cf.workers,
      (unsigned long long)c.n.kills.load(), (unsigned long long)c.n.aborted.load(),
      (unsigned long long)st.spawned, first.rss_mib, last.rss_mib, first.fds, last.fds,
      first.threads, last.threads, (unsigned long long)c.errors.load());
  std::uint64_t expected = cf.messages - c.n.aborted.load();
  if (c.n.messages.load() != expected)
    c.fail("received %llu values, expected %llu", (unsigned long long)c.n.messages.load(),
           (unsigned long long)expected);
  std::printf("soak: %s\n", c.errors.load() == 0 ? "PASS" : "FAIL");
  return c.errors.load() == 0 ? 0 : 1;
}

int soak_mode(const config& cf) {
  ctx c;
  c.kills = cf.kills;
  // Under the sanitizers everything runs 5-20 times slower: smaller rounds and crews keep the
  // rounds short enough for a 20 s run to reach its steady state.
  c.scale = sanitized ? (tsan ? 8 : 4) : 1;
  sl::scheduler s(scheduler_options(c, cf));
  c.s = &s;
  c.pool.reserve(16);  // the rounds' peak is 13 plain-thread jobs at once

  const auto total = static_cast<std::size_t>(std::max(1.0, cf.seconds));
  const double default_warm = std::clamp(0.2 * static_cast<double>(total), 5.0, 300.0);
  const auto warm =
      static_cast<std::size_t>(std::max(1.0, cf.warmup >= 0 ? cf.warmup : default_warm));
  const std::size_t window = std::clamp<std::size_t>(total / 10, 3, 30);
  std::printf("soak: %zu s on %u workers (quantum 1 ms%s): warm-up %zu s, window %zu s%s\n", total,
              cf.workers, sanitized ? ", sanitizer build: work scaled down" : "", warm, window,
              cf.kills ? "" : ", no kills");
  std::fflush(stdout);
  growth_check growth(warm, window,
                      static_cast<double>(total) < short_run_seconds ? short_run_fraction : 0.05);

  std::vector<sl::tasklet<void>> drivers;
  for (chan_kind k : {chan_kind::rendezvous, chan_kind::buffered, chan_kind::unbounded}) {
    drivers.push_back(s.spawn(drive_channels, std::ref(c), k));
    drivers.back().set_name(std::string("driver: ") + name_of(k) + " channels");
  }
  using driver = void (*)(ctx&);
  const std::pair<driver, const char*> others[] = {
      {drive_long_lived_channels, "long-lived channels"},
      {drive_cv_queue, "queue"},
      {drive_mutex, "mutex"},
      {drive_semaphore, "semaphore"},
      {drive_event, "event"},
      {drive_timers, "timers"},
      {drive_hogs, "hogs"}};
  for (auto [f, name] : others) {
    drivers.push_back(s.spawn(f, std::ref(c)));
    drivers.back().set_name(std::string("driver: ") + name);
  }
  std::thread threads([&c] { drive_plain_threads(c); });

  const auto t0 = clock::now();
  totals last = totals::of(c.n);
  double last_t = 0;
  std::uint64_t progress = c.n.progress();
  auto progress_at = t0;
  const auto hang_after = sanitized ? 180s : 60s;
  std::string failure;
  sample x;
  for (std::size_t i = 1; i <= total && failure.empty() && c.errors.load() == 0; ++i) {
    std::this_thread::sleep_until(t0 + std::chrono::seconds(i));
    x = take_sample(s);
    failure = growth.add(x);
    auto now = clock::now();
    if (c.n.progress() != progress) {
      progress = c.n.progress();
      progress_at = now;
    } else if (now - progress_at > hang_after) {
      auto st = s.stats();
      std::fprintf(stderr,
                   "soak: FAIL: no operation completed for %lld s (a hang): live %llu runnable "
                   "%llu parked %llu; rounds checked %llu\n",
                   (long long)std::chrono::duration_cast<std::chrono::seconds>(hang_after).count(),
                   (unsigned long long)st.live, (unsigned long long)st.runnable,
                   (unsigned long long)st.parked, (unsigned long long)c.n.rounds.load());
      std::_Exit(3);
    }
    double t = std::chrono::duration<double>(now - t0).count();
    if (cf.report > 0 &&
        static_cast<std::size_t>(t / cf.report) != static_cast<std::size_t>(last_t / cf.report) &&
        i != total) {
      totals cur = totals::of(c.n);
      report_line(t, x, cur, last, t - last_t, s.stats(), c.errors.load());
      last = cur;
      last_t = t;
    }
  }
  const double t_end = std::chrono::duration<double>(clock::now() - t0).count();
  totals end = totals::of(c.n);
  report_line(t_end, x, end, last, t_end - last_t, s.stats(), c.errors.load());

  c.stop.store(true);
  for (auto& d : drivers) d.join();
  threads.join();
  c.pool.stop();
  finish(c, s);
  totals all = totals::of(c.n);
  auto st = s.stats();
  std::printf(
      "soak: totals over %.0f s: %llu channel values, %llu queue items, %llu critical sections, "
      "%llu permits, %llu event waits, %llu timed operations, %llu hog slices, %llu plain-thread "
      "calls, %llu kills (%llu sends aborted, accounted), %llu rounds checked, %llu tasklets "
      "spawned, preemptions soft %llu hard %llu\n",
      t_end, (unsigned long long)all.messages, (unsigned long long)all.cv,
      (unsigned long long)all.locks, (unsigned long long)all.permits,
      (unsigned long long)all.events, (unsigned long long)all.sleeps, (unsigned long long)all.hog,
      (unsigned long long)all.threads, (unsigned long long)all.kills,
      (unsigned long long)all.aborted, (unsigned long long)all.rounds,
      (unsigned long long)st.spawned, (unsigned long long)st.soft_preemptions,
      (unsigned long long)st.hard_preemptions);
  std::printf("soak: growth (warm-up max -> last-window min): %s\n", growth.summary().c_str());
  if (!failure.empty()) std::printf("soak: FAIL: %s\n", failure.c_str());
  if (c.errors.load() != 0)
    std::printf("soak: FAIL: %llu accounting error(s), listed above\n",
                (unsigned long long)c.errors.load());
  bool ok = failure.empty() && c.errors.load() == 0;
  if (ok) std::printf("soak: PASS\n");
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace soak

int main(int argc, char** argv) {
  soak::config cf = soak::parse(argc, argv);
  return cf.messages > 0 ? soak::messages_mode(cf) : soak::soak_mode(cf);
}
