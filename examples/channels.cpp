// SPDX-License-Identifier: Apache-2.0
// examples/channels.cpp — the README's channel example: a rendezvous channel read by a range-for
// until close(), and a select() over a receive, a send and a timeout.
#include <chrono>
#include <cstdio>
#include <stackless/stackless.hpp>
#include <string>

using namespace std::chrono_literals;
using namespace stackless;

int main() {
  scheduler s;
  s.block_on([] {
    channel<std::string> words;  // rendezvous (capacity 0)
    auto reader = spawn([words]() mutable {
      for (std::string w : words) std::puts(w.c_str());  // receives until close()
    });
    words.send("hello");  // parks until the reader takes it
    words.close();
    reader.join();

    channel<int> a(64), b(64);  // buffered
    int got = 0;
    std::size_t i =
        select(on_receive(a, [&](int v) { got = v; }),  // exactly one case happens
               on_send(b, 7, [] {}), after(10ms, [] { /* nothing was ready for 10 ms */ }));
    std::printf("select ran case %zu (b now holds %d value%s), got %d\n", i, i == 1 ? 1 : 0,
                i == 1 ? "" : "s", got);
  });
}
