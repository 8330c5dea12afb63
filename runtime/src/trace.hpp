// SPDX-License-Identifier: Apache-2.0
// runtime/src/trace.hpp — the event sites' side of the tracer (options::trace, STACKLESS_TRACE):
// fixed-size binary records in one single-producer ring per worker, which a writer thread turns
// into a Chrome trace-event JSON file (trace.cpp explains the file, the threads and the memory
// orders).
//
// An event site costs one predictable branch when tracing is off: worker_owned::trace (a worker's
// ring) or scheduler_impl::trace (the tracer) is null, and every helper below is inline and tests
// that pointer first. The put itself is out of line (trace.cpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "scheduler_impl.hpp"
#include "stackless/runtime/internal/park.hpp"

namespace stackless::detail {

/// trace_kind is what a record says happened; `id` is a tasklet id unless said otherwise.
enum class trace_kind : std::uint8_t {
  run_begin,      // t switched in; a: the flow id of the wake it follows (0: none)
  run_end,        // t switched out, not to park; a: switch_why (yield, exit, overrun)
  park,           // t switched out to park (the end of its run, too); a: tcb::wait_what (a
                  //   string with static storage duration, or 0), b: tcb::wait_target
  spawn,          // t spawned; a: spawn site file name (static string or 0), b: line << 40 |
                  //   the spawning tasklet's id (0: a plain thread)
  wake,           // t woken; a: the flow id, b: wake_reason
  steal,          // t (the first of the batch) stolen; a: the victim worker, b: how many
  preempt,        // t preempted; a: 0 soft, 1 hard
  timer,          // a timeout woke t
  netpoll,        // id 0; a: tasklets ready I/O woke
  worker_park,    // id 0: the worker sleeps
  worker_unpark,  // id 0: it woke up
  runq,           // id 0; a: the length of the worker's deque (a sample)
};

/// trace_record is one event: 32 bytes, two to a cache line. w0 = ticks << 8 | kind, where ticks
/// count from the tracer's start (the TSC on x86-64, steady-clock ns elsewhere).
struct trace_record {
  std::uint64_t w0;
  std::uint64_t id;
  std::uint64_t a;
  std::uint64_t b;
};
static_assert(sizeof(trace_record) == 32);

/// trace_ring: a single-producer single-consumer ring of records. The producer is the thread that
/// drives the worker owning the ring (one at a time: worker 0 passes between a pumping host and
/// its own thread through scheduler_impl::mode, whose CASes order them); the consumer is the
/// tracer's writer thread. A put into a full ring drops the record and counts it: a worker never
/// waits for the writer.
class trace_ring {
 public:
  trace_ring(std::size_t capacity, std::uint64_t tick0);
  ~trace_ring();
  trace_ring(const trace_ring&) = delete;
  trace_ring& operator=(const trace_ring&) = delete;

  /// put() appends one record, stamped now (producer only). put_run_begin(): a run_begin, which
  /// takes the time of the run_end/park that is the ring's last record when `direct` (the
  /// tasklet switched straight to this one: one clock read per switch, not two).
  /// Out of line (trace.cpp), so that an event site stays a test and a call.
  void put(trace_kind k, std::uint64_t id, std::uint64_t a = 0, std::uint64_t b = 0) noexcept;
  void put_run_begin(std::uint64_t id, std::uint64_t flow, bool direct) noexcept;

  /// drain() hands every published record to f(const trace_record&), oldest first, and frees
  /// their slots (consumer only). Returns how many.
  template <class F>
  std::size_t drain(F&& f) {
    // acquire: pairs with put()'s release store of head_: the records before it are written.
    const std::uint64_t h = head_.load(std::memory_order_acquire);
    const std::uint64_t t = tail_.load(std::memory_order_relaxed);  // consumer's own word
    for (std::uint64_t i = t; i != h; ++i) f(buf_[i & mask_]);
    // release: pairs with put()'s acquire load of tail_: our reads of these slots come before
    // the producer overwrites them.
    tail_.store(h, std::memory_order_release);
    return static_cast<std::size_t>(h - t);
  }
  /// dropped(): records refused so far (any thread; relaxed, a count).
  std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }

 private:
  void put_impl(trace_kind k, std::uint64_t id, std::uint64_t a, std::uint64_t b,
                bool reuse) noexcept;

  // Producer's line: its copy of the tail (refreshed only when the ring looks full), the time of
  // its last record and whether that one ended a run, and the constants.
  alignas(64) std::uint64_t tail_seen_ = 0;  // producer only
  std::uint64_t last_ = 0;                   // producer only
  bool last_ended_run_ = false;              // producer only
  trace_record* const buf_;
  const std::uint64_t mask_;
  const std::uint64_t tick0_;
  std::atomic<std::uint64_t> head_{0};     // written by the producer (release)
  std::atomic<std::uint64_t> dropped_{0};  // written by the producer (relaxed)
  // Consumer's line.
  alignas(64) std::atomic<std::uint64_t> tail_{0};  // written by the writer (release)
};

/// trace_ticks() is the records' clock: the TSC on x86-64 (~10 ns, no system call), elsewhere
/// the steady clock in ns; trace.cpp converts.
inline std::uint64_t trace_ticks() noexcept {
#if defined(__x86_64__)
  return __rdtsc();
#else
  return static_cast<std::uint64_t>(now_ns());
#endif
}

/// make_tracer() is the tracer of a scheduler being constructed (its workers made, no thread
/// started): options::trace, else STACKLESS_TRACE (the second and later schedulers of the process
/// that use it write `<path>.<n>`), else none (null). Gives each worker its ring and starts the
/// writer thread. Throws std::system_error when options::trace names a file that cannot be
/// created (STACKLESS_TRACE: a line on stderr, and no trace).
tracer* make_tracer(scheduler_impl& s);
/// trace_finish() stops the writer and completes the file: scheduler_impl::shutdown(), once the
/// workers are joined. Idempotent; later events are dropped.
void trace_finish(tracer* tr) noexcept;
/// trace_destroy() finishes and frees the tracer and the rings (the scheduler's destructor).
void trace_destroy(tracer* tr) noexcept;
/// trace_put_any() records an event from any thread: on the calling worker's ring if it runs a
/// worker of s, else in the tracer's locked side buffer (the "plain threads" track).
void trace_put_any(scheduler_impl& s, trace_kind k, std::uint64_t id, std::uint64_t a = 0,
                   std::uint64_t b = 0) noexcept;
/// trace_set_name(): a tasklet of s was (re)named (tasklet::set_name()).
void trace_set_name(scheduler_impl& s, std::uint64_t id, const std::string& name);
void trace_run_begin_slow(worker_owned& w, tcb* t) noexcept;
void trace_run_end_slow(worker_owned& w, tcb* t, switch_why why) noexcept;
void trace_spawn_slow(scheduler_impl& s, tcb* t) noexcept;

/// trace_flow_id() is the id of the flow arrow from the wake that ends park `gen` of tasklet `id`
/// to its next run (unique below 2^53, as JSON readers want, while ids stay below 2^33 and a
/// tasklet parks fewer than 2^20 times; past that an id repeats, which only re-binds arrows).
inline std::uint64_t trace_flow_id(std::uint64_t id, std::uint64_t gen) noexcept {
  return (id & ((std::uint64_t{1} << 33) - 1)) << 20 | (gen & ((std::uint64_t{1} << 20) - 1));
}

// ---- the event sites: each is one call, one predictable branch when tracing is off ----------

/// trace_event() records an event on w's ring (the caller drives worker w).
inline void trace_event(worker_owned& w, trace_kind k, std::uint64_t id, std::uint64_t a = 0,
                        std::uint64_t b = 0) noexcept {
  if (__builtin_expect(w.trace != nullptr, 0)) w.trace->put(k, id, a, b);
}
/// trace_event() with a scheduler: from any thread (trace_put_any()).
inline void trace_event(scheduler_impl& s, trace_kind k, std::uint64_t id, std::uint64_t a = 0,
                        std::uint64_t b = 0) noexcept {
  if (__builtin_expect(s.trace != nullptr, 0)) trace_put_any(s, k, id, a, b);
}
/// trace_run_begin(): t is switched in on w (launch(), worker.cpp): the start of a run slice, the
/// end of a flow arrow if a wake made it runnable (tcb::trace_woken).
inline void trace_run_begin(worker_owned& w, tcb* t) noexcept {
  if (__builtin_expect(w.trace != nullptr, 0)) trace_run_begin_slow(w, t);
}
/// trace_run_end(): t leaves its worker (leave(), worker.cpp) for `why`.
inline void trace_run_end(worker_owned& w, tcb* t, switch_why why) noexcept {
  if (__builtin_expect(w.trace != nullptr, 0)) trace_run_end_slow(w, t, why);
}
/// trace_spawn(): t was just given its id (submit(), scheduler.cpp).
inline void trace_spawn(scheduler_impl& s, tcb* t) noexcept {
  if (__builtin_expect(s.trace != nullptr, 0)) trace_spawn_slow(s, t);
}
/// traced_poll() is np.poll(deadline, block) (netpoller.hpp), and a netpoll event when it woke
/// someone.
template <class Poller>
std::size_t traced_poll(scheduler_impl& s, Poller& np, std::int64_t deadline, bool block) {
  const std::size_t n = np.poll(deadline, block);
  if (n) trace_event(s, trace_kind::netpoll, 0, n);
  return n;
}
/// trace_waker is what trace_wake() needs of the tasklet being woken, read by
/// trace_wake_prepare() before the door's CAS: after it, a tasklet woken while still PARKING may
/// run, end and be freed before the waker goes on (park.cpp touches nothing of it then, and nor
/// does trace_wake() but for a PARKED one, which the waker owns until it requeues it).
struct trace_waker {
  scheduler_impl* s;  // null: not tracing
  std::uint64_t id;
};
inline trace_waker trace_wake_prepare(tcb* t) noexcept {
  scheduler_impl* s = t->sched;
  if (__builtin_expect(s->trace != nullptr, 0)) return {s, t->id};
  return {nullptr, 0};
}
/// trace_wake(): a wake of park `gen` of t won (wake(), park.cpp). `parked`: t is off its stack
/// and the waker requeues it — then the waker marks it woken (tcb::trace_woken) before the queue
/// push publishes it; otherwise its worker does, in after_switch() (worker.cpp).
inline void trace_wake(const trace_waker& tw, tcb* t, std::uint64_t gen, wake_reason r,
                       bool parked) noexcept {
  if (__builtin_expect(tw.s != nullptr, 0)) {
    trace_put_any(*tw.s, trace_kind::wake, tw.id, trace_flow_id(tw.id, gen), std::uint64_t(r));
    if (parked) t->trace_woken = true;
  }
}

}  // namespace stackless::detail
