// SPDX-License-Identifier: Apache-2.0
// bench/mandelbrot.hpp — the Mandelbrot kernel of the parallel_for benchmark, shared by ours
// (bench/mr_bench.cpp) and oneTBB's (bench/peers/tbb/mandelbrot_tbb.cpp) so that both run the very
// same machine code and only the loop around it differs.
//
// The image is size × size points of the square [-2, 1] × [-1.5, 1.5]; a point is in the set when
// z = z² + c stays within |z| ≤ 2 for `iters` iterations. The checksum is the number of points in
// the set (4096 × 4096, 256 iterations: ~2.9 M). Rows differ in cost by ~256× (the ones through
// the set's body iterate to the end at most points), which is what makes the split matter.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace bench::mandel {

/// row() is how many points of row y are in the set. Not inlined: both programs call the same
/// code, whatever their loops around it look like (one call per row costs nothing).
[[gnu::noinline]] inline std::uint32_t row(int y, int size, int iters) {
  const double scale = 3.0 / size;
  const double ci = -1.5 + y * scale;
  std::uint32_t inside = 0;
  for (int x = 0; x < size; ++x) {
    const double cr = -2.0 + x * scale;
    double zr = 0, zi = 0;
    int i = 0;
    for (; i < iters; ++i) {
      const double zr2 = zr * zr, zi2 = zi * zi;
      if (zr2 + zi2 > 4.0) break;
      zi = 2 * zr * zi + ci;
      zr = zr2 - zi2 + cr;
    }
    inside += i == iters;
  }
  return inside;
}

/// params is the command line of both programs: `--workers T [--size N] [--iters K] [--grain G]`.
struct params {
  unsigned workers = 1;
  int size = 4096;
  int iters = 256;
  long grain = 0;  // ours: parallel_for's grain (0: automatic); oneTBB: ignored
};

inline bool parse(int argc, char** argv, int first, params& p) {
  for (int i = first; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const long v = std::strtol(argv[i + 1], nullptr, 10);
    if (a == "--workers" && v > 0)
      p.workers = static_cast<unsigned>(v);
    else if (a == "--size" && v > 0)
      p.size = static_cast<int>(v);
    else if (a == "--iters" && v > 0)
      p.iters = static_cast<int>(v);
    else if (a == "--grain" && v >= 0)
      p.grain = v;
    else
      return false;
  }
  return (argc - first) % 2 == 0;
}

/// print() writes the one JSON line tools/bench_wordcount.py reads.
inline void print(const char* impl, const params& p, std::uint64_t checksum, double seconds) {
  std::printf(
      "{\"impl\": \"%s\", \"job\": \"mandelbrot\", \"workers\": %u, \"size\": %d, \"iters\": %d, "
      "\"grain\": %ld, \"checksum\": %llu, \"seconds\": %.6f}\n",
      impl, p.workers, p.size, p.iters, p.grain, static_cast<unsigned long long>(checksum),
      seconds);
}

}  // namespace bench::mandel
