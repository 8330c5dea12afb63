// SPDX-License-Identifier: Apache-2.0
// runtime/src/context.hpp — switching between stacks. context.cpp is the only file that touches
// Boost.Context, and it does the AddressSanitizer and ThreadSanitizer fiber bookkeeping.
#pragma once

#include <cstddef>

#include "stackless/runtime/internal/tcb.hpp"

namespace stackless::detail {

/// context_init_thread() describes the calling thread's own stack as a context (a worker's
/// scheduler side, which tasklets switch back to).
void context_init_thread(context& c) noexcept;

/// context_create() prepares `c` to run entry(arg) on the stack [lo, lo + size) when first
/// switched to. entry must never return: it ends with context_switch(..., exiting = true).
/// `fiber_cache` is the stack's slot for its ThreadSanitizer fiber: created on the stack's first
/// use and reused by every later tasklet on it (creating a TSan fiber costs ~0.4 ms).
void context_create(context& c, void* lo, std::size_t size, void (*entry)(void*),
                    void** fiber_cache) noexcept;

/// context_destroy() forgets a context whose execution ended.
void context_destroy(context& c) noexcept;

/// context_fiber_free() releases a stack's cached sanitizer fiber (when the stack is unmapped).
void context_fiber_free(void* fiber) noexcept;

/// context_switch() suspends the caller into `from` and resumes `to`, passing `arg`; returns the
/// arg of whoever switches back to `from` later. `exiting`: `from` will never be resumed (its
/// stack may be reused at once).
void* context_switch(context& from, context& to, void* arg, bool exiting = false) noexcept;

}  // namespace stackless::detail
