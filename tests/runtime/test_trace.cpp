// SPDX-License-Identifier: Apache-2.0
// test_trace.cpp — options::trace / STACKLESS_TRACE (runtime/src/trace.cpp): a small workload
// (named tasklets that wake each other through a door, sleepers, a fork/join) runs with a trace
// file, and the file is read back: it is valid JSON; every flow start has its finish and vice
// versa; the run slices of a worker's track never overlap; there is one slice per run and one
// spawn instant per spawn, as scheduler::stats() counts them; parks carry their reason. A tiny
// ring (options::trace_buffer_events) forces drops, which the file reports and stays valid.
// TraceSample writes the sample that tests/tools/test_trace_summary.py feeds to
// tools/trace-summary (it does so when STACKLESS_TRACE is set, as that script sets it).
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "fixture.hpp"

namespace {

using namespace stackless_test;
namespace this_tasklet = stackless::this_tasklet;

// ---- a small JSON reader: enough to check the file, strict about the grammar ------------------

struct json;
using json_object = std::map<std::string, json>;
using json_array = std::vector<json>;
struct json {
  std::variant<std::nullptr_t, bool, double, std::string, json_array, json_object> v;
  bool is_object() const { return std::holds_alternative<json_object>(v); }
  const json_object& object() const { return std::get<json_object>(v); }
  const json_array& array() const { return std::get<json_array>(v); }
  bool has(const std::string& k) const { return is_object() && object().count(k) != 0; }
  const json& operator[](const std::string& k) const { return object().at(k); }
  const std::string& str() const { return std::get<std::string>(v); }
  double num() const { return std::get<double>(v); }
};

class json_reader {
 public:
  explicit json_reader(const std::string& text) : s_(text) {}
  // parse_document() is the whole text as one value, or throws std::runtime_error.
  json parse_document() {
    json j = value();
    space();
    if (i_ != s_.size()) fail("text after the value");
    return j;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error("JSON: " + what + " at offset " + std::to_string(i_));
  }
  void space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r'))
      ++i_;
  }
  bool eat(char c) {
    space();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(std::string("expected '") + c + "'");
  }
  json value() {
    space();
    if (i_ >= s_.size()) fail("unexpected end");
    const char c = s_[i_];
    if (c == '{') return json{object()};
    if (c == '[') return json{array()};
    if (c == '"') return json{string()};
    if (s_.compare(i_, 4, "true") == 0) return i_ += 4, json{true};
    if (s_.compare(i_, 5, "false") == 0) return i_ += 5, json{false};
    if (s_.compare(i_, 4, "null") == 0) return i_ += 4, json{nullptr};
    return json{number()};
  }
  json_object object() {
    json_object o;
    expect('{');
    if (eat('}')) return o;
    do {
      space();
      std::string k = string();
      expect(':');
      o[k] = value();
    } while (eat(','));
    expect('}');
    return o;
  }
  json_array array() {
    json_array a;
    expect('[');
    if (eat(']')) return a;
    do a.push_back(value());
    while (eat(','));
    expect(']');
    return a;
  }
  std::string string() {
    if (i_ >= s_.size() || s_[i_] != '"') fail("expected a string");
    ++i_;
    std::string out;
    for (;;) {
      if (i_ >= s_.size()) fail("unterminated string");
      const char c = s_[i_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) fail("unterminated escape");
      const char e = s_[i_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u':
          if (i_ + 4 > s_.size()) fail("short \\u escape");
          out += '?';  // the checks never need the character itself
          i_ += 4;
          break;
        default:
          fail("bad escape");
      }
    }
  }
  double number() {
    const std::size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    auto digits = [&] {
      const std::size_t d = i_;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
      if (i_ == d) fail("expected a digit");
    };
    digits();
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      digits();
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      digits();
    }
    return std::stod(s_.substr(start, i_ - start));
  }

  const std::string& s_;
  std::size_t i_ = 0;
};

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

/// trace_path() is a fresh file name in the temporary directory for this test.
std::string trace_path(const std::string& tag) {
  const char* dir = std::getenv("TMPDIR");
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->test_suite_name()) + "." + info->name();
  for (char& c : name)
    if (c == '/') c = '_';
  return std::string(dir && *dir ? dir : "/tmp") + "/stackless-trace-" +
         std::to_string(::getpid()) + "-" + name + "-" + tag + ".json";
}

// ---- the workload -----------------------------------------------------------------------------

/// run_workload(): named tasklets that wake each other through two doors (parks "test-door"),
/// sleepers (timers), a fork/join (parks "join"), yielders. Joined from the plain thread. Each
/// waits (sleeping: a yield loop would fill the trace) until all are named — a tasklet may run,
/// even end, before spawn() returns.
void run_workload(sl::scheduler& s, int rounds) {
  door ping, pong;
  std::atomic<bool> named{false};
  auto gate = [&] {
    while (!named.load()) this_tasklet::sleep_for(200us);
  };
  auto ponger = s.spawn([&] {
    gate();
    for (int i = 0; i < rounds; ++i) {
      ping.wait();
      pong.open();
    }
  });
  ponger.set_name("ponger");
  auto pinger = s.spawn([&] {
    gate();
    for (int i = 0; i < rounds; ++i) {
      ping.open();
      pong.wait();
    }
  });
  pinger.set_name("pinger");
  auto sleeper = s.spawn([&] {
    gate();
    for (int i = 0; i < 3; ++i) this_tasklet::sleep_for(1ms);
  });
  sleeper.set_name("sleeper");
  auto forker = s.spawn([&] {
    gate();
    std::vector<sl::tasklet<int>> kids;
    for (int i = 0; i < 16; ++i)
      kids.push_back(sl::spawn([i] {
        this_tasklet::yield();
        return i;
      }));
    int sum = 0;
    for (auto& k : kids) sum += k.join();
    return sum;
  });
  forker.set_name("forker");
  named = true;
  ponger.join();
  pinger.join();
  sleeper.join();
  EXPECT_EQ(forker.join(), 120);
}

// ---- reading a trace back ---------------------------------------------------------------------

struct trace_facts {
  json_array events;
  std::map<double, std::vector<std::pair<double, double>>> slices;  // tid -> (ts, dur)
  std::map<double, std::size_t> runs_per_tid;
  std::multiset<std::string> slice_names;
  std::size_t spawns = 0;
  std::multiset<double> flow_starts, flow_ends;
  std::multiset<std::string> park_reasons;
  const json* end = nullptr;  // the "trace end" instant
  std::size_t dropped_instants = 0;
};

trace_facts read_trace(const std::string& path) {
  trace_facts f;
  const std::string text = slurp(path);
  json doc = json_reader(text).parse_document();  // throws if it is not valid JSON
  f.events = doc.array();
  for (const json& e : f.events) {
    const std::string& ph = e["ph"].str();
    const std::string& name = e["name"].str();
    if (ph == "X") {
      f.slices[e["tid"].num()].emplace_back(e["ts"].num(), e["dur"].num());
      ++f.runs_per_tid[e["tid"].num()];
      f.slice_names.insert(name);
    } else if (ph == "s") {
      f.flow_starts.insert(e["id"].num());
    } else if (ph == "f") {
      f.flow_ends.insert(e["id"].num());
      EXPECT_EQ(e["bp"].str(), "e");
    } else if (ph == "i" && name == "spawn") {
      ++f.spawns;
    } else if (ph == "i" && name == "park") {
      f.park_reasons.insert(e["args"]["reason"].str());
    } else if (ph == "i" && name == "dropped events") {
      ++f.dropped_instants;
    } else if (ph == "i" && name == "trace end") {
      f.end = &e;
    }
  }
  return f;
}

class TraceTest : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(TraceTest);

TEST_P(TraceTest, TheFileIsValidAndMatchesTheStats) {
  const std::string path = trace_path("full");
  sl::options o = opts();
  o.trace = path;
  sl::scheduler& s = sched(o);
  run_workload(s, 50);
  s.shutdown();  // the file is complete when it returns
  const sl::scheduler_stats st = s.stats();

  trace_facts f;
  ASSERT_NO_THROW(f = read_trace(path)) << path;
  ASSERT_NE(f.end, nullptr) << "no 'trace end' event";
  EXPECT_EQ((*f.end)["args"]["dropped_total"].num(), 0);
  EXPECT_EQ(f.dropped_instants, 0u);

  // Every wake's arrow ends at a run, and every arrow that ends was started.
  EXPECT_EQ(f.flow_starts, f.flow_ends);
  EXPECT_FALSE(f.flow_starts.empty());

  // One track per worker; a slice per run; never two at once on a track.
  for (unsigned i = 0; i < workers(); ++i)
    EXPECT_EQ(f.runs_per_tid[i + 1], st.workers[i].runs) << "worker " << i << "\n" << describe(st);
  for (auto& [tid, v] : f.slices) {
    std::sort(v.begin(), v.end());
    for (std::size_t k = 1; k < v.size(); ++k)
      EXPECT_LE(v[k - 1].first + v[k - 1].second, v[k].first + 1e-6)
          << "overlapping slices on tid " << tid << " at " << v[k].first;
  }
  EXPECT_EQ(f.spawns, st.spawned);

  // Names and reasons.
  EXPECT_EQ(f.slice_names.count("pinger") > 0, true);
  EXPECT_EQ(f.slice_names.count("ponger") > 0, true);
  EXPECT_GE(f.slice_names.count("sleeper"), 4u);  // its first run and one after each timer
  EXPECT_GE(f.park_reasons.count("test-door"), 50u);
  EXPECT_GT(f.park_reasons.count("join"), 0u);
  std::size_t timers = 0, worker_names = 0;
  for (const json& e : f.events) {
    if (e["ph"].str() == "i" && e["name"].str() == "timer") ++timers;
    if (e["ph"].str() == "M" && e["name"].str() == "thread_name") ++worker_names;
  }
  EXPECT_GE(timers, 3u);
  EXPECT_EQ(worker_names, workers() + 1);        // and "plain threads"
  if (!HasFailure()) std::remove(path.c_str());  // kept for a look when a check failed
}

TEST_P(TraceTest, ATinyRingDropsAndSaysSo) {
  const std::string path = trace_path("tiny");
  sl::options o = opts();
  o.trace = path;
  o.trace_buffer_events = 16;
  sl::scheduler& s = sched(o);
  s.block_on([] {
    auto a = sl::spawn([] {
      for (int i = 0; i < 5000; ++i) this_tasklet::yield();
    });
    for (int i = 0; i < 5000; ++i) this_tasklet::yield();
    a.join();
  });
  s.shutdown();
  trace_facts f;
  ASSERT_NO_THROW(f = read_trace(path)) << path;
  ASSERT_NE(f.end, nullptr);
  EXPECT_GT((*f.end)["args"]["dropped_total"].num(), 0);
  EXPECT_GT(f.dropped_instants, 0u);
  if (!HasFailure()) std::remove(path.c_str());  // kept for a look when a check failed
}

// Soft preemptions (quantum 1 ms, two hogs a worker that only call checkpoint()) are in the
// trace, as many as stats() counts. Whether the monitor preempts anything in time on a loaded
// machine is not asserted (tests never assert timing): only that the counts agree.
TEST_P(TraceTest, PreemptionsAreTraced) {
  const std::string path = trace_path("preempt");
  sl::options o = opts();
  o.trace = path;
  o.quantum = std::chrono::milliseconds(1);
  o.stall_warning = std::chrono::milliseconds(0);
  sl::scheduler& s = sched(o);
  std::vector<sl::tasklet<void>> hogs;
  for (unsigned i = 0; i < 2 * workers(); ++i)
    hogs.push_back(s.spawn([] {
      const auto end = std::chrono::steady_clock::now() + 30ms;
      while (std::chrono::steady_clock::now() < end) this_tasklet::checkpoint();
    }));
  for (auto& h : hogs) h.join();
  s.shutdown();
  const sl::scheduler_stats st = s.stats();
  trace_facts f;
  ASSERT_NO_THROW(f = read_trace(path)) << path;
  ASSERT_NE(f.end, nullptr);
  EXPECT_EQ((*f.end)["args"]["dropped_total"].num(), 0);
  std::size_t preempts = 0;
  for (const json& e : f.events)
    if (e["ph"].str() == "i" && e["name"].str() == "preempt") ++preempts;
  EXPECT_EQ(preempts, st.soft_preemptions + st.hard_preemptions);
  RecordProperty("preempts", static_cast<int>(preempts));
  for (unsigned i = 0; i < workers(); ++i) EXPECT_EQ(f.runs_per_tid[i + 1], st.workers[i].runs);
  if (!HasFailure()) std::remove(path.c_str());  // kept for a look when a check failed
}

TEST_P(TraceTest, AnUnwritablePathThrows) {
  sl::options o = opts();
  o.trace = "/nonexistent-dir/for/sure/trace.json";
  EXPECT_THROW(sl::scheduler bad(o), std::system_error);
}

// TraceSample: with STACKLESS_TRACE set (tests/tools/test_trace_summary.py sets it and runs this
// test alone), two schedulers write <path> and <path>.1; without it, it only runs the workload.
TEST(TraceSample, WritesTheEnvironmentsFile) {
  const char* env = std::getenv("STACKLESS_TRACE");
  for (int n = 0; n < 2; ++n) {
    sl::options o;
    o.workers = 2;
    o.name = "sample";
    sl::scheduler s(o);
    run_workload(s, 20);
    expect_clean(s);
  }
  if (!env || !*env) return;
  std::string second = env;
  if (second.size() > 5 && second.compare(second.size() - 5, 5, ".json") == 0)
    second = second.substr(0, second.size() - 5) + ".1.json";
  else
    second += ".1";
  for (const std::string& p : {std::string(env), second}) {
    trace_facts f;
    ASSERT_NO_THROW(f = read_trace(p)) << p;
    EXPECT_GT(f.slice_names.count("pinger"), 0u) << p;
  }
}

}  // namespace
