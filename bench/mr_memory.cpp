// SPDX-License-Identifier: Apache-2.0
// bench/mr_memory.cpp — stackless_mr_memory: what one per_key reducer costs in memory (a tasklet,
// its stack's touched pages, its channel, its router entry), against partitions(R) on the same
// job.
//
//   stackless_mr_memory [--keys 10000,100000,1000000] [--values 3] [--workers T]
//                       [--layouts per-key,partitions:8] [--combiner on|off]
//
// The job: map_reduce<uint64_t, uint64_t> over N distinct keys, each key emitted `values` times,
// by different inputs (64 × values inputs; input (r, i) emits every key of slice i once), so a
// key's values reach its reducer in separate batches; reduce adds. The combiner is off by default:
// with it on, a mapper would fold a key's values before the shuffle and the reducers would see
// fewer of them (the layouts' cost is the same either way).
//
// Each (N, layout) runs in a child process of its own (fork() before any scheduler exists), so a
// run starts from a clean heap and its peak is its own: the child makes its scheduler and inputs,
// resets the peak (echo 5 > /proc/self/clear_refs), reads VmRSS, runs the job, and reads VmHWM
// with the result still held. bytes per key = (VmHWM - VmRSS before) / N — everything the job
// held at its peak, result map included (the same for both layouts), so the difference per_key -
// partitions is what one reducer tasklet costs over a hash-map entry of a partition. The child
// also reports the tasklets the job spawned (scheduler::stats()) and the job's seconds; the parent
// prints each child's JSON line, then a table.
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "stackless/runtime/scheduler.hpp"
#include "stackless/sync/parallel.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

struct config {
  std::vector<std::uint64_t> keys{10'000, 100'000, 1'000'000};
  std::vector<std::string> layouts{"per-key", "partitions:8"};
  unsigned values = 3;
  unsigned workers = 0;
  bool combiner = false;
};

/// one_run is what a child measured.
struct one_run {
  std::string layout;
  std::uint64_t keys = 0;
  std::uint64_t spawned = 0;
  long long delta_kib = 0;
  double seconds = 0;
  std::uint64_t distinct = 0;
  bool ok = false;
};

/// status_kib() is a field of /proc/self/status in KiB (VmRSS, VmHWM), or -1.
long long status_kib(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::size_t n = std::strlen(field);
  while (std::getline(f, line))
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':')
      return std::atoll(line.c_str() + n + 1);
  return -1;
}

/// reset_peak() makes VmHWM the current VmRSS (Linux ≥ 4.0); false if it could not.
bool reset_peak() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at <= s.size()) {
    const std::size_t comma = s.find(',', at);
    const std::size_t end = comma == std::string::npos ? s.size() : comma;
    if (end > at) out.push_back(s.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

/// measure() runs one job in this process (the child) and prints its JSON line.
int measure(const config& c, const std::string& layout, std::uint64_t n) {
  stackless::map_reduce_options o;
  o.combiner = c.combiner;
  if (layout == "per-key")
    o.reducers = stackless::per_key;
  else if (layout.rfind("partitions:", 0) == 0)
    o.reducers = stackless::partitions(std::strtoul(layout.c_str() + 11, nullptr, 10));
  else
    return 64;

  stackless::scheduler s(stackless::options{.workers = c.workers});
  constexpr std::uint64_t slices = 64;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> inputs;  // [lo, hi) of keys, per round
  for (unsigned r = 0; r < c.values; ++r)
    for (std::uint64_t i = 0; i < slices; ++i)
      inputs.emplace_back(n * i / slices, n * (i + 1) / slices);
  // Warm the scheduler (its workers' first stacks, the pool) so that the baseline holds them.
  s.block_on([] { stackless::spawn([] {}).join(); });

  const bool peak_reset = reset_peak();
  const long long rss0 = status_kib("VmRSS");
  const std::uint64_t spawned0 = s.stats().spawned;
  const auto t0 = clock_type::now();
  auto out = stackless::map_reduce<std::uint64_t, std::uint64_t>(
      s, inputs,
      [](const std::pair<std::uint64_t, std::uint64_t>& in, auto& emit) {
        for (std::uint64_t k = in.first; k < in.second; ++k) emit(k, 1);
      },
      [](std::uint64_t& acc, std::uint64_t v) { acc += v; }, o);
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  const long long hwm = status_kib("VmHWM");
  const std::uint64_t spawned = s.stats().spawned - spawned0;

  bool right = out.size() == n;
  for (const auto& [k, v] : out) right = right && v == c.values;
  const long long delta = hwm - rss0;
  std::printf(
      "{\"job\": \"mr_memory\", \"layout\": \"%s\", \"keys\": %llu, \"values\": %u, "
      "\"workers\": %u, \"combiner\": %s, \"spawned\": %llu, \"rss_before_kib\": %lld, "
      "\"peak_kib\": %lld, \"peak_reset\": %s, \"peak_delta_bytes\": %lld, \"bytes_per_key\": "
      "%.1f, \"seconds\": %.6f, \"distinct\": %zu, \"ok\": %s}\n",
      layout.c_str(), static_cast<unsigned long long>(n), c.values, s.workers(),
      c.combiner ? "true" : "false", static_cast<unsigned long long>(spawned), rss0, hwm,
      peak_reset ? "true" : "false", delta * 1024, static_cast<double>(delta) * 1024.0 / n, secs,
      out.size(), right ? "true" : "false");
  std::fflush(stdout);
  return right ? 0 : 1;
}

/// field() pulls a number out of a child's JSON line (the lines are ours: flat, no nesting).
double field(const std::string& line, const std::string& name) {
  const std::string key = "\"" + name + "\": ";
  const std::size_t at = line.find(key);
  return at == std::string::npos ? -1 : std::atof(line.c_str() + at + key.size());
}

/// in_child() forks, runs measure() in the child and returns its JSON line ("" if it failed).
std::string in_child(const config& c, const std::string& layout, std::uint64_t n) {
  int fds[2];
  if (pipe(fds) != 0) return "";
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) return "";
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], STDOUT_FILENO);
    close(fds[1]);
    _exit(measure(c, layout, n));
  }
  close(fds[1]);
  std::string text;
  char buf[4096];
  for (ssize_t r; (r = read(fds[0], buf, sizeof buf)) != 0;) {
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break;
    text.append(buf, static_cast<std::size_t>(r));
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "stackless_mr_memory: %s, %llu keys: the child failed (status %d): %s\n",
                 layout.c_str(), static_cast<unsigned long long>(n), status, text.c_str());
    return "";
  }
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  config c;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--keys") {
      c.keys.clear();
      for (const std::string& k : split(v)) c.keys.push_back(std::strtoull(k.c_str(), nullptr, 10));
    } else if (a == "--layouts") {
      c.layouts = split(v);
    } else if (a == "--values") {
      c.values = static_cast<unsigned>(std::strtoul(v.c_str(), nullptr, 10));
    } else if (a == "--workers") {
      c.workers = static_cast<unsigned>(std::strtoul(v.c_str(), nullptr, 10));
    } else if (a == "--combiner" && (v == "on" || v == "off")) {
      c.combiner = v == "on";
    } else {
      std::fprintf(stderr,
                   "usage: %s [--keys N,N,...] [--values V] [--workers T] "
                   "[--layouts per-key,partitions:R,...] [--combiner on|off]\n",
                   argv[0]);
      return 64;
    }
  }
  if (argc % 2 == 0 || c.values == 0 || c.keys.empty()) {
    std::fprintf(stderr, "%s: bad arguments (see the top of bench/mr_memory.cpp)\n", argv[0]);
    return 64;
  }

  // bytes per key and seconds, by keys then layout, for the table.
  std::map<std::uint64_t, std::map<std::string, std::pair<double, double>>> table;
  std::map<std::uint64_t, std::map<std::string, double>> spawned;
  int rc = 0;
  for (std::uint64_t n : c.keys) {
    for (const std::string& layout : c.layouts) {
      const std::string line = in_child(c, layout, n);
      if (line.empty()) {
        rc = 1;
        continue;
      }
      std::printf("%s\n", line.c_str());
      table[n][layout] = {field(line, "bytes_per_key"), field(line, "seconds")};
      spawned[n][layout] = field(line, "spawned");
    }
  }
  std::printf("\n%-10s", "keys");
  for (const std::string& l : c.layouts) std::printf("  %28s", (l + " B/key, tasklets, s").c_str());
  if (c.layouts.size() == 2) std::printf("  %22s", "B per reducer (diff)");
  std::printf("\n");
  for (const auto& [n, row] : table) {
    std::printf("%-10llu", static_cast<unsigned long long>(n));
    for (const std::string& l : c.layouts) {
      auto it = row.find(l);
      if (it == row.end()) {
        std::printf("  %28s", "FAIL");
        continue;
      }
      char cell[64];
      std::snprintf(cell, sizeof cell, "%.0f, %.0f, %.3f", it->second.first, spawned[n][l],
                    it->second.second);
      std::printf("  %28s", cell);
    }
    if (c.layouts.size() == 2 && row.size() == 2)
      std::printf("  %22.0f", row.at(c.layouts[0]).first - row.at(c.layouts[1]).first);
    std::printf("\n");
  }
  return rc;
}
