// SPDX-License-Identifier: Apache-2.0
// runtime/src/this_tasklet.cpp — calls about the running tasklet.
#include "stackless/runtime/this_tasklet.hpp"

#include <optional>
#include <stop_token>
#include <thread>

#include "scheduler_impl.hpp"
#include "stackless/runtime/internal/scheduling.hpp"
#include "stackless/runtime/timeout.hpp"

namespace stackless::detail {
void yield_now() {
  if (tcb* t = current_tcb()) switch_out(t, switch_why::yield);
}
}  // namespace stackless::detail

namespace stackless::this_tasklet {

using namespace stackless::detail;

namespace {
tcb* need(const char* what) {
  tcb* t = current_tcb();
  if (!t)
    throw usage_error(std::string("stackless: this_tasklet::") + what +
                      "() called outside a tasklet");
  return t;
}
}  // namespace

void yield() {
  tcb* t = need("yield");
  if (t->irq.load(std::memory_order_relaxed)) throw_if_interrupted();
  switch_out(t, switch_why::yield);
  if (t->irq.load(std::memory_order_relaxed)) throw_if_interrupted();  // t is ours on any worker
}

std::uint64_t id() { return need("id")->id; }

unsigned workers() {
  (void)need("workers");
  return current_scheduler()->nworkers;
}

tasklet<void> current() {
  tcb* t = need("current");
  handle_acquire(t);
  return tasklet<void>(t, tasklet<void>::adopt_t{});
}

void detail_::sleep_ns(std::int64_t own, const std::stop_token* st) {
  chaos_point();
  const std::int64_t deadline = scoped_deadline(own);
  // A sleep whose own time has already come has nothing to wait for: like any call that need
  // not wait, it completes inside an expired timeout_scope (timeout.hpp).
  const bool must_wait = clock_ns() < own;
  throw_if_interrupted();
  while (clock_ns() < deadline) {
    // On no list: only the deadline, a stop request or an interrupt ends the wait.
    wait_here wh("sleep");
    const wake_reason r = wh.wait([] {}, deadline, st);
    if (r == wake_reason::interrupted) throw_if_interrupted();
    if (r == wake_reason::cancelled) throw operation_cancelled();
  }
  if (must_wait) scope_check(own);
}

atomic::atomic() {
  tcb* t = need("atomic");
  if (t->atomic_depth++ == 0) {
    t->home = current_worker();  // pinned here until the scope ends
    scope_changed(t);            // no hard preemption inside
  }
}
atomic::~atomic() {
  if (tcb* t = current_tcb()) {
    if (--t->atomic_depth == 0) scope_changed(t);
  }
}
bool in_atomic() { return need("in_atomic")->atomic_depth > 0; }

}  // namespace stackless::this_tasklet
