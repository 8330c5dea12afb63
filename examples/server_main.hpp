// SPDX-License-Identifier: Apache-2.0
// examples/server_main.hpp — the main() of the server examples (echo, http_hello, chat):
// `--port P` (0, the default: any free port) and `--workers N` (0, the default: one per core);
// the first line on stdout is "listening on 127.0.0.1:PORT" (flushed, for scripts reading a
// pipe); SIGTERM or SIGINT stops the server, which exits 0.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <stackless/stackless.hpp>
#include <string>

namespace example {

// serve_main() runs serve(listener) in a tasklet until a stop signal; returns main's status.
inline int serve_main(int argc, char** argv, const char* name,
                      void (*serve)(stackless::io::tcp_listener&), int backlog = 1024) {
  unsigned long port = 0, workers = 0;
  for (int i = 1; i < argc; ++i) {
    char* end = nullptr;
    const bool has_value = i + 1 < argc;
    if (std::strcmp(argv[i], "--port") == 0 && has_value) {
      port = std::strtoul(argv[++i], &end, 10);
      if (*end != '\0' || port > 65535) return std::fprintf(stderr, "%s: bad --port\n", name), 2;
    } else if (std::strcmp(argv[i], "--workers") == 0 && has_value) {
      workers = std::strtoul(argv[++i], &end, 10);
      if (*end != '\0' || workers > 1024)
        return std::fprintf(stderr, "%s: bad --workers\n", name), 2;
    } else {
      std::fprintf(stderr, "usage: %s [--port P (0: any)] [--workers N (0: one per core)]\n",
                   argv[0]);
      return 2;
    }
  }
  // SIGTERM and SIGINT are blocked before the scheduler starts its workers (threads inherit the
  // mask), so only this thread's sigwait() below ever takes them: no handler runs on a worker in
  // the middle of a tasklet.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  try {
    // Bound here, on the main thread, so that a bad port fails before anything runs and the
    // address is known before it is printed.
    auto listener = stackless::io::tcp_listener::bind("127.0.0.1:" + std::to_string(port), backlog);
    stackless::scheduler sched({.workers = static_cast<unsigned>(workers)});
    std::printf("listening on %s\n", listener.local_endpoint().to_string().c_str());
    std::fflush(stdout);
    (void)sched.spawn(serve, std::ref(listener));
    // With one worker nothing runs until a plain thread waits on the scheduler (single-threaded
    // mode starts no thread on its own): an empty block_on() starts the worker for good.
    sched.block_on([] {});
    int sig = 0;
    sigwait(&stop, &sig);
    // shutdown() kills every tasklet — the accept loop and each connection, parked in accept()
    // or a read — and joins the workers; the sockets close as their tasklets unwind.
    sched.shutdown();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
  return 0;
}

}  // namespace example
