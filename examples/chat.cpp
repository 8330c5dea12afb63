// SPDX-License-Identifier: Apache-2.0
// examples/chat.cpp — a line-based chat server: the Stackless idiom of a tasklet per client and a
// channel fan-out. Each client has a reader tasklet (socket → the hub's channel) and a writer
// tasklet (its own channel → socket); one hub tasklet receives every line and sends it to every
// client's channel. A slow client cannot stall the room: its channel is bounded and the hub drops
// lines it has no room for (try_send), telling it so once it catches up.
//
//   build/release/examples/stackless_chat [--port P] [--workers N]
//   nc 127.0.0.1 P      # in two terminals: what one types, the other sees
//
// The first line on stdout is "listening on 127.0.0.1:PORT"; SIGTERM or SIGINT ends it.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <stackless/stackless.hpp>
#include <string>
#include <utility>

#include "server_main.hpp"

namespace {

namespace io = stackless::io;
using line_channel = stackless::channel<std::string>;

// What the hub receives: a client that joins (with its channel), a line, or a client that left.
struct event {
  enum kind { join, say, leave } what;
  std::uint64_t client;
  std::string text;
  std::shared_ptr<line_channel> out;  // join only
};

// The hub and every client share the event channel: at shutdown every tasklet is killed at once
// and they unwind in any order, so none of them may own it alone (serve()'s frame, say).
using event_channel = std::shared_ptr<stackless::channel<event>>;

void hub(event_channel events) {
  struct member {
    std::shared_ptr<line_channel> out;
    std::size_t dropped = 0;
  };
  std::map<std::uint64_t, member> room;
  for (event e : *events) {  // until the channel closes
    if (e.what == event::join) {
      room[e.client] = {std::move(e.out), 0};
      e.text = "* client " + std::to_string(e.client) + " joined\n";
    } else if (e.what == event::leave) {
      if (auto it = room.find(e.client); it != room.end()) {
        it->second.out->close();  // its writer ends
        room.erase(it);
      }
      e.text = "* client " + std::to_string(e.client) + " left\n";
    } else {
      e.text = "<" + std::to_string(e.client) + "> " + e.text;
    }
    for (auto& [id, m] : room) {
      if (id == e.client && e.what != event::leave) continue;  // no echo to the sender
      if (m.dropped > 0) {
        std::string note = "* " + std::to_string(m.dropped) + " lines dropped (too slow)\n";
        if (m.out->try_send(note)) m.dropped = 0;
      }
      std::string copy = e.text;
      if (!m.out->try_send(copy)) ++m.dropped;
    }
  }
}

void client(io::tcp_stream s, std::uint64_t id, event_channel events) {
  auto out = std::make_shared<line_channel>(64);
  auto sock = std::make_shared<io::tcp_stream>(std::move(s));
  // The writer: this client's channel to its socket, until the hub closes the channel.
  auto writer = stackless::spawn([out, sock] {
    try {
      for (std::string line : *out) sock->write_all(line);
    } catch (const std::system_error&) {
    }
  });
  events->send({event::join, id, {}, out});
  try {
    std::string pending;
    char buf[4096];
    for (;;) {
      std::size_t n = sock->read_some(std::as_writable_bytes(std::span(buf)));
      if (n == 0) break;
      pending.append(buf, n);
      for (std::size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
        events->send({event::say, id, pending.substr(0, nl + 1), nullptr});
        pending.erase(0, nl + 1);
      }
      if (pending.size() > 4096) break;  // a "line" without end: a bad client
    }
  } catch (const std::system_error&) {
  }
  events->send({event::leave, id, {}, nullptr});
  writer.join();
}

void serve(io::tcp_listener& listener) {
  auto events = std::make_shared<stackless::channel<event>>(256);
  auto h = stackless::spawn(hub, events);
  for (std::uint64_t next = 1;; ++next) {
    try {
      (void)stackless::spawn(client, listener.accept(), next, events);
    } catch (const std::system_error& e) {
      std::fprintf(stderr, "chat: %s (retrying)\n", e.what());
      stackless::this_tasklet::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

}  // namespace

int main(int argc, char** argv) { return example::serve_main(argc, argv, "chat", serve); }
