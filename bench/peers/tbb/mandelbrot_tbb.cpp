// SPDX-License-Identifier: Apache-2.0
// bench/peers/tbb/mandelbrot_tbb.cpp — peer_mandelbrot_tbb: the Mandelbrot image of the
// parallel_for benchmark on oneTBB.
//
//   peer_mandelbrot_tbb --workers T [--size 4096] [--iters 256]
//
// tbb::parallel_for over the rows with a blocked_range and the default auto_partitioner (oneTBB's
// own choice of pieces, splitting further when a piece is stolen) around bench/mandelbrot.hpp's
// kernel — the very code ours calls; a task_arena of T slots under a global_control capping the
// process at T threads. Prints the JSON line of bench/mandelbrot.hpp.
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>

#include <cstdint>
#include <cstdio>
#include <vector>

#include "mandelbrot.hpp"
#include "wordcount_common.hpp"  // the clock

int main(int argc, char** argv) {
  bench::mandel::params p;
  if (!bench::mandel::parse(argc, argv, 1, p)) {
    std::fprintf(stderr, "usage: %s --workers T [--size N] [--iters K]\n", argv[0]);
    return 64;
  }
  tbb::global_control cap(tbb::global_control::max_allowed_parallelism,
                          static_cast<std::size_t>(p.workers));
  tbb::task_arena arena(static_cast<int>(p.workers));
  std::vector<std::uint32_t> rows(static_cast<std::size_t>(p.size));
  double secs = 0;
  arena.execute([&] {
    const auto t0 = bench::wc::clock_type::now();
    tbb::parallel_for(tbb::blocked_range<int>(0, p.size), [&](const tbb::blocked_range<int>& r) {
      for (int y = r.begin(); y != r.end(); ++y)
        rows[static_cast<std::size_t>(y)] = bench::mandel::row(y, p.size, p.iters);
    });
    secs = bench::wc::seconds_since(t0);
  });
  std::uint64_t sum = 0;
  for (std::uint32_t r : rows) sum += r;
  bench::mandel::print("tbb", p, sum, secs);
  return 0;
}
