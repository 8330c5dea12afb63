// SPDX-License-Identifier: Apache-2.0
// runtime/src/timeout.cpp — the steady clock, the caller's clock (clock_ns()) and timeout_scope's
// per-tasklet stack of scopes (stackless/runtime/timeout.hpp,
// stackless/runtime/detail/deadline.hpp).
#include "stackless/runtime/timeout.hpp"

#include <time.h>

#include <algorithm>

#include "scheduler_impl.hpp"
#include "stackless/runtime/internal/park.hpp"

namespace stackless::detail {

std::int64_t now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::int64_t clock_ns() noexcept {
  const worker* w = current_worker();
  return w ? w->sched->clock_now() : now_ns();
}

timeout_scope*& scope_top() noexcept {
  if (tcb* t = current_tcb()) return t->scope_top;
  static thread_local timeout_scope* top = nullptr;  // a plain thread's scopes
  return top;
}

std::int64_t scoped_deadline(std::int64_t own) noexcept {
  timeout_scope* s = scope_top();
  if (!s) return own;
  return std::min(own, s->effective_ns());
}

void scope_check(std::int64_t own) {
  timeout_scope* s = scope_top();
  if (!s || s->effective_ns() >= own) return;
  if (clock_ns() >= s->effective_ns()) throw timeout_error(s->effective_owner());
}

}  // namespace stackless::detail
