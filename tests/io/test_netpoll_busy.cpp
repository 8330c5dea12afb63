// SPDX-License-Identifier: Apache-2.0
// test_netpoll_busy.cpp — ready I/O is served while the workers are busy, with quantum 0 (no
// monitor thread), workers ∈ {1, 2, 4}: a tasklet blocked in read_some() on a loopback tcp_stream
// gets the bytes a plain thread writes to the peer while a long job still runs — a fork/join job
// (spawn/join, many short tasklets: examples/service.cpp's GET /fib/N), and two tasklets that wake
// each other through parks. With one worker only its fairness tick can poll then (the job always
// has a runnable tasklet, so the worker never reaches its scheduler side): before the fix in
// fair_pick() (worker.cpp) that poll never ran after the worker's first park, and the reader
// waited for the whole job (examples/service.cpp: GET /stats behind GET /fib/44, 7.4 s, 5 polls).
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <thread>

#include "fixture.hpp"
#include "stackless/io.hpp"

namespace {

using namespace stackless_test;
namespace io = stackless::io;
using namespace std::chrono_literals;

class NetpollBusy : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(NetpollBusy);

// The job: fib by recursive spawn/join down to a sequential cutoff, as examples/service.cpp's
// fib_par() — every split checks `stop`, so a stopped job ends within one leaf per piece.
struct job_state {
  std::atomic<bool> stop{false};                // set by the reader once it is served
  std::atomic<std::uint64_t> splits{0};         // fib_par() splits so far
  std::atomic<std::uint64_t> rounds{0};         // whole rounds the job finished
  std::chrono::steady_clock::time_point guard;  // the job's hang guard
  bool past_guard() const { return std::chrono::steady_clock::now() > guard; }
};

std::int64_t fib_seq(int n) { return n < 2 ? n : fib_seq(n - 1) + fib_seq(n - 2); }

std::int64_t fib_par(int n, job_state& js) {
  constexpr int cutoff = 12;
  if (n <= cutoff) return fib_seq(n);
  if (js.stop.load(std::memory_order_relaxed)) return 0;  // relaxed: a flag, nothing rides on it
  js.splits.fetch_add(1, std::memory_order_relaxed);      // relaxed: a count for the message
  auto child = sl::spawn([n, &js] { return fib_par(n - 1, js); });
  const std::int64_t b = fib_par(n - 2, js);
  return child.join() + b;
}

// reader_served_during() runs `job(js)` in a tasklet until js.stop (or its 10 s guard) while a
// reader tasklet waits in read_some() on a loopback connection whose peer, a plain thread,
// writes once the reader is blocked and the job is under way (js.rounds >= 2). The reader stops
// the job when it is served. Tests never assert timing: the 10 s is a hang guard, and the failure
// it turns into is "the reader was served only after the job ended".
template <class Job>
void reader_served_during(sl::scheduler& s, Job job) {
  job_state js;
  std::atomic<bool> job_ended{false};   // the job's tasklet left its loop
  std::atomic<bool> guard_hit{false};   // ... because the hang guard passed, not `stop`
  std::atomic<bool> served{false};      // the reader got its bytes
  std::atomic<bool> during_job{false};  // ... and the job had not ended then
  std::string got;

  s.block_on([&] {
    auto l = io::tcp_listener::bind("127.0.0.1:0");
    const std::string addr = l.local_endpoint().to_string();
    // The peer: a plain thread. It writes only once the reader is blocked in read_some() (the
    // only I/O waiter then) and the job is well under way, so the bytes can reach the reader
    // only through a poll made while the job runs.
    std::thread peer([&] {
      auto c = io::tcp_stream::connect(addr);
      const bool ready = wait_until(
          [&] { return s.stats().io_waiting >= 1 && js.rounds.load() >= 2 && !job_ended.load(); },
          60s);
      EXPECT_TRUE(ready) << "the reader never blocked, or the job never got going";
      c.write_all(std::string_view("ping"));
      wait_until([&] { return served.load() || job_ended.load(); }, 120s);  // hang guard
    });
    io::tcp_stream conn = l.accept();

    auto reader = sl::spawn([&] {
      char buf[16];
      const std::size_t n = conn.read_some(std::as_writable_bytes(std::span(buf)));
      during_job.store(!job_ended.load());
      got.assign(buf, n);
      served.store(true);
      js.stop.store(true);  // served: the job may end now
    });
    auto busy = sl::spawn([&] {
      js.guard = std::chrono::steady_clock::now() + 10s;
      job(js);
      guard_hit.store(!js.stop.load());
      job_ended.store(true);
    });
    busy.join();
    reader.join();
    peer.join();
  });

  EXPECT_TRUE(served.load());
  EXPECT_EQ(got, "ping");
  EXPECT_TRUE(during_job.load()) << "the reader was served only after the job ended";
  EXPECT_FALSE(guard_hit.load()) << "the job ran into its 10 s guard: ready I/O waited for it ("
                                 << js.rounds.load() << " rounds, " << js.splits.load()
                                 << " splits, io_polls " << s.stats().io_polls << ")";
}

sl::options no_monitor(sl::options o) {
  o.quantum = 0us;  // no monitor thread: only the workers poll
  return o;
}

// Rounds of fib(25) (~600 tasklets each, spawn/join: every switch is a tasklet's exit or a
// parent's park in join) — examples/service.cpp's GET /fib/N.
TEST_P(NetpollBusy, ReaderIsServedWhileAForkJoinJobRuns) {
  reader_served_during(sched(no_monitor(opts())), [](job_state& js) {
    while (!js.stop.load() && !js.past_guard()) {
      (void)fib_par(25, js);
      js.rounds.fetch_add(1);
    }
  });
}

// Two tasklets that wake each other through doors: every switch of the worker is a park (no
// exit, no yield) — the case where a poll may never run while a park's unlock step is pending.
TEST_P(NetpollBusy, ReaderIsServedWhileTwoTaskletsPingPongThroughParks) {
  reader_served_during(sched(no_monitor(opts())), [](job_state& js) {
    door to_a, to_b;
    std::atomic<bool> quit{false};
    auto b = sl::spawn([&] {
      for (;;) {
        to_b.wait();
        if (quit.load()) break;
        to_a.open();
      }
    });
    while (!js.stop.load() && !js.past_guard()) {
      for (int i = 0; i < 100; ++i) {
        to_b.open();
        to_a.wait();
      }
      js.rounds.fetch_add(1);
    }
    quit.store(true);
    to_b.open();
    b.join();
  });
}

}  // namespace
