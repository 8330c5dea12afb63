// SPDX-License-Identifier: Apache-2.0
// bench/peers/threads/echo_threads.cpp — the plain-threads peer of the echo benchmark
// (tools/bench_echo.py): a TCP echo server with one OS thread per connection, blocking
// recv()/send(). This is the code a tasklet lets you keep writing — the baseline whose cost
// (a kernel thread, its stack and a kernel context switch per wait) the runtimes avoid.
//
// Usage: peer_threads_echo [--port P] [--workers N]; as examples/echo.cpp: --port 0 picks a
// free port, the first line on stdout is "listening on 127.0.0.1:PORT" (flushed), SIGTERM or
// SIGINT ends it with exit code 0. Each connection reads what is there into a 16 KiB buffer
// and writes all of it back, with TCP_NODELAY.
//
// Workers: as in peer_threads.cpp, the process is pinned to its first N allowed CPUs
// (sched_setaffinity; 0: not pinned), the closest a thread-per-connection program gets to
// "N workers". Threads keep glibc's default stack (8 MiB of address space, resident only as
// touched), as a program that never thought about it would.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <thread>

namespace {

constexpr std::size_t kBufferSize = 16 * 1024;  // as in every server of the benchmark

void usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--port P (0: any)] [--workers N (0: all CPUs)]\n", argv0);
  std::exit(2);
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "echo_threads: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

/// pin_to_first_cpus() restricts the process to the first `count` CPUs it may run on.
void pin_to_first_cpus(unsigned long count) {
  cpu_set_t allowed, use;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) die("sched_getaffinity");
  CPU_ZERO(&use);
  unsigned long taken = 0;
  for (int c = 0; c < CPU_SETSIZE && taken < count; ++c) {
    if (CPU_ISSET(c, &allowed)) {
      CPU_SET(c, &use);
      ++taken;
    }
  }
  if (sched_setaffinity(0, sizeof use, &use) != 0) die("sched_setaffinity");
}

// serve() echoes one connection until the peer closes or resets it, then closes it.
void serve(int fd) {
  alignas(64) char buf[kBufferSize];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    // send() on a blocking socket may still write less than asked (a signal): loop.
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::send(fd, buf + done, static_cast<std::size_t>(n - done), MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        ::close(fd);
        return;
      }
      done += w;
    }
  }
  ::close(fd);
}

void accept_loop(int listen_fd) {
  for (;;) {
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      // EMFILE and friends: back off a little rather than spin, as ours does.
      std::fprintf(stderr, "echo_threads: accept: %s (retrying)\n", std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    try {
      std::thread(serve, fd).detach();
    } catch (const std::system_error& e) {
      // Out of threads (EAGAIN): refuse this connection, keep serving the others.
      std::fprintf(stderr, "echo_threads: thread: %s\n", e.what());
      ::close(fd);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  unsigned long port = 0;
  unsigned long workers = 0;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    char* end = nullptr;
    if (std::strcmp(argv[i], "--port") == 0 && has_value) {
      port = std::strtoul(argv[++i], &end, 10);
      if (*end != '\0' || port > 65535) usage(argv[0]);
    } else if (std::strcmp(argv[i], "--workers") == 0 && has_value) {
      workers = std::strtoul(argv[++i], &end, 10);
      if (*end != '\0' || workers > 1024) usage(argv[0]);
    } else {
      usage(argv[0]);
    }
  }
  if (workers > 0) pin_to_first_cpus(workers);

  // SIGTERM and SIGINT are blocked in every thread (they inherit the mask) and taken by the main
  // thread's sigwait() alone.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const int listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd < 0) die("socket");
  const int one = 1;
  ::setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind");
  if (::listen(listen_fd, 1024) != 0) die("listen");  // the backlog ours uses
  socklen_t len = sizeof addr;
  if (::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) die("getsockname");
  std::printf("listening on 127.0.0.1:%u\n", ntohs(addr.sin_port));
  std::fflush(stdout);

  std::thread(accept_loop, listen_fd).detach();
  int sig = 0;
  sigwait(&stop_signals, &sig);
  // The connection threads sit in recv() and cannot be joined; the kernel closes their sockets.
  std::_Exit(0);
}
