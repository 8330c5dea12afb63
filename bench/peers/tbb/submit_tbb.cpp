// SPDX-License-Identifier: Apache-2.0
// bench/peers/tbb/submit_tbb.cpp — the oneTBB peer of the submit round trip
// (bench/submit_rtt.cpp, tools/bench_submit.py): a plain thread hands work to a task_arena and
// waits for the result.
//
//   peer_submit_tbb enqueue [--workers T] [--n N] [--warmup W]
//
// Output: bench/submit_rtt.hpp. Why enqueue and not execute: task_arena::execute(f) runs f on
// the calling thread (it joins the arena, or waits for a slot), so the "hand-off" would be a
// plain call — and task_group::run + wait inside execute is no better, since wait() runs the
// task on the waiting thread itself. A service thread that wants TBB's own threads to do the
// work and block meanwhile (what submit().get() does) enqueues: arena.enqueue(task) is
// fire-and-forget, so the result comes back through a std::promise whose future the thread
// waits on. The arena is task_arena(T, 0): T slots, none reserved for an external thread, so T
// of TBB's worker threads serve it; a global_control raises the process's cap to T + 1 (TBB's
// default, one thread per core including main, would give a 2-core machine one worker only).
// The arena is initialised and its workers woken by one round trip before the warm-up.
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>

#include <cstdint>
#include <future>
#include <utility>

#include "submit_rtt.hpp"

namespace {

/// answer is the enqueued task: it owns the promise, so the worker holds the shared state until
/// it is done with it. (A lambda capturing a promise on main's stack would let main destroy the
/// promise while set_value() is still returning.) oneTBB calls a const functor, hence mutable.
struct answer {
  mutable std::promise<std::int64_t> p;
  std::int64_t i;
  void operator()() const { p.set_value(i + 1); }
};

}  // namespace

int main(int argc, char** argv) {
  bench::submit::cli c;
  if (int rc = bench::submit::parse(argc, argv, c, "enqueue")) return rc;
  if (c.variant != "enqueue") {
    std::fprintf(stderr, "%s: unknown variant '%s'\n", argv[0], c.variant.c_str());
    return 2;
  }
  tbb::global_control cap(tbb::global_control::max_allowed_parallelism, c.workers + 1);
  tbb::task_arena arena(static_cast<int>(c.workers), 0);
  arena.initialize();
  auto round_trip = [&](std::int64_t i) {
    answer task{{}, i};
    auto f = task.p.get_future();
    arena.enqueue(std::move(task));
    return f.get();
  };
  (void)round_trip(0);
  return bench::submit::measure("tbb", c, round_trip);
}
