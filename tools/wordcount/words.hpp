// SPDX-License-Identifier: Apache-2.0
// tools/wordcount/words.hpp — the word-count job's definitions, shared by stackless-wordcount
// and its C++ peers (bench/wordcount_*.cpp), so every implementation counts the same words:
//
//   word     a maximal run of ASCII letters, digits and '_' ([A-Za-z0-9_]+), folded to lower
//            case (ASCII only; every other byte, UTF-8 included, separates words);
//   binary   a file with a NUL byte in its first 8,192 bytes (git's and grep's rule): skipped
//            and counted, not read further;
//   files    the regular files under the paths given (directories recursively, in sorted
//            order; symbolic links are not followed), each path given once.
// The Go peer (bench/peers/go/wordcount) implements the same three rules.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace stackless::wordcount {

inline constexpr std::size_t binary_probe = 8192;

/// word_class[c]: 0 separates words; otherwise the byte's lower-case form.
struct word_table {
  unsigned char lower[256]{};
  constexpr word_table() {
    for (int c = 0; c < 256; ++c) {
      if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')
        lower[c] = static_cast<unsigned char>(c);
      else if (c >= 'A' && c <= 'Z')
        lower[c] = static_cast<unsigned char>(c - 'A' + 'a');
    }
  }
};
inline constexpr word_table words_table{};

/// for_each_word(text, f) calls f(std::string_view word) for every word of text, lower-cased;
/// the view is valid during the call only. A word cut by the end of text ends there: callers
/// that feed a file in chunks keep the tail (see split_at_word_end()).
template <class F>
void for_each_word(std::string_view text, F&& f) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  std::string buf;
  while (p < end) {
    while (p < end && !words_table.lower[*p]) ++p;
    if (p == end) break;
    const auto* start = p;
    bool folded = false;
    while (p < end && words_table.lower[*p]) {
      folded |= words_table.lower[*p] != *p;
      ++p;
    }
    const auto n = static_cast<std::size_t>(p - start);
    if (!folded) {
      f(std::string_view(reinterpret_cast<const char*>(start), n));
    } else {
      buf.resize(n);
      for (std::size_t i = 0; i < n; ++i) buf[i] = static_cast<char>(words_table.lower[start[i]]);
      f(std::string_view(buf));
    }
  }
}

/// split_at_word_end(text) is the length of the longest prefix of text that does not end inside
/// a word (the rest is carried into the next chunk).
inline std::size_t split_at_word_end(std::string_view text) {
  std::size_t n = text.size();
  while (n > 0 && words_table.lower[static_cast<unsigned char>(text[n - 1])]) --n;
  return n;
}

/// looks_binary(head): the file's first bytes (up to binary_probe) hold a NUL.
inline bool looks_binary(std::string_view head) {
  return std::memchr(head.data(), '\0', std::min(head.size(), binary_probe)) != nullptr;
}

/// collect_files(paths, on_error) lists the regular files under paths (see the top); a path
/// that does not exist or cannot be listed is passed to on_error(path, error) and skipped.
template <class OnError>
std::vector<std::filesystem::path> collect_files(const std::vector<std::filesystem::path>& paths,
                                                 OnError&& on_error) {
  namespace fs = std::filesystem;
  std::vector<fs::path> out;
  for (const fs::path& root : paths) {
    std::error_code ec;
    const fs::file_status st = fs::symlink_status(root, ec);
    if (ec || !fs::exists(st)) {
      on_error(root, ec ? ec : std::make_error_code(std::errc::no_such_file_or_directory));
      continue;
    }
    if (fs::is_regular_file(st)) {
      out.push_back(root);
      continue;
    }
    if (!fs::is_directory(st)) continue;  // a socket, a device, a link: not a text file
    std::vector<fs::path> found;
    fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
    if (ec) {
      on_error(root, ec);
      continue;
    }
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) {  // the walk cannot go on below this directory
        on_error(root, ec);
        break;
      }
      std::error_code e2;
      if (it->is_regular_file(e2) && !it->is_symlink(e2)) found.push_back(it->path());
    }
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

}  // namespace stackless::wordcount
