// SPDX-License-Identifier: Apache-2.0
// test_blocking.cpp — io::run_blocking and the file calls on the blocking pool, workers ∈
// {1, 2, 4}: results and exceptions come back, the call runs off the worker while the worker
// runs other tasklets, many calls run concurrently (the pool grows), a kill waits for the call
// and is delivered after it, a plain thread runs the call itself, a tasklet waiting on the pool
// is not a deadlock, and files round-trip through read_at / write_at.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fixture.hpp"
#include "stackless/io.hpp"

namespace {

using namespace stackless_test;
namespace io = stackless::io;
using namespace std::chrono_literals;

class Blocking : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(Blocking);

TEST_P(Blocking, ResultsAndExceptionsComeBackFromAnotherThread) {
  sched().block_on([] {
    const auto me = std::this_thread::get_id();
    auto id = io::run_blocking([] { return std::this_thread::get_id(); });
    EXPECT_NE(id, me);
    std::string s = io::run_blocking([] { return std::string(100, 'q'); });
    EXPECT_EQ(s, std::string(100, 'q'));
    int x = 0;
    int& r = io::run_blocking([&]() -> int& { return x; });
    EXPECT_EQ(&r, &x);
    io::run_blocking([&] { x = 7; });
    EXPECT_EQ(x, 7);
    EXPECT_THROW(io::run_blocking([]() -> int { throw std::out_of_range("from the pool"); }),
                 std::out_of_range);
  });
}

TEST_P(Blocking, TheWorkerRunsOtherTaskletsWhileACallBlocks) {
  sched().block_on([] {
    std::atomic<bool> release{false};
    std::atomic<int> ticks{0};
    auto ticker = sl::spawn([&] {
      while (!release.load()) {
        ticks.fetch_add(1);
        sl::this_tasklet::yield();
      }
    });
    // The pool thread waits until the ticker (a tasklet, maybe on this very worker) has run.
    io::run_blocking([&] {
      while (ticks.load() < 100) std::this_thread::sleep_for(1ms);
    });
    release.store(true);
    ticker.join();
    EXPECT_GE(ticks.load(), 100);
  });
}

TEST_P(Blocking, ManyCallsRunAtOnce) {
  const int n = 16;
  std::atomic<int> inside{0}, most{0};
  std::atomic<bool> go{false};
  sched().block_on([&] {
    std::vector<sl::tasklet<void>> ts;
    for (int i = 0; i < n; ++i)
      ts.push_back(sl::spawn([&] {
        io::run_blocking([&] {
          int now = inside.fetch_add(1) + 1;
          int m = most.load();
          while (now > m && !most.compare_exchange_weak(m, now)) {
          }
          // Every call waits until all n are inside: only a pool that grows gets there.
          while (!go.load() && most.load() < n) std::this_thread::sleep_for(1ms);
          go.store(true);
          inside.fetch_sub(1);
        });
      }));
    for (auto& t : ts) t.join();
  });
  EXPECT_EQ(most.load(), n);
  EXPECT_GE(io::blocking_pool_info().max_threads, static_cast<std::size_t>(n));
}

TEST_P(Blocking, AKillWaitsForTheCallAndIsDeliveredAfterIt) {
  std::atomic<bool> in_call{false}, finish{false}, returned{false}, after{false};
  auto t = sched().spawn([&] {
    io::run_blocking([&] {
      in_call.store(true);
      while (!finish.load()) std::this_thread::sleep_for(1ms);
    });
    returned.store(true);  // run_blocking itself delivers the kill before returning
    after.store(true);
  });
  ASSERT_TRUE(wait_until([&] { return in_call.load(); }));
  t.kill(/*pending=*/true);
  std::this_thread::sleep_for(20ms);
  EXPECT_TRUE(t.alive()) << "the kill ended the tasklet while the pool still ran its call";
  finish.store(true);
  t.join();
  EXPECT_FALSE(returned.load());
  EXPECT_FALSE(after.load());
}

TEST_P(Blocking, APlainThreadRunsTheCallItself) {
  const auto me = std::this_thread::get_id();
  EXPECT_EQ(io::run_blocking([] { return std::this_thread::get_id(); }), me);
}

TEST_P(Blocking, ATaskletWaitingOnThePoolIsNotADeadlock) {
  sl::options o = opts();
  o.deadlock_grace = 30ms;
  sched(o);
  auto t = sched().spawn([] {
    io::run_blocking([] { std::this_thread::sleep_for(250ms); });  // eight grace periods
    return 1;
  });
  EXPECT_EQ(t.join(), 1);
}

TEST_P(Blocking, FilesRoundTripThroughThePool) {
  char tmpl[] = "/tmp/stackless-file-XXXXXX";
  int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ::close(fd);
  const std::string path = tmpl;
  sched().block_on([&] {
    std::string data(300'000, '\0');
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31);
    io::write_file(path, data);
    EXPECT_EQ(io::read_file(path), data);
    auto f = io::file::open(path, O_RDWR);
    EXPECT_EQ(f.size(), data.size());
    const std::string patch = "PATCH";
    f.write_at(std::as_bytes(std::span(patch.data(), patch.size())), 1000);
    f.sync();
    std::string back(5, '\0');
    EXPECT_EQ(f.read_at(std::as_writable_bytes(std::span(back)), 1000), 5u);
    EXPECT_EQ(back, patch);
    std::string tail(10, '\0');
    EXPECT_EQ(f.read_at(std::as_writable_bytes(std::span(tail)), data.size() - 3), 3u);
    try {
      io::file::open("/nonexistent/dir/file", O_RDONLY);
      ADD_FAILURE() << "opened a file in a directory that does not exist";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
      EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/file"), std::string::npos);
    }
  });
  ::unlink(path.c_str());
}

}  // namespace
