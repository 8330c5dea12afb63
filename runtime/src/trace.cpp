// SPDX-License-Identifier: Apache-2.0
// runtime/src/trace.cpp — the tracer: a whole run of a scheduler as a Chrome trace-event JSON file
// (the format ui.perfetto.dev and chrome://tracing open; docs/trace.md).
//
// Glossary:
//   record   one event as the runtime saw it: 32 bytes, binary (trace.hpp: trace_record).
//   ring     a worker's single-producer single-consumer array of records (trace.hpp: trace_ring).
//   side     the tracer's locked buffer for events from threads that drive no worker of this
//            scheduler (a plain thread's spawn or wake, the monitor's netpoll, a host's advance()).
//   track    a `tid` of the file: "worker 0" … (tid i + 1), and "plain threads" (tid workers + 1).
//   writer   the tracer's thread: every ~2 ms it drains the rings and the side buffer, turns the
//            records into JSON lines and appends them to the file.
//   ticks    the records' clock: the TSC on x86-64 (rdtsc, ~10 ns, no system call), elsewhere the
//            steady clock in ns. The writer converts with one scale it measures once, between the
//            tracer's start and its first drain (>= 2 ms later), so the timeline is linear. A
//            direct switch reads it once: the next run's run_begin takes the time of the
//            run_end/park just before it (trace_ring::put_run_begin()).
//
// What the file holds (one JSON array, an event a line, so a file cut short by a crash still
// loads: the trace-event format makes the closing `]` optional):
//   M  thread_name / process_name / thread_sort_index metadata;
//   X  one complete slice per run of a tasklet (its name, or "tasklet #id"; args id and how the
//      run ended), built by the writer from a run_begin and the run_end or park that follows it
//      on the same ring;
//   i  instants: spawn, park (reason = tcb::wait_what, target = tcb::wait_target), wake, steal,
//      preempt (soft/hard), timer, netpoll, worker park / unpark, dropped events;
//   s/f flow arrows: one per winning wake of a parked tasklet, from the waker's slice to the
//      woken tasklet's next run slice (binding point "e": the slice that encloses the finish);
//   C  "run queue" counters per worker (sampled every 61st pick, and 0 when a worker parks);
//   and, last, a global instant "trace end" whose args give the dropped-event counts.
//
// Memory orders (each atomic and its partner):
//   trace_ring::head_  put() stores it with release after writing the record's slot; drain()
//                      loads it with acquire, so it reads whole records.
//   trace_ring::tail_  drain() stores it with release after reading the slots; put() loads it with
//                      acquire (only when the ring looks full), so it never overwrites a slot the
//                      writer still reads.
//   trace_ring::dropped_  relaxed: a count, written by the producer only, read by the writer.
//   tcb::trace_woken   a plain field: set by whoever requeues a woken tasklet (the waker that saw
//                      it PARKED, or its worker in after_switch()) before the queue push that
//                      publishes it, read and cleared by the worker that launches it.
//   The side buffer, the names and the writer's stop flag are guarded by mutexes (side_mu,
//   names_mu, mu). Whoever drives a worker is its ring's one producer: a worker thread, or a
//   host pumping worker 0 — they hand worker 0 over through scheduler_impl::mode's acq_rel CASes
//   and release stores, which order their puts.
//
// Bounded memory: a ring is full when the writer is behind by its capacity
// (options::trace_buffer_events, default 65,536 records = 2 MiB a worker); then the record is
// dropped and counted — a worker never waits for the writer. The side buffer has the same bound.
//
// Rejected: one shared queue (every event an RMW on one line, across all workers); JSON
// formatting on the workers (~100 ns of snprintf per event on the hot path); B/E pairs instead
// of X (a dropped E would leave a slice open for the rest of the track); std::chrono on every
// event (clock_gettime is ~30 ns on this VM's kvm-clock; rdtsc ~10 ns).
#include "trace.hpp"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

namespace stackless::detail {

namespace {

constexpr std::size_t default_capacity = std::size_t{1} << 16;

std::size_t ring_capacity(std::size_t asked) {
  std::size_t c = asked ? asked : default_capacity;
  std::size_t p = 16;
  while (p < c) p <<= 1;
  return p;
}

// The STACKLESS_TRACE schedulers of this process, numbered from 0 (the file-name suffix): a
// count, relaxed — only the uniqueness of the number matters.
std::atomic<unsigned> g_env_traces{0};

std::string numbered(const std::string& path, unsigned n) {
  if (n == 0) return path;
  // Appended piece by piece: GCC 12 warns (-Wrestrict, a false positive) on "." + to_string(n).
  const std::string ext = ".json";
  const bool json =
      path.size() > ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0;
  std::string out = json ? path.substr(0, path.size() - ext.size()) : path;
  out += '.';
  out += std::to_string(n);
  if (json) out += ext;
  return out;
}

const char* why_name(std::uint64_t why) {
  switch (static_cast<switch_why>(why)) {
    case switch_why::yield:
      return "yield";
    case switch_why::park:
      return "park";
    case switch_why::exit:
      return "exit";
    case switch_why::overrun:
      return "overrun";
  }
  return "?";
}

const char* reason_name(std::uint64_t r) {
  static const char* const names[] = {"notified", "timeout", "interrupted", "cancelled"};
  return r < 4 ? names[r] : "?";
}

}  // namespace

// ---- the ring -----------------------------------------------------------------------------------

trace_ring::trace_ring(std::size_t capacity, std::uint64_t tick0)
    : buf_(new trace_record[capacity]), mask_(capacity - 1), tick0_(tick0) {}

trace_ring::~trace_ring() { delete[] buf_; }

inline void trace_ring::put_impl(trace_kind k, std::uint64_t id, std::uint64_t a, std::uint64_t b,
                                 bool reuse) noexcept {
  const std::uint64_t h = head_.load(std::memory_order_relaxed);  // the producer's own word
  if (h - tail_seen_ > mask_) {
    // acquire: pairs with drain()'s release store — the writer is done with those slots.
    tail_seen_ = tail_.load(std::memory_order_acquire);
    if (h - tail_seen_ > mask_) {
      bump(dropped_);  // relaxed: a count (one writer)
      last_ended_run_ = false;
      return;
    }
  }
  std::uint64_t t = last_;
  if (!reuse || !last_ended_run_) {
    const std::uint64_t now = trace_ticks();
    t = now > tick0_ ? now - tick0_ : 0;
  }
  last_ = t;
  last_ended_run_ = k == trace_kind::run_end || k == trace_kind::park;
  trace_record& r = buf_[h & mask_];
  r.w0 = t << 8 | static_cast<std::uint64_t>(k);
  r.id = id;
  r.a = a;
  r.b = b;
  head_.store(h + 1, std::memory_order_release);  // pairs with drain()'s acquire load
}

void trace_ring::put(trace_kind k, std::uint64_t id, std::uint64_t a, std::uint64_t b) noexcept {
  put_impl(k, id, a, b, false);
}

void trace_ring::put_run_begin(std::uint64_t id, std::uint64_t flow, bool direct) noexcept {
  put_impl(trace_kind::run_begin, id, flow, 0, direct);
}

// ---- the tracer -----------------------------------------------------------------------------

class tracer {
 public:
  tracer(scheduler_impl& s, std::string path, std::FILE* f, std::size_t capacity);
  ~tracer() { finish(); }

  void finish() noexcept;
  void put_side(trace_kind k, std::uint64_t id, std::uint64_t a, std::uint64_t b) noexcept;
  void set_name(std::uint64_t id, const std::string& name);

  std::vector<std::unique_ptr<trace_ring>> rings;  // one per worker; fixed after construction

 private:
  struct track {  // the writer's state of one tid (writer thread only)
    unsigned tid = 0;
    bool open = false;  // a run_begin waits for its end
    std::uint64_t begin = 0, id = 0, flow = 0;
    std::uint64_t last_ns = 0;   // the time of its latest record
    std::uint64_t reported = 0;  // dropped records already reported
  };

  void writer_main();
  void calibrate(bool final);
  void drain_all();
  void record(track& tr, const trace_record& r);
  void write_head();
  void write_tail();
  void flush();
  // JSON pieces, appended to out_.
  void begin_event(const char* ph, const char* name, unsigned tid, std::uint64_t ns);
  void begin_slice(std::uint64_t id, unsigned tid, std::uint64_t ns);  // an X, named
  void str(const char* s);
  void num(std::uint64_t v);
  void ts(std::uint64_t ns);
  std::uint64_t ns_of(std::uint64_t w0) const {
    return static_cast<std::uint64_t>(static_cast<double>(w0 >> 8) * ns_per_tick_);
  }
  void refresh_names();

  scheduler_impl& s_;
  const std::string path_;
  std::FILE* f_;
  const std::uint64_t tick0_;
  const std::int64_t ns0_;
  const int pid_;
  const std::size_t capacity_;

  std::mutex side_mu_;
  std::vector<trace_record> side_;  // guarded by side_mu_
  std::uint64_t side_dropped_ = 0;  // guarded by side_mu_
  bool side_closed_ = false;        // guarded by side_mu_

  std::mutex names_mu_;
  std::unordered_map<std::uint64_t, std::string> names_;  // guarded by names_mu_
  std::uint64_t names_version_ = 0;                       // guarded by names_mu_: set_name()s

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;      // guarded by mu_
  bool finished_ = false;  // guarded by mu_

  // The writer's own (writer thread only; finish() reads nothing of it).
  double ns_per_tick_ = 1.0;
  bool calibrated_ = false;
  std::vector<track> tracks_;  // workers, then the plain threads
  std::vector<trace_record> side_batch_;
  std::vector<std::uint64_t> ended_now_, ended_prev_;  // ids whose names go, two batches later
  std::unordered_map<std::uint64_t, std::string> names_copy_;  // names_ as of names_seen_
  std::uint64_t names_seen_ = 0;
  std::string out_;
  bool comma_ = false;
  std::uint64_t events_ = 0;

  std::thread thread_;  // last: starts when everything above is ready
};

tracer::tracer(scheduler_impl& s, std::string path, std::FILE* f, std::size_t capacity)
    : s_(s),
      path_(std::move(path)),
      f_(f),
      tick0_(trace_ticks()),
      ns0_(now_ns()),
      pid_(static_cast<int>(::getpid())),
      capacity_(capacity) {
  for (unsigned i = 0; i < s.nworkers; ++i)
    rings.push_back(std::make_unique<trace_ring>(capacity, tick0_));
  for (unsigned i = 0; i <= s.nworkers; ++i) {
    track t;
    t.tid = i + 1;
    tracks_.push_back(t);
  }
  side_.reserve(std::min<std::size_t>(capacity, 1024));
  out_.reserve(1 << 20);
  write_head();
  thread_ = std::thread([this] {
    std::string n = s_.opts.name + "-trace";
    pthread_setname_np(pthread_self(), n.substr(0, 15).c_str());
    writer_main();
  });
}

void tracer::finish() noexcept {
  {
    std::lock_guard g(mu_);
    if (finished_) return;
    finished_ = true;
    stop_ = true;
  }
  {
    std::lock_guard g(side_mu_);
    side_closed_ = true;  // the last side events are taken by the final drain below
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void tracer::put_side(trace_kind k, std::uint64_t id, std::uint64_t a, std::uint64_t b) noexcept {
  std::lock_guard g(side_mu_);
  if (side_closed_) return;
  if (side_.size() >= capacity_) {
    ++side_dropped_;
    return;
  }
  const std::uint64_t now = trace_ticks();  // under the lock: the side buffer stays in time order
  side_.push_back(
      {(now > tick0_ ? now - tick0_ : 0) << 8 | static_cast<std::uint64_t>(k), id, a, b});
}

void tracer::set_name(std::uint64_t id, const std::string& name) {
  std::lock_guard g(names_mu_);
  names_[id] = name;
  ++names_version_;
}

void tracer::writer_main() {
  std::unique_lock lk(mu_);
  while (!stop_) {
    cv_.wait_for(lk, std::chrono::milliseconds(2), [this] { return stop_; });
    if (stop_) break;
    lk.unlock();
    calibrate(false);
    if (calibrated_) drain_all();
    lk.lock();
  }
  lk.unlock();
  calibrate(true);
  drain_all();
  write_tail();
  flush();
  std::fclose(f_);
}

void tracer::calibrate(bool final) {
  if (calibrated_) return;
#if defined(__x86_64__)
  const std::uint64_t t = trace_ticks();
  const std::int64_t n = now_ns();
  if (!final && n - ns0_ < 2'000'000) return;
  if (t > tick0_ && n > ns0_)
    ns_per_tick_ = static_cast<double>(n - ns0_) / static_cast<double>(t - tick0_);
#else
  (void) final;
#endif
  calibrated_ = true;
}

// refresh_names(): the writer's copy of the names, taken again only after a set_name() (one
// lock a batch, none per slice).
void tracer::refresh_names() {
  std::lock_guard g(names_mu_);
  if (names_version_ == names_seen_) return;
  names_copy_ = names_;
  names_seen_ = names_version_;
}

void tracer::drain_all() {
  refresh_names();
  for (std::size_t i = 0; i < rings.size(); ++i) {
    track& tr = tracks_[i];
    rings[i]->drain([&](const trace_record& r) { record(tr, r); });
    const std::uint64_t d = rings[i]->dropped();
    if (d != tr.reported) {
      begin_event("i", "dropped events", tr.tid, tr.last_ns);
      out_ += R"(,"s":"t","args":{"count":)";
      num(d - tr.reported);
      out_ += R"(,"total":)";
      num(d);
      out_ += "}}";
      tr.reported = d;
    }
  }
  std::uint64_t side_dropped;
  {
    std::lock_guard g(side_mu_);
    side_batch_.swap(side_);
    side_dropped = side_dropped_;
  }
  track& pt = tracks_.back();
  for (const trace_record& r : side_batch_) record(pt, r);
  side_batch_.clear();
  if (side_dropped != pt.reported) {
    begin_event("i", "dropped events", pt.tid, pt.last_ns);
    out_ += R"(,"s":"t","args":{"count":)";
    num(side_dropped - pt.reported);
    out_ += R"(,"total":)";
    num(side_dropped);
    out_ += "}}";
    pt.reported = side_dropped;
  }
  // Names of tasklets that ended two batches ago: no record of theirs can still be unread.
  if (!ended_prev_.empty()) {
    std::lock_guard g(names_mu_);
    for (std::uint64_t id : ended_prev_) {
      names_.erase(id);
      names_copy_.erase(id);
    }
  }
  ended_prev_.swap(ended_now_);
  ended_now_.clear();
  flush();
}

void tracer::record(track& tr, const trace_record& r) {
  const std::uint64_t ns = ns_of(r.w0);
  tr.last_ns = ns;
  const auto k = static_cast<trace_kind>(r.w0 & 0xff);
  switch (k) {
    case trace_kind::run_begin:
      tr.open = true;  // an open one's end was dropped: it is forgotten
      tr.begin = ns;
      tr.id = r.id;
      tr.flow = r.a;
      return;
    case trace_kind::run_end:
    case trace_kind::park: {
      if (tr.open && tr.id == r.id) {
        const std::uint64_t why = k == trace_kind::park ? std::uint64_t(switch_why::park) : r.a;
        begin_slice(r.id, tr.tid, tr.begin);
        out_ += R"(,"dur":)";
        ts(ns - tr.begin);
        out_ += R"(,"cat":"run","args":{"id":)";
        num(r.id);
        out_ += R"(,"end":)";
        str(why_name(why));
        out_ += "}}";
        if (tr.flow) {
          // 1 ns into the slice: Perfetto binds a "bp":"e" finish to the slice open on the
          // track when it reads it, and the previous slice may end exactly at tr.begin.
          begin_event("f", "wake", tr.tid, tr.begin + (ns > tr.begin ? 1 : 0));
          out_ += R"(,"cat":"wake","bp":"e","id":)";
          num(tr.flow);
          out_ += "}";
        }
        if (why == std::uint64_t(switch_why::exit)) ended_now_.push_back(r.id);
      }
      tr.open = false;
      if (k == trace_kind::park) {
        begin_event("i", "park", tr.tid, ns);
        out_ += R"(,"s":"t","args":{"tasklet":)";
        num(r.id);
        out_ += R"(,"reason":)";
        str(r.a ? reinterpret_cast<const char*>(r.a) : "?");
        out_ += R"(,"target":)";
        num(r.b);
        out_ += "}}";
      }
      return;
    }
    case trace_kind::spawn: {
      begin_event("i", "spawn", tr.tid, ns);
      out_ += R"(,"s":"t","args":{"tasklet":)";
      num(r.id);
      out_ += R"(,"parent":)";
      num(r.b & ((std::uint64_t{1} << 40) - 1));
      if (r.a) {
        const char* file = reinterpret_cast<const char*>(r.a);
        if (const char* slash = std::strrchr(file, '/')) file = slash + 1;
        std::string site = file;
        site += ':';
        site += std::to_string(r.b >> 40);
        out_ += R"(,"site":)";
        str(site.c_str());
      }
      out_ += "}}";
      return;
    }
    case trace_kind::wake:
      begin_event("i", "wake", tr.tid, ns);
      out_ += R"(,"s":"t","args":{"tasklet":)";
      num(r.id);
      out_ += R"(,"reason":)";
      str(reason_name(r.b));
      out_ += "}}";
      begin_event("s", "wake", tr.tid, ns);
      out_ += R"(,"cat":"wake","id":)";
      num(r.a);
      out_ += "}";
      return;
    case trace_kind::steal:
      begin_event("i", "steal", tr.tid, ns);
      out_ += R"(,"s":"t","args":{"tasklet":)";
      num(r.id);
      out_ += R"(,"victim":)";
      num(r.a);
      out_ += R"(,"count":)";
      num(r.b);
      out_ += "}}";
      return;
    case trace_kind::preempt:
      begin_event("i", "preempt", tr.tid, ns);
      out_ += R"(,"s":"t","args":{"tasklet":)";
      num(r.id);
      out_ += R"(,"kind":)";
      str(r.a ? "hard" : "soft");
      out_ += "}}";
      return;
    case trace_kind::timer:
      begin_event("i", "timer", tr.tid, ns);
      out_ += R"(,"s":"t","args":{"tasklet":)";
      num(r.id);
      out_ += "}}";
      return;
    case trace_kind::netpoll:
      begin_event("i", "netpoll", tr.tid, ns);
      out_ += R"(,"s":"t","args":{"woke":)";
      num(r.a);
      out_ += "}}";
      return;
    case trace_kind::worker_park:
    case trace_kind::runq:
      if (k == trace_kind::worker_park) {
        begin_event("i", "worker park", tr.tid, ns);
        out_ += R"(,"s":"t"})";
      }
      begin_event("C", "run queue", tr.tid, ns);
      out_ += R"(,"args":{"worker )";
      num(tr.tid - 1);
      out_ += R"(":)";
      num(k == trace_kind::runq ? r.a : 0);
      out_ += "}}";
      return;
    case trace_kind::worker_unpark:
      begin_event("i", "worker unpark", tr.tid, ns);
      out_ += R"(,"s":"t"})";
      return;
  }
}

void tracer::write_head() {
  out_ += "[\n";
  comma_ = false;
  auto meta = [this](const char* what, unsigned tid, const std::string& value) {
    begin_event("M", what, tid, 0);
    out_ += R"(,"args":{"name":)";
    str(value.c_str());
    out_ += "}}";
  };
  meta("process_name", 0, "stackless scheduler '" + s_.opts.name + "'");
  for (std::size_t i = 0; i < tracks_.size(); ++i) {
    const bool plain = i + 1 == tracks_.size();
    meta("thread_name", tracks_[i].tid,
         plain ? std::string("plain threads") : "worker " + std::to_string(i));
    begin_event("M", "thread_sort_index", tracks_[i].tid, 0);
    out_ += R"(,"args":{"sort_index":)";
    num(tracks_[i].tid);
    out_ += "}}";
  }
  flush();
}

void tracer::write_tail() {
  std::uint64_t last = 0, total = 0;
  for (const track& t : tracks_) last = std::max(last, t.last_ns);
  begin_event("i", "trace end", 0, last);
  out_ += R"(,"s":"g","args":{"events":)";
  num(events_);
  out_ += R"(,"dropped":{)";
  for (std::size_t i = 0; i < tracks_.size(); ++i) {
    if (i) out_ += ',';
    const bool plain = i + 1 == tracks_.size();
    str(plain ? "plain threads" : ("worker " + std::to_string(i)).c_str());
    out_ += ':';
    num(tracks_[i].reported);
    total += tracks_[i].reported;
  }
  out_ += R"(},"dropped_total":)";
  num(total);
  out_ += R"(,"ring_capacity":)";
  num(capacity_);
  out_ += "}}\n]\n";
}

void tracer::flush() {
  if (out_.empty()) return;
  std::fwrite(out_.data(), 1, out_.size(), f_);
  std::fflush(f_);
  out_.clear();
}

void tracer::begin_event(const char* ph, const char* name, unsigned tid, std::uint64_t ns) {
  out_ += comma_ ? ",\n{\"ph\":\"" : "{\"ph\":\"";
  comma_ = true;
  ++events_;
  out_ += ph;
  out_ += R"(","name":")";
  out_ += name;  // our own names: nothing to escape
  out_ += R"(","pid":)";
  num(static_cast<std::uint64_t>(pid_));
  out_ += R"(,"tid":)";
  num(tid);
  out_ += R"(,"ts":)";
  ts(ns);
}

void tracer::begin_slice(std::uint64_t id, unsigned tid, std::uint64_t ns) {
  out_ += comma_ ? ",\n{\"ph\":\"X\",\"name\":" : "{\"ph\":\"X\",\"name\":";
  comma_ = true;
  ++events_;
  auto it = names_copy_.empty() ? names_copy_.end() : names_copy_.find(id);
  if (it != names_copy_.end() && !it->second.empty()) {
    str(it->second.c_str());
  } else {
    out_ += "\"tasklet #";
    num(id);
    out_ += '"';
  }
  out_ += R"(,"pid":)";
  num(static_cast<std::uint64_t>(pid_));
  out_ += R"(,"tid":)";
  num(tid);
  out_ += R"(,"ts":)";
  ts(ns);
}

void tracer::str(const char* s) {
  out_ += '"';
  for (; *s; ++s) {
    const unsigned char c = static_cast<unsigned char>(*s);
    if (c == '"' || c == '\\') {
      out_ += '\\';
      out_ += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out_ += buf;
    } else {
      out_ += static_cast<char>(c);
    }
  }
  out_ += '"';
}

void tracer::num(std::uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out_.append(buf, end);
}

void tracer::ts(std::uint64_t ns) {  // microseconds, to the nanosecond
  num(ns / 1000);
  char frac[4] = {'.', char('0' + ns / 100 % 10), char('0' + ns / 10 % 10), char('0' + ns % 10)};
  out_.append(frac, 4);
}

// ---- the scheduler's side -------------------------------------------------------------------

tracer* make_tracer(scheduler_impl& s) {
  std::string path = s.opts.trace;
  const bool from_env = path.empty();
  if (from_env) {
    const char* e = std::getenv("STACKLESS_TRACE");
    if (!e || !*e) return nullptr;
    path = numbered(e, g_env_traces.fetch_add(1, std::memory_order_relaxed));  // relaxed: a count
  }
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (!f) {
    const int err = errno;
    if (!from_env)
      throw std::system_error(err, std::generic_category(),
                              "stackless: options::trace: cannot create " + path);
    std::fprintf(stderr, "stackless: STACKLESS_TRACE: cannot create %s: %s; no trace\n",
                 path.c_str(), std::strerror(err));
    return nullptr;
  }
  std::setvbuf(f, nullptr, _IOFBF, 1 << 20);
  auto* tr = new tracer(s, path, f, ring_capacity(s.opts.trace_buffer_events));
  for (unsigned i = 0; i < s.nworkers; ++i) s.workers[i]->trace = tr->rings[i].get();
  return tr;
}

void trace_finish(tracer* tr) noexcept {
  if (tr) tr->finish();
}

void trace_destroy(tracer* tr) noexcept { delete tr; }

void trace_put_any(scheduler_impl& s, trace_kind k, std::uint64_t id, std::uint64_t a,
                   std::uint64_t b) noexcept {
  // Inherited across fork(): the writer thread is not here, and the parent may have held a lock.
  if (s.forked.load(std::memory_order_relaxed)) return;  // relaxed: see scheduler_impl::forked
  worker* w = current_worker();
  if (w && w->sched == &s) {
    w->trace->put(k, id, a, b);
    return;
  }
  s.trace->put_side(k, id, a, b);
}

void trace_set_name(scheduler_impl& s, std::uint64_t id, const std::string& name) {
  s.trace->set_name(id, name);
}

void trace_run_begin_slow(worker_owned& w, tcb* t) noexcept {
  std::uint64_t flow = 0;
  if (t->trace_woken) {  // the first run since a wake: the end of its arrow
    t->trace_woken = false;
    flow = trace_flow_id(t->id, t->wait.gen);  // wait.gen: the park that wake ended
  }
  // w.current is still the tasklet that just left, in a direct switch (launch(), worker.cpp).
  w.trace->put_run_begin(t->id, flow, w.current != nullptr);
}

void trace_run_end_slow(worker_owned& w, tcb* t, switch_why why) noexcept {
  if (why == switch_why::park)
    w.trace->put(trace_kind::park, t->id, reinterpret_cast<std::uintptr_t>(t->wait_what),
                 t->wait_target);
  else
    w.trace->put(trace_kind::run_end, t->id, static_cast<std::uint64_t>(why));
}

void trace_spawn_slow(scheduler_impl& s, tcb* t) noexcept {
  worker* w = current_worker();
  const std::uint64_t parent = w && w->current ? w->current->id : 0;
  const char* file = t->spawned_at.file_name();
  const std::uint64_t site = file && *file ? reinterpret_cast<std::uintptr_t>(file) : 0;
  const std::uint64_t line = site ? t->spawned_at.line() : 0;
  trace_put_any(s, trace_kind::spawn, t->id, site,
                line << 40 | (parent & ((std::uint64_t{1} << 40) - 1)));
}

}  // namespace stackless::detail
