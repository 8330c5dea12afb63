// SPDX-License-Identifier: Apache-2.0
#include <stackless/stackless.hpp>

int main() {
  stackless::scheduler s(stackless::options{.workers = 2});
  int v = s.block_on([] { return stackless::spawn([] { return 41; }).join() + 1; });
  return v == 42 ? 0 : 1;
}
