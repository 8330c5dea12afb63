// SPDX-License-Identifier: Apache-2.0
// bench/wordcount_baseline.cpp — peer_wordcount_baseline: the word count and the inverted index
// of the map/reduce benchmark on one thread, with nothing but the standard library: the floor
// every parallel version is measured against (speedup over the best serial program, not over
// itself at T=1).
//
//   peer_wordcount_baseline wordcount|index PATH...     (--workers is accepted and must be 1)
//
// The same files, reads and words as every other C++ program (bench/wordcount_common.hpp,
// tools/wordcount/words.hpp); one std::unordered_map looked up with a std::string_view. The
// index visits files in id order, so its lists come out sorted and need no sort. Prints the one
// JSON line of bench/wordcount_common.hpp.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "wordcount_common.hpp"

namespace {

namespace fs = std::filesystem;
namespace wc = bench::wc;

void count_file(const wc::scan_outcome& r, wc::result& out) {
  if (r.status == wc::scan_status::binary) ++out.binary;
  if (r.status == wc::scan_status::unreadable) ++out.unreadable;
  out.bytes += r.bytes;
}

void wordcount(const wc::cli& c, wc::result& out) {
  const auto t0 = wc::clock_type::now();
  const std::vector<fs::path> files = wc::list_files(c.paths);
  std::vector<char> buf;
  wc::counts m;
  std::uint64_t words = 0;
  for (const fs::path& p : files) {
    count_file(wc::scan_file(p.c_str(), buf,
                             [&](std::string_view w) {
                               ++words;
                               wc::add_word(m, w);
                             }),
               out);
  }
  out.seconds = wc::seconds_since(t0);
  out.files = files.size();
  out.words = words;
  out.distinct = m.size();
  for (const auto& [w, k] : m) out.digest += wc::count_digest(w, k);
}

void index(const wc::cli& c, wc::result& out) {
  using ids = std::vector<std::uint32_t>;
  const auto t0 = wc::clock_type::now();
  const std::vector<fs::path> files = wc::list_files(c.paths);
  std::vector<char> buf;
  std::unordered_map<std::string, ids, wc::string_hash, std::equal_to<>> m;
  std::uint64_t words = 0;
  for (std::uint32_t id = 0; id < files.size(); ++id) {
    count_file(wc::scan_file(files[id].c_str(), buf,
                             [&](std::string_view w) {
                               ++words;
                               auto it = m.find(w);
                               if (it == m.end()) it = m.emplace(std::string(w), ids{}).first;
                               // A word seen earlier in this file is already listed.
                               if (it->second.empty() || it->second.back() != id)
                                 it->second.push_back(id);
                             }),
               out);
  }
  out.seconds = wc::seconds_since(t0);
  out.files = files.size();
  out.words = words;
  out.distinct = m.size();
  for (const auto& [w, l] : m) {
    out.postings += l.size();
    out.digest += wc::list_digest(w, l);
  }
}

}  // namespace

int main(int argc, char** argv) {
  wc::cli c;
  if (!wc::parse(argc, argv, c, [](const std::string&, const std::string&) { return false; }) ||
      c.workers != 1 || (c.job != "wordcount" && c.job != "index")) {
    std::fprintf(stderr, "usage: %s wordcount|index PATH...\n", argv[0]);
    return 64;
  }
  wc::result out;
  out.impl = "baseline";
  out.job = c.job;
  if (c.job == "wordcount")
    wordcount(c, out);
  else
    index(c, out);
  out.print();
  return 0;
}
