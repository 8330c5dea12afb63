// SPDX-License-Identifier: Apache-2.0
// runtime/src/deadlock.cpp — deadlock detection.
//
// A deadlock is a quiescent scheduler — every worker idle, no queue holding work, no timer
// pending, no tasklet waiting for I/O or for a blocking-pool thread (the outside world may wake
// it: netpoll.cpp) — whose live tasklets are all parked, staying so for options::deadlock_grace
// (a plain thread may still wake one; the grace is how long we wait for that). "Staying so" is
// measured with total_runs(), the sum of the workers' run counters: a watcher notes it when it
// starts watching, and a deadlock is declared only if nothing has run since.
//
// The watcher is the last worker to go idle (park_worker() sleeps at most one grace period when
// begin_deadlock_watch() says so, then calls check_deadlock()), or a plain thread blocked in
// join()/block_on()/drain() (watch_deadlock()). Tasklets parked in join() get deadlock_error; so
// do plain threads waiting in join()/block_on()/drain(). The first watcher to find a given quiet
// period writes the report and delivers it; the others get the same report (deadlock_mu guards
// the record of it), so one deadlock is reported once.
#include <algorithm>
#include <chrono>
#include <mutex>
#include <sstream>
#include <string_view>

#include "netpoller.hpp"
#include "scheduler_impl.hpp"

namespace stackless::detail {

std::uint64_t scheduler_impl::total_runs() const {
  std::uint64_t n = 0;
  // relaxed: a count compared with an earlier one; the quiescence checks that give it meaning
  // (nidle, the queues) are ordered on their own.
  for (auto& w : workers) n += w->runs.load(std::memory_order_relaxed);
  return n;
}

bool scheduler_impl::quiescent() {
  // acquire: pairs with the release stores of mode (lifecycle.cpp).
  if (mode.load(std::memory_order_acquire) != M_THREADED) return false;  // a pump may come
  // seq_cst: pairs with the seq_cst updates of nidle in the parking protocol (idle.cpp).
  if (nidle.load(std::memory_order_seq_cst) != static_cast<int>(nworkers)) return false;
  if (work_anywhere()) return false;
  // A tasklet waiting for I/O may be woken by the outside world at any time (netpoll.cpp).
  if (netpoller* np = np_.load(std::memory_order_acquire); np && np->waiting() > 0)  // netpoll()
    return false;
  if (external_waits.load(std::memory_order_seq_cst) > 0) return false;  // run_blocking()
  for (auto& w : workers)  // acquire: pairs with the acq_rel exchanges of runnext (worker.cpp)
    if (w->runnext.load(std::memory_order_acquire)) return false;
  if (next_deadline() == INT64_MAX) return true;
  return live_timers() == 0;  // stale entries do not count
}

bool scheduler_impl::begin_deadlock_watch(std::uint64_t* runs) {
  // seq_cst: as in quiescent(); a worker going idle after this read will watch in our place.
  if (opts.deadlock_grace.count() <= 0 ||
      nidle.load(std::memory_order_seq_cst) != static_cast<int>(nworkers) || live() == 0)
    return false;
  *runs = total_runs();
  std::lock_guard g(deadlock_mu);
  return deadlock_reported_runs != *runs;  // do not re-report the same quiet state
}

scheduler_impl::watch_end scheduler_impl::watch_deadlock(function_ref_until wait,
                                                         std::int64_t deadline, const tcb* target,
                                                         std::string* report) {
  const std::int64_t grace = std::chrono::nanoseconds(opts.deadlock_grace).count();
  std::uint64_t since = total_runs();
  for (;;) {
    std::int64_t until = deadline;
    if (grace > 0) until = std::min(until, add_saturating(now_ns(), grace));
    if (wait(until)) return watch_end::done;
    if (deadline != no_deadline && now_ns() >= deadline) return watch_end::timed_out;
    if (grace <= 0) continue;
    bool notified = false;
    std::string r = check_deadlock(since, target, &notified);
    if (!r.empty() && !notified) {  // nobody (not the target) can even react: give up
      if (report) *report = std::move(r);
      return watch_end::deadlock;
    }
    // Not yet — or a tasklet (the target) got deadlock_error and will end with it.
    since = total_runs();
  }
}

namespace {
// blocked_list is what check_deadlock() learns from one walk of the registry: whether every
// live tasklet is parked, the report's lines (the first 50), and the tasklets parked in join()
// (each with a reference held).
struct blocked_list {
  std::ostringstream os;
  bool all_parked = true;
  std::size_t n = 0;
  std::vector<tcb*> joiners;
};

void list_blocked(const scheduler_impl& s, blocked_list& b) {
  b.os << "stackless: deadlock: every tasklet is blocked and nothing can wake one; blocked "
          "tasklets:";
  s.for_each_live([&](tcb* t) {
    // acquire: pairs with the release store of PARKED in after_switch() (worker.cpp).
    if (t->state.load(std::memory_order_acquire) != S_PARKED) {
      b.all_parked = false;
      return;
    }
    if (t->wait_what && std::string_view(t->wait_what) == "join") {
      acquire(t);
      b.joiners.push_back(t);
    }
    if (++b.n > 50) return;
    b.os << "\n  " << tasklet_label(t) << ", waiting on " << (t->wait_what ? t->wait_what : "?");
    if (t->wait_target) b.os << " #" << t->wait_target;
  });
  if (b.n > 50) b.os << "\n  … and " << (b.n - 50) << " more";
}
}  // namespace

std::string scheduler_impl::check_deadlock(std::uint64_t since, const tcb* target,
                                           bool* target_notified) {
  std::lock_guard g(deadlock_mu);
  if (!quiescent() || total_runs() != since) return {};
  auto notified = [&] {  // with no target: whether anyone was notified
    if (target_notified)
      *target_notified = target ? std::find(deadlock_notified.begin(), deadlock_notified.end(),
                                            target) != deadlock_notified.end()
                                : !deadlock_notified.empty();
  };
  if (deadlock_reported_runs == since) {  // found already; delivered once
    notified();
    return deadlock_report;
  }
  blocked_list b;
  list_blocked(*this, b);
  std::string report;
  if (b.all_parked && b.n > 0) {
    report = b.os.str();
    deadlock_reported_runs = since;
    deadlock_report = report;
    deadlock_notified.assign(b.joiners.begin(), b.joiners.end());
    auto e = std::make_exception_ptr(deadlock_error(report));
    for (tcb* t : b.joiners) {
      try {
        raise(t, e, true);
      } catch (const usage_error&) {
        // It ended meanwhile: an earlier one's error reached it through its join.
      }
    }
    notified();
  }
  for (tcb* t : b.joiners) release(t);
  return report;
}

}  // namespace stackless::detail
