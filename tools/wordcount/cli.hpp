// SPDX-License-Identifier: Apache-2.0
// tools/wordcount/cli.hpp — stackless-wordcount's command line: the flags, their checks and the
// usage text.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <stackless/sync/parallel.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace stackless::wordcount {

/// usage_text is the --help text.
extern const char* const usage_text;

/// bad_usage is a command line that cannot run: its message names the flag (exit status 2).
class bad_usage : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// command_line is what the flags ask for.
struct command_line {
  std::optional<unsigned> workers;  // default: std::thread::hardware_concurrency()
  reducer_layout reducers{};        // default: partitions, 4 per worker
  bool combiner = true;
  std::size_t top = 10;
  bool json = false;
  bool compare = false;
  std::string chart = "wordcount-compare.svg";
  bool help = false;
  std::vector<std::filesystem::path> paths;
};

/// parse_command_line() reads argv (without argv[0]); throws bad_usage.
command_line parse_command_line(const std::vector<std::string>& args);

}  // namespace stackless::wordcount
