// SPDX-License-Identifier: Apache-2.0
// tests/runtime/test_dump.cpp — what the runtime says about its tasklets: scheduler::dump() (every
// live tasklet with its state, what it waits on, where it was spawned and, parked, the frames of
// its stack), the same dump on a signal (options::dump_signal), and the spawn site in the other
// reports that name a tasklet (an uncaught exception, a deadlock); and the figures for services:
// each worker's busy and sleep time and queue, to_json() and to_prometheus().
//
// The frames are named through dladdr(): this program is linked with -rdynamic
// (tests/CMakeLists.txt), and the functions it looks for are extern and noinline.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fixture.hpp"

using namespace stackless_test;

// Extern, noinline: their names must appear in a parked tasklet's frames.
__attribute__((noinline)) void dump_test_parks_here(door& d) {
  d.wait("dump-test-door");
  asm volatile("");  // not a tail call: this frame stays on the stack while parked
}
__attribute__((noinline)) void dump_test_calls_the_parker(door& d) {
  dump_test_parks_here(d);
  asm volatile("");
}

namespace {

class Dump : public runtime_test {
 protected:
  std::string dump_text() {
    std::ostringstream os;
    sched().dump(os);
    return os.str();
  }
};

TEST_P(Dump, ListsEveryTaskletWithItsStateSpawnSiteAndParkedFrames) {
  auto& s = sched();
  door d;
  const int line = __LINE__ + 1;
  auto parked = s.spawn([&] { dump_test_calls_the_parker(d); });
  parked.set_name("reader");
  std::atomic<bool> stop{false}, spinning{false};
  auto spinner = s.spawn([&] {  // unnamed, running while the dump is taken (workers > 1)
    spinning.store(true);
    while (!stop.load()) sl::this_tasklet::checkpoint();
  });
  ASSERT_TRUE(wait_until([&] { return parked.blocked() && d.occupied(); }));
  if (workers() > 1) {
    ASSERT_TRUE(wait_until([&] { return spinning.load(); }));
  }
  const std::string text = dump_text();
  SCOPED_TRACE(text);
  EXPECT_NE(text.find("stackless: dump of scheduler 'sltest': " + std::to_string(workers()) +
                      (workers() == 1 ? " worker, " : " workers, ")),
            std::string::npos);
  // The parked one: its label with the spawn site, what it waits on, and its frames.
  const std::string label = "#" + std::to_string(parked.id()) + " 'reader' spawned at " + __FILE__ +
                            ":" + std::to_string(line);
  EXPECT_NE(text.find(label), std::string::npos);
  EXPECT_NE(text.find("parked on dump-test-door for "), std::string::npos);
  EXPECT_TRUE(std::regex_search(text, std::regex("dump_test_parks_here\\(.*\\) \\+ 0x")));
  EXPECT_TRUE(std::regex_search(text, std::regex("dump_test_calls_the_parker\\(.*\\) \\+ 0x")));
  // The innermost frame is named first: the parker appears before its caller.
  EXPECT_LT(text.find("dump_test_parks_here"), text.find("dump_test_calls_the_parker"));
  // The spinner: unnamed; running on a worker when there is a second one to take the dump from.
  const std::string unnamed = "#" + std::to_string(spinner.id()) + " (unnamed) spawned at ";
  EXPECT_NE(text.find(unnamed), std::string::npos);
  if (workers() > 1) {
    const std::size_t at = text.find(unnamed);
    const std::size_t next_line = text.find('\n', at);
    EXPECT_EQ(text.compare(next_line, 23, "\n    running on worker "), 0);
  }
  for (unsigned i = 0; i < workers(); ++i)
    EXPECT_NE(text.find("  worker " + std::to_string(i) + ": "), std::string::npos);
  stop.store(true);
  d.open();
  parked.join();
  spinner.join();
  // Nothing left: a dump of no tasklets.
  const std::string after = dump_text();
  EXPECT_NE(after.find(" 0 live tasklets"), std::string::npos) << after;
}

TEST_P(Dump, FromATaskletAndPausedAndRunnableStates) {
  auto& s = sched();
  door d;
  auto sleeper = s.spawn([&] { d.wait(); });
  ASSERT_TRUE(wait_until([&] { return d.occupied(); }));
  std::string inside = s.block_on([&] {
    auto later = sl::spawn([] {});  // runnable: the caller keeps its worker until it parks
    later.pause();
    std::ostringstream os;
    s.dump(os);
    later.resume();
    later.join();
    return os.str();
  });
  SCOPED_TRACE(inside);
  EXPECT_NE(inside.find("running"), std::string::npos);  // the caller itself
  EXPECT_NE(inside.find("paused"), std::string::npos);
  EXPECT_NE(inside.find("parked on test-door"), std::string::npos);
  d.open();
  sleeper.join();
}

TEST_P(Dump, TheErrorReportSaysWhereTheTaskletWasSpawned) {
  ignore_error_reports_ = true;
  auto& s = sched();
  const int line = __LINE__ + 1;
  auto t = s.spawn([] { throw std::runtime_error("boom"); });
  t = {};  // detached: its exception goes to on_error
  ASSERT_TRUE(wait_until([&] { return errors_.size() == 1; }));
  const auto r = errors_.take();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_STREQ(r[0].spawned_at.file_name(), __FILE__);
  EXPECT_EQ(r[0].spawned_at.line(), static_cast<unsigned>(line));
  // spawn() with arguments cannot know its caller; spawn_at() says.
  auto u = s.spawn([](int) {}, 1);
  u.join();
  const auto here = std::source_location::current();
  auto v = s.spawn_at(here, [] { throw std::runtime_error("boom"); });
  v = {};
  ASSERT_TRUE(wait_until([&] { return errors_.size() == 1; }));
  EXPECT_EQ(errors_.take()[0].spawned_at.line(), here.line());
}

TEST_P(Dump, TheDeadlockReportSaysWhereEachTaskletWasSpawned) {
  ignore_error_reports_ = true;
  auto o = opts();
  o.deadlock_grace = 50ms;
  sched(o);
  const int line = __LINE__ + 1;
  auto t = sched().spawn([] { park_forever("test-door"); });
  try {
    t.join();
    ADD_FAILURE() << "no deadlock_error";
  } catch (const sl::deadlock_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(std::string("spawned at ") + __FILE__ + ":" + std::to_string(line)),
              std::string::npos)
        << what;
  }
  t.kill();
  try {
    t.join();
  } catch (...) {
  }
}

TEST_P(Dump, OnASignalEveryLiveSchedulerIsDumpedToStderr) {
  auto o = opts();
  o.dump_signal = SIGUSR2;
  auto& s = sched(o);
  door d;
  auto t = s.spawn([&] { d.wait("waits-for-the-signal"); });
  t.set_name("signalled");
  ASSERT_TRUE(wait_until([&] { return d.occupied(); }));
  // stderr into a file for the while.
  char path[] = "/tmp/stackless-dump-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::fflush(stderr);
  const int saved = dup(2);
  dup2(fd, 2);
  ASSERT_EQ(raise(SIGUSR2), 0);
  std::string text;
  const bool seen = wait_until([&] {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
    return text.find("waits-for-the-signal") != std::string::npos;
  });
  dup2(saved, 2);
  close(saved);
  close(fd);
  unlink(path);
  EXPECT_TRUE(seen) << text;
  EXPECT_NE(text.find("stackless: dump of scheduler 'sltest'"), std::string::npos) << text;
  EXPECT_NE(text.find("'signalled' spawned at "), std::string::npos) << text;
  d.open();
  t.join();
}

TEST_P(Dump, WorkersCountBusyAndSleepTimeAndTheirQueues) {
  auto& s = sched();
  std::atomic<bool> stop{false};
  auto spinner = s.spawn([&] {
    const auto until = std::chrono::steady_clock::now() + 30ms;
    while (std::chrono::steady_clock::now() < until) sl::this_tasklet::checkpoint();
    while (!stop.load()) sl::this_tasklet::checkpoint();
  });
  std::this_thread::sleep_for(60ms);
  const sl::scheduler_stats st = s.stats();
  ASSERT_EQ(st.workers.size(), workers());
  std::uint64_t busy = 0;
  for (const auto& w : st.workers) busy += w.busy_ns;
  EXPECT_GE(busy, 20'000'000u) << describe(st);  // the spinner's 30 ms at least (clock steps)
  if (workers() > 1) {
    std::uint64_t slept = 0;
    for (const auto& w : st.workers) slept += w.sleep_ns;
    EXPECT_GT(slept, 0u) << describe(st);  // the others had nothing to do
  }
  stop.store(true);
  spinner.join();
  // queued: tasklets waiting in a worker's own queue. From inside a tasklet that keeps its
  // worker, spawn children that cannot run yet (one worker: nobody else can take them). Not in
  // chaos mode: there a spawned tasklet may go to the yield list, which only its worker reads.
  if (workers() == 1 && !chaos_mode()) {
    const std::uint64_t queued = s.block_on([&] {
      std::vector<sl::tasklet<void>> kids;
      for (int i = 0; i < 5; ++i) kids.push_back(sl::spawn([] {}));
      const std::uint64_t q = s.stats().workers[0].queued;
      for (auto& k : kids) k.join();
      return q;
    });
    EXPECT_EQ(queued, 5u);
  }
}

TEST_P(Dump, StatsAsJsonAndPrometheusText) {
  auto& s = sched();
  s.spawn([] {}).join();
  const sl::scheduler_stats st = s.stats();
  const std::string json = sl::to_json(st);
  SCOPED_TRACE(json);
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.back(), '}');
  EXPECT_NE(json.find("\"spawned\":" + std::to_string(st.spawned) + ","), std::string::npos);
  EXPECT_NE(json.find("\"monitor_running\":false"), std::string::npos);
  // One object per worker, each with its figures.
  std::size_t objects = 0;
  for (std::size_t at = json.find("{\"runs\":"); at != std::string::npos;
       at = json.find("{\"runs\":", at + 1))
    ++objects;
  EXPECT_EQ(objects, workers());
  EXPECT_NE(json.find("\"busy_ns\":"), std::string::npos);
  // Balanced braces and brackets, no trailing commas.
  int depth = 0;
  for (std::size_t i = 0; i < json.size(); ++i) {
    if (json[i] == '{' || json[i] == '[') ++depth;
    if (json[i] == '}' || json[i] == ']') --depth;
    if (json[i] == ',') {
      EXPECT_NE(json[i + 1], '}');
      EXPECT_NE(json[i + 1], ']');
    }
  }
  EXPECT_EQ(depth, 0);

  const std::string prom = sl::to_prometheus(st, "svc \"a\"\n");
  SCOPED_TRACE(prom);
  EXPECT_NE(prom.find("# TYPE stackless_spawned_total counter\n"
                      "stackless_spawned_total{scheduler=\"svc \\\"a\\\"\\n\"} " +
                      std::to_string(st.spawned) + "\n"),
            std::string::npos);
  EXPECT_NE(prom.find("# TYPE stackless_live gauge\n"), std::string::npos);
  EXPECT_NE(prom.find("# TYPE stackless_worker_busy_seconds_total counter\n"), std::string::npos);
  for (unsigned i = 0; i < workers(); ++i)
    EXPECT_NE(prom.find("stackless_worker_queued{scheduler=\"svc \\\"a\\\"\\n\",worker=\"" +
                        std::to_string(i) + "\"} "),
              std::string::npos);
  // Every sample line: name{labels} value, the value a number.
  std::istringstream lines(prom);
  std::string line;
  const std::regex sample(
      R"re(^stackless_[a-z_]+\{scheduler="([^"\\]|\\.)*"(,worker="[0-9]+")?\} [0-9]+(\.[0-9]+)?$)re");
  while (std::getline(lines, line)) {
    if (line.rfind("# TYPE ", 0) == 0) continue;
    EXPECT_TRUE(std::regex_match(line, sample)) << line;
  }
}

TEST(DumpSignal, BadNamesAndASecondSignalAreRefused) {
  sl::options o;
  o.dump_signal = -3;
  EXPECT_THROW(sl::scheduler{o}, std::invalid_argument);
  ::setenv("STACKLESS_DUMP_SIGNAL", "SIGNOTHING", 1);
  try {
    sl::scheduler s{sl::options{}};
    ADD_FAILURE() << "STACKLESS_DUMP_SIGNAL=SIGNOTHING accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("SIGNOTHING"), std::string::npos);
  }
  ::unsetenv("STACKLESS_DUMP_SIGNAL");
  // The process's dump signal is SIGUSR2 once any test above ran; another one is refused then.
  sl::options a;
  a.dump_signal = SIGUSR2;
  sl::scheduler ok{a};
  sl::options b;
  b.dump_signal = SIGUSR1;
  EXPECT_THROW(sl::scheduler{b}, std::invalid_argument);
}

}  // namespace

STACKLESS_INSTANTIATE_WORKERS(Dump);
