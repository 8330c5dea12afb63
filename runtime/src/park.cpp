// SPDX-License-Identifier: Apache-2.0
// runtime/src/park.cpp — the park/wake door.
//
// Every wait in the runtime goes through here (Go's gopark/goready, Boost.Fiber's
// resume_with): the waiting side publishes a waiter record and parks; a waker ends the park.
//
// The door is one atomic word per tasklet:   gen << 4 | reason << 2 | phase
//   phase: RUNNING 0, PARKING 1 (publishing; still on its stack), PARKED 2 (off its stack, the
//          worker has run the unlock step), WOKEN 3 (a waker won; `reason` says which).
//   gen:   bumped by every prepare_park(), so a stale waiter record (a timer that fires after the
//          park ended, a list entry of an earlier park) can never end a later park.
//
// Invariants:
//  - Exactly one wake() wins a park: the CAS from PARKING/PARKED to WOKEN with the record's gen.
//    Notify, timeout, kill, raise_exception and deadlock all race through that one CAS.
//  - If the winner saw PARKED, the winner makes the tasklet runnable. If it saw PARKING, the
//    worker's post-switch CAS (PARKING → PARKED, worker.cpp) fails and the worker requeues it.
//    Either way it is queued exactly once.
//  - A waker calls wake(w) while it holds the lock of the list w is on (or holds a reference on
//    the tasklet, as timers and kill() do, or the tasklet waits for it to finish, as a channel
//    select waits out its winner's SEL_WAKING: sync/src/chan_engine.hpp). The woken side unlinks
//    itself under that same lock when it was woken by someone else, so nobody touches a record —
//    or a plain thread's stack, or a control block — after its owner moved on.
//  - Kill vs. park is a Dekker pair: kill() sets irq then reads the door; park() writes PARKING
//    then reads irq (both seq_cst). At least one sees the other: either kill() wakes the park or
//    park() refuses to sleep.
#include "stackless/runtime/internal/park.hpp"

#include <time.h>

#include <algorithm>
#include <new>
#include <thread>

#include "door.hpp"
#include "scheduler_impl.hpp"
#include "stackless/runtime/internal/futex.hpp"
#include "stackless/runtime/timeout.hpp"
#include "trace.hpp"

namespace stackless::detail {

namespace {
// The encoding of tcb::door, known to this file only (door.hpp gives the rest of the runtime
// named steps).
constexpr std::uint64_t P_RUNNING = 0, P_PARKING = 1, P_PARKED = 2, P_WOKEN = 3;
constexpr std::uint64_t phase_mask = 3, reason_shift = 2, gen_shift = 4;
constexpr std::uint64_t low_mask = (std::uint64_t{1} << gen_shift) - 1;  // reason and phase

inline std::uint64_t gen_of(std::uint64_t d) { return d >> gen_shift; }
inline std::uint64_t phase_of(std::uint64_t d) { return d & phase_mask; }
inline wake_reason reason_of(std::uint64_t d) {
  return static_cast<wake_reason>((d >> reason_shift) & 3);
}
inline std::uint64_t make(std::uint64_t gen, wake_reason r, std::uint64_t phase) {
  return gen << gen_shift | std::uint64_t(r) << reason_shift | phase;
}
inline bool park_on(std::uint64_t d) { return phase_of(d) == P_PARKING || phase_of(d) == P_PARKED; }

/// check_door_transition() is the door's state machine: RUNNING → PARKING (prepare_park, a new
/// generation), PARKING → RUNNING (cancel_park), PARKING → PARKED (the worker), PARKING/PARKED →
/// WOKEN (one waker), WOKEN → PARKING (the next prepare_park). Nothing else.
inline void check_door_transition(std::uint64_t from, std::uint64_t to) noexcept {
  [[maybe_unused]] const std::uint64_t f = phase_of(from), t = phase_of(to);
  STACKLESS_ASSERT_STATE(
      (t == P_PARKING && (f == P_RUNNING || f == P_WOKEN) && gen_of(to) == gen_of(from) + 1) ||
          (f == P_PARKING && t == P_RUNNING && gen_of(to) == gen_of(from)) ||
          (f == P_PARKING && t == P_PARKED && gen_of(to) == gen_of(from)) ||
          (park_on(from) && t == P_WOKEN && gen_of(to) == gen_of(from)),
      "park door: illegal transition", from << 32 | (to & 0xffffffff));
}
}  // namespace

void check_door_transition_for_test(std::uint64_t from_gen, unsigned from_phase,
                                    std::uint64_t to_gen, unsigned to_phase) noexcept {
  check_door_transition(make(from_gen, wake_reason::notified, from_phase),
                        make(to_gen, wake_reason::notified, to_phase));
}

bool door_finish_parking(tcb* t) noexcept {
  std::uint64_t d = t->door.load(std::memory_order_relaxed);
  if (phase_of(d) != P_PARKING) return false;  // a waker won while it was still on its stack
  const std::uint64_t parked = (d & ~phase_mask) | P_PARKED;
  check_door_transition(d, parked);
  // acq_rel: pairs with the acquire load and the CAS in wake(), so a waker that sees PARKED also
  // sees tcb::state == PARKED (stored before this, release) and may requeue the tasklet.
  return t->door.compare_exchange_strong(d, parked, std::memory_order_acq_rel);
}

bool door_park_on(const tcb* t, std::uint64_t gen) noexcept {
  // acquire: pairs with the CAS of the waker that ended the park (a timer that reads WOKEN
  // drops its entry; one that reads an old PARKED only fires and loses).
  const std::uint64_t d = t->door.load(std::memory_order_acquire);
  return gen_of(d) == gen && park_on(d);
}

void door_interrupt(tcb* t) noexcept {
  // seq_cst: the Dekker pair with park() — kill() stored irq (seq_cst) before this load; park()
  // stores PARKING (seq_cst in prepare_park) before it reads irq. One of them sees the other.
  const std::uint64_t d = t->door.load(std::memory_order_seq_cst);
  if (park_on(d)) wake_park(t, gen_of(d), wake_reason::interrupted);
}

waiter* prepare_park(const char* what, std::uint64_t target) {
  tcb* t = current_tcb();
  if (!t) throw_usage("stackless: prepare_park() outside a tasklet");
  return prepare_park_of(t, what, target);
}

waiter* prepare_park_of(tcb* t, const char* what, std::uint64_t target) noexcept {
  const std::uint64_t d = t->door.load(std::memory_order_relaxed);  // owner's own word
  const std::uint64_t gen = gen_of(d) + 1;
  check_door_transition(d, make(gen, wake_reason::notified, P_PARKING));
  // seq_cst: the Dekker pair with kill() (door_interrupt()): this store, then park()'s irq load.
  t->door.store(make(gen, wake_reason::notified, P_PARKING), std::memory_order_seq_cst);
  t->wait.t = t;
  t->wait.gen = gen;
  t->wait.word = nullptr;
  t->wait_what = what;
  t->wait_target = target;
  return &t->wait;
}

void cancel_park() noexcept {
  tcb* t = current_tcb();
  if (!t) return;
  std::uint64_t d = t->door.load(std::memory_order_relaxed);
  if (phase_of(d) == P_PARKING) {
    const std::uint64_t running = (d & ~low_mask) | P_RUNNING;
    check_door_transition(d, running);
    // acq_rel: against a waker's CAS on the same park (pairs with wake()); if the waker won, its
    // interrupt stays pending in irq.
    t->door.compare_exchange_strong(d, running, std::memory_order_acq_rel);
  }
}

wake_reason park(function_ref unlock, std::int64_t deadline_ns) {
  tcb* t = current_tcb();
  if (!t) throw_usage("stackless: park() outside a tasklet");
  std::uint64_t d = t->door.load(std::memory_order_relaxed);  // owner's own word
  // An interrupt already pending: do not sleep (unless unwinding: see throw_if_interrupted()).
  // seq_cst: the second half of the Dekker pair with kill() (prepare_park stored PARKING, seq_cst).
  if ((t->irq.load(std::memory_order_seq_cst) & (IRQ_KILLED | IRQ_EXC)) &&
      std::uncaught_exceptions() == 0 && t->irq_masked == 0) {
    unlock();
    const std::uint64_t woken = make(gen_of(d), wake_reason::interrupted, P_WOKEN);
    if (phase_of(d) == P_PARKING) check_door_transition(d, woken);
    // acq_rel / acquire: pair with a waker's CAS on this park (wake()).
    if (phase_of(d) == P_PARKING &&
        t->door.compare_exchange_strong(d, woken, std::memory_order_acq_rel))
      return wake_reason::interrupted;
    return reason_of(t->door.load(std::memory_order_acquire));  // a waker won first: honour it
  }
  if (deadline_ns != no_deadline) t->sched->add_timer(deadline_ns, t, gen_of(d));
  worker* w = current_worker();
  w->unlock = &unlock;
  switch_out(t, switch_why::park);
  d = t->door.load(std::memory_order_acquire);  // pairs with the winner's CAS
  return reason_of(d);
}

bool wake(waiter& w, wake_reason r, bool to_back) {
  if (w.notify) {  // a proxy (when_any/when_all): the owner's callback decides
    w.notify(&w, r);
    return true;
  }
  if (std::atomic<std::uint32_t>* word = w.word) {
    // A plain thread: only the waker that took w from its list gets here. The store lets the
    // thread return and reuse its stack, so after it we touch neither w nor the word's memory
    // (futex_wake only uses the address as a key).
    word->store(1 + static_cast<std::uint32_t>(r),
                std::memory_order_release);  // pairs with the acquire in thread_waiter::wait()
    futex_wake(word);
    return true;
  }
  tcb* t = w.t;
  const trace_waker tw = trace_wake_prepare(t);  // read while t surely lives (trace.hpp)
  std::uint64_t d = t->door.load(
      std::memory_order_acquire);  // pairs with the CASes below / door_finish_parking()
  for (;;) {
    if (gen_of(d) != w.gen) return false;
    std::uint64_t ph = phase_of(d);
    if (ph != P_PARKING && ph != P_PARKED) return false;
    const std::uint64_t woken = make(w.gen, r, P_WOKEN);
    check_door_transition(d, woken);
    // acq_rel: pairs with the worker's PARKING → PARKED CAS (door_finish_parking()) and with the
    // parked tasklet's acquire load in park(): what the waker wrote before is visible to it.
    if (t->door.compare_exchange_weak(d, woken, std::memory_order_acq_rel)) {
      trace_wake(tw, t, gen_of(d), r, ph == P_PARKED);          // before the requeue publishes t
      if (ph == P_PARKED) t->sched->make_runnable(t, to_back);  // else the worker requeues it
      return true;
    }
  }
}

bool wake_park(tcb* t, std::uint64_t gen, wake_reason r, bool to_back) {
  waiter w;  // a fresh record: (t, gen) is all a waker without a listed record knows
  w.t = t;
  w.gen = gen;
  return wake(w, r, to_back);
}

std::uint64_t current_park_gen() noexcept {
  tcb* t = current_tcb();
  return t ? gen_of(t->door.load(std::memory_order_relaxed)) : 0;  // owner's own word
}

void throw_if_interrupted() {
  tcb* t = current_tcb();
  if (!t) return;
  std::uint32_t f = t->irq.load(std::memory_order_acquire);  // pairs with kill()/raise()'s fetch_or
  if (!f) return;
  // Never throw while unwinding: a destructor that waits (for a child, a lock) would turn the
  // throw into std::terminate. The interrupt stays pending for the next suspension point.
  if (std::uncaught_exceptions() > 0) return;
  if (t->irq_masked > 0) return;  // an irq_mask scope: delivered after it ends
  if (f & IRQ_KILLED) {
    t->exit_thrown = true;
    throw tasklet_exit{};
  }
  if (f & IRQ_EXC) {
    t->lk.lock();
    std::exception_ptr e = std::move(t->pending);
    t->pending = nullptr;
    t->irq.fetch_and(~IRQ_EXC,
                     std::memory_order_relaxed);  // relaxed: `pending` is guarded by t->lk
    t->lk.unlock();
    if (e) std::rethrow_exception(e);
  }
}

void thread_waiter::cancel() noexcept {
  std::uint32_t z = 0;
  // Only if no waker has signalled: a wake stores into a 0 word under the list's lock; whichever
  // comes first stands (the waiter then unlinks itself, or finds itself unlinked: notified).
  // acq_rel: pairs with wait()'s acquire load (and against a waker's release store).
  if (word.compare_exchange_strong(z, 1 + static_cast<std::uint32_t>(wake_reason::cancelled),
                                   std::memory_order_acq_rel))
    futex_wake(&word);
}

wake_reason thread_waiter::wait(std::int64_t deadline_ns) {
  for (;;) {
    std::uint32_t v = word.load(std::memory_order_acquire);  // pairs with the release in wake()
    if (v) return static_cast<wake_reason>(v - 1);
    if (deadline_ns != no_deadline && now_ns() >= deadline_ns) return wake_reason::timeout;
    futex_wait(&word, 0, deadline_ns);
  }
}

}  // namespace stackless::detail

namespace stackless::detail {

void wait_here::init_thread() noexcept {
  ::new (&tw_) thread_waiter();
  rec_ = &tw_.w;
}

wake_reason wait_here::wait_slow(function_ref unlock, std::int64_t deadline,
                                 const std::stop_token* st) {
  if (t_) {
    // A stop already requested runs the callback right here: the park ends at once. The
    // callback's destructor waits for a running callback, so none outlives this park.
    std::optional<std::stop_callback<stop_waker>> cb;
    if (st && st->stop_possible()) cb.emplace(*st, stop_waker{t_, rec_->gen, nullptr});
    return park(unlock, deadline);
  }
  unlock();
  std::optional<std::stop_callback<stop_waker>> cb;
  if (st && st->stop_possible()) cb.emplace(*st, stop_waker{nullptr, 0, &tw_});
  plain_thread_will_block();  // a single-worker scheduler nobody drives yet may hold the waker
  return tw_.wait(deadline);
}

void wait_here::cancel() noexcept {
  if (t_) cancel_park();
}

}  // namespace stackless::detail
