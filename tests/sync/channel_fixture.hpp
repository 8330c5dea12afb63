// tests/sync/channel_fixture.hpp — what the channel tests share on top of the runtime tests'
// fixture (tests/runtime/fixture.hpp: runtime_test over workers ∈ {1, 2, 4}, the clean-teardown
// check, scaled(), wait_until / yield_until and the hang guards).
//
// - counted: a value type that counts its copies and moves (channels must never copy).
// - poke: an exception to raise into a parked tasklet.
// - wait_balance(ch, b): waits (from a plain thread or a tasklet) until ch.balance() == b.
// - all_blocked(ts): every tasklet of ts is parked.
// - finished(ts): none of ts is alive.
//
// Tests never assert timing: every wait here is a hang guard.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
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

}  // namespace stackless_test
