// SPDX-License-Identifier: Apache-2.0
// tools/wordcount/main.cpp — stackless-wordcount: counts the words of the text files under the
// paths given with map_reduce() on tasklets, and prints the top K, the totals and the time
// (cli.cpp has the flags; job.cpp the pipeline; progress.cpp the bar; chart.cpp the SVG).
//
//   stackless-wordcount [--workers N] [--reducers partitions:R|per-key] [--combiner on|off]
//                       [--top K] [--json] [--compare [--chart FILE.svg]] PATH...
//
// What a run does: list the files (words.hpp's collect_files(): a named path that is missing is
// reported and makes the exit status 1), stat them for the progress bar's total, then run_job()
// on a scheduler of its own. --compare runs the job once untimed at the largest worker count
// (so that every timed run finds the files in the page cache), then at 1, 2, … N workers, each
// on a new scheduler; every run must give the totals and the top list of the first, or the
// command fails (exit status 3).
#include <sys/utsname.h>

#include <cstdio>
#include <ctime>
#include <exception>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "chart.hpp"
#include "cli.hpp"
#include "job.hpp"
#include "progress.hpp"
#include "words.hpp"

namespace wc = stackless::wordcount;
namespace fs = std::filesystem;

namespace {

/// grouped() is n with thousands separators: 1,234,567.
std::string grouped(std::uint64_t n) {
  // Copied digit by digit (s.insert(i, ",") trips GCC 12's false -Wrestrict, bug 105329).
  const std::string digits = std::to_string(n);
  std::string s;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) s.push_back(',');
    s.push_back(digits[i]);
  }
  return s;
}

std::string fixed(double v, int decimals) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

std::string mb(std::uint64_t bytes) { return fixed(static_cast<double>(bytes) * 1e-6, 1) + " MB"; }

/// json_string() quotes s for JSON.
std::string json_string(std::string_view s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += static_cast<char>(c);
    } else if (c < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else {
      o += static_cast<char>(c);
    }
  }
  return o + "\"";
}

/// listing is the input: the files, their total size (when a progress bar needs it: a stat()
/// per file), and whether a named path was missing.
struct listing {
  std::vector<wc::input_file> files;
  std::uint64_t bytes = 0;
  bool named_missing = false;
};

listing list_inputs(const std::vector<fs::path>& paths, wc::console& con, bool sizes) {
  listing l;
  std::set<fs::path> named;  // the paths given that are regular files themselves
  for (const fs::path& p : paths) {
    std::error_code ec;
    if (fs::is_regular_file(fs::symlink_status(p, ec))) named.insert(p);
  }
  const auto found = wc::collect_files(paths, [&](const fs::path& p, std::error_code ec) {
    con.line("stackless-wordcount: " + p.string() + ": " + ec.message());
    l.named_missing = true;
  });
  l.files.reserve(found.size());
  for (const fs::path& f : found) {
    std::error_code ec;
    const std::uint64_t size = sizes ? fs::file_size(f, ec) : 0;
    l.files.push_back({f, ec ? 0 : size, named.count(f) != 0});
    l.bytes += ec ? 0 : size;
  }
  return l;
}

/// run() is one run, with a progress bar while it goes.
wc::job_result run(const listing& in, const wc::job_config& cfg, wc::console& con,
                   const std::string& label) {
  wc::job_live live;
  wc::progress_bar bar(con, live, in.files.size(), in.bytes, label);
  return wc::run_job(in.files, cfg, live, [&](std::string_view line) { con.line(line); });
}

double per_second(double amount, double seconds) { return seconds > 0 ? amount / seconds : 0; }

void print_report(const wc::job_result& r, bool combiner) {
  std::string o;
  if (!r.top.empty()) {
    o += "top " + std::to_string(r.top.size()) + " words\n";
    std::size_t wide = 4;
    for (const auto& [w, n] : r.top) wide = std::max(wide, w.size());
    for (std::size_t i = 0; i < r.top.size(); ++i) {
      const auto& [w, n] = r.top[i];
      const double share =
          r.words ? 100.0 * static_cast<double>(n) / static_cast<double>(r.words) : 0;
      char line[64];
      std::snprintf(line, sizeof line, "%4zu. ", i + 1);
      o += line + w + std::string(wide - w.size() + 2, ' ');
      const std::string count = grouped(n);
      o += std::string(count.size() < 13 ? 13 - count.size() : 0, ' ') + count + "  (" +
           fixed(share, 2) + " %)\n";
    }
  }
  o += "files     " + grouped(r.files) + " (" + grouped(r.skipped) + " binary skipped, " +
       grouped(r.unreadable) + " unreadable)\n";
  o += "bytes     " + grouped(r.bytes) + " (" + mb(r.bytes) + ")\n";
  o += "words     " + grouped(r.words) + "\n";
  o += "distinct  " + grouped(r.distinct) + "\n";
  o += "time      " + fixed(r.seconds, 3) + " s (" +
       fixed(per_second(static_cast<double>(r.bytes) * 1e-6, r.seconds), 1) + " MB/s, " +
       fixed(per_second(static_cast<double>(r.words) * 1e-6, r.seconds), 2) + " M words/s; " +
       std::to_string(r.workers) + " worker" + (r.workers == 1 ? "" : "s") + ", reducers " +
       r.reducers + ", combiner " + (combiner ? "on" : "off") + ")\n";
  std::fputs(o.c_str(), stdout);
}

std::string json_object(const wc::job_result& r, bool combiner, const std::string& extra) {
  std::string o =
      "{\"files\": " + std::to_string(r.files) + ", \"bytes\": " + std::to_string(r.bytes) +
      ", \"words\": " + std::to_string(r.words) + ", \"distinct\": " + std::to_string(r.distinct) +
      ", \"skipped\": " + std::to_string(r.skipped) +
      ", \"unreadable\": " + std::to_string(r.unreadable) + ", \"top\": [";
  for (std::size_t i = 0; i < r.top.size(); ++i)
    o += std::string(i ? ", " : "") + "{\"word\": " + json_string(r.top[i].first) +
         ", \"count\": " + std::to_string(r.top[i].second) + "}";
  o += "], \"seconds\": " + fixed(r.seconds, 6) + ", \"workers\": " + std::to_string(r.workers) +
       ", \"reducers\": " + json_string(r.reducers) +
       ", \"combiner\": " + (combiner ? "true" : "false") + extra + "}\n";
  return o;
}

/// cpu_model() is /proc/cpuinfo's first "model name" (or "unknown CPU").
std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const std::size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string m = line.substr(colon + 1);
        m.erase(0, m.find_first_not_of(" \t"));
        return m;
      }
    }
  }
  return "unknown CPU";
}

std::string now_text() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char b[64];
  std::strftime(b, sizeof b, "%Y-%m-%d %H:%M %Z", &tm);
  return b;
}

std::vector<std::string> caption(const wc::job_result& r, const std::vector<fs::path>& paths,
                                 bool combiner) {
  utsname u{};
  const std::string kernel = ::uname(&u) == 0 ? std::string(u.sysname) + " " + u.release : "";
  std::string inputs;
  for (const fs::path& p : paths) inputs += (inputs.empty() ? "" : ", ") + p.string();
  return {
      "Measured " + now_text() + " by stackless-wordcount --compare: one timed run per worker " +
          "count after an untimed warm-up; reducers " + r.reducers + " (at " +
          std::to_string(r.workers) + " workers), combiner " + (combiner ? "on" : "off") + ".",
      "Machine: " + std::to_string(std::thread::hardware_concurrency()) +
          " hardware threads (nproc), " + cpu_model() + (kernel.empty() ? "" : ", " + kernel) + ".",
      "Input: " + inputs + " — " + grouped(r.files) + " text files, " + mb(r.bytes) + ", " +
          grouped(r.words) + " words (" + grouped(r.distinct) + " distinct); " +
          grouped(r.skipped) + (r.skipped == 1 ? " binary file" : " binary files") + " skipped.",
  };
}

/// compare() is --compare: the runs, the table, the chart. Returns the exit status.
int compare(const wc::command_line& cl, const listing& in, wc::job_config cfg, wc::console& con) {
  const unsigned most = cl.workers.value_or(std::max(1u, std::thread::hardware_concurrency()));
  cfg.workers = most;
  const wc::job_result warm = run(in, cfg, con, "warm-up");
  cfg.report_unreadable = false;  // reported once, by the warm-up
  std::vector<wc::job_result> runs;
  for (unsigned w = 1; w <= most; ++w) {
    cfg.workers = w;
    runs.push_back(run(in, cfg, con, "T=" + std::to_string(w)));
    if (!runs.back().same_counts(warm)) {
      con.line("stackless-wordcount: --compare: the run at " + std::to_string(w) +
               " workers disagrees with the run at " + std::to_string(most) +
               " (totals or top list): a bug");
      return 3;
    }
  }
  const double base = std::max(runs.front().seconds, 1e-9);
  std::vector<wc::chart_run> points;
  std::string table = "workers   seconds   speedup      words/s       MB/s\n";
  std::string extra = ", \"compare\": [";
  for (const wc::job_result& r : runs) {
    const double s = std::max(r.seconds, 1e-9);
    points.push_back({r.workers, s});
    char line[160];
    std::snprintf(line, sizeof line, "%7u  %8.3f  %7.2fx  %11s  %9.1f\n", r.workers, s, base / s,
                  (fixed(static_cast<double>(r.words) / s * 1e-6, 2) + " M").c_str(),
                  static_cast<double>(r.bytes) / s * 1e-6);
    table += line;
    extra += std::string(r.workers > 1 ? ", " : "") + "{\"workers\": " + std::to_string(r.workers) +
             ", \"seconds\": " + fixed(s, 6) + ", \"speedup\": " + fixed(base / s, 4) +
             ", \"words_per_second\": " + fixed(static_cast<double>(r.words) / s, 0) + "}";
  }
  extra += "], \"chart\": " + json_string(cl.chart);

  const std::string svg =
      wc::speedup_svg(points, "stackless-wordcount: speedup against the number of workers",
                      caption(runs.back(), cl.paths, cfg.combiner));
  std::ofstream out(cl.chart, std::ios::binary | std::ios::trunc);
  out << svg;
  out.close();
  const bool written = static_cast<bool>(out);
  if (!written) con.line("stackless-wordcount: --chart: cannot write " + cl.chart);

  if (cl.json) {
    std::fputs(json_object(runs.back(), cfg.combiner, extra).c_str(), stdout);
  } else {
    print_report(runs.back(), cfg.combiner);
    std::fputs(("\n" + table).c_str(), stdout);
    if (written) std::printf("chart: %s\n", cl.chart.c_str());
  }
  if (!written) return 1;
  return in.named_missing || warm.named_unreadable ? 1 : 0;
}

int main_checked(const std::vector<std::string>& args) {
  wc::command_line cl;
  try {
    cl = wc::parse_command_line(args);
  } catch (const wc::bad_usage& e) {
    // The message, then the synopsis (the usage text's first paragraph).
    const std::string usage = wc::usage_text;
    std::fprintf(stderr, "stackless-wordcount: %s\n%s\n(--help says more)\n", e.what(),
                 usage.substr(0, usage.find("\n\n") + 1).c_str());
    return 2;
  }
  if (cl.help) {
    std::fputs(wc::usage_text, stdout);
    return 0;
  }
  wc::console con;
  const listing in = list_inputs(cl.paths, con, con.tty());

  wc::job_config cfg;
  cfg.reducers = cl.reducers;
  cfg.combiner = cl.combiner;
  cfg.top = cl.top;
  if (cl.compare) return compare(cl, in, cfg, con);

  cfg.workers = cl.workers.value_or(std::max(1u, std::thread::hardware_concurrency()));
  const wc::job_result r = run(in, cfg, con, "");
  if (cl.json)
    std::fputs(json_object(r, cfg.combiner, "").c_str(), stdout);
  else
    print_report(r, cfg.combiner);
  return in.named_missing || r.named_unreadable ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return main_checked(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stackless-wordcount: error: %s\n", e.what());
    return 3;
  }
}
