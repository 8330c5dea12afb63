// SPDX-License-Identifier: Apache-2.0
// runtime/src/worker.cpp — the worker loop: find a runnable tasklet, switch to it, handle the
// reason it switched back. After Go's findRunnable/schedule (proc.go) and tokio's multi_thread
// worker (worker.rs).
//
// Where a worker looks for work, in order (next_local, then find_runnable):
//   1. every 61st tick, for fairness: due timers (and ready I/O, if nobody polled for 10 ms —
//      right after the switch, if a park's unlock step is pending: fair_pick()), the injection
//      queue, the *oldest* element of its own deque (a steal from itself), the yield list — so
//      neither LIFO order nor a busy runnext nor a job that never lets the worker reach its
//      scheduler side can starve anything;
//   2. runnext, unless it has run 3 tasklets from it in a row (a ping-pong pair shares one time
//      slice and must not starve the queue);
//   3. its deque (LIFO: fork/join runs depth-first, as in TBB/Cilk), then its inbox (tasklets
//      pinned to this worker by this_tasklet::atomic, woken elsewhere);
//   4. the injection queue (a batch);
//   5. its yield list (yield() is "to the back of the queue"); with workers idle, the rest of
//      the list (pinned ones excepted) moves to the deque so that they can steal it;
//   6. due timers (fire_due_timers(), timers.cpp), then ready I/O (poll_io(), netpoll.cpp);
//   7. steal: random victim, half of its deque (≤ 32), its runnext only in the last round —
//      only while at most half the busy workers are spinning (Go #43997: idle CPU burn);
//   8. park on its futex — or in epoll_wait, if tasklets wait for I/O and no other worker does
//      (park_worker(), idle.cpp).
// 1–5 run on a tasklet's stack when it yields, parks or ends (direct switch); 6–8 only on the
// worker's own stack.
//
// Parking (idle.cpp): a worker that finds nothing, after a bounded spin as a thief, parks on its
// futex; whoever publishes work wakes one if none is spinning. A worker's state, split into what
// only its thread touches and what others reach, is in worker.hpp.
//
// Switching: a tasklet that yields, parks or ends switches *directly* to the next tasklet of its
// worker's local queues (one jump); only when they are empty does it switch to the worker's
// scheduler side, which steals, polls the injection queue and parks. The steps that must happen
// after the old tasklet is off its stack (the park's unlock, the PARKED transition, releasing a
// dead tasklet's stack) are recorded in worker_owned::prev/why and run by whoever lands:
// after_switch(), called by a resumed tasklet, a new tasklet and the scheduler side alike
// (Boost.Fiber's resume_with). A yielding tasklet goes on the yield list in after_switch(), once
// it is off its stack; when nothing else is runnable it simply carries on.
//
// Memory orders (the partner of each is named where it is used):
// - runnext: every take and put is an acq_rel exchange (the owner's, a thief's), so whoever takes
//   a tasklet sees what its putter wrote; the relaxed loads before them are only a cheap "worth
//   trying?" peek.
// - The deque has its own (deque.hpp). inbox_nonempty: release by inbox_push() under the lock,
//   acquire by inbox_pop() before it takes the lock; the relaxed peeks elsewhere only decide
//   whether to look (a missed one is caught by park_worker()'s re-check after its fence).
// - nidle / nspinning: the parking protocol's (idle.cpp). The relaxed loads of them here are
//   heuristics (how many spin, whether anyone is idle); the updates are seq_cst RMWs.
// - The counters (worker_counters) are relaxed: nothing is published through them.
#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "context.hpp"
#include "door.hpp"
#include "scheduler_impl.hpp"
#include "trace.hpp"

namespace stackless::detail {
namespace {

thread_local worker* tl_worker = nullptr;

constexpr unsigned runnext_cap = 3;
constexpr unsigned fairness_tick = 61;
constexpr std::size_t steal_max = 32;
constexpr std::int64_t spin_ns = 50'000;  // how long a spinning worker looks before it parks

std::uint64_t next_rand(worker_owned& w) noexcept {  // xorshift64*
  std::uint64_t x = w.rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  w.rng = x;
  return x * 2685821657736338717ULL;
}

void yield_push(worker& w, tcb* t) noexcept {
  t->next = nullptr;
  if (w.yield_tail) {
    w.yield_tail->next = t;
  } else {
    w.yield_head = t;
    // relaxed: a hint for the monitor (preempt.cpp's work_waiting()), compared across ticks.
    w.has_yielders.store(true, std::memory_order_relaxed);
  }
  w.yield_tail = t;
}

tcb* yield_pop(worker& w) noexcept {
  tcb* t = w.yield_head;
  if (t) {
    w.yield_head = t->next;
    if (!w.yield_head) {
      w.yield_tail = nullptr;
      w.has_yielders.store(false, std::memory_order_relaxed);  // relaxed: the monitor's hint
    }
    t->next = nullptr;
  }
  return t;
}

tcb* inbox_pop(worker& w) noexcept {
  // acquire: pairs with the release store in inbox_push(); a false here is re-checked by
  // park_worker() after its fence.
  if (!w.inbox_nonempty.load(std::memory_order_acquire)) return nullptr;
  w.inbox_lk.lock();
  tcb* t = w.inbox_head;
  if (t) {
    w.inbox_head = t->next;
    if (!w.inbox_head) {
      w.inbox_tail = nullptr;
      // relaxed: under inbox_lk, which orders it against the pushers' stores.
      w.inbox_nonempty.store(false, std::memory_order_relaxed);
    }
    t->next = nullptr;
  }
  w.inbox_lk.unlock();
  if (t) w.inbox_taken.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count for stats()
  return t;
}

}  // namespace

worker* current_worker() noexcept { return tl_worker; }
void set_current_worker(worker* w) noexcept { tl_worker = w; }

tcb* current_tcb() noexcept {
  worker* w = tl_worker;
  return w ? w->current : nullptr;
}

bool sp_on_switch_side(std::uintptr_t sp) noexcept {
  worker* w = tl_worker;
  if (!w) return false;
  auto within = [sp](const void* lo, std::size_t size) {
    auto l = reinterpret_cast<std::uintptr_t>(lo);
    return lo && sp >= l && sp < l + size;
  };
  if (within(w->sched_ctx.stack_lo, w->sched_ctx.stack_size)) return true;
  // Half-way through a switch: still on the stack of the tasklet that is leaving (its stack's
  // descriptor is its top).
  const tcb* p = w->prev;
  return p && p->stk && within(p->stk->lo, p->stk->size);
}

bool spinning_may_help() noexcept {
  worker* w = tl_worker;
  return !w || !w->current ||
         w->sched->nworkers > 1;  // one worker: the holder cannot run meanwhile
}

const void* self_token() noexcept {
  static thread_local char thread_token;  // a plain thread's identity as a lock owner
  worker* w = tl_worker;
  if (w && w->current) return w->current;
  return &thread_token;
}

scheduler_impl* current_scheduler() noexcept {
  worker* w = tl_worker;
  return w && w->current ? w->sched : nullptr;
}

// ---- switching ------------------------------------------------------------------------------

namespace {

// claim() makes a popped tasklet RUNNING; false if it was paused while queued (it is dropped,
// and resume() will queue it again).
bool claim(tcb* t) {
  // acquire (load and CASes): pairs with pause()'s and resume()'s acq_rel CASes (tasklet.cpp) —
  // the CAS decides between this worker and pause(); the tasklet's own writes reached us through
  // the queue it was popped from.
  std::uint32_t s = t->state.load(std::memory_order_acquire);
  for (;;) {
    if (s == S_RUNNABLE) {
      check_tstate_transition(s, S_RUNNING);
      if (t->state.compare_exchange_weak(s, S_RUNNING, std::memory_order_acq_rel)) return true;
    } else if (s == S_PAUSED_QUEUED) {
      check_tstate_transition(s, S_PAUSED);
      if (t->state.compare_exchange_weak(s, S_PAUSED, std::memory_order_acq_rel)) return false;
    } else {
      tstate_broken(t, s, "worker: popped a tasklet that is neither RUNNABLE nor PAUSED_QUEUED");
    }
  }
}

}  // namespace

void scheduler_impl::expose_yielders(worker& w) {
  tcb* batch[512];
  std::size_t n = 0;
  tcb* keep_head = nullptr;  // pinned ones stay on the yield list, in order
  tcb* keep_tail = nullptr;
  while (n < 512 && w.yield_head) {
    tcb* t = yield_pop(w);
    if (pinned(t)) {
      if (keep_tail)
        keep_tail->next = t;
      else
        keep_head = t;
      keep_tail = t;
    } else {
      batch[n++] = t;
    }
  }
  if (keep_head) {
    keep_tail->next = w.yield_head;
    if (!w.yield_head) w.yield_tail = keep_tail;
    w.yield_head = keep_head;
    w.has_yielders.store(true, std::memory_order_relaxed);  // relaxed: the monitor's hint
  }
  for (std::size_t i = n; i-- > 0;) push_local(w, batch[i], false);
  if (n) wake_one();
}

void scheduler_impl::inbox_push(worker& home, tcb* t) {
  t->next = nullptr;
  home.inbox_lk.lock();
  if (home.inbox_tail)
    home.inbox_tail->next = t;
  else
    home.inbox_head = t;
  home.inbox_tail = t;
  home.inbox_nonempty.store(true, std::memory_order_release);  // pairs with inbox_pop()'s acquire
  home.inbox_lk.unlock();
  if (current_worker() != &home) wake_worker(home);
}

// fair_pick(): every 61st tick (see the top of the file).
tcb* scheduler_impl::fair_pick(worker& w) {
  tcb* t = nullptr;
  fire_due_timers();  // a busy worker still fires its timers
  // ... and serves I/O when nobody else has for a while (netpoll.cpp) — but not while a park's
  // unlock step is pending (w.prev is parking: we are on its stack, in leave()): the parking
  // tasklet may still hold the lock of the very poll slot an event would wake it through. Then
  // the poll is owed, and after_switch() makes it right after that unlock step.
  //
  // This used to be `if (!w.unlock) poll_io_if_due();`. But w.unlock is never cleared (after the
  // park it points at a dead function_ref): after its first park a worker never polled here
  // again. With one worker, quantum 0 (no monitor) and a fork/join job (every join parks, and the
  // job always has a runnable tasklet, so the scheduler side's search() never polls either),
  // ready I/O waited for the whole job — examples/service.cpp's GET /stats behind GET /fib/44:
  // 7.4 s, 5 polls; tests/io/test_netpoll_busy.cpp. Skipping the poll whenever a park is pending
  // is not enough either: where every switch is a park (two tasklets that wake each other) the
  // tick would never poll; hence the owed poll rather than a skipped one. Its cost on the switch
  // path is one predictable branch on a field of this worker, in the park case only.
  if (w.prev && w.why == switch_why::park)
    w.poll_owed = true;
  else
    poll_io_if_due();
  if (injection.try_dequeue(t)) {
    w.injected.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count for stats()
    return t;
  }
  trace_event(w, trace_kind::runq, 0, std::max<std::int64_t>(w.deque.size(), 0));  // a sample
  if (w.deque.steal(t) == steal_status::success) return t;
  return yield_pop(w);
}

// injected_batch(): a batch from the injection queue; the first is returned, the rest queued
// locally in arrival order.
tcb* scheduler_impl::injected_batch(worker& w) {
  tcb* batch[steal_max];
  std::size_t n = injection.try_dequeue_bulk(batch, steal_max);
  if (!n) return nullptr;
  w.injected.fetch_add(n, std::memory_order_relaxed);  // relaxed: a count for stats()
  // Pushed newest first so that the LIFO take() hands them out in arrival order: tasklets
  // spawned from a plain thread start in spawn order (Stackless's run() order).
  for (std::size_t i = n; i-- > 1;) push_local(w, batch[i], false);
  if (n > 1) wake_one();
  return batch[0];
}

tcb* scheduler_impl::next_local(worker& w) {
  for (;;) {
    tcb* t = nullptr;
    if (__builtin_expect(++w.tick % fairness_tick == 0, 0)) {
      // relaxed: a periodic peek; search() reads it with acquire before the worker parks.
      if (stopping.load(std::memory_order_relaxed)) return nullptr;
      t = fair_pick(w);
    }
    // runnext: a relaxed peek, then the acq_rel exchange that takes it (pairs with the putter's
    // exchange in push_runnext() and a thief's in steal_round()).
    if (!t && w.runnext_streak < runnext_cap && w.runnext.load(std::memory_order_relaxed) &&
        (t = w.runnext.exchange(nullptr, std::memory_order_acq_rel)))
      ++w.runnext_streak;
    if (!t) {
      w.runnext_streak = 0;
      t = w.deque.take();
      // relaxed peek: inbox_pop() acquires before it takes anything.
      if (!t && w.inbox_nonempty.load(std::memory_order_relaxed)) t = inbox_pop(w);
      // yield() is "to the back of the queue": what waits in the injection queue goes first.
      if (!t && injection.size_approx() != 0) t = injected_batch(w);
      if (!t && (t = yield_pop(w)) && w.yield_head &&
          __builtin_expect(nidle.load(std::memory_order_relaxed) > 0, 0)) {  // relaxed: a hint
        // Idle workers and more than one yielder here: expose the rest to thieves, keeping
        // their order (pushed newest first, so take() hands them out oldest first).
        expose_yielders(w);
      }
      if (!t && w.runnext.load(std::memory_order_relaxed))  // skipped above because of the cap
        t = w.runnext.exchange(nullptr, std::memory_order_acq_rel);  // as above
      if (!t) return nullptr;
    }
    if (claim(t)) return t;
  }
}

// launch() readies t to be switched to on w: on its first run it gets a stack from the cache or
// the pool. False when no stack can be had (the kernel refused the mapping): t has then ended
// without running, its join() throwing the error (end_unstarted()), and the caller picks another.
// first_launch() gives t, about to run for the first time, a stack from the cache or the pool.
// false: the kernel refused a mapping, and t ended unrun with that error. Out of line, so that
// launch()'s every-switch path does not pay for the try block's saved registers.
[[gnu::noinline]] bool scheduler_impl::first_launch(worker& w, tcb* t) {
  stack* st;
  if (!w.stack_cache.empty()) {
    st = w.stack_cache.back();
    w.stack_cache.pop_back();
    // relaxed: a count for stats().
    w.stack_cache_size.store(w.stack_cache.size(), std::memory_order_relaxed);
  } else {
    try {
      st = stacks.get();
    } catch (...) {
      end_unstarted(w, t, std::current_exception());
      return false;
    }
  }
  bump(w.stacks_taken);
  t->stk = st;
  context_create(t->ctx, st->lo, st->size, &tasklet_entry, &st->fiber);
  return true;
}

bool scheduler_impl::launch(worker& w, tcb* t) {
  if (!t->stk && !first_launch(w, t)) return false;
  trace_run_begin(w, t);  // before w.current changes: it tells a direct switch (trace.hpp)
  w.current = t;
  bump(w.runs);
  // Stackless's schedule callback (dump.cpp), when one is set. relaxed: a hint (see
  // has_schedule_cb).
  if (__builtin_expect(has_schedule_cb.load(std::memory_order_relaxed), 0)) call_schedule_cb(w, t);
  // relaxed: with `runs`, a hint the monitor compares across its ticks (preempt.cpp).
  w.running_id.store(t->id, std::memory_order_relaxed);
  // A fresh turn: no request pending, and checkpoint() watches this tasklet's interrupt word.
  // relaxed (preempt, hard_ok): hints between this thread and the monitor (preempt.hpp).
  thread_block* b = w.block;
  b->preempt.store(0, std::memory_order_relaxed);
  b->irq = &t->irq;
  b->hard_ok.store(t->preemptible_depth > 0 && t->atomic_depth == 0, std::memory_order_relaxed);
  if (w.slice_ns) t->run_start_ns = now_ns();
  return true;
}

// end_unstarted() ends t, claimed but never run, without a stack: `error` becomes its outcome
// (unless it was killed: then it ends as killed, as it would have at its start). Its function
// and arguments are destroyed here, on the worker, with no tasklet current: a destructor there
// must not block. On a tasklet's stack half-way through leave(), or on the scheduler side.
void scheduler_impl::end_unstarted(worker& w, tcb* t, std::exception_ptr error) {
  // acquire: pairs with kill()'s seq_cst fetch_or (tasklet.cpp), as in tasklet_entry().
  if (t->irq.load(std::memory_order_acquire) & IRQ_KILLED)
    t->ended_by_kill = true;
  else
    t->error = std::move(error);
  t->never_ran = true;
  tcb* cur = std::exchange(w.current, nullptr);
  t->base()->discard();
  w.current = cur;
  finish(w, t);
}

namespace {
[[noreturn]] void report_overflow(const tcb* t) {
  std::fprintf(stderr,
               "stackless: stack overflow in tasklet %s (unguarded stack of %zu bytes: "
               "canary overwritten); raise options::stack_size\n",
               tasklet_label(const_cast<tcb*>(t)).c_str(), t->stk->size);
  std::abort();
}

// owed_poll(): the fairness tick's I/O poll, put off by fair_pick() while a park's unlock step was
// pending; after_switch() makes it once that step has run. Out of line: rare, and after_switch()
// runs at every switch.
[[gnu::noinline, gnu::cold]] void owed_poll(worker& w) {
  w.poll_owed = false;
  w.sched->poll_io_if_due();
}
}  // namespace

void scheduler_impl::after_switch(worker& w) {
  tcb* t = w.prev;
  if (!t) return;
  w.prev = nullptr;
  if (!t->stk->canary_ok()) report_overflow(t);
  switch (w.why) {
    case switch_why::yield:
      if (take_pause(t)) return;  // pause() asked while it ran
      // relaxed: published by the queue push below.
      set_tstate(t, S_RUNNABLE, std::memory_order_relaxed);
      // To the back of the queue — unless a worker is idle: then where thieves look, and wake
      // one. (Two tasklets that yield to each other never meet on the yield list: each is pushed
      // after the other was taken, so next_local() would never expose them.)
      if (!pinned(t) && __builtin_expect(nidle.load(std::memory_order_relaxed) > 0, 0))  // a hint
        push_local(w, t, true);
      else
        yield_push(w, t);
      return;
    case switch_why::overrun:
      // release: pairs with the acquire loads of the state (is_paused(), resume()) by the host
      // that gets it from run_for().
      set_tstate(t, S_PAUSED, std::memory_order_release);  // run_for(): hand it to the host
      w.overran = t;
      acquire(t);
      return;
    case switch_why::park: {
      (*w.unlock)();  // now that the tasklet is off its stack, wakers may find it
      // The poll fair_pick() owed while this unlock step was pending. It may wake t itself
      // (still PARKING): then door_finish_parking() below fails, as with any early waker.
      if (__builtin_expect(w.poll_owed, 0)) owed_poll(w);
      // PARKED first, then the door: a waker that sees the door PARKED stores RUNNABLE after us.
      // release: pairs with the acquire in is_blocked() and the deadlock check; the door's
      // acq_rel CAS below carries it to the waker.
      t->parked_since_ns = coarse_now_ns();  // for dump(): ~4 ns (vDSO, no system call)
      set_tstate(t, S_PARKED, std::memory_order_release);
      if (door_finish_parking(t)) return;  // parked; a waker will requeue it
      if (w.trace) t->trace_woken = true;  // its wake's arrow ends at its next run (trace.hpp)
      // Woken before it finished parking: it runs again next (a pinned one from the inbox,
      // where no thief looks) — unless pause() asked meanwhile.
      if (take_pause(t)) return;
      set_tstate(t, S_RUNNABLE, std::memory_order_relaxed);  // relaxed: published by the push
      if (pinned(t)) {
        inbox_push(w, t);
        return;
      }
      if (chaos_roll(w, 2))
        push_back_local(w, t);
      else
        push_runnext(w, t);
      return;
    }
    case switch_why::exit:
      finish(w, t);
      return;
  }
}

// ---- the tasklet side -----------------------------------------------------------------------

// pump_wants_back(): a pump on this thread must get worker 0 back now (lifecycle.cpp): run_for()'s
// deadline has passed, or the tasklet a host_pump() waits for is ending.
static bool pump_wants_back(const worker* w, const tcb* t, bool exiting) {
  return (exiting && t == w->pump_target) || (w->pump_deadline && now_ns() >= w->pump_deadline);
}

// Leaves tasklet t for the next local tasklet directly (one jump), or for the worker's scheduler
// side when there is none (it steals, polls, parks) or a pump wants it back. Whoever lands runs
// after_switch(), which finishes what t started: the park's unlock step, the release of a dead
// tasklet's stack.
static void leave(worker* w, tcb* t, bool exiting) {
  trace_run_end(*w, t, w->why);
  scheduler_impl* s = w->sched;
  bool back = w->why == switch_why::overrun;
  if (!back && (w->pump_deadline != 0 || w->pump_target != nullptr)) [[unlikely]] {  // a pump
    back = pump_wants_back(w, t, exiting);
    // run_for(): a tasklet that yields once the pump's deadline has passed is the one the slice
    // caught; it goes to the host paused, as one the monitor stopped does (Stackless's
    // run(timeout) returned the tasklet it interrupted), not to the back of the queue.
    if (back && w->why == switch_why::yield && w->pump_deadline && now_ns() >= w->pump_deadline)
      w->why = switch_why::overrun;
  }
  tcb* next = back ? nullptr : s->next_local(*w);
  while (next && !s->launch(*w, next)) next = s->next_local(*w);  // false: it could not start
  // acquire: pairs with pause()'s seq_cst fetch_or of IRQ_PAUSE (tasklet.cpp).
  if (!next && !back && w->why == switch_why::yield &&  // yielded, nothing else runnable here
      !(t->irq.load(std::memory_order_acquire) & IRQ_PAUSE)) {
    w->prev = nullptr;
    w->current = t;
    // It carries on: a new turn all the same (the monitor sees it passed a safe point).
    bump(w->runs);
    trace_run_begin(*w, t);  // a new run slice, as for any other turn
    w->block->preempt.store(0, std::memory_order_relaxed);  // relaxed: the monitor's hint
    if (w->slice_ns) t->run_start_ns = now_ns();
    return;
  }
  if (next) {
    context_switch(t->ctx, next->ctx, w, exiting);
  } else {
    w->current = nullptr;
    context_switch(t->ctx, w->sched_ctx, nullptr, exiting);
  }
  // Resumed, maybe on another worker.
  worker* now = current_worker();
  now->sched->after_switch(*now);
}

void switch_out(tcb* t, switch_why why, bool pin) {
  worker* w = current_worker();
  // preempt_disable while the stacks change hands: the hard-preemption handler refuses from here
  // until the tasklet runs its own code again (preempt.cpp). One instruction (addl on memory): a
  // signal cannot split it. Whoever lands on the other side takes the count down again: the
  // scheduler side lives at 1, a tasklet at 0 (tasklet_entry and the end of this function).
  ++w->block->disable;
  // A compiler-only fence (the handler runs on this thread): the count stays before the rest.
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t->hard_pinned = pin;
  if (pin) t->home = w;
  w->prev = t;
  w->why = why;
  if (why == switch_why::yield && w->slice_ns && now_ns() - t->run_start_ns > w->slice_ns)
    w->why = switch_why::overrun;  // run_for(): back to the host, not to the queue
  leave(w, t, false);
  std::atomic_signal_fence(std::memory_order_seq_cst);  // the same compiler-only fence
  --current_worker()->block->disable;                   // maybe another worker's (it resumed there)
}

void tasklet_entry(void* arg) {
  worker* w = static_cast<worker*>(arg);
  w->sched->after_switch(*w);
  std::atomic_signal_fence(std::memory_order_seq_cst);  // compiler-only: see switch_out()
  --w->block->disable;                                  // see switch_out()
  tcb* t = w->current;
  // acquire: pairs with kill()'s seq_cst fetch_or (tasklet.cpp).
  if (t->irq.load(std::memory_order_acquire) & IRQ_KILLED) {
    t->ended_by_kill = true;  // killed before it ever ran: its function never runs
    t->never_ran = true;
  } else {
    try {
      t->base()->body();
    } catch (const tasklet_exit&) {
      t->ended_by_kill = true;
    } catch (...) {
      t->error = std::current_exception();
    }
  }
  t->base()->discard();              // destructors of the captures run here, as part of the tasklet
  if (t->locals) destroy_locals(t);  // its tasklet_local values, on its own stack
  w = current_worker();
  ++w->block->disable;
  std::atomic_signal_fence(std::memory_order_seq_cst);  // compiler-only: see switch_out()
  w->prev = t;
  w->why = switch_why::exit;
  leave(w, t, /*exiting=*/true);
  std::abort();  // unreachable: a dead context is never resumed
}

// ---- the scheduler side ---------------------------------------------------------------------

void scheduler_impl::push_local(worker& w, tcb* t, bool notify) {
  if (__builtin_expect(!w.deque.push(t), 0)) {
    push_overflow(w, t);
    notify = true;
  }
  if (notify) wake_one();
}

void scheduler_impl::push_runnext(worker& w, tcb* t) {
  // The displaced tasklet becomes stealable: that is worth waking an idle worker for (tokio);
  // t alone is not, it runs here as soon as the current tasklet switches.
  // acq_rel: publishes t to whoever takes it (next_local(), steal_round()), and acquires the
  // displaced one from its putter.
  if (tcb* old = w.runnext.exchange(t, std::memory_order_acq_rel)) push_local(w, old, true);
}

void scheduler_impl::push_back_local(worker& w, tcb* t) {
  // The yield list: it runs after the deque, the inbox and the injection queue (next_local()),
  // and next_local() exposes it to thieves when workers are idle.
  yield_push(w, t);
}

// push_overflow(): the deque is full: move half of it to the injection queue, then push (Go's
// runqputslow).
void scheduler_impl::push_overflow(worker& w, tcb* t) {
  tcb* batch[512];
  std::size_t n = w.deque.take_oldest(batch, std::min<std::size_t>(512, w.deque.capacity() / 2));
  injection.enqueue_bulk(batch, n);
  w.overflows.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count for stats()
  if (!w.deque.push(t)) injection.enqueue(t);
}

tcb* scheduler_impl::find_runnable(worker& w, bool may_park) {
  tcb* t = search(w, may_park);
  if (t && w.spinning) {
    // Found work while spinning: stop, and if we were the last spinner wake another — there
    // may be more where this came from (Go's resetspinning()).
    w.spinning = false;
    // seq_cst: the parking protocol's counter (partners: wake_one()'s CAS, start_spinning()).
    if (nspinning.fetch_sub(1, std::memory_order_seq_cst) == 1) wake_one();
  }
  return t;
}

tcb* scheduler_impl::search(worker& w, bool may_park) {
  for (;;) {
    // acquire: pairs with shutdown()'s seq_cst store.
    if (stopping.load(std::memory_order_acquire)) return nullptr;
    tcb* t = next_local(w);
    if (t) return t;
    if ((t = injected_batch(w))) {
      if (claim(t)) return t;
      continue;
    }
    if ((t = inbox_pop(w))) {
      if (claim(t)) return t;
      continue;
    }
    if (fire_due_timers()) continue;
    if (poll_io()) continue;  // ready I/O, unless a sleeping worker polls already (netpoll.cpp)
    if (!may_park) return nullptr;
    // Steal, as a spinning worker. A single worker spins too — on its injection queue and inbox
    // only, for spin_ns — so that a plain thread's submit().get() costs one context switch per
    // round trip, not two: parked after every tasklet, the worker needed a futex wake for the
    // next one (bench/submit_rtt: 1.97 switches a round trip, 1.6x oneTBB's p50 at T=1).
    if (w.spinning || start_spinning(w)) {
      if ((t = spin_steal(w))) {
        if (claim(t)) return t;
        continue;
      }
      // relaxed peek: the next pass takes it with the queue's own ordering.
      if (injection.size_approx() != 0 || w.inbox_nonempty.load(std::memory_order_relaxed))
        continue;  // still spinning: the next pass takes it
    }
    park_worker(w);
  }
}

bool scheduler_impl::start_spinning(worker& w) {
  // Go lets at most half of the busy workers spin. Two may always spin: with one, two
  // tasklets that talk across two workers find the other worker parked at every message
  // (a futex wake, ~5 µs here) — the spin is bounded (spin_ns) either way.
  // relaxed: a heuristic; a wrong guess costs one spinner too many or too few.
  int busy = static_cast<int>(nworkers) - nidle.load(std::memory_order_relaxed);
  int spinning_now = nspinning.load(std::memory_order_relaxed);
  if (2 * spinning_now < busy || spinning_now < 2) {
    w.spinning = true;
    // seq_cst: the parking protocol's counter (partners: wake_one()'s CAS, find_runnable()).
    nspinning.fetch_add(1, std::memory_order_seq_cst);
    w.spins.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count for stats()
  }
  return w.spinning;
}

// spin_steal(): steal rounds for a bounded time. A worker that parks at once pays (and makes
// the next publisher pay) a futex round trip of several µs for every burst of fork/join work.
// Returns what it stole, or null when the spin ended (nothing to steal for spin_ns, or work
// appeared in the injection queue or the inbox, or the scheduler is stopping).
tcb* scheduler_impl::spin_steal(worker& w) {
  tcb* t = nullptr;
  const std::int64_t spin_until = now_ns() + spin_ns;
  for (int round = 0; !t; ++round) {
    t = steal_round(w, /*take_runnext=*/round >= 3 || chaos_roll(w, 2));
    // relaxed peeks: they only end the spin; what they saw is taken with the queues' ordering.
    if (t || injection.size_approx() != 0 || w.inbox_nonempty.load(std::memory_order_relaxed) ||
        stopping.load(std::memory_order_relaxed) || (round >= 3 && now_ns() > spin_until))
      break;
    for (int i = 0; i < 32; ++i) {  // between rounds, watch our own inbox: a tasklet
      cpu_relax();                  // pinned here is waiting for exactly this worker
      if ((i & 7) == 7 && w.inbox_nonempty.load(std::memory_order_relaxed)) break;  // a peek
    }
  }
  return t;
}

// steal_round(): one pass over the other workers, from a random one: half of a deque (≤ 32),
// or, if allowed, a runnext. A victim is reached through its shared part only.
tcb* scheduler_impl::steal_round(worker& w, bool take_runnext) {
  unsigned start = static_cast<unsigned>(next_rand(w) % nworkers);
  for (unsigned k = 0; k < nworkers; ++k) {
    worker_shared& v = *workers[(start + k) % nworkers];
    if (&v == static_cast<worker_shared*>(&w)) continue;
    w.steal_attempts.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count for stats()
    tcb* batch[steal_max];
    std::size_t n = v.deque.steal_half(batch, steal_max);
    if (n) {
      for (std::size_t i = 1; i < n; ++i) push_local(w, batch[i], false);
      w.steals.fetch_add(n, std::memory_order_relaxed);  // relaxed: a count for stats()
      trace_event(w, trace_kind::steal, batch[0]->id, (start + k) % nworkers, n);
      return batch[0];
    }
    // runnext: a relaxed peek, then the acq_rel exchange that takes it (pairs with the owner's
    // exchange in push_runnext()).
    if (take_runnext && v.runnext.load(std::memory_order_relaxed)) {
      if (tcb* t = v.runnext.exchange(nullptr, std::memory_order_acq_rel)) {
        w.steals.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count for stats()
        trace_event(w, trace_kind::steal, t->id, (start + k) % nworkers, 1);
        return t;
      }
    }
  }
  return nullptr;
}

bool scheduler_impl::work_anywhere() const {
  if (injection.size_approx() != 0) return true;
  for (auto& v : workers) {
    // acquire: pairs with the release store in inbox_push().
    if (!v->deque.empty() || v->inbox_nonempty.load(std::memory_order_acquire)) return true;
  }
  return false;
}

// ---- a worker's thread -------------------------------------------------------------------------

void scheduler_impl::run_tasklet(worker& w, tcb* t) {
  if (!launch(w, t)) return;  // it ended without a stack
  context_switch(w.sched_ctx, t->ctx, &w);
  after_switch(w);  // the tasklet that switched back to us (not necessarily t)
  // The scheduler side: no tasklet runs here now.
  w.running_id.store(0, std::memory_order_relaxed);  // relaxed: the monitor's hint
  w.block->irq = &zero_irq;
  w.block->hard_ok.store(0, std::memory_order_relaxed);  // relaxed: the monitor's hint
}

void scheduler_impl::worker_main(worker& w) {
  set_current_worker(&w);
  thread_altstack alt;  // also where the preemption signal's handler runs (SA_ONSTACK)
  context_init_thread(w.sched_ctx);
  attach_thread(w);
  while (tcb* t = find_runnable(w, true)) run_tasklet(w, t);
  detach_thread(w);
  set_current_worker(nullptr);
}

}  // namespace stackless::detail
