// SPDX-License-Identifier: Apache-2.0
// stackless/sync/parallel.hpp — parallel algorithms on tasklets: parallel_for, parallel_reduce
// (oneTBB's, Cilk's spawn/sync) and map_reduce (map_reduce.hpp).
//
// How they split. A call splits its index range in halves; it spawns a tasklet for the right
// half and keeps the left one, again and again, until what it keeps is at most `grain` indices;
// it runs those, then joins the tasklets it spawned (the spawner keeps the rest: each spawn goes
// to the worker's runnext slot and, through its local queue, to thieves — so an idle worker
// steals the biggest piece first, as in Cilk's work-first scheduling). grain 0 picks
// n / (8 × workers) — eight pieces per worker, enough to even out a skewed body — and on one
// worker the whole range runs inline, with no spawn at all.
//
// Errors and kills. The first exception a body throws is rethrown by the call once every piece
// has ended; pieces that had not started yet do not start. A kill of the calling tasklet
// (tasklet_exit) is passed to its pieces, and the call still waits for them before it unwinds:
// their bodies use the caller's stack frame.
//
// From a plain thread, pass the scheduler: parallel_for(sched, first, last, f) runs the call as
// a tasklet of `sched` and blocks the thread until it ends (scheduler::block_on()).
#pragma once

#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <iterator>
#include <mutex>
#include <optional>
#include <ranges>
#include <type_traits>
#include <utility>

#include "stackless/runtime/errors.hpp"
#include "stackless/runtime/scheduler.hpp"
#include "stackless/runtime/tasklet.hpp"
#include "stackless/runtime/this_tasklet.hpp"

namespace stackless {

namespace detail::par {

/// first_error keeps the first exception of a split call; `failed` stops pieces not yet begun.
struct first_error {
  // relaxed: a hint that lets pieces skip their work; the exception itself is handed over
  // under `lk`, and join() orders every piece's writes before the caller reads them.
  std::atomic<bool> failed{false};
  std::mutex lk;  // a plain thread never waits on it for long: held for one pointer copy
  std::exception_ptr first;

  void fail(std::exception_ptr e) {
    {
      std::lock_guard g(lk);
      if (!first) first = std::move(e);
    }
    failed.store(true, std::memory_order_relaxed);
  }
  bool stopped() const { return failed.load(std::memory_order_relaxed); }
  void rethrow() {
    if (first) std::rethrow_exception(first);
  }
};

/// need_tasklet() refuses a call from a plain thread without a scheduler.
inline void need_tasklet(const char* what) {
  if (!current_tcb())
    throw usage_error(std::string("stackless: ") + what +
                      "() called outside a tasklet; pass the scheduler: " + what + "(sched, ...)");
}

/// width(lo, hi) is hi - lo (lo <= hi) as a count, and midpoint(lo, hi) is lo + width / 2. Both
/// are computed in the unsigned form of I's promoted type: in I itself, a range wider than I's
/// maximum (int from -2e9 to 2e9, or all of std::int64_t) overflowed — undefined behaviour that
/// in practice made pieces with hi < lo, or a piece that spawned itself again and again
/// (tests/sync/test_parallel.cpp, RangesWiderThanTheIndexTypeSplitExactly).
template <class I>
std::uint64_t width(I lo, I hi) {
  using U = std::make_unsigned_t<decltype(+lo)>;
  return static_cast<std::uint64_t>(static_cast<U>(static_cast<U>(hi) - static_cast<U>(lo)));
}
template <class I>
I midpoint(I lo, I hi) {
  using P = decltype(+lo);  // lo + width / 2 lies in [lo, hi]: no overflow in P
  return static_cast<I>(lo + static_cast<P>(width(lo, hi) / 2));
}

/// auto_grain() is the grain of a range of n indices when the caller gave 0.
inline std::uint64_t auto_grain(std::uint64_t n, std::uint64_t grain) {
  if (grain) return grain;
  const std::uint64_t w = this_tasklet::workers();
  if (w <= 1) return n ? n : 1;  // single-threaded: everything inline
  const std::uint64_t g = n / (8 * w);
  return g ? g : 1;
}

/// children are the tasklets one level of splitting spawned (at most one per halving: 64).
/// Their bodies refer to the spawner's frame, so the frame may not go before they end: the
/// destructor (a kill unwinding the spawner) kills and joins whatever is still running.
template <class R>
class children {
 public:
  children() = default;
  children(const children&) = delete;
  children& operator=(const children&) = delete;
  ~children() {
    const int left = n_ - joined_;  // children are joined newest first: these are [0, left)
    if (left == 0) return;
    for (int k = 0; k < left; ++k) kids_[k].kill(/*pending=*/true);
    for (int k = 0; k < left; ++k) {
      try {
        kids_[k].join();  // it ends: it was killed, and a piece never waits for its parent
      } catch (...) {
      }
    }
  }
  void add(tasklet<R> t) { kids_[n_++] = std::move(t); }
  int size() const { return n_; }
  /// join_newest() joins the newest child not joined yet (the piece next to the spawner's).
  R join_newest() {
    const int k = n_ - joined_ - 1;
    if constexpr (std::is_void_v<R>) {
      kids_[k].join();
      ++joined_;
    } else {
      R r = kids_[k].join();
      ++joined_;
      return r;
    }
  }

 private:
  tasklet<R> kids_[64];
  int n_ = 0;
  int joined_ = 0;
};

template <class I, class F>
void for_piece(I lo, I hi, std::uint64_t grain, F& f, first_error& err) {
  children<void> kids;
  // !err.stopped(): once a body has thrown, a piece that begins does not split either. It only
  // skipped its body before, and so still spawned its whole subtree of pieces (grain 1: one
  // tasklet per index) to skip theirs (tests/sync/test_parallel.cpp,
  // ExceptionIsRethrownAndPiecesNotBegunAreSkipped).
  while (!err.stopped() && width(lo, hi) > grain) {
    const I mid = midpoint(lo, hi);
    kids.add(spawn([mid, hi, grain, &f, &err] { for_piece(mid, hi, grain, f, err); }));
    hi = mid;
  }
  if (!err.stopped()) {
    try {
      if constexpr (std::is_invocable_v<F&, I, I>) {
        f(lo, hi);
      } else {
        for (I i = lo; i < hi; ++i) f(i);
      }
    } catch (const tasklet_exit&) {
      throw;
    } catch (...) {
      err.fail(std::current_exception());
    }
  }
  // The oldest child holds the rightmost piece; join the newest first (its piece is next to
  // ours, the likeliest to be done).
  for (int k = kids.size(); k-- > 0;) kids.join_newest();
}

template <class I, class T, class Map, class Combine>
T reduce_piece(I lo, I hi, std::uint64_t grain, const T& identity, Map& map, Combine& combine,
               first_error& err) {
  children<std::optional<T>> kids;
  while (!err.stopped() && width(lo, hi) > grain) {  // see for_piece()
    const I mid = midpoint(lo, hi);
    kids.add(spawn([mid, hi, grain, &identity, &map, &combine, &err]() -> std::optional<T> {
      return reduce_piece(mid, hi, grain, identity, map, combine, err);
    }));
    hi = mid;
  }
  T acc = identity;
  if (!err.stopped()) {
    try {
      if constexpr (std::is_invocable_v<Map&, I, I, T>) {
        acc = map(lo, hi, std::move(acc));
      } else {
        for (I i = lo; i < hi; ++i) acc = combine(std::move(acc), map(i));
      }
    } catch (const tasklet_exit&) {
      throw;
    } catch (...) {
      err.fail(std::current_exception());
    }
  }
  // Pieces combine left to right, so combine need not be commutative (only associative):
  // ours is leftmost, then the newest child's, ..., the oldest child's (rightmost).
  for (int k = kids.size(); k-- > 0;) {
    std::optional<T> r = kids.join_newest();
    if (r && !err.stopped()) {
      try {
        acc = combine(std::move(acc), std::move(*r));
      } catch (const tasklet_exit&) {
        throw;
      } catch (...) {
        err.fail(std::current_exception());
      }
    }
  }
  return acc;
}

}  // namespace detail::par

/// parallel_for(first, last, f[, grain]) calls f(i) for every i in [first, last), in parallel
/// over the caller's scheduler, and returns when all calls have returned. If f is callable as
/// f(lo, hi), it is called once per piece instead, with a subrange [lo, hi) — the fast form for
/// kernels. grain: the most indices one piece runs (0: automatic, see the top of this file).
/// Rethrows the first exception a call threw. Must be called from a tasklet (or use the
/// scheduler overload); last <= first does nothing.
template <std::integral I, class F>
void parallel_for(I first, I last, F&& f, std::uint64_t grain = 0) {
  detail::par::need_tasklet("parallel_for");
  if (!(first < last)) return;
  const std::uint64_t n = detail::par::width(first, last);  // not last - first: see width()
  detail::par::first_error err;
  detail::par::for_piece(first, last, detail::par::auto_grain(n, grain), f, err);
  err.rethrow();
}

/// parallel_for(sched, ...) is parallel_for() from any thread: it runs on `sched` and blocks the
/// calling thread (or parks the calling tasklet) until it is done.
template <std::integral I, class F>
void parallel_for(scheduler& sched, I first, I last, F&& f, std::uint64_t grain = 0) {
  sched.block_on([&] { parallel_for(first, last, f, grain); });
}

/// parallel_reduce(first, last, identity, map, combine[, grain]) folds map(i) over [first,
/// last): every piece starts from a copy of identity and folds acc = combine(acc, map(i)); the
/// pieces' results are combined left to right, so combine must be associative (not
/// commutative). If map is callable as map(lo, hi, acc) it folds a whole piece itself and
/// returns the new acc (oneTBB's form). Rethrows the first exception; from a tasklet.
template <std::integral I, class T, class Map, class Combine>
T parallel_reduce(I first, I last, T identity, Map&& map, Combine&& combine,
                  std::uint64_t grain = 0) {
  detail::par::need_tasklet("parallel_reduce");
  if (!(first < last)) return identity;
  const std::uint64_t n = detail::par::width(first, last);  // not last - first: see width()
  detail::par::first_error err;
  T r = detail::par::reduce_piece(first, last, detail::par::auto_grain(n, grain), identity, map,
                                  combine, err);
  err.rethrow();
  return r;
}

/// parallel_reduce(range, identity, map, combine[, grain]) folds map(element) over a
/// random-access range the same way.
template <std::ranges::random_access_range R, class T, class Map, class Combine>
requires std::ranges::sized_range<R> T parallel_reduce(R&& range, T identity, Map&& map,
                                                       Combine&& combine, std::uint64_t grain = 0) {
  auto b = std::ranges::begin(range);
  const auto n = static_cast<std::uint64_t>(std::ranges::size(range));
  auto m = [&](std::uint64_t i) { return map(b[static_cast<std::ptrdiff_t>(i)]); };
  return parallel_reduce(std::uint64_t{0}, n, std::move(identity), m, combine, grain);
}

/// parallel_reduce(sched, ...) is either form above from any thread (see parallel_for(sched)).
template <class... A>
auto parallel_reduce(scheduler& sched, A&&... a) {
  return sched.block_on([&] { return parallel_reduce(std::forward<A>(a)...); });
}

}  // namespace stackless

#include "stackless/sync/map_reduce.hpp"  // IWYU pragma: export
