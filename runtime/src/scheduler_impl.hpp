// runtime/src/scheduler_impl.hpp — the scheduler's internals: workers, queues, registry, timers.
//
// Glossary: a *tasklet* (Go's G) runs on a *worker* (Go's M+P: one OS thread with a local run
// queue); the *scheduler* owns the workers. A tasklet *parks* (park.cpp) and is *woken*; it is
// *runnable* while it sits in a run queue: a worker's runnext slot, its deque, its yield list,
// its inbox, or the scheduler's injection queue.
//
// Tasklet lifecycle (tcb::state), one atomic word:
//
//   RUNNABLE ──pop──▶ RUNNING ──yield──▶ RUNNABLE
//      │  ▲              │──park────▶ PARKED ──wake──▶ RUNNABLE
//    pause resume        └──end─────▶ DEAD
//      ▼  │
//   PAUSED_QUEUED ──pop──▶ PAUSED ──resume──▶ RUNNABLE (pushed again)
//
//  - RUNNABLE: in exactly one run queue. PAUSED_QUEUED: still physically in a queue but must not
//    run; the worker that pops it turns it into PAUSED and drops it.
//  - The pop CAS (RUNNABLE → RUNNING) and the pause CAS (RUNNABLE → PAUSED_QUEUED) decide
//    between a worker and pause(); resume() CASes PAUSED_QUEUED → RUNNABLE (nothing to push) or
//    PAUSED → RUNNABLE (push it).
//  - PARKED is stored by the worker *before* it publishes the park (door phase PARKED), so the
//    waker's RUNNABLE is always the later store (park.cpp).
//  - DEAD is stored (release) after the tasklet's outcome is written; readers acquire.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "deque.hpp"
#include "stackless/runtime/internal/futex.hpp"
#include "injection.hpp"
#include "stackless/runtime/internal/park.hpp"
#include "stack.hpp"
#include "timer_heap.hpp"
#include "stackless/runtime/detail/preempt.hpp"
#include "stackless/runtime/scheduler.hpp"

namespace stackless::detail {

enum tstate : std::uint32_t {
  S_RUNNABLE = 1,
  S_RUNNING = 2,
  S_PARKED = 3,
  S_PAUSED = 4,
  S_PAUSED_QUEUED = 5,
  S_DEAD = 6,
};

// tcb::irq bits.
inline constexpr std::uint32_t IRQ_KILLED = 1;  // sticky
inline constexpr std::uint32_t IRQ_EXC = 2;     // `pending` holds an exception
inline constexpr std::uint32_t IRQ_PAUSE = 4;   // pause() asked while it was running

/// error_sink is the scheduler's on_error, reference counted so that a failed tasklet whose last
/// handle is dropped after the scheduler is gone can still report.
struct error_sink {
  std::atomic<int> refs{1};
  std::function<void(const error_report&)> fn;
  void acquire() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
};

/// switch_why: why the tasklet in worker::prev left its stack.
enum class switch_why : std::uint8_t { yield, park, exit, overrun };

struct timer_entry {
  std::int64_t deadline;
  tcb* t;             // holds a reference
  std::uint64_t gen;  // the park it belongs to
};

class monitor;  // preempt.cpp

/// function_ref_until is a non-owning reference to a callable bool(std::int64_t until).
class function_ref_until {
 public:
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, function_ref_until>>>
  function_ref_until(F&& f) noexcept  // NOLINT: implicit, for lambdas at the call site
      : obj_(const_cast<void*>(static_cast<const void*>(&f))),
        call_([](void* o, std::int64_t u) { return (*static_cast<std::remove_reference_t<F>*>(o))(u); }) {}
  bool operator()(std::int64_t until) const { return call_(obj_, until); }

 private:
  void* obj_;
  bool (*call_)(void*, std::int64_t);
};

/// pinned(): t must run on t->home only (an atomic scope, or hard-preempted).
inline bool pinned(const tcb* t) noexcept { return t->atomic_depth > 0 || t->hard_pinned; }

struct padded_counter {
  alignas(64) std::atomic<std::uint64_t> v{0};
};

/// worker: one OS thread (or the thread inside run()/run_for()) and its local queues.
struct alignas(64) worker {
  worker(scheduler_impl* s, unsigned i, std::size_t cap) : sched(s), index(i), deque(cap) {}

  scheduler_impl* const sched;
  const unsigned index;

  // --- owner-only (the worker's thread) --------------------------------------------------------
  context sched_ctx;            // the worker thread's own stack
  tcb* current = nullptr;       // the tasklet running now (also read by the overflow handler)
  tcb* prev = nullptr;                 // the tasklet that just left its stack, and
  switch_why why = switch_why::yield;  //   why: after_switch() finishes its transition
  function_ref* unlock = nullptr;      //   the park's unlock step
  tcb* yield_head = nullptr;    // yield list: FIFO of tasklets that yielded
  tcb* yield_tail = nullptr;
  unsigned runnext_streak = 0;  // tasklets run from runnext in a row
  std::uint32_t tick = 0;
  std::uint64_t rng = 0;
  bool spinning = false;
  std::int64_t slice_ns = 0;    // run_for(): the slice; 0 otherwise
  tcb* overran = nullptr;       // run_for(): the tasklet that overran
  std::vector<stack*> stack_cache;
  std::atomic<std::size_t> stack_cache_size{0};  // its size, for stats() on other threads
  std::uint64_t id_next = 0, id_end = 0;  // block of tasklet ids
  static constexpr std::size_t alloc_classes = 32;      // control blocks up to 2 KiB
  static constexpr std::size_t alloc_cache_max = 256;   // blocks per class
  struct free_list {
    void* head = nullptr;
    std::size_t count = 0;
  };
  free_list tcb_free[alloc_classes];  // alloc.cpp

  // --- shared ------------------------------------------------------------------------------
  alignas(64) std::atomic<tcb*> runnext{nullptr};  // owner exchanges; thieves steal it last
  ws_deque<tcb> deque;
  alignas(64) spinlock inbox_lk;  // guards the inbox list
  tcb* inbox_head = nullptr;
  tcb* inbox_tail = nullptr;
  std::atomic<bool> inbox_nonempty{false};
  alignas(64) std::atomic<std::uint32_t> park_word{0};  // 0 empty, 1 notified (futex)
  // The futex timeout this worker sleeps with in park_worker() (INT64_MAX: none); INT64_MIN while
  // it is not asleep. add_timer() reads it to see whether a new timer is covered by a sleeper.
  std::atomic<std::int64_t> sleeping_until{INT64_MIN};
  std::atomic<bool> idle{false};                       // on the idle list; guarded by idle_mu to change

  // --- timers (scheduler.cpp): the deadlines of the parks of tasklets that ran here. Any worker
  // may fire them (an idle one fires a busy one's), so they are guarded by a lock. ------------
  alignas(64) spinlock timer_lk;
  heap4<timer_entry> timers;               // guarded by timer_lk
  std::size_t timers_purge_at = 64;        // guarded by timer_lk
  std::atomic<std::int64_t> next_deadline{INT64_MAX};  // timers.min_deadline(), for lock-free peeks

  // --- stats: written by the owner (relaxed), read by stats() ------------------------------
  std::atomic<std::uint64_t> runs{0}, steals{0}, steal_attempts{0}, parks{0}, spins{0},
      inbox_taken{0}, injected{0}, overflows{0}, spawned{0}, stacks_taken{0}, stacks_released{0};

  // --- preemption (preempt.cpp) -------------------------------------------------------------
  // The thread running this worker publishes its thread_block and its tid while it runs the
  // loop (release; the monitor acquires), and clears them (null) before it leaves.
  thread_block* block = nullptr;  // owner's copy
  alignas(64) std::atomic<thread_block*> block_pub{nullptr};
  std::atomic<int> tid{0};
  // The id of the tasklet running now (0: none), stored (relaxed) at every switch-in; with `runs`
  // it lets the monitor tell "the same tasklet, still running" from "switched meanwhile".
  std::atomic<std::uint64_t> running_id{0};
  std::atomic<std::int64_t> slice_pub{0};  // run_for()'s slice while it pumps (0: none)
  std::atomic<bool> has_yielders{false};  // yield list non-empty (relaxed hint for the monitor)
  std::atomic<std::uint64_t> soft_preempts{0}, hard_preempts{0}, refused_disabled{0},
      refused_atomic{0}, refused_not_preemptible{0}, refused_runtime_code{0}, refused_stack{0};

  std::thread thread;
};

/// registry_shard: the live tasklets spawned on one worker (or, the last shard, from plain
/// threads). Used by shutdown() to kill them and by the deadlock report to list them.
struct alignas(64) registry_shard {
  spinlock lk;
  tcb* head = nullptr;      // guarded by lk
  std::uint64_t count = 0;  // guarded by lk (atomic only so stats() may peek)
};

class scheduler_impl {
 public:
  explicit scheduler_impl(options o);
  ~scheduler_impl();

  // Lifecycle (scheduler.cpp).
  void start_threads();         // workers > 1: at construction; workers == 1: lazily
  void ensure_started();        // a plain thread is about to wait: make sure someone runs
  void run_pumped(std::int64_t slice_ns, tcb** overran);
  void shutdown();
  void drain();
  scheduler_stats stats() const;

  // Submitting and waking (scheduler.cpp).
  void submit(tcb* t);          // a new tasklet
  void make_runnable(tcb* t, bool to_back = false);  // a woken or resumed tasklet
  void inject(tcb* t);          // from outside: injection queue + wake a worker
  void wake_one();              // Go's wakep(): unpark an idle worker if none is spinning
  /// nudge_sleepers(): a timer due at `deadline` was just armed; unless a sleeping worker wakes by
  /// then anyway, unpark one so that it sleeps again with the new deadline (Go's wakeNetPoller).
  void nudge_sleepers(std::int64_t deadline);
  void finish(worker& w, tcb* t);  // a tasklet ended: release everything (on the worker)
  void report(tcb* t, std::exception_ptr e, std::string what);

  // Registry.
  void register_tasklet(tcb* t, unsigned shard);
  void unregister_tasklet(tcb* t);
  std::uint64_t live() const;
  template <class F>
  void for_each_live(F&& f) const;  // f(tcb*) with a reference held; outside the shard locks

  // Timers (scheduler.cpp): one 4-ary heap per worker (timer_heap.hpp).
  /// add_timer() arms a timeout for park `gen` of t, on the calling worker's heap.
  void add_timer(std::int64_t deadline, tcb* t, std::uint64_t gen);
  /// next_deadline() is the earliest deadline on any worker (INT64_MAX: none).
  std::int64_t next_deadline() const noexcept;
  /// fire_timers() fires every due timer of every worker; true if it woke someone.
  bool fire_timers(std::int64_t now);
  bool fire_worker_timers(worker& v, std::int64_t now);
  /// purge_timers_locked(): drops v's entries whose park already ended (they would only fire
  /// and lose); returns how many live ones remain. Called with v.timer_lk held.
  std::size_t purge_timers_locked(worker& v);
  std::size_t live_timers();

  // Deadlock detection.
  std::uint64_t total_runs() const;
  bool quiescent();
  /// check_deadlock(): `since` is total_runs() when the caller started watching; returns the
  /// report when the scheduler has been quiescent since then with every live tasklet parked. The
  /// first caller to find a given deadlock delivers deadlock_error to the tasklets parked in
  /// join(); later callers get the same report. *target_notified (optional) tells whether
  /// `target` was one of those tasklets (with no target: whether there were any).
  std::string check_deadlock(std::uint64_t since, const tcb* target = nullptr,
                             bool* target_notified = nullptr);
  /// watch_end is how watch_deadlock() ended.
  enum class watch_end : std::uint8_t { done, timed_out, deadlock };
  /// watch_deadlock() is the wait of a plain thread that waits for this scheduler's tasklets (a
  /// join, drain()): it calls wait(until) — which returns true once the caller's wait is over —
  /// with `until` at most one deadlock grace period away, and between waits checks for a
  /// deadlock. It ends `done`, `timed_out` (`deadline` passed), or `deadlock` (every tasklet is
  /// parked and nothing can wake one, and no tasklet was told: with a target, `target` itself
  /// was not; *report holds the report).
  watch_end watch_deadlock(function_ref_until wait, std::int64_t deadline, const tcb* target,
                           std::string* report);

  // Worker loop (worker.cpp).
  void worker_main(worker& w);
  tcb* find_runnable(worker& w, bool may_park);  // everything, then park; returns it claimed
  tcb* search(worker& w, bool may_park);          //   its loop
  tcb* next_local(worker& w);                     // local queues only; claimed; never blocks
  void launch(worker& w, tcb* t);                 // t is about to be switched to on w
  void expose_yielders(worker& w);                // yield list → deque, where thieves see it
  void inbox_push(worker& home, tcb* t);          // a pinned tasklet, runnable again
  void wake_worker(worker& v);                    // unpark v if it is idle
  tcb* fair_pick(worker& w);
  tcb* steal_round(worker& w, bool take_runnext);
  tcb* injected_batch(worker& w);
  void push_overflow(worker& w, tcb* t);
  void after_switch(worker& w);                   // finish what worker::prev started
  void run_tasklet(worker& w, tcb* t);
  void push_local(worker& w, tcb* t, bool notify);
  void push_runnext(worker& w, tcb* t);  // t runs next on w; the one it displaces is queued
  void push_back_local(worker& w, tcb* t);  // t runs after everything runnable on w (yield list)
  bool work_anywhere() const;
  void park_worker(worker& w);
  void unpark(worker& w);

  options opts;
  unsigned nworkers = 1;
  std::vector<std::unique_ptr<worker>> workers;
  injection_queue<tcb*> injection;
  std::unique_ptr<registry_shard[]> shards;  // nworkers + 1
  stack_pool stacks;
  error_sink* sink;

  alignas(64) std::atomic<int> nspinning{0};
  alignas(64) std::atomic<int> nidle{0};
  std::mutex idle_mu;
  std::vector<worker*> idle_list;  // guarded by idle_mu

  // 0: no worker thread (run()/run_for() may drive worker 0); 1: a run() is driving it;
  // 2: worker threads started.
  enum : int { M_UNOWNED = 0, M_PUMPED = 1, M_THREADED = 2 };
  std::atomic<int> mode{M_UNOWNED};
  std::mutex lifecycle_mu;
  std::atomic<bool> closed{false};    // shutdown() began: spawns are born killed
  std::atomic<bool> stopping{false};  // workers must exit
  bool shut_down = false;             // guarded by lifecycle_mu

  std::atomic<std::uint64_t> plain_spawned{0};

  alignas(64) std::atomic<int> drain_waiters{0};
  std::atomic<std::uint32_t> drain_word{0};


  // Preemption (preempt.cpp): the monitor thread, when quantum > 0 or a run_for() needed it.
  struct monitor_deleter {
    void operator()(monitor* m) const noexcept;  // preempt.cpp: stops and joins the thread
  };
  std::unique_ptr<monitor, monitor_deleter> mon;
  mutable std::mutex mon_mu;  // guards `mon` (start, stop, stats)
  // The monitor's counts, kept here so that stats() still has them after shutdown().
  std::atomic<std::uint64_t> preempt_signals{0}, stalls_reported{0};
  void start_monitor();
  void stop_monitor() noexcept;

  std::mutex deadlock_mu;
  std::uint64_t deadlock_reported_runs = UINT64_MAX;  // guarded by deadlock_mu
  std::string deadlock_report;                        //   the report of that quiet period
  std::vector<const tcb*> deadlock_notified;          //   and who got deadlock_error
};

/// current_worker() is the worker the calling thread runs, or null. Never inlined: a tasklet may
/// resume on another thread, and a cached thread_local address would then be wrong.
worker* current_worker() noexcept;
void set_current_worker(worker*) noexcept;

/// live_schedulers() lists every scheduler_impl alive in the process (guarded by
/// live_schedulers_mu()). plain_thread_will_block() starts the worker thread of each one that
/// nothing drives yet: a plain thread that blocks on a channel may be waiting for any of them.
std::mutex& live_schedulers_mu();
std::vector<scheduler_impl*>& live_schedulers();
void plain_thread_will_block();

/// free_tcb_cache() returns a worker's cached control blocks to malloc (alloc.cpp).
void free_tcb_cache(worker& w) noexcept;

/// take_pause() is called where a RUNNING tasklet gives up its worker (yield, a wake after a
/// park): if pause() asked for it meanwhile, it becomes PAUSED instead of runnable (true).
/// A killed tasklet is never paused: its kill must be able to finish.
bool take_pause(tcb* t) noexcept;

/// release() drops one reference on t; the last one deletes it.
void release(tcb* t) noexcept;
inline void acquire(tcb* t) noexcept { t->refs.fetch_add(1, std::memory_order_relaxed); }

/// destroy_locals() destroys the tasklet_local values of t, which is ending (local.cpp).
void destroy_locals(tcb* t) noexcept;

/// tasklet_entry() is where every tasklet starts (worker.cpp).
void tasklet_entry(void* w);
/// switch_out() suspends the calling tasklet back to its worker's scheduler side. `pin`: it is
/// hard-preempted and must resume on this worker (tcb::hard_pinned); any other switch unpins.
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
/// monitor_counts(): fills the monitor's fields of `out`.
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
