// The README's example: Stackless-style tasklets on every core.
#include <cstdio>
#include <stackless/stackless.hpp>

int main() {
  stackless::scheduler s;  // one worker per core
  long sum = s.block_on([] {
    std::vector<stackless::tasklet<long>> parts;
    for (long i = 0; i < 8; ++i)
      parts.push_back(stackless::spawn([i] {
        long acc = 0;
        for (long k = i * 1000; k < (i + 1) * 1000; ++k) acc += k;
        stackless::this_tasklet::yield();  // let the others run
        return acc;
      }));
    long total = 0;
    for (auto& p : parts) total += p.join();
    return total;
  });
  std::printf("sum of 0..7999 = %ld\n", sum);  // 31996000
}
