// SPDX-License-Identifier: Apache-2.0
// runtime/src/worker.hpp — a worker's state, split by who may touch it (tokio's multi_thread
// worker: the owner's Core, the Shared part that other threads reach, and the stats).
//
// A worker is one OS thread (or the thread inside run()/run_for()) with its local queues. Its
// state is three parts, each its own type, so a reader sees at the declaration who writes a field:
//  - worker_owned: the thread running the worker's loop, and the tasklets it runs (they are on
//    that thread) — plain fields, no synchronisation. The signal handlers of that thread (stack
//    overflow, hard preemption) read some of them, on the same thread.
//  - worker_shared: what other threads reach — the runnext slot and the deque's steal end
//    (thieves), the inbox (wakers of pinned tasklets), the park word and the idle flag (the
//    parking protocol), the timers (any worker fires any worker's), and what the monitor thread
//    reads. Atomics or lock-guarded, each group on its own cache line(s) so that a thief or a
//    waker touching one group does not steal the line of another.
//  - worker_counters: counters written by the owner (relaxed), read by stats() and the monitor;
//    on lines of their own, away from the shared groups that other workers poll.
// struct worker is the three together (they are bases, so a field is reached directly, as
// `w.runnext`, at the cost of a plain member access). Code that may touch only the shared part of
// another worker — a thief, a timer firer — takes a worker_shared&.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include "deque.hpp"
#include "stack.hpp"
#include "stackless/runtime/detail/preempt.hpp"
#include "stackless/runtime/detail/spinlock.hpp"
#include "stackless/runtime/internal/tcb.hpp"
#include "timer_heap.hpp"

namespace stackless::detail {

class function_ref;  // stackless/runtime/internal/park.hpp
class trace_ring;    // trace.hpp

/// switch_why: why the tasklet in worker_owned::prev left its stack.
enum class switch_why : std::uint8_t { yield, park, exit, overrun };

/// timer_entry: the timeout of one park (timers.cpp).
struct timer_entry {
  std::int64_t deadline;
  tcb* t;             // holds a reference
  std::uint64_t gen;  // the park it belongs to
};

/// worker_owned: the state only the worker's own thread touches (see the top of the file).
struct worker_owned {
  worker_owned(scheduler_impl* s, unsigned i) noexcept : sched(s), index(i) {}

  // Identity: set at construction, never changed; anyone may read it.
  scheduler_impl* const sched;
  const unsigned index;

  context sched_ctx;                   // the worker thread's own stack
  tcb* current = nullptr;              // the tasklet running now (the overflow handler reads it)
  tcb* prev = nullptr;                 // the tasklet that just left its stack, and
  switch_why why = switch_why::yield;  //   why: after_switch() finishes its transition
  function_ref* unlock = nullptr;      //   the park's unlock step (stale once it has run:
                                       //   a park is pending iff prev && why == park)
  bool poll_owed = false;              // the fairness tick's I/O poll waits for that unlock step
                                       //   (fair_pick(), after_switch(): worker.cpp)
  tcb* yield_head = nullptr;           // yield list: FIFO of tasklets that yielded
  tcb* yield_tail = nullptr;
  unsigned runnext_streak = 0;  // tasklets run from runnext in a row
  std::uint32_t tick = 0;
  std::uint64_t rng = 0;
  std::uint64_t chaos_rng = 0;  // chaos mode's generator (chaos.cpp)
  bool spinning = false;
  std::int64_t slice_ns = 0;              // run_for(): the slice; 0 otherwise
  tcb* overran = nullptr;                 // run_for(): the tasklet that overran
  std::int64_t pump_deadline = 0;         // run_for(): when the whole pump ends; 0 otherwise
  tcb* pump_target = nullptr;             // host_pump(): the tasklet the host waits for
  std::vector<stack*> stack_cache;        // its size: worker_counters::stack_cache_size
  std::uint64_t id_next = 0, id_end = 0;  // block of tasklet ids
  std::uint64_t cb_prev_id = 0;           // the schedule callback's `prev` (call_schedule_cb())
  thread_block* block = nullptr;          // the thread_block of the thread running the loop
                                          //   (preempt.cpp; published in worker_shared::block_pub)
  trace_ring* trace = nullptr;            // this worker's trace ring; null: not tracing (trace.hpp)
  static constexpr std::size_t alloc_classes = 32;     // control blocks up to 2 KiB
  static constexpr std::size_t alloc_cache_max = 256;  // blocks per class
  struct free_list {
    void* head = nullptr;
    std::size_t count = 0;
  };
  free_list tcb_free[alloc_classes];  // alloc.cpp
  char* carve_cur = nullptr;          // alloc.cpp: the rest of this worker's chunk
  char* carve_end = nullptr;
};

/// worker_shared: the state other threads reach (see the top of the file). Each group starts a
/// cache line.
struct worker_shared {
  explicit worker_shared(std::size_t deque_capacity) : deque(deque_capacity) {}

  // The run queues thieves see: runnext (the owner exchanges it; thieves take it last) and the
  // deque (the owner pushes and takes at the bottom, thieves steal at the top; deque.hpp).
  alignas(64) std::atomic<tcb*> runnext{nullptr};
  ws_deque<tcb> deque;

  // The inbox: pinned tasklets made runnable by other threads (inbox_push(), worker.cpp).
  alignas(64) spinlock inbox_lk;            // guards the inbox list
  tcb* inbox_head = nullptr;                // guarded by inbox_lk
  tcb* inbox_tail = nullptr;                // guarded by inbox_lk
  std::atomic<bool> inbox_nonempty{false};  // a hint to read without the lock

  // Parking (park_worker(), idle.cpp).
  alignas(64) std::atomic<std::uint32_t> park_word{0};  // 0 empty, 1 notified (futex)
  // The futex timeout this worker sleeps with in sleep_worker() (INT64_MAX: none); INT64_MIN while
  // it is not asleep. nudge_sleepers() reads it to see whether a new timer is covered by a sleeper.
  std::atomic<std::int64_t> sleeping_until{INT64_MIN};
  std::atomic<bool> idle{false};  // on the idle list; changed under scheduler_impl::idle_mu

  // Timers (timers.cpp): the deadlines of the parks of tasklets that ran here. Any worker may
  // fire them (an idle one fires a busy one's), so they are guarded by a lock.
  alignas(64) spinlock timer_lk;
  heap4<timer_entry> timers;                           // guarded by timer_lk
  std::size_t timers_purge_at = 64;                    // guarded by timer_lk
  std::atomic<std::int64_t> next_deadline{INT64_MAX};  // timers.min_deadline(), for lock-free peeks

  // What the monitor thread reads (preempt.cpp). The thread running this worker publishes its
  // thread_block and its tid while it runs the loop (release; the monitor acquires), and clears
  // them (null) before it leaves.
  alignas(64) std::atomic<thread_block*> block_pub{nullptr};
  std::atomic<int> tid{0};
  // The id of the tasklet running now (0: none), stored (relaxed) at every switch-in; with
  // worker_counters::runs it lets the monitor tell "the same tasklet, still running" from
  // "switched meanwhile".
  std::atomic<std::uint64_t> running_id{0};
  std::atomic<std::int64_t> slice_pub{0};     // run_for()'s slice while it pumps (0: none)
  std::atomic<std::int64_t> deadline_pub{0};  // run_for()'s pump_deadline while it pumps (0: none)
  std::atomic<bool> has_yielders{false};      // yield list non-empty (relaxed hint for the monitor)
};

/// worker_counters: counters the owner writes (relaxed: each is a count read on its own, nothing is
/// published through it) and stats() reads at any time, into the public stackless::worker_stats
/// rows (hence not that name here). `runs` is also the monitor's and the
/// deadlock detector's "has anything run since" (preempt.cpp, deadlock.cpp).
struct alignas(64) worker_counters {
  std::atomic<std::uint64_t> runs{0}, steals{0}, steal_attempts{0}, parks{0}, spins{0},
      inbox_taken{0}, injected{0}, overflows{0}, spawned{0}, stacks_taken{0}, stacks_released{0};
  std::atomic<std::size_t> stack_cache_size{0};  // worker_owned::stack_cache.size()
  // Time (stats(): busy = loop - sleep): the loop ran for loop_ns in finished attachments, and
  // since loop_since_ns (0: not now; attach_thread()/detach_thread(), preempt.cpp); it slept in
  // the kernel for work (futex or epoll_wait: sleep_worker(), idle.cpp) for sleep_ns.
  // sleep_since_ns: when the sleep going on now began (0: awake), so that stats() counts it too.
  std::atomic<std::int64_t> loop_ns{0}, loop_since_ns{0}, sleep_ns{0}, sleep_since_ns{0};
  // Preemption (preempt.cpp): soft ones at safe points, hard ones by signal, and why the signal
  // handler refused (it runs on the owner's thread).
  std::atomic<std::uint64_t> soft_preempts{0}, hard_preempts{0}, refused_disabled{0},
      refused_atomic{0}, refused_not_preemptible{0}, refused_runtime_code{0}, refused_stack{0};
};

/// bump() adds one to an owner-only counter: a plain add, published relaxed (one writer, so no
/// read-modify-write is needed; readers only want a recent count).
template <class A>
inline void bump(A& counter, std::uint64_t n = 1) noexcept {
  counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

/// worker: the three parts, plus the OS thread that runs the loop (started and joined by
/// lifecycle.cpp under scheduler_impl::lifecycle_mu).
struct alignas(64) worker : worker_owned, worker_shared, worker_counters {
  worker(scheduler_impl* s, unsigned i, std::size_t deque_capacity)
      : worker_owned(s, i), worker_shared(deque_capacity) {}

  std::thread thread;
};

static_assert(alignof(worker_shared) == 64 && alignof(worker_counters) == 64,
              "the shared groups and the stats start cache lines of their own");

}  // namespace stackless::detail
