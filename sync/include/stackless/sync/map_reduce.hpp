// SPDX-License-Identifier: Apache-2.0
// stackless/sync/map_reduce.hpp — map_reduce(): mappers and very many reducers as tasklets,
// joined by bounded channels. Included by <stackless/sync/parallel.hpp>.
//
// The shape of a job.
//
//   inputs ──▶ M mapper tasklets ──batches──▶ reducers ──▶ the caller's container
//   (a range,   map(input, emit)    (bounded    partitions(R): R tasklets, keys hashed to them
//    or a       [combiner: a map    channels:   per_key: a router tasklet per worker spawns one
//    channel)    per mapper]        backpressure)          reducer tasklet per distinct key
//
// - Mappers take inputs one at a time (an atomic index over a range, or receive() on a channel
//   input, so mapping starts while a producer still reads). emit(key, value) appends the pair to
//   a batch for the key's destination; a full batch (options.batch pairs) is sent on that
//   destination's channel, which buffers options.queue batches: a mapper faster than its
//   reducers parks there, so memory stays bounded by destinations × queue × batch pairs.
// - With the combiner on, emit folds into a map of the mapper's own first (pre-aggregation before
//   the shuffle, Hadoop's combiner); the map is shipped when the mapper ends or holds
//   options.combine_limit keys. Mappers are one per worker, so it is a per-worker combiner. Up
//   to split_limit destinations the combiner keeps a table per destination and ships each one
//   whole (a move, not a copy); the first table a partition receives becomes its own, and the
//   smaller of two is folded into the larger. A key is hashed once, in the mapper: the hash
//   travels with it (detail/mr_table.hpp).
// - partitions(R): reducer r owns the keys whose hash is r mod R and folds them in a hash map.
// - per_key: keys are hashed to routers; a router spawns a reducer tasklet the first time a key
//   appears and forwards that key's values to it over its own channel — one tasklet per distinct
//   key, as Stackless invited ("a very large number of reducers depending on your input data").
// - The last mapper to finish closes the reducers' channels; reducers drain them and end.
//
// Reducing. The first value of a key is moved in as its accumulator; each later one is folded
// with reduce(acc, std::move(value)). So reduce must be associative and commutative over values
// (the order of arrival is not defined); reduce(acc, v) { acc += v; } counts.
//
// Errors. The first exception a map or a reduce throws stops the job: every other tasklet of
// the job is killed, and map_reduce() throws map_reduce_error — its message names the stage and
// the input (the index in the range, or the receive number on a channel) and the original
// exception is nested (std::rethrow_if_nested). A stop request on options.stop kills the job
// the same way and throws operation_cancelled. Either way every tasklet of the job has ended
// before map_reduce() returns or throws (nothing leaks: tests/sync/test_map_reduce.cpp).
//
// Memory. A per_key reducer is a tasklet: its control block, the pages of its stack it touches
// (one or two, of options::stack_size reserved) and a channel. `stackless_mr_memory` (bench/)
// measures it: see the README's "Map/reduce" section for bytes per reducer.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "stackless/runtime/errors.hpp"
#include "stackless/runtime/scheduler.hpp"
#include "stackless/runtime/this_tasklet.hpp"
#include "stackless/runtime/timeout.hpp"
#include "stackless/sync/channel.hpp"
#include "stackless/sync/detail/mr_table.hpp"
#include "stackless/sync/task_group.hpp"

namespace stackless {

/// map_reduce_progress counts a job's progress; any thread may read it while the job runs.
struct map_reduce_progress {
  std::atomic<std::uint64_t> inputs{0};  // inputs mapped
  std::atomic<std::uint64_t> bytes{0};   // bytes the map functions reported (emit.bytes(n))
  std::atomic<std::uint64_t> pairs{0};   // pairs emitted
};

/// reducer_layout says how keys meet their reducers: partitions(R) or per_key.
struct reducer_layout {
  enum class kind_t : std::uint8_t { partitions, per_key };
  kind_t kind = kind_t::partitions;
  std::size_t count = 0;  // partitions: R (0: 4 per worker)
};

/// partitions(R): R reducer tasklets (R ≥ 1; 100,000 is fine), keys hashed to them.
inline reducer_layout partitions(std::size_t r) {
  if (r == 0) throw std::invalid_argument("stackless::partitions(): R must be at least 1");
  return {reducer_layout::kind_t::partitions, r};
}
/// per_key: one reducer tasklet per distinct key, spawned when the key first appears.
inline constexpr reducer_layout per_key{reducer_layout::kind_t::per_key, 0};

struct map_reduce_options {
  reducer_layout reducers{};  // partitions, 4 per worker
  bool combiner = true;       // fold in each mapper before the shuffle
  std::size_t mappers = 0;    // mapper tasklets; 0: one per worker
  std::size_t batch = 512;    // pairs per message to a reducer or router
  std::size_t queue = 4;      // messages buffered per reducer channel (then senders park)
  std::size_t combine_limit = std::size_t{1} << 20;  // keys a combiner holds before it ships
  std::size_t routers = 0;                           // per_key: routing tasklets; 0: one per worker
  map_reduce_progress* progress = nullptr;           // counted while the job runs
  std::stop_token stop;                              // a stop request cancels the job
};

/// map_reduce_error is what map_reduce() throws when a map or reduce threw: the message names the
/// stage and the input; the original exception is nested.
class map_reduce_error : public std::runtime_error, public std::nested_exception {
 public:
  static constexpr std::uint64_t no_input = UINT64_MAX;
  map_reduce_error(const char* stage, std::uint64_t input, const std::string& msg)
      : std::runtime_error(msg), stage_(stage), input_(input) {}
  /// stage() is "map" or "reduce".
  const char* stage() const noexcept { return stage_; }
  /// input() is the index of the input whose map threw (no_input for a reduce).
  std::uint64_t input() const noexcept { return input_; }

 private:
  const char* stage_;
  std::uint64_t input_;
};

/// top_k<K, V> is a result container for map_reduce() that keeps the k pairs with the largest
/// values (ties: the smaller key first) and counts every pair offered (seen()).
template <class K, class V>
class top_k {
 public:
  explicit top_k(std::size_t k = 10) : k_(k) {}
  void emplace(K key, V value) {
    ++seen_;
    if (k_ == 0) return;
    if (heap_.size() < k_) {
      heap_.emplace_back(std::move(key), std::move(value));
      std::push_heap(heap_.begin(), heap_.end(), better);
    } else if (ranks_before(key, value, heap_.front().first, heap_.front().second)) {
      std::pop_heap(heap_.begin(), heap_.end(), better);
      heap_.back() = {std::move(key), std::move(value)};
      std::push_heap(heap_.begin(), heap_.end(), better);
    }
  }
  /// sorted() is the kept pairs, best first.
  std::vector<std::pair<K, V>> sorted() const {
    std::vector<std::pair<K, V>> v = heap_;
    std::sort(v.begin(), v.end(), better);
    return v;
  }
  std::uint64_t seen() const noexcept { return seen_; }

 private:
  // ranks_before(): the larger value first, then the smaller key. As the heap's comparator
  // (better) the front is the worst kept pair.
  static bool ranks_before(const K& ka, const V& va, const K& kb, const V& vb) {
    if (va != vb) return vb < va;
    return ka < kb;
  }
  static bool better(const std::pair<K, V>& a, const std::pair<K, V>& b) {
    return ranks_before(a.first, a.second, b.first, b.second);
  }
  std::size_t k_;
  std::uint64_t seen_ = 0;
  std::vector<std::pair<K, V>> heap_;
};

namespace detail::mr {

/// spread() mixes a std::hash so that keys spread over destinations even when the hash is the
/// identity (integers): the finaliser of MurmurHash3.
inline std::size_t spread(std::size_t h) noexcept {
  std::uint64_t x = h;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return static_cast<std::size_t>(x);
}

template <class K, class V>
using batch = std::vector<item<K, V>>;

/// parcel is one message to a destination: a batch of pairs, or a combiner's keys of that
/// destination as a whole table (handed over, not copied: see emitter::ship_combined()).
template <class K, class V>
struct parcel {
  batch<K, V> items;
  table<K, V> keys;
};

/// split_limit: a combiner keeps a table per destination (and ships each whole) up to this many
/// destinations; beyond, one table whose pairs are shipped in batches (a table per destination
/// of partitions(100'000) would hold ~800 bytes for each destination it saw a key of).
inline constexpr std::size_t split_limit = 256;

/// key_hash is std::hash<K>, made transparent for std::string so that a combiner finds a key
/// given as a std::string_view without building a string (the same hash values:
/// [string.view.hash]).
template <class K>
struct key_hash : std::hash<K> {};
template <>
struct key_hash<std::string> {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

/// hash_of<K>(k) is the hash a key travels with (item::hash): key_hash<K>, spread. k is a K, or
/// a key K is made from whose key_hash<K> is K's (a std::string_view for a std::string).
template <class K, class KL>
std::size_t hash_of(const KL& k) noexcept(noexcept(key_hash<K>{}(k))) {
  return spread(key_hash<K>{}(k));
}

/// fold_fn folds a value into an accumulator with the job's reduce (type-erased, so emitter<K, V>
/// does not depend on the reduce's type).
template <class V>
using fold_fn = void (*)(void* reduce, V& acc, V&& v);

template <class K, class V>
struct shuffle {
  std::vector<channel<parcel<K, V>>> to;  // one per destination: a partition or a router
  fold_fn<V> fold = nullptr;
  void* reduce = nullptr;
  std::size_t batch_size = 512;
  std::size_t combine_limit = 0;
  bool combiner = true;
};

inline std::string describe_current() {
  try {
    throw;
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "an exception not derived from std::exception";
  }
}

/// combine_error is a reduce that threw in a mapper's combiner (the fold in emitter::operator()):
/// stage "reduce", the reduce's exception nested. A mapper passes it on as it is: wrapped as the
/// map's error — which the combiner's fold used to be, since it runs inside map(input, emit) —
/// it said stage "map" and named an input for a reduce that threw
/// (tests/sync/test_map_reduce.cpp, ReduceThatThrows).
class combine_error : public map_reduce_error {
 public:
  using map_reduce_error::map_reduce_error;
};

}  // namespace detail::mr

/// emitter<K, V> is what a map function gets: emit(key, value) hands a pair to the shuffle;
/// emit.bytes(n) adds n to the job's byte count (for progress). One per mapper tasklet; not to
/// be shared or kept past the map call.
template <class K, class V>
class emitter {
 public:
  void operator()(K key, V value) { put(std::move(key), std::move(value), erased_fold{sh_}); }
  /// emit(key_like, value) takes a key K can be built from (a std::string_view for a
  /// std::string key): with the combiner on, a key already held is folded without building a K.
  template <class KL>
  requires(!std::is_same_v<std::remove_cvref_t<KL>, K> &&
           std::is_constructible_v<K, const KL&>) void
  operator()(const KL& key, V value) {
    put_like(key, std::move(value), erased_fold{sh_});
  }
  void bytes(std::uint64_t n) noexcept { bytes_ += n; }

  // The job's side (not for map functions).
  explicit emitter(detail::mr::shuffle<K, V>* sh)
      : sh_(sh),
        bufs_(sh->to.size()),
        comb_(sh->combiner && sh->to.size() <= detail::mr::split_limit ? sh->to.size() : 1) {}
  /// finish() ships everything still held.
  void finish() {
    if (sh_->combiner) ship_combined();
    for (std::size_t d = 0; d < bufs_.size(); ++d)
      if (!bufs_[d].empty()) send(d);
  }
  /// take_counts() returns (pairs, bytes) counted since the last call.
  std::pair<std::uint64_t, std::uint64_t> take_counts() noexcept {
    return {std::exchange(pairs_, 0), std::exchange(bytes_, 0)};
  }

 protected:
  // put() and put_like() are emit() with the combiner's fold given: the job's mappers get a
  // detail::mr::typed_emitter, whose fold calls the reduce directly (inlined); a map function
  // that names emitter<K, V> itself gets this class's type-erased fold (one indirect call).
  template <class Fold>
  void put(K&& key, V&& value, Fold fold) {
    const std::size_t h = detail::mr::hash_of<K>(key);
    put_hashed(std::move(key), h, value, fold);
  }
  // put_like(): a key K is made from, hashed as it is, and made a K only when it is new to the
  // combiner (or shipped without one).
  template <class KL, class Fold>
  void put_like(const KL& key, V&& value, Fold fold) {
    if constexpr (requires(const K& k) {
                    detail::mr::key_hash<K>{}(key);
                    k == key;
                  }) {
      put_hashed(key, detail::mr::hash_of<K>(key), value, fold);
    } else {
      put(K(key), std::move(value), fold);
    }
  }

 private:
  struct erased_fold {
    detail::mr::shuffle<K, V>* sh;
    void operator()(V& acc, V&& v) const { sh->fold(sh->reduce, acc, std::move(v)); }
  };
  template <class KL, class Fold>
  void put_hashed(KL&& key, std::size_t h, V& value, Fold fold) {
    ++pairs_;
    if (sh_->combiner) {
      auto& t = comb_.size() == 1 ? comb_[0] : comb_[h % comb_.size()];
      auto [e, fresh] = t.try_emplace(std::forward<KL>(key), h, value);
      if (!fresh)
        fold(e->value, std::move(value));
      else if (++held_ >= sh_->combine_limit)
        ship_combined();
      return;
    }
    push(K(std::forward<KL>(key)), std::move(value), h);
  }
  void push(K&& k, V&& v, std::size_t h) {
    const std::size_t d = h % bufs_.size();
    auto& b = bufs_[d];
    if (b.capacity() == 0) b.reserve(std::min<std::size_t>(sh_->batch_size, 64));
    b.push_back(detail::mr::item<K, V>{std::move(k), std::move(v), h});
    if (b.size() >= sh_->batch_size) send(d);
  }
  void send(std::size_t d) {
    sh_->to[d].send(detail::mr::parcel<K, V>{std::move(bufs_[d]), {}});
    bufs_[d] = {};
  }
  void ship_combined() {
    held_ = 0;
    if (comb_.size() == 1 && bufs_.size() != 1) {  // one table: its pairs, in batches
      comb_[0].for_each([&](auto& e) { push(std::move(e.key), std::move(e.value), e.hash); });
      comb_[0].clear();
      return;
    }
    // A table per destination: each goes whole, and the first one a partition receives becomes
    // its table (no pair is copied; the others are folded into it).
    for (std::size_t d = 0; d < comb_.size(); ++d) {
      if (comb_[d].empty()) continue;
      detail::mr::table<K, V> t = std::move(comb_[d]);
      comb_[d] = {};
      sh_->to[d].send(detail::mr::parcel<K, V>{{}, std::move(t)});
    }
  }

  detail::mr::shuffle<K, V>* sh_;
  std::vector<detail::mr::batch<K, V>> bufs_;
  std::vector<detail::mr::table<K, V>> comb_;  // per destination, or one (split_limit)
  std::size_t held_ = 0;                       // keys in comb_
  std::uint64_t pairs_ = 0;
  std::uint64_t bytes_ = 0;
};

namespace detail::mr {

/// fold_checked() is the combiner's fold: reduce(acc, v), a throw reported as combine_error.
template <class Reduce, class V>
void fold_checked(Reduce& reduce, V& acc, V&& v) {
  try {
    reduce(acc, std::move(v));
  } catch (const tasklet_exit&) {
    throw;
  } catch (...) {  // see combine_error
    throw combine_error(
        "reduce", map_reduce_error::no_input,
        "stackless::map_reduce: reduce threw in a mapper's combiner: " + describe_current());
  }
}

/// typed_emitter is the emitter the job's mappers pass to map(): emitter<K, V> whose combiner
/// calls the job's reduce directly (see emitter::put()).
template <class K, class V, class Reduce>
class typed_emitter : public emitter<K, V> {
 public:
  typed_emitter(shuffle<K, V>* sh, Reduce* r) : emitter<K, V>(sh), r_(r) {}
  void operator()(K key, V value) { this->put(std::move(key), std::move(value), fold{r_}); }
  template <class KL>
  requires(!std::is_same_v<std::remove_cvref_t<KL>, K> &&
           std::is_constructible_v<K, const KL&>) void
  operator()(const KL& key, V value) {
    this->put_like(key, std::move(value), fold{r_});
  }

 private:
  struct fold {
    Reduce* r;
    void operator()(V& acc, V&& v) const { fold_checked(*r, acc, std::move(v)); }
  };
  Reduce* r_;
};

/// source hands inputs to mappers: an atomic index over a random-access range, or receive() on
/// a channel. next() returns the input's number and a pointer to it (null at the end).
template <class Inputs>
struct range_source {
  Inputs& in;
  std::size_t n = std::ranges::size(in);
  std::atomic<std::size_t> next_i{0};
  // relaxed: each index is handed out once by the FAA; the range is not written during the job.
  template <class F>
  bool next(F&& f) {
    const std::size_t i = next_i.fetch_add(1, std::memory_order_relaxed);
    if (i >= n) return false;
    f(i, std::ranges::begin(in)[static_cast<std::ptrdiff_t>(i)]);
    return true;
  }
};

template <class T>
struct channel_source {
  channel<T>& in;
  std::atomic<std::uint64_t> received{0};  // relaxed: numbers inputs for error messages only
  template <class F>
  bool next(F&& f) {
    std::optional<T> v;
    try {
      v.emplace(in.receive());
    } catch (const channel_closed&) {
      return false;
    }
    f(received.fetch_add(1, std::memory_order_relaxed), *v);
    return true;
  }
};

template <class T>
struct is_channel : std::false_type {};
template <class T>
struct is_channel<channel<T>> : std::true_type {};

/// key_reducer is one per_key reducer: its channel, its accumulator and what its router is
/// gathering for it from the current batch.
template <class V>
struct key_reducer {
  explicit key_reducer(std::size_t queue) : in(queue) {}
  channel<std::vector<V>> in;
  std::optional<V> acc;
  std::vector<V> pending;  // the router's (only it touches it)
};

template <class K, class V>
struct router {
  table<K, key_reducer<V>*> keys;
  std::deque<key_reducer<V>> reducers;  // the storage keys point into (a deque never moves them)
};

template <class Out, class K, class V>
void put(Out& out, K&& k, V&& v) {
  if constexpr (requires { out.emplace_back(std::move(k), std::move(v)); })
    out.emplace_back(std::move(k), std::move(v));
  else
    out.emplace(std::move(k), std::move(v));
}

template <class V, class Reduce>
void fold_into(std::optional<V>& acc, V&& v, Reduce& reduce) {
  if (!acc)
    acc.emplace(std::move(v));
  else
    reduce(*acc, std::move(v));
}

/// run() is map_reduce() inside a tasklet, for a source (range_source or channel_source).
template <class K, class V, class Source, class Map, class Reduce, class Out>
Out run(Source& src, Map& map, Reduce& reduce, const map_reduce_options& o, Out out) {
  const std::size_t w = this_tasklet::workers();
  const bool keyed = o.reducers.kind == reducer_layout::kind_t::per_key;
  const std::size_t nmap = o.mappers ? o.mappers : w;
  const std::size_t ndest =
      keyed ? (o.routers ? o.routers : w) : (o.reducers.count ? o.reducers.count : 4 * w);
  if (o.batch == 0) throw std::invalid_argument("stackless::map_reduce: options.batch is 0");
  if (o.combiner && o.combine_limit == 0)
    throw std::invalid_argument("stackless::map_reduce: options.combine_limit is 0");
  // Stopped already: take nothing (operation_cancelled's contract). Left to the stop callback
  // below, the job's tasklets were killed only after task_group::run() had spawned them, and a
  // mapper another worker had started meanwhile mapped inputs (tests/sync/test_map_reduce.cpp,
  // StopWhileMappersWaitOnAChannelThatNeverCloses: "stopped before the call").
  if (o.stop.stop_requested()) throw operation_cancelled();

  shuffle<K, V> sh;
  sh.to.reserve(ndest);
  for (std::size_t d = 0; d < ndest; ++d) sh.to.emplace_back(o.queue);
  sh.fold = [](void* r, V& acc, V&& v) {
    fold_checked(*static_cast<Reduce*>(r), acc, std::move(v));
  };
  sh.reduce = &reduce;
  sh.batch_size = o.batch;
  sh.combine_limit = o.combine_limit;
  sh.combiner = o.combiner;

  std::vector<table<K, V>> parts(keyed ? 0 : ndest);
  // The default result: each partition moves its keys into a map of its own, the partitions in
  // parallel (the nodes' allocations, the keys' moves); the caller's tasklet then only splices
  // nodes (out.merge(): no allocation). Built serially from the tables, it was 10 % of a word
  // count's time at two workers (73,459 keys: ~35 ms), all of it after the last mapper.
  constexpr bool default_out = std::is_same_v<Out, std::unordered_map<K, V>>;
  std::vector<std::unordered_map<K, V>> part_out(default_out && !keyed ? ndest : 0);
  std::vector<router<K, V>> routers(keyed ? ndest : 0);
  std::atomic<std::size_t> mappers_left{nmap};  // acq_rel: the last mapper closes the channels

  task_group g;
  std::atomic<bool> stopped{false};  // relaxed: read after g.wait(), which orders it
  std::optional<std::stop_callback<std::function<void()>>> on_stop;
  if (o.stop.stop_possible())
    on_stop.emplace(o.stop, std::function<void()>([&] {
                      stopped.store(true, std::memory_order_relaxed);
                      g.cancel();
                    }));

  auto reduce_error = [](const std::string& where) {
    throw map_reduce_error(
        "reduce", map_reduce_error::no_input,
        "stackless::map_reduce: reduce threw " + where + ": " + describe_current());
  };

  // Reducers (partitions) or routers (per_key), first: mappers may send at once.
  for (std::size_t d = 0; d < ndest; ++d) {
    if (!keyed) {
      g.run([&, d] {
        auto& acc = parts[d];
        auto fold = [&](auto&& key, std::size_t h, V& v) {
          auto [e, fresh] = acc.try_emplace(std::forward<decltype(key)>(key), h, v);
          if (!fresh) reduce(e->value, std::move(v));
        };
        try {
          for (auto& pc : sh.to[d]) {
            for (auto& it : pc.items) fold(std::move(it.key), it.hash, it.value);
            if (pc.keys.empty()) continue;
            if (pc.keys.size() > acc.size()) acc.swap(pc.keys);  // fold the smaller in
            pc.keys.for_each([&](auto& e) { fold(std::move(e.key), e.hash, e.value); });
          }
        } catch (const tasklet_exit&) {
          throw;
        } catch (...) {
          reduce_error("in partition " + std::to_string(d));
        }
        if constexpr (default_out) {
          auto& m = part_out[d];
          m.reserve(acc.size());
          acc.for_each([&](auto& e) { m.emplace(std::move(e.key), std::move(e.value)); });
          acc = {};
        }
      });
    } else {
      g.run([&, d] {
        auto& keys = routers[d].keys;
        std::vector<key_reducer<V>*> touched;
        auto route = [&](auto&& k, std::size_t h, V& v) {
          key_reducer<V>* none = nullptr;
          auto [e, fresh] = keys.try_emplace(std::forward<decltype(k)>(k), h, none);
          if (fresh) {
            e->value = &routers[d].reducers.emplace_back(o.queue);
            key_reducer<V>* kr = e->value;
            g.run([kr, &reduce, reduce_error] {
              try {
                for (auto& vs : kr->in)
                  for (auto& v : vs) fold_into(kr->acc, std::move(v), reduce);
              } catch (const tasklet_exit&) {
                throw;
              } catch (...) {
                reduce_error("(per-key reducer)");
              }
            });
          }
          key_reducer<V>* kr = e->value;
          if (kr->pending.empty()) touched.push_back(kr);
          kr->pending.push_back(std::move(v));
        };
        for (auto& pc : sh.to[d]) {
          for (auto& it : pc.items) route(std::move(it.key), it.hash, it.value);
          pc.keys.for_each([&](auto& e) { route(std::move(e.key), e.hash, e.value); });
          for (key_reducer<V>* kr : touched) {
            kr->in.send(std::move(kr->pending));
            kr->pending = {};
          }
          touched.clear();
        }
        keys.for_each([](auto& e) { e.value->in.close(); });
      });
    }
  }

  for (std::size_t m = 0; m < nmap; ++m) {
    g.run([&] {
      typed_emitter<K, V, Reduce> emit(&sh, &reduce);
      auto one = [&](std::uint64_t i, auto&& input) {
        try {
          map(input, emit);
        } catch (const tasklet_exit&) {
          throw;
        } catch (const combine_error&) {
          throw;  // a reduce's error, not the map's
        } catch (...) {
          throw map_reduce_error("map", i,
                                 "stackless::map_reduce: map threw on input " + std::to_string(i) +
                                     ": " + describe_current());
        }
        if (o.progress) {
          auto [pairs, bytes] = emit.take_counts();
          // relaxed: counters for a progress display; they order nothing.
          o.progress->pairs.fetch_add(pairs, std::memory_order_relaxed);
          o.progress->bytes.fetch_add(bytes, std::memory_order_relaxed);
          o.progress->inputs.fetch_add(1, std::memory_order_relaxed);
        }
      };
      // checkpoint() before each input: a kill — a stop request, another tasklet's error, a kill
      // of the caller — is delivered at a suspension point, and a map that never parks (the
      // combiner on, nothing sent yet) had none: the mapper went on to map every input left
      // (tests/sync/test_map_reduce.cpp, StopReachesAMapperThatNeverParks).
      for (;;) {
        this_tasklet::checkpoint();
        if (!src.next(one)) break;
      }
      emit.finish();
      // acq_rel: the last mapper's close() comes after every mapper's last send (each one's
      // release half; the last one's acquire half).
      if (mappers_left.fetch_sub(1, std::memory_order_acq_rel) == 1)
        for (auto& ch : sh.to) ch.close();
    });
  }

  g.wait();  // rethrows the first map_reduce_error; every tasklet of the job has ended
  on_stop.reset();
  if (stopped.load(std::memory_order_relaxed))
    throw operation_cancelled();  // the job was stopped through options.stop

  if constexpr (default_out) {
    // An empty result takes the largest partition's map as it is; the others' nodes are spliced
    // in (keys are disjoint: every node moves), into buckets reserved for all of them.
    if (out.empty() && !part_out.empty()) {
      auto largest =
          std::max_element(part_out.begin(), part_out.end(),
                           [](const auto& a, const auto& b) { return a.size() < b.size(); });
      out = std::move(*largest);
      *largest = {};
    }
  }
  if constexpr (requires { out.reserve(out.size()); }) {
    std::size_t total = out.size();
    for (auto& p : parts) total += p.size();
    for (auto& m : part_out) total += m.size();
    for (auto& r : routers) total += r.keys.size();
    out.reserve(total);
  }
  if constexpr (default_out)
    for (auto& m : part_out) out.merge(m);
  for (auto& p : parts) {
    p.for_each([&](auto& e) { put(out, std::move(e.key), std::move(e.value)); });
    p = {};  // the memory back as it goes
  }
  for (auto& r : routers) {
    r.keys.for_each([&](auto& e) {
      if (e.value->acc) put(out, std::move(e.key), std::move(*e.value->acc));
    });
    r.keys = {};
    r.reducers.clear();
  }
  return out;
}

}  // namespace detail::mr

/// map_reduce<K, V>(inputs, map, reduce[, options[, out]]) runs map(input, emit) for every input
/// — emit(key, value) for each pair it finds — then folds the values of each key with
/// reduce(acc, value), and returns `out` with one emplace(key, value) per distinct key (or
/// emplace_back for a sequence container): std::unordered_map<K, V> by default; top_k<K, V>(k)
/// keeps the k largest. `inputs` is a random-access range (read, not copied; it must not change
/// during the job) or a channel<T> that mappers receive from until it is closed. See the top of
/// this file for the layouts, errors and cancellation. Call it from a tasklet, or pass the
/// scheduler first (map_reduce<K, V>(sched, inputs, ...)).
template <class K, class V, class Inputs, class Map, class Reduce,
          class Out = std::unordered_map<K, V>>
requires(!std::is_same_v<std::decay_t<Inputs>, scheduler>) Out
    map_reduce(Inputs&& inputs, Map map, Reduce reduce, const map_reduce_options& o = {},
               Out out = Out{}) {
  if (!detail::current_tcb())
    throw usage_error(
        "stackless: map_reduce() called outside a tasklet; pass the scheduler: "
        "map_reduce<K, V>(sched, inputs, ...)");
  using In = std::remove_cvref_t<Inputs>;
  if constexpr (detail::mr::is_channel<In>::value) {
    detail::mr::channel_source<typename In::value_type> src{inputs};
    return detail::mr::run<K, V>(src, map, reduce, o, std::move(out));
  } else {
    static_assert(std::ranges::random_access_range<In> && std::ranges::sized_range<In>,
                  "map_reduce: inputs must be a sized random-access range or a channel");
    detail::mr::range_source<std::remove_reference_t<Inputs>> src{inputs};
    return detail::mr::run<K, V>(src, map, reduce, o, std::move(out));
  }
}

/// map_reduce<K, V>(sched, ...) runs the job on `sched` from any thread and blocks until it ends.
template <class K, class V, class Inputs, class Map, class Reduce,
          class Out = std::unordered_map<K, V>>
Out map_reduce(scheduler& sched, Inputs&& inputs, Map map, Reduce reduce,
               const map_reduce_options& o = {}, Out out = Out{}) {
  return sched.block_on([&]() -> Out {
    return map_reduce<K, V>(std::forward<Inputs>(inputs), std::move(map), std::move(reduce), o,
                            std::move(out));
  });
}

}  // namespace stackless
