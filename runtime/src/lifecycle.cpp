// SPDX-License-Identifier: Apache-2.0
// runtime/src/lifecycle.cpp — a scheduler's life: construction, starting the worker threads (at
// once, or lazily for a single worker), run()/run_for() pumping worker 0 on the caller's thread,
// drain(), shutdown and destruction; and the process-wide list of live schedulers.
//
// Who drives the workers (scheduler_impl::mode):
//   M_UNOWNED   no worker thread yet (workers == 1 only): run()/run_for() may pump worker 0 on
//               the calling thread; a plain thread about to wait starts the thread instead
//               (ensure_started(), plain_thread_will_block()).
//   M_PUMPED    a run()/run_for() is pumping worker 0 right now.
//   M_THREADED  the worker threads run (for good: run() then refuses).
// M_UNOWNED → M_PUMPED and M_UNOWNED → M_THREADED are CASes, so a pump and a lazy start never
// both take worker 0; M_PUMPED → M_UNOWNED is the pump's release store when it returns.
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
// Pump mode (run_for(slice)): `slice` bounds the whole call, as Stackless's watchdog did, not
// only one tasklet's turn. Invariant: a pump with a deadline (worker_owned::pump_deadline) hands
// worker 0 back to its loop at the first switch after the deadline (leave(), worker.cpp: no
// direct switch to the next tasklet), the loop checks the deadline before it picks a tasklet, and
// the monitor asks the running tasklet to stop at the deadline (preempt.cpp) — so run_for()
// returns within the slice plus a monitor tick, whatever the tasklets do, unless one runs with
// no safe point outside a preemptible scope. Rejected: relying on the monitor alone (it watches
// one tasklet's turn; two tasklets that switch all the time never overrun one).
// host_pump(): a plain thread that waits for a tasklet (kill(), join()) of a scheduler a host
// pumps (host_driven, still M_UNOWNED) becomes worker 0 itself until the tasklet has ended,
// instead of starting the worker thread — which would end pump mode for good (run_for() then
// throws). pump_target makes the tasklet's end hand worker 0 back to the waiter at once.
//
// fork(): a pthread_atfork child handler marks every live scheduler `forked`; the child has none
// of its threads (workers, monitor), and their locks may stay held forever. Every use then throws
// usage_error; destroying it (destroy_scheduler(), also when the child returns from main) only
// takes it off the live list and leaks the rest — memory, stacks, control blocks — which exit or
// exec reclaims. Rejected: joining or re-creating the threads (their tasklets were mid-switch on
// threads that no longer exist); getpid() on every call (a system call on hot paths).
#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include "context.hpp"
#include "netpoller.hpp"
#include "scheduler_impl.hpp"
#include "stackless/runtime/internal/faults.hpp"
#include "trace.hpp"

namespace stackless::detail {

namespace {
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
  std::string label = "#";
  label += std::to_string(r.id);
  if (r.name.empty()) {
    label += " (unnamed)";
  } else {  // appended piece by piece: GCC 12's -Wrestrict misfires on " '" + name + "'"
    label += " '";
    label += r.name;
    label += '\'';
  }
  append_spawn_site(label, r.spawned_at);
  std::fprintf(stderr, "stackless: tasklet %s: %s\n", label.c_str(), what.c_str());
}
}  // namespace

scheduler_impl::scheduler_impl(options o)
    : opts(std::move(o)),
      stacks(checked_stack_size(opts.stack_size), opts.stack_guard),
      sink(new error_sink) {
  nworkers = resolve_workers(opts.workers);
  host_clock = opts.clock == clock_source::host;
  game_ns.store(now_ns(), std::memory_order_relaxed);  // relaxed: before anyone can see us
  // A constructor that throws runs no destructor: what it made by hand goes back here (the
  // members, workers included, are destroyed by the language; start_threads() has joined every
  // thread it started before it throws).
  try {
    const std::size_t cap = opts.local_queue_capacity;
    if (cap < 4 || (cap & (cap - 1)) != 0)
      throw std::invalid_argument(
          "stackless: options::local_queue_capacity must be a power of two >= 4");
    sink->fn = opts.on_error ? opts.on_error : default_on_error;
    if (opts.dump_signal == 0)
      if (const char* e = std::getenv("STACKLESS_DUMP_SIGNAL"); e && *e)
        opts.dump_signal = parse_signal(e);
    if (opts.dump_signal != 0) install_dump_signal(opts.dump_signal);
    shards.reset(new registry_shard[nworkers + 1]);
    chaos = chaos_seed(opts);
    for (unsigned i = 0; i < nworkers; ++i) {
      workers.push_back(std::make_unique<worker>(this, i, cap));
      // Under chaos the seed alone decides: the same seed replays the same choices.
      const std::uint64_t salt = chaos ? chaos : reinterpret_cast<std::uintptr_t>(this);
      workers.back()->rng = 0x9e3779b97f4a7c15ULL * (i + 1) ^ salt;
      workers.back()->chaos_rng = (0xd1b54a32d192ed03ULL * (i + 1) ^ salt) | 1;
    }
    install_overflow_handler();
    trace = make_tracer(*this);  // before any worker thread starts (trace.cpp)
    if (nworkers > 1) start_threads();
  } catch (...) {
    trace_destroy(std::exchange(trace, nullptr));
    sink->release();
    throw;
  }
  // relaxed: chaos_point()'s hint (scheduling.hpp).
  if (chaos) chaos_schedulers.fetch_add(1, std::memory_order_relaxed);
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
  // relaxed: a hint (channel_event()); nothing of ours runs any more.
  if (channel_cb) channel_callback_schedulers.fetch_sub(1, std::memory_order_relaxed);
  trace_destroy(std::exchange(trace, nullptr));  // finished by shutdown(); frees the rings
  if (chaos) chaos_schedulers.fetch_sub(1, std::memory_order_relaxed);  // relaxed: a hint
  for (auto& w : workers) {
    stacks.put(w->stack_cache.data(), w->stack_cache.size());
    free_tcb_cache(*w);
  }
  tcb* t;
  while (injection.try_dequeue(t)) release(t);  // cannot happen after shutdown; belt and braces
  for (auto& w : workers) {                     // stale entries of ended parks
    w->timers.for_each([](const timer_entry& e) { release(e.t); });
    w->timers.clear();
  }
  // Registrations that outlive us keep the netpoller (and its epoll fd) until they end.
  if (netpoller* np = np_.load(std::memory_order_acquire)) np->release();  // pairs: netpoll()
  sink->release();
}

void scheduler_impl::start_threads() {
  // release: pairs with the acquire loads of mode (ensure_started(), quiescent(), shutdown()):
  // who sees M_THREADED also sees the scheduler as constructed.
  mode.store(M_THREADED, std::memory_order_release);
  std::size_t started = 0;
  try {
    if (opts.quantum.count() > 0) start_monitor();
    for (auto& w : workers) {
      worker* wp = w.get();
      if (fault_now(fault::thread_start))  // a test's injected failure (faults.hpp)
        throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again));
      wp->thread = std::thread([this, wp] {
        std::string n = opts.name + "-" + std::to_string(wp->index);
        pthread_setname_np(pthread_self(), n.substr(0, 15).c_str());
        worker_main(*wp);
      });
      ++started;
    }
  } catch (...) {  // system_error or bad_alloc: the process is out of threads or address space
    stop_monitor();
    if (started > 0) {
      // The constructor's case (workers > 1): the scheduler is not made. The threads that did
      // start have nothing to run; they see `stopping`, or the unpark, as at shutdown (step 3).
      stopping.store(true, std::memory_order_seq_cst);  // pairs as in shutdown()
      for (auto& w : workers) unpark(*w);
      for (auto& w : workers)
        if (w->thread.joinable()) w->thread.join();
    } else {
      // Nothing started (also a lazy start of a single worker): worker 0 is nobody's again,
      // and the caller may try again later. release: as the end of run_pumped().
      mode.store(M_UNOWNED, std::memory_order_release);
    }
    const std::string what = "stackless: could not start the worker threads of scheduler '" +
                             opts.name + "' (" + std::to_string(started) + " of " +
                             std::to_string(nworkers) + " started)";
    try {
      throw;
    } catch (const std::system_error& e) {
      throw std::system_error(e.code(), what);
    } catch (const std::bad_alloc&) {
      throw std::system_error(std::make_error_code(std::errc::not_enough_memory), what);
    }
  }
}

// ---- the live list and fork() -----------------------------------------------------------------

namespace {
// How many schedulers inherited across fork() are still alive (0 in every parent). Relaxed: the
// child handler writes it while the child has one thread; destroy_scheduler() on that thread.
std::atomic<int> g_inherited{0};

// The pthread_atfork handlers: the live list's lock is held across fork(), so the child's copy
// of it is consistent and unlocked; the child marks every scheduler on it as inherited.
void atfork_prepare() { live_schedulers_mu().lock(); }
void atfork_parent() { live_schedulers_mu().unlock(); }
void atfork_child() {
  int n = 0;
  for (scheduler_impl* s : live_schedulers()) {
    s->forked.store(true, std::memory_order_relaxed);  // relaxed: one thread in the child
    ++n;
  }
  g_inherited.store(n, std::memory_order_relaxed);
  live_schedulers_mu().unlock();
}

constexpr const char* forked_msg =
    "stackless: scheduler inherited across fork(): the child has none of its threads; it may "
    "only exit, exec or destroy it";
}  // namespace

std::mutex& live_schedulers_mu() {
  static std::mutex mu;
  // Once per process, before the first scheduler is listed (its constructor takes this lock).
  [[maybe_unused]] static const int atfork =
      pthread_atfork(&atfork_prepare, &atfork_parent, &atfork_child);
  return mu;
}
std::vector<scheduler_impl*>& live_schedulers() {
  static std::vector<scheduler_impl*> v;
  return v;
}
// gdb's `info tasklets` starts from that vector (tools/gdb/stackless.py). This reference keeps
// gdb_autoload.cpp's object, which carries the script in .debug_gdb_scripts, in every static link.
extern "C" const char stackless_gdb_autoload;
[[gnu::used]] static const char* const keep_gdb_autoload = &stackless_gdb_autoload;

void plain_thread_will_block() {
  // A plain thread is about to block on something a tasklet may have to end (a channel, a
  // lock): every single-worker scheduler that nothing drives yet gets its thread now (not one
  // inherited across fork(): its tasklets never run again).
  std::lock_guard g(live_schedulers_mu());
  for (scheduler_impl* s : live_schedulers())
    if (!s->forked.load(std::memory_order_relaxed)) s->ensure_started();  // relaxed: see forked
}

void plain_thread_check_fork() {
  if (g_inherited.load(std::memory_order_relaxed) > 0) throw usage_error(forked_msg);
}

void scheduler_impl::check_not_forked() const {
  if (forked.load(std::memory_order_relaxed)) throw usage_error(forked_msg);
}

void scheduler_impl::ensure_started() {
  // acquire: pairs with the release stores of mode (start_threads(), the end of run_pumped()).
  // A stale M_UNOWNED only costs the trip through the lock and the CAS below.
  if (mode.load(std::memory_order_acquire) != M_UNOWNED) return;
  std::lock_guard g(lifecycle_mu);
  start_unowned_locked();
}

void scheduler_impl::start_unowned_locked() {  // lifecycle_mu held
  if (stopping.load()) return;
  int m = M_UNOWNED;  // a CAS: run()/run_for() may be taking worker 0 for a pump right now
  // acq_rel: pairs with run_pumped()'s CAS on the same word — exactly one of them takes worker 0.
  if (mode.compare_exchange_strong(m, M_THREADED, std::memory_order_acq_rel)) start_threads();
}

// ---- run() / run_for(): pumping worker 0 on the calling thread -------------------------------

namespace {
// take_pump() is run_pumped()'s entry check: the caller may pump worker 0 now (mode becomes
// M_PUMPED), or learns why not.
void take_pump(scheduler_impl& s) {
  s.check_not_forked();
  if (current_worker())
    throw usage_error("stackless: run()/run_for() called from inside a tasklet or worker");
  if (s.nworkers != 1)
    throw usage_error(
        "stackless: run()/run_for() need options::workers == 1; with worker threads use drain()");
  int m = scheduler_impl::M_UNOWNED;
  // acq_rel: pairs with ensure_started()'s CAS and with the release store that ended the last
  // pump — this pump sees everything the previous driver of worker 0 wrote.
  if (!s.mode.compare_exchange_strong(m, scheduler_impl::M_PUMPED, std::memory_order_acq_rel))
    throw usage_error(m == scheduler_impl::M_PUMPED
                          ? "stackless: run() is already running on another thread"
                          : "stackless: run(): the worker thread was started (by a join, "
                            "block_on or drain from a plain thread); use drain()");
}
}  // namespace

namespace {
// pump_session: the calling thread is worker 0 while it lives (the pump was taken before).
class pump_session {
 public:
  pump_session(scheduler_impl& s, std::int64_t slice_ns, tcb* target) : s_(s), w_(*s.workers[0]) {
    set_current_worker(&w_);
    context_init_thread(w_.sched_ctx);
    w_.slice_ns = slice_ns;
    w_.pump_deadline = slice_ns > 0 ? add_saturating(now_ns(), slice_ns) : 0;
    w_.pump_target = target;
    // relaxed (slice_pub, deadline_pub): published by attach_thread()'s release store of
    // block_pub, which the monitor acquires.
    w_.slice_pub.store(slice_ns, std::memory_order_relaxed);
    w_.deadline_pub.store(w_.pump_deadline, std::memory_order_relaxed);
    w_.overran = nullptr;
    if (slice_ns > 0 || s.opts.quantum.count() > 0) s.start_monitor();  // it watches the slice
    attach_thread(w_);
  }
  ~pump_session() {
    detach_thread(w_);
    // relaxed: hints for the monitor; detach_thread() has already withdrawn the block.
    w_.slice_pub.store(0, std::memory_order_relaxed);
    w_.deadline_pub.store(0, std::memory_order_relaxed);
    w_.overran = nullptr;
    w_.slice_ns = 0;
    w_.pump_deadline = 0;
    w_.pump_target = nullptr;
    set_current_worker(nullptr);
    // release: pairs with the acquire CAS of the next pump or of ensure_started(), which then
    // sees worker 0 as this pump left it.
    s_.mode.store(scheduler_impl::M_UNOWNED, std::memory_order_release);
  }
  pump_session(const pump_session&) = delete;
  pump_session& operator=(const pump_session&) = delete;

  worker& w() { return w_; }
  bool past_deadline() const { return w_.pump_deadline && now_ns() >= w_.pump_deadline; }

 private:
  scheduler_impl& s_;
  worker& w_;
  thread_altstack alt_;  // where the preemption signal's handler runs (SA_ONSTACK)
};
}  // namespace

void scheduler_impl::run_pumped(std::int64_t slice_ns, tcb** overran) {
  take_pump(*this);
  pump_session ps(*this, slice_ns, nullptr);
  worker& w = ps.w();
  // The deadline is checked before each tasklet but the first (leave() hands worker 0 back
  // after it): a pump whose slice passed while it started (the monitor thread's creation, a
  // loaded machine) still gives one tasklet its turn, so a host calling run_for() in a loop
  // always makes progress.
  for (bool first = true; first || !ps.past_deadline(); first = false) {
    tcb* t = find_runnable(w, false);
    if (!t) {
      // Out of work: the scheduler is idle, as when its last worker sleeps (idle.cpp). A
      // run_for() trims a batch per call, not all at once (its host waits for it).
      if (stacks.has_excess()) stacks.release_excess(slice_ns > 0 ? 64 : SIZE_MAX);
      break;
    }
    run_tasklet(w, t);
    if (w.overran) break;
  }
  if (overran) *overran = w.overran;
}

bool scheduler_impl::host_pumpable() const noexcept {
  // relaxed (host_driven, forked): see their declarations. acquire (mode): pairs with the release
  // stores of mode; a stale M_UNOWNED only makes take_pump() below fail.
  return nworkers == 1 && host_driven.load(std::memory_order_relaxed) &&
         !forked.load(std::memory_order_relaxed) && !current_worker() &&
         mode.load(std::memory_order_acquire) == M_UNOWNED;
}

bool scheduler_impl::host_pump(tcb* target, void (*first)(tcb*), std::int64_t deadline) {
  if (!host_pumpable()) return false;
  int m = M_UNOWNED;
  // acq_rel: as take_pump()'s CAS; a failure (someone else pumps, or started the thread) leaves
  // the caller to wait the ordinary way.
  if (!mode.compare_exchange_strong(m, M_PUMPED, std::memory_order_acq_rel)) return false;
  pump_session ps(*this, 0, target);
  worker& w = ps.w();
  // first() makes target runnable here (a kill's delivery): on w's deque, taken next (LIFO) —
  // unless the next pick is the fairness tick's, which would take the oldest; skip that tick.
  if (first) first(target);
  if ((w.tick + 1) % 61 == 0) ++w.tick;  // worker.cpp's fairness_tick
  // acquire: pairs with the release store of DEAD in finish() (wake_joiners()).
  while (target->state.load(std::memory_order_acquire) != S_DEAD) {
    if (deadline != no_deadline && now_ns() >= deadline) break;
    tcb* t = find_runnable(w, false);
    if (!t) break;  // target waits for something outside the scheduler
    run_tasklet(w, t);
  }
  return true;
}

// ---- drain() and shutdown() ------------------------------------------------------------------

void scheduler_impl::drain() {
  check_not_forked();
  if (current_worker())
    throw usage_error("stackless: drain() called from a tasklet; it would wait for itself");
  ensure_started();
  std::string report;
  if (wait_all_ended(no_deadline, &report) == watch_end::deadlock) throw deadlock_error(report);
}

scheduler_impl::watch_end scheduler_impl::wait_all_ended(std::int64_t deadline,
                                                         std::string* report) {
  // seq_cst: pairs with the seq_cst load of drain_waiters in finish() (Dekker: we count
  // ourselves, then read live(); the last tasklet to end stores live, then reads us).
  drain_waiters.fetch_add(1, std::memory_order_seq_cst);
  const watch_end end = watch_deadlock(
      [&](std::int64_t until) {
        // acquire: pairs with the release increment of drain_word in finish().
        const std::uint32_t seq = drain_word.load(std::memory_order_acquire);
        if (live() == 0) return true;
        futex_wait(&drain_word, seq, until);
        return live() == 0;
      },
      deadline, nullptr, report);
  drain_waiters.fetch_sub(1, std::memory_order_seq_cst);  // pairs as the fetch_add above
  return end;
}

void scheduler_impl::shutdown() {
  if (tcb* self = current_tcb(); self && self->sched == this)
    throw usage_error("stackless: shutdown() called from a tasklet of the same scheduler");
  close_admission();  // submit() and plain-thread spawns refused; blocked submitters sent away
  std::lock_guard g(lifecycle_mu);
  if (shut_down) return;
  // Step 1. seq_cst: pairs with the acquire load of closed in submit(). A spawn that read false
  // registers its tasklet (under a shard lock), and this round or the next of the loop below
  // kills it: the loop ends only when live() is 0.
  closed.store(true, std::memory_order_seq_cst);
  for (;;) {  // steps 2 and 3
    for_each_live([](tcb* t) { kill(t, true); });
    // acquire: pairs with the release stores of mode (start_threads(), run_pumped()).
    if (mode.load(std::memory_order_acquire) == M_THREADED) {
      // The Dekker pair with finish(), as in drain().
      drain_waiters.fetch_add(1, std::memory_order_seq_cst);
      // acquire: pairs with the release increment of drain_word in finish().
      std::uint32_t seq = drain_word.load(std::memory_order_acquire);
      if (live() != 0) futex_wait(&drain_word, seq, now_ns() + 100'000'000);
      drain_waiters.fetch_sub(1, std::memory_order_seq_cst);
    } else if (current_worker()) {
      // No worker thread, and the caller is a worker of another scheduler (a scheduler destroyed
      // inside a tasklet of another): it cannot pump ours (one thread drives one worker), so
      // ours gets its thread, and the next round waits for it like any other.
      start_unowned_locked();  // lifecycle_mu is ours already
      if (mode.load(std::memory_order_acquire) == M_PUMPED) std::this_thread::yield();
    } else {
      // No worker thread: run the dying tasklets here, as run() would.
      while (mode.load(std::memory_order_acquire) == M_PUMPED) std::this_thread::yield();
      run_pumped(0, nullptr);
    }
    if (live() == 0) break;
  }
  stop_monitor();  // before the worker threads go: it signals them by tid
  // seq_cst: pairs with the acquire load in search() and park_worker()'s re-check (after its
  // StoreLoad fence): a worker going to sleep either sees `stopping` or gets the unpark below.
  stopping.store(true, std::memory_order_seq_cst);
  for (auto& w : workers) unpark(*w);
  for (auto& w : workers)
    if (w->thread.joinable()) w->thread.join();
  trace_finish(trace);  // every event is in: the trace file is complete (trace.cpp)
  shut_down = true;     // step 4 is the destructor's
}

scheduler_impl* make_scheduler(options o) { return new scheduler_impl(std::move(o)); }

void destroy_scheduler(scheduler_impl* s) noexcept {
  if (s->forked.load(std::memory_order_relaxed)) {  // relaxed: see forked
    // Inherited across fork(): off the live list, and nothing else — the destructor would join
    // threads that do not exist here and take locks they may hold. The rest leaks (see the top).
    std::lock_guard g(live_schedulers_mu());
    auto& v = live_schedulers();
    v.erase(std::find(v.begin(), v.end(), s));
    g_inherited.fetch_sub(1, std::memory_order_relaxed);  // relaxed: see g_inherited
    return;
  }
  delete s;
}

}  // namespace stackless::detail

namespace stackless {

void scheduler::run() {
  impl_->run_pumped(0, nullptr);
  impl_->host_driven.store(true, std::memory_order_relaxed);  // relaxed: see host_driven
}

tasklet<void> scheduler::run_for(std::chrono::nanoseconds slice) {
  if (slice.count() <= 0)
    throw std::invalid_argument("stackless: run_for() needs a positive slice");
  detail::tcb* t = nullptr;
  impl_->run_pumped(slice.count(), &t);
  impl_->host_driven.store(true, std::memory_order_relaxed);  // relaxed: see host_driven
  if (!t) return {};
  detail::handle_acquire(t);
  detail::release(t);  // the reference run_tasklet() took for us
  return tasklet<void>(t, tasklet<void>::adopt_t{});
}

void scheduler::drain() { impl_->drain(); }

std::chrono::steady_clock::time_point scheduler::now() const noexcept {
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(impl_->clock_now()));
}

void scheduler::advance(std::chrono::nanoseconds dt) {
  if (dt.count() < 0)
    throw std::invalid_argument("stackless: advance(): a negative step (" +
                                std::to_string(dt.count()) +
                                " ns): a host clock never goes backwards");
  advance_to(now() + dt);
}

void scheduler::advance_to(std::chrono::steady_clock::time_point tp) {
  impl_->check_not_forked();
  if (!impl_->host_clock)
    throw usage_error(
        "stackless: advance() on a scheduler with the steady clock (options::clock is "
        "clock_source::steady; a host clock needs clock_source::host)");
  if (detail::tcb* self = detail::current_tcb(); self && self->sched == impl_)
    throw usage_error(
        "stackless: advance() from a tasklet of the same scheduler (the host "
        "drives the clock)");
  const std::int64_t to =
      std::chrono::duration_cast<std::chrono::nanoseconds>(tp.time_since_epoch()).count();
  if (const std::int64_t from = impl_->advance_clock(to); from > to)
    throw std::invalid_argument("stackless: advance_to(): the host clock would go backwards by " +
                                std::to_string(from - to) + " ns");
}
void scheduler::shutdown() {
  impl_->check_not_forked();
  impl_->shutdown();
}
unsigned scheduler::workers() const noexcept { return impl_->nworkers; }

}  // namespace stackless
