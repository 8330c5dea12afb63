// SPDX-License-Identifier: Apache-2.0
// runtime/src/faults.cpp — fault injection for the tests (stackless/runtime/internal/faults.hpp).
//
// Invariant: `armed` is set while a kind has failures left to give; every decision about an
// armed kind is taken under `mu`, so `pass` and `fail` are counted exactly however many threads
// ask at once. The fast path (nothing armed) is one relaxed load: arming is done by a test
// before it starts the operations it means to fail, and a hook that misses the arming by a hair
// simply succeeds, as it would have a moment earlier.
#include "stackless/runtime/internal/faults.hpp"

#include <atomic>
#include <mutex>

namespace stackless::detail {
namespace {

constexpr unsigned kinds = static_cast<unsigned>(fault::count_);

std::atomic<bool> armed{false};
std::mutex mu;
int pass_left[kinds];  // under mu
int fail_left[kinds];  // under mu; -1: fail until disarmed

}  // namespace

void arm_fault(fault f, int pass, int fail) noexcept {
  std::lock_guard g(mu);
  pass_left[static_cast<unsigned>(f)] = pass;
  fail_left[static_cast<unsigned>(f)] = fail;
  bool any = false;
  for (unsigned k = 0; k < kinds; ++k) any = any || fail_left[k] != 0;
  armed.store(any, std::memory_order_relaxed);  // relaxed: see the invariant (no data follows)
}

bool fault_now(fault f) noexcept {
  if (!armed.load(std::memory_order_relaxed)) return false;  // relaxed: see the invariant
  std::lock_guard g(mu);
  const unsigned k = static_cast<unsigned>(f);
  if (fail_left[k] == 0) return false;
  if (pass_left[k] > 0) {
    --pass_left[k];
    return false;
  }
  if (fail_left[k] > 0) --fail_left[k];
  return true;
}

}  // namespace stackless::detail
