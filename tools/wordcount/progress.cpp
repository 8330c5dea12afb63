// SPDX-License-Identifier: Apache-2.0
// tools/wordcount/progress.cpp — the console and the progress bar (progress.hpp).
#include "progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>

namespace stackless::wordcount {

namespace {

/// write_all() writes s to stderr unbuffered (the bar must appear at once).
void write_all(std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::write(STDERR_FILENO, s.data(), s.size());
    if (n <= 0) return;  // stderr is gone: nothing to tell anyone
    s.remove_prefix(static_cast<std::size_t>(n));
  }
}

/// columns() is the terminal's width (80 if it will not say).
std::size_t columns() {
  winsize ws{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

std::string fixed(double v, int decimals) {
  char b[32];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

}  // namespace

console::console() : tty_(::isatty(STDERR_FILENO) == 1) {}

void console::line(std::string_view s) {
  std::lock_guard g(m_);
  std::string text = shown_ ? "\r\033[K" : "";
  shown_ = false;
  text.append(s);
  text.push_back('\n');
  write_all(text);
}

void console::bar(std::string_view s) {
  std::lock_guard g(m_);
  std::string text = "\r";
  text.append(s);
  text.append("\033[K");
  write_all(text);
  shown_ = true;
}

void console::clear_bar() {
  std::lock_guard g(m_);
  if (shown_) write_all("\r\033[K");
  shown_ = false;
}

progress_bar::progress_bar(console& out, const job_live& live, std::uint64_t files,
                           std::uint64_t bytes, std::string label)
    : out_(out),
      live_(live),
      files_(files),
      bytes_(bytes),
      label_(std::move(label)),
      start_(std::chrono::steady_clock::now()) {
  if (out_.tty()) thread_ = std::thread([this] { loop(); });
}

progress_bar::~progress_bar() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard g(m_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
  out_.clear_bar();
}

void progress_bar::loop() {
  std::unique_lock lk(m_);
  // The first draw after 200 ms: a run that ends sooner never shows a bar.
  while (!cv_.wait_for(lk, std::chrono::milliseconds(200), [this] { return stop_; })) {
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    out_.bar(render(s));
  }
}

std::string progress_bar::render(double seconds) const {
  // relaxed: display counters, read while the run adds to them.
  const std::uint64_t files = std::min(live_.files.load(std::memory_order_relaxed), files_);
  const std::uint64_t counted = live_.mr.bytes.load(std::memory_order_relaxed);
  const std::uint64_t done =
      std::min(counted + live_.passed_bytes.load(std::memory_order_relaxed), bytes_);
  const double frac = bytes_ ? static_cast<double>(done) / static_cast<double>(bytes_) : 0.0;
  const double mb = 1e-6;
  const double rate = seconds > 0 ? static_cast<double>(counted) * mb / seconds : 0.0;
  // Built by appending: GCC 12 at -O2 reports a false -Wrestrict in libstdc++ for
  // "literal" + std::string&& (GCC bug 105329).
  std::string eta = "ETA ";
  if (rate > 0)
    eta.append(fixed(static_cast<double>(bytes_ - done) * mb / rate, 1)).append(" s");
  else
    eta.append("--");

  std::string text = label_.empty() ? "" : label_ + " ";
  std::string tail = " ";
  tail.append(fixed(frac * 100, 0)).append("%  ").append(std::to_string(files)).append("/");
  tail.append(std::to_string(files_)).append(" files  ");
  tail.append(fixed(static_cast<double>(done) * mb, 1)).append("/");
  tail.append(fixed(static_cast<double>(bytes_) * mb, 1)).append(" MB  ");
  tail.append(fixed(rate, 1)).append(" MB/s  ").append(eta);
  // The bar's width depends on the terminal's only, so that it does not jitter as the figures
  // grow; a line that would not fit is cut (never wrapped).
  const std::size_t cols = columns();
  const std::size_t width = cols >= 110 ? 30 : cols >= 90 ? 20 : 10;
  const auto full = static_cast<std::size_t>(frac * static_cast<double>(width));
  text.append("[").append(full, '#').append(width - full, '.').append("]").append(tail);
  if (text.size() >= cols) text.resize(cols - 1);  // one line, never wrapped
  return text;
}

}  // namespace stackless::wordcount
