// runtime/src/worker.cpp — the worker loop: find a runnable tasklet, switch to it, handle the
// reason it switched back. After Go's findRunnable/schedule (proc.go) and tokio's multi_thread
// worker (worker.rs).
//
// Where a worker looks for work, in order (next_local, then find_runnable):
//   1. every 61st tick, for fairness: due timers, the injection queue, the *oldest* element of
//      its own deque (a steal from itself), the yield list — so neither LIFO order nor a busy
//      runnext can starve anything;
//   2. runnext, unless it has run 3 tasklets from it in a row (a ping-pong pair shares one time
//      slice and must not starve the queue);
//   3. its deque (LIFO: fork/join runs depth-first, as in TBB/Cilk), then its inbox (tasklets
//      pinned to this worker by this_tasklet::atomic, woken elsewhere);
//   4. the injection queue (a batch);
//   5. its yield list (yield() is "to the back of the queue"); with workers idle, the rest of
//      the list (pinned ones excepted) moves to the deque so that they can steal it;
//   6. due timers;
//   7. steal: random victim, half of its deque (≤ 32), its runnext only in the last round —
//      only while at most half the busy workers are spinning (Go #43997: idle CPU burn);
//   8. park on its futex (parking protocol below).
// 1–5 run on a tasklet's stack when it yields, parks or ends (direct switch); 6–8 only on the
// worker's own stack.
//
// Parking protocol (Go proc.go, "Worker thread parking/unparking"): whoever publishes work
// issues a StoreLoad fence and then unparks an idle worker only if none is spinning (wake_one);
// the unparked worker starts out spinning; a spinner that finds work stops spinning and, if it
// was the last spinner, wakes another (more work may be waiting); a spinner that gives up
// puts itself on the idle list, stops spinning, fences, and re-checks every queue before it
// sleeps. Either the publisher sees the idle worker, or the worker's re-check sees the work: no
// lost wakeup. Work pushed only to runnext does not wake anyone (tokio): it runs next here.
//
// Switching: a tasklet that yields, parks or ends switches *directly* to the next tasklet of its
// worker's local queues (one jump); only when they are empty does it switch to the worker's
// scheduler side, which steals, polls the injection queue and parks. The steps that must happen
// after the old tasklet is off its stack (the park's unlock, the PARKED transition, releasing a
// dead tasklet's stack) are recorded in worker::prev/why and run by whoever lands:
// after_switch(), called by a resumed tasklet, a new tasklet and the scheduler side alike
// (Boost.Fiber's resume_with). A yielding tasklet goes on the yield list in after_switch(), once
// it is off its stack; when nothing else is runnable it simply carries on.
#include <pthread.h>

#include <cstdio>
#include <cstdlib>

#include "context.hpp"
#include "door.hpp"
#include "fence.hpp"
#include "scheduler_impl.hpp"

namespace stackless::detail {
namespace {

thread_local worker* tl_worker = nullptr;

constexpr unsigned runnext_cap = 3;
constexpr unsigned fairness_tick = 61;
constexpr std::size_t steal_max = 32;
constexpr std::int64_t spin_ns = 50'000;  // how long a spinning worker looks before it parks

std::uint64_t next_rand(worker& w) noexcept {  // xorshift64*
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
    w.has_yielders.store(true, std::memory_order_relaxed);  // a hint for the monitor
  }
  w.yield_tail = t;
}

tcb* yield_pop(worker& w) noexcept {
  tcb* t = w.yield_head;
  if (t) {
    w.yield_head = t->next;
    if (!w.yield_head) {
      w.yield_tail = nullptr;
      w.has_yielders.store(false, std::memory_order_relaxed);
    }
    t->next = nullptr;
  }
  return t;
}

tcb* inbox_pop(worker& w) noexcept {
  if (!w.inbox_nonempty.load(std::memory_order_acquire)) return nullptr;
  w.inbox_lk.lock();
  tcb* t = w.inbox_head;
  if (t) {
    w.inbox_head = t->next;
    if (!w.inbox_head) {
      w.inbox_tail = nullptr;
      w.inbox_nonempty.store(false, std::memory_order_relaxed);
    }
    t->next = nullptr;
  }
  w.inbox_lk.unlock();
  if (t) w.inbox_taken.fetch_add(1, std::memory_order_relaxed);
  return t;
}

}  // namespace

worker* current_worker() noexcept { return tl_worker; }
void set_current_worker(worker* w) noexcept { tl_worker = w; }

tcb* current_tcb() noexcept {
  worker* w = tl_worker;
  return w ? w->current : nullptr;
}

bool spinning_may_help() noexcept {
  worker* w = tl_worker;
  return !w || !w->current || w->sched->nworkers > 1;  // one worker: the holder cannot run meanwhile
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
  std::uint32_t s = t->state.load(std::memory_order_acquire);
  for (;;) {
    if (s == S_RUNNABLE) {
      if (t->state.compare_exchange_weak(s, S_RUNNING, std::memory_order_acq_rel)) return true;
    } else if (s == S_PAUSED_QUEUED) {
      if (t->state.compare_exchange_weak(s, S_PAUSED, std::memory_order_acq_rel)) return false;
    } else {
      std::fprintf(stderr, "stackless: internal error: tasklet #%llu popped in state %u\n",
                   static_cast<unsigned long long>(t->id), s);
      std::abort();
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
      if (keep_tail) keep_tail->next = t; else keep_head = t;
      keep_tail = t;
    } else {
      batch[n++] = t;
    }
  }
  if (keep_head) {
    keep_tail->next = w.yield_head;
    if (!w.yield_head) w.yield_tail = keep_tail;
    w.yield_head = keep_head;
    w.has_yielders.store(true, std::memory_order_relaxed);
  }
  for (std::size_t i = n; i-- > 0;) push_local(w, batch[i], false);
  if (n) wake_one();
}

void scheduler_impl::inbox_push(worker& home, tcb* t) {
  t->next = nullptr;
  home.inbox_lk.lock();
  if (home.inbox_tail) home.inbox_tail->next = t; else home.inbox_head = t;
  home.inbox_tail = t;
  home.inbox_nonempty.store(true, std::memory_order_release);  // pairs with inbox_pop()
  home.inbox_lk.unlock();
  if (current_worker() != &home) wake_worker(home);
}

void scheduler_impl::wake_worker(worker& v) {
  fence_seq_cst();  // StoreLoad: the inbox push before the idle check (park_worker re-checks)
  if (!v.idle.load(std::memory_order_relaxed)) return;
  {
    std::lock_guard g(idle_mu);
    if (!v.idle.load(std::memory_order_relaxed)) return;
    std::erase(idle_list, &v);
    v.idle.store(false, std::memory_order_relaxed);
    nidle.fetch_sub(1, std::memory_order_seq_cst);
  }
  nspinning.fetch_add(1, std::memory_order_seq_cst);  // it wakes up spinning
  unpark(v);
}

// fair_pick(): every 61st tick (see the top of the file).
tcb* scheduler_impl::fair_pick(worker& w) {
  tcb* t = nullptr;
  if (next_deadline() != INT64_MAX) {
    std::int64_t now = now_ns();
    if (next_deadline() <= now) fire_timers(now);  // a busy worker still fires its timers
  }
  if (injection.try_dequeue(t)) {
    w.injected.fetch_add(1, std::memory_order_relaxed);
    return t;
  }
  if (w.deque.steal(t) == steal_status::success) return t;
  return yield_pop(w);
}

// injected_batch(): a batch from the injection queue; the first is returned, the rest queued
// locally in arrival order.
tcb* scheduler_impl::injected_batch(worker& w) {
  tcb* batch[steal_max];
  std::size_t n = injection.try_dequeue_bulk(batch, steal_max);
  if (!n) return nullptr;
  w.injected.fetch_add(n, std::memory_order_relaxed);
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
      if (stopping.load(std::memory_order_relaxed)) return nullptr;
      t = fair_pick(w);
    }
    if (!t && w.runnext_streak < runnext_cap && w.runnext.load(std::memory_order_relaxed) &&
        (t = w.runnext.exchange(nullptr, std::memory_order_acq_rel)))
      ++w.runnext_streak;
    if (!t) {
      w.runnext_streak = 0;
      t = w.deque.take();
      if (!t && w.inbox_nonempty.load(std::memory_order_relaxed)) t = inbox_pop(w);
      // yield() is "to the back of the queue": what waits in the injection queue goes first.
      if (!t && injection.size_approx() != 0) t = injected_batch(w);
      if (!t && (t = yield_pop(w)) && w.yield_head &&
          __builtin_expect(nidle.load(std::memory_order_relaxed) > 0, 0)) {
        // Idle workers and more than one yielder here: expose the rest to thieves, keeping
        // their order (pushed newest first, so take() hands them out oldest first).
        expose_yielders(w);
      }
      if (!t && w.runnext.load(std::memory_order_relaxed))  // skipped above because of the cap
        t = w.runnext.exchange(nullptr, std::memory_order_acq_rel);
      if (!t) return nullptr;
    }
    if (claim(t)) return t;
  }
}

void scheduler_impl::launch(worker& w, tcb* t) {
  if (!t->stk) {  // first run: a stack from the cache or the pool
    stack* st;
    if (!w.stack_cache.empty()) {
      st = w.stack_cache.back();
      w.stack_cache.pop_back();
      w.stack_cache_size.store(w.stack_cache.size(), std::memory_order_relaxed);
    } else {
      st = stacks.get();
    }
    w.stacks_taken.store(w.stacks_taken.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    t->stk = st;
    context_create(t->ctx, st->lo, st->size, &tasklet_entry, &st->fiber);
  }
  w.current = t;
  w.runs.store(w.runs.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  w.running_id.store(t->id, std::memory_order_relaxed);
  // A fresh turn: no request pending, and checkpoint() watches this tasklet's interrupt word.
  thread_block* b = w.block;
  b->preempt.store(0, std::memory_order_relaxed);
  b->irq = &t->irq;
  b->hard_ok.store(t->preemptible_depth > 0 && t->atomic_depth == 0, std::memory_order_relaxed);
  if (w.slice_ns) t->run_start_ns = now_ns();
}

void scheduler_impl::after_switch(worker& w) {
  tcb* t = w.prev;
  if (!t) return;
  w.prev = nullptr;
  if (!t->stk->canary_ok()) {
    std::fprintf(stderr,
                 "stackless: stack overflow in tasklet #%llu '%s' (unguarded stack of %zu bytes: "
                 "canary overwritten); raise options::stack_size\n",
                 static_cast<unsigned long long>(t->id), t->name.c_str(), t->stk->size);
    std::abort();
  }
  switch (w.why) {
    case switch_why::yield:
      if (take_pause(t)) return;  // pause() asked while it ran
      t->state.store(S_RUNNABLE, std::memory_order_relaxed);
      // To the back of the queue — unless a worker is idle: then where thieves look, and wake
      // one. (Two tasklets that yield to each other never meet on the yield list: each is pushed
      // after the other was taken, so next_local() would never expose them.)
      if (!pinned(t) && __builtin_expect(nidle.load(std::memory_order_relaxed) > 0, 0))
        push_local(w, t, true);
      else
        yield_push(w, t);
      return;
    case switch_why::overrun:
      t->state.store(S_PAUSED, std::memory_order_release);  // run_for(): hand it to the host
      w.overran = t;
      acquire(t);
      return;
    case switch_why::park: {
      (*w.unlock)();  // now that the tasklet is off its stack, wakers may find it
      // PARKED first, then the door: a waker that sees the door PARKED stores RUNNABLE after us.
      t->state.store(S_PARKED, std::memory_order_release);  // pairs with the acquire in is_blocked()
      if (door_finish_parking(t)) return;  // parked; a waker will requeue it
      // Woken before it finished parking: it runs again next (a pinned one from the inbox,
      // where no thief looks) — unless pause() asked meanwhile.
      if (take_pause(t)) return;
      t->state.store(S_RUNNABLE, std::memory_order_relaxed);
      if (pinned(t)) {
        inbox_push(w, t);
        return;
      }
      push_runnext(w, t);
      return;
    }
    case switch_why::exit:
      finish(w, t);
      return;
  }
}

// ---- the tasklet side -----------------------------------------------------------------------

// Leaves tasklet t for the next local tasklet directly (one jump), or for the worker's scheduler
// side when there is none (it steals, polls, parks). Whoever lands runs after_switch(), which
// finishes what t started: the park's unlock step, the release of a dead tasklet's stack.
static void leave(worker* w, tcb* t, bool exiting) {
  scheduler_impl* s = w->sched;
  tcb* next = w->why == switch_why::overrun ? nullptr : s->next_local(*w);
  if (!next && w->why == switch_why::yield &&  // yielded, and nothing else is runnable here
      !(t->irq.load(std::memory_order_acquire) & IRQ_PAUSE)) {
    w->prev = nullptr;
    w->current = t;
    // It carries on: a new turn all the same (the monitor sees it passed a safe point).
    w->runs.store(w->runs.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    w->block->preempt.store(0, std::memory_order_relaxed);
    if (w->slice_ns) t->run_start_ns = now_ns();
    return;
  }
  if (next) {
    s->launch(*w, next);
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
  std::atomic_signal_fence(std::memory_order_seq_cst);  // the compiler keeps it before the rest
  t->hard_pinned = pin;
  if (pin) t->home = w;
  w->prev = t;
  w->why = why;
  if (why == switch_why::yield && w->slice_ns && now_ns() - t->run_start_ns > w->slice_ns)
    w->why = switch_why::overrun;  // run_for(): back to the host, not to the queue
  leave(w, t, false);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  --current_worker()->block->disable;  // maybe another worker's (it resumed there)
}

void tasklet_entry(void* arg) {
  worker* w = static_cast<worker*>(arg);
  w->sched->after_switch(*w);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  --w->block->disable;  // see switch_out()
  tcb* t = w->current;
  if (t->irq.load(std::memory_order_acquire) & IRQ_KILLED) {
    t->ended_by_kill = true;  // killed before it ever ran: its function never runs
  } else {
    try {
      t->body();
    } catch (const tasklet_exit&) {
      t->ended_by_kill = true;
    } catch (...) {
      t->error = std::current_exception();
    }
  }
  t->discard();  // destructors of the captures run here, as part of the tasklet
  if (t->locals) destroy_locals(t);  // its tasklet_local values, on its own stack
  w = current_worker();
  ++w->block->disable;
  std::atomic_signal_fence(std::memory_order_seq_cst);
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
  w.overflows.fetch_add(1, std::memory_order_relaxed);
  if (!w.deque.push(t)) injection.enqueue(t);
}

tcb* scheduler_impl::find_runnable(worker& w, bool may_park) {
  tcb* t = search(w, may_park);
  if (t && w.spinning) {
    // Found work while spinning: stop, and if we were the last spinner wake another — there
    // may be more where this came from (Go's resetspinning()).
    w.spinning = false;
    if (nspinning.fetch_sub(1, std::memory_order_seq_cst) == 1) wake_one();
  }
  return t;
}

tcb* scheduler_impl::search(worker& w, bool may_park) {
  for (;;) {
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
    if (next_deadline() != INT64_MAX && fire_timers(now_ns())) continue;
    if (!may_park) return nullptr;

    // Steal, as a spinning worker.
    if (nworkers > 1) {
      if (!w.spinning) {
        // Go lets at most half of the busy workers spin. Two may always spin: with one, two
        // tasklets that talk across two workers find the other worker parked at every message
        // (a futex wake, ~5 µs here) — the spin is bounded (spin_ns) either way.
        int busy = static_cast<int>(nworkers) - nidle.load(std::memory_order_relaxed);
        int spinning_now = nspinning.load(std::memory_order_relaxed);
        if (2 * spinning_now < busy || spinning_now < 2) {
          w.spinning = true;
          nspinning.fetch_add(1, std::memory_order_seq_cst);
          w.spins.fetch_add(1, std::memory_order_relaxed);
        }
      }
      if (w.spinning) {
        // Spin a bounded time: a worker that parks at once pays (and makes the next publisher
        // pay) a futex round trip of several µs for every burst of fork/join work.
        const std::int64_t spin_until = now_ns() + spin_ns;
        for (int round = 0; !t; ++round) {
          t = steal_round(w, /*take_runnext=*/round >= 3);
          if (t || injection.size_approx() != 0 || w.inbox_nonempty.load(std::memory_order_relaxed) ||
              stopping.load(std::memory_order_relaxed) || (round >= 3 && now_ns() > spin_until))
            break;
          for (int i = 0; i < 32; ++i) {  // between rounds, watch our own inbox: a tasklet
            cpu_relax();       // pinned here is waiting for exactly this worker
            if ((i & 7) == 7 && w.inbox_nonempty.load(std::memory_order_relaxed)) break;
          }
        }
        if (t) {
          if (claim(t)) return t;
          continue;
        }
        if (injection.size_approx() != 0 || w.inbox_nonempty.load(std::memory_order_relaxed))
          continue;  // still spinning: the next pass takes it
      }
    }
    park_worker(w);
  }
}

// steal_round(): one pass over the other workers, from a random one: half of a deque (≤ 32),
// or, if allowed, a runnext.
tcb* scheduler_impl::steal_round(worker& w, bool take_runnext) {
  unsigned start = static_cast<unsigned>(next_rand(w) % nworkers);
  for (unsigned k = 0; k < nworkers; ++k) {
    worker& v = *workers[(start + k) % nworkers];
    if (&v == &w) continue;
    w.steal_attempts.fetch_add(1, std::memory_order_relaxed);
    tcb* batch[steal_max];
    std::size_t n = v.deque.steal_half(batch, steal_max);
    if (n) {
      for (std::size_t i = 1; i < n; ++i) push_local(w, batch[i], false);
      w.steals.fetch_add(n, std::memory_order_relaxed);
      return batch[0];
    }
    if (take_runnext && v.runnext.load(std::memory_order_relaxed)) {
      if (tcb* t = v.runnext.exchange(nullptr, std::memory_order_acq_rel)) {
        w.steals.fetch_add(1, std::memory_order_relaxed);
        return t;
      }
    }
  }
  return nullptr;
}

bool scheduler_impl::work_anywhere() const {
  if (injection.size_approx() != 0) return true;
  for (auto& v : workers) {
    if (!v->deque.empty() || v->inbox_nonempty.load(std::memory_order_acquire)) return true;
  }
  return false;
}

void scheduler_impl::park_worker(worker& w) {
  // 1. Publish ourselves as idle.
  {
    std::lock_guard g(idle_mu);
    idle_list.push_back(&w);
    w.idle.store(true, std::memory_order_relaxed);
    nidle.fetch_add(1, std::memory_order_seq_cst);
  }
  // 2. Stop spinning; 3. StoreLoad; 4. re-check every queue (pairs with wake_one's fence).
  if (w.spinning) {
    w.spinning = false;
    nspinning.fetch_sub(1, std::memory_order_seq_cst);
  }
  fence_seq_cst();
  auto leave_idle = [&] {
    std::lock_guard g(idle_mu);
    if (!w.idle.load(std::memory_order_relaxed)) return false;  // someone is unparking us
    std::erase(idle_list, &w);
    w.idle.store(false, std::memory_order_relaxed);
    nidle.fetch_sub(1, std::memory_order_seq_cst);
    return true;
  };
  bool recheck = work_anywhere() || stopping.load(std::memory_order_acquire);
  if (recheck && leave_idle()) return;

  // 5. Sleep until unparked, a timer is due, or the deadlock watch is due.
  std::int64_t deadline = next_deadline();
  std::uint64_t runs_at_sleep = 0;
  bool watch = false;
  if (!recheck && opts.deadlock_grace.count() > 0 &&
      nidle.load(std::memory_order_seq_cst) == static_cast<int>(nworkers) && live() > 0) {
    runs_at_sleep = total_runs();
    std::lock_guard g(deadlock_mu);
    if (deadlock_reported_runs != runs_at_sleep) {  // do not re-report the same quiet state
      watch = true;
      deadline = std::min(deadline, now_ns() + std::chrono::nanoseconds(opts.deadlock_grace).count());
    }
  }
  // Publish the timeout, then look at the timers once more (a Dekker pair with add_timer():
  // either this re-read sees a timer armed meanwhile, or nudge_sleepers() sees this timeout).
  w.sleeping_until.store(deadline, std::memory_order_relaxed);
  fence_seq_cst();
  deadline = std::min(deadline, next_deadline());
  struct awake_again {
    worker& w;
    ~awake_again() { w.sleeping_until.store(INT64_MIN, std::memory_order_relaxed); }
  } awake{w};
  w.parks.fetch_add(1, std::memory_order_relaxed);
  while (w.park_word.load(std::memory_order_acquire) == 0) {
    futex_wait(&w.park_word, 0, deadline);
    if (w.park_word.load(std::memory_order_acquire) != 0) break;
    if (deadline != INT64_MAX && now_ns() >= deadline) {
      if (leave_idle()) {
        std::int64_t now = now_ns();
        if (next_deadline() <= now) fire_timers(now);
        if (watch) {
          check_deadlock(runs_at_sleep);  // delivers deadlock_error to the joiners
        }
        return;
      }
      // Being unparked right now: wait for the notification.
      deadline = INT64_MAX;
    }
  }
  w.park_word.store(0, std::memory_order_relaxed);
  // Unparked by wake_one(): it counted us as spinning.
  w.spinning = !stopping.load(std::memory_order_relaxed);
  if (!w.spinning) nspinning.fetch_sub(1, std::memory_order_seq_cst);
}

void scheduler_impl::unpark(worker& w) {
  w.park_word.store(1, std::memory_order_release);  // pairs with the acquire in park_worker()
  futex_wake(&w.park_word);
}

void scheduler_impl::wake_one() {
  fence_seq_cst();  // StoreLoad: work published before
  if (nidle.load(std::memory_order_relaxed) == 0) return;
  int expected = 0;
  if (!nspinning.compare_exchange_strong(expected, 1, std::memory_order_seq_cst)) return;
  worker* v = nullptr;
  {
    std::lock_guard g(idle_mu);
    if (!idle_list.empty()) {
      v = idle_list.back();
      idle_list.pop_back();
      v->idle.store(false, std::memory_order_relaxed);
      nidle.fetch_sub(1, std::memory_order_seq_cst);
    }
  }
  if (!v) {
    nspinning.fetch_sub(1, std::memory_order_seq_cst);
    return;
  }
  unpark(*v);  // it starts out spinning (we counted it)
}

void scheduler_impl::run_tasklet(worker& w, tcb* t) {
  launch(w, t);
  context_switch(w.sched_ctx, t->ctx, &w);
  after_switch(w);  // the tasklet that switched back to us (not necessarily t)
  // The scheduler side: no tasklet runs here now.
  w.running_id.store(0, std::memory_order_relaxed);
  w.block->irq = &zero_irq;
  w.block->hard_ok.store(0, std::memory_order_relaxed);
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
