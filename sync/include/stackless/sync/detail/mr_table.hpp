// SPDX-License-Identifier: Apache-2.0
// stackless/sync/detail/mr_table.hpp — the hash table of map_reduce()'s combiners, partition
// reducers and per_key routers (map_reduce.hpp). Not a public name: nothing outside map_reduce
// should use it.
//
// Why not std::unordered_map: a word count spends most of its time finding a key that is already
// there. std::unordered_map finds it through a bucket array and then a node, and hashes the key
// again wherever it goes next (the partition it is shipped to, the partition's own map). Here a
// key is hashed once, in the mapper, and the hash travels with it.
//
// The layout: open addressing with linear probing (Knuth, TAOCP vol. 3, 6.4, algorithm L; no
// deletions, so no tombstones) over an index of 64-bit slots — 0 for empty, else the upper 32
// bits of the key's hash and the entry's number + 1 — at most half full, so probes stay short
// and a probe rarely touches an entry whose key is not the one sought (the tag differs). The
// entries (key, value, full hash) are dense, in insertion order, in chunks that double in size
// and never move: growing the table rebuilds the 8-byte index from the stored hashes and moves
// no key. (Entries in the slots themselves cost one cache miss less per hit, but every growth
// then moved every key: at two workers, with two mappers' tables growing at once, that was 10 %
// of the job's CPU, and the half-empty slots doubled the memory the lookups miss in.) Shipping
// a table's keys is a walk over the dense chunks.
//
// A key's slot is the top bits of hash × 2^64/φ (Fibonacci hashing, Knuth 6.4): a partition holds
// keys whose hashes agree modulo the partition count, and the multiplication spreads the other
// bits over the slot index.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace stackless::detail::mr {

/// item is a key, its value and the key's hash: an entry of a table, and what batches carry from
/// mappers to reducers.
template <class K, class V>
struct item {
  K key;
  V value;
  std::size_t hash;
};

/// table<K, V> maps keys to values, each key given with its hash (the caller's: spread() of
/// key_hash, map_reduce.hpp). At most 2^32 - 1 entries. for_each() visits them in insertion order.
template <class K, class V>
class table {
 public:
  using entry = item<K, V>;

  table() = default;
  table(table&& o) noexcept { swap(o); }
  table& operator=(table&& o) noexcept {
    table(std::move(o)).swap(*this);
    return *this;
  }
  table(const table&) = delete;
  table& operator=(const table&) = delete;
  ~table() {
    clear();
    for (std::size_t c = 0; c < chunks_.size(); ++c)
      std::allocator<entry>{}.deallocate(chunks_[c], chunk_size(c));
  }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  /// find(k, h): the entry whose key equals k (h is k's hash), or null.
  template <class KL>
  entry* find(const KL& k, std::size_t h) noexcept {
    if (slots_.empty()) return nullptr;
    const std::uint64_t tag = tag_of(h);
    for (std::size_t i = home(h);; i = (i + 1) & mask_) {
      const std::uint64_t s = slots_[i];
      if (s == 0) return nullptr;
      if ((s & ~low32) == tag) {
        entry& e = at((s & low32) - 1);
        if (e.hash == h && e.key == k) return &e;
      }
    }
  }

  /// try_emplace(k, h, v): finds k, or inserts K(k) with value std::move(v). Returns the entry
  /// (it never moves) and whether it is new; v is moved from only when it is.
  template <class KL>
  std::pair<entry*, bool> try_emplace(KL&& k, std::size_t h, V& v) {
    if (2 * (size_ + 1) > slots_.size()) grow();
    const std::uint64_t tag = tag_of(h);
    std::size_t i = home(h);
    for (;; i = (i + 1) & mask_) {
      const std::uint64_t s = slots_[i];
      if (s == 0) break;
      if ((s & ~low32) == tag) {
        entry& e = at((s & low32) - 1);
        if (e.hash == h && e.key == k) return {&e, false};
      }
    }
    const std::size_t n = size_;
    if (chunk_of(n) == chunks_.size())
      chunks_.push_back(std::allocator<entry>{}.allocate(chunk_size(chunks_.size())));
    entry* e = std::construct_at(&at(n), entry{K(std::forward<KL>(k)), std::move(v), h});
    slots_[i] = tag | (n + 1);
    ++size_;
    return {e, true};
  }

  /// for_each(f): f(entry&) for every entry, in insertion order.
  template <class F>
  void for_each(F&& f) {
    for (std::size_t n = 0; n < size_; ++n) f(at(n));
  }

  /// clear() destroys every entry and keeps the memory.
  void clear() noexcept {
    for (std::size_t n = 0; n < size_; ++n) std::destroy_at(&at(n));
    std::fill(slots_.begin(), slots_.end(), std::uint64_t{0});
    size_ = 0;
  }

  void swap(table& o) noexcept {
    slots_.swap(o.slots_);
    chunks_.swap(o.chunks_);
    std::swap(size_, o.size_);
    std::swap(mask_, o.mask_);
    std::swap(shift_, o.shift_);
  }

 private:
  static constexpr std::uint64_t low32 = 0xffffffffULL;
  // Chunk c holds 64 << c entries; entry n is in chunk bit_width(n + 64) - 7.
  static constexpr std::size_t first_chunk = 64;
  static std::size_t chunk_size(std::size_t c) noexcept { return first_chunk << c; }
  static std::size_t chunk_of(std::size_t n) noexcept {
    return static_cast<std::size_t>(std::bit_width(n + first_chunk)) - 7;
  }
  entry& at(std::size_t n) noexcept {
    const std::size_t c = chunk_of(n);
    return chunks_[c][n + first_chunk - chunk_size(c)];
  }
  static std::uint64_t tag_of(std::size_t h) noexcept {
    return static_cast<std::uint64_t>(h) & ~low32;
  }
  std::size_t home(std::size_t h) const noexcept {
    return static_cast<std::size_t>((static_cast<std::uint64_t>(h) * 0x9e3779b97f4a7c15ULL) >>
                                    shift_);
  }
  // grow(): twice the slots, rebuilt from the entries' hashes (no entry moves).
  void grow() {
    const std::size_t n = slots_.empty() ? 16 : 2 * slots_.size();
    slots_.assign(n, 0);
    mask_ = n - 1;
    shift_ = 64 - static_cast<unsigned>(std::countr_zero(n));
    for (std::size_t e = 0; e < size_; ++e) {
      const std::size_t h = at(e).hash;
      std::size_t i = home(h);
      while (slots_[i] != 0) i = (i + 1) & mask_;
      slots_[i] = tag_of(h) | (e + 1);
    }
  }

  std::vector<std::uint64_t> slots_;
  std::vector<entry*> chunks_;
  std::size_t size_ = 0;
  std::size_t mask_ = 0;
  unsigned shift_ = 64;
};

}  // namespace stackless::detail::mr
