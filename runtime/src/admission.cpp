// SPDX-License-Identifier: Apache-2.0
// runtime/src/admission.cpp — work from outside: submit()'s admission queue and the graceful
// shutdown(deadline).
//
// Admission (options::max_pending = M > 0). Invariants, all under adm_lk:
//   - adm_pending counts slots held: by admitted<Fn> objects whose function has not started
//     (submission.hpp) and by blocked submitters a release has handed a slot to.
//   - adm_pending <= M.
//   - adm_waiters holds blocked submitters in arrival order; one is only there while
//     adm_pending == M (a release hands its slot to the first waiter instead of freeing it).
// A release (admit_release) pops waiters until wake() succeeds — the slot passes straight to
// that waiter, adm_pending unchanged — and frees the slot only when nobody takes it. A tasklet
// whose park was already ended (kill, timeout_scope) refuses the wake and is skipped; its
// unlinked() outcome stands and it holds no slot. A plain thread's record that a release took
// counts as handed the slot even when its own wait timed out meanwhile (wait_here::unlinked).
// Not lock-free: submit() from outside is not the hot path that spawn() is; spawn() takes none
// of this.
//
// Shutdown: close_admission() sets `refusing` (seq_cst; the acquire loads in admit() and in
// scheduler_impl::submit() for plain threads pair with it) and sends every blocked submitter
// away with scheduler_closed. shutdown_graceful() then waits like drain() until live() is 0, the
// deadline passes, or deadlock detection says nothing can wake the parked rest; shutdown() kills
// what is left. finish() counts every end while counting_ends is set (count_end()).
#include <algorithm>
#include <string>

#include "scheduler_impl.hpp"

namespace stackless::detail {

admission admit(scheduler_impl* s, when_full full) {
  s->check_not_forked();
  // acquire: pairs with close_admission()'s seq_cst store.
  if (s->refusing.load(std::memory_order_acquire))
    throw scheduler_closed("stackless: submit() after shutdown() began: no new work is admitted");
  const std::size_t max = s->opts.max_pending;
  if (max == 0) return admission::unlimited;
  s->adm_lk.lock();
  if (s->adm_closed) {
    s->adm_lk.unlock();
    throw scheduler_closed("stackless: submit() after shutdown() began: no new work is admitted");
  }
  if (s->adm_pending < max && s->adm_waiters.empty()) {
    ++s->adm_pending;
    s->adm_lk.unlock();
    return admission::slot;
  }
  if (full != when_full::block) {
    s->adm_lk.unlock();
    if (full == when_full::run_inline) return admission::run_inline;
    throw queue_full("stackless: submit(): the admission queue is full (" + std::to_string(max) +
                     " submitted tasklets wait for their first run: options::max_pending)");
  }
  const std::int64_t deadline = scoped_deadline(no_deadline);
  wait_here wh("submit (admission queue full)");
  s->adm_waiters.push_back(wh.record());
  wake_reason r = wh.wait([s] { s->adm_lk.unlock(); }, deadline);
  s->adm_lk.lock();
  if (r != wake_reason::notified) r = wh.unlinked(r, s->adm_waiters.erase_if_linked(wh.record()));
  const bool closed = s->adm_closed;
  s->adm_lk.unlock();
  // notified: a release handed us its slot, or close_admission() sent us away.
  if (r == wake_reason::notified) {
    if (!closed) return admission::slot;
    throw scheduler_closed("stackless: submit(): shutdown() began while it waited for a slot");
  }
  if (r == wake_reason::interrupted) throw_if_interrupted();
  scope_check(no_deadline);  // the enclosing timeout_scope's deadline passed: timeout_error
  throw usage_error("stackless: submit(): the wait for a slot ended without one");  // unreachable
}

void admit_release(scheduler_impl* s) noexcept {
  s->adm_lk.lock();
  if (!s->adm_closed) {
    while (waiter* w = s->adm_waiters.pop_front())
      if (wake(*w)) {  // the slot passes to w (under adm_lk, as park.cpp requires)
        s->adm_lk.unlock();
        return;
      }
  }
  --s->adm_pending;
  s->adm_lk.unlock();
}

void scheduler_impl::close_admission() noexcept {
  // seq_cst: pairs with the acquire loads in admit() and submit() (scheduler.cpp).
  refusing.store(true, std::memory_order_seq_cst);
  adm_lk.lock();
  adm_closed = true;
  while (waiter* w = adm_waiters.pop_front()) wake(*w);  // each sees adm_closed and throws
  adm_lk.unlock();
}

void scheduler_impl::count_end(const tcb* t) noexcept {
  // relaxed: counts read after the workers are joined (shutdown_graceful()).
  if (!t->ended_by_kill)
    ends_ok.fetch_add(1, std::memory_order_relaxed);
  else if (t->never_ran)
    ends_unstarted.fetch_add(1, std::memory_order_relaxed);
  else
    ends_killed.fetch_add(1, std::memory_order_relaxed);
}

shutdown_report scheduler_impl::shutdown_graceful(std::int64_t deadline_ns) {
  if (tcb* self = current_tcb(); self && self->sched == this)
    throw usage_error("stackless: shutdown() called from a tasklet of the same scheduler");
  {
    std::lock_guard g(lifecycle_mu);
    if (shut_down) return {};
  }
  close_admission();
  // relaxed: this thread reads them back after shutdown() joined the workers.
  ends_ok.store(0, std::memory_order_relaxed);
  ends_killed.store(0, std::memory_order_relaxed);
  ends_unstarted.store(0, std::memory_order_relaxed);
  counting_ends.store(true, std::memory_order_seq_cst);
  if (live() != 0) {
    ensure_started();  // someone must run them: a single worker nobody pumps gets its thread
    wait_all_ended(deadline_ns, nullptr);  // done, timed out or deadlocked: the rest is killed
  }
  shutdown();
  counting_ends.store(false, std::memory_order_relaxed);
  shutdown_report r;
  r.finished = ends_ok.load(std::memory_order_relaxed);
  r.killed = ends_killed.load(std::memory_order_relaxed);
  r.never_started = ends_unstarted.load(std::memory_order_relaxed);
  return r;
}

}  // namespace stackless::detail

namespace stackless {

shutdown_report scheduler::shutdown(std::chrono::steady_clock::time_point deadline) {
  return shutdown_until_ns(detail::deadline_at(deadline));
}

shutdown_report scheduler::shutdown_until_ns(std::int64_t deadline_ns) {
  impl_->check_not_forked();
  return impl_->shutdown_graceful(deadline_ns);
}

}  // namespace stackless
