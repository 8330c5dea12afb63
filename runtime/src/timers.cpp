// SPDX-License-Identifier: Apache-2.0
// runtime/src/timers.cpp — the timeouts of parks: arming one, the earliest deadline, firing the
// due ones.
//
// Each worker keeps the timeouts of the parks made on it in its own 4-ary heap (timer_heap.hpp;
// why not a timing wheel is argued there), under its own lock (worker_shared::timer_lk): arming a
// timer touches only the calling worker's line. Firing is anyone's job: a worker fires the due
// timers of every worker in its loop (every 61st tick while busy, and whenever it looks for work),
// a tasklet preempted at a safe point or by signal fires them before it yields, and a worker
// about to sleep sleeps until the earliest deadline of *any* worker and fires every worker's due
// timers when it wakes — so a timer armed on a worker that is now busy with a long-running
// tasklet still fires on time if another worker is idle (Go's findRunnable checks every P's
// timers the same way). All of them call fire_due_timers().
//
// A timer never has to be cancelled: the park door's generation makes a stale one lose
// (door.hpp). Stale entries are purged in bulk (purge_timers_locked()), so a heap holds at most
// about twice its live entries.
//
// Memory orders: worker_shared::next_deadline is each heap's minimum, stored (release) under
// timer_lk after every change and read (acquire) without the lock by next_deadline(); a reader
// that acts on it takes timer_lk anyway. A new earliest deadline and a sleeping worker's timeout
// (worker_shared::sleeping_until) are a Dekker pair: add_timer() stores, fences, then reads the
// sleepers (nudge_sleepers()); sleep_worker() (idle.cpp) stores its timeout, fences, then re-reads
// next_deadline() — one of them sees the other.
#include <algorithm>
#include <mutex>

#include "door.hpp"
#include "fence.hpp"
#include "scheduler_impl.hpp"
#include "trace.hpp"

namespace stackless::detail {

namespace {
// A timer entry is live while the park it belongs to has not ended.
bool timer_live(const timer_entry& e) { return door_park_on(e.t, e.gen); }

void publish_deadline(worker_shared& v) {
  // Release: pairs with the acquire in next_deadline() and fire_timers(); a reader that sees the
  // new minimum also sees the entry (it takes timer_lk before it touches the heap anyway).
  v.next_deadline.store(v.timers.min_deadline(), std::memory_order_release);
}
}  // namespace

std::size_t scheduler_impl::purge_timers_locked(worker_shared& v) {
  v.timers.purge(timer_live, [](const timer_entry& e) { release(e.t); });
  publish_deadline(v);
  v.timers_purge_at = std::max<std::size_t>(64, 2 * v.timers.size());
  return v.timers.size();
}

std::size_t scheduler_impl::live_timers() {
  std::size_t n = 0;
  for (auto& w : workers) {
    std::lock_guard g(w->timer_lk);
    n += purge_timers_locked(*w);
  }
  return n;
}

// ---- arming ----------------------------------------------------------------------------------

void scheduler_impl::add_timer(std::int64_t deadline, tcb* t, std::uint64_t gen) {
  worker* w = current_worker();
  if (!w || w->sched != this) w = workers[0].get();  // cannot happen: parks run on their worker
  acquire(t);
  // Chaos: late, never early — on the steady clock. A host clock (options::clock) is the host's:
  // a timer due at a frame's time fires at that advance(), chaos or not.
  if (!host_clock) deadline = add_saturating(deadline, chaos_ns(*w, 200'000));
  bool earliest;
  {
    std::lock_guard g(w->timer_lk);
    // Entries are not removed when their park ends early; they are purged in bulk, so the heap
    // holds at most about twice the live ones.
    if (w->timers.size() >= w->timers_purge_at) purge_timers_locked(*w);
    earliest = deadline < w->timers.min_deadline();
    w->timers.push({deadline, t, gen});
    publish_deadline(*w);
  }
  // A worker asleep in its futex computed its timeout before this timer existed: this worker may
  // stay busy (a tasklet that does not yield) while the timer comes due. Only a new earliest
  // entry of this heap needs that: a later one is covered by whoever covers the earliest.
  if (earliest) nudge_sleepers(deadline);
}

void scheduler_impl::nudge_sleepers(std::int64_t deadline) {
  if (nworkers == 1) return;  // the only worker: it is this one, and it is awake
  fence_seq_cst();  // StoreLoad: the new next_deadline before the sleepers' timeouts (sleep_worker)
  // relaxed (both loads): ordered by the fence above; the Dekker partner is sleep_worker()'s
  // store of sleeping_until, its fence, and its re-read of next_deadline().
  if (nidle.load(std::memory_order_relaxed) == 0) return;  // everyone awake: they look on their own
  for (auto& v : workers) {
    std::int64_t s = v->sleeping_until.load(std::memory_order_relaxed);
    if (s != INT64_MIN && s <= deadline) return;  // that sleeper wakes by then and fires it
  }
  wake_one();  // it spins, finds nothing, and sleeps again until the new deadline
}

// ---- the earliest deadline, and firing ---------------------------------------------------------

std::int64_t scheduler_impl::next_deadline() const noexcept {
  std::int64_t d = INT64_MAX;
  // acquire: pairs with the release in publish_deadline().
  for (auto& w : workers) d = std::min(d, w->next_deadline.load(std::memory_order_acquire));
  return d;
}

bool scheduler_impl::fire_due_timers() {
  if (next_deadline() == INT64_MAX) return false;  // no timer anywhere: not even a clock read
  const std::int64_t now = clock_now();
  return next_deadline() <= now && fire_timers(now);
}

// advance_clock() is scheduler::advance(): the host clock moves, then the host's thread fires
// what came due (wake_park() from a plain thread queues the tasklets like any wake from outside).
std::int64_t scheduler_impl::advance_clock(std::int64_t to_ns) {
  // seq_cst CAS: pairs with the acquire loads in clock_now(); a worker that reads the old time
  // fires nothing now, and this call fires it instead. A CAS, so that two hosts advancing at
  // once can never move the clock backwards.
  std::int64_t cur = game_ns.load(std::memory_order_acquire);
  do {
    if (cur > to_ns) return cur;
  } while (!game_ns.compare_exchange_weak(cur, to_ns, std::memory_order_seq_cst,
                                          std::memory_order_acquire));
  if (next_deadline() <= to_ns) fire_timers(to_ns);
  return cur;
}

bool scheduler_impl::fire_worker_timers(worker_shared& v, std::int64_t now) {
  bool woke = false;
  for (;;) {
    // A batch at a time: wake() runs outside the lock (it may push to a run queue and unpark a
    // worker).
    timer_entry due[32];
    std::size_t n = 0;
    {
      std::lock_guard g(v.timer_lk);
      while (n < 32 && !v.timers.empty() && v.timers.top().deadline <= now)
        due[n++] = v.timers.pop();
      publish_deadline(v);
    }
    for (std::size_t i = 0; i < n; ++i) {
      // A stale entry (the park ended) loses: its generation differs.
      if (wake_park(due[i].t, due[i].gen, wake_reason::timeout)) {
        woke = true;
        trace_event(*this, trace_kind::timer, due[i].t->id);
      }
      release(due[i].t);
    }
    if (n < 32) return woke;
  }
}

bool scheduler_impl::fire_timers(std::int64_t now) {
  bool woke = false;
  for (auto& w : workers)  // acquire: pairs with the release in publish_deadline()
    if (w->next_deadline.load(std::memory_order_acquire) <= now)
      woke |= fire_worker_timers(*w, now);
  return woke;
}

}  // namespace stackless::detail
