// SPDX-License-Identifier: Apache-2.0
// stackless/sync/detail/mr_table.hpp — the hash table of map_reduce()'s combiners, partition
// reducers and per_key routers (map_reduce.hpp). Not a public name: nothing outside map_reduce
// should use it.
//
// Why not std::unordered_map: a word count spends most of its time finding a key that is already
// there. std::unordered_map finds it through a bucket array and then a node (two cache misses),
// and hashes the key again wherever it goes next (the partition it is shipped to, the
// partition's own map). Here a key is hashed once, in the mapper, and the hash travels with it.
//
// The layout is open addressing with linear probing (Knuth, TAOCP vol. 3, 6.4, algorithm L; no
// deletions, so no tombstones), the entries in the slot array itself, and beside it a byte per
// slot (0: empty, else 0x80 | the hash's top 7 bits), as in Abseil's SwissTable without its
// SIMD groups. The control bytes of a table of 100,000 keys are 256 KiB, at home in L2, so a probe
// reads them, not the entries: a hit costs one cache miss (the entry: key, value and full hash
// share it), a miss usually none beyond the control byte. At most half full: probes stay short.
// A key's slot is the top bits of hash × 2^64/φ (Fibonacci hashing, Knuth 6.4): a partition holds
// keys whose hashes agree modulo the partition count, and the multiplication spreads the other
// bits over the slot index.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>

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
/// key_hash, map_reduce.hpp). for_each() visits the entries in slot order.
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
  ~table() { release(); }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  /// find(k, h): the entry whose key equals k (h is k's hash), or null.
  template <class KL>
  entry* find(const KL& k, std::size_t h) noexcept {
    if (cap_ == 0) return nullptr;
    const std::uint8_t tag = tag_of(h);
    for (std::size_t i = home(h);; i = (i + 1) & mask_) {
      const std::uint8_t c = ctrl_[i];
      if (c == 0) return nullptr;
      if (c == tag && slots_[i].hash == h && slots_[i].key == k) return &slots_[i];
    }
  }

  /// try_emplace(k, h, v): finds k, or inserts K(k) with value std::move(v). Returns the entry
  /// (valid until the next insertion) and whether it is new; v is moved from only when it is.
  template <class KL>
  std::pair<entry*, bool> try_emplace(KL&& k, std::size_t h, V& v) {
    if (2 * (size_ + 1) > cap_) grow();
    const std::uint8_t tag = tag_of(h);
    std::size_t i = home(h);
    for (;; i = (i + 1) & mask_) {
      const std::uint8_t c = ctrl_[i];
      if (c == 0) break;
      if (c == tag && slots_[i].hash == h && slots_[i].key == k) return {&slots_[i], false};
    }
    std::construct_at(&slots_[i], entry{K(std::forward<KL>(k)), std::move(v), h});
    ctrl_[i] = tag;
    ++size_;
    return {&slots_[i], true};
  }

  /// for_each(f): f(entry&) for every entry.
  template <class F>
  void for_each(F&& f) {
    for (std::size_t i = 0; i < cap_; ++i)
      if (ctrl_[i] != 0) f(slots_[i]);
  }

  /// clear() destroys every entry and keeps the memory.
  void clear() noexcept {
    for (std::size_t i = 0; i < cap_; ++i)
      if (ctrl_[i] != 0) std::destroy_at(&slots_[i]);
    if (cap_ != 0) std::memset(ctrl_.get(), 0, cap_);
    size_ = 0;
  }

  void swap(table& o) noexcept {
    std::swap(ctrl_, o.ctrl_);
    std::swap(slots_, o.slots_);
    std::swap(cap_, o.cap_);
    std::swap(size_, o.size_);
    std::swap(mask_, o.mask_);
    std::swap(shift_, o.shift_);
  }

 private:
  static std::uint8_t tag_of(std::size_t h) noexcept {
    return static_cast<std::uint8_t>(0x80U | (static_cast<std::uint64_t>(h) >> 57));
  }
  std::size_t home(std::size_t h) const noexcept {
    return static_cast<std::size_t>((static_cast<std::uint64_t>(h) * 0x9e3779b97f4a7c15ULL) >>
                                    shift_);
  }
  void release() noexcept {
    clear();
    if (slots_) std::allocator<entry>{}.deallocate(slots_, cap_);
    slots_ = nullptr;
    ctrl_.reset();
    cap_ = 0;
  }
  // grow(): twice the slots, every entry moved to its slot in the new array.
  void grow() {
    const std::size_t n = cap_ == 0 ? 16 : 2 * cap_;
    table t;
    t.ctrl_ = std::make_unique<std::uint8_t[]>(n);  // zeroed: every slot empty
    t.slots_ = std::allocator<entry>{}.allocate(n);
    t.cap_ = n;
    t.mask_ = n - 1;
    t.shift_ = 64 - static_cast<unsigned>(std::countr_zero(n));
    for (std::size_t i = 0; i < cap_; ++i) {
      if (ctrl_[i] == 0) continue;
      entry& e = slots_[i];
      std::size_t j = t.home(e.hash);
      while (t.ctrl_[j] != 0) j = (j + 1) & t.mask_;
      std::construct_at(&t.slots_[j], std::move(e));
      t.ctrl_[j] = ctrl_[i];
      ++t.size_;
    }
    swap(t);  // t, the old array, destroys the moved-from entries
  }

  std::unique_ptr<std::uint8_t[]> ctrl_;
  entry* slots_ = nullptr;
  std::size_t cap_ = 0;
  std::size_t size_ = 0;
  std::size_t mask_ = 0;
  unsigned shift_ = 64;
};

}  // namespace stackless::detail::mr
