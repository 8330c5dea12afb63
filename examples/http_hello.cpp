// SPDX-License-Identifier: Apache-2.0
// examples/http_hello.cpp — an HTTP/1.1 "Hello, World!" server with keep-alive
// (examples/http_server.hpp), one tasklet per connection: enough for wrk.
//
//   build/release/examples/stackless_http_hello [--port P] [--workers N]
//
// As examples/echo.cpp: --port 0 (the default) picks a free port, the first line on stdout is
// "listening on 127.0.0.1:PORT", --workers 0 is one per core, SIGTERM or SIGINT ends it (exit 0).
#include "http_server.hpp"
#include "server_main.hpp"

int main(int argc, char** argv) {
  return example::serve_main(argc, argv, "http_hello", http_example::accept_loop, 4096);
}
