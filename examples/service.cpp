// SPDX-License-Identifier: Apache-2.0
// examples/service.cpp — a compute service: HTTP/1.1 requests (keep-alive, one tasklet per
// connection) whose work runs in parallel on the same scheduler as the sockets.
//
//   build/release/examples/stackless_service [--port P] [--workers N] [--deadline-ms MS]
//                                            [--max-body BYTES]
//
//   POST /wordcount   the body's words, counted by stackless::map_reduce with stackless-wordcount's
//                     rules (tools/wordcount/words.hpp): {"words", "distinct", "top": [10]}
//   GET  /fib/N       fib(N) by recursive spawn/join down to a sequential cutoff; N <= 50
//   GET  /stats       scheduler::stats() and the service's counters, as JSON
//   GET  /metrics     scheduler::stats() for Prometheus (stackless::to_prometheus: text format)
//
// Every request's work gets a deadline (a timeout_scope around the wait for it; --deadline-ms,
// default 2000): when it passes, the work is stopped (a std::stop_token its pieces check) and the
// answer is 503. While the work runs, a watcher tasklet reads the connection: the end of the
// stream (the client went away) stops the work too, and nobody is answered; bytes that arrive
// meanwhile (a pipelined request) are kept for the next round. A client that half-closes its side
// while it waits for the answer is taken for gone (net/http's rule, too).
//
// Bad input: a body over --max-body (default 1 MiB) is 413, a request that is not HTTP 400, a head
// over 16 KiB 431, chunked bodies 501 — each followed by a close; an unknown path is 404, a known
// path with another method 405 (with Allow).
//
// SIGTERM or SIGINT (read from a signalfd by the main tasklet: no work in a signal handler) drains:
// the listener is closed (new connections are refused), idle kept-alive connections are closed,
// requests in flight finish and are answered with "Connection: close"; then the process exits 0.
// As the other server examples: --port 0 (the default) picks a free port and the first line on
// stdout is "listening on 127.0.0.1:PORT"; --workers 0 (the default) is one per core.
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <stackless/stackless.hpp>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "http_server.hpp"  // header_value(), contains_token()
#include "words.hpp"        // tools/wordcount: for_each_word(), split_at_word_end()

namespace {

namespace io = stackless::io;
using namespace std::chrono_literals;
using http_example::contains_token;
using http_example::header_value;

constexpr int kFibCap = 50;              // GET /fib/N above it: 400
constexpr int kFibCutoff = 18;           // below it fib runs sequentially (~10 µs at -O2)
constexpr std::size_t kMaxHead = 16384;  // request line + headers
constexpr std::size_t kChunk = 16384;    // map_reduce input: a piece of the body
constexpr auto kIoTimeout = 30s;         // a partial request or a write that makes no progress

struct config {
  unsigned port = 0;
  unsigned workers = 0;
  std::size_t max_body = std::size_t{1} << 20;
  std::chrono::milliseconds deadline{2000};
};

struct service {
  config cfg;
  stackless::scheduler* sched = nullptr;
  std::stop_source draining;          // SIGTERM: no new requests
  stackless::wait_group connections;  // connection tasklets still running
  std::atomic<std::uint64_t> requests{0}, answered{0}, cancelled{0}, timed_out{0}, rejected{0};
};

// ---- responses ---------------------------------------------------------------------------------

struct response {
  int status = 200;
  std::string body;  // JSON, unless content_type says otherwise
  std::string_view content_type = "application/json";
  std::string_view allow;  // for 405
  bool close = false;      // close the connection after it (bad input)
};

std::string_view reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

response error(int status, std::string_view message, bool close = false) {
  response r;
  r.status = status;
  r.body = "{\"error\":\"";
  r.body += message;  // our own messages: nothing to escape
  r.body += "\"}\n";
  r.close = close;
  return r;
}

std::string render(const response& r, bool close) {
  std::string out = "HTTP/1.1 ";
  out += std::to_string(r.status);
  out += ' ';
  out += reason(r.status);
  out += "\r\nContent-Type: ";
  out += r.content_type;
  out += "\r\nContent-Length: ";
  out += std::to_string(r.body.size());
  if (!r.allow.empty()) {
    out += "\r\nAllow: ";
    out += r.allow;
  }
  out += close ? "\r\nConnection: close\r\n\r\n" : "\r\n\r\n";
  out += r.body;
  return out;
}

// ---- the work ----------------------------------------------------------------------------------

// A job's outcome: a response, or nothing when it was stopped (deadline or disconnect).
using outcome = std::optional<response>;

std::int64_t fib_seq(int n) { return n < 2 ? n : fib_seq(n - 1) + fib_seq(n - 2); }

// fib_par(): fib(n - 1) in a spawned tasklet (runs next here, or on a thief), fib(n - 2) here.
// Each split checks the stop token: a stopped job ends within one sequential leaf per piece.
std::int64_t fib_par(int n, std::stop_token st) {
  if (n <= kFibCutoff) return fib_seq(n);
  if (st.stop_requested()) throw stackless::operation_cancelled();
  auto child = stackless::spawn(fib_par, n - 1, st);
  std::int64_t b = 0;
  try {
    b = fib_par(n - 2, st);
  } catch (...) {
    try {  // the child sees the same stop (or error) soon: wait for it, keep our exception
      (void)child.join();
    } catch (const std::exception&) {
    }
    throw;
  }
  return child.join() + b;
}

outcome fib_job(int n, std::stop_token st) {
  const std::int64_t v = fib_par(n, st);
  response r;
  r.body = "{\"n\":" + std::to_string(n) + ",\"fib\":" + std::to_string(v) + "}\n";
  return r;
}

// chunks() cuts text into pieces of about kChunk bytes, never inside a word.
std::vector<std::string_view> chunks(std::string_view text) {
  std::vector<std::string_view> out;
  const auto& lower = stackless::wordcount::words_table.lower;
  while (!text.empty()) {
    std::size_t n = std::min(kChunk, text.size());
    if (n < text.size()) {
      std::size_t cut = stackless::wordcount::split_at_word_end(text.substr(0, n));
      if (cut == 0) {  // one word longer than a chunk: take all of it
        cut = n;
        while (cut < text.size() && lower[static_cast<unsigned char>(text[cut])]) ++cut;
      }
      n = cut;
    }
    out.push_back(text.substr(0, n));
    text.remove_prefix(n);
  }
  return out;
}

outcome wordcount_job(const service& svc, std::string_view text, std::stop_token st) {
  const std::vector<std::string_view> inputs = chunks(text);
  std::atomic<std::uint64_t> total{0};
  stackless::top_k<std::string, std::uint64_t> top(10);
  if (!inputs.empty()) {
    const std::size_t workers = svc.sched->workers();
    stackless::map_reduce_options o;
    o.reducers = stackless::partitions(workers);
    o.mappers = std::min(inputs.size(), workers);
    o.stop = st;
    top = stackless::map_reduce<std::string, std::uint64_t>(
        inputs,
        [&](std::string_view piece, auto& emit) {
          if (st.stop_requested()) throw stackless::operation_cancelled();
          std::uint64_t n = 0;
          stackless::wordcount::for_each_word(piece, [&](std::string_view w) {
            emit(w, std::uint64_t{1});
            ++n;
          });
          total.fetch_add(n, std::memory_order_relaxed);
          stackless::this_tasklet::yield();  // other connections run between pieces
        },
        [](std::uint64_t& acc, std::uint64_t v) { acc += v; }, o, std::move(top));
  }
  response r;
  r.body = "{\"words\":" + std::to_string(total.load()) +
           ",\"distinct\":" + std::to_string(top.seen()) + ",\"top\":[";
  bool first = true;
  for (const auto& [word, count] : top.sorted()) {
    r.body += first ? "" : ",";
    first = false;
    r.body += "{\"word\":\"" + word + "\",\"count\":" + std::to_string(count) + "}";
  }
  r.body += "]}\n";
  return r;
}

// guarded() runs a job in its tasklet: a stop is nothing (the caller knows why), a failure 500.
template <class Job>
outcome guarded(Job& job, const std::stop_token& st) {
  try {
    return job(st);
  } catch (const stackless::operation_cancelled&) {
    return std::nullopt;
  } catch (const stackless::map_reduce_error&) {
    if (st.stop_requested()) return std::nullopt;  // a piece saw the stop first
    return error(500, "the job failed");
  } catch (const std::bad_alloc&) {
    return error(500, "out of memory");
  }
}

// ---- running a job beside its connection
// ---------------------------------------------------------

enum class ran { answered, client_gone };

// run_watched() runs job(stop_token) in its own tasklet under the request's deadline while a
// watcher tasklet reads `c` (the connection's only reader meanwhile): at the end of the stream it
// stops the job; whatever it reads is appended to `in` afterwards.
template <class Job>
ran run_watched(service& svc, io::tcp_stream& c, std::string& in, Job job, response& out) {
  std::stop_source stop;        // the job's: the deadline or a disconnect
  std::stop_source stop_watch;  // the watcher's: the job is over
  bool gone = false;
  std::string extra;
  auto watcher = stackless::spawn([&] {
    std::array<char, 4096> buf;
    try {
      for (;;) {
        const std::size_t n =
            c.read_some(std::as_writable_bytes(std::span(buf)), stop_watch.get_token());
        if (n == 0) break;
        extra.append(buf.data(), n);
        if (extra.size() > kMaxHead + svc.cfg.max_body) return;  // enough until the answer
      }
    } catch (const stackless::operation_cancelled&) {
      return;  // the job is over: the client is still there
    } catch (const std::system_error&) {
      // a reset: gone as well
    }
    gone = true;
    stop.request_stop();
  });
  auto work = stackless::spawn([&job, st = stop.get_token()] { return guarded(job, st); });
  // Killed while it waits (a shutdown kills every tasklet at once), this frame would unwind while
  // the watcher and the job still point into it: they are killed and waited for first. (A wait
  // inside a destructor does not throw the pending kill: the runtime keeps it for later.) On
  // the normal path both have ended already and the kills do nothing.
  struct end_children {
    stackless::tasklet<void> watcher, work;
    ~end_children() {
      watcher.kill();
      work.kill();
    }
  } children{watcher, work};
  outcome result;
  bool late = false;
  try {
    stackless::timeout_scope deadline(svc.cfg.deadline);
    result = work.join();
  } catch (const stackless::timeout_error&) {
    late = true;
  }
  if (late) {
    stop.request_stop();
    result = work.join();  // soon: every piece checks the stop
  }
  stop_watch.request_stop();
  watcher.join();
  in += extra;
  if (gone) {
    svc.cancelled.fetch_add(1, std::memory_order_relaxed);
    return ran::client_gone;
  }
  if (result) {
    out = std::move(*result);
  } else {  // stopped, and not by the client: the deadline
    svc.timed_out.fetch_add(1, std::memory_order_relaxed);
    out = error(503, "deadline of " + std::to_string(svc.cfg.deadline.count()) + " ms exceeded");
  }
  return ran::answered;
}

std::string stats_json(const service& svc) {
  const stackless::scheduler_stats s = svc.sched->stats();
  std::string j = "{";
  auto field = [&j](std::string_view name, std::uint64_t v) {
    if (j.size() > 1 && j.back() != '{') j += ',';
    j += '"';
    j += name;
    j += "\":";
    j += std::to_string(v);
  };
  field("spawned", s.spawned);
  field("live", s.live);
  field("runnable", s.runnable);
  field("parked", s.parked);
  field("steals", s.steals);
  field("preemptions", s.preemptions);
  field("io_waiting", s.io_waiting);
  field("io_registered", s.io_registered);
  field("io_polls", s.io_polls);
  field("stacks_outstanding", s.stacks_outstanding);
  field("stacks_pooled", s.stacks_pooled);
  field("requests", svc.requests.load(std::memory_order_relaxed));
  field("answered", svc.answered.load(std::memory_order_relaxed));
  field("cancelled", svc.cancelled.load(std::memory_order_relaxed));
  field("timed_out", svc.timed_out.load(std::memory_order_relaxed));
  field("rejected", svc.rejected.load(std::memory_order_relaxed));
  field("connections",
        static_cast<std::uint64_t>(std::max<std::ptrdiff_t>(0, svc.connections.count())));
  j += ",\"workers\":[";
  for (std::size_t i = 0; i < s.workers.size(); ++i) {
    const auto& w = s.workers[i];
    j += i ? ",{" : "{";
    j += "\"runs\":" + std::to_string(w.runs) + ",\"steals\":" + std::to_string(w.steals) +
         ",\"parks\":" + std::to_string(w.parks) + ",\"inbox\":" + std::to_string(w.inbox) +
         ",\"injected\":" + std::to_string(w.injected) + "}";
  }
  j += "]}\n";
  return j;
}

// ---- HTTP
// ----------------------------------------------------------------------------------------

struct request_line {
  std::string_view method, target, version;
};

bool is_method_char(char ch) { return ch >= 'A' && ch <= 'Z'; }

// parse_request_line(): "METHOD SP TARGET SP HTTP/1.x", or nothing.
std::optional<request_line> parse_request_line(std::string_view line) {
  const std::size_t sp1 = line.find(' ');
  if (sp1 == 0 || sp1 == std::string_view::npos || sp1 > 16) return std::nullopt;
  const std::size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return std::nullopt;
  request_line r{line.substr(0, sp1), line.substr(sp1 + 1, sp2 - sp1 - 1), line.substr(sp2 + 1)};
  if (!std::all_of(r.method.begin(), r.method.end(), is_method_char)) return std::nullopt;
  if (r.target.empty() || (r.target.front() != '/' && r.target != "*")) return std::nullopt;
  if (std::any_of(r.target.begin(), r.target.end(),
                  [](char ch) { return static_cast<unsigned char>(ch) <= ' ' || ch == 0x7f; }))
    return std::nullopt;
  if (r.version != "HTTP/1.1" && r.version != "HTTP/1.0") return std::nullopt;
  return r;
}

// not_http(): what has arrived of a head already cannot be one (checked before it is complete,
// so that garbage without a blank line is answered at once).
bool not_http(std::string_view in) {
  const std::size_t limit = std::min<std::size_t>(in.size(), 17);
  for (std::size_t i = 0; i < limit; ++i) {
    if (in[i] == ' ') return i == 0;
    if (!is_method_char(in[i])) return true;
  }
  if (in.size() >= 17 && in.substr(0, 17).find(' ') == std::string_view::npos) return true;
  const std::size_t eol = in.find("\r\n");
  return eol != std::string_view::npos && !parse_request_line(in.substr(0, eol));
}

// headers_ok(): every header line is "name: value".
bool headers_ok(std::string_view head) {
  std::size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos) {
    const std::size_t start = pos + 2;
    const std::size_t end = std::min(head.find("\r\n", start), head.size());
    const std::string_view line = head.substr(start, end - start);
    const std::size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return false;
    if (line.substr(0, colon).find_first_of(" \t") != std::string_view::npos) return false;
    pos = end < head.size() ? end : std::string_view::npos;
  }
  return true;
}

std::optional<int> parse_fib(std::string_view path) {
  constexpr std::string_view prefix = "/fib/";
  if (path.substr(0, prefix.size()) != prefix) return std::nullopt;
  path.remove_prefix(prefix.size());
  int n = 0;
  auto [p, ec] = std::from_chars(path.data(), path.data() + path.size(), n);
  if (ec != std::errc() || p != path.data() + path.size() || n < 0) return -1;
  return n;
}

// route() answers one complete request (the body is whole).
ran route(service& svc, io::tcp_stream& c, std::string& in, const request_line& rl,
          std::string_view body, response& out) {
  const std::string_view path = rl.target.substr(0, rl.target.find('?'));
  auto wrong_method = [&out](std::string_view allow) {
    out = error(405, allow == "GET" ? "use GET" : "use POST");
    out.allow = allow;
    return ran::answered;
  };
  if (path == "/stats") {
    if (rl.method != "GET") return wrong_method("GET");
    out.body = stats_json(svc);
    return ran::answered;
  }
  if (path == "/metrics") {
    if (rl.method != "GET") return wrong_method("GET");
    out.body = stackless::to_prometheus(svc.sched->stats(), "service");
    out.content_type = "text/plain; version=0.0.4";
    return ran::answered;
  }
  if (path == "/wordcount") {
    if (rl.method != "POST") return wrong_method("POST");
    return run_watched(
        svc, c, in, [&svc, body](std::stop_token st) { return wordcount_job(svc, body, st); }, out);
  }
  if (auto n = parse_fib(path)) {
    if (rl.method != "GET") return wrong_method("GET");
    if (*n < 0) {
      out = error(400, "N must be a number");
    } else if (*n > kFibCap) {
      out = error(400, "N above the cap of " + std::to_string(kFibCap));
    } else {
      return run_watched(
          svc, c, in, [n = *n](std::stop_token st) { return fib_job(n, st); }, out);
    }
    return ran::answered;
  }
  out = error(404, "no such path");
  return ran::answered;
}

// read_more() appends what arrives to `in`; false at the end of the stream. An idle connection
// (nothing of a request yet) also ends when the service drains.
bool read_more(service& svc, io::tcp_stream& c, std::string& in) {
  std::array<char, 16384> buf;
  std::size_t n;
  if (in.empty()) {
    n = c.read_some(std::as_writable_bytes(std::span(buf)), svc.draining.get_token());
  } else {
    n = c.read_some_for(std::as_writable_bytes(std::span(buf)), kIoTimeout);
  }
  in.append(buf.data(), n);
  return n != 0;
}

// linger_close(): after an answer that leaves unread input (413, 400), half-close and discard
// what still comes for a moment, so that the kernel does not reset the connection (and the
// answer with it) when the socket closes with unread data.
void linger_close(io::tcp_stream& c) {
  try {
    c.shutdown(SHUT_WR);
    std::array<char, 16384> buf;
    const auto until = std::chrono::steady_clock::now() + 1s;
    while (c.read_some_until(std::as_writable_bytes(std::span(buf)), until) > 0) {
    }
  } catch (const std::exception&) {
  }
}

void serve_connection(service& svc, io::tcp_stream c) {
  struct done {
    service& s;
    ~done() { s.connections.done(); }
  } guard{svc};
  std::string in;
  try {
    c.set_nodelay();
    for (;;) {
      std::size_t head_end;
      while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
        if (not_http(in)) {
          svc.rejected.fetch_add(1, std::memory_order_relaxed);
          c.write_all_for(render(error(400, "not an HTTP request"), true), kIoTimeout);
          return linger_close(c);
        }
        if (in.size() > kMaxHead) {
          svc.rejected.fetch_add(1, std::memory_order_relaxed);
          c.write_all_for(render(error(431, "request head too large"), true), kIoTimeout);
          return linger_close(c);
        }
        if (!read_more(svc, c, in)) return;
      }
      svc.requests.fetch_add(1, std::memory_order_relaxed);
      std::string_view head(in.data(), head_end);
      auto rl = parse_request_line(head.substr(0, head.find("\r\n")));
      response r;
      if (!rl || !headers_ok(head)) r = error(400, "malformed request", true);
      std::size_t body_size = 0;
      if (rl && !r.close) {
        if (!header_value(head, "Transfer-Encoding").empty()) {
          r = error(501, "chunked bodies are not supported", true);
        } else if (auto cl = header_value(head, "Content-Length"); !cl.empty()) {
          auto [p, ec] = std::from_chars(cl.data(), cl.data() + cl.size(), body_size);
          if (ec != std::errc() || p != cl.data() + cl.size())
            r = error(400, "bad Content-Length", true);
          else if (body_size > svc.cfg.max_body)
            r = error(413, "body over " + std::to_string(svc.cfg.max_body) + " bytes", true);
        }
      }
      if (r.close) {  // bad input: answer, then close without reading further
        svc.rejected.fetch_add(1, std::memory_order_relaxed);
        c.write_all_for(render(r, true), kIoTimeout);
        return linger_close(c);
      }
      const std::size_t total = head_end + 4 + body_size;
      if (in.size() < total) {
        while (in.size() < total)
          if (!read_more(svc, c, in)) return;          // gone before the whole body came
        head = std::string_view(in.data(), head_end);  // `in` has moved: the views again
        rl = parse_request_line(head.substr(0, head.find("\r\n")));
      }
      const bool http10 = rl->version == "HTTP/1.0";
      const std::string_view conn = header_value(head, "Connection");
      bool close_after =
          contains_token(conn, "close") || (http10 && !contains_token(conn, "keep-alive"));
      // The views into `in` (the request line, the body) stay valid while the request is served:
      // what the watcher reads meanwhile is appended only once the job is over.
      const std::string_view body(in.data() + head_end + 4, body_size);
      if (route(svc, c, in, *rl, body, r) == ran::client_gone) return;
      close_after = close_after || svc.draining.stop_requested();
      c.write_all_for(render(r, close_after), kIoTimeout);
      svc.answered.fetch_add(1, std::memory_order_relaxed);
      if (close_after) return linger_close(c);
      in.erase(0, total);
    }
  } catch (const stackless::operation_cancelled&) {
    // idle while the service drains: close
  } catch (const std::system_error&) {
    // a reset connection, or a peer that stalled for kIoTimeout: ends this connection only
  }
}

void accept_loop(service& svc, io::tcp_listener& listener) {
  for (;;) {
    io::tcp_stream c;
    try {
      c = listener.accept(svc.draining.get_token());
    } catch (const stackless::operation_cancelled&) {
      return;
    } catch (const std::system_error&) {
      // EMFILE and friends: the connection stays queued; let a connection end first.
      stackless::this_tasklet::sleep_for(10ms);
      continue;
    }
    svc.connections.add(1);
    (void)stackless::spawn(serve_connection, std::ref(svc), std::move(c));
  }
}

// serve(): the main tasklet: accepts until a stop signal arrives on `sigfd`, then drains.
int serve(service& svc, io::tcp_listener& listener, int sigfd) {
  auto acceptor = stackless::spawn(accept_loop, std::ref(svc), std::ref(listener));
  signalfd_siginfo info{};
  for (;;) {
    io::wait_readable(sigfd);
    if (::read(sigfd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) break;
  }
  svc.draining.request_stop();  // the accept and every idle read end
  acceptor.join();
  listener.close();  // from here on a connection attempt is refused
  const auto grace = svc.cfg.deadline + 2 * kIoTimeout;
  if (!svc.connections.wait_for(grace)) {
    std::fprintf(stderr, "service: connections still open %lld ms after the signal\n",
                 static_cast<long long>(grace.count()));
    return 1;
  }
  return 0;
}

bool parse_number(const char* s, unsigned long long max, unsigned long long& out) {
  char* end = nullptr;
  errno = 0;
  out = std::strtoull(s, &end, 10);
  return errno == 0 && end != s && *end == '\0' && out <= max && s[0] != '-';
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    unsigned long long v = 0;
    auto opt = [&](const char* name, unsigned long long max) {
      return std::strcmp(argv[i], name) == 0 && has_value && parse_number(argv[i + 1], max, v);
    };
    if (opt("--port", 65535)) {
      cfg.port = static_cast<unsigned>(v);
    } else if (opt("--workers", 1024)) {
      cfg.workers = static_cast<unsigned>(v);
    } else if (opt("--deadline-ms", 86'400'000) && v > 0) {
      cfg.deadline = std::chrono::milliseconds(v);
    } else if (opt("--max-body", std::uint64_t{1} << 32)) {
      cfg.max_body = static_cast<std::size_t>(v);
    } else {
      std::fprintf(stderr,
                   "usage: %s [--port P (0: any)] [--workers N (0: one per core)]\n"
                   "          [--deadline-ms MS (default 2000)] [--max-body BYTES (default "
                   "1048576)]\n",
                   argv[0]);
      return 2;
    }
    ++i;
  }
  // The stop signals are blocked before any thread starts (threads inherit the mask) and read
  // from a signalfd by the main tasklet.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  const int sigfd = signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sigfd < 0) return std::perror("service: signalfd"), 1;
  int rc = 0;
  try {
    auto listener = io::tcp_listener::bind("127.0.0.1:" + std::to_string(cfg.port));
    service svc;  // before the scheduler: its tasklets use it until the scheduler is gone
    // quantum: soft preemption — a request's job that runs 10 ms without switching (a long
    // sequential leaf) is asked to yield, so the connections' tasklets get their turn; the
    // monitor thread also polls the netpoller when every worker has been busy for 10 ms. (Busy
    // workers poll on their own too, at the fairness tick: tests/io/test_netpoll_busy.cpp.)
    stackless::scheduler sched({.workers = cfg.workers, .quantum = 10ms, .name = "service"});
    svc.cfg = cfg;
    svc.sched = &sched;
    std::printf("listening on %s\n", listener.local_endpoint().to_string().c_str());
    std::fflush(stdout);
    rc = sched.block_on([&] { return serve(svc, listener, sigfd); });
    sched.shutdown();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "service: %s\n", e.what());
    rc = 1;
  }
  ::close(sigfd);
  return rc;
}
