// SPDX-License-Identifier: Apache-2.0
// bench/wordcount_common.hpp — what the C++ word-count and inverted-index programs of the
// map/reduce benchmark share (tools/bench_wordcount.py runs them): reading a file in chunks and
// cutting it into words (tools/wordcount/words.hpp's rules), the result's digest, the command
// line and the one JSON line each program prints. bench/peers/go/wordcount/main.go does the same
// in Go; the two must agree byte for byte on every figure.
//
//   <prog> wordcount|index [--workers T] [...] PATH...
//   {"impl": ..., "job": "wordcount", "workers": T, "files": F, "binary": B, "unreadable": U,
//    "bytes": N, "words": W, "distinct": D, "postings": P, "digest": X, "seconds": S}
//
// Figures:
//   files       regular files found under the paths (words.hpp: collect_files());
//   binary      of those, the ones skipped as binary (a NUL in the first 8,192 bytes);
//   unreadable  the ones that could not be opened or read;
//   bytes       the bytes of the text files (the ones cut into words);
//   words       word occurrences; distinct: distinct words;
//   postings    index only: (word, file) pairs, the total length of the posting lists;
//   digest      a sum over distinct words, so independent of order: wordcount adds
//               mix(fnv1a(word) + count), index adds mix(fnv1a(word) + poly(list)), where poly
//               folds the sorted file ids (h = h * 31 + id + 1) — two programs that agree on the
//               digest agree on every count and every list;
//   seconds     wall time from the file walk to the finished result (sorted lists for index),
//               the result's destruction excluded.
// File ids are positions in collect_files()'s order (each directory's entries sorted by name,
// depth first), which Go's filepath.WalkDir visits in the same order.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "wordcount/words.hpp"

namespace bench::wc {

/// chunk is the size of one read; a file is cut into words a chunk at a time (64 KiB: the words of
/// one chunk fit in L2 with room to spare, and a read costs ~1 µs against ~100 µs of words).
inline constexpr std::size_t chunk = 64 * 1024;

/// string_hash and counts: the word → count map every C++ program uses, looked up with a
/// std::string_view so that a word already held costs no allocation (as map_reduce's combiner).
struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};
using counts = std::unordered_map<std::string, std::uint64_t, string_hash, std::equal_to<>>;

/// add_word() counts one occurrence of w in m.
inline void add_word(counts& m, std::string_view w, std::uint64_t n = 1) {
  if (auto it = m.find(w); it != m.end())
    it->second += n;
  else
    m.emplace(std::string(w), n);
}

enum class scan_status { text, binary, unreadable };

/// scan_outcome is what scan_file() found in one file.
struct scan_outcome {
  scan_status status = scan_status::unreadable;
  std::uint64_t bytes = 0;  // bytes read (text files only)
};

/// read_full() reads until n bytes are in or the end of the file: the count, or -1 on an error.
inline long read_full(int fd, char* p, std::size_t n) {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, p + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  return static_cast<long>(got);
}

/// scan_file(path, buf, on_word) reads the file with plain read()s a chunk at a time into buf
/// (grown to `chunk` once, reused by the caller from file to file) and calls on_word(view) for
/// every word, lower-cased. A binary file is detected on the first chunk and not read further; a
/// word cut by a chunk's end is carried into the next one (a chunk that is one word only grows
/// buf). A read error mid-file leaves the words already reported (it is counted unreadable).
template <class OnWord>
scan_outcome scan_file(const char* path, std::vector<char>& buf, OnWord&& on_word) {
  namespace w = stackless::wordcount;
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  if (buf.size() < chunk) buf.resize(chunk);
  scan_outcome out;
  std::size_t have = 0;  // carried bytes at buf's start: the beginning of a cut word
  bool first = true;
  for (;;) {
    const long got = read_full(fd, buf.data() + have, buf.size() - have);
    if (got < 0) {
      out.status = scan_status::unreadable;
      break;
    }
    const std::size_t len = have + static_cast<std::size_t>(got);
    const bool end = have + static_cast<std::size_t>(got) < buf.size();
    if (first) {
      first = false;
      if (w::looks_binary(std::string_view(buf.data(), len))) {
        out.status = scan_status::binary;
        break;
      }
      out.status = scan_status::text;
    }
    out.bytes += static_cast<std::uint64_t>(got);
    if (end) {
      w::for_each_word(std::string_view(buf.data(), len), on_word);
      break;
    }
    const std::size_t cut = w::split_at_word_end(std::string_view(buf.data(), len));
    if (cut == 0) {  // one word fills the buffer: read on behind it
      have = len;
      buf.resize(buf.size() * 2);
      continue;
    }
    w::for_each_word(std::string_view(buf.data(), cut), on_word);
    std::memmove(buf.data(), buf.data() + cut, len - cut);
    have = len - cut;
  }
  if (out.status != scan_status::text) out.bytes = 0;
  ::close(fd);
  return out;
}

/// mix() is splitmix64's finaliser; fnv1a() is 64-bit FNV-1a (the Go peer has both).
inline std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
inline std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}
/// count_digest() is one word's term of the word-count digest.
inline std::uint64_t count_digest(std::string_view word, std::uint64_t count) {
  return mix(fnv1a(word) + count);
}
/// list_digest() is one word's term of the index digest (ids: its posting list, sorted).
template <class Ids>
std::uint64_t list_digest(std::string_view word, const Ids& ids) {
  std::uint64_t h = 0;
  for (auto id : ids) h = h * 31 + static_cast<std::uint64_t>(id) + 1;
  return mix(fnv1a(word) + h);
}

/// result is the figures of one run, printed by print().
struct result {
  std::string impl;
  std::string job;          // wordcount | index
  std::string layout = "";  // stackless: the reducers' layout
  unsigned workers = 1;
  std::uint64_t files = 0, binary = 0, unreadable = 0, bytes = 0, words = 0, distinct = 0,
                postings = 0, digest = 0;
  double seconds = 0;

  /// print() writes the JSON line; `extra` is appended inside it (", \"name\": value" ...).
  void print(const std::string& extra = "") const {
    std::printf(
        "{\"impl\": \"%s\", \"job\": \"%s\", \"layout\": \"%s\", \"workers\": %u, \"files\": "
        "%llu, \"binary\": %llu, \"unreadable\": %llu, \"bytes\": %llu, \"words\": %llu, "
        "\"distinct\": %llu, \"postings\": %llu, \"digest\": %llu, \"seconds\": %.6f%s}\n",
        impl.c_str(), job.c_str(), layout.c_str(), workers, static_cast<unsigned long long>(files),
        static_cast<unsigned long long>(binary), static_cast<unsigned long long>(unreadable),
        static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(words),
        static_cast<unsigned long long>(distinct), static_cast<unsigned long long>(postings),
        static_cast<unsigned long long>(digest), seconds, extra.c_str());
    std::fflush(stdout);
  }
};

/// largest_first(files) is the order in which the parallel C++ programs (ours and oneTBB's) take
/// the files: their indices, the largest file first (ties in listing order; a file whose size
/// cannot be read counts as empty). A whole file is one piece of work, and the listing's order
/// can leave a large file for last, one thread reading it while the others wait:
/// make_corpus.py's sizes span two decades, and its largest file (6.7 MB) is the 62nd of 64.
/// Largest first (Graham's LPT rule, 1969) leaves the small files for the end. File ids stay
/// positions in the listing. The Go peer needs none of this: its reader cuts files into 64 KiB
/// chunks.
inline std::vector<std::uint32_t> largest_first(const std::vector<std::filesystem::path>& files) {
  std::vector<std::pair<std::uintmax_t, std::uint32_t>> by;
  by.reserve(files.size());
  for (std::size_t i = 0; i < files.size(); ++i) {
    std::error_code ec;
    const std::uintmax_t size = std::filesystem::file_size(files[i], ec);
    by.emplace_back(ec ? 0 : size, static_cast<std::uint32_t>(i));
  }
  std::stable_sort(by.begin(), by.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::uint32_t> order;
  order.reserve(by.size());
  for (const auto& [size, i] : by) order.push_back(i);
  return order;
}

/// list_files() is collect_files() over the command line's paths, reporting a bad path on stderr.
inline std::vector<std::filesystem::path> list_files(const std::vector<std::filesystem::path>& ps) {
  return stackless::wordcount::collect_files(
      ps, [](const std::filesystem::path& p, const std::error_code& ec) {
        std::fprintf(stderr, "%s: %s\n", p.c_str(), ec.message().c_str());
      });
}

/// cli is the common command line: the job, --workers, and the paths; `extra` gets the options
/// it does not know (name, value) and returns false for an unknown one.
struct cli {
  std::string job;
  unsigned workers = 1;
  std::vector<std::filesystem::path> paths;
};

template <class Extra>
bool parse(int argc, char** argv, cli& c, Extra&& extra) {
  if (argc < 2) return false;
  c.job = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) == 0) {
      if (i + 1 >= argc) return false;
      std::string v = argv[++i];
      if (a == "--workers") {
        c.workers = static_cast<unsigned>(std::strtoul(v.c_str(), nullptr, 10));
        if (c.workers == 0) return false;
      } else if (!extra(a, v)) {
        return false;
      }
    } else {
      c.paths.emplace_back(a);
    }
  }
  return !c.paths.empty();
}

using clock_type = std::chrono::steady_clock;
inline double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

}  // namespace bench::wc
