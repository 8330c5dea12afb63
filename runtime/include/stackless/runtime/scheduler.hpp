// SPDX-License-Identifier: Apache-2.0
// stackless/runtime/scheduler.hpp — the scheduler: workers that run tasklets.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <iosfwd>
#include <source_location>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "stackless/runtime/submission.hpp"
#include "stackless/runtime/tasklet.hpp"

namespace stackless {

/// error_report describes an exception that escaped a detached tasklet (or a tasklet_exit that a
/// tasklet swallowed).
struct error_report {
  std::uint64_t id;
  std::string name;
  std::exception_ptr error;  // null when `what` reports a swallowed tasklet_exit
  std::string what;
  std::source_location spawned_at{};  // where spawn() was called (file_name() "" if unknown)
};

/// max_stack_size is the largest options::stack_size a scheduler accepts: 1 GiB. Far more than
/// any tasklet should need, and small enough that a few thousand such stacks (address space
/// only: RSS grows with use) fit in the 128 TiB of a 47-bit user address space.
inline constexpr std::size_t max_stack_size = std::size_t{1} << 30;

/// stack_guard_policy says how tasklet stacks are protected against overflow.
enum class stack_guard_policy : std::uint8_t {
  /// canary_beyond_budget (the default): every stack gets a guard page while the process holds
  /// fewer guarded stacks than a quarter of vm.max_map_count (16,382 on a stock kernel: each
  /// costs two of the kernel's mappings); beyond that stacks come from unguarded slabs of 64,
  /// with a 256-byte canary below each, checked whenever the tasklet switches away. What it can
  /// miss on a slab stack: an overflow that steps over the canary without writing it (a frame
  /// larger than 256 bytes: a big local array, alloca) silently overwrites the top of the stack
  /// below it — another tasklet's — until something faults or that tasklet notices; an overflow
  /// is only found at the next switch (or when the stack pointer leaves the slab and faults).
  canary_beyond_budget,
  /// always: every stack gets a guard page. A spawn that would take the process past 3/8 of
  /// vm.max_map_count live tasklets of such schedulers (24,573 on a stock kernel) throws
  /// std::system_error instead (raise vm.max_map_count for more).
  always,
};

/// clock_source is the time a scheduler's tasklets live in: every sleep, timeout, timed wait
/// and timeout_scope of its tasklets.
enum class clock_source : std::uint8_t {
  steady,  // the steady clock (the default)
  /// host: a clock the host drives (a game's clock): it starts at the steady clock's reading
  /// when the scheduler is made and moves only by scheduler::advance()/advance_to(), so
  /// sleep_for(3 * frame) means three frames of game time, and a paused game (no advance())
  /// pauses every timer. Plain threads still wait in steady time; run_for()'s slice, the
  /// preemption quantum and the deadlock grace are steady (wall) time too.
  host,
};

struct options {
  unsigned workers = 0;  // 0: one per hardware thread; 1: single-threaded, deterministic
  /// stack_size: usable bytes of each tasklet's stack (rounded up to pages, at least 16 KiB);
  /// RSS grows only with use. At most max_stack_size (1 GiB): the scheduler's constructor throws
  /// std::invalid_argument beyond it. A stack the kernel refuses to map (RLIMIT_AS, the map
  /// count) makes the tasklet end without running: its join() throws std::system_error.
  std::size_t stack_size = 256 * 1024;
  /// stack_guard: guard pages for every stack, or until the mapping budget and canaries beyond
  /// (stack_guard_policy says what each catches and misses).
  stack_guard_policy stack_guard = stack_guard_policy::canary_beyond_budget;
  /// quantum > 0 turns preemption on: a monitor thread (one per scheduler) ticks every quantum/2
  /// and asks a worker that has run one tasklet for a whole quantum, while other work waits, to
  /// switch at its next safe point (soft; hard inside this_tasklet::preemptible). 0: no monitor
  /// thread, tasklets switch only when they call the runtime. A quantum below 100 µs is raised
  /// to 100 µs (the tick would cost more than it buys). The monitor asks for SCHED_FIFO
  /// priority 1 (granted to root or CAP_SYS_NICE; stats().monitor_realtime): at normal priority
  /// its ticks are late by the kernel's scheduling latency whenever every core runs a hog.
  std::chrono::microseconds quantum{0};
  /// chaos: a seed, 0 for off (the environment variable STACKLESS_CHAOS=<seed> sets it for every
  /// scheduler whose options leave it 0). Chaos mode shuffles what the runtime is free to choose,
  /// to shake out code (ours and yours) that depends on luck: a woken or spawned tasklet goes to
  /// runnext or the back of the queue at random, blocking calls yield at their entry at random,
  /// thieves take runnext early and pick victims at random, timers fire up to 200 µs late (on the
  /// steady clock), and idle workers wake spuriously. Nothing it does breaks a documented guarantee
  /// (nothing runs early, no interrupt is delivered at the extra yields); only order and timing
  /// change, so single-threaded mode stays deterministic for a given seed. Debugging only: it is
  /// slow.
  std::uint64_t chaos = 0;
  /// stall_warning: with quantum > 0, a worker that has run one tasklet this long without a
  /// safe point while other work waits gets one line on stderr naming the tasklet (at most one
  /// line a second per scheduler). 0 or negative: no warning.
  std::chrono::milliseconds stall_warning{100};
  std::string name = "stackless";  // worker thread names: name-0, name-1, …
  /// on_error receives exceptions that escape detached tasklets. Default: one line on stderr.
  std::function<void(const error_report&)> on_error{};
  /// deadlock_grace: how long the scheduler must stay quiescent (every tasklet parked, nothing
  /// runnable, no timer) before a join()/block_on() waiter gets deadlock_error. The grace exists
  /// because a plain thread may still wake a tasklet; 0 turns detection off.
  std::chrono::milliseconds deadlock_grace{200};
  /// local_queue_capacity: slots in each worker's work-stealing deque (a power of two ≥ 4);
  /// tests shrink it to force the overflow path.
  std::size_t local_queue_capacity = 256;
  /// max_pending bounds scheduler::submit()'s admission queue: at most this many submitted
  /// tasklets may wait for their first run; a submit() beyond it blocks, throws queue_full or
  /// runs inline, as its when_full argument says. 0: unbounded. spawn() is not counted.
  std::size_t max_pending = 0;
  /// clock: the steady clock, or a host-driven clock (clock_source::host).
  clock_source clock = clock_source::steady;
  /// dump_signal: on this signal (e.g. SIGQUIT), every live scheduler of the process writes
  /// dump() to stderr, from a thread of its own (the handler only posts a semaphore); the
  /// program goes on. 0: none, unless the environment sets STACKLESS_DUMP_SIGNAL (SIGQUIT, QUIT,
  /// SIGUSR1, … or a number). One signal per process: asking for another throws
  /// std::invalid_argument, as does a name that is not a signal.
  int dump_signal = 0;
  /// trace: a file to write a trace of this scheduler's whole run to, in Chrome trace-event JSON
  /// (open it in ui.perfetto.dev; tools/trace-summary prints a digest): one track per worker with
  /// a slice per tasklet run, and spawns, parks, wakes (arrows to the woken tasklet's next run),
  /// steals, preemptions, timers, netpolls and worker sleeps (docs/trace.md). Empty: the
  /// environment variable STACKLESS_TRACE=<path> sets it for every scheduler whose options leave it
  /// empty (the second one made in the process writes <path>.1, …; `x.json` becomes `x.1.json`).
  /// The file is complete once shutdown() (or the destructor) returns. Events are buffered per
  /// worker and written by a thread of the tracer; when it falls behind, events are dropped and
  /// counted in the file, never waited for. The constructor throws std::system_error if the file
  /// cannot be created (STACKLESS_TRACE: a line on stderr and no trace).
  std::string trace{};
  /// trace_buffer_events: records each worker buffers for the trace writer (rounded up to a power
  /// of two, at least 16; 0: 65,536, 2 MiB). Tests shrink it to force drops.
  std::size_t trace_buffer_events = 0;
};

/// shutdown_report is what scheduler::shutdown(deadline) did: counts of the tasklets that ended
/// during the call.
struct shutdown_report {
  std::uint64_t finished = 0;       // ended on their own (returned, or threw) before the deadline
  std::uint64_t killed = 0;         // had started; ended by a kill (the deadline's, or another)
  std::uint64_t never_started = 0;  // killed before their first run: their function never ran
};

struct worker_stats {
  std::uint64_t runs = 0;    // tasklet switches-in
  std::uint64_t steals = 0;  // tasklets stolen from other workers
  std::uint64_t steal_attempts = 0;
  std::uint64_t parks = 0;      // times the worker thread slept
  std::uint64_t spins = 0;      // times it entered the spinning state
  std::uint64_t inbox = 0;      // tasklets taken from its inbox
  std::uint64_t injected = 0;   // tasklets taken from the injection queue
  std::uint64_t overflows = 0;  // times its deque overflowed into the injection queue
  std::uint64_t busy_ns = 0;    // time its loop ran (tasklets, scheduling, spinning), not asleep
  std::uint64_t sleep_ns = 0;   // time it slept in the kernel waiting for work
  std::uint64_t queued = 0;     // tasklets in its local queue now (deque + runnext)
};

struct scheduler_stats {
  std::uint64_t spawned = 0;   // tasklets ever spawned
  std::uint64_t live = 0;      // spawned and not ended
  std::uint64_t runnable = 0;  // waiting in a run queue (approximate while workers run)
  std::uint64_t parked = 0;    // blocked
  std::uint64_t steals = 0;
  std::uint64_t preemptions = 0;       // soft_preemptions + hard_preemptions
  std::uint64_t soft_preemptions = 0;  // yields at a safe point because the monitor asked
  std::uint64_t hard_preemptions = 0;  // tasklets interrupted by the signal (preemptible scopes)
  std::uint64_t preempt_signals = 0;   // signals the monitor sent
  // Signals the handler refused, by reason (this_tasklet::preemptible explains each):
  std::uint64_t refused_disabled = 0;         // preempt_disable > 0 (runtime internals)
  std::uint64_t refused_atomic = 0;           // inside a this_tasklet::atomic scope
  std::uint64_t refused_not_preemptible = 0;  // not in a preemptible scope (or not a tasklet)
  std::uint64_t refused_runtime_code = 0;     // the PC was in the runtime, libc or libstdc++
  std::uint64_t refused_stack = 0;            // less than 16 KiB of stack headroom
  std::uint64_t stalls_reported = 0;          // stall_warning lines printed
  bool monitor_running = false;   // the monitor thread exists (quantum > 0, or a run_for())
  bool monitor_realtime = false;  // it got SCHED_FIFO priority 1 (needs root or CAP_SYS_NICE)
  std::uint64_t stacks_outstanding = 0;  // stacks held by tasklets
  std::uint64_t stacks_pooled = 0;       // stacks cached for reuse
  std::uint64_t stacks_guarded = 0;      // stacks ever mapped with a guard page
  std::uint64_t stacks_unguarded = 0;    // stacks ever carved from slabs (guard budget exhausted)
  // The netpoller (stackless::io): tasklets waiting for a socket now, fds registered with the
  // scheduler's epoll set now, epoll_wait calls and the events they returned.
  std::uint64_t io_waiting = 0;
  std::uint64_t io_registered = 0;
  std::uint64_t io_polls = 0;
  std::uint64_t io_events = 0;
  std::vector<worker_stats> workers;
};

/// schedule_callback is Stackless's set_schedule_callback(prev, next), per scheduler: called on
/// the worker thread each time it switches a tasklet in, with the id of the tasklet that last ran
/// on that worker (0: none since it started) and of the one about to run, and the worker's
/// index. It runs between tasklets, not in one: it must not block, and it should be quick (it
/// delays the tasklet). An exception from it is reported on stderr and otherwise ignored.
using schedule_callback =
    std::function<void(std::uint64_t prev, std::uint64_t next, unsigned worker)>;
/// channel_callback is Stackless's set_channel_callback(channel, tasklet, sending, will_block):
/// called in the calling tasklet at the start of every blocking send or receive (timed ones
/// too; not try_send/try_receive, not select, not plain threads), with the channel's address
/// (channel::core(), the same for every copy of a channel), the tasklet's id, whether it sends,
/// and whether it will block — a guess: no partner was waiting and no buffer room (or element)
/// was there when it looked. It may block (it runs before the call begins); an exception from it
/// propagates out of the send or receive, which then has not happened.
using channel_callback =
    std::function<void(const void* channel, std::uint64_t tasklet, bool sending, bool will_block)>;

/// to_json() is the snapshot as one JSON object: every field above by its name, `workers` an
/// array of objects (busy_ns, sleep_ns, queued, runs, …), booleans as true/false.
std::string to_json(const scheduler_stats& s);
/// to_prometheus() is the snapshot in Prometheus's text exposition format (version 0.0.4), for a
/// service's /metrics: every figure as stackless_<field> with a `scheduler` label (and a `worker`
/// label on the per-worker ones); counters (ever-growing) end in _total and carry `# TYPE …
/// counter`, the rest are gauges; times are in seconds (*_seconds_total). `scheduler` is
/// escaped as the format asks (backslash, double quote, newline).
std::string to_prometheus(const scheduler_stats& s, std::string_view scheduler = "stackless");

namespace detail {
scheduler_impl* make_scheduler(options);
void destroy_scheduler(scheduler_impl*) noexcept;
}  // namespace detail

/// scheduler owns N worker threads, each with a local run queue; tasklets spawned on it run on
/// them. With workers = 1 no thread starts until one is needed: run()/run_for() make the calling
/// thread the worker (Stackless's run loop); the first wait from a plain thread (join, block_on,
/// drain) starts the worker thread instead, and from then on run()/run_for() throw usage_error —
/// except a kill() or join() from a plain thread once a host has pumped it: that caller pumps.
/// Several schedulers may live in one process; each is independent.
///
/// fork(): the child inherits the scheduler without its threads. There it may only be destroyed
/// (also when the child returns from main) — which joins nothing and leaks what the parent's
/// threads owned — or left to exit/exec; every other use throws usage_error ("stackless:
/// scheduler inherited across fork()"), and so does a blocking channel, select or lock call from
/// a plain thread of the child while an inherited scheduler is alive.
class scheduler {
 public:
  explicit scheduler(options o = {}) : impl_(detail::make_scheduler(std::move(o))) {}
  ~scheduler() { detail::destroy_scheduler(impl_); }  // shutdown() if not done yet
  scheduler(const scheduler&) = delete;
  scheduler& operator=(const scheduler&) = delete;

  /// spawn() creates a tasklet running f(args...) and makes it runnable; callable from any thread.
  /// Inside a tasklet of this scheduler the new tasklet runs next on the same worker (its
  /// predecessor in that slot goes to the local queue). After shutdown() it throws usage_error
  /// from a plain thread; inside a dying tasklet it returns a tasklet that is already killed.
  /// With options::stack_guard = always it throws std::system_error past the mapping budget.
  /// spawn(f) records where it was called (file:line and function), which every report naming
  /// the tasklet shows (deadlock, stall, overflow, uncaught exception, dump()); spawn(f, args...)
  /// cannot take the caller's location after a parameter pack: use spawn_at() to give one.
  template <class F>
  auto spawn(F&& f, const std::source_location& where = std::source_location::current()) {
    return spawn_at(where, std::forward<F>(f));
  }
  template <class F, class A0, class... A>
  auto spawn(F&& f, A0&& a0, A&&... a) {
    return spawn_at(std::source_location{}, std::forward<F>(f), std::forward<A0>(a0),
                    std::forward<A>(a)...);
  }
  /// spawn_at() is spawn() with the location its reports show given explicitly.
  template <class F, class... A>
  auto spawn_at(const std::source_location& where, F&& f, A&&... a) {
    using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<A>...>;
    auto* b = new detail::tcb_impl<R, std::decay_t<F>, std::decay_t<A>...>(std::forward<F>(f),
                                                                           std::forward<A>(a)...);
    detail::tcb* t = detail::submit(impl_, b, where);
    return tasklet<R>(t, typename tasklet<R>::adopt_t{});
  }

  /// block_on() runs f as a tasklet and waits for it — the calling thread blocks (a calling
  /// tasklet parks) — then returns its value or rethrows its exception.
  template <class F>
  auto block_on(F&& f, const std::source_location& where = std::source_location::current()) {
    return spawn_at(where, std::forward<F>(f)).join();
  }

  /// submit() is spawn() for work from outside: from any thread (or tasklet), f() runs as a new
  /// tasklet, and the submission it returns is waited on with get()/wait_for() (the caller
  /// blocks, a calling tasklet parks) or joined through handle(). With options::max_pending > 0
  /// at most that many submitted tasklets wait for their first run; beyond it `full` decides:
  /// block until one starts (FIFO among the blocked; timeout_scope and kill() end the wait),
  /// throw queue_full, or run f on the calling thread now. Once shutdown() has begun, submit()
  /// throws scheduler_closed — from a tasklet too (spawn() from a tasklet still works then).
  template <class F>
  auto submit(F&& f, when_full full = when_full::block,
              const std::source_location& where = std::source_location::current()) {
    using Fn = std::decay_t<F>;
    using R = std::invoke_result_t<Fn>;
    switch (detail::admit(impl_, full)) {
      case detail::admission::unlimited:
        return submission<R>(spawn_at(where, std::forward<F>(f)));
      case detail::admission::slot:
        return submission<R>(spawn_at(where, detail::admitted<Fn>(std::forward<F>(f), impl_)));
      case detail::admission::run_inline:
        break;
    }
    return submission<R>::run_here(std::forward<F>(f));
  }

  /// run() makes the calling thread the worker (workers = 1 only) until no tasklet is runnable,
  /// as Stackless run(): tasklets that are blocked may remain. Exceptions of detached tasklets go
  /// to on_error as usual.
  void run();
  /// run_for() is pump mode: like run(), but a tasklet that runs longer than `slice` without
  /// switching is stopped and returned, paused — as Stackless run(timeout) did; the host decides
  /// whether to resume() or kill() it. The scheduler's monitor thread (started by the first
  /// run_for(), even with quantum 0) watches the slice and asks the tasklet to stop: it does at
  /// its next safe point (this_tasklet::checkpoint(), yield(), a blocking call), or, inside a
  /// this_tasklet::preemptible scope, by signal half a slice later. A tasklet that never reaches
  /// a safe point outside such a scope cannot be stopped. `slice` also bounds the whole call (as
  /// Stackless's watchdog did): at the first switch after it — and at the running tasklet's next
  /// safe point, which the monitor asks for — the pump stops: a tasklet that yields (or reaches
  /// a safe point) then is returned paused, as one that overran; the others stay queued for the
  /// next call. Returns an empty handle when the scheduler went idle, or when the slice ended as
  /// a tasklet parked or ended. A blocking kill() or join() of one of its tasklets from the host
  /// pumps too, rather than starting the worker thread.
  tasklet<void> run_for(std::chrono::nanoseconds slice);
  /// drain() waits until every tasklet has ended. From a plain thread only.
  void drain();
  /// shutdown() stops accepting work, kills every live tasklet (their destructors run), waits for
  /// them and joins the worker threads. Idempotent. Not from a tasklet of this scheduler.
  void shutdown();
  /// shutdown(deadline) is the graceful form: at once it stops admitting work (submit(), and
  /// spawn() from a plain thread, throw scheduler_closed; tasklets may still spawn), lets the
  /// live tasklets run until every one has ended or `deadline` passes — or until they are all
  /// parked with no way to be woken (a deadlock: waiting longer cannot help) — then does what
  /// shutdown() does with the rest: kills them (their destructors run) and joins the workers.
  /// Returns what ended during the call. From a plain thread (or another scheduler's tasklet).
  shutdown_report shutdown(std::chrono::steady_clock::time_point deadline);
  template <class Rep, class P>
  shutdown_report shutdown_for(std::chrono::duration<Rep, P> grace) {
    return shutdown_until_ns(detail::deadline_after(grace));
  }
  scheduler_stats stats() const;
  /// dump() writes every live tasklet — id, name, where it was spawned, state (running on which
  /// worker, runnable, parked on what and for how long, paused) and, for a parked one, the
  /// return addresses of its stack, named where dladdr() can (a frame-pointer walk: see
  /// runtime/src/dump.cpp for the build flags it needs) — and each worker's queue. Callable from
  /// any thread, tasklets included, while the scheduler runs; Go's goroutine dump.
  void dump(std::ostream& os) const;
  /// set_schedule_callback() / set_channel_callback() install the callbacks above (an empty
  /// function removes one); from any thread, at any time. Unset, each costs one relaxed load and
  /// an untaken branch where it would be called.
  void set_schedule_callback(schedule_callback cb);
  void set_channel_callback(channel_callback cb);
  /// now() is the time of this scheduler's tasklets: the steady clock, or with
  /// clock_source::host the host's clock (a steady_clock time point all the same).
  std::chrono::steady_clock::time_point now() const noexcept;
  /// advance() moves a host clock forward by dt and fires the timers that came due (their
  /// tasklets run at the next run_for(), or at once on worker threads). advance_to() moves it
  /// to tp. A clock that would go backwards (dt < 0, tp < now()) throws std::invalid_argument;
  /// a steady-clock scheduler throws usage_error. Callable from any thread but the scheduler's
  /// own tasklets' (a host owns its clock).
  void advance(std::chrono::nanoseconds dt);
  void advance_to(std::chrono::steady_clock::time_point tp);
  /// workers() is the number of workers (resolved from options::workers).
  unsigned workers() const noexcept;

  detail::scheduler_impl* impl() const noexcept { return impl_; }

 private:
  shutdown_report shutdown_until_ns(std::int64_t deadline_ns);
  detail::scheduler_impl* impl_;
};

/// spawn() inside a tasklet spawns on the caller's scheduler; from a plain thread it throws
/// usage_error (use scheduler::spawn). As scheduler::spawn(), spawn(f) records its caller's
/// location for reports and spawn_at(where, f, args...) takes one.
template <class F, class... A>
auto spawn_at(const std::source_location& where, F&& f, A&&... a) {
  using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<A>...>;
  detail::scheduler_impl* s = detail::current_scheduler();
  if (!s)
    detail::throw_usage("stackless::spawn() called outside a tasklet; use scheduler::spawn()");
  auto* b = new detail::tcb_impl<R, std::decay_t<F>, std::decay_t<A>...>(std::forward<F>(f),
                                                                         std::forward<A>(a)...);
  detail::tcb* t = detail::submit(s, b, where);
  return tasklet<R>(t, typename tasklet<R>::adopt_t{});
}
template <class F>
auto spawn(F&& f, const std::source_location& where = std::source_location::current()) {
  return spawn_at(where, std::forward<F>(f));
}
template <class F, class A0, class... A>
auto spawn(F&& f, A0&& a0, A&&... a) {
  return spawn_at(std::source_location{}, std::forward<F>(f), std::forward<A0>(a0),
                  std::forward<A>(a)...);
}

}  // namespace stackless
