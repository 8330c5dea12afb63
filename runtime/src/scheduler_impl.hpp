// SPDX-License-Identifier: Apache-2.0
// runtime/src/scheduler_impl.hpp — the scheduler's internals: the class that owns the workers,
// the queues, the registry of live tasklets, the timers and the monitor, and the free functions
// the rest of the runtime calls on them.
//
// Glossary: a *tasklet* (Go's G) runs on a *worker* (Go's M+P: one OS thread with a local run
// queue; worker.hpp); the *scheduler* owns the workers. A tasklet *parks* (park.cpp) and is
// *woken*; it is *runnable* while it sits in a run queue: a worker's runnext slot, its deque, its
// yield list, its inbox, or the scheduler's injection queue. Its lifecycle word, tcb::state, and
// the legal transitions of it are drawn in tstate.hpp.
//
// One concern a file (tokio's multi_thread scheduler):
//   lifecycle.cpp  construction, starting the worker threads, run()/run_for(), drain(), shutdown
//   scheduler.cpp  submitting and waking tasklets, the end of a tasklet, the registry
//   worker.cpp     the worker loop: finding work, switching, stealing
//   idle.cpp       parking and waking workers (the idle list, spinning, the futex)
//   timers.cpp     the per-worker timer heaps: arming, the earliest deadline, firing
//   deadlock.cpp   deadlock detection
//   stats.cpp      scheduler::stats()
//   admission.cpp  submit()'s admission queue (options::max_pending), shutdown(deadline)
//   preempt.cpp    the monitor thread, soft and hard preemption, the stall watchdog
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "injection.hpp"
#include "stack.hpp"
#include "stackless/runtime/detail/spinlock.hpp"
#include "stackless/runtime/detail/wait_list.hpp"
#include "stackless/runtime/internal/futex.hpp"
#include "stackless/runtime/internal/park.hpp"
#include "stackless/runtime/scheduler.hpp"
#include "tstate.hpp"
#include "worker.hpp"

namespace stackless::detail {

// tcb::irq bits.
inline constexpr std::uint32_t IRQ_KILLED = 1;  // sticky
inline constexpr std::uint32_t IRQ_EXC = 2;     // `pending` holds an exception
inline constexpr std::uint32_t IRQ_PAUSE = 4;   // pause() asked while it was running

/// error_sink is the scheduler's on_error, reference counted so that a failed tasklet whose last
/// handle is dropped after the scheduler is gone can still report.
struct error_sink {
  std::atomic<int> refs{1};
  std::function<void(const error_report&)> fn;
  // relaxed: a new reference is taken from one already held; nothing is published through it.
  void acquire() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    // acq_rel: the release orders this holder's use of fn before the count drops; the acquire
    // of the last decrement pairs with the others' releases, so the delete comes after every use.
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
};

class monitor;    // preempt.cpp
class netpoller;  // netpoller.hpp
class tracer;     // trace.cpp

/// function_ref_until is a non-owning reference to a callable bool(std::int64_t until).
class function_ref_until {
 public:
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, function_ref_until>>>
  function_ref_until(F&& f) noexcept  // NOLINT: implicit, for lambdas at the call site
      : obj_(const_cast<void*>(static_cast<const void*>(&f))), call_([](void* o, std::int64_t u) {
          return (*static_cast<std::remove_reference_t<F>*>(o))(u);
        }) {}
  bool operator()(std::int64_t until) const { return call_(obj_, until); }

 private:
  void* obj_;
  bool (*call_)(void*, std::int64_t);
};

/// tasklet_label() names t in reports: "#42 'name'" or "#42 (unnamed)", then " spawned at
/// file:line in function" when spawn() recorded it (dump.cpp; takes t->lk).
std::string tasklet_label(tcb* t);
/// append_spawn_site() is that last part alone (nothing when not recorded).
void append_spawn_site(std::string& out, const std::source_location& where);
/// coarse_now_ns(): CLOCK_MONOTONIC_COARSE (a vDSO read, ~4 ms steps): tcb::parked_since_ns.
std::int64_t coarse_now_ns() noexcept;
/// install_dump_signal(): dump every live scheduler to stderr on signo (options::dump_signal);
/// parse_signal() reads STACKLESS_DUMP_SIGNAL's "SIGQUIT", "QUIT" or a number. dump.cpp.
void install_dump_signal(int signo);
int parse_signal(const std::string& name);

/// pinned(): t must run on t->home only (an atomic scope, or hard-preempted).
inline bool pinned(const tcb* t) noexcept { return t->atomic_depth > 0 || t->hard_pinned; }

/// registry_shard: the live tasklets spawned on one worker (or, the last shard, from plain
/// threads). Used by shutdown() to kill them and by the deadlock report to list them.
struct alignas(64) registry_shard {
  spinlock lk;
  tcb* head = nullptr;      // guarded by lk
  std::uint64_t count = 0;  // guarded by lk
};

class scheduler_impl {
 public:
  // ---- lifecycle (lifecycle.cpp) ---------------------------------------------------------------
  explicit scheduler_impl(options o);
  ~scheduler_impl();
  void start_threads();         // workers > 1: at construction; workers == 1: lazily
  void ensure_started();        // a plain thread is about to wait: make sure someone runs
  void start_unowned_locked();  // ensure_started() with lifecycle_mu held
  void run_pumped(std::int64_t slice_ns, tcb** overran);  // run() / run_for()
  /// host_pump() is a plain thread's wait for `target` on a scheduler a host pumps (workers == 1,
  /// run()/run_for() used, no worker thread): the caller pumps worker 0 itself — after calling
  /// first(target) there, if given — until target has ended, `deadline` passes or nothing is
  /// runnable. False, having done nothing, when it may not (see host_pumpable()).
  bool host_pump(tcb* target, void (*first)(tcb*), std::int64_t deadline);
  /// host_pumpable(): a plain thread that waits here should pump rather than start the thread.
  bool host_pumpable() const noexcept;
  /// check_not_forked() throws usage_error in the child of a fork(): the scheduler was inherited.
  void check_not_forked() const;
  void drain();
  void shutdown();
  shutdown_report shutdown_graceful(std::int64_t deadline_ns);  // shutdown(deadline)

  // ---- submitting, waking, the end of a tasklet, the registry (scheduler.cpp) ------------------
  void submit(tcb* t);                               // a new tasklet
  void make_runnable(tcb* t, bool to_back = false);  // a woken or resumed tasklet
  void inject(tcb* t);                               // from outside: injection queue + wake one
  void finish(worker& w, tcb* t);                    // a tasklet ended: release everything (on w)
  void report(tcb* t, std::exception_ptr e, std::string what);
  void register_tasklet(tcb* t, unsigned shard);
  void unregister_tasklet(tcb* t);
  std::uint64_t live() const;
  template <class F>
  void for_each_live(F&& f) const;  // f(tcb*) with a reference held; outside the shard locks

  // ---- the worker loop (worker.cpp) ------------------------------------------------------------
  void worker_main(worker& w);
  tcb* find_runnable(worker& w, bool may_park);  // everything, then park; returns it claimed
  tcb* search(worker& w, bool may_park);         //   its loop
  tcb* next_local(worker& w);                    // local queues only; claimed; never blocks
  bool first_launch(worker& w, tcb* t);  // launch()'s first run of t: its stack (worker.cpp)
  bool launch(worker& w, tcb* t);        // t is about to be switched to on w;
                                         //   false: it ended, no stack (worker.cpp)
  void end_unstarted(worker& w, tcb* t, std::exception_ptr error);
  void after_switch(worker& w);  // finish what w.prev started
  void run_tasklet(worker& w, tcb* t);
  tcb* fair_pick(worker& w);
  tcb* injected_batch(worker& w);
  bool start_spinning(worker& w);  // become a spinner, if few enough spin
  tcb* spin_steal(worker& w);      // steal rounds for a bounded time
  tcb* steal_round(worker& w, bool take_runnext);
  void expose_yielders(worker& w);  // yield list → deque, where thieves see it
  void push_local(worker& w, tcb* t, bool notify);
  void push_runnext(worker& w, tcb* t);     // t runs next on w; the one it displaces is queued
  void push_back_local(worker& w, tcb* t);  // t runs after everything runnable on w (yield list)
  void push_overflow(worker& w, tcb* t);
  void inbox_push(worker& home, tcb* t);  // a pinned tasklet, runnable again
  bool work_anywhere() const;

  // ---- parking and waking workers (idle.cpp) ---------------------------------------------------
  void wake_one();              // Go's wakep(): unpark an idle worker if none is spinning
  void wake_worker(worker& v);  // unpark v if it is idle
  void park_worker(worker& w);
  bool leave_idle(worker& w);  // w takes itself off the idle list (false: it is being unparked)
  void sleep_worker(worker& w, std::int64_t deadline, bool watch, std::uint64_t runs_at_sleep);
  void unpark(worker_shared& w);

  // ---- timers (timers.cpp): one 4-ary heap per worker (timer_heap.hpp) -------------------------
  /// add_timer() arms a timeout for park `gen` of t, on the calling worker's heap.
  void add_timer(std::int64_t deadline, tcb* t, std::uint64_t gen);
  /// nudge_sleepers(): a timer due at `deadline` was just armed; unless a sleeping worker wakes by
  /// then anyway, unpark one so that it sleeps again with the new deadline (Go's wakeNetPoller).
  void nudge_sleepers(std::int64_t deadline);
  /// next_deadline() is the earliest deadline on any worker (INT64_MAX: none).
  std::int64_t next_deadline() const noexcept;
  /// fire_due_timers() fires every due timer of every worker, reading the clock only when some
  /// timer is armed; true if it woke someone. What the worker loop, soft and hard preemption call.
  bool fire_due_timers();
  /// fire_timers() fires every timer of every worker due at `now`; true if it woke someone.
  bool fire_timers(std::int64_t now);
  bool fire_worker_timers(worker_shared& v, std::int64_t now);
  /// purge_timers_locked(): drops v's entries whose park already ended (they would only fire
  /// and lose); returns how many live ones remain. Called with v.timer_lk held.
  std::size_t purge_timers_locked(worker_shared& v);
  std::size_t live_timers();

  // ---- deadlock detection (deadlock.cpp) -------------------------------------------------------
  std::uint64_t total_runs() const;
  bool quiescent();
  /// check_deadlock(): `since` is total_runs() when the caller started watching; returns the
  /// report when the scheduler has been quiescent since then with every live tasklet parked. The
  /// first caller to find a given deadlock delivers deadlock_error to the tasklets parked in
  /// join(); later callers get the same report. *target_notified (optional) tells whether
  /// `target` was one of those tasklets (with no target: whether there were any).
  std::string check_deadlock(std::uint64_t since, const tcb* target = nullptr,
                             bool* target_notified = nullptr);
  /// begin_deadlock_watch(): the last worker to go idle watches for a deadlock while it sleeps.
  /// True when it should (a grace is set, every worker is idle, tasklets are alive, and this
  /// quiet state was not reported already); *runs is then total_runs() at the start.
  bool begin_deadlock_watch(std::uint64_t* runs);
  /// watch_end is how watch_deadlock() ended.
  enum class watch_end : std::uint8_t { done, timed_out, deadlock };
  // wait_all_ended() waits (a plain thread) until live() is 0, `deadline`, or a deadlock —
  // drain() and shutdown(deadline). lifecycle.cpp.
  watch_end wait_all_ended(std::int64_t deadline, std::string* report);
  /// watch_deadlock() is the wait of a plain thread that waits for this scheduler's tasklets (a
  /// join, drain()): it calls wait(until) — which returns true once the caller's wait is over —
  /// with `until` at most one deadlock grace period away, and between waits checks for a
  /// deadlock. It ends `done`, `timed_out` (`deadline` passed), or `deadlock` (every tasklet is
  /// parked and nothing can wake one, and no tasklet was told: with a target, `target` itself
  /// was not; *report holds the report).
  watch_end watch_deadlock(function_ref_until wait, std::int64_t deadline, const tcb* target,
                           std::string* report);

  // ---- the netpoller (netpoll.cpp) -------------------------------------------------------------
  /// netpoll() is this scheduler's netpoller, made on first use (throws std::system_error when
  /// epoll or the eventfd cannot be created).
  netpoller* netpoll();
  /// poll_io() polls without blocking when tasklets wait for I/O and no worker is blocked in
  /// epoll_wait; true if it woke someone. poll_io_if_due(): the same, only when nobody has polled
  /// for netpoller::poll_interval_ns (the fairness tick, the monitor).
  bool poll_io();
  bool poll_io_if_due();
  /// want_poller(): a tasklet began an I/O wait and no worker is the blocker: wake an idle one.
  void want_poller();

  // ---- stats (stats.cpp) -----------------------------------------------------------------------
  scheduler_stats stats() const;
  // ---- dump (dump.cpp): every live tasklet, with its state, wait and parked backtrace ---------
  void dump(std::ostream& os);
  // ---- Stackless's callbacks (dump.cpp) --------------------------------------------------------
  // has_schedule_cb: a schedule callback is set (relaxed: launch() reads it at every switch-in;
  // the callback itself is copied under callbacks_lk). channel_cb: likewise, counted in
  // channel_callback_schedulers while set.
  std::atomic<bool> has_schedule_cb{false};
  spinlock callbacks_lk;
  std::shared_ptr<const schedule_callback> schedule_cb;  // guarded by callbacks_lk
  std::shared_ptr<const channel_callback> channel_cb;    // guarded by callbacks_lk
  void call_schedule_cb(worker& w, tcb* next) noexcept;

  // ---- preemption (preempt.cpp): the monitor thread, when quantum > 0 or a run_for() needs it --
  void start_monitor();
  void stop_monitor() noexcept;

  // ---- data ------------------------------------------------------------------------------------
  options opts;
  unsigned nworkers = 1;
  // The tracer (trace.cpp), null when not tracing: made by the constructor before any worker
  // thread starts, finished by shutdown(), freed by the destructor; fixed in between.
  tracer* trace = nullptr;
  // The clock of this scheduler's tasklets (options::clock). host_clock is fixed at construction;
  // game_ns moves only by advance() (seq_cst store there; acquire loads in clock_now()).
  bool host_clock = false;
  std::atomic<std::int64_t> game_ns{0};
  std::int64_t clock_now() const noexcept {
    return host_clock ? game_ns.load(std::memory_order_acquire) : now_ns();
  }
  // timer_sleep_deadline() is how long an idle worker may sleep for the timers: the earliest
  // deadline on the steady clock; with a host clock none (advance() fires the timers itself),
  // unless one is due already.
  std::int64_t timer_sleep_deadline() const noexcept {
    const std::int64_t d = next_deadline();
    if (!host_clock || d == INT64_MAX) return d;
    return d <= game_ns.load(std::memory_order_acquire) ? 0 : INT64_MAX;
  }
  // advance_clock() moves game_ns to to_ns and fires what came due; the time it found (greater
  // than to_ns: refused, nothing changed). timers.cpp.
  std::int64_t advance_clock(std::int64_t to_ns);
  std::vector<std::unique_ptr<worker>> workers;  // fixed after construction
  injection_queue<tcb*> injection;
  std::unique_ptr<registry_shard[]> shards;  // nworkers + 1
  stack_pool stacks;
  error_sink* sink;

  // Parking (idle.cpp).
  alignas(64) std::atomic<int> nspinning{0};
  alignas(64) std::atomic<int> nidle{0};
  std::mutex idle_mu;
  std::vector<worker*> idle_list;  // guarded by idle_mu

  // Lifecycle (lifecycle.cpp). mode — 0: no worker thread (run()/run_for() may drive worker 0);
  // 1: a run() is driving it; 2: worker threads started.
  enum : int { M_UNOWNED = 0, M_PUMPED = 1, M_THREADED = 2 };
  std::atomic<int> mode{M_UNOWNED};
  std::mutex lifecycle_mu;
  std::atomic<bool> closed{false};              // shutdown() began: spawns are born killed
  std::atomic<bool> stopping{false};            // workers must exit
  bool shut_down = false;                       // guarded by lifecycle_mu
  std::atomic<std::uint64_t> plain_spawned{0};  // a count for stats() (relaxed)
  // run()/run_for() drove worker 0 at least once: a host pumps this scheduler, so a plain
  // thread's join()/kill() pumps too instead of starting the thread (host_pump()). Relaxed: set
  // and read by the host's own thread; another thread reading it late only takes the old path.
  std::atomic<bool> host_driven{false};
  // Set by the pthread_atfork child handler (lifecycle.cpp) in the child of a fork(): the worker
  // and monitor threads do not exist there. Relaxed: written before the child has a second thread.
  std::atomic<bool> forked{false};
  // chaos: options::chaos or STACKLESS_CHAOS, 0 for off (chaos.cpp). Set by the constructor.
  std::uint64_t chaos = 0;
  // true one time in one_in; inline, so that with chaos off it is a load and a branch
  bool chaos_roll(worker_owned& w, unsigned one_in) noexcept {
    return chaos != 0 && chaos_roll_slow(w, one_in);
  }
  bool chaos_roll_slow(worker_owned& w, unsigned one_in) noexcept;
  std::int64_t chaos_ns(worker_owned& w, std::int64_t max_ns) noexcept;  // 0..max_ns at random
  // Admission (admission.cpp): submit()'s slots of options::max_pending. `refusing`: shutdown()
  // began, submit() and plain-thread spawns throw scheduler_closed (seq_cst store, acquire loads).
  std::atomic<bool> refusing{false};
  spinlock adm_lk;
  std::size_t adm_pending = 0;  // guarded by adm_lk: slots taken
  wait_list adm_waiters;        // guarded by adm_lk: blocked submitters, FIFO
  bool adm_closed = false;      // guarded by adm_lk: set with refusing; waiters are sent away
  void close_admission() noexcept;
  // shutdown(deadline)'s accounting: while counting_ends is set, finish() counts every end.
  // Relaxed: read back by shutdown() after the workers are joined (or on the pumping thread).
  std::atomic<bool> counting_ends{false};
  std::atomic<std::uint64_t> ends_ok{0}, ends_killed{0}, ends_unstarted{0};
  void count_end(const tcb* t) noexcept;
  // drain() and shutdown() wait on drain_word until live() is 0; finish() bumps it.
  alignas(64) std::atomic<int> drain_waiters{0};
  std::atomic<std::uint32_t> drain_word{0};

  // Preemption (preempt.cpp).
  struct monitor_deleter {
    void operator()(monitor* m) const noexcept;  // preempt.cpp: stops and joins the thread
  };
  std::unique_ptr<monitor, monitor_deleter> mon;
  mutable std::mutex mon_mu;  // guards `mon` (start, stop, stats)
  // The monitor's counts, kept here so that stats() still has them after shutdown().
  std::atomic<std::uint64_t> preempt_signals{0}, stalls_reported{0};

  // The netpoller (netpoll.cpp): null until the first I/O wait; holds one reference, dropped by
  // the destructor once the workers are gone.
  std::atomic<netpoller*> np_{nullptr};
  // Tasklets waiting for something outside the scheduler (external_wait: a blocking-pool
  // thread). seq_cst: see quiescent().
  std::atomic<int> external_waits{0};

  // Deadlock detection (deadlock.cpp).
  std::mutex deadlock_mu;
  std::uint64_t deadlock_reported_runs = UINT64_MAX;  // guarded by deadlock_mu
  std::string deadlock_report;                        //   the report of that quiet period
  std::vector<const tcb*> deadlock_notified;          //   and who got deadlock_error
};

/// current_worker() is the worker the calling thread runs, or null. Never inlined: a tasklet may
/// resume on another thread, and a cached thread_local address would then be wrong. worker.cpp.
std::uint64_t chaos_seed(const options& o);  // options::chaos, else STACKLESS_CHAOS
worker* current_worker() noexcept;
void set_current_worker(worker*) noexcept;

/// live_schedulers() lists every scheduler_impl alive in the process (guarded by
/// live_schedulers_mu()). plain_thread_will_block() starts the worker thread of each one that
/// nothing drives yet: a plain thread that blocks on a channel may be waiting for any of them.
/// lifecycle.cpp.
std::mutex& live_schedulers_mu();
std::vector<scheduler_impl*>& live_schedulers();
void plain_thread_will_block();
/// plain_thread_check_fork() throws usage_error while a scheduler inherited across fork() is alive
/// in this process (a plain thread about to wait may be waiting for one of its tasklets).
void plain_thread_check_fork();

/// free_tcb_cache() moves a worker's cached control blocks to the shared lists (alloc.cpp).
void free_tcb_cache(worker& w) noexcept;

/// take_pause() is called where a RUNNING tasklet gives up its worker (yield, a wake after a
/// park): if pause() asked for it meanwhile, it becomes PAUSED instead of runnable (true).
/// A killed tasklet is never paused: its kill must be able to finish. tasklet.cpp.
bool take_pause(tcb* t) noexcept;

/// release() drops one reference on t; the last one deletes it (scheduler.cpp).
void release(tcb* t) noexcept;
/// acquire() takes a reference on t. Relaxed: the caller already holds one (or the registry's
/// lock), so t cannot go meanwhile; release()'s acq_rel orders the uses before the delete.
inline void acquire(tcb* t) noexcept { t->refs.fetch_add(1, std::memory_order_relaxed); }

/// destroy_locals() destroys the tasklet_local values of t, which is ending (local.cpp).
void destroy_locals(tcb* t) noexcept;

/// tasklet_entry() is where every tasklet starts (worker.cpp).
void tasklet_entry(void* w);
/// switch_out() suspends the calling tasklet back to its worker's scheduler side. `pin`: it is
/// hard-preempted and must resume on this worker (tcb::hard_pinned); any other switch unpins.
/// worker.cpp.
void switch_out(tcb* t, switch_why why, bool pin = false);

/// soft_preempt() honours a preemption request at a safe point of the running tasklet t on w:
/// unless t is in an atomic scope, it fires due timers (a sleeper behind a hog must become
/// runnable), then yields to the back of the queue (preempt.cpp).
void soft_preempt(worker* w, tcb* t);
/// attach_thread() / detach_thread(): the calling thread starts / stops running worker w's loop
/// (publishes its thread_block and tid for the monitor). preempt.cpp.
void attach_thread(worker& w) noexcept;
void detach_thread(worker& w) noexcept;
/// scope_changed(): t (running here) entered or left its outermost atomic or preemptible scope.
void scope_changed(tcb* t);
/// monitor_counts(): fills the monitor's fields of `out` (preempt.cpp: it reads the monitor).
void monitor_counts(const scheduler_impl& s, scheduler_stats& out);

template <class F>
void scheduler_impl::for_each_live(F&& f) const {
  std::vector<tcb*> all;
  for (unsigned i = 0; i <= nworkers; ++i) {
    registry_shard& s = shards[i];
    s.lk.lock();
    for (tcb* t = s.head; t; t = t->reg_next) {
      acquire(t);
      all.push_back(t);
    }
    s.lk.unlock();
  }
  for (tcb* t : all) {
    f(t);
    release(t);
  }
}

}  // namespace stackless::detail
