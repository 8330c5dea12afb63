// SPDX-License-Identifier: Apache-2.0
// examples/echo.cpp — a TCP echo server on stackless::io, one tasklet per connection: the
// "ours" side of the echo benchmark (issue 15 §5, tools/bench_echo.py), and the shortest
// program that shows what the io component is for — code written as if every call blocked, run
// by a few worker threads.
//
//   build/release/examples/stackless_echo [--port P] [--workers N]
//
// --port 0 (the default) picks a free port; either way the first line on stdout is
// "listening on 127.0.0.1:PORT" (flushed, so a script can read it through a pipe). --workers 0
// (the default) is one worker per core. The server runs until SIGTERM or SIGINT, then exits 0.
//
// The peers that tools/bench_echo.py runs against it (bench/peers/go_echo, bench/peers/asio,
// bench/peers/threads/echo_threads.cpp) take the same arguments, print the same line and echo
// the same way: read what is there (at most 16 KiB), write all of it back.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <span>
#include <stackless/stackless.hpp>
#include <string>
#include <system_error>

#include "server_main.hpp"

namespace {

namespace io = stackless::io;
using namespace std::chrono_literals;

// Every server of the benchmark reads into a buffer of this size.
constexpr std::size_t kBufferSize = 16 * 1024;

// serve() echoes one connection until the peer closes it. It runs in its own tasklet: read_some()
// and write_all() park only this tasklet, so a thousand connections cost a thousand small stacks,
// not a thousand threads.
void serve(io::tcp_stream s) {
  try {
    // A request/response client waits for every reply: without TCP_NODELAY, Nagle's algorithm
    // would hold back a short reply until the previous one is acknowledged.
    s.set_nodelay();
    // On the tasklet's stack: only the pages a read touches become resident.
    std::array<std::byte, kBufferSize> buf;
    for (;;) {
      const std::size_t n = s.read_some(buf);
      if (n == 0) return;  // the client closed its side
      s.write_all(std::span<const std::byte>(buf.data(), n));
    }
  } catch (const std::system_error&) {
    // A reset connection (the load client killed mid-run) ends only this connection, quietly:
    // escaping the tasklet would print a line per connection through options::on_error.
  }
}

// accept_loop() takes connections for as long as the process lives, each into a new tasklet.
void accept_loop(io::tcp_listener& listener) {
  for (;;) {
    try {
      // The handle is dropped at once: the tasklet is detached and ends with its connection.
      (void)stackless::spawn(serve, listener.accept());
    } catch (const std::system_error& e) {
      // EMFILE and friends: the pending connection stays queued, so wait a little for a
      // connection to end (and free its fd) rather than spinning on the same error.
      std::fprintf(stderr, "echo: %s (retrying)\n", e.what());
      stackless::this_tasklet::sleep_for(10ms);
    }
  }
}

}  // namespace

int main(int argc, char** argv) { return example::serve_main(argc, argv, "echo", accept_loop); }
