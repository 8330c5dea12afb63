// SPDX-License-Identifier: Apache-2.0
// runtime/src/fence.hpp — standalone fences, and what replaces them under ThreadSanitizer.
//
// TSan does not model std::atomic_thread_fence (GCC warns: -Wtsan). In the TSan build every
// index operation a fence orders is itself seq_cst (see deque.hpp), and the StoreLoad fences of
// the parking protocol become a seq_cst read-modify-write of one shared word: on x86 that is the
// same full barrier, and TSan sees it as an ordinary synchronising access.
#pragma once

#include <atomic>

namespace stackless::detail {

#ifdef STACKLESS_TSAN
inline std::atomic<int> tsan_fence_word{0};
#endif

/// fence_seq_cst() is a StoreLoad barrier.
inline void fence_seq_cst() noexcept {
#ifdef STACKLESS_TSAN
  // seq_cst RMW: pairs with every other thread's fence_seq_cst(), the same word's RMW.
  tsan_fence_word.fetch_add(0, std::memory_order_seq_cst);
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

/// fence_release() orders earlier writes before later relaxed stores (a no-op under TSan, whose
/// build makes those stores seq_cst instead).
inline void fence_release() noexcept {
#ifndef STACKLESS_TSAN
  std::atomic_thread_fence(std::memory_order_release);
#endif
}

}  // namespace stackless::detail
