// SPDX-License-Identifier: Apache-2.0
// bench/mr_bench.cpp — stackless_mr_bench: the parallel algorithms of stackless::sync on real
// work, in-process, for tools/bench_wordcount.py (which runs the peers too and compares).
//
//   stackless_mr_bench wordcount  [--workers T] [--reducers partitions:R|per-key]
//                                 [--combiner on|off] PATH...
//   stackless_mr_bench index      [--workers T] [--reducers ...] [--combiner on|off] PATH...
//     (both also take --combine-limit, --batch, --queue, --mappers, --routers N: the fields of
//     map_reduce_options, for experiments; the default is the library's)
//   stackless_mr_bench mandelbrot [--workers T] [--size 4096] [--iters 256] [--grain G]
//
// wordcount  map_reduce<std::string, std::uint64_t> over the regular files under PATH...: one
//            input per file, largest first (wordcount_common.hpp: largest_first(), as the oneTBB
//            peer); the mapper tasklet reads it with plain read()s (64 KiB chunks,
//            bench/wordcount_common.hpp) and emits (word, 1) as a std::string_view, which the
//            combiner (on by default) folds into the mapper's own map without building a string.
// index      an inverted index over the same files: word → the sorted ids of the files that hold
//            it. The map emits each distinct word of a file once, with V = std::vector<uint32_t>
//            {id}; reduce appends; a parallel_for sorts the lists (part of the timed job).
// mandelbrot parallel_for over the rows of bench/mandelbrot.hpp's image, the (lo, hi) form; the
//            checksum is the number of points in the set.
//
// Each prints one JSON line (bench/wordcount_common.hpp, bench/mandelbrot.hpp list the fields),
// with the scheduler's counters of the timed job added: tasklets spawned, steals and worker
// parks. The scheduler is made before the clock starts (oneTBB's and Go's threads also exist by
// then, or start within the first task).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <ranges>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mandelbrot.hpp"
#include "stackless/runtime/scheduler.hpp"
#include "stackless/runtime/tasklet_local.hpp"
#include "stackless/sync/parallel.hpp"
#include "wordcount_common.hpp"

namespace {

namespace fs = std::filesystem;
namespace wc = bench::wc;

/// job_options is the command line beyond bench::wc::cli.
struct job_options {
  stackless::map_reduce_options mr;
  std::string layout = "partitions:auto";
};

bool parse_extra(job_options& j, const std::string& name, const std::string& value) {
  if (name == "--reducers") {
    if (value == "per-key") {
      j.mr.reducers = stackless::per_key;
    } else if (value.rfind("partitions:", 0) == 0) {
      const unsigned long r = std::strtoul(value.c_str() + 11, nullptr, 10);
      if (r == 0) return false;
      j.mr.reducers = stackless::partitions(r);
    } else {
      return false;
    }
    j.layout = value;
    return true;
  }
  if (name == "--combiner" && (value == "on" || value == "off")) {
    j.mr.combiner = value == "on";
    if (!j.mr.combiner) j.layout += ",nocombiner";
    return true;
  }
  // The knobs of map_reduce_options, for experiments (the defaults are the library's).
  const unsigned long n = std::strtoul(value.c_str(), nullptr, 10);
  std::size_t* knob = name == "--combine-limit" ? &j.mr.combine_limit
                      : name == "--batch"       ? &j.mr.batch
                      : name == "--queue"       ? &j.mr.queue
                      : name == "--mappers"     ? &j.mr.mappers
                      : name == "--routers"     ? &j.mr.routers
                                                : nullptr;
  if (!knob || n == 0) return false;
  *knob = n;
  j.layout += "," + name.substr(2) + "=" + value;
  return true;
}

/// file_counters gathers what the mappers saw; relaxed: read after the job, which join() orders.
struct file_counters {
  std::atomic<std::uint64_t> binary{0}, unreadable{0}, bytes{0}, words{0};

  void add(const wc::scan_outcome& r, std::uint64_t words_in_file) {
    constexpr auto rel = std::memory_order_relaxed;
    if (r.status == wc::scan_status::binary) binary.fetch_add(1, rel);
    if (r.status == wc::scan_status::unreadable) unreadable.fetch_add(1, rel);
    bytes.fetch_add(r.bytes, rel);
    words.fetch_add(words_in_file, rel);
  }
  void into(wc::result& out) const {
    out.binary = binary.load();
    out.unreadable = unreadable.load();
    out.bytes = bytes.load();
    out.words = words.load();
  }
};

/// counters_since() is the scheduler's counters of the timed job, as JSON fields.
std::string counters_since(const stackless::scheduler& s,
                           const stackless::scheduler_stats& before) {
  const stackless::scheduler_stats now = s.stats();
  std::uint64_t parks = 0;  // times a worker thread slept: idle moments of the job
  for (const auto& w : now.workers) parks += w.parks;
  for (const auto& w : before.workers) parks -= w.parks;
  return ", \"spawned\": " + std::to_string(now.spawned - before.spawned) +
         ", \"steals\": " + std::to_string(now.steals - before.steals) +
         ", \"parks\": " + std::to_string(parks);
}

int run_wordcount(const wc::cli& c, const job_options& j, wc::result& out, std::string& extra) {
  stackless::scheduler s(stackless::options{.workers = c.workers});
  const stackless::scheduler_stats before = s.stats();
  const auto t0 = wc::clock_type::now();

  const std::vector<fs::path> files = wc::list_files(c.paths);
  const std::vector<std::uint32_t> order = wc::largest_first(files);
  file_counters n;
  stackless::tasklet_local<std::vector<char>> buf;  // one per mapper tasklet, reused
  auto counts = stackless::map_reduce<std::string, std::uint64_t>(
      s, order,
      [&](std::uint32_t id, auto& emit) {
        std::uint64_t words = 0;
        const wc::scan_outcome r =
            wc::scan_file(files[id].c_str(), buf.get(), [&](std::string_view w) {
              ++words;
              emit(w, 1);
            });
        n.add(r, words);
      },
      [](std::uint64_t& acc, std::uint64_t v) { acc += v; }, j.mr);

  out.seconds = wc::seconds_since(t0);
  extra = counters_since(s, before);
  out.files = files.size();
  n.into(out);
  out.distinct = counts.size();
  for (const auto& [w, k] : counts) out.digest += wc::count_digest(w, k);
  return 0;
}

int run_index(const wc::cli& c, const job_options& j, wc::result& out, std::string& extra) {
  using ids = std::vector<std::uint32_t>;
  using postings = std::vector<std::pair<std::string, ids>>;
  // last_file: word → the last file this mapper emitted it for. A mapper maps one file at a
  // time, so "not this file yet" finds a file's first occurrence of a word with one lookup and
  // nothing to clear between files (an unordered_set cleared per file memsets its buckets:
  // measured at 12% of the job's instructions).
  using last_file =
      std::unordered_map<std::string, std::uint32_t, wc::string_hash, std::equal_to<>>;
  stackless::scheduler s(stackless::options{.workers = c.workers});
  const stackless::scheduler_stats before = s.stats();
  const auto t0 = wc::clock_type::now();

  const std::vector<fs::path> files = wc::list_files(c.paths);
  file_counters n;
  stackless::tasklet_local<std::vector<char>> buf;
  stackless::tasklet_local<last_file> seen;  // one per mapper tasklet
  const std::vector<std::uint32_t> file_ids = wc::largest_first(files);
  postings index = s.block_on([&] {
    postings lists = stackless::map_reduce<std::string, ids>(
        file_ids,
        [&](std::uint32_t id, auto& emit) {
          last_file& last = seen.get();
          std::uint64_t words = 0;
          const wc::scan_outcome r =
              wc::scan_file(files[id].c_str(), buf.get(), [&](std::string_view w) {
                ++words;
                auto it = last.find(w);
                if (it == last.end()) {
                  last.emplace(std::string(w), id);
                } else if (it->second != id) {
                  it->second = id;
                } else {
                  return;  // emitted for this file already
                }
                emit(w, ids{id});
              });
          n.add(r, words);
        },
        [](ids& acc, ids&& v) { acc.insert(acc.end(), v.begin(), v.end()); }, j.mr, postings{});
    stackless::parallel_for(std::size_t{0}, lists.size(), [&](std::size_t lo, std::size_t hi) {
      for (std::size_t i = lo; i < hi; ++i)
        std::sort(lists[i].second.begin(), lists[i].second.end());
    });
    return lists;
  });

  out.seconds = wc::seconds_since(t0);
  extra = counters_since(s, before);
  out.files = files.size();
  n.into(out);
  out.distinct = index.size();
  for (const auto& [w, l] : index) {
    out.postings += l.size();
    out.digest += wc::list_digest(w, l);
  }
  return 0;
}

int run_mandelbrot(int argc, char** argv) {
  bench::mandel::params p;
  if (!bench::mandel::parse(argc, argv, 2, p)) return 64;
  stackless::scheduler s(stackless::options{.workers = p.workers});
  const stackless::scheduler_stats before = s.stats();
  std::vector<std::uint32_t> rows(static_cast<std::size_t>(p.size));
  const auto t0 = wc::clock_type::now();
  stackless::parallel_for(
      s, 0, p.size,
      [&](int lo, int hi) {
        for (int y = lo; y < hi; ++y)
          rows[static_cast<std::size_t>(y)] = bench::mandel::row(y, p.size, p.iters);
      },
      static_cast<std::uint64_t>(p.grain));
  const double secs = wc::seconds_since(t0);
  std::uint64_t sum = 0;
  for (std::uint32_t r : rows) sum += r;
  std::printf(
      "{\"impl\": \"stackless\", \"job\": \"mandelbrot\", \"workers\": %u, \"size\": %d, "
      "\"iters\": %d, \"grain\": %ld, \"checksum\": %llu, \"seconds\": %.6f%s}\n",
      p.workers, p.size, p.iters, p.grain, static_cast<unsigned long long>(sum), secs,
      counters_since(s, before).c_str());
  return 0;
}

int usage(const char* prog) {
  std::fprintf(stderr,
               "usage: %s wordcount|index [--workers T] [--reducers partitions:R|per-key] "
               "[--combiner on|off] PATH...\n"
               "       %s mandelbrot [--workers T] [--size N] [--iters K] [--grain G]\n",
               prog, prog);
  return 64;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "mandelbrot") == 0) {
    const int rc = run_mandelbrot(argc, argv);
    return rc == 64 ? usage(argv[0]) : rc;
  }
  wc::cli c;
  job_options j;
  if (!wc::parse(argc, argv, c,
                 [&](const std::string& a, const std::string& v) { return parse_extra(j, a, v); }))
    return usage(argv[0]);
  wc::result out;
  out.impl = "stackless";
  out.job = c.job;
  out.layout = j.layout;
  out.workers = c.workers;
  std::string extra;
  if (c.job == "wordcount")
    run_wordcount(c, j, out, extra);
  else if (c.job == "index")
    run_index(c, j, out, extra);
  else
    return usage(argv[0]);
  out.print(extra);
  return 0;
}
