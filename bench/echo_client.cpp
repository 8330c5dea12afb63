// SPDX-License-Identifier: Apache-2.0
// bench/echo_client.cpp — the load client of the echo benchmark (tools/bench_echo.py): C
// connections to an echo server, each doing request/response ping-pong of M-byte messages
// (write M bytes, read the M bytes back, check them, repeat); it prints the messages per second.
//
//   stackless_echo_client --addr HOST:PORT [--connections C] [--msg M] [--seconds D]
//                         [--threads T] [--warmup W]
//
// Output, one line of JSON on stdout:
//   {"connections":C,"msg":M,"threads":T,"messages":N,"seconds":S,"msgs_per_s":X}
// where N is the number of round trips completed in the measured S seconds, after W seconds of
// warm-up (default 1; it also covers the server's accepting of the connections, which are all
// connected before the clock starts). Any error — a
// connection refused, reset or closed, an echo that differs from what was sent — is reported on
// stderr and the exit code is 1 (no JSON).
//
// Why it is built this way: the client must cost every server the same, so it shares no code
// with any of them — no stackless, no Asio, no Go: T plain OS threads (default 1), each running
// a raw edge-triggered epoll loop over its share of the connections. Each connection is
// registered once (EPOLLIN|EPOLLOUT|EPOLLET) and never modified, so a round trip costs the
// client one send(), one recv() and its share of an epoll_wait(). After a request is written the
// client does not try to read at once (the reply cannot be there yet); it waits for the EPOLLIN
// edge that the reply's arrival makes.
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

struct config {
  std::string host = "127.0.0.1";
  std::string port;
  long connections = 4;
  long msg = 512;
  double seconds = 3;
  double warmup = 1;
  long threads = 1;
};

void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s --addr HOST:PORT [--connections C (4)] [--msg M bytes (512)] "
               "[--seconds D (3)] [--threads T (1)] [--warmup W seconds (1)]\n",
               argv0);
  std::exit(2);
}

// ---- failure ---------------------------------------------------------------------------------
// The first error of any thread is kept and every thread stops; main() reports it.

std::atomic<bool> g_stop{false};
std::atomic<bool> g_failed{false};
std::mutex g_error_mu;
std::string g_error;

void fail(const std::string& what) {
  std::lock_guard g(g_error_mu);
  if (!g_failed.exchange(true)) g_error = what;
  g_stop.store(true);
}

std::string errno_text(const char* what, int e) {
  return std::string(what) + ": " + std::strerror(e);
}

// ---- one connection --------------------------------------------------------------------------

struct connection {
  int fd = -1;
  int id = 0;
  bool writing = true;     // sending the request; else waiting for / reading its reply
  std::size_t done = 0;    // bytes of the request sent, or of the reply read
  std::uint64_t seq = 0;   // the message in flight
  std::vector<char> sent;  // the request (what the reply must equal)
  std::vector<char> got;   // the reply so far
};

// next_message() fills the request for message `seq`: a pattern that differs per connection,
// with the sequence number at both ends, so a reply that belongs to another connection or to an
// earlier message does not pass the check.
void next_message(connection& c) {
  const std::size_t m = c.sent.size();
  if (c.seq == 0) {
    for (std::size_t i = 0; i < m; ++i)
      c.sent[i] = static_cast<char>((i * 7 + static_cast<std::size_t>(c.id) * 13) & 0xff);
  }
  const std::size_t k = std::min(m, sizeof c.seq);
  std::memcpy(c.sent.data(), &c.seq, k);
  std::memcpy(c.sent.data() + (m - k), &c.seq, k);
  c.writing = true;
  c.done = 0;
}

// drive() moves connection c as far as the socket allows without waiting; it returns the
// number of round trips completed (0 or more), or -1 after fail().
long drive(connection& c) {
  long completed = 0;
  for (;;) {
    if (c.writing) {
      while (c.done < c.sent.size()) {
        const ssize_t n =
            ::send(c.fd, c.sent.data() + c.done, c.sent.size() - c.done, MSG_NOSIGNAL);
        if (n > 0) {
          c.done += static_cast<std::size_t>(n);
        } else if (n < 0 && errno == EINTR) {
          continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          return completed;  // the EPOLLOUT edge brings us back
        } else {
          fail(errno_text(("send on connection " + std::to_string(c.id)).c_str(), errno));
          return -1;
        }
      }
      c.writing = false;
      c.done = 0;
      return completed;  // the reply cannot be there yet: wait for its EPOLLIN edge
    }
    while (c.done < c.got.size()) {
      const ssize_t n = ::recv(c.fd, c.got.data() + c.done, c.got.size() - c.done, 0);
      if (n > 0) {
        c.done += static_cast<std::size_t>(n);
      } else if (n == 0) {
        fail("connection " + std::to_string(c.id) + " closed by the server after " +
             std::to_string(c.seq) + " messages");
        return -1;
      } else if (errno == EINTR) {
        continue;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return completed;
      } else {
        fail(errno_text(("recv on connection " + std::to_string(c.id)).c_str(), errno));
        return -1;
      }
    }
    if (std::memcmp(c.got.data(), c.sent.data(), c.sent.size()) != 0) {
      fail("connection " + std::to_string(c.id) + ": the echo of message " + std::to_string(c.seq) +
           " differs from what was sent");
      return -1;
    }
    ++completed;
    ++c.seq;
    next_message(c);  // and send it at once (the loop goes on)
  }
}

// ---- the threads -----------------------------------------------------------------------------

struct alignas(64) counter {
  std::atomic<std::uint64_t> messages{0};  // written by one thread, read by main()
};

void run_loop(std::vector<connection*> conns, counter* out) {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return fail(errno_text("epoll_create1", errno));
  for (connection* c : conns) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = c;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
      ::close(ep);
      return fail(errno_text("epoll_ctl", errno));
    }
  }
  std::uint64_t total = 0;
  // The first requests go out at once; from then on the events drive everything.
  for (connection* c : conns) {
    const long n = drive(*c);
    if (n < 0) break;
    total += static_cast<std::uint64_t>(n);
  }
  std::vector<epoll_event> events(std::max<std::size_t>(conns.size(), 1));
  while (!g_stop.load(std::memory_order_relaxed)) {
    // A timeout, so that a stop is seen even if every connection is stuck.
    const int k = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 50);
    if (k < 0) {
      if (errno == EINTR) continue;
      fail(errno_text("epoll_wait", errno));
      break;
    }
    for (int i = 0; i < k; ++i) {
      const long n = drive(*static_cast<connection*>(events[i].data.ptr));
      if (n < 0) break;
      total += static_cast<std::uint64_t>(n);
    }
    out->messages.store(total, std::memory_order_relaxed);
  }
  ::close(ep);
}

int connect_to(const addrinfo* ai) {
  const int fd = ::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  // Blocking connect: on loopback it completes as soon as the kernel has done the handshake
  // (the server's backlog holds the connection until it accepts).
  if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
    const int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  const int one = 1;
  // Each request is one small write followed by a wait for the reply: no Nagle delay.
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  bool have_addr = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage(argv[0]);
    const std::string v = argv[++i];
    char* end = nullptr;
    if (a == "--addr") {
      const auto colon = v.rfind(':');
      if (colon == std::string::npos || colon + 1 == v.size()) usage(argv[0]);
      cfg.host = v.substr(0, colon);
      if (cfg.host.size() >= 2 && cfg.host.front() == '[' && cfg.host.back() == ']')
        cfg.host = cfg.host.substr(1, cfg.host.size() - 2);
      cfg.port = v.substr(colon + 1);
      have_addr = true;
    } else if (a == "--connections") {
      cfg.connections = std::strtol(v.c_str(), &end, 10);
    } else if (a == "--msg") {
      cfg.msg = std::strtol(v.c_str(), &end, 10);
    } else if (a == "--seconds") {
      cfg.seconds = std::strtod(v.c_str(), &end);
    } else if (a == "--warmup") {
      cfg.warmup = std::strtod(v.c_str(), &end);
    } else if (a == "--threads") {
      cfg.threads = std::strtol(v.c_str(), &end, 10);
    } else {
      usage(argv[0]);
    }
    if (end && *end != '\0') usage(argv[0]);
  }
  if (!have_addr || cfg.connections < 1 || cfg.msg < 1 || cfg.seconds <= 0 || cfg.warmup < 0 ||
      cfg.threads < 1)
    usage(argv[0]);
  if (cfg.threads > cfg.connections) cfg.threads = cfg.connections;

  // A thousand connections need a thousand fds: take the hard limit.
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (const int rc = ::getaddrinfo(cfg.host.c_str(), cfg.port.c_str(), &hints, &res); rc != 0) {
    std::fprintf(stderr, "echo_client: resolve %s:%s: %s\n", cfg.host.c_str(), cfg.port.c_str(),
                 ::gai_strerror(rc));
    return 1;
  }

  std::vector<std::unique_ptr<connection>> conns;
  for (long i = 0; i < cfg.connections; ++i) {
    auto c = std::make_unique<connection>();
    c->id = static_cast<int>(i);
    c->fd = connect_to(res);  // the first address getaddrinfo gives
    if (c->fd < 0) {
      std::fprintf(stderr, "echo_client: connect %s:%s (connection %ld): %s\n", cfg.host.c_str(),
                   cfg.port.c_str(), i, std::strerror(errno));
      return 1;
    }
    c->sent.resize(static_cast<std::size_t>(cfg.msg));
    c->got.resize(static_cast<std::size_t>(cfg.msg));
    next_message(*c);
    conns.push_back(std::move(c));
  }
  ::freeaddrinfo(res);

  // Connections are dealt round-robin to the threads.
  std::vector<std::vector<connection*>> share(static_cast<std::size_t>(cfg.threads));
  for (std::size_t i = 0; i < conns.size(); ++i) share[i % share.size()].push_back(conns[i].get());
  std::vector<counter> counters(share.size());
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < share.size(); ++t)
    threads.emplace_back(run_loop, share[t], &counters[t]);

  auto total = [&] {
    std::uint64_t n = 0;
    for (const counter& c : counters) n += c.messages.load(std::memory_order_relaxed);
    return n;
  };
  using dsec = std::chrono::duration<double>;
  std::this_thread::sleep_for(dsec(cfg.warmup));
  const std::uint64_t n0 = total();
  const auto t0 = clock_type::now();
  std::this_thread::sleep_for(dsec(cfg.seconds));
  const std::uint64_t n1 = total();
  const double elapsed = dsec(clock_type::now() - t0).count();
  g_stop.store(true);
  for (std::thread& t : threads) t.join();
  for (auto& c : conns) ::close(c->fd);

  if (g_failed.load()) {
    std::fprintf(stderr, "echo_client: %s\n", g_error.c_str());
    return 1;
  }
  if (n1 == 0) {
    std::fprintf(stderr, "echo_client: no message completed\n");
    return 1;
  }
  std::printf(
      "{\"connections\":%ld,\"msg\":%ld,\"threads\":%ld,\"messages\":%llu,\"seconds\":%.3f,"
      "\"msgs_per_s\":%.1f}\n",
      cfg.connections, cfg.msg, cfg.threads, static_cast<unsigned long long>(n1 - n0), elapsed,
      static_cast<double>(n1 - n0) / elapsed);
  return 0;
}
