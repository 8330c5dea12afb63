// SPDX-License-Identifier: Apache-2.0
// bench/peers/asio/submit_asio.cpp — the Boost.Asio peer of the submit round trip
// (bench/submit_rtt.cpp, tools/bench_submit.py): a plain thread posts work to an io_context and
// waits for the result.
//
//   peer_submit_asio post [--workers T] [--n N] [--warmup W]
//
// Output: bench/submit_rtt.hpp. One io_context (concurrency hint T) run by T threads, kept
// running by a work guard; each round trip is `asio::post(ctx, std::packaged_task)` and the
// future's get() — the thread-pool idiom of Asio's documentation for handing work to its threads
// and getting a result back. The threads are started, and one round trip made, before the
// warm-up. Header-only Asio (Debian's libboost-dev), no Boost library linked.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cstdint>
#include <future>
#include <thread>
#include <vector>

#include "submit_rtt.hpp"

namespace asio = boost::asio;

int main(int argc, char** argv) {
  bench::submit::cli c;
  if (int rc = bench::submit::parse(argc, argv, c, "post")) return rc;
  if (c.variant != "post") {
    std::fprintf(stderr, "%s: unknown variant '%s'\n", argv[0], c.variant.c_str());
    return 2;
  }
  asio::io_context ctx(static_cast<int>(c.workers));
  auto guard = asio::make_work_guard(ctx);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < c.workers; ++t) threads.emplace_back([&ctx] { ctx.run(); });
  auto round_trip = [&](std::int64_t i) {
    std::packaged_task<std::int64_t()> task([i] { return i + 1; });
    auto f = task.get_future();
    asio::post(ctx, std::move(task));
    return f.get();
  };
  (void)round_trip(0);
  const int rc = bench::submit::measure("asio", c, round_trip);
  guard.reset();
  ctx.stop();
  for (auto& t : threads) t.join();
  return rc;
}
