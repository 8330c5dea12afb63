// SPDX-License-Identifier: Apache-2.0
// runtime/src/scheduler.cpp — the path of a tasklet through the scheduler, outside the worker
// loop: submit() gives a new tasklet an id and a place in the registry and queues it;
// make_runnable() queues a woken or resumed one; finish() ends one (its stack back to the cache,
// its joiners woken, its error reported, its registry entry dropped). The registry of live
// tasklets is sharded per worker (plus one shard for plain threads).
//
// Where a runnable tasklet goes (the queues themselves are worker.cpp's):
//   spawned or woken by a running tasklet    → that worker's runnext (or the back of its yield
//                                              list: Stackless's channel preference)
//   woken on the scheduler side (a timer)    → that worker's deque, waking an idle worker
//   pinned (atomic scope, hard-preempted)    → its home worker's inbox
//   from a plain thread or another scheduler → the injection queue, waking an idle worker
#include <cstdio>
#include <string>
#include <system_error>

#include "context.hpp"
#include "scheduler_impl.hpp"
#include "trace.hpp"

namespace stackless::detail {

namespace {
std::atomic<std::uint64_t> g_next_id_block{1};  // process-wide ids, handed out in blocks
constexpr std::uint64_t id_block = 1024;

// relaxed: only the uniqueness of the block matters (the RMW gives it); no data rides on it.
std::uint64_t plain_next_id() {
  return g_next_id_block.fetch_add(1, std::memory_order_relaxed) * id_block;
}
}  // namespace

[[noreturn]] void throw_usage(const char* what) { throw usage_error(what); }

void release(tcb* t) noexcept {
  // acq_rel: every holder's release orders its uses of t before its decrement; the last one's
  // acquire pairs with them all, so the delete comes after every use (acquire() is relaxed).
  if (t->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete t->base();
}

// ---- the registry ----------------------------------------------------------------------------

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
  if (t->reg_prev)
    t->reg_prev->reg_next = t->reg_next;
  else
    s.head = t->reg_next;
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

// ---- submitting and waking -------------------------------------------------------------------

// Inline into its one caller, submit() below: a spawn pays for one call, not two.
[[gnu::always_inline]] inline void scheduler_impl::submit(tcb* t) {
  t->sched = this;
  if (forked.load(std::memory_order_relaxed)) {  // relaxed: see forked
    release(t);                                  // the handle's reference
    release(t);                                  // ours
    check_not_forked();                          // throws
  }
  worker* w = current_worker();
  bool local = w && w->sched == this && w->current;
  // acquire: pairs with shutdown()'s seq_cst store (see there: a spawn that misses it is killed
  // by shutdown's next round).
  // acquire: pairs with the seq_cst store in close_admission() (admission.cpp).
  if (!local && refusing.load(std::memory_order_acquire)) {
    release(t);  // the handle's reference
    release(t);  // ours
    throw scheduler_closed("stackless: spawn() from a plain thread after shutdown() began");
  }
  if (closed.load(std::memory_order_acquire)) {
    if (!local) {
      release(t);  // the handle's reference
      release(t);  // ours
      throw scheduler_closed("stackless: spawn() on a scheduler that was shut down");
    }
    // relaxed: t is not published yet; the queue push below publishes it with its state.
    t->irq.store(IRQ_KILLED, std::memory_order_relaxed);  // born killed: it will never run
  }
  // stack_guard = always: its guarded stack is reserved now, so that spawn() is what fails past
  // the mapping budget (stack.hpp); finish() gives the slot back.
  if (opts.stack_guard == stack_guard_policy::always && !reserve_guarded()) {
    release(t);  // the handle's reference
    release(t);  // ours
    throw std::system_error(
        std::make_error_code(std::errc::resource_unavailable_try_again),
        "stackless: spawn(): options::stack_guard is always and " +
            std::to_string(guarded_limit()) +
            " tasklets with guarded stacks are live (3/8 of vm.max_map_count, the mapping "
            "budget); raise vm.max_map_count or use stack_guard_policy::canary_beyond_budget");
  }
  if (local) {
    if (w->id_next == w->id_end) {
      w->id_next = plain_next_id();
      w->id_end = w->id_next + id_block;
    }
    t->id = w->id_next++;
    bump(w->spawned);
    trace_spawn(*this, t);
    register_tasklet(t, w->index);
    // relaxed: published by the queue push (runnext's acq_rel exchange).
    set_tstate(t, S_RUNNABLE, std::memory_order_relaxed);
    // The new tasklet runs next; the one it displaces becomes stealable, worth a wakeup. (Chaos
    // mode: or after everything runnable here.)
    if (chaos_roll(*w, 2))
      push_back_local(*w, t);
    else
      push_runnext(*w, t);
  } else {
    t->id = plain_next_id();  // a whole block per plain-thread spawn: ids stay unique and cheap
    plain_spawned.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count for stats()
    trace_spawn(*this, t);
    register_tasklet(t, nworkers);
    // relaxed: published by the injection queue's enqueue.
    set_tstate(t, S_RUNNABLE, std::memory_order_relaxed);
    inject(t);
  }
}

tcb* submit(scheduler_impl* s, tcb_base* b, const std::source_location& where) {
  tcb* t = tcb_of(b);
  t->spawned_at = where;
  // relaxed: nobody else can see t yet; submit() publishes it (its queues release).
  t->handles.store(1, std::memory_order_relaxed);
  t->refs.store(2, std::memory_order_relaxed);  // the handle + the scheduler's
  s->submit(t);
  return t;
}

void scheduler_impl::inject(tcb* t) {
  injection.enqueue(t);
  wake_one();
}

void scheduler_impl::make_runnable(tcb* t, bool to_back) {
  // Inherited across fork() (a plain thread of the child completed a channel operation with a
  // parked tasklet): nothing will run it again, and waking a worker could take a lock that a
  // thread of the parent held at the fork. It stays where it is.
  if (forked.load(std::memory_order_relaxed)) return;  // relaxed: see forked
  if (take_pause(t)) return;  // pause() asked while it ran, before it parked
  // relaxed: published by the queue push below (the claiming worker's acquire CAS on the state
  // comes after the queue's own acquire).
  set_tstate(t, S_RUNNABLE, std::memory_order_relaxed);
  if (pinned(t) && t->home) {  // pinned (this_tasklet::atomic, hard-preempted): back to its worker
    inbox_push(*t->home, t);
    return;
  }
  worker* w = current_worker();
  if (w && w->sched == this) {
    if (w->current) {
      // Woken by a running tasklet: it runs next, here (Go's ready(), runnext = true), or
      // after everything runnable here (Stackless's channel preference).
      if (to_back || chaos_roll(*w, 2))
        push_back_local(*w, t);
      else
        push_runnext(*w, t);
    } else {
      push_local(*w, t, true);  // woken from the scheduler side (a timer)
    }
    return;
  }
  inject(t);
}

void scheduler_impl::report(tcb* t, std::exception_ptr e, std::string what) {
  t->lk.lock();
  error_report r{t->id, t->name, std::move(e), std::move(what), t->spawned_at};
  t->lk.unlock();
  try {
    sink->fn(r);
  } catch (...) {
    std::fprintf(stderr, "stackless: options::on_error threw; report of tasklet #%llu lost\n",
                 static_cast<unsigned long long>(r.id));
  }
}

// ---- the end of a tasklet --------------------------------------------------------------------

namespace {
// recycle_stack() puts the stack of t, which is off it for good, in w's cache (half of a full
// cache goes back to the pool first).
void recycle_stack(scheduler_impl& s, worker& w, tcb* t) {
  if (!t->stk) return;  // it never got one (end_unstarted(), worker.cpp)
  context_destroy(t->ctx);
  if (w.stack_cache.size() >= 32) {
    s.stacks.put(w.stack_cache.data() + 16, w.stack_cache.size() - 16);
    w.stack_cache.resize(16);
  }
  w.stack_cache.push_back(t->stk);
  // relaxed: a count for stats(), which reads it on its own.
  w.stack_cache_size.store(w.stack_cache.size(), std::memory_order_relaxed);
  t->stk = nullptr;
  bump(w.stacks_released);
}

// wake_joiners() marks t DEAD and wakes everyone waiting for its end.
void wake_joiners(tcb* t) {
  t->lk.lock();
  // DEAD, then read handles: a Dekker pair with handle_release() (tasklet.cpp: handles, then
  // state, both seq_cst) when there is an error to report; otherwise release suffices — it
  // pairs with the acquire loads of the state (dead(), is_alive(), join), which then see the
  // outcome written before.
  set_tstate(t, S_DEAD, t->error ? std::memory_order_seq_cst : std::memory_order_release);
  waiter* j = std::exchange(t->joiners, nullptr);
  while (j) {
    waiter* next = j->next;
    j->linked = false;
    j->next = j->prev = nullptr;
    wake(*j);  // under t->lk, as park.cpp requires
    j = next;
  }
  t->lk.unlock();
}
}  // namespace

void scheduler_impl::finish(worker& w, tcb* t) {
  recycle_stack(*this, w, t);  // the tasklet is off its stack for good

  // Swallowed: tasklet_exit was thrown in it, and it still returned normally. (Killed while it
  // ran, but ended before it reached a suspension point: nothing was swallowed.)
  bool swallowed = t->exit_thrown && !t->ended_by_kill && !t->error;
  if (swallowed) {
    t->ended_by_kill = true;
    report(t, nullptr,
           "swallowed tasklet_exit (a catch (...) without rethrow); the tasklet ended anyway");
  }
  if (t->error) {
    sink->acquire();
    t->sink = sink;  // whoever drops the last handle may need it after we are gone
  }
  // submit() took a guarded-stack slot: given back before the joiners wake, so that a joiner
  // may spawn in its place at once.
  if (opts.stack_guard == stack_guard_policy::always) release_guarded();
  // relaxed: a flag shutdown(deadline) sets before it waits and reads the counts after the
  // workers are joined (admission.cpp); an end that misses the flag is not counted. Before
  // the joiners wake: a tasklet someone joined before shutdown() began is never counted.
  if (__builtin_expect(counting_ends.load(std::memory_order_relaxed), 0)) count_end(t);
  wake_joiners(t);
  // seq_cst: the second half of the Dekker pair with handle_release() (the DEAD store above).
  // The exchange (acq_rel) makes exactly one of finish() and handle_release() report.
  if (t->error && t->handles.load(std::memory_order_seq_cst) == 0 &&
      !t->error_reported.exchange(true, std::memory_order_acq_rel))
    report(t, t->error, {});
  // Leave the registry (live count) only now: drain() returns once every tasklet has ended
  // *and* its error, if any, has been reported.
  unregister_tasklet(t);
  // seq_cst: the Dekker pair with drain()/shutdown() (they count themselves in drain_waiters,
  // then read live(); we dropped live above, then read them).
  if (drain_waiters.load(std::memory_order_seq_cst) > 0 && live() == 0) {
    drain_word.fetch_add(1, std::memory_order_release);  // pairs with the acquire in drain()
    futex_wake(&drain_word, INT32_MAX);
  }
  release(t);  // the scheduler's reference
}

}  // namespace stackless::detail
