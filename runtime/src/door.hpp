// SPDX-License-Identifier: Apache-2.0
// runtime/src/door.hpp — what the rest of the runtime may ask of a tasklet's park door.
//
// The door's encoding (generation, reason and phase bits in tcb::door) is private to park.cpp;
// the worker loop, the timers and kill() use these named steps instead of decoding the word.
#pragma once

#include <cstdint>

#include "stackless/runtime/detail/tcb.hpp"

namespace stackless::detail {

/// door_finish_parking() is the worker's post-switch step of a park: PARKING → PARKED. False
/// when a waker already ended the park (phase WOKEN): the worker then requeues the tasklet.
bool door_finish_parking(tcb* t) noexcept;

/// door_park_on() tells whether park `gen` of t is still on (PARKING or PARKED): a timer entry
/// for an ended park is dead and is only dropped.
bool door_park_on(const tcb* t, std::uint64_t gen) noexcept;

/// door_interrupt() ends t's current park, if it has one, with `interrupted` (kill,
/// raise_exception). Its seq_cst load is the second half of the Dekker pair with park(): the
/// caller has already set t->irq (seq_cst). The caller holds a reference on t.
void door_interrupt(tcb* t) noexcept;

/// check_door_transition_for_test() runs the door's transition check (STACKLESS_ASSERT) on the
/// given generations and phases (0 running, 1 parking, 2 parked, 3 woken): for the death tests.
void check_door_transition_for_test(std::uint64_t from_gen, unsigned from_phase,
                                    std::uint64_t to_gen, unsigned to_phase) noexcept;

}  // namespace stackless::detail
