// SPDX-License-Identifier: Apache-2.0
// runtime/src/tasklet.cpp — what a tasklet<> handle does: join, kill, raise_exception,
// pause/resume, the predicates. Each wait goes through wait_here (park.cpp): a tasklet parks, a
// plain thread waits on a futex.
#include <chrono>
#include <cstdio>
#include <thread>

#include "door.hpp"
#include "scheduler_impl.hpp"
#include "stackless/runtime/internal/futex.hpp"
#include "stackless/runtime/internal/scheduling.hpp"
#include "stackless/runtime/this_tasklet.hpp"
#include "trace.hpp"
#include "tstate.hpp"

namespace stackless::detail {

tcb::~tcb() {
  if (sink) sink->release();
  if (sync_ext) sync_ext_free(sync_ext);
  if (locals) destroy_locals(this);  // a tasklet that never ran its entry (cannot happen today)
}

namespace {

// acquire: pairs with the release store of DEAD in finish(): the outcome (error, value) is seen.
bool dead(const tcb* t) noexcept { return t->state.load(std::memory_order_acquire) == S_DEAD; }

// Unlinks w from t's joiner list if it is still there; false if a waker already took it.
bool unlink_joiner(tcb* t, waiter* w) {
  t->lk.lock();
  bool was = w->linked;
  if (was) {
    if (w->prev)
      w->prev->next = w->next;
    else
      t->joiners = w->next;
    if (w->next) w->next->prev = w->prev;
    w->next = w->prev = nullptr;
    w->linked = false;
  }
  t->lk.unlock();
  return was;
}

// Links w into t's joiners; false (and not linked) if t is already dead. Called with t->lk held.
void link_joiner(tcb* t, waiter* w) {
  w->prev = nullptr;
  w->next = t->joiners;
  if (t->joiners) t->joiners->prev = w;
  t->joiners = w;
  w->linked = true;
}

// Waits for t to end, until `deadline`. A tasklet parks; a plain thread blocks, watching for a
// deadlock of t's scheduler (scheduler_impl::watch_deadlock()). Returns false on timeout.
bool wait_dead(tcb* t, std::int64_t own, const char* what) {
  preempt_point();  // a call that may wait is a safe point
  if (dead(t)) return true;
  t->sched->check_not_forked();
  const std::int64_t deadline = scoped_deadline(own);
  tcb* self = current_tcb();
  if (self == t) throw usage_error("stackless: a tasklet cannot join (or wait for) itself");
  chaos_point();
  // The host thread of a pumped scheduler: it runs the tasklets itself (lifecycle.cpp's
  // host_pump()); when t waits for something outside the scheduler, it polls — pumping again
  // each time — rather than start the worker thread, which would end pump mode.
  if (!self) {
    while (t->sched->host_pump(t, nullptr, deadline)) {
      if (dead(t)) return true;
      if (deadline != no_deadline && now_ns() >= deadline) {
        scope_check(own);  // a timeout_scope's deadline: timeout_error
        return false;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (dead(t)) return true;
  }
  // A plain thread, or a tasklet of another scheduler, needs t's scheduler running.
  if (!self || t->sched != self->sched) t->sched->ensure_started();
  for (;;) {
    t->lk.lock();
    if (dead(t)) {
      t->lk.unlock();
      return true;
    }
    wait_here wh(what, t->id);
    link_joiner(t, wh.record());
    wake_reason r;
    std::string report;  // a deadlock that t was not told of (plain thread)
    if (self) {
      r = wh.wait([t] { t->lk.unlock(); }, deadline);
    } else {
      t->lk.unlock();
      // t as the target: a deadlock in which t itself got deadlock_error ends t, and this join
      // rethrows it.
      const auto end = t->sched->watch_deadlock(
          [&](std::int64_t until) { return wh.wait([] {}, until) == wake_reason::notified; },
          deadline, t, &report);
      r = end == scheduler_impl::watch_end::done ? wake_reason::notified : wake_reason::timeout;
    }
    if (r != wake_reason::notified) r = wh.unlinked(r, unlink_joiner(t, wh.record()));
    if (r == wake_reason::interrupted) throw_if_interrupted();  // may return while unwinding
    if (dead(t) || (!self && r == wake_reason::notified)) return true;
    if (!report.empty()) throw deadlock_error(report);
    if (r == wake_reason::timeout) {
      scope_check(own);  // a timeout_scope's deadline: timeout_error
      return false;
    }
  }
}

// Ends t's park with `interrupted`, or resumes it if paused (kill/raise delivery).
void interrupt(tcb* t) {
  door_interrupt(t);  // we hold a reference on t (the caller's handle)
  // acquire: pairs with the release store of PAUSED in take_pause() / the CAS in pause().
  std::uint32_t s = t->state.load(std::memory_order_acquire);
  if (s == S_PAUSED || s == S_PAUSED_QUEUED) resume(t);
}

}  // namespace

void handle_acquire(tcb* t) noexcept {
  // relaxed: the caller already holds a reference, so the count cannot reach zero meanwhile
  // (the standard shared_ptr argument); the release decrements order the last use.
  t->handles.fetch_add(1, std::memory_order_relaxed);
  t->refs.fetch_add(1, std::memory_order_relaxed);
}

void handle_release(tcb* t) noexcept {
  // seq_cst, with the seq_cst load of state below: a Dekker pair with finish(), which stores DEAD
  // (seq_cst) and then reads handles — at least one side sees the other and reports.
  if (t->handles.fetch_sub(1, std::memory_order_seq_cst) == 1) {
    // Detached. If it already died with an error nobody joined, report it now.
    if (t->state.load(std::memory_order_seq_cst) == S_DEAD && t->error && t->sink &&
        // acq_rel: pairs with the same exchange in finish(): exactly one side reports.
        !t->error_reported.exchange(true, std::memory_order_acq_rel)) {
      error_report r{t->id, t->name, t->error, {}, t->spawned_at};
      try {
        t->sink->fn(r);
      } catch (...) {
      }
    }
  }
  release(t);
}

bool joiner_link(tcb* t, waiter* w) {
  t->lk.lock();
  if (dead(t)) {
    t->lk.unlock();
    return false;
  }
  link_joiner(t, w);
  t->lk.unlock();
  return true;
}
bool joiner_unlink(tcb* t, waiter* w) { return unlink_joiner(t, w); }

void join_wait(tcb* t) { wait_dead(t, no_deadline, "join"); }

bool join_wait_until(tcb* t, std::int64_t deadline) { return wait_dead(t, deadline, "join"); }

void join_rethrow(tcb* t, bool has_value) {
  if (!dead(t))
    throw usage_error("stackless: join(): the tasklet has not ended");  // join_for misuse
  if (t->error) {
    // relaxed: a hint to handle_release()'s exchange; a joiner that rethrows owns the error now.
    t->error_reported.store(true, std::memory_order_relaxed);  // observed: nothing to report
    std::rethrow_exception(t->error);
  }
  if (!has_value)
    throw tasklet_killed("stackless: join(): the tasklet was killed before it returned a value");
}

void kill(tcb* t, bool pending) {
  if (dead(t)) return;
  t->sched->check_not_forked();
  if (t == current_tcb()) {
    t->irq.fetch_or(IRQ_KILLED, std::memory_order_seq_cst);  // our own word: order irrelevant
    t->exit_thrown = true;
    throw tasklet_exit{};
  }
  // seq_cst: the Dekker pair with park() (which stores PARKING, then reads irq, both seq_cst):
  // this store, then door_interrupt()'s seq_cst load of the door.
  t->irq.fetch_or(IRQ_KILLED, std::memory_order_seq_cst);
  // From the host of a pumped scheduler: the delivery happens with worker 0 taken, so the victim
  // is queued there to run next, and the host pumps it to its end (Stackless switched to it).
  if (!pending && !current_tcb() && t->sched->host_pump(t, &interrupt, no_deadline)) {
    wait_dead(t, no_deadline, "kill");  // done, or it waits for something: pumps and polls
    return;
  }
  interrupt(t);
  if (!pending) wait_dead(t, no_deadline, "kill");
}

void raise(tcb* t, std::exception_ptr e, bool pending) {
  if (!e) throw std::invalid_argument("stackless: raise_exception() needs an exception");
  if (dead(t)) throw usage_error("stackless: raise_exception() on a tasklet that has ended");
  t->sched->check_not_forked();
  if (t == current_tcb()) std::rethrow_exception(e);
  t->lk.lock();
  t->pending = std::move(e);
  t->irq.fetch_or(IRQ_EXC, std::memory_order_seq_cst);  // the same Dekker pair as kill()'s
  t->lk.unlock();
  interrupt(t);
  if (!pending && current_tcb()) {
    tcb* self = current_tcb();
    switch_out(self, switch_why::yield);  // give it a chance to run (Stackless switches to it)
    throw_if_interrupted();
  }
}

void pause(tcb* t) {
  t->sched->check_not_forked();
  if (t == current_tcb()) throw usage_error("stackless: pause(): a tasklet cannot pause itself");
  bool asked = false;  // we set IRQ_PAUSE on a running tasklet and wait for it to take effect
  // acquire (here and below): pairs with the release stores / acq_rel CASes of tcb::state by the
  // workers (pop, park, take_pause()).
  std::uint32_t s = t->state.load(std::memory_order_acquire);
  for (;;) {
    switch (s) {
      case S_RUNNABLE:
        // acq_rel: against the worker's pop CAS (RUNNABLE → RUNNING): one of them wins.
        check_tstate_transition(s, S_PAUSED_QUEUED);
        if (t->state.compare_exchange_weak(s, S_PAUSED_QUEUED, std::memory_order_acq_rel)) {
          // acq_rel: pairs with the fetch_and in take_pause(): our request is withdrawn or taken.
          if (asked) t->irq.fetch_and(~IRQ_PAUSE, std::memory_order_acq_rel);
          return;
        }
        continue;
      case S_PAUSED:
      case S_PAUSED_QUEUED:
        return;
      case S_RUNNING:
        // Running on another worker: ask, and wait for its next switch (a yield, or a park and
        // the wake after it), where take_pause() turns it into PAUSED.
        if (!asked) {
          // seq_cst: read by take_pause() (acquire) at the tasklet's next switch.
          t->irq.fetch_or(IRQ_PAUSE, std::memory_order_seq_cst);
          asked = true;
        }
        if (current_tcb()) {
          this_tasklet::yield();
        } else {
          std::this_thread::yield();
        }
        s = t->state.load(std::memory_order_acquire);
        continue;
      case S_PARKED:
        // Blocked (Stackless remove() refuses too) — unless our request was already taken by
        // the wake that is making it PAUSED right now.
        // acq_rel: pairs with take_pause()'s fetch_and — exactly one of us clears the request.
        if (!asked || (t->irq.fetch_and(~IRQ_PAUSE, std::memory_order_acq_rel) & IRQ_PAUSE))
          throw usage_error(
              "stackless: pause(): the tasklet is blocked (Stackless remove() refuses too)");
        std::this_thread::yield();
        s = t->state.load(std::memory_order_acquire);
        continue;
      case S_DEAD:  // (also when it ended before the switch we waited for)
        throw usage_error("stackless: pause(): the tasklet has ended");
      default:
        throw usage_error("stackless: pause(): tasklet in an unknown state");
    }
  }
}

bool take_pause(tcb* t) noexcept {
  std::uint32_t f = t->irq.load(std::memory_order_acquire);  // pairs with pause()'s fetch_or
  if (!(f & IRQ_PAUSE)) return false;
  // acq_rel: pairs with the fetch_and in pause() / resume(): the request is taken exactly once.
  f = t->irq.fetch_and(~IRQ_PAUSE, std::memory_order_acq_rel);
  if (!(f & IRQ_PAUSE) || (f & IRQ_KILLED)) return false;  // withdrawn, or killed meanwhile
  // release: pairs with the acquire loads in pause() / resume() / interrupt().
  set_tstate(t, S_PAUSED, std::memory_order_release);
  return true;
}

void resume(tcb* t) {
  t->sched->check_not_forked();
  // acq_rel: pairs with take_pause()'s fetch_and — withdraw a pause not yet taken.
  t->irq.fetch_and(~IRQ_PAUSE, std::memory_order_acq_rel);
  std::uint32_t s = t->state.load(std::memory_order_acquire);  // pairs with take_pause()'s store
  for (;;) {
    switch (s) {
      case S_PAUSED_QUEUED:  // still in its queue: it just may run again
        // acq_rel: against the worker that pops it (PAUSED_QUEUED → PAUSED): one wins.
        check_tstate_transition(s, S_RUNNABLE);
        if (t->state.compare_exchange_weak(s, S_RUNNABLE, std::memory_order_acq_rel)) return;
        continue;
      case S_PAUSED:
        check_tstate_transition(s, S_RUNNABLE);
        if (t->state.compare_exchange_weak(s, S_RUNNABLE, std::memory_order_acq_rel)) {
          t->sched->make_runnable(t);
          return;
        }
        continue;
      case S_DEAD:
        throw usage_error("stackless: resume(): the tasklet has ended");
      default:
        return;  // runnable, running or blocked: nothing to do
    }
  }
}

bool is_alive(const tcb* t) noexcept { return !dead(t); }
// The predicates' acquire loads pair with the release stores / CASes of tcb::state.
bool is_blocked(const tcb* t) noexcept {
  return t->state.load(std::memory_order_acquire) == S_PARKED;
}
bool is_scheduled(const tcb* t) noexcept {
  std::uint32_t s = t->state.load(std::memory_order_acquire);
  return s == S_RUNNABLE || s == S_RUNNING || s == S_PARKED;
}
bool is_paused(const tcb* t) noexcept {
  std::uint32_t s = t->state.load(std::memory_order_acquire);
  return s == S_PAUSED || s == S_PAUSED_QUEUED;
}

std::string get_name(tcb* t) {
  t->lk.lock();
  std::string n = t->name;
  t->lk.unlock();
  return n;
}

void set_name(tcb* t, std::string n) {
  // The trace names its runs by it. Only while t lives: a dead one's scheduler may be gone.
  // acquire: pairs with the release store of DEAD in finish() (scheduler.cpp).
  if (t->sched && t->state.load(std::memory_order_acquire) != S_DEAD && t->sched->trace)
    trace_set_name(*t->sched, t->id, n);
  t->lk.lock();
  t->name.swap(n);
  t->lk.unlock();
}

}  // namespace stackless::detail
