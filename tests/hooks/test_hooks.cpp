// SPDX-License-Identifier: Apache-2.0
// test_hooks.cpp — the hooks linked in (stackless::hooks), workers ∈ {1, 2, 4}: plain libc calls
// made from tasklets park the tasklet, not the worker. On one worker, a tasklet blocked in
// read() while another is to write would hang the test without the hooks; with them it cannot.
// Then the user's O_NONBLOCK, SO_RCVTIMEO, close() of a fd being waited on, kill and
// timeout_scope in a hooked call, poll/select over several fds, the sleeps, getaddrinfo, plain
// threads (libc's behaviour), unmodified hiredis against a real redis-server, and libcurl's easy
// API against the project's HTTP example server (examples/http_server.hpp).
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "curl_client.hpp"
#include "fixture.hpp"
#include "http_server.hpp"  // examples/: the project's own HTTP server
#include "redis_server.hpp"
#include "stackless/io.hpp"

namespace {

using namespace stackless_test;
namespace io = stackless::io;
using namespace std::chrono_literals;

class Hooks : public runtime_test {
 protected:
  void TearDown() override {
    if (started_) {
      EXPECT_EQ(sched().stats().io_waiting, 0u) << "a tasklet still waits for I/O";
    }
    runtime_test::TearDown();
  }
  sl::scheduler& S() {
    started_ = true;
    return sched();
  }
  // pair() is a connected unix stream pair made through the hooked socketpair() (blocking, as
  // the user asked).
  static std::pair<int, int> pair(int flags = 0) {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | flags, 0, sv), 0) << strerror(errno);
    return {sv[0], sv[1]};
  }
  // kernel_flags() are the fd's flags as the kernel has them (the raw system call: no hook).
  static long kernel_flags(int fd) { return syscall(SYS_fcntl, fd, F_GETFL); }

 private:
  bool started_ = false;
};
STACKLESS_INSTANTIATE_WORKERS(Hooks);

// waiting_for_io() spins (yielding) until `n` tasklets of the scheduler wait in io_wait().
void wait_until_waiting(sl::scheduler& s, std::uint64_t n) {
  while (s.stats().io_waiting < n) sl::this_tasklet::yield();
}

TEST_P(Hooks, ABlockingReadParksOnlyTheTasklet) {
  auto [a, b] = pair();
  const auto parked_before = io::hooks_info().parked_calls;
  S().block_on([&, a = a, b = b] {
    auto reader = sl::spawn([a] {
      char buf[5];
      ssize_t n = ::read(a, buf, sizeof buf);  // nothing there yet: parks
      return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    });
    auto writer = sl::spawn([b] {
      ::usleep(10'000);  // parks too
      EXPECT_EQ(::write(b, "hello", 5), 5);
    });
    writer.join();
    EXPECT_EQ(reader.join(), "hello");
  });
  EXPECT_TRUE(io::hooks_active());
  EXPECT_GT(io::hooks_info().parked_calls, parked_before);
  // The user made a blocking fd and sees one; the kernel's is non-blocking.
  EXPECT_EQ(::fcntl(a, F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(kernel_flags(a) & O_NONBLOCK, 0);
  EXPECT_EQ(::close(a), 0);
  EXPECT_EQ(::close(b), 0);
}

TEST_P(Hooks, AFdTheUserMadeNonBlockingGetsEagain) {
  auto [a, b] = pair(SOCK_NONBLOCK);
  auto [c, d] = pair();
  S().block_on([&, a = a, c = c, d = d] {
    char x;
    errno = 0;
    EXPECT_EQ(::read(a, &x, 1), -1);
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_NE(::fcntl(a, F_GETFL) & O_NONBLOCK, 0);
    // fcntl: non-blocking at the user's request, then blocking again (and parking).
    ASSERT_EQ(::fcntl(c, F_SETFL, ::fcntl(c, F_GETFL) | O_NONBLOCK), 0);
    errno = 0;
    EXPECT_EQ(::read(c, &x, 1), -1);
    EXPECT_EQ(errno, EAGAIN);
    ASSERT_EQ(::fcntl(c, F_SETFL, ::fcntl(c, F_GETFL) & ~O_NONBLOCK), 0);
    EXPECT_EQ(::fcntl(c, F_GETFL) & O_NONBLOCK, 0);
    auto w = sl::spawn([d] {
      ::usleep(5'000);
      EXPECT_EQ(::write(d, "z", 1), 1);
    });
    EXPECT_EQ(::read(c, &x, 1), 1);
    EXPECT_EQ(x, 'z');
    w.join();
    // ioctl(FIONBIO) is the other way to ask.
    int on = 1;
    ASSERT_EQ(::ioctl(c, FIONBIO, &on), 0);
    errno = 0;
    EXPECT_EQ(::read(c, &x, 1), -1);
    EXPECT_EQ(errno, EAGAIN);
  });
  for (int fd : {a, b, c, d}) ::close(fd);
}

TEST_P(Hooks, SoRcvtimeoBoundsTheWait) {
  auto [a, b] = pair();
  S().block_on([&, a = a] {
    timeval tv{0, 30'000};
    ASSERT_EQ(::setsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    char x;
    const auto t0 = std::chrono::steady_clock::now();
    errno = 0;
    EXPECT_EQ(::read(a, &x, 1), -1);
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 25ms);  // it waited (no upper bound)
  });
  ::close(a);
  ::close(b);
}

TEST_P(Hooks, CloseOfAFdAnotherTaskletWaitsOnWakesItWithEbadf) {
  auto [a, b] = pair();
  S().block_on([&, a = a] {
    auto reader = sl::spawn([a] {
      char x;
      errno = 0;
      ssize_t n = ::read(a, &x, 1);
      return std::pair<ssize_t, int>(n, errno);
    });
    wait_until_waiting(S(), 1);
    EXPECT_EQ(::close(a), 0);
    auto [n, e] = reader.join();
    EXPECT_EQ(n, -1);
    EXPECT_EQ(e, EBADF);
  });
  EXPECT_EQ(S().stats().io_registered, 0u);
  ::close(b);
}

TEST_P(Hooks, AKillInAHookedCallFailsItAndIsDeliveredInCxxCode) {
  auto [a, b] = pair();
  std::atomic<int> seen_errno{0};
  std::atomic<bool> after_yield{false};
  S().block_on([&, a = a] {
    auto t = sl::spawn([&, a] {
      char x;
      EXPECT_EQ(::read(a, &x, 1), -1);
      seen_errno = errno;
      EXPECT_EQ(::read(a, &x, 1), -1);  // later hooked waits fail at once too
      sl::this_tasklet::yield();        // the kill is delivered here
      after_yield = true;
    });
    wait_until_waiting(S(), 1);
    t.kill();
    EXPECT_FALSE(t.alive());
  });
  EXPECT_EQ(seen_errno.load(), ECANCELED);
  EXPECT_FALSE(after_yield.load());
  ::close(a);
  ::close(b);
  EXPECT_EQ(S().stats().io_registered, 0u);
}

TEST_P(Hooks, ATimeoutScopeEndsAHookedWaitWithEtimedout) {
  auto [a, b] = pair();
  S().block_on([&, a = a] {
    bool threw = false;
    try {
      sl::timeout_scope scope(20ms);
      char x;
      errno = 0;
      EXPECT_EQ(::read(a, &x, 1), -1);
      EXPECT_EQ(errno, ETIMEDOUT);
      sl::this_tasklet::sleep_for(1s);  // the scope's timeout_error surfaces in C++ code
    } catch (const sl::timeout_error&) {
      threw = true;
    }
    EXPECT_TRUE(threw);
  });
  ::close(a);
  ::close(b);
}

TEST_P(Hooks, SleepsParkTheTasklet) {
  // Each sleep is long (60 s): the tasklet is seen parked (blocked()) while the caller keeps
  // running — on one worker too, which a sleep that blocked its thread would hold — and then a
  // kill ends the sleep early with EINTR (no timing involved).
  S().block_on([] {
    for (int kind = 0; kind < 6; ++kind) {
      std::atomic<int> rc{0}, err{0};
      auto t = sl::spawn([&, kind] {
        timespec ts{60, 0}, rem{0, 0};
        errno = 0;
        switch (kind) {
          case 0:
            rc = ::usleep(60'000'000u);
            break;
          case 1:
            rc = ::nanosleep(&ts, &rem);
            EXPECT_GT(rem.tv_sec + rem.tv_nsec, 0);  // what was left
            break;
          case 2:
            rc = ::clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, nullptr);  // returns the error
            break;
          case 3:
            rc = static_cast<int>(::sleep(60));  // returns the seconds left
            break;
          case 4:
            rc = ::poll(nullptr, 0, 60'000);
            break;
          default: {
            pollfd none{-1, POLLIN, 0};
            rc = ::poll(&none, 1, 60'000);
          }
        }
        err = errno;
      });
      while (!t.blocked()) sl::this_tasklet::yield();
      t.kill();
      SCOPED_TRACE(kind);
      switch (kind) {
        case 0:
        case 1:
          EXPECT_EQ(rc.load(), -1);
          EXPECT_EQ(err.load(), EINTR);
          break;
        case 2:
          EXPECT_EQ(rc.load(), EINTR);
          break;
        case 3:
          EXPECT_GT(rc.load(), 0);
          break;
        default:
          EXPECT_EQ(rc.load(), -1);
          EXPECT_EQ(err.load(), ECANCELED);
      }
    }
  });
}

TEST_P(Hooks, PollAndSelectWaitForAnyOfSeveralFds) {
  std::vector<std::pair<int, int>> ps;
  for (int i = 0; i < 3; ++i) ps.push_back(pair());
  S().block_on([&] {
    auto w = sl::spawn([&] {
      ::usleep(10'000);
      EXPECT_EQ(::write(ps[1].second, "p", 1), 1);
    });
    pollfd p[3];
    for (int i = 0; i < 3; ++i) p[i] = {ps[static_cast<std::size_t>(i)].first, POLLIN, 0};
    EXPECT_EQ(::poll(p, 3, 5000), 1);
    EXPECT_EQ(p[0].revents, 0);
    EXPECT_NE(p[1].revents & POLLIN, 0);
    EXPECT_EQ(p[2].revents, 0);
    w.join();
    // select: the same fds; #1 is still readable (nothing read it).
    fd_set rd;
    FD_ZERO(&rd);
    int top = 0;
    for (auto& q : ps) FD_SET(q.first, &rd), top = std::max(top, q.first);
    timeval tv{5, 0};
    EXPECT_EQ(::select(top + 1, &rd, nullptr, nullptr, &tv), 1);
    EXPECT_TRUE(FD_ISSET(ps[1].first, &rd));
    EXPECT_FALSE(FD_ISSET(ps[0].first, &rd));
    // Nothing ready: poll's own timeout.
    pollfd q{ps[0].first, POLLIN, 0};
    EXPECT_EQ(::poll(&q, 1, 20), 0);
  });
  for (auto& q : ps) ::close(q.first), ::close(q.second);
}

TEST_P(Hooks, ConnectAcceptSendRecvThroughTheHooks) {
  // A listening socket made with the plain calls; one tasklet accepts and echoes, others
  // connect and check, all blocking calls.
  int l = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(l, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(l, 64), 0);
  ASSERT_EQ(::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const int clients = 20;
  std::atomic<int> ok{0};
  S().block_on([&] {
    auto server = sl::spawn([&] {
      std::vector<sl::tasklet<void>> conns;
      for (int i = 0; i < clients; ++i) {
        int c = ::accept(l, nullptr, nullptr);
        ASSERT_GE(c, 0) << strerror(errno);
        conns.push_back(sl::spawn([c] {
          char buf[64];
          ssize_t n;
          while ((n = ::recv(c, buf, sizeof buf, 0)) > 0) ::send(c, buf, n, MSG_NOSIGNAL);
          ::close(c);
        }));
      }
      for (auto& t : conns) t.join();
    });
    std::vector<sl::tasklet<void>> cs;
    for (int i = 0; i < clients; ++i) {
      cs.push_back(sl::spawn([&, i] {
        int s = ::socket(AF_INET, SOCK_STREAM, 0);
        ASSERT_EQ(::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
        const std::string msg = "message " + std::to_string(i);
        ASSERT_EQ(::send(s, msg.data(), msg.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(msg.size()));
        std::string got;
        char buf[64];
        while (got.size() < msg.size()) {
          ssize_t n = ::recv(s, buf, sizeof buf, 0);
          ASSERT_GT(n, 0);
          got.append(buf, static_cast<std::size_t>(n));
        }
        if (got == msg) ok.fetch_add(1);
        ::close(s);
      }));
    }
    for (auto& t : cs) t.join();
    server.join();
  });
  ::close(l);
  EXPECT_EQ(ok.load(), clients);
  EXPECT_EQ(io::hooks_info().managed_fds, 0u) << "every fd the hooks made was closed";
}

TEST_P(Hooks, GetaddrinfoRunsOnTheBlockingPool) {
  S().block_on([] {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    ASSERT_EQ(::getaddrinfo("localhost", "80", &hints, &res), 0);
    ASSERT_NE(res, nullptr);
    ::freeaddrinfo(res);
    EXPECT_NE(::getaddrinfo("no-such-host.invalid", "80", &hints, &res), 0);
  });
}

TEST_P(Hooks, PlainThreadsKeepLibcsBlockingBehaviour) {
  auto [a, b] = pair();
  // A tasklet used the fd first: the kernel's flag is non-blocking, the thread still blocks.
  S().block_on([&, a = a, b = b] {
    EXPECT_EQ(::write(b, "1", 1), 1);
    char x;
    EXPECT_EQ(::read(a, &x, 1), 1);
  });
  ASSERT_NE(kernel_flags(a) & O_NONBLOCK, 0);
  std::thread writer([b = b] {
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(::write(b, "2", 1), 1);
  });
  char x = 0;
  EXPECT_EQ(::read(a, &x, 1), 1);  // blocks (in poll) until the writer writes
  EXPECT_EQ(x, '2');
  writer.join();
  ::close(a);
  ::close(b);
}

TEST_P(Hooks, HiredisBlockingClientsRunConcurrently) {
  redis_server redis;
  const int clients = static_cast<int>(scaled(1000, 200));
  const int rounds = static_cast<int>(scaled(10, 3));
  redis_result r = redis_rounds(S(), redis.port(), clients, rounds);
  EXPECT_EQ(r.failed, 0);
  EXPECT_EQ(r.correct, clients * rounds);
  // Parked in a hooked read, a tasklet lets its worker send the next command: far more are in
  // flight than there are workers (a blocked worker could not start another).
  EXPECT_GT(r.max_in_flight, static_cast<int>(workers()));
}

// ---- libcurl ---------------------------------------------------------------------------------

TEST_P(Hooks, LibcurlEasyTransfersRunConcurrently) {
  // Each transfer holds ~4 fds (its socket, the server's end, curl's wake-up pair): raise the
  // soft limit, and do fewer at once if the hard limit is low.
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  r.rlim_cur = r.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &r);
  ::getrlimit(RLIMIT_NOFILE, &r);
  const int transfers = static_cast<int>(
      std::min<rlim_t>(scaled(1000, 200), r.rlim_cur > 256 ? (r.rlim_cur - 128) / 4 : 32));
  auto l = io::tcp_listener::bind("127.0.0.1:0", 4096);
  const std::string url = "http://" + l.local_endpoint().to_string() + "/hello";
  auto server = S().spawn(http_example::accept_loop, std::ref(l));
  curl_result res = curl_transfers(S(), url, transfers, http_example::kBody);
  // The server's connection tasklets end when they read curl's close; then only the accept
  // loop waits for I/O.
  while (S().stats().io_waiting > 1) std::this_thread::sleep_for(1ms);
  server.kill();
  EXPECT_EQ(res.ok, transfers);
  EXPECT_EQ(res.failed, 0);
  // curl_easy_perform() blocks in poll(); parked there, a tasklet lets its worker start the
  // next transfer: far more in flight than workers.
  EXPECT_GT(res.max_in_flight, static_cast<int>(workers()));
}

}  // namespace
