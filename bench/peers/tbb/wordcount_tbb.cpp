// SPDX-License-Identifier: Apache-2.0
// bench/peers/tbb/wordcount_tbb.cpp — peer_wordcount_tbb: the word count and the inverted index
// of the map/reduce benchmark on oneTBB, in its usual idiom for a histogram.
//
//   peer_wordcount_tbb wordcount|index --workers T [--merge serial|parallel] PATH...
//
// tbb::parallel_for over the files (one file is the unit, auto_partitioner; largest first, as
// ours: wordcount_common.hpp's largest_first()), each thread
// counting into its own map (tbb::enumerable_thread_specific: no lock, no sharing), then one
// merge. --merge serial (default) folds every thread's map into the largest one on the calling
// thread; --merge parallel splits the keys into 64 hash partitions and merges each in a task
// (map_reduce's shape: more hashing, less waiting) — tools/bench_wordcount.py runs the faster.
// The index: each thread's map holds word → ids; a file is mapped by one thread from start to
// end, so "is this file already the list's last id" removes repeats; the merge concatenates the
// lists and a tbb::parallel_for sorts them. The same reads and words as every C++ program
// (bench/wordcount_common.hpp); T threads: a task_arena of T slots under a global_control that
// caps the process at T (as bench/peers/tbb/peer_tbb.cpp). Prints the JSON line of
// bench/wordcount_common.hpp.
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/enumerable_thread_specific.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
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

using ids = std::vector<std::uint32_t>;
using lists = std::unordered_map<std::string, ids, wc::string_hash, std::equal_to<>>;

/// local is one thread's share: its map, its read buffer and its file counts.
template <class Map>
struct local {
  Map m;
  std::vector<char> buf;
  std::uint64_t binary = 0, unreadable = 0, bytes = 0, words = 0;

  void count(const wc::scan_outcome& r) {
    if (r.status == wc::scan_status::binary) ++binary;
    if (r.status == wc::scan_status::unreadable) ++unreadable;
    bytes += r.bytes;
  }
};

template <class Map>
void totals(tbb::enumerable_thread_specific<local<Map>>& locals, wc::result& out) {
  for (auto& l : locals) {
    out.binary += l.binary;
    out.unreadable += l.unreadable;
    out.bytes += l.bytes;
    out.words += l.words;
  }
}

/// fold() moves one entry into `into`: counts add up, lists are concatenated.
void fold(wc::counts& into, const std::string& w, std::uint64_t k) { wc::add_word(into, w, k); }
void fold(lists& into, const std::string& w, ids& l) {
  auto [it, fresh] = into.try_emplace(w);
  if (fresh)
    it->second = std::move(l);
  else
    it->second.insert(it->second.end(), l.begin(), l.end());
}

/// merge() is the threads' maps merged into one. Serial: every other map is folded into the
/// largest, on this thread. Parallel: each thread's map is split into `parts` maps by hash (a
/// task per thread's map, nodes moved, not copied), each partition is merged in a task, and the
/// partitions are spliced into one map (nodes again).
template <class Map>
Map merge(tbb::enumerable_thread_specific<local<Map>>& locals, bool parallel) {
  std::vector<Map*> maps;
  for (auto& l : locals) maps.push_back(&l.m);
  if (maps.empty()) return {};
  std::sort(maps.begin(), maps.end(), [](Map* a, Map* b) { return a->size() > b->size(); });
  if (!parallel || maps.size() == 1) {
    for (std::size_t i = 1; i < maps.size(); ++i)
      for (auto& [w, v] : *maps[i]) fold(*maps[0], w, v);
    return std::move(*maps[0]);
  }
  constexpr std::size_t parts = 64;
  std::vector<std::vector<Map>> split(maps.size(), std::vector<Map>(parts));
  tbb::parallel_for(std::size_t{0}, maps.size(), [&](std::size_t i) {
    Map& m = *maps[i];
    while (!m.empty()) {
      auto nh = m.extract(m.begin());
      const std::size_t p = wc::string_hash{}(nh.key()) % parts;
      split[i][p].insert(std::move(nh));
    }
  });
  tbb::parallel_for(std::size_t{0}, parts, [&](std::size_t p) {
    Map& into = split[0][p];
    for (std::size_t i = 1; i < split.size(); ++i)
      for (auto& [w, v] : split[i][p]) fold(into, w, v);
  });
  Map all = std::move(split[0][0]);
  for (std::size_t p = 1; p < parts; ++p) all.merge(split[0][p]);
  return all;
}

/// wordcount() is the job from the file list on; it sets out.seconds (since t0) before the
/// digest, which is not part of the job.
void wordcount(const std::vector<fs::path>& files, bool parallel_merge, wc::result& out,
               wc::clock_type::time_point t0) {
  tbb::enumerable_thread_specific<local<wc::counts>> locals;
  const std::vector<std::uint32_t> order = wc::largest_first(files);
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, order.size()),
                    [&](const tbb::blocked_range<std::size_t>& r) {
                      auto& l = locals.local();
                      for (std::size_t i = r.begin(); i != r.end(); ++i) {
                        const char* path = files[order[i]].c_str();
                        l.count(wc::scan_file(path, l.buf, [&](std::string_view w) {
                          ++l.words;
                          wc::add_word(l.m, w);
                        }));
                      }
                    });
  wc::counts all = merge(locals, parallel_merge);
  out.seconds = wc::seconds_since(t0);
  out.distinct = all.size();
  totals(locals, out);
  for (const auto& [w, k] : all) out.digest += wc::count_digest(w, k);
}

/// index() is the inverted index from the file list on (as wordcount()).
void index(const std::vector<fs::path>& files, bool parallel_merge, wc::result& out,
           wc::clock_type::time_point t0) {
  tbb::enumerable_thread_specific<local<lists>> locals;
  const std::vector<std::uint32_t> order = wc::largest_first(files);
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, order.size()),
                    [&](const tbb::blocked_range<std::size_t>& r) {
                      auto& l = locals.local();
                      for (std::size_t i = r.begin(); i != r.end(); ++i) {
                        const std::uint32_t id = order[i];
                        l.count(wc::scan_file(files[id].c_str(), l.buf, [&](std::string_view w) {
                          ++l.words;
                          auto it = l.m.find(w);
                          if (it == l.m.end()) it = l.m.emplace(std::string(w), ids{}).first;
                          if (it->second.empty() || it->second.back() != id)
                            it->second.push_back(id);
                        }));
                      }
                    });
  lists all = merge(locals, parallel_merge);
  std::vector<ids*> each;
  each.reserve(all.size());
  for (auto& [w, l] : all) each.push_back(&l);
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, each.size()),
                    [&](const tbb::blocked_range<std::size_t>& r) {
                      for (std::size_t i = r.begin(); i != r.end(); ++i)
                        std::sort(each[i]->begin(), each[i]->end());
                    });
  out.seconds = wc::seconds_since(t0);
  out.distinct = all.size();
  totals(locals, out);
  for (const auto& [w, l] : all) {
    out.postings += l.size();
    out.digest += wc::list_digest(w, l);
  }
}

}  // namespace

int main(int argc, char** argv) {
  wc::cli c;
  bool parallel_merge = false;
  const bool ok = wc::parse(argc, argv, c, [&](const std::string& a, const std::string& v) {
    if (a != "--merge" || (v != "serial" && v != "parallel")) return false;
    parallel_merge = v == "parallel";
    return true;
  });
  if (!ok || (c.job != "wordcount" && c.job != "index")) {
    std::fprintf(stderr,
                 "usage: %s wordcount|index --workers T [--merge serial|parallel] PATH...\n",
                 argv[0]);
    return 64;
  }
  tbb::global_control cap(tbb::global_control::max_allowed_parallelism,
                          static_cast<std::size_t>(c.workers));
  tbb::task_arena arena(static_cast<int>(c.workers));
  wc::result out;
  out.impl = "tbb";
  out.job = c.job;
  out.layout = parallel_merge ? "merge:parallel" : "merge:serial";
  out.workers = c.workers;
  arena.execute([&] {
    const auto t0 = wc::clock_type::now();
    const std::vector<fs::path> files = wc::list_files(c.paths);
    out.files = files.size();
    if (c.job == "wordcount")
      wordcount(files, parallel_merge, out, t0);
    else
      index(files, parallel_merge, out, t0);
  });
  out.print();
  return 0;
}
