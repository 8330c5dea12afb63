// SPDX-License-Identifier: Apache-2.0
// examples/chain.cpp — the Stackless "100,000 tasklets" program: a line of tasklets joined by
// rendezvous channels; each receives a number, adds one and passes it on.
//
//   build/release/examples/stackless_chain [tasklets] [workers]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stackless/stackless.hpp>
#include <vector>

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 100000;
  unsigned workers = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 0;
  if (n < 1) {
    std::fprintf(stderr, "usage: %s [tasklets >= 1] [workers]\n", argv[0]);
    return 2;
  }
  stackless::scheduler s({.workers = workers});
  auto t0 = std::chrono::steady_clock::now();
  int out = s.block_on([n] {
    std::vector<stackless::channel<int>> links(static_cast<std::size_t>(n) + 1);
    for (int i = 0; i < n; ++i)
      stackless::spawn(
          [in = links[i], out = links[i + 1]]() mutable { out.send(in.receive() + 1); });
    links[0].send(0);           // the first tasklet takes it at once (it waits in receive())
    return links[n].receive();  // the last one hands over n
  });
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("chain of %d tasklets: %d (%.1f ms, %zu workers)\n", n, out, ms,
              s.stats().workers.size());
  return out == n ? 0 : 1;
}
