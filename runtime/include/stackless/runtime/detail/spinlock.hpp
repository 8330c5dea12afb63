// SPDX-License-Identifier: Apache-2.0
// stackless/runtime/detail/spinlock.hpp — cpu_relax() and the spinlock. Internal: the names may
// change at any time. (Public only because a tasklet's control block holds a spinlock.)
#pragma once

#include <atomic>

namespace stackless::detail {

/// cpu_relax() tells the CPU that the caller spins (x86 pause, ARM yield; nothing elsewhere).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#endif
}

/// spinlock guards a few words for a few instructions (a tcb's joiners and pending exception).
/// Never held across a park or a switch.
class spinlock {
 public:
  void lock() noexcept {
    while (flag_.exchange(true, std::memory_order_acquire)) {  // pairs with the release in unlock()
      while (flag_.load(std::memory_order_relaxed)) cpu_relax();
    }
  }
  bool try_lock() noexcept { return !flag_.exchange(true, std::memory_order_acquire); }
  void unlock() noexcept {
    flag_.store(false, std::memory_order_release);  // pairs with the acquire exchange in lock()
  }

 private:
  std::atomic<bool> flag_{false};
};

}  // namespace stackless::detail
