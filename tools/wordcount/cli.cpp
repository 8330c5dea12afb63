// SPDX-License-Identifier: Apache-2.0
// tools/wordcount/cli.cpp — parse_command_line() (cli.hpp). Flags take their value as the next
// argument or after '=' (--workers 2, --workers=2); `--` ends the flags; every error names the
// flag it is about.
#include "cli.hpp"

#include <charconv>
#include <string_view>

namespace stackless::wordcount {

const char* const usage_text =
    "usage: stackless-wordcount [--workers N] [--reducers partitions:R|per-key]\n"
    "                           [--combiner on|off] [--top K] [--json]\n"
    "                           [--compare [--chart FILE.svg]] PATH...\n"
    "\n"
    "Counts the words ([A-Za-z0-9_]+, folded to lower case) of every regular text file under\n"
    "the PATHs (directories recursively; files with a NUL byte in their first 8 KiB are binary:\n"
    "skipped and counted) and prints the top K words, the totals and the time.\n"
    "\n"
    "  --workers N        worker threads (default: one per hardware thread); with --compare,\n"
    "                     the largest count compared\n"
    "  --reducers L       partitions:R (R reducer tasklets, keys hashed to them; default\n"
    "                     partitions:4 per worker) or per-key (a reducer tasklet per word)\n"
    "  --combiner on|off  fold counts in each mapper before the shuffle (default on)\n"
    "  --top K            how many words to list (default 10)\n"
    "  --json             print one JSON object instead of the report\n"
    "  --compare          run at 1, 2, ... N workers (N: the hardware threads), check that the\n"
    "                     runs agree, print a table and write a speedup chart\n"
    "  --chart FILE.svg   where --compare writes the chart (default wordcount-compare.svg)\n"
    "\n"
    "Exit status: 0 ok; 1 a PATH given could not be read (the others are counted and\n"
    "reported); 2 bad usage; 3 the job failed, or --compare runs disagreed.\n";

namespace {

std::size_t number(const std::string& flag, const std::string& v, std::size_t lo, std::size_t hi) {
  std::size_t n = 0;
  const char* end = v.data() + v.size();
  auto [p, ec] = std::from_chars(v.data(), end, n);
  if (v.empty() || ec != std::errc() || p != end || n < lo || n > hi)
    throw bad_usage(flag + ": '" + v + "' is not a number from " + std::to_string(lo) + " to " +
                    std::to_string(hi));
  return n;
}

reducer_layout layout(const std::string& flag, const std::string& v) {
  if (v == "per-key" || v == "per_key") return per_key;
  if (v == "partitions") return {};
  constexpr std::string_view prefix = "partitions:";
  if (v.compare(0, prefix.size(), prefix) == 0)
    return partitions(number(flag, v.substr(prefix.size()), 1, 1'000'000));
  throw bad_usage(flag + ": '" + v + "' is neither partitions:R nor per-key");
}

bool on_off(const std::string& flag, const std::string& v) {
  if (v == "on") return true;
  if (v == "off") return false;
  throw bad_usage(flag + ": '" + v + "' is neither on nor off");
}

}  // namespace

command_line parse_command_line(const std::vector<std::string>& args) {
  command_line c;
  bool chart_given = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      c.paths.insert(c.paths.end(), args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
      break;
    }
    if (a.size() < 2 || a[0] != '-') {
      c.paths.emplace_back(a);
      continue;
    }
    // The flag, and its inline value (--flag=value) if any.
    const std::size_t eq = a.find('=');
    const std::string flag = a.substr(0, eq);
    std::optional<std::string> inline_value;
    if (eq != std::string::npos) inline_value = a.substr(eq + 1);
    auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      if (i + 1 >= args.size()) throw bad_usage(flag + " needs a value");
      return args[++i];
    };
    auto no_value = [&] {
      if (inline_value) throw bad_usage(flag + " takes no value");
    };
    if (flag == "--workers") {
      c.workers = static_cast<unsigned>(number(flag, value(), 1, 1024));
    } else if (flag == "--reducers") {
      c.reducers = layout(flag, value());
    } else if (flag == "--combiner") {
      c.combiner = on_off(flag, value());
    } else if (flag == "--top") {
      c.top = number(flag, value(), 0, 1'000'000);
    } else if (flag == "--json") {
      no_value();
      c.json = true;
    } else if (flag == "--compare") {
      no_value();
      c.compare = true;
    } else if (flag == "--chart") {
      c.chart = value();
      chart_given = true;
      if (c.chart.empty()) throw bad_usage("--chart needs a file name");
    } else if (flag == "-h" || flag == "--help") {
      c.help = true;
    } else {
      throw bad_usage(flag + ": unknown flag");
    }
  }
  if (c.help) return c;
  if (chart_given && !c.compare) throw bad_usage("--chart: only --compare draws a chart");
  if (c.paths.empty()) throw bad_usage("no PATH given");
  return c;
}

}  // namespace stackless::wordcount
