// SPDX-License-Identifier: Apache-2.0
// test_map_reduce.cpp — map_reduce() (sync/map_reduce.hpp) over workers ∈ {1, 2, 4}.
//
// - Properties: random texts (fixed seeds), random R, every layout (partitions(R), per_key), the
//   combiner on and off, random batch / queue / mapper / router / combine_limit options, string
//   and string_view keys: the result equals a sequential std::unordered_map count exactly; the
//   progress counters end at the totals; the job spawns exactly its mappers and its reducers
//   (partitions) or routers plus one reducer per distinct key (per_key), and leaves nothing
//   alive. Integer keys. top_k against the reference's top K (ties: the smaller key first); a
//   sequence container gets one entry per key.
// - Inputs: empty, one huge line, binary bytes (NULs are ordinary bytes), a channel fed by a
//   producer tasklet and closed early.
// - Errors: a map that throws on input k (map_reduce_error: stage "map", input k, the message
//   names it, the original nested), a reduce that throws (stage "reduce"), invalid options,
//   usage_error from a plain thread without a scheduler.
// - Cancellation through options.stop from a tasklet or a plain thread, half-way through
//   (mappers slowed by sleeps, waiting on a channel that never closes, or never parking):
//   operation_cancelled, and no tasklet of the job left; a kill of the caller leaves none either.
// - Backpressure: a slow reducer bounds the pairs emitted but not yet reduced.
// - Stress (tier stress): per_key with 200,000 distinct keys — one reducer tasklet each.
// Orderings come from flags and parks, never from sleeps (the sleeps only slow mappers and
// reducers down); no test asserts how long anything took.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "channel_fixture.hpp"
#include "stackless/sync/parallel.hpp"

// clash is a key whose every value hashes alike: map_reduce's tables (detail/mr_table.hpp) then
// probe past every other key, and growing them must keep all of them findable.
struct clash {
  int v;
  bool operator==(const clash&) const = default;
};
template <>
struct std::hash<clash> {
  std::size_t operator()(const clash&) const noexcept { return 42; }
};

namespace {

using namespace stackless_test;
using sl::map_reduce;
using sl::map_reduce_error;
using sl::map_reduce_options;
using sl::map_reduce_progress;
using sl::operation_cancelled;
using sl::usage_error;

using counts = std::unordered_map<std::string, long>;
using emitter_t = sl::emitter<std::string, long>;

// Sizes. Under ThreadSanitizer every tasklet alive at once costs milliseconds (a fiber context and
// its trace, created when no ended one can be reused), so there the per_key and partitions(R)
// runs keep to a few dozen reducers; ASan's, which maps each stack, to at most a hundred.
const std::size_t kInputs = scaled(60, 24, 16);  // texts of a random corpus, at most
const std::size_t kVocab = scaled(300, 40, 20);  // distinct words of a random corpus, at most

class MapReduce : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(MapReduce);

// ---- words, texts and the sequential reference ------------------------------------------------

/// for_each_word() calls f(word) for every maximal run of bytes other than ' ' and '\n'.
template <class F>
void for_each_word(std::string_view s, F&& f) {
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n')) ++i;
    std::size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\n') ++j;
    if (j > i) f(s.substr(i, j - i));
    i = j;
  }
}

/// word_map is the job's map: every word is a pair (word, 1); the text's size goes to bytes.
/// as_string: emit a std::string key (emit(K, V)) rather than a std::string_view (the key-like
/// overload, which the combiner folds without building a string).
struct word_map {
  bool as_string = false;
  void operator()(const std::string& text, emitter_t& emit) const {
    emit.bytes(text.size());
    for_each_word(text, [&](std::string_view w) {
      if (as_string) {
        emit(std::string(w), 1L);
      } else {
        emit(w, 1L);
      }
    });
  }
};

const auto sum = [](long& acc, long v) { acc += v; };

struct corpus {
  std::vector<std::string> texts;
  counts ref;               // the sequential count
  std::uint64_t pairs = 0;  // words in all texts
  std::uint64_t bytes = 0;  // bytes of all texts
};

/// reference() counts the words of texts[from, to) sequentially.
corpus reference(std::vector<std::string> texts, std::size_t from = 0, std::size_t to = SIZE_MAX) {
  corpus c;
  c.texts = std::move(texts);
  to = std::min(to, c.texts.size());
  for (std::size_t i = from; i < to; ++i) {
    c.bytes += c.texts[i].size();
    for_each_word(c.texts[i], [&](std::string_view w) {
      ++c.ref[std::string(w)];
      ++c.pairs;
    });
  }
  return c;
}

/// random_corpus(): up to max_inputs texts (some empty) over a vocabulary of up to max_vocab
/// words, skewed (a few words are frequent, most are rare: many ties in the counts).
corpus random_corpus(std::uint32_t seed, std::size_t max_inputs, std::size_t max_vocab) {
  std::mt19937 rng(seed);
  auto uniform = [&](std::size_t lo, std::size_t hi) {
    return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
  };
  const std::size_t v = uniform(1, max_vocab);
  std::set<std::string> vocab_set;
  static const char letters[] = "abcdefghijklmnopqrstuvwxyzABC019_-.\xc3\xa9";  // é: two bytes
  while (vocab_set.size() < v) {
    std::string w(uniform(1, 10), 'x');
    for (char& ch : w) ch = letters[uniform(0, sizeof letters - 2)];
    vocab_set.insert(w);
  }
  const std::vector<std::string> vocab(vocab_set.begin(), vocab_set.end());
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  std::vector<std::string> texts(uniform(0, max_inputs));
  for (auto& t : texts) {
    const std::size_t words = uniform(0, 4) == 0 ? 0 : uniform(1, 60);
    for (std::size_t k = 0; k < words; ++k) {
      const double x = u01(rng);
      t += vocab[std::min(v - 1, static_cast<std::size_t>(static_cast<double>(v) * x * x * x))];
      static const char* const seps[] = {" ", "\n", "  ", " \n "};
      t += seps[uniform(0, 3)];
    }
  }
  return reference(std::move(texts));
}

template <class K>
std::string key_text(const K& k) {
  if constexpr (std::is_convertible_v<const K&, std::string>) {
    return "'" + std::string(k) + "'";
  } else {
    return std::to_string(k);
  }
}

/// differ() is "" when the maps are equal, else a short account of the first difference.
template <class M>
std::string differ(const M& got, const M& want) {
  for (const auto& [k, v] : want) {
    auto it = got.find(k);
    if (it == got.end())
      return "missing key " + key_text(k) + " (of " + std::to_string(want.size()) + ")";
    if (it->second != v)
      return "key " + key_text(k) + ": " + std::to_string(it->second) + ", expected " +
             std::to_string(v);
  }
  if (got.size() != want.size())
    return std::to_string(got.size()) + " keys, expected " + std::to_string(want.size());
  return "";
}

/// layout_name() names a layout in failure messages.
std::string layout_name(const sl::reducer_layout& l) {
  return l.kind == sl::reducer_layout::kind_t::per_key
             ? "per_key"
             : "partitions(" + std::to_string(l.count) + ")";
}

/// every_layout() is partitions(r) and per_key, each with the combiner on and off.
std::vector<std::pair<sl::reducer_layout, bool>> every_layout(std::size_t r) {
  return {{sl::partitions(r), true},
          {sl::partitions(r), false},
          {sl::per_key, true},
          {sl::per_key, false}};
}

// ---- properties -------------------------------------------------------------------------------

// The core property: for random texts and random options, every layout, combiner on and off,
// the result is the sequential count; the progress counters end at the totals; the job spawns
// exactly its tasklets (mappers + R reducers, or mappers + routers + one reducer per distinct
// key) and none of them is alive after it.
TEST_P(MapReduce, RandomTextsMatchTheSequentialCount) {
  const std::uint32_t seeds = static_cast<std::uint32_t>(scaled(8, 3, 2));
  const std::size_t max_r = scaled(1'000, 100, 20);
  for (std::uint32_t seed = 1; seed <= seeds; ++seed) {
    const corpus c = random_corpus(seed, kInputs, kVocab);
    std::mt19937 rng(seed * 7919 + workers());
    auto pick = [&](std::initializer_list<std::size_t> xs) {
      return xs.begin()[std::uniform_int_distribution<std::size_t>(0, xs.size() - 1)(rng)];
    };
    const std::size_t r = std::uniform_int_distribution<std::size_t>(1, max_r)(rng);
    for (auto [layout, combiner] : every_layout(r)) {
      map_reduce_progress progress;
      map_reduce_options o;
      o.reducers = layout;
      o.combiner = combiner;
      o.mappers = pick({0, 1, 2, 5});
      o.routers = pick({0, 1, 3});
      o.batch = pick({1, 2, 5, 64, 512});
      o.queue = pick({0, 1, 4});
      o.combine_limit = pick({1, 2, 7, std::size_t{1} << 16});
      o.progress = &progress;
      const word_map m{rng() % 2 == 0};
      const std::string where =
          "seed " + std::to_string(seed) + ", " + layout_name(layout) + ", combiner " +
          (combiner ? "on" : "off") + ", mappers " + std::to_string(o.mappers) + ", routers " +
          std::to_string(o.routers) + ", batch " + std::to_string(o.batch) + ", queue " +
          std::to_string(o.queue) + ", combine_limit " + std::to_string(o.combine_limit) +
          (m.as_string ? ", string keys" : ", string_view keys") + ", " +
          std::to_string(c.texts.size()) + " texts, " + std::to_string(c.ref.size()) +
          " distinct words";
      sched().block_on([&] {
        const auto before = sched().stats();
        const counts got = map_reduce<std::string, long>(c.texts, m, sum, o);
        const auto after = sched().stats();
        EXPECT_EQ(differ(got, c.ref), "") << where;
        EXPECT_EQ(progress.inputs.load(), c.texts.size()) << where;
        EXPECT_EQ(progress.pairs.load(), c.pairs) << where;
        EXPECT_EQ(progress.bytes.load(), c.bytes) << where;
        const std::size_t w = workers();
        const std::size_t mappers = o.mappers ? o.mappers : w;
        const std::size_t job = layout.kind == sl::reducer_layout::kind_t::per_key
                                    ? mappers + (o.routers ? o.routers : w) + c.ref.size()
                                    : mappers + r;
        EXPECT_EQ(after.spawned - before.spawned, job) << where;
        EXPECT_EQ(after.live, 1u) << "only this tasklet: " << where << "\n" << describe(after);
      });
    }
  }
}

// Integer keys — std::hash<int> is the identity and every key here is a multiple of 1,000, which
// the destinations' hash must still spread — and the default layout (partitions, 4 per worker).
TEST_P(MapReduce, IntegerKeys) {
  std::mt19937 rng(42);
  std::vector<std::vector<int>> inputs(scaled(50, 20, 10));
  const int mod = static_cast<int>(scaled(97, 31, 7));  // keys: 1,000 × (-(mod - 1) .. mod - 1)
  std::map<int, std::int64_t> want_sorted;
  for (auto& in : inputs) {
    in.resize(std::uniform_int_distribution<std::size_t>(0, 200)(rng));
    for (int& x : in) {
      x = std::uniform_int_distribution<int>(-100'000, 100'000)(rng);
      want_sorted[x % mod * 1'000] += x;
    }
  }
  const std::unordered_map<int, std::int64_t> want(want_sorted.begin(), want_sorted.end());
  auto map = [mod](const std::vector<int>& in, sl::emitter<int, std::int64_t>& emit) {
    for (int x : in) emit(x % mod * 1'000, std::int64_t{x});
  };
  auto add = [](std::int64_t& acc, std::int64_t v) { acc += v; };
  for (auto [layout, combiner] : every_layout(7)) {
    SCOPED_TRACE(layout_name(layout) + (combiner ? ", combiner" : ""));
    map_reduce_options o;
    o.reducers = layout;
    o.combiner = combiner;
    o.batch = 16;
    const auto got = map_reduce<int, std::int64_t>(sched(), inputs, map, add, o);
    EXPECT_EQ(differ(got, want), "");
  }
  // The default layout: partitions, 4 per worker.
  const auto got = map_reduce<int, std::int64_t>(sched(), inputs, map, add);
  EXPECT_EQ(differ(got, want), "");
}

// Every key with the same hash: each lookup probes a run of all the keys before it, and every
// growth of a table moves the whole run. Exact sums all the same, in every layout.
TEST_P(MapReduce, KeysThatAllHashAlike) {
  const int keys = static_cast<int>(scaled(1500, 400, 200));
  std::vector<std::vector<int>> inputs(8);
  std::map<int, long> want;
  for (std::size_t i = 0; i < inputs.size(); ++i)
    for (int k = 0; k < keys; ++k)
      if ((k + static_cast<int>(i)) % 3 != 0) {
        inputs[i].push_back(k);
        want[k] += k + 1;
      }
  auto map = [](const std::vector<int>& in, sl::emitter<clash, long>& emit) {
    for (int k : in) emit(clash{k}, long{k} + 1);
  };
  auto add = [](long& acc, long v) { acc += v; };
  for (auto [layout, combiner] : every_layout(5)) {
    SCOPED_TRACE(layout_name(layout) + (combiner ? ", combiner" : ""));
    map_reduce_options o;
    o.reducers = layout;
    o.combiner = combiner;
    o.batch = 64;
    const auto got = map_reduce<clash, long>(sched(), inputs, map, add, o);
    std::map<int, long> sorted;
    for (const auto& [k, v] : got) sorted[k.v] = v;
    EXPECT_EQ(sorted, want);
  }
}

// top_k<K, V>(k) keeps the k largest counts, ties broken by the smaller key, and has seen every
// distinct key once.
TEST_P(MapReduce, TopKEqualsTheReferencesTopK) {
  for (std::uint32_t seed = 11; seed < 11 + scaled(4, 2, 1); ++seed) {
    const corpus c = random_corpus(seed, kInputs, kVocab);
    std::vector<std::pair<std::string, long>> ranked(c.ref.begin(), c.ref.end());
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    for (std::size_t k : {std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{10},
                          c.ref.size(), c.ref.size() + 7}) {
      for (auto [layout, combiner] : every_layout(1 + seed % 5)) {
        SCOPED_TRACE("seed " + std::to_string(seed) + ", k " + std::to_string(k) + ", " +
                     layout_name(layout) + (combiner ? ", combiner" : ""));
        map_reduce_options o;
        o.reducers = layout;
        o.combiner = combiner;
        const auto top = map_reduce<std::string, long>(sched(), c.texts, word_map{}, sum, o,
                                                       sl::top_k<std::string, long>(k));
        const std::vector<std::pair<std::string, long>> want(
            ranked.begin(),
            ranked.begin() + static_cast<std::ptrdiff_t>(std::min(k, ranked.size())));
        EXPECT_EQ(top.sorted(), want);
        EXPECT_EQ(top.seen(), c.ref.size());
      }
    }
  }
}

// A sequence container gets one emplace_back per distinct key.
TEST_P(MapReduce, SequenceContainerGetsOneEntryPerKey) {
  const corpus c = random_corpus(5, kInputs, kVocab);
  using pairs = std::vector<std::pair<std::string, long>>;
  for (auto [layout, combiner] : every_layout(13)) {
    SCOPED_TRACE(layout_name(layout) + (combiner ? ", combiner" : ""));
    map_reduce_options o;
    o.reducers = layout;
    o.combiner = combiner;
    pairs seed_entries{{"already here", -1}};  // Out is appended to, not replaced
    const pairs got =
        map_reduce<std::string, long>(sched(), c.texts, word_map{}, sum, o, seed_entries);
    ASSERT_EQ(got.size(), c.ref.size() + 1);
    EXPECT_EQ(got.front(), (std::pair<std::string, long>{"already here", -1}));
    counts as_map;
    for (std::size_t i = 1; i < got.size(); ++i)
      EXPECT_TRUE(as_map.emplace(got[i].first, got[i].second).second)
          << "key '" << got[i].first << "' twice";
    EXPECT_EQ(differ(as_map, c.ref), "");
  }
}

// ---- inputs -----------------------------------------------------------------------------------

TEST_P(MapReduce, EmptyInputs) {
  std::atomic<int> map_calls{0};
  auto counting_map = [&](const std::string& text, emitter_t& emit) {
    map_calls.fetch_add(1);
    word_map{}(text, emit);
  };
  for (auto [layout, combiner] : every_layout(3)) {
    SCOPED_TRACE(layout_name(layout) + (combiner ? ", combiner" : ""));
    map_reduce_options o;
    o.reducers = layout;
    o.combiner = combiner;
    for (std::size_t n : {std::size_t{0}, std::size_t{5}}) {
      map_calls = 0;
      map_reduce_progress progress;
      o.progress = &progress;
      const std::vector<std::string> texts(n, n ? " \n " : "");  // no input, or no word
      EXPECT_TRUE((map_reduce<std::string, long>(sched(), texts, counting_map, sum, o).empty()));
      EXPECT_EQ(map_calls.load(), static_cast<int>(n));
      EXPECT_EQ(progress.inputs.load(), n);
      EXPECT_EQ(progress.pairs.load(), 0u);
      EXPECT_EQ(progress.bytes.load(), 3 * n);
    }
    // A channel closed before anything was sent.
    channel<std::string> ch(1);
    ch.close();
    o.progress = nullptr;
    EXPECT_TRUE((map_reduce<std::string, long>(sched(), ch, word_map{}, sum, o).empty()));
  }
}

// One input of a few megabytes of words (one mapper maps it all), among a few small ones.
TEST_P(MapReduce, OneHugeLine) {
  const std::size_t size = scaled(2 << 20, 1 << 17, 1 << 16);  // bytes
  std::mt19937 rng(7);
  std::vector<std::string> vocab;
  for (std::size_t i = 0; i < scaled(2'000, 100, 30); ++i)  // ~20 bytes a word: ~100,000 words
    vocab.push_back("word_" + std::to_string(rng() % 100'000) + "_of_a_huge_line");
  std::string huge;
  huge.reserve(size + 16);
  while (huge.size() < size) {
    huge += vocab[rng() % vocab.size()];
    huge += ' ';
  }
  const corpus c = reference({"a b", huge, "", "b c a"});
  for (auto [layout, combiner] : every_layout(16)) {
    SCOPED_TRACE(layout_name(layout) + (combiner ? ", combiner" : ""));
    map_reduce_options o;
    o.reducers = layout;
    o.combiner = combiner;
    map_reduce_progress progress;
    o.progress = &progress;
    const counts got = map_reduce<std::string, long>(sched(), c.texts, word_map{}, sum, o);
    EXPECT_EQ(differ(got, c.ref), "");
    EXPECT_EQ(progress.pairs.load(), c.pairs);
    EXPECT_EQ(progress.bytes.load(), c.bytes);
  }
}

// Binary-looking input: bytes 0-255, NULs included, are ordinary bytes to the map. Keys are the
// input's lines ('\n' separates them), so keys hold NULs, and must come out whole.
TEST_P(MapReduce, BinaryInputIsOrdinaryBytes) {
  std::mt19937 rng(99);
  // The lines come from a pool of binary strings (so keys repeat, and their number is bounded):
  // NULs, bytes ≥ 0x80, 0x01, letters; an empty line now and then.
  std::vector<std::string> pool(scaled(200, 60, 16));
  for (auto& p : pool) {
    p.resize(std::uniform_int_distribution<std::size_t>(0, 12)(rng));
    for (char& ch : p) {
      const unsigned x = rng() % 6;
      ch = x < 2 ? '\0'
                 : "\x01\xff\x80"
                   "a"[x - 2];
    }
  }
  pool.push_back(std::string("a\0b", 3));  // a NUL after the first byte, whatever the draws
  std::vector<std::string> texts(scaled(40, 16));
  for (auto& t : texts) {
    const std::size_t n = std::uniform_int_distribution<std::size_t>(0, 40)(rng);
    for (std::size_t k = 0; k < n; ++k) (t += pool[rng() % pool.size()]) += '\n';
  }
  counts want;
  std::uint64_t bytes = 0;
  auto lines = [](std::string_view s, auto&& f) {
    std::size_t at = 0;
    while (at <= s.size()) {
      const std::size_t nl = std::min(s.find('\n', at), s.size());
      if (nl > at) f(s.substr(at, nl - at));
      at = nl + 1;
    }
  };
  for (const auto& t : texts) {
    bytes += t.size();
    lines(t, [&](std::string_view l) { ++want[std::string(l)]; });
  }
  bool nul_inside = false;
  for (const auto& [k, v] : want)
    if (std::strlen(k.c_str()) < k.size() && k.front() != '\0') nul_inside = true;
  ASSERT_TRUE(nul_inside) << "the texts should have keys with a NUL after their first byte";
  auto line_map = [&](const std::string& text, emitter_t& emit) {
    emit.bytes(text.size());
    lines(text, [&](std::string_view l) { emit(l, 1L); });
  };
  for (auto [layout, combiner] : every_layout(5)) {
    SCOPED_TRACE(layout_name(layout) + (combiner ? ", combiner" : ""));
    map_reduce_options o;
    o.reducers = layout;
    o.combiner = combiner;
    o.batch = 3;
    map_reduce_progress progress;
    o.progress = &progress;
    const counts got = map_reduce<std::string, long>(sched(), texts, line_map, sum, o);
    EXPECT_EQ(differ(got, want), "");
    EXPECT_EQ(progress.bytes.load(), bytes);
  }
}

// A channel input fed by a producer tasklet, which closes it after the first m of the n texts:
// exactly those are mapped (mapping starts while the producer still sends).
TEST_P(MapReduce, ChannelInputClosedEarly) {
  corpus all = random_corpus(21, 40, kVocab);
  while (all.texts.size() < 20) all.texts.push_back("pad " + std::to_string(all.texts.size()));
  const std::size_t n = all.texts.size();
  const std::size_t m = n / 2;
  const corpus sent = reference(all.texts, 0, m);
  for (std::size_t capacity : {std::size_t{0}, std::size_t{3}}) {
    for (auto [layout, combiner] : every_layout(4)) {
      const std::string where = layout_name(layout) + (combiner ? ", combiner" : "") +
                                ", capacity " + std::to_string(capacity);
      map_reduce_options o;
      o.reducers = layout;
      o.combiner = combiner;
      o.batch = 4;
      map_reduce_progress progress;
      o.progress = &progress;
      sched().block_on([&] {
        channel<std::string> ch(capacity);
        auto producer = sl::spawn([&] {
          for (std::size_t i = 0; i < m; ++i) {
            ch.send(all.texts[i]);
            if (i % 3 == 0) this_tasklet::yield();
          }
          ch.close();
        });
        const counts got = map_reduce<std::string, long>(ch, word_map{}, sum, o);
        producer.join();
        EXPECT_EQ(differ(got, sent.ref), "") << where;
        EXPECT_EQ(progress.inputs.load(), m) << where;
        EXPECT_EQ(progress.pairs.load(), sent.pairs) << where;
        EXPECT_EQ(progress.bytes.load(), sent.bytes) << where;
        EXPECT_EQ(sched().stats().live, 1u) << where;
      });
    }
  }
}

// ---- errors -----------------------------------------------------------------------------------

// A map that throws on input k: map_reduce_error with stage "map", input k, a message that names
// the input and the original error, which is nested. Every tasklet of the job has ended.
TEST_P(MapReduce, MapThatThrowsOnInputK) {
  const std::size_t n = 40, k = 17;
  std::vector<std::string> texts(n, "alpha beta gamma alpha");
  texts[k] = "poison";
  auto map = [](const std::string& text, emitter_t& emit) {
    if (text == "poison") throw std::runtime_error("bad input: poison");
    word_map{}(text, emit);
  };
  for (int source = 0; source < 2; ++source) {
    for (auto [layout, combiner] : every_layout(3)) {
      const std::string where = std::string(source ? "channel" : "range") + ", " +
                                layout_name(layout) + (combiner ? ", combiner" : "");
      map_reduce_options o;
      o.reducers = layout;
      o.combiner = combiner;
      o.batch = 2;
      // A channel input is numbered by receive; with one mapper that is the order sent.
      if (source) o.mappers = 1;
      sched().block_on([&] {
        channel<std::string> ch(n);  // the whole input fits: the producer never waits
        for (const auto& t : texts) ch.send(t);
        ch.close();
        try {
          if (source) {
            (void)map_reduce<std::string, long>(ch, map, sum, o);
          } else {
            (void)map_reduce<std::string, long>(texts, map, sum, o);
          }
          ADD_FAILURE() << "no map_reduce_error: " << where;
        } catch (const map_reduce_error& e) {
          EXPECT_STREQ(e.stage(), "map") << where;
          EXPECT_EQ(e.input(), k) << where;
          const std::string what = e.what();
          EXPECT_NE(what.find("input " + std::to_string(k)), std::string::npos) << what;
          EXPECT_NE(what.find("bad input: poison"), std::string::npos) << what;
          try {
            std::rethrow_if_nested(e);
            ADD_FAILURE() << "nothing nested: " << where;
          } catch (const map_reduce_error&) {
            ADD_FAILURE() << "the nested exception is another map_reduce_error: " << where;
          } catch (const std::runtime_error& inner) {
            EXPECT_STREQ(inner.what(), "bad input: poison") << where;
          }
        }
        EXPECT_EQ(sched().stats().live, 1u) << where;
      });
    }
  }
}

// An exception that is not a std::exception: the message says so, and it is nested as thrown.
TEST_P(MapReduce, MapThatThrowsANonStandardException) {
  const std::vector<std::string> texts{"a", "b", "c", "d"};
  for (auto [layout, combiner] : every_layout(2)) {
    SCOPED_TRACE(layout_name(layout) + (combiner ? ", combiner" : ""));
    map_reduce_options o;
    o.reducers = layout;
    o.combiner = combiner;
    try {
      (void)map_reduce<std::string, long>(
          sched(), texts,
          [](const std::string& t, emitter_t& emit) {
            if (t == "c") throw 42;
            emit(t, 1L);
          },
          sum, o);
      ADD_FAILURE() << "no map_reduce_error";
    } catch (const map_reduce_error& e) {
      EXPECT_STREQ(e.stage(), "map");
      EXPECT_EQ(e.input(), 2u);
      EXPECT_NE(std::string(e.what()).find("not derived from std::exception"), std::string::npos)
          << e.what();
      try {
        std::rethrow_if_nested(e);
        ADD_FAILURE() << "nothing nested";
      } catch (int x) {
        EXPECT_EQ(x, 42);
      }
    }
  }
}

// A reduce that throws: stage "reduce", no input, the original nested — wherever the reduce ran:
// in a partition, in a per-key reducer, or in a mapper's combiner (pre-aggregation).
TEST_P(MapReduce, ReduceThatThrows) {
  const std::vector<std::string> texts(12, "x y x z x y");
  auto failing = [](long& acc, long v) {
    if (acc + v >= 3) throw std::overflow_error("reduce overflowed");
    acc += v;
  };
  for (auto [layout, combiner] : every_layout(3)) {
    for (std::size_t combine_limit : {std::size_t{1}, std::size_t{1} << 16}) {
      const std::string where = layout_name(layout) + (combiner ? ", combiner" : "") +
                                ", combine_limit " + std::to_string(combine_limit);
      map_reduce_options o;
      o.reducers = layout;
      o.combiner = combiner;
      o.combine_limit = combine_limit;
      sched().block_on([&] {
        try {
          (void)map_reduce<std::string, long>(texts, word_map{}, failing, o);
          ADD_FAILURE() << "no map_reduce_error: " << where;
        } catch (const map_reduce_error& e) {
          EXPECT_STREQ(e.stage(), "reduce") << where << ": " << e.what();
          EXPECT_EQ(e.input(), map_reduce_error::no_input) << where;
          EXPECT_NE(std::string(e.what()).find("reduce overflowed"), std::string::npos) << e.what();
          try {
            std::rethrow_if_nested(e);
            ADD_FAILURE() << "nothing nested: " << where;
          } catch (const map_reduce_error& inner) {
            ADD_FAILURE() << "nested map_reduce_error: " << inner.what();
          } catch (const std::overflow_error& inner) {
            EXPECT_STREQ(inner.what(), "reduce overflowed") << where;
          }
        }
        EXPECT_EQ(sched().stats().live, 1u) << where;
      });
    }
  }
}

TEST_P(MapReduce, InvalidOptions) {
  EXPECT_THROW((void)sl::partitions(0), std::invalid_argument);
  const std::vector<std::string> texts{"a"};
  std::atomic<int> map_calls{0};
  auto map = [&](const std::string& t, emitter_t& emit) {
    map_calls.fetch_add(1);
    emit(t, 1L);
  };
  map_reduce_options o;
  o.batch = 0;
  EXPECT_THROW(((void)map_reduce<std::string, long>(sched(), texts, map, sum, o)),
               std::invalid_argument);
  o.batch = 1;
  o.combine_limit = 0;
  EXPECT_THROW(((void)map_reduce<std::string, long>(sched(), texts, map, sum, o)),
               std::invalid_argument);
  EXPECT_EQ(map_calls.load(), 0);
  o.combiner = false;  // combine_limit matters only with the combiner
  EXPECT_EQ((map_reduce<std::string, long>(sched(), texts, map, sum, o)), (counts{{"a", 1}}));
}

TEST_P(MapReduce, PlainThreadWithoutASchedulerGetsUsageError) {
  const std::vector<std::string> texts{"a b", "c"};
  std::atomic<int> map_calls{0};
  auto map = [&](const std::string& t, emitter_t& emit) {
    map_calls.fetch_add(1);
    word_map{}(t, emit);
  };
  EXPECT_THROW(((void)map_reduce<std::string, long>(texts, map, sum)), usage_error);
  channel<std::string> ch(2);
  EXPECT_THROW(((void)map_reduce<std::string, long>(ch, map, sum)), usage_error);
  // Still a plain thread once a scheduler exists; the scheduler overload is the way.
  (void)sched();
  EXPECT_THROW(((void)map_reduce<std::string, long>(texts, map, sum)), usage_error);
  EXPECT_EQ(map_calls.load(), 0);
  EXPECT_EQ((map_reduce<std::string, long>(sched(), texts, map, sum)),
            (counts{{"a", 1}, {"b", 1}, {"c", 1}}));
}

// ---- cancellation -----------------------------------------------------------------------------

// A stop request half-way through — from another tasklet or from a plain thread — while the
// mappers are slowed down by sleeps: operation_cancelled, not every input was mapped, and no
// tasklet of the job is left. "Half-way" does not depend on timing: from the fifth map call on,
// each one sleeps (in 200 µs steps) until the stopper's request_stop() has returned — which
// runs the job's stop callback, so the kills come during those sleeps. At most 4 + mappers
// inputs are mapped, of 1,000.
TEST_P(MapReduce, StopHalfWayCancelsTheJob) {
  const std::size_t n = 1'000;
  std::vector<std::string> texts(n);
  for (std::size_t i = 0; i < n; ++i) texts[i] = "w" + std::to_string(i) + " common";
  for (int from_thread = 0; from_thread < 2; ++from_thread) {
    for (auto [layout, combiner] : every_layout(8)) {
      const std::string where = std::string(from_thread ? "plain thread" : "tasklet") + ", " +
                                layout_name(layout) + (combiner ? ", combiner" : "");
      std::stop_source stop;
      std::atomic<std::size_t> mapped{0};
      std::atomic<bool> requested{false};
      map_reduce_options o;
      o.reducers = layout;
      o.combiner = combiner;
      o.batch = 1;
      o.stop = stop.get_token();
      auto slow_map = [&](const std::string& text, emitter_t& emit) {
        const std::size_t call = mapped.fetch_add(1);
        this_tasklet::sleep_for(200us);
        while (call >= 4 && !requested.load()) this_tasklet::sleep_for(200us);
        word_map{}(text, emit);
      };
      auto request = [&] {
        stop.request_stop();
        requested = true;
      };
      std::thread stopper_thread;
      if (from_thread)
        stopper_thread = std::thread([&] {
          wait_until([&] { return mapped.load() >= 5; });
          request();
        });
      sched().block_on([&] {
        std::optional<tasklet<void>> stopper;
        if (!from_thread)
          stopper = sl::spawn([&] {
            yield_until([&] { return mapped.load() >= 5; });
            request();
          });
        EXPECT_THROW(((void)map_reduce<std::string, long>(texts, slow_map, sum, o)),
                     operation_cancelled)
            << where;
        if (stopper) stopper->join();
        EXPECT_LE(mapped.load(), 4 + workers()) << where;
        const auto st = sched().stats();
        EXPECT_EQ(st.live, 1u) << "only this tasklet: " << where << "\n" << describe(st);
      });
      if (stopper_thread.joinable()) stopper_thread.join();
    }
  }
}

// A stop must reach a mapper whose map never parks (the combiner on: nothing is sent until the
// mapper ends). One mapper; at input k its map waits — spinning, not parking — until a plain
// thread has requested the stop (request_stop() runs the job's stop callback, which kills the
// job's tasklets, before it returns); then the mapper must not map input k + 1.
TEST_P(MapReduce, StopReachesAMapperThatNeverParks) {
  const std::size_t n = 1'000, k = 10;
  const std::vector<std::string> texts(n, "spin spin spin");
  for (auto [layout, combiner] : every_layout(2)) {
    SCOPED_TRACE(layout_name(layout) + (combiner ? ", combiner" : ""));
    std::stop_source stop;
    std::atomic<std::size_t> mapped{0};
    std::atomic<bool> reached{false}, requested{false};
    map_reduce_options o;
    o.reducers = layout;
    o.combiner = combiner;
    o.mappers = 1;
    o.batch =
        1'000'000;  // with the combiner off, too: nothing is sent (no suspension) before the end
    o.stop = stop.get_token();
    auto map = [&](const std::string& text, emitter_t& emit) {
      if (mapped.fetch_add(1) == k) {
        reached = true;
        while (!requested.load()) std::this_thread::yield();  // the worker's thread: no park
      }
      word_map{}(text, emit);
    };
    std::thread stopper([&] {
      wait_until([&] { return reached.load(); });
      stop.request_stop();
      requested = true;
    });
    EXPECT_THROW(((void)map_reduce<std::string, long>(sched(), texts, map, sum, o)),
                 operation_cancelled);
    stopper.join();
    EXPECT_EQ(mapped.load(), k + 1) << "the mapper went on after the stop";
    EXPECT_EQ(sched().stats().live, 0u);
  }
}

// The job's input is a channel that never closes: its mappers wait in receive() when the stop
// comes from a plain thread. Then a stop requested before the call, and one after the job ended.
TEST_P(MapReduce, StopWhileMappersWaitOnAChannelThatNeverCloses) {
  for (auto [layout, combiner] : every_layout(6)) {
    SCOPED_TRACE(layout_name(layout) + (combiner ? ", combiner" : ""));
    channel<std::string> ch(16);
    std::stop_source stop;
    map_reduce_progress progress;
    map_reduce_options o;
    o.reducers = layout;
    o.combiner = combiner;
    o.stop = stop.get_token();
    o.progress = &progress;
    std::atomic<bool> cancelled{false};
    std::atomic<std::uint64_t> live_after{0};
    auto job = sched().spawn([&] {
      try {
        (void)map_reduce<std::string, long>(ch, word_map{}, sum, o);
      } catch (const operation_cancelled&) {
        cancelled = true;
        live_after = sched().stats().live;
      }
    });
    for (int i = 0; i < 5; ++i) ch.send("some words " + std::to_string(i));
    ASSERT_TRUE(wait_until([&] { return progress.inputs.load() == 5; }));
    stop.request_stop();
    job.join();
    EXPECT_TRUE(cancelled.load());
    EXPECT_EQ(live_after.load(), 1u) << "the job's caller only";
    EXPECT_EQ(sched().stats().live, 0u) << describe(sched().stats());
    EXPECT_FALSE(ch.closed());
  }
  // Stopped before the call: nothing is mapped.
  std::stop_source stop;
  stop.request_stop();
  map_reduce_options o;
  o.stop = stop.get_token();
  std::atomic<int> map_calls{0};
  const std::vector<std::string> texts{"a", "b"};
  auto map = [&](const std::string& t, emitter_t& emit) {
    map_calls.fetch_add(1);
    emit(t, 1L);
  };
  EXPECT_THROW(((void)map_reduce<std::string, long>(sched(), texts, map, sum, o)),
               operation_cancelled);
  EXPECT_EQ(map_calls.load(), 0);
  // A stop after the job ended changes nothing.
  std::stop_source late;
  o.stop = late.get_token();
  EXPECT_EQ((map_reduce<std::string, long>(sched(), texts, map, sum, o)),
            (counts{{"a", 1}, {"b", 1}}));
  late.request_stop();
  EXPECT_EQ(sched().stats().live, 0u);
}

// A kill of map_reduce()'s caller (parked in the job's wait, its mappers waiting on a channel that
// never closes) ends every tasklet of the job before the caller's frame goes.
TEST_P(MapReduce, KillOfTheCallerEndsTheJob) {
  for (auto [layout, combiner] : every_layout(6)) {
    SCOPED_TRACE(layout_name(layout) + (combiner ? ", combiner" : ""));
    channel<std::string> ch(16);
    map_reduce_progress progress;
    map_reduce_options o;
    o.reducers = layout;
    o.combiner = combiner;
    o.batch = 1;
    o.progress = &progress;
    std::atomic<bool> returned{false};
    auto job = sched().spawn([&] {
      (void)map_reduce<std::string, long>(ch, word_map{}, sum, o);
      returned = true;
    });
    for (int i = 0; i < 5; ++i) ch.send("w" + std::to_string(i) + " common");
    ASSERT_TRUE(wait_until([&] { return progress.inputs.load() == 5 && job.blocked(); }));
    job.kill();
    EXPECT_FALSE(returned.load());
    const auto st = sched().stats();
    EXPECT_EQ(st.live, 0u) << describe(st);
  }
}

// ---- backpressure -----------------------------------------------------------------------------

// A slow reducer parks the mappers: the pairs emitted but not yet reduced stay bounded. With the
// combiner off, M mappers, D = R partitions, batch b and queue q (map_reduce.hpp, "memory stays
// bounded by destinations × queue × batch pairs"), a pair not yet reduced is
//   - in a mapper: its buffers hold < b pairs per destination, plus the one full batch it is
//     parked sending: ≤ D × b per mapper, M × D × b in all;
//   - in a channel's buffer: ≤ q batches per destination, D × q × b;
//   - in a reducer, the batch it is folding: ≤ D × b;
//   - counted early by this test: emitted is bumped before emit() (≤ M), and the first value of
//     each key is moved in without a reduce() call (≤ keys);
// so emitted − reduced ≤ M·D·b + D·q·b + D·b + M + keys — within the brief form
// M × (D × (b + q × b)) + D × b + M + keys. With b = q = 1, D = 2, M = 4, keys = 4: 20, of 400.
TEST_P(MapReduce, SlowReducerBoundsThePairsInFlight) {
  const std::size_t inputs = 20, per_input = 20, keys = 4, d = 2;
  const std::size_t b = 1, q = 1;
  const std::vector<std::string> texts(inputs, "");
  std::atomic<std::int64_t> emitted{0}, reduced{0}, peak{0};
  auto note = [&](std::int64_t in_flight) {
    std::int64_t p = peak.load();
    while (in_flight > p && !peak.compare_exchange_weak(p, in_flight)) {
    }
  };
  auto map = [&](const std::string&, emitter_t& emit) {
    for (std::size_t i = 0; i < per_input; ++i) {
      const std::int64_t e = emitted.fetch_add(1) + 1;
      note(e - reduced.load());
      emit("k" + std::to_string(i % keys), 1L);
    }
  };
  auto slow_sum = [&](long& acc, long v) {
    this_tasklet::sleep_for(100us);
    acc += v;
    reduced.fetch_add(1);
  };
  map_reduce_options o;
  o.reducers = sl::partitions(d);
  o.combiner = false;
  o.batch = b;
  o.queue = q;
  const std::size_t m = workers();  // mappers: one per worker
  const counts got = map_reduce<std::string, long>(sched(), texts, map, slow_sum, o);
  for (std::size_t k = 0; k < keys; ++k)
    EXPECT_EQ(got.at("k" + std::to_string(k)), static_cast<long>(inputs * per_input / keys));
  const std::int64_t bound = static_cast<std::int64_t>(m * d * b + d * q * b + d * b + m + keys);
  EXPECT_LE(peak.load(), bound) << "pairs emitted and not yet reduced";
  EXPECT_GE(peak.load(), 2) << "the mappers never got ahead: the test measures nothing";
  EXPECT_EQ(reduced.load(), static_cast<std::int64_t>(inputs * per_input - keys));
}

// ---- stress -----------------------------------------------------------------------------------

// per_key with 200,000 distinct keys: one reducer tasklet per key, all alive until the mappers
// end (~1.7 GB of RSS). The full size runs under STACKLESS_TEST_TIER=soak (tools/dev soak-tests):
// it takes 20-30 s per worker count in the debug build on the 2-core VM, most of it page faults
// on fresh stacks; CI runs 50,000 keys (fixture.hpp: ci_sized()), ASan 500 and TSan 200 (TSan
// pays milliseconds per live tasklet: scaled()). Tier stress (tests/CMakeLists.txt).
TEST_P(MapReduce, PerKeyWithManyDistinctKeys) {
  const std::size_t keys = ci_sized(scaled(200'000, 500, 200), 50'000);
  std::mt19937 rng(2026);
  std::vector<std::string> words;
  words.reserve(keys * 2);
  for (std::size_t j = 0; j < keys; ++j)
    for (std::size_t r = 0; r <= j % 3; ++r) words.push_back("k" + std::to_string(j));
  std::shuffle(words.begin(), words.end(), rng);
  std::vector<std::string> texts((words.size() + 199) / 200);
  for (std::size_t i = 0; i < words.size(); ++i) (texts[i / 200] += words[i]) += ' ';
  const corpus c = reference(std::move(texts));
  ASSERT_EQ(c.ref.size(), keys);
  for (bool combiner : {true, false}) {
    SCOPED_TRACE(combiner ? "combiner" : "no combiner");
    map_reduce_options o;
    o.reducers = sl::per_key;
    o.combiner = combiner;
    o.mappers = 2;
    o.routers = 3;
    sched().block_on([&] {
      const auto before = sched().stats();
      const counts got = map_reduce<std::string, long>(c.texts, word_map{}, sum, o);
      const auto after = sched().stats();
      EXPECT_EQ(differ(got, c.ref), "");
      EXPECT_EQ(after.spawned - before.spawned, 2 + 3 + keys) << "one reducer per distinct key";
      EXPECT_EQ(after.live, 1u) << describe(after);
    });
  }
}

}  // namespace
