// SPDX-License-Identifier: Apache-2.0
// examples/http_server.hpp — the smallest useful HTTP/1.1 server on stackless::io: one tasklet
// per connection, keep-alive, pipelined requests answered in one write, "Hello, World!" to
// every GET. examples/http_hello.cpp runs it (and tools/bench_http.py loads it with wrk);
// tests/hooks/test_hooks.cpp serves libcurl from it.
//
// It reads what arrives into a buffer, answers every complete request in it (a request ends at
// its blank line; a Content-Length body is skipped), and keeps the connection until the client
// closes it or asks to ("Connection: close", or HTTP/1.0 without "keep-alive"). A request head
// larger than the buffer, or a malformed one, gets a 400 and the connection is closed.
#pragma once

#include <algorithm>
#include <array>
#include <cctype>
#include <cstddef>
#include <cstdlib>
#include <stackless/stackless.hpp>
#include <string>
#include <string_view>
#include <system_error>

namespace http_example {

namespace io = stackless::io;

inline constexpr std::string_view kBody = "Hello, World!";

// header_value() is the value of header `name` (case-insensitive) in `head`, or empty.
inline std::string_view header_value(std::string_view head, std::string_view name) {
  std::size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    std::size_t start = pos + 2;
    std::size_t end = head.find("\r\n", start);
    if (end == std::string_view::npos) end = head.size();
    std::string_view line = head.substr(start, end - start);
    if (line.size() > name.size() && line[name.size()] == ':' &&
        std::equal(name.begin(), name.end(), line.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      std::string_view v = line.substr(name.size() + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      return v;
    }
    pos = end;
  }
  return {};
}

inline bool contains_token(std::string_view v, std::string_view token) {
  std::string lower(v);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower.find(token) != std::string::npos;
}

// serve_connection() answers requests on `c` until either side is done.
inline void serve_connection(io::tcp_stream c) {
  try {
    c.set_nodelay();
    std::array<char, 16384> buf;
    std::size_t have = 0;
    std::string out;
    for (;;) {
      std::size_t n =
          c.read_some(std::as_writable_bytes(std::span(buf.data() + have, buf.size() - have)));
      if (n == 0) return;  // the client closed
      have += n;
      bool close_after = false;
      std::size_t used = 0;
      out.clear();
      for (;;) {
        std::string_view rest(buf.data() + used, have - used);
        std::size_t end = rest.find("\r\n\r\n");
        if (end == std::string_view::npos) break;
        std::string_view head = rest.substr(0, end);
        std::size_t body = 0;
        if (auto cl = header_value(head, "Content-Length"); !cl.empty())
          body = std::strtoul(std::string(cl).c_str(), nullptr, 10);
        if (end + 4 + body > rest.size()) break;  // the body is not all here yet
        const bool http10 = head.find(" HTTP/1.0") != std::string_view::npos;
        std::string_view conn = header_value(head, "Connection");
        close_after =
            contains_token(conn, "close") || (http10 && !contains_token(conn, "keep-alive"));
        if (head.rfind("GET ", 0) == 0 || head.rfind("HEAD ", 0) == 0) {
          out += "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ";
          out += std::to_string(kBody.size());
          out += close_after ? "\r\nConnection: close\r\n\r\n" : "\r\n\r\n";
          if (head.rfind("GET ", 0) == 0) out += kBody;
        } else {
          out += "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n";
        }
        used += end + 4 + body;
        if (close_after) break;
      }
      if (!out.empty()) c.write_all(out);
      if (close_after) return;
      if (used == 0 && have == buf.size()) {  // a head larger than the buffer
        c.write_all(std::string_view("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"));
        return;
      }
      std::copy(buf.begin() + static_cast<std::ptrdiff_t>(used),
                buf.begin() + static_cast<std::ptrdiff_t>(have), buf.begin());
      have -= used;
    }
  } catch (const std::system_error&) {
    // A reset connection ends only this connection.
  }
}

// accept_loop() serves every connection of `listener` in its own tasklet, until killed.
inline void accept_loop(io::tcp_listener& listener) {
  for (;;) {
    try {
      (void)stackless::spawn(serve_connection, listener.accept());
    } catch (const std::system_error&) {
      // EMFILE and friends: the connection stays queued; let a connection end first.
      stackless::this_tasklet::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

}  // namespace http_example
