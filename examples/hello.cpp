// SPDX-License-Identifier: Apache-2.0
// The README's first program: every call of fib above the base case is a tasklet.
#include <cstdio>
#include <stackless/stackless.hpp>

long fib(int n) {  // every call above the base case is a tasklet
  if (n < 2) return n;
  auto child = stackless::spawn(fib, n - 1);  // runs next, or on another worker
  long b = fib(n - 2);
  return child.join() + b;  // parks this tasklet, not the thread
}

int main() {
  stackless::scheduler s;  // one worker per core
  std::printf("fib(25) = %ld\n", s.block_on([] { return fib(25); }));
}
