// SPDX-License-Identifier: Apache-2.0
// bench/peers/asio/echo_asio.cpp — the Boost.Asio peer of the echo benchmark
// (tools/bench_echo.py): a TCP echo server written with C++20 coroutines (co_await on
// asio::awaitable), the stackless alternative to ours — the same straight-line code per
// connection, but every function that may wait must itself be a coroutine.
//
// Usage: peer_asio_echo [--port P] [--workers N]; as examples/echo.cpp: --port 0 picks a free
// port, the first line on stdout is "listening on 127.0.0.1:PORT" (flushed), SIGTERM or SIGINT
// ends it with exit code 0. Each connection reads what is there into a 16 KiB buffer (in its
// coroutine frame) and writes all of it back, with TCP_NODELAY.
//
// Threads: ONE io_context run by N threads (--workers N; 0: one per core) — Asio's thread-pool
// model, where any thread may resume any connection, the nearest to a work-stealing runtime and
// to Go. (The other common model, an io_context per thread with connections dealt round-robin,
// never moves a connection and shares no queue; at N = 1 the two are the same program.)
// Header-only Asio from Boost (Debian's libboost-dev), no Boost library linked.
#include <signal.h>

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>: it must come
// first (kept out of the sorted block below).
// clang-format off
#include <utility>
// clang-format on

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

constexpr std::size_t kBufferSize = 16 * 1024;  // as in every server of the benchmark

void usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--port P (0: any)] [--workers N (0: one per core)]\n", argv0);
  std::exit(2);
}

// serve() echoes one connection until the peer closes it. Asio reports the end of the stream
// (and a reset) as an exception through use_awaitable: it ends only this coroutine.
asio::awaitable<void> serve(tcp::socket s) {
  try {
    s.set_option(tcp::no_delay(true));
    std::array<char, kBufferSize> buf;
    for (;;) {
      const std::size_t n = co_await s.async_read_some(asio::buffer(buf), asio::use_awaitable);
      co_await asio::async_write(s, asio::buffer(buf.data(), n), asio::use_awaitable);
    }
  } catch (const std::exception&) {
  }
}

// accept_loop() takes connections for as long as the process lives, each into its own
// coroutine on the shared io_context.
asio::awaitable<void> accept_loop(tcp::acceptor& acceptor) {
  for (;;) {
    boost::system::error_code ec;
    tcp::socket s = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) {
      asio::co_spawn(acceptor.get_executor(), serve(std::move(s)), asio::detached);
      continue;
    }
    // EMFILE and friends: back off a little rather than spin, as ours does.
    std::fprintf(stderr, "echo_asio: accept: %s (retrying)\n", ec.message().c_str());
    asio::steady_timer t(acceptor.get_executor(), std::chrono::milliseconds(10));
    co_await t.async_wait(asio::use_awaitable);
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
  if (workers == 0) workers = std::max(1u, std::thread::hardware_concurrency());

  try {
    // The concurrency hint tells Asio how many threads will run the context (1: it may skip
    // the locking of its queues).
    asio::io_context ctx(static_cast<int>(workers));
    tcp::acceptor acceptor(ctx);
    const tcp::endpoint ep(asio::ip::make_address_v4("127.0.0.1"),
                           static_cast<unsigned short>(port));
    acceptor.open(ep.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen(1024);  // the backlog ours uses (tcp_listener::bind's default)
    std::printf("listening on 127.0.0.1:%u\n", acceptor.local_endpoint().port());
    std::fflush(stdout);

    // A stop signal stops the context: every thread's run() returns, and the coroutines still
    // suspended are destroyed with it (their sockets close).
    asio::signal_set stop(ctx, SIGTERM, SIGINT);
    stop.async_wait([&ctx](const boost::system::error_code&, int) { ctx.stop(); });
    asio::co_spawn(ctx, accept_loop(acceptor), asio::detached);

    std::vector<std::thread> threads;
    for (unsigned long t = 1; t < workers; ++t) threads.emplace_back([&ctx] { ctx.run(); });
    ctx.run();  // the main thread is the first of the N
    for (std::thread& t : threads) t.join();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_asio: %s\n", e.what());
    return 1;
  }
  return 0;
}
