// SPDX-License-Identifier: Apache-2.0
// stackless/runtime/internal/assert.hpp — STACKLESS_ASSERT: invariants that execute.
//
// STACKLESS_ASSERT(cond, what) is on in debug and sanitizer builds (NDEBUG unset, or
// STACKLESS_SANITIZED) and compiles to nothing in release builds (the condition is not
// evaluated, so it may be as expensive as a check needs to be). A failure prints the broken
// condition, `what` (a string literal naming the invariant), the file and line, the tasklet and
// the worker that were running, then aborts. After marl's ASSERT_FIBER_STATE and Go's
// "bad g status" throws. STACKLESS_ASSERTS_ON tells whether they are compiled in.
#pragma once

#if !defined(NDEBUG) || defined(STACKLESS_SANITIZED) || defined(STACKLESS_FORCE_ASSERTS)
#define STACKLESS_ASSERTS_ON 1
#else
#define STACKLESS_ASSERTS_ON 0
#endif

namespace stackless::detail {
/// assert_failed() reports a broken invariant and aborts (runtime/src/assert.cpp). `value`, when
/// non-negative, is the offending state word, printed in hex.
[[noreturn]] void assert_failed(const char* cond, const char* what, const char* file, int line,
                                long long value = -1) noexcept;
}  // namespace stackless::detail

#if STACKLESS_ASSERTS_ON
#define STACKLESS_ASSERT(cond, what)                                       \
  do {                                                                     \
    if (__builtin_expect(!(cond), 0))                                      \
      ::stackless::detail::assert_failed(#cond, what, __FILE__, __LINE__); \
  } while (0)
/// STACKLESS_ASSERT_STATE(cond, what, word): the same, printing the state word that broke it.
#define STACKLESS_ASSERT_STATE(cond, what, word)                          \
  do {                                                                    \
    if (__builtin_expect(!(cond), 0))                                     \
      ::stackless::detail::assert_failed(#cond, what, __FILE__, __LINE__, \
                                         static_cast<long long>(word));   \
  } while (0)
#else
#define STACKLESS_ASSERT(cond, what) \
  do {                               \
  } while (0)
#define STACKLESS_ASSERT_STATE(cond, what, word) \
  do {                                           \
  } while (0)
#endif
