// SPDX-License-Identifier: Apache-2.0
// sync/src/ebr.hpp — epoch-based reclamation (Fraser, "Practical lock-freedom", 2004, ch. 5;
// Hart, McKenney, Demke Brown, Walpole, "Performance of memory reclamation for lockless
// synchronization", JPDC 2007) for the channel's segments.
//
// A thread *pins* itself while it reads pointers that another thread may unlink; an unlinked
// object is *retired* and freed only after every thread pinned at that moment has unpinned.
//
//   ebr::guard g;                 // pinned until g dies
//   segment* s = head.load(...);  // safe to dereference while pinned
//   ...                           // unlink x (no new reader can reach it), then:
//   ebr::retire(x, &free_x);      // freed two epoch advances later
//
// Rules:
//  - A pin never spans a switch: a tasklet unpins before it parks or yields (the record is its
//    OS thread's, and another tasklet of that thread may pin next). guard is not movable.
//  - retire() only objects no pinned thread can newly reach: unlinked from every shared pointer.
#pragma once

#include <cstdint>

namespace stackless::detail::ebr {

struct record;

/// pin() / unpin() bracket a read-side critical section of the calling OS thread (nestable).
record* pin() noexcept;
void unpin(record*) noexcept;

/// retire() frees p with free_fn(p) once no thread pinned now can still hold it.
void retire(void* p, void (*free_fn)(void*) noexcept);

/// collect() advances the epoch if it can and frees what is safe; retire() calls it now and then.
void collect();

class guard {
 public:
  guard() noexcept : r_(pin()) {}
  ~guard() { unpin(r_); }
  guard(const guard&) = delete;
  guard& operator=(const guard&) = delete;

 private:
  record* r_;
};

/// pending() is the number of retired objects not yet freed (for tests).
std::uint64_t pending() noexcept;

}  // namespace stackless::detail::ebr
