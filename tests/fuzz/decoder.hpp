// SPDX-License-Identifier: Apache-2.0
// tests/fuzz/decoder.hpp — the byte reader both fuzz targets decode their programs with.
//
// A fuzz input is read front to back, one byte per choice; every choice is taken modulo its
// range, so any byte string is a valid program, and an exhausted input reads as zeros (the
// program ends at the first op read past the end: decoder::done()). Nothing here checks
// anything: the targets say what they compare.
#pragma once

#include <cstddef>
#include <cstdint>

namespace stackless::fuzz {

/// decoder hands out the input's bytes as small choices.
class decoder {
 public:
  decoder(const std::uint8_t* data, std::size_t size) noexcept : p_(data), end_(data + size) {}

  /// done() is true once every byte has been read.
  bool done() const noexcept { return p_ == end_; }
  /// byte() is the next byte, or 0 past the end.
  std::uint8_t byte() noexcept { return p_ == end_ ? 0 : *p_++; }
  /// below(n) is a choice in [0, n) (n >= 1).
  unsigned below(unsigned n) noexcept { return byte() % n; }
  /// flag() is a yes/no choice.
  bool flag() noexcept { return byte() & 1; }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

}  // namespace stackless::fuzz
