// SPDX-License-Identifier: Apache-2.0
// tests/sync/channel_fixture.hpp — what the channel and sync tests share on top of the runtime
// tests' fixture (tests/runtime/fixture.hpp: runtime_test over workers ∈ {1, 2, 4}, the
// clean-teardown check, scaled(), wait_until / yield_until and the hang guards).
//
// - counted: a value type that counts its copies and moves (channels must never copy).
// - poke: an exception to raise into a parked tasklet.
// - wait_balance(ch, b): waits (from a plain thread or a tasklet) until ch.balance() == b.
// - all_blocked(ts): every tasklet of ts is parked.
// - in_tasklet_and_thread(s, f), parked(t), eventually(p), spin_until(p): the sync tests' ways
//   of running a check both ways and of waiting for a tasklet to get somewhere.
// - finished(ts): none of ts is alive.
//
// Tests never assert timing: every wait here is a hang guard.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "fixture.hpp"
#include "stackless/sync.hpp"

namespace stackless_test {

using stackless::channel;
using stackless::channel_closed;
using stackless::tasklet;
using stackless::tasklet_exit;
namespace this_tasklet = stackless::this_tasklet;

/// poke is thrown into parked tasklets by raise_exception(), and sent by send_exception().
struct poke {
  int n;
};

/// counted counts, process-wide, every copy and move of any counted value.
struct counted {
  static inline std::atomic<long> copies{0};
  static inline std::atomic<long> moves{0};
  static inline std::atomic<long> live{0};
  static void reset() {
    copies = 0;
    moves = 0;
  }

  int v = 0;
  explicit counted(int x = 0) : v(x) { live.fetch_add(1); }
  counted(const counted& o) : v(o.v) {
    copies.fetch_add(1);
    live.fetch_add(1);
  }
  counted(counted&& o) noexcept : v(o.v) {
    o.v = -1;
    moves.fetch_add(1);
    live.fetch_add(1);
  }
  counted& operator=(const counted& o) {
    v = o.v;
    copies.fetch_add(1);
    return *this;
  }
  counted& operator=(counted&& o) noexcept {
    v = o.v;
    o.v = -1;
    moves.fetch_add(1);
    return *this;
  }
  ~counted() { live.fetch_sub(1); }
};

/// wait_balance() waits until ch.balance() == b: polls from a plain thread, yields in a tasklet.
template <class T>
bool wait_balance(const channel<T>& ch, int b, std::chrono::milliseconds guard = 20s) {
  auto pred = [&] { return ch.balance() == b; };
  return in_tasklet() ? yield_until(pred, guard) : wait_until(pred, guard);
}

/// all_blocked(): every tasklet of ts is parked.
template <class R>
bool all_blocked(const std::vector<tasklet<R>>& ts) {
  for (const auto& t : ts)
    if (!t.blocked()) return false;
  return true;
}

/// finished(): no tasklet of ts is alive.
template <class R>
bool finished(const std::vector<tasklet<R>>& ts) {
  for (const auto& t : ts)
    if (t.alive()) return false;
  return true;
}

/// wait_blocked() waits until every tasklet of ts is parked.
template <class R>
bool wait_blocked(const std::vector<tasklet<R>>& ts, std::chrono::milliseconds guard = 60s) {
  auto pred = [&] { return all_blocked(ts); };
  return in_tasklet() ? yield_until(pred, guard) : wait_until(pred, guard);
}

/// wait_parked() waits until every tasklet of ts is parked and then until ch.balance() == b:
/// each of them has published its waiter in the channel.
template <class T, class R>
bool wait_parked(const channel<T>& ch, const std::vector<tasklet<R>>& ts, int b) {
  return wait_blocked(ts) && wait_balance(ch, b);
}

/// in_tasklet_and_thread() runs f in a tasklet of s and then on this plain thread.
template <class F>
void in_tasklet_and_thread(sl::scheduler& s, F f) {
  {
    SCOPED_TRACE("in a tasklet");
    s.block_on(f);
  }
  {
    SCOPED_TRACE("on a plain thread");
    f();
  }
}

/// parked() waits until t is parked (or has ended: then false).
template <class R>
bool parked(const tasklet<R>& t) {
  auto pred = [&] { return t.blocked() || !t.alive(); };
  if (!(in_tasklet() ? yield_until(pred) : wait_until(pred))) return false;
  return t.blocked();
}

/// eventually() polls `p` until it holds (yielding in a tasklet, sleeping on a plain thread);
/// false only when the hang guard passed.
template <class P>
bool eventually(P p, std::chrono::milliseconds guard = 60s) {
  return in_tasklet() ? yield_until(p, guard) : wait_until(p, guard);
}

/// spin_until() is eventually() for the handshakes of race loops: it yields (the tasklet or the
/// thread) for a while, then backs off with 20 µs sleeps — a poller that only yields would keep
/// a CPU from the thread it waits for when the machine has fewer cores than busy threads.
template <class P>
bool spin_until(P p, std::chrono::milliseconds guard = 60s) {
  const auto end = std::chrono::steady_clock::now() + guard;
  for (unsigned i = 1; !p(); ++i) {
    if (i < 64) {
      relax();
      continue;
    }
    if (std::chrono::steady_clock::now() > end) return p();
    if (in_tasklet()) {
      this_tasklet::sleep_for(20us);
    } else {
      std::this_thread::sleep_for(20us);
    }
  }
  return true;
}

}  // namespace stackless_test
