// SPDX-License-Identifier: Apache-2.0
// test_sockets.cpp — stackless::io over real loopback sockets, workers ∈ {1, 2, 4}: echo with
// every byte checked, partial writes, half-close, peer reset, a connect refused, timeouts, stop
// tokens, kill and close of a tasklet blocked in a socket call, plain-thread clients, UDP, unix
// sockets, fds the caller owns, many idle connections costing no CPU, and shutdown with
// connections open. Every test ends with no tasklet live, no stack held and no fd registered.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "fixture.hpp"
#include "stackless/io.hpp"

namespace {

using namespace stackless_test;
namespace io = stackless::io;
using namespace std::chrono_literals;

class Sockets : public runtime_test {
 protected:
  void TearDown() override {
    if (has_sched()) {
      auto st = sched().stats();
      EXPECT_EQ(st.io_waiting, 0u) << "a tasklet is still registered as waiting for I/O";
    }
    runtime_test::TearDown();
  }
  bool has_sched() const { return started_; }
  sl::scheduler& S() {
    started_ = true;
    return sched();
  }

 private:
  bool started_ = false;
};
STACKLESS_INSTANTIATE_WORKERS(Sockets);

std::span<std::byte> bytes(std::string& s) {
  return {reinterpret_cast<std::byte*>(s.data()), s.size()};
}

std::string pattern(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + seed) % 26);
  return s;
}

// open_fds() is how many fds this process has open.
int open_fds() {
  int n = 0;
  for (int fd = 0; fd < 65536; ++fd)
    if (::fcntl(fd, F_GETFD) >= 0) ++n;
  return n;
}

// ---- echo ------------------------------------------------------------------------------------

TEST_P(Sockets, EchoEveryByteToManyClientsExactlyOnce) {
  const int clients = static_cast<int>(scaled(64, 16));
  const int rounds = static_cast<int>(scaled(20, 5));
  const int fds_before = open_fds();
  S().block_on([&] {
    auto l = io::tcp_listener::bind("127.0.0.1:0");
    const std::string addr = l.local_endpoint().to_string();
    std::atomic<int> served{0};
    auto server = sl::spawn([&] {
      std::vector<sl::tasklet<void>> conns;
      for (int i = 0; i < clients; ++i) {
        conns.push_back(sl::spawn(
            [&served](io::tcp_stream s) {
              char buf[4096];
              for (;;) {
                std::size_t n = s.read_some(std::as_writable_bytes(std::span(buf)));
                if (n == 0) break;
                s.write_all(std::string_view(buf, n));
              }
              served.fetch_add(1);
            },
            l.accept()));
      }
      for (auto& c : conns) c.join();
    });
    std::vector<sl::tasklet<std::size_t>> cs;
    for (int c = 0; c < clients; ++c) {
      cs.push_back(sl::spawn([&, c] {
        auto s = io::tcp_stream::connect(addr);
        s.set_nodelay();
        std::size_t checked = 0;
        for (int r = 0; r < rounds; ++r) {
          std::string msg = pattern(1 + static_cast<std::size_t>((c * 131 + r * 977) % 20000),
                                    static_cast<unsigned>(c + r));
          s.write_all(msg);
          std::string back(msg.size(), '\0');
          s.read_exact(bytes(back));
          EXPECT_EQ(back, msg) << "client " << c << " round " << r;
          checked += back.size();
        }
        s.shutdown();
        std::string rest(1, '\0');
        EXPECT_EQ(s.read_some(bytes(rest)), 0u);  // the server closes after our half-close
        return checked;
      }));
    }
    std::size_t total = 0;
    for (auto& t : cs) total += t.join();
    server.join();
    EXPECT_EQ(served.load(), clients);
    EXPECT_GT(total, 0u);
  });
  EXPECT_EQ(S().stats().io_registered, 0u);
  EXPECT_EQ(open_fds(), fds_before + 2);  // + the netpoller's epoll set and eventfd
}

TEST_P(Sockets, WritesLargerThanTheSocketBufferArriveWhole) {
  const std::size_t size = scaled(2u << 20, 512u << 10);
  S().block_on([&] {
    auto l = io::tcp_listener::bind("127.0.0.1:0");
    const std::string addr = l.local_endpoint().to_string();
    const std::string data = pattern(size, 3);
    auto writer = sl::spawn([&] {
      auto s = l.accept();
      s.set_option(SOL_SOCKET, SO_SNDBUF, 4096);
      s.write_all(data);  // many partial writes, each after a wait for writability
    });
    auto s = io::tcp_stream::connect(addr);
    std::string got;
    char buf[1000];  // small reads: the writer keeps filling the buffer
    while (got.size() < size) {
      std::size_t n = s.read_some(std::as_writable_bytes(std::span(buf)));
      ASSERT_GT(n, 0u);
      got.append(buf, n);
    }
    writer.join();
    EXPECT_TRUE(got == data);
  });
}

TEST_P(Sockets, HalfCloseLetsThePeerFinishItsReply) {
  S().block_on([&] {
    auto l = io::tcp_listener::bind("127.0.0.1:0");
    auto server = sl::spawn([&] {
      auto s = l.accept();
      std::string all;
      char buf[256];
      while (std::size_t n = s.read_some(std::as_writable_bytes(std::span(buf))))
        all.append(buf, n);
      s.write_all("got " + std::to_string(all.size()));
    });
    auto c = io::tcp_stream::connect(l.local_endpoint().to_string());
    c.write_all(std::string(1000, 'x'));
    c.shutdown(SHUT_WR);
    std::string reply(8, '\0');
    c.read_exact(bytes(reply));
    EXPECT_EQ(reply, "got 1000");
    std::string more(1, '\0');
    EXPECT_EQ(c.read_some(bytes(more)), 0u);
    server.join();
  });
}

// ---- errors ----------------------------------------------------------------------------------

TEST_P(Sockets, ConnectToAClosedPortNamesTheEndpoint) {
  S().block_on([] {
    std::string addr;
    {
      auto l = io::tcp_listener::bind("127.0.0.1:0");
      addr = l.local_endpoint().to_string();
    }  // closed: nothing listens there now
    try {
      io::tcp_stream::connect(addr);
      ADD_FAILURE() << "connect succeeded";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::connection_refused);
      EXPECT_NE(std::string(e.what()).find("connect " + addr), std::string::npos) << e.what();
    }
  });
}

TEST_P(Sockets, BadAddressesAndNamesAreClearErrors) {
  S().block_on([] {
    EXPECT_THROW(io::tcp_stream::connect("127.0.0.1"), std::invalid_argument);
    EXPECT_THROW(io::tcp_stream::connect("127.0.0.1:99999"), std::invalid_argument);
    EXPECT_THROW(io::endpoint::parse("localhost:80"), std::invalid_argument);
    try {
      io::resolve("localhost", "no-such-service-name");
      ADD_FAILURE() << "resolved a service that does not exist";
    } catch (const std::system_error& e) {
      EXPECT_NE(std::string(e.what()).find("resolve localhost:no-such-service-name"),
                std::string::npos)
          << e.what();
    }
    auto eps = io::resolve("localhost", "80");  // /etc/hosts, on the blocking pool
    ASSERT_FALSE(eps.empty());
    EXPECT_EQ(eps.front().port(), 80);
  });
}

TEST_P(Sockets, PeerResetMidReadAndMidWriteAreErrorsNotSignals) {
  S().block_on([&] {
    auto l = io::tcp_listener::bind("127.0.0.1:0");
    const std::string addr = l.local_endpoint().to_string();
    // Mid-read: the peer aborts (SO_LINGER 0: RST) while we wait for more.
    auto resetter = sl::spawn([&] {
      auto s = l.accept();
      s.write_all("partial");
      ::linger lg{1, 0};
      ::setsockopt(s.native_handle(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      sl::this_tasklet::sleep_for(20ms);
      s.close();
    });
    auto c = io::tcp_stream::connect(addr);
    std::string buf(100, '\0');
    try {
      c.read_exact(bytes(buf));
      ADD_FAILURE() << "read_exact of 100 bytes succeeded";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::connection_reset) << e.what();
    } catch (const io::end_of_stream& e) {
      EXPECT_EQ(e.bytes_read(), 7u);  // the reset may be seen as an end after the data
    }
    resetter.join();
    // Mid-write: the peer closes; our writes fail with EPIPE/ECONNRESET, and no SIGPIPE kills us.
    // (The connect itself may already see the reset: the peer can close before our connect
    // learns it completed.)
    auto closer = sl::spawn([&] { l.accept().close(); });
    const std::string big(1 << 20, 'y');
    try {
      auto w = io::tcp_stream::connect(addr);
      closer.join();
      for (int i = 0; i < 64; ++i) w.write_all(big);
      ADD_FAILURE() << "64 MiB written to a closed peer";
    } catch (const std::system_error& e) {
      EXPECT_TRUE(e.code() == std::errc::broken_pipe || e.code() == std::errc::connection_reset)
          << e.what();
    }
    if (closer.alive()) closer.join();
  });
}

TEST_P(Sockets, AnOwnTimeoutIsTimedOutAndTheStreamStillWorks) {
  S().block_on([&] {
    auto l = io::tcp_listener::bind("127.0.0.1:0");
    auto c = io::tcp_stream::connect(l.local_endpoint().to_string());
    auto s = l.accept();
    std::string buf(4, '\0');
    try {
      c.read_some_for(bytes(buf), 30ms);
      ADD_FAILURE() << "read of a silent stream returned";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::timed_out);
      EXPECT_NE(std::string(e.what()).find("read 127.0.0.1:"), std::string::npos) << e.what();
    }
    s.write_all("pong");
    c.read_exact_for(bytes(buf), 60s);
    EXPECT_EQ(buf, "pong");
    EXPECT_THROW(l.accept_for(10ms), std::system_error);
  });
}

TEST_P(Sockets, TimeoutScopeAndStopTokenEndAWait) {
  S().block_on([&] {
    auto l = io::tcp_listener::bind("127.0.0.1:0");
    auto c = io::tcp_stream::connect(l.local_endpoint().to_string());
    auto s = l.accept();
    std::string buf(4, '\0');
    {
      sl::timeout_scope scope(20ms);
      try {
        c.read_some(bytes(buf));
        ADD_FAILURE() << "read returned inside an expired scope";
      } catch (const sl::timeout_error& e) {
        EXPECT_TRUE(e.from(scope));
      }
    }
    std::stop_source src;
    auto stopper = sl::spawn([&] {
      sl::this_tasklet::sleep_for(10ms);
      src.request_stop();
    });
    EXPECT_THROW(c.read_some(bytes(buf), src.get_token()), sl::operation_cancelled);
    stopper.join();
    s.write_all("data");  // nothing was consumed by the abandoned waits
    c.read_exact(bytes(buf));
    EXPECT_EQ(buf, "data");
  });
}

TEST_P(Sockets, KillingATaskletBlockedInEachCallEndsItAndLeavesNoRegistration) {
  auto l = std::make_unique<io::tcp_listener>();
  std::string addr;
  S().block_on([&] {
    *l = io::tcp_listener::bind("127.0.0.1:0");
    addr = l->local_endpoint().to_string();
  });
  auto c = std::make_unique<io::tcp_stream>();
  auto srv = std::make_unique<io::tcp_stream>();
  S().block_on([&] {
    *c = io::tcp_stream::connect(addr);
    *srv = l->accept();
    srv->set_option(SOL_SOCKET, SO_RCVBUF, 4096);
    c->set_option(SOL_SOCKET, SO_SNDBUF, 4096);
  });
  std::vector<sl::tasklet<void>> blocked;
  blocked.push_back(S().spawn([&] { (void)l->accept(); }));
  // A reader of c (srv never writes) and a writer to c (srv never reads): both stay blocked.
  blocked.push_back(S().spawn([&] {
    std::string b(10, '\0');
    (void)c->read_some(bytes(b));
  }));
  blocked.push_back(S().spawn([&] { c->write_all(std::string(8 << 20, 'z')); }));
  ASSERT_TRUE(wait_until([&] { return S().stats().io_waiting == 3; })) << "3 blocked in I/O";
  for (auto& t : blocked) t.kill();
  for (auto& t : blocked) {
    t.join();  // a killed tasklet's join returns (it ended by tasklet_exit)
    EXPECT_FALSE(t.alive());
  }
  EXPECT_EQ(S().stats().io_waiting, 0u);
  S().block_on([&] {
    c->close();
    srv->close();
    l->close();
  });
  EXPECT_EQ(S().stats().io_registered, 0u);
}

TEST_P(Sockets, ClosingAStreamAnotherTaskletReadsWakesItWithEbadf) {
  S().block_on([&] {
    auto [a, b] = io::unix_stream::pair();
    auto reader = sl::spawn([&a = a] {
      std::string buf(4, '\0');
      try {
        a.read_some(std::as_writable_bytes(std::span(buf)));
        return 0;
      } catch (const std::system_error& e) {
        return e.code().value();
      }
    });
    ASSERT_TRUE(yield_until([&] { return S().stats().io_waiting == 1; })) << "reader parked";
    a.close();
    EXPECT_EQ(reader.join(), EBADF);
  });
}

// ---- plain threads, UDP, unix sockets, fds the caller owns -----------------------------------

TEST_P(Sockets, PlainThreadClientsTalkToATaskletServer) {
  const int threads = 4;
  auto l = std::make_unique<io::tcp_listener>(io::tcp_listener::bind("127.0.0.1:0"));
  const std::string addr = l->local_endpoint().to_string();
  auto server = S().spawn([&] {
    std::vector<sl::tasklet<void>> conns;
    for (int i = 0; i < threads; ++i)
      conns.push_back(sl::spawn(
          [](io::tcp_stream s) {
            char buf[512];
            while (std::size_t n = s.read_some(std::as_writable_bytes(std::span(buf))))
              s.write_all(std::string_view(buf, n));
          },
          l->accept()));
    for (auto& c : conns) c.join();
  });
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int i = 0; i < threads; ++i)
    ts.emplace_back([&, i] {
      auto s = io::tcp_stream::connect(addr);  // a plain thread: blocks in ppoll
      for (int r = 0; r < 50; ++r) {
        std::string msg = pattern(100 + static_cast<std::size_t>(r), static_cast<unsigned>(i));
        s.write_all(msg);
        std::string back(msg.size(), '\0');
        s.read_exact(bytes(back));
        if (back == msg) ok.fetch_add(1);
      }
      std::string x(1, '\0');
      EXPECT_THROW(s.read_some_for(bytes(x), 10ms), std::system_error);
    });
  for (auto& t : ts) t.join();
  // The connection tasklets end when the clients' streams close, and the server with them.
  // (Killing it instead would leave them to end on their own, perhaps after TearDown looks.)
  server.join();
  EXPECT_EQ(ok.load(), threads * 50);
  S().block_on([&] { l->close(); });
}

TEST_P(Sockets, UdpDatagramsRoundTrip) {
  S().block_on([] {
    auto a = io::udp_socket::bind("127.0.0.1:0");
    auto b = io::udp_socket::bind("127.0.0.1:0");
    const auto to_b = b.local_endpoint();
    auto echo = sl::spawn([&] {
      char buf[2048];
      for (int i = 0; i < 10; ++i) {
        auto [n, from] = b.receive_from(std::as_writable_bytes(std::span(buf)));
        b.send_to(std::as_bytes(std::span(buf, n)), from);
      }
    });
    for (int i = 0; i < 10; ++i) {
      std::string msg = "datagram " + std::to_string(i);
      a.send_to(io::stream::as_bytes(msg), to_b);
      char buf[2048];
      auto [n, from] = a.receive_from_for(std::as_writable_bytes(std::span(buf)), 30s);
      EXPECT_EQ(std::string(buf, n), msg);
      EXPECT_EQ(from, to_b);
    }
    echo.join();
  });
}

TEST_P(Sockets, UnixListenerAndStream) {
  const std::string path =
      "@stackless-test-" + std::to_string(::getpid()) + "-" + std::to_string(workers());
  S().block_on([&] {
    auto l = io::unix_listener::bind(path);
    auto server = sl::spawn([&] {
      auto s = l.accept();
      std::string b(5, '\0');
      s.read_exact(std::as_writable_bytes(std::span(b)));
      s.write_all(b + "!");
    });
    auto c = io::unix_stream::connect(path);
    c.write_all("hello");
    std::string r(6, '\0');
    c.read_exact(std::as_writable_bytes(std::span(r)));
    EXPECT_EQ(r, "hello!");
    server.join();
  });
}

TEST_P(Sockets, WaitReadableOnAPipeTheCallerOwns) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  S().block_on([&] {
    auto writer = sl::spawn([&] {
      sl::this_tasklet::sleep_for(10ms);
      ASSERT_EQ(::write(p[1], "x", 1), 1);
    });
    EXPECT_FALSE(io::wait_readable_for(p[0], 1ms) && false);  // may or may not be ready yet
    io::wait_readable(p[0]);
    char c = 0;
    EXPECT_EQ(::read(p[0], &c, 1), 1);
    EXPECT_EQ(c, 'x');
    EXPECT_FALSE(io::wait_readable_for(p[0], 5ms));  // nothing more: a timeout is false
    io::wait_writable(p[1]);
    writer.join();
  });
  ::close(p[0]);
  ::close(p[1]);
  EXPECT_EQ(S().stats().io_registered, 0u);
}

// ---- many connections ------------------------------------------------------------------------

// raise_fd_limit(): the soft RLIMIT_NOFILE up to the hard one; returns the soft limit now.
rlim_t raise_fd_limit() {
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  r.rlim_cur = r.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &r);
  ::getrlimit(RLIMIT_NOFILE, &r);
  return r.rlim_cur;
}

double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

TEST_P(Sockets, ManyIdleConnectionsCostNoCpuAndShutdownEndsThem) {
  const rlim_t limit = raise_fd_limit();
  std::size_t want = scaled(10'000, 1'000, 250);  // TSan: a ThreadState per connection tasklet
  if (2 * want + 64 > limit) want = (limit - 64) / 2;
  auto l = std::make_unique<io::tcp_listener>(io::tcp_listener::bind("127.0.0.1:0"));
  const std::string addr = l->local_endpoint().to_string();
  std::vector<io::tcp_stream> clients;  // plain-thread side: connected, silent
  clients.reserve(want);
  std::atomic<std::size_t> accepted{0};
  auto acceptor = S().spawn([&] {
    for (std::size_t i = 0; i < want; ++i) {
      (void)sl::spawn(  // detached: the handle is dropped
          [](io::tcp_stream s) {
            char b[16];
            (void)s.read_some(std::as_writable_bytes(std::span(b)));  // parks until shutdown
          },
          l->accept());
      accepted.fetch_add(1);
    }
  });
  for (std::size_t i = 0; i < want; ++i) clients.push_back(io::tcp_stream::connect(addr));
  acceptor.join();
  ASSERT_TRUE(wait_until([&] { return S().stats().io_waiting == want; }))
      << "every connection's reader parked: " << S().stats().io_waiting << " of " << want;
  const double before = cpu_seconds();
  std::this_thread::sleep_for(500ms);
  const double used = cpu_seconds() - before;
  EXPECT_LT(used, 0.1) << "CPU seconds burnt in 0.5 s by an idle scheduler with " << want
                       << " idle connections";
  // Shutdown kills the parked readers: no tasklet, stack or wait remains (TearDown checks).
  sched().shutdown();
  EXPECT_EQ(sched().stats().io_waiting, 0u);
  clients.clear();
  l.reset();
}

// ---- waits for I/O are not deadlocks ---------------------------------------------------------

TEST_P(Sockets, ATaskletWaitingForIoIsNotADeadlock) {
  sl::options o = opts();
  o.deadlock_grace = 50ms;
  sched(o);
  S();
  auto [a, b] = io::unix_stream::pair();
  auto reader = sched().spawn([&a = a] {
    std::string buf(2, '\0');
    a.read_exact(std::as_writable_bytes(std::span(buf)));
    return buf;
  });
  std::this_thread::sleep_for(300ms);  // six grace periods with every worker idle
  b.write_all("ok");                   // a plain thread writes
  EXPECT_EQ(reader.join(), "ok");
}

}  // namespace
