// SPDX-License-Identifier: Apache-2.0
// examples/sync.cpp — the README's stacklesslib example: a mutex and condition variable shared
// by tasklets, a timeout_scope around a call that would wait forever, and a task_group.
#include <chrono>
#include <cstdio>
#include <deque>
#include <mutex>
#include <stackless/stackless.hpp>
#include <stdexcept>

using namespace std::chrono_literals;
using namespace stackless;

int main() {
  scheduler s;
  s.block_on([] {
    mutex m;
    condition_variable cv;
    std::deque<int> q;  // std::unique_lock<mutex> works
    auto consumer = spawn([&] {
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return !q.empty(); });  // parks; the worker runs others
      return q.front();
    });
    {
      std::lock_guard g(m);
      q.push_back(42);
    }
    cv.notify_one();
    std::printf("consumer got %d\n", consumer.join());

    bool done = with_timeout(50ms, [&] {  // stacklesslib util.timeout
      channel<int> never;
      never.receive();  // throws timeout_error at 50 ms
    });                 // done == false: *this* scope fired
    std::printf("receive finished within 50 ms: %s\n", done ? "yes" : "no");

    task_group g;                // fork/join; the first error
    for (int i = 0; i < 4; ++i)  // cancels (kills) the rest and
      g.run([i] {                // wait() rethrows it
        if (i == 2) throw std::runtime_error("task 2 failed");
        this_tasklet::sleep_for(10s);  // killed long before 10 s
      });
    try {
      g.wait();
    } catch (const std::exception& e) {
      std::printf("task_group: %s; the other tasks were cancelled\n", e.what());
    }
  });
}
