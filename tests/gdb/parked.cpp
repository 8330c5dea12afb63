// SPDX-License-Identifier: Apache-2.0
// tests/gdb/parked.cpp — the program tests/gdb/test_gdb.py debugs: named tasklets parked in a
// channel receive (twice: one of them holds a mutex), a mutex lock and a sleep, each in a
// function with a distinct name that `tasklet bt` must show. When every one of them is parked a
// fifth tasklet, the observer, calls stackless_test_all_parked() (gdb breaks there, with one
// tasklet RUNNING on a worker thread); then the program wakes them all, stops once more when
// they have ended (stackless_test_all_ended(); before any was spawned it stopped in
// stackless_test_no_tasklets()) and exits 0: a
// debugger that changed a thread's registers and failed to restore them exactly shows up as a
// crash or a hang after `continue`.
//
// Run alone it does the same and prints what it would let gdb see.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <stackless/runtime.hpp>
#include <stackless/sync.hpp>
#include <thread>

namespace {

std::atomic<int> sink{0};

// The parking functions: noinline, and each does something after the wait so the call in it is
// not a tail call (its frame stays on the tasklet's stack).
[[gnu::noinline]] int wait_on_channel_here(stackless::channel<int>& ch) {
  const int v = ch.receive();
  sink.fetch_add(v, std::memory_order_relaxed);
  return v;
}

[[gnu::noinline]] void wait_on_mutex_here(stackless::mutex& m) {
  m.lock();
  sink.fetch_add(1, std::memory_order_relaxed);
  m.unlock();
}

[[gnu::noinline]] void sleep_here() {
  try {
    stackless::this_tasklet::sleep_for(std::chrono::hours(1));
  } catch (...) {  // tasklet_exit: killed at the end
    sink.fetch_add(1, std::memory_order_relaxed);
    throw;
  }
}

// The mutex holder parks on a channel of its own while it holds the lock.
[[gnu::noinline]] void hold_mutex_here(stackless::mutex& m, stackless::channel<int>& release,
                                       std::atomic<bool>& locked) {
  m.lock();
  locked.store(true, std::memory_order_release);
  wait_on_channel_here(release);
  m.unlock();
}

}  // namespace

/// parked_ids: the tasklets' ids, for gdb (`tasklet bt parked_ids[0]`): the mutex holder, the
/// channel receiver, the mutex waiter, the sleeper; then the observer, which is running (it calls
/// stackless_test_all_parked()).
extern "C" {
[[gnu::used]] volatile unsigned long long parked_ids[5];
}

/// stackless_test_all_parked() is where gdb stops: every tasklet of the program but the observer
/// (which calls it) is parked.
extern "C" [[gnu::noinline]] void stackless_test_all_parked() { asm volatile("" ::: "memory"); }
/// stackless_test_no_tasklets(): the first stop, a scheduler that has no tasklet yet.
extern "C" [[gnu::noinline]] void stackless_test_no_tasklets() { asm volatile("" ::: "memory"); }
/// stackless_test_all_ended(): the last stop, every tasklet ended (a dead one may still be in
/// the registry for a moment).
extern "C" [[gnu::noinline]] void stackless_test_all_ended() { asm volatile("" ::: "memory"); }

namespace {

// observe_here() runs in a tasklet: it waits until the four others are parked (the count is
// taken while it runs, so it does not count itself), then stops in stackless_test_all_parked().
[[gnu::noinline]] bool observe_here(stackless::scheduler& s) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (s.stats().parked < 4) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    stackless::this_tasklet::sleep_for(std::chrono::milliseconds(1));
  }
  std::printf("parked: all parked: %llu %llu %llu %llu, observer %llu\n", parked_ids[0],
              parked_ids[1], parked_ids[2], parked_ids[3], parked_ids[4]);
  std::fflush(stdout);
  stackless_test_all_parked();
  sink.fetch_add(1, std::memory_order_relaxed);
  return true;
}

}  // namespace

int main() {
  stackless::options o;
  o.workers = 2;
  o.name = "gdbtest";
  stackless::scheduler s(o);
  stackless_test_no_tasklets();
  stackless::channel<int> ch;
  stackless::channel<int> release;
  stackless::mutex m;
  std::atomic<bool> locked{false};

  auto holder = s.spawn([&] { hold_mutex_here(m, release, locked); });
  holder.set_name("mutex-holder");
  while (!locked.load(std::memory_order_acquire)) std::this_thread::yield();

  auto receiver = s.spawn([&] { wait_on_channel_here(ch); });
  receiver.set_name("chan-receiver");
  auto locker = s.spawn([&] { wait_on_mutex_here(m); });
  locker.set_name("mutex-waiter");
  auto sleeper = s.spawn([] { sleep_here(); });
  sleeper.set_name("sleeper");
  parked_ids[0] = holder.id();
  parked_ids[1] = receiver.id();
  parked_ids[2] = locker.id();
  parked_ids[3] = sleeper.id();

  std::atomic<bool> go{false};
  auto observer = s.spawn([&] {
    while (!go.load(std::memory_order_acquire)) stackless::this_tasklet::yield();
    return observe_here(s);
  });
  observer.set_name("observer");
  parked_ids[4] = observer.id();
  go.store(true, std::memory_order_release);
  if (!observer.join()) {
    std::fprintf(stderr, "parked: the tasklets did not all park\n");
    return 2;
  }

  ch.send(1);
  release.send(2);
  sleeper.kill();
  holder.join();
  receiver.join();
  locker.join();
  try {
    sleeper.join();
  } catch (...) {  // it was killed
  }
  while (s.stats().live != 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  stackless_test_all_ended();
  s.shutdown();
  std::printf("parked: done\n");
  return 0;
}
