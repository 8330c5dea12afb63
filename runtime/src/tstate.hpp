// SPDX-License-Identifier: Apache-2.0
// runtime/src/tstate.hpp — a tasklet's lifecycle word (tcb::state): its states, the legal
// transitions between them, and the checks that every store and CAS of the word goes through.
//
//   NEW ──submit──▶ RUNNABLE ──pop──▶ RUNNING ──yield──▶ RUNNABLE
//                     │  ▲              │──park────▶ PARKED ──wake──▶ RUNNABLE
//                   pause resume        └──end─────▶ DEAD
//                     ▼  │
//                  PAUSED_QUEUED ──pop──▶ PAUSED ──resume──▶ RUNNABLE (pushed again)
//
//  - NEW: the control block was made; submit() (scheduler.cpp) stores RUNNABLE before the
//    tasklet is published in any queue.
//  - RUNNABLE: in exactly one run queue (a worker's runnext, deque, yield list or inbox, or the
//    injection queue). PAUSED_QUEUED: still physically in a queue but must not run; the worker
//    that pops it turns it into PAUSED and drops it (claim() in worker.cpp).
//  - The pop CAS (RUNNABLE → RUNNING) and the pause CAS (RUNNABLE → PAUSED_QUEUED, tasklet.cpp)
//    decide between a worker and pause(); resume() CASes PAUSED_QUEUED → RUNNABLE (nothing to
//    push) or PAUSED → RUNNABLE (push it: make_runnable()).
//  - A pause() that finds the tasklet RUNNING sets IRQ_PAUSE instead; take_pause() (tasklet.cpp)
//    honours it where the tasklet gives up its worker: RUNNING → PAUSED at a yield, PARKED →
//    PAUSED at the wake after a park, and RUNNABLE → PAUSED when resume()'s make_runnable() meets a
//    pause that raced with it (the tasklet is in no queue yet, so PAUSED, not PAUSED_QUEUED).
//  - make_runnable() stores RUNNABLE again after resume()'s CAS: RUNNABLE → RUNNABLE (or
//    PAUSED_QUEUED → RUNNABLE, when a pause() raced in between) — the one self-transition.
//  - run_for(): a tasklet that overran its slice goes RUNNING → PAUSED, handed to the host.
//  - PARKED is stored by the worker *before* it publishes the park (door phase PARKED,
//    after_switch() in worker.cpp), so the waker's RUNNABLE is always the later store (park.cpp).
//  - DEAD is stored (release) after the tasklet's outcome is written; readers acquire. Nothing
//    leaves DEAD.
//
// tstate_transition_ok() is this diagram in code. check_tstate_transition() asserts it (debug and
// sanitizer builds; nothing in release) and is called before every store and CAS of tcb::state;
// set_tstate() is the checked plain store. tstate_broken() reports a state a reader can never
// meet, in every build.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <source_location>

#include "stackless/runtime/internal/assert.hpp"
#include "stackless/runtime/internal/tcb.hpp"

namespace stackless::detail {

enum tstate : std::uint32_t {
  S_NEW = 0,  // tcb::state's initial value: not yet submitted
  S_RUNNABLE = 1,
  S_RUNNING = 2,
  S_PARKED = 3,
  S_PAUSED = 4,
  S_PAUSED_QUEUED = 5,
  S_DEAD = 6,
};

/// tstate_transition_ok() is the diagram above: true when tcb::state may go from `from` to `to`.
constexpr bool tstate_transition_ok(std::uint32_t from, std::uint32_t to) noexcept {
  switch (from) {
    case S_NEW:
      return to == S_RUNNABLE;
    case S_RUNNABLE:  // pop, pause, make_runnable()'s re-store after resume(), a raced pause
      return to == S_RUNNING || to == S_PAUSED_QUEUED || to == S_RUNNABLE || to == S_PAUSED;
    case S_RUNNING:  // yield, park, end, take_pause() at a yield / run_for()'s overrun
      return to == S_RUNNABLE || to == S_PARKED || to == S_DEAD || to == S_PAUSED;
    case S_PARKED:  // wake, take_pause() at the wake
      return to == S_RUNNABLE || to == S_PAUSED;
    case S_PAUSED_QUEUED:  // pop (dropped), resume
      return to == S_PAUSED || to == S_RUNNABLE;
    case S_PAUSED:  // resume
      return to == S_RUNNABLE;
    default:  // DEAD is final; anything else is not a state
      return false;
  }
}

/// check_tstate_transition() asserts tstate_transition_ok(from, to) (debug and sanitizer builds;
/// nothing in release). The state word printed is from << 32 | to.
inline void check_tstate_transition(std::uint32_t from, std::uint32_t to) noexcept {
  STACKLESS_ASSERT_STATE(tstate_transition_ok(from, to), "tasklet state: illegal transition",
                         static_cast<std::uint64_t>(from) << 32 | to);
  (void)from;
  (void)to;
}

/// set_tstate() stores `to` in t->state with `order`, after checking the transition from the
/// value it replaces (that load is made in debug and sanitizer builds only; a relaxed load: the
/// caller has synchronised with the previous store, or races only with a transition the table
/// also allows).
inline void set_tstate(tcb* t, std::uint32_t to, std::memory_order order) noexcept {
#if STACKLESS_ASSERTS_ON
  check_tstate_transition(t->state.load(std::memory_order_relaxed), to);
#endif
  t->state.store(to, order);
}

/// tstate_broken() reports a tasklet found in a state its reader can never meet (a queue popped a
/// tasklet that is neither RUNNABLE nor PAUSED_QUEUED) and aborts — in every build: going on
/// would run a tasklet twice or run a dead one. Cold and never inlined: inlined into claim(), its
/// arguments cost the pop's CAS loop two register moves (callgrind: +0.7% instructions per yield).
[[noreturn, gnu::cold, gnu::noinline]] inline void tstate_broken(
    const tcb* t, std::uint32_t state, const char* what,
    std::source_location at = std::source_location::current()) noexcept {
  std::fprintf(stderr, "stackless: tasklet #%llu is in state %u\n",
               static_cast<unsigned long long>(t->id), state);
  assert_failed("the tasklet is in a state this reader can meet (tstate.hpp)", what, at.file_name(),
                static_cast<int>(at.line()), static_cast<long long>(state));
}

}  // namespace stackless::detail
