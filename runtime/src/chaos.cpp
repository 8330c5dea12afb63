// SPDX-License-Identifier: Apache-2.0
// runtime/src/chaos.cpp — chaos mode (options::chaos, STACKLESS_CHAOS=<seed>): Seastar's debug
// shuffling, for finding code that is correct only by luck of the schedule.
//
// The runtime makes many choices that no guarantee pins down; chaos mode makes each at random,
// from a per-worker generator seeded with the seed and the worker's index (so a single-worker
// scheduler replays the same schedule for the same seed):
//   - where a woken or spawned tasklet goes: runnext, or the back of the local queue
//     (scheduler.cpp: spawn(), make_runnable(); worker.cpp: a wake that beat the park);
//   - whether a thief takes a victim's runnext in its first rounds (worker.cpp: spin_steal());
//   - whether a blocking call yields at its entry (chaos_point(), called by sync/src and the
//     runtime's own blocking calls before they take any lock; no interrupt is delivered there);
//   - how late a timer fires: 0-200 µs after its deadline (timers.cpp: add_timer());
//   - whether an idle worker wakes early, as from a spurious futex wake-up (idle.cpp; never while
//     it watches for a deadlock, whose grace it would cut short).
// Invariant: every choice is one the runtime could make without chaos; nothing runs early, no
// value moves, no interrupt is delivered at a new place. So every test must pass under chaos
// except one that asserts an order the documentation does not promise.
#include <cstdlib>

#include "scheduler_impl.hpp"
#include "stackless/runtime/internal/scheduling.hpp"

namespace stackless::detail {

std::atomic<unsigned> chaos_schedulers{0};

std::uint64_t chaos_seed(const options& o) {
  if (o.chaos) return o.chaos;
  const char* e = std::getenv("STACKLESS_CHAOS");
  if (!e || !*e) return 0;
  const std::uint64_t v = std::strtoull(e, nullptr, 0);
  return v ? v : 1;  // STACKLESS_CHAOS=0 or a non-number still asks for chaos
}

bool scheduler_impl::chaos_roll_slow(worker_owned& w, unsigned one_in) noexcept {
  std::uint64_t x = w.chaos_rng;  // xorshift64*
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  w.chaos_rng = x;
  return (x * 2685821657736338717ULL >> 33) % one_in == 0;
}

std::int64_t scheduler_impl::chaos_ns(worker_owned& w, std::int64_t max_ns) noexcept {
  if (!chaos) return 0;
  std::int64_t n = 0;
  for (int bit = 0; bit < 8; ++bit) n = n * 2 + (chaos_roll(w, 2) ? 1 : 0);
  return max_ns * n / 255;
}

void chaos_point_slow() noexcept {
  worker* w = current_worker();
  if (!w || !w->current || !w->sched->chaos) return;
  if (w->sched->chaos_roll(*w, 4)) yield_now();
}

}  // namespace stackless::detail
