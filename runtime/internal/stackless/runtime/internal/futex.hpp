// SPDX-License-Identifier: Apache-2.0
// stackless/runtime/internal/futex.hpp — the two futex calls everything that sleeps is built on.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "stackless/runtime/detail/deadline.hpp"

namespace stackless::detail {

/// futex_wait() sleeps while *word == expected, until futex_wake() or the absolute steady-clock
/// deadline (no_deadline: none). Spurious returns happen; callers re-check.
inline void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                       std::int64_t deadline_ns = no_deadline) noexcept {
  static_assert(sizeof(std::atomic<std::uint32_t>) == 4);
  if (deadline_ns == no_deadline) {
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected,
            nullptr, nullptr, 0);
    return;
  }
  timespec ts{static_cast<time_t>(deadline_ns / 1000000000),
              static_cast<long>(deadline_ns % 1000000000)};
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time (steady_clock on Linux).
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_BITSET_PRIVATE, expected,
          &ts, nullptr, FUTEX_BITSET_MATCH_ANY);
}

/// futex_wake() wakes up to n threads sleeping on word.
inline void futex_wake(std::atomic<std::uint32_t>* word, int n = 1) noexcept {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE_PRIVATE, n, nullptr,
          nullptr, 0);
}

}  // namespace stackless::detail
