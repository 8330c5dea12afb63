// SPDX-License-Identifier: Apache-2.0
// runtime/src/stats.cpp — scheduler::stats(): a snapshot of the workers' counters
// (worker_counters), the queues, the registry, the stacks and the monitor.
//
// Every counter is read relaxed: each is a count on its own, written relaxed by its one writer
// (worker.hpp, bump()), and the snapshot promises no consistency between them — a tasklet may be
// counted as spawned before it is counted as live. Only the tasklet states are read with
// acquire (pairing with the release stores of PARKED and DEAD), as every reader of them does.
#include <cstdio>
#include <string>
#include <string_view>

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
    const std::int64_t since = w->loop_since_ns.load(relaxed);
    const std::int64_t loop = w->loop_ns.load(relaxed) + (since ? now_ns() - since : 0);
    const std::int64_t asleep = w->sleep_since_ns.load(relaxed);
    const std::int64_t slept = w->sleep_ns.load(relaxed) + (asleep ? now_ns() - asleep : 0);
    ws.sleep_ns = static_cast<std::uint64_t>(slept);
    ws.busy_ns = static_cast<std::uint64_t>(loop > slept ? loop - slept : 0);
    // seq_cst (the default) on runnext: a snapshot; any order would do.
    ws.queued = static_cast<std::uint64_t>(w->deque.size()) + (w->runnext.load() ? 1 : 0);
    spawned += w->spawned.load(relaxed);
    out.steals += ws.steals;
    out.runnable += ws.queued;
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

// ---- to_json(), to_prometheus() ----------------------------------------------------------------

namespace stackless {
namespace {
// The figures by name, once: `counter` ones only grow (Prometheus's counter type, named _total).
struct figure {
  const char* name;
  bool counter;
  std::uint64_t scheduler_stats::*field;
};
constexpr figure figures[] = {
    {"spawned", true, &scheduler_stats::spawned},
    {"live", false, &scheduler_stats::live},
    {"runnable", false, &scheduler_stats::runnable},
    {"parked", false, &scheduler_stats::parked},
    {"steals", true, &scheduler_stats::steals},
    {"preemptions", true, &scheduler_stats::preemptions},
    {"soft_preemptions", true, &scheduler_stats::soft_preemptions},
    {"hard_preemptions", true, &scheduler_stats::hard_preemptions},
    {"preempt_signals", true, &scheduler_stats::preempt_signals},
    {"refused_disabled", true, &scheduler_stats::refused_disabled},
    {"refused_atomic", true, &scheduler_stats::refused_atomic},
    {"refused_not_preemptible", true, &scheduler_stats::refused_not_preemptible},
    {"refused_runtime_code", true, &scheduler_stats::refused_runtime_code},
    {"refused_stack", true, &scheduler_stats::refused_stack},
    {"stalls_reported", true, &scheduler_stats::stalls_reported},
    {"stacks_outstanding", false, &scheduler_stats::stacks_outstanding},
    {"stacks_pooled", false, &scheduler_stats::stacks_pooled},
    {"stacks_guarded", true, &scheduler_stats::stacks_guarded},
    {"stacks_unguarded", true, &scheduler_stats::stacks_unguarded},
    {"io_waiting", false, &scheduler_stats::io_waiting},
    {"io_registered", false, &scheduler_stats::io_registered},
    {"io_polls", true, &scheduler_stats::io_polls},
    {"io_events", true, &scheduler_stats::io_events},
};
struct worker_figure {
  const char* name;
  bool counter;
  bool nanoseconds;  // a time: seconds in Prometheus
  std::uint64_t worker_stats::*field;
};
constexpr worker_figure worker_figures[] = {
    {"runs", true, false, &worker_stats::runs},
    {"steals", true, false, &worker_stats::steals},
    {"steal_attempts", true, false, &worker_stats::steal_attempts},
    {"parks", true, false, &worker_stats::parks},
    {"spins", true, false, &worker_stats::spins},
    {"inbox", true, false, &worker_stats::inbox},
    {"injected", true, false, &worker_stats::injected},
    {"overflows", true, false, &worker_stats::overflows},
    {"busy_ns", true, true, &worker_stats::busy_ns},
    {"sleep_ns", true, true, &worker_stats::sleep_ns},
    {"queued", false, false, &worker_stats::queued},
};

std::string prometheus_label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}
}  // namespace

std::string to_json(const scheduler_stats& s) {
  std::string out = "{";
  for (const figure& f : figures) {
    out += '"';
    out += f.name;
    out += "\":";
    out += std::to_string(s.*f.field);
    out += ',';
  }
  out += std::string("\"monitor_running\":") + (s.monitor_running ? "true" : "false");
  out += std::string(",\"monitor_realtime\":") + (s.monitor_realtime ? "true" : "false");
  out += ",\"workers\":[";
  for (std::size_t i = 0; i < s.workers.size(); ++i) {
    out += i ? ",{" : "{";
    bool first = true;
    for (const worker_figure& f : worker_figures) {
      out += first ? "\"" : ",\"";
      first = false;
      out += f.name;
      out += "\":";
      out += std::to_string(s.workers[i].*f.field);
    }
    out += '}';
  }
  out += "]}";
  return out;
}

std::string to_prometheus(const scheduler_stats& s, std::string_view scheduler) {
  const std::string label = "scheduler=\"" + prometheus_label(scheduler) + "\"";
  std::string out;
  auto head = [&](const std::string& name, bool counter) {
    out += "# TYPE " + name + (counter ? " counter\n" : " gauge\n");
  };
  for (const figure& f : figures) {
    const std::string name = std::string("stackless_") + f.name + (f.counter ? "_total" : "");
    head(name, f.counter);
    out += name + "{" + label + "} " + std::to_string(s.*f.field) + "\n";
  }
  head("stackless_monitor_running", false);
  out += "stackless_monitor_running{" + label + "} " + (s.monitor_running ? "1\n" : "0\n");
  head("stackless_monitor_realtime", false);
  out += "stackless_monitor_realtime{" + label + "} " + (s.monitor_realtime ? "1\n" : "0\n");
  for (const worker_figure& f : worker_figures) {
    std::string base = f.name;
    if (f.nanoseconds)
      base = base.substr(0, base.size() - 3) + "_seconds";  // busy_ns → busy_seconds
    const std::string name = "stackless_worker_" + base + (f.counter ? "_total" : "");
    head(name, f.counter);
    for (std::size_t i = 0; i < s.workers.size(); ++i) {
      const std::uint64_t v = s.workers[i].*f.field;
      char num[32];
      if (f.nanoseconds)
        std::snprintf(num, sizeof num, "%.9f", static_cast<double>(v) / 1e9);
      else
        std::snprintf(num, sizeof num, "%llu", static_cast<unsigned long long>(v));
      out += name + "{" + label + ",worker=\"" + std::to_string(i) + "\"} " + num + "\n";
    }
  }
  return out;
}

}  // namespace stackless
