// SPDX-License-Identifier: Apache-2.0
// tools/wordcount/progress.hpp — stderr for stackless-wordcount: messages, and a progress bar
// (files, MB, MB/s, ETA) redrawn five times a second by a plain thread while a run goes on,
// only when stderr is a terminal.
//
// The bar reads the run's counters (job_live: map_reduce_progress's bytes, files done) and never
// writes them; the ETA is the bytes still to count at the rate so far, the total being the sum
// of the sizes the listing found (a file that grows meanwhile makes the bar run past 100 %,
// which it clamps). A message (an unreadable file, from a reader tasklet) erases the bar, is
// printed on its own line, and the bar comes back at the next redraw: both go through
// console's mutex, held for one write.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "job.hpp"

namespace stackless::wordcount {

/// console is stderr: whole lines, and one bar line that they erase first.
class console {
 public:
  console();
  /// tty() is whether stderr is a terminal (the bar is drawn only then).
  bool tty() const noexcept { return tty_; }
  /// line() prints s and a newline on stderr (from any thread or tasklet; blocks for one write).
  void line(std::string_view s);
  /// bar() replaces the bar line with s.
  void bar(std::string_view s);
  /// clear_bar() erases the bar line, if one is shown.
  void clear_bar();

 private:
  std::mutex m_;  // guards shown_ and orders whole writes
  bool tty_;
  bool shown_ = false;
};

/// progress_bar draws a run's progress on the console while it lives (if the console is a
/// terminal; otherwise it does nothing), from a thread of its own.
class progress_bar {
 public:
  progress_bar(console& out, const job_live& live, std::uint64_t files, std::uint64_t bytes,
               std::string label);
  ~progress_bar();  // stops the thread and erases the bar
  progress_bar(const progress_bar&) = delete;
  progress_bar& operator=(const progress_bar&) = delete;

 private:
  void loop();
  std::string render(double seconds) const;

  console& out_;
  const job_live& live_;
  const std::uint64_t files_;
  const std::uint64_t bytes_;
  const std::string label_;
  const std::chrono::steady_clock::time_point start_;
  std::mutex m_;  // guards stop_
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace stackless::wordcount
