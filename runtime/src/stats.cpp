// SPDX-License-Identifier: Apache-2.0
// runtime/src/stats.cpp — scheduler::stats(): a snapshot of the workers' counters
// (worker_counters), the queues, the registry, the stacks and the monitor.
//
// Every counter is read relaxed: each is a count on its own, written relaxed by its one writer
// (worker.hpp, bump()), and the snapshot promises no consistency between them — a tasklet may be
// counted as spawned before it is counted as live. Only the tasklet states are read with
// acquire (pairing with the release stores of PARKED and DEAD), as every reader of them does.
#include "netpoller.hpp"
#include "scheduler_impl.hpp"

namespace stackless::detail {

namespace {
constexpr auto relaxed = std::memory_order_relaxed;

// add_worker_counts(): the per-worker rows, and the totals built from them.
void add_worker_counts(const scheduler_impl& s, scheduler_stats& out) {
  std::uint64_t spawned = s.plain_spawned.load(relaxed);
  for (auto& w : s.workers) {
    stackless::worker_stats ws;  // the public row
    ws.runs = w->runs.load(relaxed);
    ws.steals = w->steals.load(relaxed);
    ws.steal_attempts = w->steal_attempts.load(relaxed);
    ws.parks = w->parks.load(relaxed);
    ws.spins = w->spins.load(relaxed);
    ws.inbox = w->inbox_taken.load(relaxed);
    ws.injected = w->injected.load(relaxed);
    ws.overflows = w->overflows.load(relaxed);
    spawned += w->spawned.load(relaxed);
    out.steals += ws.steals;
    // seq_cst (the default) on runnext: a snapshot; any order would do.
    out.runnable += static_cast<std::uint64_t>(w->deque.size()) + (w->runnext.load() ? 1 : 0);
    out.workers.push_back(ws);
  }
  out.spawned = spawned;
}

void add_stack_counts(const scheduler_impl& s, scheduler_stats& out) {
  std::uint64_t taken = 0, released = 0;  // per worker: a stack may end on another worker
  for (auto& w : s.workers) {
    taken += w->stacks_taken.load(relaxed);
    released += w->stacks_released.load(relaxed);
  }
  out.stacks_outstanding = taken - released;
  out.stacks_pooled = s.stacks.pooled();
  for (auto& w : s.workers) out.stacks_pooled += w->stack_cache_size.load(relaxed);
  out.stacks_guarded = s.stacks.guarded_made();
  out.stacks_unguarded = s.stacks.unguarded_made();
}

void add_preemption_counts(const scheduler_impl& s, scheduler_stats& out) {
  for (auto& w : s.workers) {
    out.soft_preemptions += w->soft_preempts.load(relaxed);
    out.hard_preemptions += w->hard_preempts.load(relaxed);
    out.refused_disabled += w->refused_disabled.load(relaxed);
    out.refused_atomic += w->refused_atomic.load(relaxed);
    out.refused_not_preemptible += w->refused_not_preemptible.load(relaxed);
    out.refused_runtime_code += w->refused_runtime_code.load(relaxed);
    out.refused_stack += w->refused_stack.load(relaxed);
  }
  out.preemptions = out.soft_preemptions + out.hard_preemptions;
  monitor_counts(s, out);
}
}  // namespace

scheduler_stats scheduler_impl::stats() const {
  scheduler_stats s;
  add_worker_counts(*this, s);
  s.runnable += injection.size_approx();
  for_each_live([&](tcb* t) {  // the registry also holds tasklets in the last steps of finish()
    // acquire: pairs with the release stores of PARKED (after_switch()) and DEAD (finish()).
    std::uint32_t st = t->state.load(std::memory_order_acquire);
    if (st != S_DEAD) ++s.live;
    if (st == S_PARKED) ++s.parked;
  });
  add_stack_counts(*this, s);
  add_preemption_counts(*this, s);
  if (netpoller* np = np_.load(std::memory_order_acquire)) {  // pairs with netpoll()'s CAS
    s.io_waiting = np->waiting();
    s.io_registered = np->registered();
    s.io_polls = np->polls.load(relaxed);
    s.io_events = np->events.load(relaxed);
  }
  return s;
}

}  // namespace stackless::detail

namespace stackless {
scheduler_stats scheduler::stats() const { return impl_->stats(); }
}  // namespace stackless
