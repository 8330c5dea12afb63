// runtime/src/scheduler.cpp — scheduler lifecycle, submitting and waking, the registry of live
// tasklets, timers, and deadlock detection. The worker loop is in worker.cpp.
//
// Shutdown protocol (shutdown()):
//   1. `closed` is set: from now on a spawn from a plain thread throws usage_error, and a spawn
//      from a tasklet (a destructor running during the kill) returns a tasklet born killed.
//   2. Every live tasklet is killed with pending = true: parked ones are woken through the door,
//      paused ones resumed, never-started ones will end without running their function.
//   3. Someone runs them to their end: the worker threads, or — when none was started — the
//      calling thread, as in run(). Then `stopping` is set, every worker is unparked, and the
//      threads are joined.
//   4. Stacks go back to the pool, which unmaps them when the scheduler is destroyed.
//
// Deadlock detection: a deadlock is a quiescent scheduler — every worker idle, no queue holding
// work, no timer pending — whose live tasklets are all parked, staying so for
// options::deadlock_grace (a plain thread may still wake one; the grace is how long we wait for
// that). The watcher is the last worker to go idle, or a plain thread blocked in
// join()/block_on()/drain(). Tasklets parked in join() get deadlock_error; so do plain threads
// waiting in join()/block_on()/drain().
#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "context.hpp"
#include "door.hpp"
#include "fence.hpp"
#include "scheduler_impl.hpp"

namespace stackless::detail {

namespace {
std::atomic<std::uint64_t> g_next_id_block{1};  // process-wide ids, handed out in blocks
constexpr std::uint64_t id_block = 1024;

std::uint64_t plain_next_id() { return g_next_id_block.fetch_add(1, std::memory_order_relaxed) * id_block; }

unsigned resolve_workers(unsigned w) {
  if (w) return w;
  unsigned h = std::thread::hardware_concurrency();
  return h ? h : 1;
}

void default_on_error(const error_report& r) {
  std::string what = r.what;
  if (r.error) {
    try {
      std::rethrow_exception(r.error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
      what = "(an exception not derived from std::exception)";
    }
  }
  std::fprintf(stderr, "stackless: tasklet #%llu '%s': %s\n", static_cast<unsigned long long>(r.id),
               r.name.c_str(), what.c_str());
}
}  // namespace

[[noreturn]] void throw_usage(const char* what) { throw usage_error(what); }

void release(tcb* t) noexcept {
  if (t->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete t;
}

scheduler_impl::scheduler_impl(options o)
    : opts(std::move(o)), stacks(opts.stack_size), sink(new error_sink) {
  nworkers = resolve_workers(opts.workers);
  std::size_t cap = opts.local_queue_capacity;
  if (cap < 4 || (cap & (cap - 1)) != 0)
    throw std::invalid_argument("stackless: options::local_queue_capacity must be a power of two >= 4");
  sink->fn = opts.on_error ? opts.on_error : default_on_error;
  shards.reset(new registry_shard[nworkers + 1]);
  for (unsigned i = 0; i < nworkers; ++i) {
    workers.push_back(std::make_unique<worker>(this, i, cap));
    workers.back()->rng = 0x9e3779b97f4a7c15ULL * (i + 1) ^ reinterpret_cast<std::uintptr_t>(this);
  }
  install_overflow_handler();
  if (nworkers > 1) start_threads();
  // Last: a plain thread blocking on a channel may call ensure_started() on it from now on.
  std::lock_guard g(live_schedulers_mu());
  live_schedulers().push_back(this);
}

scheduler_impl::~scheduler_impl() {
  {
    std::lock_guard g(live_schedulers_mu());
    auto& v = live_schedulers();
    v.erase(std::find(v.begin(), v.end(), this));
  }
  shutdown();
  for (auto& w : workers) {
    stacks.put(w->stack_cache.data(), w->stack_cache.size());
    free_tcb_cache(*w);
  }
  tcb* t;
  while (injection.try_dequeue(t)) release(t);  // cannot happen after shutdown; belt and braces
  for (auto& w : workers) {  // stale entries of ended parks
    w->timers.for_each([](const timer_entry& e) { release(e.t); });
    w->timers.clear();
  }
  sink->release();
}

void scheduler_impl::start_threads() {
  mode.store(M_THREADED, std::memory_order_release);
  if (opts.quantum.count() > 0) start_monitor();
  for (auto& w : workers) {
    worker* wp = w.get();
    wp->thread = std::thread([this, wp] {
      std::string n = opts.name + "-" + std::to_string(wp->index);
      pthread_setname_np(pthread_self(), n.substr(0, 15).c_str());
      worker_main(*wp);
    });
  }
}

std::mutex& live_schedulers_mu() {
  static std::mutex mu;
  return mu;
}
std::vector<scheduler_impl*>& live_schedulers() {
  static std::vector<scheduler_impl*> v;
  return v;
}

void plain_thread_will_block() {
  // A plain thread is about to block on something a tasklet may have to end (a channel, a
  // lock): every single-worker scheduler that nothing drives yet gets its thread now.
  std::lock_guard g(live_schedulers_mu());
  for (scheduler_impl* s : live_schedulers()) s->ensure_started();
}

void scheduler_impl::ensure_started() {
  if (mode.load(std::memory_order_acquire) != M_UNOWNED) return;
  std::lock_guard g(lifecycle_mu);
  if (stopping.load()) return;
  int m = M_UNOWNED;  // a CAS: run()/run_for() may be taking worker 0 for a pump right now
  if (mode.compare_exchange_strong(m, M_THREADED, std::memory_order_acq_rel)) start_threads();
}

// ---- submitting and waking -------------------------------------------------------------------

void scheduler_impl::register_tasklet(tcb* t, unsigned shard) {
  t->shard = shard;
  registry_shard& s = shards[shard];
  s.lk.lock();
  t->reg_prev = nullptr;
  t->reg_next = s.head;
  if (s.head) s.head->reg_prev = t;
  s.head = t;
  ++s.count;
  s.lk.unlock();
}

void scheduler_impl::unregister_tasklet(tcb* t) {
  registry_shard& s = shards[t->shard];
  s.lk.lock();
  if (t->reg_prev) t->reg_prev->reg_next = t->reg_next; else s.head = t->reg_next;
  if (t->reg_next) t->reg_next->reg_prev = t->reg_prev;
  --s.count;
  s.lk.unlock();
}

std::uint64_t scheduler_impl::live() const {
  std::uint64_t n = 0;
  for (unsigned i = 0; i <= nworkers; ++i) {
    registry_shard& s = shards[i];
    s.lk.lock();
    n += s.count;
    s.lk.unlock();
  }
  return n;
}

void submit(scheduler_impl* s, tcb* t) { s->submit(t); }

void scheduler_impl::submit(tcb* t) {
  t->sched = this;
  worker* w = current_worker();
  bool local = w && w->sched == this && w->current;
  if (closed.load(std::memory_order_acquire)) {
    if (!local) {
      release(t);  // the handle's reference
      release(t);  // ours
      throw usage_error("stackless: spawn() on a scheduler that was shut down");
    }
    t->irq.store(IRQ_KILLED, std::memory_order_relaxed);  // born killed: it will never run
  }
  if (local) {
    if (w->id_next == w->id_end) {
      w->id_next = plain_next_id();
      w->id_end = w->id_next + id_block;
    }
    t->id = w->id_next++;
    w->spawned.store(w->spawned.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    register_tasklet(t, w->index);
    t->state.store(S_RUNNABLE, std::memory_order_relaxed);
    // The new tasklet runs next; the one it displaces becomes stealable, worth a wakeup.
    push_runnext(*w, t);
  } else {
    t->id = plain_next_id();  // a whole block per plain-thread spawn: ids stay unique and cheap
    plain_spawned.fetch_add(1, std::memory_order_relaxed);
    register_tasklet(t, nworkers);
    t->state.store(S_RUNNABLE, std::memory_order_relaxed);
    inject(t);
  }
}

void scheduler_impl::inject(tcb* t) {
  injection.enqueue(t);
  wake_one();
}

void scheduler_impl::make_runnable(tcb* t, bool to_back) {
  if (take_pause(t)) return;  // pause() asked while it ran, before it parked
  t->state.store(S_RUNNABLE, std::memory_order_relaxed);  // published by the queue push below
  if (pinned(t) && t->home) {  // pinned (this_tasklet::atomic, hard-preempted): back to its worker
    inbox_push(*t->home, t);
    return;
  }
  worker* w = current_worker();
  if (w && w->sched == this) {
    if (w->current) {
      // Woken by a running tasklet: it runs next, here (Go's ready(), runnext = true), or
      // after everything runnable here (Stackless's channel preference).
      if (to_back) push_back_local(*w, t);
      else push_runnext(*w, t);
    } else {
      push_local(*w, t, true);  // woken from the scheduler side (a timer)
    }
    return;
  }
  inject(t);
}

void scheduler_impl::report(tcb* t, std::exception_ptr e, std::string what) {
  t->lk.lock();
  error_report r{t->id, t->name, std::move(e), std::move(what)};
  t->lk.unlock();
  try {
    sink->fn(r);
  } catch (...) {
    std::fprintf(stderr, "stackless: options::on_error threw; report of tasklet #%llu lost\n",
                 static_cast<unsigned long long>(r.id));
  }
}

void scheduler_impl::finish(worker& w, tcb* t) {
  // The tasklet is off its stack for good: recycle the stack.
  context_destroy(t->ctx);
  if (w.stack_cache.size() >= 32) {
    stacks.put(w.stack_cache.data() + 16, w.stack_cache.size() - 16);
    w.stack_cache.resize(16);
  }
  w.stack_cache.push_back(t->stk);
  w.stack_cache_size.store(w.stack_cache.size(), std::memory_order_relaxed);
  t->stk = nullptr;
  w.stacks_released.store(w.stacks_released.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);

  // Swallowed: tasklet_exit was thrown in it, and it still returned normally. (Killed while it
  // ran, but ended before it reached a suspension point: nothing was swallowed.)
  bool swallowed = t->exit_thrown && !t->ended_by_kill && !t->error;
  if (swallowed) {
    t->ended_by_kill = true;
    report(t, nullptr, "swallowed tasklet_exit (a catch (...) without rethrow); the tasklet ended anyway");
  }
  if (t->error) {
    sink->acquire();
    t->sink = sink;  // whoever drops the last handle may need it after we are gone
  }
  t->lk.lock();
  // DEAD, then read handles: a Dekker pair with handle_release() when there is an error to
  // report; otherwise release suffices (readers acquire).
  t->state.store(S_DEAD, t->error ? std::memory_order_seq_cst : std::memory_order_release);
  waiter* j = std::exchange(t->joiners, nullptr);
  while (j) {
    waiter* next = j->next;
    j->linked = false;
    j->next = j->prev = nullptr;
    wake(*j);  // under t->lk, as park.cpp requires
    j = next;
  }
  t->lk.unlock();
  if (t->error && t->handles.load(std::memory_order_seq_cst) == 0 &&
      !t->error_reported.exchange(true, std::memory_order_acq_rel))
    report(t, t->error, {});
  // Leave the registry (live count) only now: drain() returns once every tasklet has ended
  // *and* its error, if any, has been reported.
  unregister_tasklet(t);
  if (drain_waiters.load(std::memory_order_seq_cst) > 0 && live() == 0) {
    drain_word.fetch_add(1, std::memory_order_release);
    futex_wake(&drain_word, INT32_MAX);
  }
  release(t);  // the scheduler's reference
}

// ---- timers ---------------------------------------------------------------------------------
//
// Each worker keeps the timeouts of the parks made on it in its own 4-ary heap (timer_heap.hpp;
// why not a timing wheel is argued there), under its own lock: arming a timer touches only the
// calling worker's line. Firing is anyone's job: a worker fires its own due timers in its loop
// (every 61st tick while busy, and whenever it looks for work), and a worker about to sleep
// sleeps until the earliest deadline of *any* worker and fires every worker's due timers when it
// wakes — so a timer armed on a worker that is now busy with a long-running tasklet still fires
// on time if another worker is idle (Go's findRunnable checks every P's timers the same way).
// A timer never has to be cancelled: the park door's generation makes a stale one lose.

namespace {
// A timer entry is live while the park it belongs to has not ended.
bool timer_live(const timer_entry& e) { return door_park_on(e.t, e.gen); }
void publish_deadline(worker& v) {
  // Release: pairs with the acquire in next_deadline(); a reader that sees the new minimum also
  // sees the entry (it takes timer_lk before it touches the heap anyway).
  v.next_deadline.store(v.timers.min_deadline(), std::memory_order_release);
}
}  // namespace

std::size_t scheduler_impl::purge_timers_locked(worker& v) {
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

std::int64_t scheduler_impl::next_deadline() const noexcept {
  std::int64_t d = INT64_MAX;
  for (auto& w : workers) d = std::min(d, w->next_deadline.load(std::memory_order_acquire));
  return d;
}

void scheduler_impl::add_timer(std::int64_t deadline, tcb* t, std::uint64_t gen) {
  worker* w = current_worker();
  if (!w || w->sched != this) w = workers[0].get();  // cannot happen: parks run on their worker
  acquire(t);
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
  fence_seq_cst();  // StoreLoad: the new next_deadline before the sleepers' timeouts (park_worker)
  if (nidle.load(std::memory_order_relaxed) == 0) return;  // everyone awake: they look on their own
  for (auto& v : workers) {
    std::int64_t s = v->sleeping_until.load(std::memory_order_relaxed);
    if (s != INT64_MIN && s <= deadline) return;  // that sleeper wakes by then and fires it
  }
  wake_one();  // it spins, finds nothing, and sleeps again until the new deadline
}

bool scheduler_impl::fire_worker_timers(worker& v, std::int64_t now) {
  bool woke = false;
  for (;;) {
    // A batch at a time: wake() runs outside the lock (it may push to a run queue and unpark a
    // worker).
    timer_entry due[32];
    std::size_t n = 0;
    {
      std::lock_guard g(v.timer_lk);
      while (n < 32 && !v.timers.empty() && v.timers.top().deadline <= now) due[n++] = v.timers.pop();
      publish_deadline(v);
    }
    for (std::size_t i = 0; i < n; ++i) {
      // A stale entry (the park ended) loses: its generation differs.
      woke |= wake_park(due[i].t, due[i].gen, wake_reason::timeout);
      release(due[i].t);
    }
    if (n < 32) return woke;
  }
}

bool scheduler_impl::fire_timers(std::int64_t now) {
  bool woke = false;
  for (auto& w : workers)
    if (w->next_deadline.load(std::memory_order_acquire) <= now) woke |= fire_worker_timers(*w, now);
  return woke;
}

// ---- deadlock detection ------------------------------------------------------------------------

std::uint64_t scheduler_impl::total_runs() const {
  std::uint64_t n = 0;
  for (auto& w : workers) n += w->runs.load(std::memory_order_relaxed);
  return n;
}

bool scheduler_impl::quiescent() {
  if (mode.load(std::memory_order_acquire) != M_THREADED) return false;  // a pump may come
  if (nidle.load(std::memory_order_seq_cst) != static_cast<int>(nworkers)) return false;
  if (work_anywhere()) return false;
  for (auto& w : workers)
    if (w->runnext.load(std::memory_order_acquire)) return false;
  if (next_deadline() == INT64_MAX) return true;
  return live_timers() == 0;  // stale entries do not count
}

scheduler_impl::watch_end scheduler_impl::watch_deadlock(function_ref_until wait,
                                                         std::int64_t deadline,
                                                         const tcb* target, std::string* report) {
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
  std::ostringstream os;
  bool all_parked = true;
  std::size_t n = 0;
  std::vector<tcb*> joiners;
  os << "stackless: deadlock: every tasklet is blocked and nothing can wake one; blocked tasklets:";
  for_each_live([&](tcb* t) {
    if (t->state.load(std::memory_order_acquire) != S_PARKED) {
      all_parked = false;
      return;
    }
    if (t->wait_what && std::string_view(t->wait_what) == "join") {
      acquire(t);
      joiners.push_back(t);
    }
    if (++n > 50) return;
    t->lk.lock();
    os << "\n  #" << t->id << " '" << t->name << "' waiting on " << (t->wait_what ? t->wait_what : "?");
    t->lk.unlock();
    if (t->wait_target) os << " #" << t->wait_target;
  });
  std::string report;
  if (all_parked && n > 0) {
    if (n > 50) os << "\n  … and " << (n - 50) << " more";
    report = os.str();
    deadlock_reported_runs = since;
    deadlock_report = report;
    deadlock_notified.assign(joiners.begin(), joiners.end());
    auto e = std::make_exception_ptr(deadlock_error(report));
    for (tcb* t : joiners) {
      try {
        raise(t, e, true);
      } catch (const usage_error&) {
        // It ended meanwhile: an earlier one's error reached it through its join.
      }
    }
    notified();
  }
  for (tcb* t : joiners) release(t);
  return report;
}

// ---- lifecycle ---------------------------------------------------------------------------------

void scheduler_impl::run_pumped(std::int64_t slice_ns, tcb** overran) {
  if (current_worker()) throw usage_error("stackless: run()/run_for() called from inside a tasklet or worker");
  if (nworkers != 1)
    throw usage_error("stackless: run()/run_for() need options::workers == 1; with worker threads use drain()");
  int m = M_UNOWNED;
  if (!mode.compare_exchange_strong(m, M_PUMPED, std::memory_order_acq_rel))
    throw usage_error(m == M_PUMPED ? "stackless: run() is already running on another thread"
                                    : "stackless: run(): the worker thread was started (by a join, "
                                      "block_on or drain from a plain thread); use drain()");
  worker& w = *workers[0];
  set_current_worker(&w);
  thread_altstack alt;
  context_init_thread(w.sched_ctx);
  w.slice_ns = slice_ns;
  w.slice_pub.store(slice_ns, std::memory_order_relaxed);  // published by attach_thread()
  w.overran = nullptr;
  if (slice_ns > 0 || opts.quantum.count() > 0) start_monitor();  // it watches the slice
  attach_thread(w);
  while (tcb* t = find_runnable(w, false)) {
    run_tasklet(w, t);
    if (w.overran) break;
  }
  detach_thread(w);
  w.slice_pub.store(0, std::memory_order_relaxed);
  if (overran) *overran = w.overran;
  w.overran = nullptr;
  w.slice_ns = 0;
  set_current_worker(nullptr);
  mode.store(M_UNOWNED, std::memory_order_release);
}

void scheduler_impl::drain() {
  if (current_worker()) throw usage_error("stackless: drain() called from a tasklet; it would wait for itself");
  ensure_started();
  // seq_cst: pairs with the seq_cst load of drain_waiters in finish() (Dekker: we count
  // ourselves, then read live(); the last tasklet to end stores live, then reads us).
  drain_waiters.fetch_add(1, std::memory_order_seq_cst);
  std::string report;
  const watch_end end = watch_deadlock(
      [&](std::int64_t until) {
        // acquire: pairs with the release increment of drain_word in finish().
        const std::uint32_t seq = drain_word.load(std::memory_order_acquire);
        if (live() == 0) return true;
        futex_wait(&drain_word, seq, until);
        return live() == 0;
      },
      no_deadline, nullptr, &report);
  drain_waiters.fetch_sub(1, std::memory_order_seq_cst);  // pairs as the fetch_add above
  if (end == watch_end::deadlock) throw deadlock_error(report);
}

void scheduler_impl::shutdown() {
  if (tcb* self = current_tcb(); self && self->sched == this)
    throw usage_error("stackless: shutdown() called from a tasklet of the same scheduler");
  std::lock_guard g(lifecycle_mu);
  if (shut_down) return;
  closed.store(true, std::memory_order_seq_cst);
  for (;;) {
    for_each_live([](tcb* t) { kill(t, true); });
    if (mode.load(std::memory_order_acquire) == M_THREADED) {
      drain_waiters.fetch_add(1, std::memory_order_seq_cst);
      std::uint32_t seq = drain_word.load(std::memory_order_acquire);
      if (live() != 0) futex_wait(&drain_word, seq, now_ns() + 100'000'000);
      drain_waiters.fetch_sub(1, std::memory_order_seq_cst);
    } else {
      // No worker thread: run the dying tasklets here, as run() would.
      while (mode.load(std::memory_order_acquire) == M_PUMPED) std::this_thread::yield();
      run_pumped(0, nullptr);
    }
    if (live() == 0) break;
  }
  stop_monitor();  // before the worker threads go: it signals them by tid
  stopping.store(true, std::memory_order_seq_cst);
  for (auto& w : workers) unpark(*w);
  for (auto& w : workers)
    if (w->thread.joinable()) w->thread.join();
  shut_down = true;
}

scheduler_stats scheduler_impl::stats() const {
  scheduler_stats s;
  std::uint64_t spawned = plain_spawned.load(std::memory_order_relaxed);
  for (auto& w : workers) {
    worker_stats ws;
    ws.runs = w->runs.load(std::memory_order_relaxed);
    ws.steals = w->steals.load(std::memory_order_relaxed);
    ws.steal_attempts = w->steal_attempts.load(std::memory_order_relaxed);
    ws.parks = w->parks.load(std::memory_order_relaxed);
    ws.spins = w->spins.load(std::memory_order_relaxed);
    ws.inbox = w->inbox_taken.load(std::memory_order_relaxed);
    ws.injected = w->injected.load(std::memory_order_relaxed);
    ws.overflows = w->overflows.load(std::memory_order_relaxed);
    spawned += w->spawned.load(std::memory_order_relaxed);
    s.steals += ws.steals;
    s.runnable += static_cast<std::uint64_t>(w->deque.size()) + (w->runnext.load() ? 1 : 0);
    s.workers.push_back(ws);
  }
  s.spawned = spawned;

  s.runnable += injection.size_approx();
  for_each_live([&](tcb* t) {  // the registry also holds tasklets in the last steps of finish()
    std::uint32_t st = t->state.load(std::memory_order_acquire);
    if (st != S_DEAD) ++s.live;
    if (st == S_PARKED) ++s.parked;
  });
  std::uint64_t taken = 0, released = 0;  // per worker: a stack may end on another worker
  for (auto& w : workers) {
    taken += w->stacks_taken.load(std::memory_order_relaxed);
    released += w->stacks_released.load(std::memory_order_relaxed);
  }
  s.stacks_outstanding = taken - released;
  s.stacks_pooled = stacks.pooled();
  for (auto& w : workers) s.stacks_pooled += w->stack_cache_size.load(std::memory_order_relaxed);
  for (auto& w : workers) {
    s.soft_preemptions += w->soft_preempts.load(std::memory_order_relaxed);
    s.hard_preemptions += w->hard_preempts.load(std::memory_order_relaxed);
    s.refused_disabled += w->refused_disabled.load(std::memory_order_relaxed);
    s.refused_atomic += w->refused_atomic.load(std::memory_order_relaxed);
    s.refused_not_preemptible += w->refused_not_preemptible.load(std::memory_order_relaxed);
    s.refused_runtime_code += w->refused_runtime_code.load(std::memory_order_relaxed);
    s.refused_stack += w->refused_stack.load(std::memory_order_relaxed);
  }
  s.preemptions = s.soft_preemptions + s.hard_preemptions;
  monitor_counts(*this, s);
  s.stacks_guarded = stacks.guarded_made();
  s.stacks_unguarded = stacks.unguarded_made();
  return s;
}

scheduler_impl* make_scheduler(options o) { return new scheduler_impl(std::move(o)); }
void destroy_scheduler(scheduler_impl* s) noexcept { delete s; }

}  // namespace stackless::detail

namespace stackless {

void scheduler::run() { impl_->run_pumped(0, nullptr); }

tasklet<void> scheduler::run_for(std::chrono::nanoseconds slice) {
  if (slice.count() <= 0) throw std::invalid_argument("stackless: run_for() needs a positive slice");
  detail::tcb* t = nullptr;
  impl_->run_pumped(slice.count(), &t);
  if (!t) return {};
  detail::handle_acquire(t);
  detail::release(t);  // the reference run_tasklet() took for us
  return tasklet<void>(t, tasklet<void>::adopt_t{});
}

void scheduler::drain() { impl_->drain(); }
void scheduler::shutdown() { impl_->shutdown(); }
scheduler_stats scheduler::stats() const { return impl_->stats(); }
unsigned scheduler::workers() const noexcept { return impl_->nworkers; }

}  // namespace stackless
