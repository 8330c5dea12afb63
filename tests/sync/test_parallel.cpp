// SPDX-License-Identifier: Apache-2.0
// test_parallel.cpp — parallel_for and parallel_reduce (sync/parallel.hpp) over workers ∈
// {1, 2, 4}: every index runs exactly once (per index and chunk forms, grain 1 / large /
// automatic, several index types, ranges wider than the index type's maximum), empty and reversed
// ranges, the first exception rethrown and the pieces not yet begun skipped, usage_error from a
// plain thread without a scheduler, the scheduler overloads, a kill of the calling tasklet (its
// pieces end before the call unwinds; nothing is left alive); parallel_reduce's sum against the
// sequential one, a non-commutative (associative) combine that must come out in index order, the
// chunk form map(lo, hi, acc), the range form, exceptions.
// Sizes shrink under the sanitizers (scaled()): a piece is a tasklet, and grain 1 spawns one per
// index.
// Orderings come from flags and parks, never from sleeps; no test asserts how long anything took.
#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "channel_fixture.hpp"
#include "stackless/sync/parallel.hpp"

namespace {

using namespace stackless_test;
using sl::parallel_for;
using sl::parallel_reduce;
using sl::usage_error;

class Parallel : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(Parallel);

/// hits counts the calls per index of [first, first + n).
struct hits {
  std::int64_t first;
  std::vector<std::atomic<int>> at;
  hits(std::int64_t f, std::size_t n) : first(f), at(n) {}
  void hit(std::int64_t i) {
    ASSERT_GE(i, first);
    ASSERT_LT(i - first, static_cast<std::int64_t>(at.size()));
    at[static_cast<std::size_t>(i - first)].fetch_add(1, std::memory_order_relaxed);
  }
  /// exactly_once() is "" when every index was hit once, else the first index that was not.
  std::string exactly_once() const {
    for (std::size_t k = 0; k < at.size(); ++k)
      if (int c = at[k].load(); c != 1)
        return "index " + std::to_string(first + static_cast<std::int64_t>(k)) + " ran " +
               std::to_string(c) + " times";
    return "";
  }
};

/// chunks records the subranges a chunk body was called with.
struct chunks {
  std::mutex mu;
  std::vector<std::pair<std::int64_t, std::int64_t>> seen;
  void add(std::int64_t lo, std::int64_t hi) {
    std::lock_guard g(mu);
    seen.emplace_back(lo, hi);
  }
  /// tiles() is "" when the recorded chunks are non-empty, at most `most` wide, and tile
  /// [first, last) exactly (no gap, no overlap); else what is wrong.
  std::string tiles(std::int64_t first, std::int64_t last, std::uint64_t most) {
    std::lock_guard g(mu);
    std::sort(seen.begin(), seen.end());
    std::int64_t at = first;
    for (auto [lo, hi] : seen) {
      if (lo != at)
        return "a chunk starts at " + std::to_string(lo) + ", expected " + std::to_string(at);
      if (!(lo < hi)) return "an empty chunk at " + std::to_string(lo);
      if (static_cast<std::uint64_t>(hi - lo) > most)
        return "chunk [" + std::to_string(lo) + ", " + std::to_string(hi) + ") is wider than " +
               std::to_string(most);
      at = hi;
    }
    if (at != last)
      return "the chunks end at " + std::to_string(at) + ", not " + std::to_string(last);
    return "";
  }
};

// ---- parallel_for -----------------------------------------------------------------------------

TEST_P(Parallel, ForRunsEveryIndexExactlyOnce) {
  const std::int64_t n = static_cast<std::int64_t>(scaled(20'000, 200));
  // SCOPED_TRACE stays on this thread: gtest keeps its trace per thread, and a tasklet may
  // resume on another worker's.
  for (std::uint64_t grain : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{7},
                              std::uint64_t{64}, std::uint64_t(n), std::uint64_t(10 * n)}) {
    SCOPED_TRACE("grain " + std::to_string(grain));
    sched().block_on([&] {
      {
        hits h(0, static_cast<std::size_t>(n));
        parallel_for(
            0, static_cast<int>(n), [&](int i) { h.hit(i); }, grain);
        EXPECT_EQ(h.exactly_once(), "");
      }
      {  // unsigned, size_t
        hits h(0, static_cast<std::size_t>(n));
        parallel_for(
            std::size_t{0}, static_cast<std::size_t>(n),
            [&](std::size_t i) { h.hit(static_cast<std::int64_t>(i)); }, grain);
        EXPECT_EQ(h.exactly_once(), "");
      }
      {  // signed, across zero
        hits h(-n / 2, static_cast<std::size_t>(n));
        parallel_for(
            std::int64_t{-n / 2}, n - n / 2, [&](std::int64_t i) { h.hit(i); }, grain);
        EXPECT_EQ(h.exactly_once(), "");
      }
    });
  }
}

// The chunk form: f(lo, hi) is called once per piece; the pieces tile the range, none wider than
// the grain; grain 0 gives n / (8 × workers) (at least 1), and one worker runs the whole range in
// one call, with no spawn at all.
TEST_P(Parallel, ChunkFormTilesTheRangeExactly) {
  const std::int64_t n = static_cast<std::int64_t>(scaled(10'000, 300));
  for (std::uint64_t grain : {std::uint64_t{1}, std::uint64_t{3}, std::uint64_t{100},
                              std::uint64_t(n - 1), std::uint64_t(n), std::uint64_t{1} << 40}) {
    SCOPED_TRACE("grain " + std::to_string(grain));
    sched().block_on([&] {
      chunks c;
      hits h(5, static_cast<std::size_t>(n));
      parallel_for(
          std::int64_t{5}, 5 + n,
          [&](std::int64_t lo, std::int64_t hi) {
            c.add(lo, hi);
            for (std::int64_t i = lo; i < hi; ++i) h.hit(i);
          },
          grain);
      EXPECT_EQ(c.tiles(5, 5 + n, grain), "");
      EXPECT_EQ(h.exactly_once(), "");
      if (grain >= std::uint64_t(n)) {
        EXPECT_EQ(c.seen.size(), 1u) << "a range no wider than the grain is one piece";
      }
    });
  }
  sched().block_on([&] {
    // Automatic grain.
    const auto spawned = sched().stats().spawned;
    chunks c;
    parallel_for(std::int64_t{0}, n, [&](std::int64_t lo, std::int64_t hi) { c.add(lo, hi); });
    const std::uint64_t w = workers();
    const std::uint64_t most = w == 1 ? std::uint64_t(n) : std::max<std::uint64_t>(1, n / (8 * w));
    EXPECT_EQ(c.tiles(0, n, most), "");
    if (w == 1) {
      EXPECT_EQ(c.seen.size(), 1u);
      EXPECT_EQ(sched().stats().spawned, spawned) << "one worker: inline, no spawn";
    } else {
      EXPECT_GE(c.seen.size(), 8 * w) << "eight pieces per worker at least";
    }
  });
}

TEST_P(Parallel, EmptyAndReversedRangesDoNothing) {
  sched().block_on([&] {
    std::atomic<int> calls{0};
    const auto spawned = sched().stats().spawned;
    for (std::uint64_t grain : {std::uint64_t{0}, std::uint64_t{1}}) {
      parallel_for(
          5, 5, [&](int) { calls.fetch_add(1); }, grain);
      parallel_for(
          10, 3, [&](int) { calls.fetch_add(1); }, grain);
      parallel_for(
          7u, 2u, [&](unsigned) { calls.fetch_add(1); }, grain);
      parallel_for(
          -1, -9, [&](int, int) { calls.fetch_add(1); }, grain);
      parallel_for(
          std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::int64_t>::min(),
          [&](std::int64_t) { calls.fetch_add(1); }, grain);
      EXPECT_EQ(parallel_reduce(
                    4, 4, 17L, [](int) { return 1L; }, std::plus<>{}, grain),
                17L);
      EXPECT_EQ(parallel_reduce(
                    9, 1, 17L, [](int) { return 1L; }, std::plus<>{}, grain),
                17L);
      EXPECT_EQ(parallel_reduce(
                    std::vector<int>{}, std::string("id"), [](int) { return std::string("x"); },
                    std::plus<>{}, grain),
                "id");
    }
    EXPECT_EQ(calls.load(), 0);
    EXPECT_EQ(sched().stats().spawned, spawned) << "an empty range spawns nothing";
  });
  // The scheduler overloads too, from this plain thread.
  std::atomic<int> calls{0};
  parallel_for(sched(), 3, 3, [&](int) { calls.fetch_add(1); });
  parallel_for(sched(), 3, 1, [&](int) { calls.fetch_add(1); });
  EXPECT_EQ(calls.load(), 0);
  EXPECT_EQ(parallel_reduce(
                sched(), 8, 2, 5, [](int) { return 1; }, std::plus<>{}),
            5);
}

// A range wider than the index type's maximum (int from -2e9 to 2e9: 4e9 indices) splits without
// overflowing: the pieces tile it exactly. Chunk bodies only, with a large grain.
TEST_P(Parallel, RangesWiderThanTheIndexTypeSplitExactly) {
  sched().block_on([&] {
    {
      const int first = -2'000'000'000, last = 2'000'000'000;
      for (std::uint64_t grain : {std::uint64_t{1} << 28, std::uint64_t{3'000'000'000}}) {
        const std::string where = "int, grain " + std::to_string(grain);
        chunks c;
        parallel_for(
            first, last, [&](int lo, int hi) { c.add(lo, hi); }, grain);
        EXPECT_EQ(c.tiles(first, last, grain), "") << where;
        const std::int64_t total = parallel_reduce(
            first, last, std::int64_t{0},
            [](int lo, int hi, std::int64_t acc) {
              return acc + (static_cast<std::int64_t>(hi) - lo);
            },
            std::plus<>{}, grain);
        EXPECT_EQ(total, std::int64_t{4'000'000'000}) << where;
      }
      chunks c;  // automatic grain
      parallel_for(first, last, [&](int lo, int hi) { c.add(lo, hi); });
      EXPECT_EQ(c.tiles(first, last, std::uint64_t{4'000'000'000}), "");
    }
    {  // every std::int8_t but the last, one per piece
      hits h(-128, 255);
      parallel_for(
          std::int8_t{-128}, std::int8_t{127}, [&](std::int8_t i) { h.hit(i); }, 1);
      EXPECT_EQ(h.exactly_once(), "");
    }
    {  // the whole std::int64_t range, in ~16 pieces: count them in unsigned arithmetic
      std::mutex mu;
      std::vector<std::pair<std::int64_t, std::int64_t>> seen;
      const auto lo64 = std::numeric_limits<std::int64_t>::min();
      const auto hi64 = std::numeric_limits<std::int64_t>::max();
      parallel_for(
          lo64, hi64,
          [&](std::int64_t lo, std::int64_t hi) {
            std::lock_guard g(mu);
            seen.emplace_back(lo, hi);
          },
          std::uint64_t{1} << 60);
      std::sort(seen.begin(), seen.end());
      ASSERT_FALSE(seen.empty());
      EXPECT_EQ(seen.front().first, lo64);
      EXPECT_EQ(seen.back().second, hi64);
      for (std::size_t k = 0; k < seen.size(); ++k) {
        EXPECT_LT(seen[k].first, seen[k].second);
        EXPECT_LE(
            static_cast<std::uint64_t>(seen[k].second) - static_cast<std::uint64_t>(seen[k].first),
            std::uint64_t{1} << 60);
        if (k) {
          EXPECT_EQ(seen[k].first, seen[k - 1].second);
        }
      }
    }
  });
}

// The first exception is rethrown once every piece has ended, and the pieces that had not begun
// do not begin. To make "had not begun" deterministic on every worker count, each body but index
// 0's blocks its worker's *thread* until released: every worker other than the caller's can run
// at most one body before the failure, and the caller runs index 0 (its own leftmost piece) before
// it switches at all. The release comes once the caller has parked in a join (after its failure
// was recorded) or ended: so at most `workers` bodies ever run, out of 64.
TEST_P(Parallel, ExceptionIsRethrownAndPiecesNotBegunAreSkipped) {
  for (int chunk_form = 0; chunk_form < 2; ++chunk_form) {
    SCOPED_TRACE(chunk_form ? "chunk form" : "per index");
    const int n = 64;
    std::atomic<int> calls{0};
    std::atomic<bool> thrown{false}, release{false};
    auto body = [&](int i) {
      calls.fetch_add(1);
      if (i == 0) {
        thrown.store(true);
        throw std::runtime_error("index 0 failed");
      }
      while (!release.load()) std::this_thread::sleep_for(50us);  // blocks the worker thread
    };
    const auto spawned_before = sched().stats().spawned;
    auto caller = sched().spawn([&] {
      if (chunk_form) {
        parallel_for(
            0, n, [&](int lo, int) { body(lo); }, 1);
      } else {
        parallel_for(0, n, body, 1);
      }
    });
    ASSERT_TRUE(wait_until([&] { return thrown.load() && (caller.blocked() || !caller.alive()); }));
    release.store(true);
    try {
      caller.join();
      ADD_FAILURE() << "parallel_for did not rethrow";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "index 0 failed");
    }
    EXPECT_GE(calls.load(), 1);
    EXPECT_LE(calls.load(), static_cast<int>(workers())) << "pieces not begun were run";
    if (workers() == 1) {
      EXPECT_EQ(calls.load(), 1);
      // The caller spawned the right halves of its range (log2(64) = 6 of them) before it ran
      // index 0; those pieces began after the failure, and do not split any further.
      EXPECT_EQ(sched().stats().spawned - spawned_before, 1u + 6u)
          << "pieces that began after the failure still split their range into tasklets";
    }
  }
}

// Every body throws: exactly one of their exceptions comes out, whatever type it has.
TEST_P(Parallel, OneOfManyExceptionsIsRethrown) {
  const int n = static_cast<int>(scaled(1'000, 200, 150));
  sched().block_on([&] {
    for (std::uint64_t grain : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{10}}) {
      try {
        parallel_for(
            0, n, [](int i) { throw i; }, grain);
        ADD_FAILURE() << "no exception";
      } catch (int i) {
        EXPECT_TRUE(i >= 0 && i < n) << i;
      }
      try {
        (void)parallel_reduce(
            0, n, 0, [](int i) -> int { throw std::out_of_range(std::to_string(i)); },
            std::plus<>{}, grain);
        ADD_FAILURE() << "no exception";
      } catch (const std::out_of_range& e) {
        const int i = std::stoi(e.what());
        EXPECT_TRUE(i >= 0 && i < n) << i;
      }
    }
  });
}

TEST_P(Parallel, PlainThreadWithoutASchedulerGetsUsageError) {
  std::atomic<int> calls{0};
  auto f = [&](int) { calls.fetch_add(1); };
  EXPECT_THROW(parallel_for(0, 10, f), usage_error);
  EXPECT_THROW((void)parallel_reduce(
                   0, 10, 0, [](int i) { return i; }, std::plus<>{}),
               usage_error);
  std::vector<int> v{1, 2, 3};
  EXPECT_THROW((void)parallel_reduce(
                   v, 0, [](int i) { return i; }, std::plus<>{}),
               usage_error);
  // Also when a scheduler exists: this thread is still not one of its tasklets.
  (void)sched();
  EXPECT_THROW(parallel_for(0, 10, f, 1), usage_error);
  try {
    parallel_for(0, 10, f);
  } catch (const usage_error& e) {
    EXPECT_NE(std::string(e.what()).find("parallel_for"), std::string::npos) << e.what();
  }
  EXPECT_EQ(calls.load(), 0);
}

TEST_P(Parallel, SchedulerOverloadsFromAPlainThreadAndFromATasklet) {
  const int n = static_cast<int>(scaled(5'000, 300));
  {
    hits h(0, static_cast<std::size_t>(n));
    parallel_for(sched(), 0, n, [&](int i) { h.hit(i); });
    EXPECT_EQ(h.exactly_once(), "");
  }
  {
    chunks c;
    parallel_for(
        sched(), 0L, long{n}, [&](long lo, long hi) { c.add(lo, hi); }, 16);
    EXPECT_EQ(c.tiles(0, n, 16), "");
  }
  long expect = 0;
  for (int i = 0; i < n; ++i) expect += i % 7;
  EXPECT_EQ(parallel_reduce(
                sched(), 0, n, 0L, [](int i) { return long{i % 7}; }, std::plus<>{}),
            expect);
  EXPECT_EQ(parallel_reduce(
                sched(), 0, n, 0L, [](int i) { return long{i % 7}; }, std::plus<>{}, 3),
            expect);
  std::vector<int> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  EXPECT_EQ(parallel_reduce(
                sched(), v, 0L, [](int x) { return long{x % 7}; }, std::plus<>{}),
            expect);
  // Exceptions cross block_on().
  EXPECT_THROW(parallel_for(sched(), 0, n,
                            [](int i) {
                              if (i == 3) throw std::logic_error("three");
                            }),
               std::logic_error);
  // From a tasklet of the same scheduler: it parks while a nested tasklet runs the call.
  sched().block_on([&] {
    hits h(0, static_cast<std::size_t>(n));
    parallel_for(
        sched(), 0, n, [&](int i) { h.hit(i); }, 8);
    EXPECT_EQ(h.exactly_once(), "");
  });
}

// A kill of the calling tasklet reaches its pieces, and the call waits for all of them before it
// unwinds (their bodies use its frame): a guard destroyed when the kill unwinds the caller, just
// outside the call, sees every piece that began already ended. Then nothing is left alive.
TEST_P(Parallel, KillOfTheCallerEndsItsPiecesBeforeTheCallUnwinds) {
  for (int mode = 0; mode < 3; ++mode) {
    // mode 0: every body parks; 1: every body yields in a loop; 2: half of each, chunk form.
    SCOPED_TRACE("mode " + std::to_string(mode));
    const int n = 16;
    sl::event never;
    std::atomic<int> started{0}, ended{0}, saw_exit{0};
    std::atomic<int> started_at_unwind{-1}, ended_at_unwind{-1};
    auto body = [&](int i) {
      raii_count end(ended);
      started.fetch_add(1);
      try {
        if (mode == 0 || (mode == 2 && i % 2 == 0)) {
          never.wait();
        } else {
          for (;;) this_tasklet::yield();
        }
      } catch (const tasklet_exit&) {
        saw_exit.fetch_add(1);
        throw;
      }
    };
    struct at_unwind {
      std::atomic<int>&started, &ended, &s_out, &e_out;
      ~at_unwind() {
        s_out.store(started.load());
        e_out.store(ended.load());
      }
    };
    std::atomic<bool> returned{false};
    auto caller = sched().spawn([&] {
      at_unwind guard{started, ended, started_at_unwind, ended_at_unwind};
      if (mode == 2) {
        parallel_for(
            0, n,
            [&](int lo, int hi) {
              for (int i = lo; i < hi; ++i) body(i);
            },
            1);
      } else {
        parallel_for(0, n, body, 1);
      }
      returned.store(true);
    });
    ASSERT_TRUE(wait_until([&] { return started.load() == n; }))
        << "started " << started.load() << " of " << n;
    caller.kill();  // returns once the caller has ended
    EXPECT_FALSE(caller.alive());
    EXPECT_FALSE(returned.load());
    EXPECT_EQ(started_at_unwind.load(), n);
    EXPECT_EQ(ended_at_unwind.load(), n) << "the call unwound before its pieces ended";
    EXPECT_EQ(ended.load(), n);
    EXPECT_EQ(saw_exit.load(), n);
    const auto st = sched().stats();
    EXPECT_EQ(st.live, 0u) << describe(st);
  }
}

// The same on one worker with the automatic grain (the whole range inline, no piece spawned), and
// a kill that arrives while the caller is joining pieces that are still queued.
TEST_P(Parallel, KillWhilePiecesAreQueued) {
  std::atomic<int> started{0}, ended{0};
  std::atomic<bool> in_body{false};
  sl::event never;
  auto caller = sched().spawn([&] {
    parallel_for(0, 1'000, [&](int lo, int hi) {
      raii_count end(ended);
      started.fetch_add(1);
      if (lo == 0) {  // the caller's own piece: it waits here; the others are queued or running
        in_body.store(true);
        never.wait();
      }
      (void)hi;
    });
  });
  ASSERT_TRUE(wait_until([&] { return in_body.load() && caller.blocked(); }));
  caller.kill();
  EXPECT_EQ(started.load(), ended.load());
  EXPECT_GE(started.load(), 1);
  const auto st = sched().stats();
  EXPECT_EQ(st.live, 0u) << describe(st);
}

// ---- parallel_reduce --------------------------------------------------------------------------

TEST_P(Parallel, ReduceSumEqualsTheSequentialSum) {
  const int n = static_cast<int>(scaled(100'000, 1'000));
  auto map = [](int i) { return static_cast<std::int64_t>(i) * i % 1'000'003 - 500'000; };
  std::int64_t expect = 0;
  for (int i = 0; i < n; ++i) expect += map(i);
  sched().block_on([&] {
    for (std::uint64_t grain : {std::uint64_t{0}, std::uint64_t{5}, std::uint64_t{1'000},
                                std::uint64_t(n), std::uint64_t(n) * 3}) {
      EXPECT_EQ(parallel_reduce(0, n, std::int64_t{0}, map, std::plus<>{}, grain), expect)
          << "grain " << grain;
    }
    // grain 1: one tasklet per index, on a smaller range.
    const int m = static_cast<int>(scaled(4'000, 200));
    std::int64_t expect_m = 0;
    for (int i = 0; i < m; ++i) expect_m += map(i);
    EXPECT_EQ(parallel_reduce(0, m, std::int64_t{0}, map, std::plus<>{}, 1), expect_m);
    // A non-zero identity is folded once per piece: with 0 it must not matter how many there are;
    // here the identity is the neutral element of multiplication.
    EXPECT_EQ(parallel_reduce(
                  1, 21, std::uint64_t{1}, [](int i) { return std::uint64_t(i); },
                  std::multiplies<>{}, 2),
              std::uint64_t{2'432'902'008'176'640'000});  // 20!
  });
}

// Concatenation is associative but not commutative: pieces must be combined left to right, so
// the result is the indices in order, whatever the grain and the worker count.
TEST_P(Parallel, NonCommutativeCombineComesOutInOrder) {
  const int n = static_cast<int>(scaled(600, 100));
  std::string expect;
  for (int i = 0; i < n; ++i) expect += std::to_string(i) + ",";
  auto map = [](int i) { return std::to_string(i) + ","; };
  auto cat = [](std::string a, std::string b) { return std::move(a) + b; };
  sched().block_on([&] {
    for (std::uint64_t grain : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{2},
                                std::uint64_t{7}, std::uint64_t(n)}) {
      const std::string where = "grain " + std::to_string(grain);
      EXPECT_EQ(parallel_reduce(0, n, std::string(), map, cat, grain), expect) << where;
      // The chunk form, and the pieces as a list of subranges: in order, tiling [0, n).
      using spans = std::vector<std::pair<int, int>>;
      spans s = parallel_reduce(
          0, n, spans{},
          [](int lo, int hi, spans acc) {
            acc.emplace_back(lo, hi);
            return acc;
          },
          [](spans a, spans b) {
            a.insert(a.end(), b.begin(), b.end());
            return a;
          },
          grain);
      ASSERT_FALSE(s.empty()) << where;
      EXPECT_EQ(s.front().first, 0) << where;
      EXPECT_EQ(s.back().second, n) << where;
      for (std::size_t k = 1; k < s.size(); ++k)
        EXPECT_EQ(s[k].first, s[k - 1].second) << where << ", piece " << k;
      // A matrix product is associative and not commutative either.
      using m2 = std::array<std::uint64_t, 4>;
      auto mul = [](const m2& a, const m2& b) {
        return m2{a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3], a[2] * b[0] + a[3] * b[2],
                  a[2] * b[1] + a[3] * b[3]};
      };
      auto gen = [](int i) { return i % 3 ? m2{1, 1, 0, 1} : m2{1, 0, 1, 1}; };
      m2 seq{1, 0, 0, 1};
      for (int i = 0; i < 40; ++i) seq = mul(seq, gen(i));
      EXPECT_EQ(parallel_reduce(0, 40, m2{1, 0, 0, 1}, gen, mul, grain), seq) << where;
    }
  });
}

TEST_P(Parallel, ReduceChunkForm) {
  const int n = static_cast<int>(scaled(50'000, 300));
  std::int64_t expect = 0;
  for (int i = 0; i < n; ++i) expect += i ^ 0x55;
  std::atomic<int> chunk_calls{0};
  sched().block_on([&] {
    for (std::uint64_t grain : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{33}}) {
      const std::string where = "grain " + std::to_string(grain);
      if (grain == 1 && n > 5'000) continue;  // one tasklet per index: the smaller run is enough
      chunk_calls = 0;
      const std::int64_t got = parallel_reduce(
          0, n, std::int64_t{0},
          [&](int lo, int hi, std::int64_t acc) {
            chunk_calls.fetch_add(1);
            for (int i = lo; i < hi; ++i) acc += i ^ 0x55;
            return acc;
          },
          [](std::int64_t a, std::int64_t b) { return a + b; }, grain);
      EXPECT_EQ(got, expect) << where;
      if (grain == 0 && workers() == 1) {
        EXPECT_EQ(chunk_calls.load(), 1) << where;
      }
      if (grain) {
        EXPECT_GE(chunk_calls.load(),
                  static_cast<int>((static_cast<std::uint64_t>(n) + grain - 1) / grain))
            << where;
      }
    }
  });
}

TEST_P(Parallel, ReduceOverARange) {
  const std::size_t n = scaled(20'000, 300);
  std::vector<std::string> words(n);
  std::size_t total = 0;
  for (std::size_t i = 0; i < n; ++i) {
    words[i] = std::string(i % 13, 'a' + static_cast<char>(i % 26));
    total += words[i].size();
  }
  sched().block_on([&] {
    for (std::uint64_t grain : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{100}}) {
      if (grain == 1 && n > 2'000) continue;
      EXPECT_EQ(parallel_reduce(
                    words, std::size_t{0}, [](const std::string& w) { return w.size(); },
                    std::plus<>{}, grain),
                total)
          << "grain " << grain;
    }
    // Order is kept over a range too; a const range and a std::array.
    const std::vector<int> v{3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5};
    EXPECT_EQ(parallel_reduce(
                  v, std::string(), [](int x) { return std::to_string(x); }, std::plus<>{}, 1),
              "31415926535");
    const std::array<int, 5> a{1, 2, 3, 4, 5};
    EXPECT_EQ(parallel_reduce(
                  a, 0, [](int x) { return x * x; }, std::plus<>{}, 2),
              55);
    // Exceptions from the map over a range.
    EXPECT_THROW((void)parallel_reduce(
                     v, 0,
                     [](int x) -> int {
                       if (x == 9) throw std::domain_error("nine");
                       return x;
                     },
                     std::plus<>{}, 1),
                 std::domain_error);
  });
}

TEST_P(Parallel, ReduceExceptionsFromMapAndCombine) {
  const int n = static_cast<int>(scaled(2'000, 200));
  sched().block_on([&] {
    for (std::uint64_t grain : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{50}}) {
      const std::string where = "grain " + std::to_string(grain);
      try {
        (void)parallel_reduce(
            0, n, 0L,
            [n](int i) -> long {
              if (i == n / 3) throw std::runtime_error("map failed");
              return i;
            },
            std::plus<>{}, grain);
        ADD_FAILURE() << "no exception from the map, " << where;
      } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "map failed") << where;
      }
      // A combine that throws once the partial sums get large: in the element loop or when
      // pieces are combined, whichever comes first.
      try {
        (void)parallel_reduce(
            0, n, 0L, [](int) { return 1L; },
            [n](long a, long b) {
              if (a + b > n / 2) throw std::length_error("combine failed");
              return a + b;
            },
            grain);
        ADD_FAILURE() << "no exception from the combine, " << where;
      } catch (const std::length_error& e) {
        EXPECT_STREQ(e.what(), "combine failed") << where;
      }
      // A chunk map that throws.
      EXPECT_THROW((void)parallel_reduce(
                       0, n, 0L,
                       [n](int lo, int hi, long acc) -> long {
                         if (lo <= n / 2 && n / 2 < hi) throw std::invalid_argument("chunk");
                         return acc + hi - lo;
                       },
                       std::plus<>{}, grain),
                   std::invalid_argument)
          << where;
    }
  });
  const auto st = sched().stats();
  EXPECT_EQ(st.live, 0u) << describe(st);
}

}  // namespace
