// SPDX-License-Identifier: Apache-2.0
// examples/http_hello.cpp — an HTTP/1.1 "Hello, World!" server with keep-alive
// (examples/http_server.hpp), one tasklet per connection: enough for wrk.
//
//   build/release/examples/stackless_http_hello [--port P] [--workers N]
//
// As examples/echo.cpp: --port 0 (the default) picks a free port, the first line on stdout is
// "listening on 127.0.0.1:PORT", --workers 0 is one per core, SIGTERM or SIGINT ends it (exit 0).
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include "http_server.hpp"

int main(int argc, char** argv) {
  unsigned long port = 0, workers = 0;
  for (int i = 1; i < argc; ++i) {
    char* end = nullptr;
    if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      port = std::strtoul(argv[++i], &end, 10);
      if (*end != '\0' || port > 65535) return std::fprintf(stderr, "bad --port\n"), 2;
    } else if (std::strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
      workers = std::strtoul(argv[++i], &end, 10);
      if (*end != '\0' || workers > 1024) return std::fprintf(stderr, "bad --workers\n"), 2;
    } else {
      std::fprintf(stderr, "usage: %s [--port P] [--workers N]\n", argv[0]);
      return 2;
    }
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);  // before the workers start: only sigwait takes them
  try {
    auto listener = stackless::io::tcp_listener::bind("127.0.0.1:" + std::to_string(port), 4096);
    stackless::scheduler sched({.workers = static_cast<unsigned>(workers)});
    std::printf("listening on %s\n", listener.local_endpoint().to_string().c_str());
    std::fflush(stdout);
    (void)sched.spawn(http_example::accept_loop, std::ref(listener));
    // With one worker nothing runs until a plain thread waits on the scheduler (single-threaded
    // mode starts no thread on its own): an empty block_on() starts the worker for good.
    sched.block_on([] {});
    int sig = 0;
    sigwait(&stop, &sig);
    sched.shutdown();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_hello: %s\n", e.what());
    return 1;
  }
  return 0;
}
