// SPDX-License-Identifier: Apache-2.0
// runtime/src/idle.cpp — parking and waking workers: the idle list, the spinning count, and the
// futex a worker sleeps on. After Go's proc.go ("Worker thread parking/unparking") and tokio's
// multi_thread idle.rs.
//
// Parking protocol (Go proc.go, "Worker thread parking/unparking"): whoever publishes work
// issues a StoreLoad fence and then unparks an idle worker only if none is spinning (wake_one);
// the unparked worker starts out spinning; a spinner that finds work stops spinning and, if it
// was the last spinner, wakes another (more work may be waiting); a spinner that gives up
// puts itself on the idle list, stops spinning, fences, and re-checks every queue before it
// sleeps. Either the publisher sees the idle worker, or the worker's re-check sees the work: no
// lost wakeup. Work pushed only to runnext does not wake anyone (tokio): it runs next here.
//
// State (scheduler_impl): idle_list (guarded by idle_mu) and each worker's `idle` flag (changed
// under idle_mu) say who sleeps; nidle counts them and nspinning counts the spinners — thieves
// looking for work, each counted once, by itself (start_spinning(), worker.cpp) or by whoever
// unparked it (wake_one(), wake_worker()). A worker sleeps on its park_word (futex) until
// unparked, a timer is due, or — the last one to go idle — the deadlock grace ends; while
// tasklets wait for I/O, one sleeping worker (the netpoller's blocker) sleeps in epoll_wait
// instead, and also wakes for ready I/O (netpoll.cpp).
//
// Invariants: a worker is on idle_list iff its idle flag is set, and nidle is their number
// (all three change together under idle_mu). A worker is unparked only by whoever took it off
// the list (or by shutdown(), which unparks everyone).
//
// Memory orders: the publishers of work (a queue push, then wake_one(); an inbox push, then
// wake_worker(); a timer, then nudge_sleepers()) and a worker going to sleep (its idle flag and
// nidle, then its re-check of every queue) each put fence_seq_cst() — a StoreLoad fence —
// between their store and their load, so either the publisher sees the idle worker or the
// worker sees the work. The loads next to the fences are therefore relaxed; the counters'
// updates are seq_cst RMWs; the idle flag changes under idle_mu. park_word: unpark()'s release
// store pairs with sleep_worker()'s acquire loads.
//
// Rejected: one futex for all idle workers (every wake would be a thundering herd, and a wake
// for an inbox must reach exactly its worker); parking without spinning first (a futex round
// trip of several µs for every burst of fork/join work, for the parker and for the next
// publisher alike).
#include <algorithm>
#include <chrono>
#include <mutex>

#include "fence.hpp"
#include "netpoller.hpp"
#include "scheduler_impl.hpp"
#include "trace.hpp"

namespace stackless::detail {

// ---- the parking side ------------------------------------------------------------------------

void scheduler_impl::park_worker(worker& w) {
  // 1. Publish ourselves as idle.
  {
    std::lock_guard g(idle_mu);
    idle_list.push_back(&w);
    w.idle.store(true, std::memory_order_relaxed);  // relaxed: under idle_mu; the fence below
    nidle.fetch_add(1, std::memory_order_seq_cst);  // seq_cst: see wake_worker()
  }
  // 2. Stop spinning; 3. StoreLoad; 4. re-check every queue (pairs with wake_one's fence).
  if (w.spinning) {
    w.spinning = false;
    nspinning.fetch_sub(1, std::memory_order_seq_cst);  // seq_cst: see wake_one()
  }
  fence_seq_cst();
  // acquire: pairs with shutdown()'s seq_cst store.
  bool recheck = work_anywhere() || stopping.load(std::memory_order_acquire);
  if (recheck && leave_idle(w)) return;

  // The last worker to go idle gives back the stacks the pool holds beyond its bounds (stack.hpp:
  // no other worker runs, so the TLB shoot-downs of the madvise/munmap interrupt nobody). Work
  // that arrives meanwhile unparks us: the sleep below then returns at once. relaxed: a hint.
  if (!recheck && stacks.has_excess() &&
      nidle.load(std::memory_order_relaxed) == static_cast<int>(nworkers))
    stacks.release_excess();

  // 5. Sleep until unparked, a timer is due, or the deadlock watch is due (deadlock.cpp).
  std::int64_t deadline = timer_sleep_deadline();
  std::uint64_t runs_at_sleep = 0;
  bool watch = false;
  if (!recheck && begin_deadlock_watch(&runs_at_sleep)) {
    watch = true;
    deadline = std::min(deadline, now_ns() + std::chrono::nanoseconds(opts.deadlock_grace).count());
  }
  sleep_worker(w, deadline, watch, runs_at_sleep);
}

bool scheduler_impl::leave_idle(worker& w) {
  std::lock_guard g(idle_mu);
  // relaxed (load and store): under idle_mu, which guards every change of the flag.
  if (!w.idle.load(std::memory_order_relaxed)) return false;  // someone is unparking us
  std::erase(idle_list, &w);
  w.idle.store(false, std::memory_order_relaxed);
  nidle.fetch_sub(1, std::memory_order_seq_cst);  // seq_cst: see wake_worker()
  return true;
}

// sleep_worker(): park_worker()'s step 5 — the futex sleep itself, until unparked or `deadline`;
// a worker that times out leaves the idle list itself, fires the due timers and, if it was the
// deadlock watcher, checks for a deadlock.
void scheduler_impl::sleep_worker(worker& w, std::int64_t deadline, bool watch,
                                  std::uint64_t runs_at_sleep) {
  // Publish the timeout, then look at the timers once more (a Dekker pair with add_timer():
  // either this re-read sees a timer armed meanwhile, or nudge_sleepers() sees this timeout).
  // relaxed: ordered by the fence (the partner is nudge_sleepers()'s fence and relaxed load).
  // Chaos mode: a spurious wake-up now and then (never for the deadlock watcher: its grace).
  if (!watch && chaos_roll(w, 4)) deadline = std::min(deadline, now_ns() + chaos_ns(w, 500'000));
  w.sleeping_until.store(deadline, std::memory_order_relaxed);
  fence_seq_cst();
  deadline = std::min(deadline, timer_sleep_deadline());
  // With tasklets waiting for I/O and no other worker in epoll_wait, this one sleeps there
  // instead of on its futex: the blocker (netpoll.cpp). seq_cst CAS, then a fence before the
  // park_word loads below: the Dekker pair with unpark()'s store, fence and load of blocker.
  netpoller* np = np_.load(std::memory_order_acquire);  // pairs with netpoll()'s CAS
  bool blocker = false;
  if (np && np->waiting() > 0) {
    worker* none = nullptr;
    blocker = np->blocker.compare_exchange_strong(none, &w, std::memory_order_seq_cst);
    if (blocker) fence_seq_cst();
  }
  struct awake_again {
    worker& w;
    netpoller* np;
    bool blocker;
    std::int64_t since = now_ns();
    ~awake_again() {
      // relaxed: figures for stats() (busy time), each read on its own.
      w.sleep_since_ns.store(0, std::memory_order_relaxed);
      w.sleep_ns.fetch_add(now_ns() - since, std::memory_order_relaxed);
      // relaxed: seen by nudge_sleepers() after its fence; a stale value costs one extra
      // wake_one().
      w.sleeping_until.store(INT64_MIN, std::memory_order_relaxed);
      trace_event(w, trace_kind::worker_unpark, 0);
      // relaxed: a stale non-null only makes a poller skip a poll the next sleeper makes.
      if (blocker) np->blocker.store(nullptr, std::memory_order_relaxed);
    }
  } awake{w, np, blocker};
  w.sleep_since_ns.store(awake.since, std::memory_order_relaxed);  // relaxed: see ~awake_again
  w.parks.fetch_add(1, std::memory_order_relaxed);                 // relaxed: a count for stats()
  trace_event(w, trace_kind::worker_park, 0);
  // acquire (both loads): pairs with the release store in unpark().
  while (w.park_word.load(std::memory_order_acquire) == 0) {
    bool io = false;
    if (blocker)
      io = traced_poll(*this, *np, deadline, true) > 0;  // ready I/O woke tasklets (queued here)
    else
      futex_wait(&w.park_word, 0, deadline);
    if (w.park_word.load(std::memory_order_acquire) != 0) break;
    if (io || (deadline != INT64_MAX && now_ns() >= deadline)) {
      if (leave_idle(w)) {
        fire_due_timers();
        if (watch && !io) check_deadlock(runs_at_sleep);  // delivers deadlock_error to the joiners
        return;
      }
      // Being unparked right now: wait for the notification.
      deadline = INT64_MAX;
    }
  }
  // relaxed: nobody unparks this worker again before it is back on the idle list (under
  // idle_mu), which orders this store before the next unpark's; shutdown()'s unconditional
  // unpark is covered by the re-check of `stopping` after park_worker()'s fence.
  w.park_word.store(0, std::memory_order_relaxed);
  // Unparked by wake_one() or wake_worker(): it counted us as spinning.
  w.spinning = !stopping.load(std::memory_order_relaxed);  // relaxed: search() re-reads (acquire)
  if (!w.spinning) nspinning.fetch_sub(1, std::memory_order_seq_cst);  // seq_cst: as above
}

// ---- the waking side -------------------------------------------------------------------------

void scheduler_impl::unpark(worker_shared& w) {
  w.park_word.store(1, std::memory_order_release);  // pairs with the acquire in sleep_worker()
  futex_wake(&w.park_word);
  // A worker asleep in epoll_wait (the netpoller's blocker) is reached through the eventfd.
  // The fence: the Dekker pair with sleep_worker()'s CAS of blocker, fence and park_word load.
  if (netpoller* np = np_.load(std::memory_order_acquire)) {  // pairs with netpoll()'s CAS
    fence_seq_cst();
    // relaxed: ordered by the fence above.
    if (static_cast<worker_shared*>(np->blocker.load(std::memory_order_relaxed)) == &w) np->kick();
  }
}

void scheduler_impl::wake_one() {
  fence_seq_cst();  // StoreLoad: work published before
  // relaxed: ordered by the fence; the partner is park_worker()'s nidle increment, its fence and
  // its re-check of the queues.
  if (nidle.load(std::memory_order_relaxed) == 0) return;
  int expected = 0;
  // seq_cst: only one waker unparks a worker when none spins (partners: the nspinning updates
  // in find_runnable() and start_spinning() (worker.cpp), park_worker() and sleep_worker()).
  if (!nspinning.compare_exchange_strong(expected, 1, std::memory_order_seq_cst)) return;
  worker* v = nullptr;
  {
    std::lock_guard g(idle_mu);
    if (!idle_list.empty()) {
      v = idle_list.back();
      idle_list.pop_back();
      v->idle.store(false, std::memory_order_relaxed);  // relaxed: under idle_mu
      nidle.fetch_sub(1, std::memory_order_seq_cst);    // seq_cst: see wake_worker()
    }
  }
  if (!v) {
    nspinning.fetch_sub(1, std::memory_order_seq_cst);  // seq_cst: undoes the CAS above
    return;
  }
  unpark(*v);  // it starts out spinning (we counted it)
}

void scheduler_impl::wake_worker(worker& v) {
  fence_seq_cst();  // StoreLoad: the inbox push before the idle check (park_worker re-checks)
  // relaxed: ordered by the fence; the partner is park_worker()'s idle store, its fence and its
  // re-check of the inboxes (work_anywhere()). Re-read under idle_mu, which guards changes.
  if (!v.idle.load(std::memory_order_relaxed)) return;
  {
    std::lock_guard g(idle_mu);
    if (!v.idle.load(std::memory_order_relaxed)) return;  // relaxed: under idle_mu
    std::erase(idle_list, &v);
    v.idle.store(false, std::memory_order_relaxed);  // relaxed: under idle_mu
    // seq_cst: the parking protocol's counters; partners: the seq_cst loads of nidle in
    // park_worker() and quiescent(), and the relaxed peeks after the fences of wake_one() and
    // nudge_sleepers().
    nidle.fetch_sub(1, std::memory_order_seq_cst);
  }
  // seq_cst: it wakes up spinning — counted here; it uncounts itself when it finds work
  // (find_runnable(), worker.cpp) or parks again (park_worker()). Pairs with wake_one()'s CAS.
  nspinning.fetch_add(1, std::memory_order_seq_cst);
  unpark(v);
}

}  // namespace stackless::detail
