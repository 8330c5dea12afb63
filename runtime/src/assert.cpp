// SPDX-License-Identifier: Apache-2.0
// runtime/src/assert.cpp — what a broken invariant prints (STACKLESS_ASSERT,
// stackless/runtime/internal/assert.hpp). It runs on any thread, possibly on a tasklet's stack,
// possibly with runtime locks held: it only formats into a local buffer and writes it with one
// write(2), then aborts.
#include "stackless/runtime/internal/assert.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "scheduler_impl.hpp"

namespace stackless::detail {

void assert_failed(const char* cond, const char* what, const char* file, int line,
                   long long value) noexcept {
  char buf[1024];
  int n =
      std::snprintf(buf, sizeof buf, "stackless: invariant broken: %s\n  check: %s\n  at %s:%d\n",
                    what, cond, file, line);
  auto append = [&](const char* fmt, auto... args) {
    if (n >= 0 && static_cast<std::size_t>(n) < sizeof buf)
      n += std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n), fmt, args...);
  };
  if (value >= 0) append("  state word: %#llx\n", value);
  if (tcb* t = current_tcb())
    append("  tasklet: id %llu\n", static_cast<unsigned long long>(t->id));
  else
    append("  tasklet: none (a plain thread or a worker's own stack)\n");
  if (worker* w = current_worker())
    append("  worker: %u\n", w->index);
  else
    append("  worker: none\n");
  if (n > 0) {
    const std::size_t len =
        static_cast<std::size_t>(n) < sizeof buf ? static_cast<std::size_t>(n) : sizeof buf - 1;
    ssize_t r = ::write(2, buf, len);
    (void)r;
  }
  std::abort();
}

}  // namespace stackless::detail
