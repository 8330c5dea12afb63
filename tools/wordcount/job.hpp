// SPDX-License-Identifier: Apache-2.0
// tools/wordcount/job.hpp — one word-count run: reader tasklets fill a bounded channel of text
// chunks from the files, map_reduce() counts the words in them (job.cpp says how).
//
// Glossary.
//   chunk      a buffer of text handed to a mapper: up to chunk_bytes (1 MiB) taken from one or
//              more files, split only at word ends (tools/wordcount/words.hpp), the files inside
//              it separated by '\n' so that no word runs from one file into the next.
//   reader     a tasklet that reads files through the I/O layer's blocking pool (stackless::io)
//              into chunks and sends them on the job's channel; the mappers receive from it,
//              so counting starts while files are still being read.
//   job_live   the counters a progress display reads while the job runs.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <stackless/sync/parallel.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stackless::wordcount {

/// input_file is one regular file of the listing, with its size when listed (for the progress
/// bar's total) and whether the user named it on the command line (an unreadable one is an
/// error of the whole command then: exit status 1).
struct input_file {
  std::filesystem::path path;
  std::uint64_t size = 0;
  bool named = false;
};

/// job_config is how to run: the scheduler's workers and the map_reduce() layout.
struct job_config {
  unsigned workers = 1;
  reducer_layout reducers{};  // partitions, 4 per worker
  bool combiner = true;
  std::size_t top = 10;
  std::size_t chunk_bytes = std::size_t{1} << 20;  // bytes per read and per chunk
  std::size_t readers = 2;                         // reader tasklets
  bool report_unreadable = true;                   // a line on stderr per unreadable file
};

/// job_live is what a run counts as it goes; any thread may read it.
struct job_live {
  map_reduce_progress mr;                      // bytes: file bytes counted so far
  std::atomic<std::uint64_t> files{0};         // files counted, skipped or found unreadable
  std::atomic<std::uint64_t> passed_bytes{0};  // listed sizes of the skipped and unreadable
};

/// job_result is a run's outcome. files and bytes are the text files counted and their bytes;
/// skipped the binary files, unreadable the files that could not be opened or read.
struct job_result {
  std::uint64_t files = 0;
  std::uint64_t bytes = 0;
  std::uint64_t words = 0;
  std::uint64_t distinct = 0;
  std::uint64_t skipped = 0;
  std::uint64_t unreadable = 0;
  bool named_unreadable = false;  // one of them was named on the command line
  std::vector<std::pair<std::string, std::uint64_t>> top;  // best first
  double seconds = 0;                                      // reading and counting
  unsigned workers = 0;
  std::string reducers;  // "partitions:R" or "per-key"

  /// same_counts() compares what every run over the same input must agree on.
  bool same_counts(const job_result& o) const {
    return files == o.files && bytes == o.bytes && words == o.words && distinct == o.distinct &&
           skipped == o.skipped && unreadable == o.unreadable && top == o.top;
  }
};

/// run_job() counts the words of `files` on a scheduler of its own (cfg.workers), blocking the
/// calling thread until it is done. An unreadable file is counted, and passed to
/// report(message) when cfg.report_unreadable is set (called on a thread of the I/O blocking
/// pool, while the reader that found it waits).
job_result run_job(const std::vector<input_file>& files, const job_config& cfg, job_live& live,
                   const std::function<void(std::string_view)>& report);

/// reducers_name() is "partitions:R" (R as the job will use it, on `workers` workers) or
/// "per-key".
std::string reducers_name(const reducer_layout& r, unsigned workers);

}  // namespace stackless::wordcount
