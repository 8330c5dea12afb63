// SPDX-License-Identifier: Apache-2.0
// sync/src/chan_cells.cpp — the out-of-line half of the channel engine: segments (making,
// walking, retiring), elements (put, give_back, take), expand_buffer, resuming a record's owner,
// and resolve. The glossary, the cell state diagram and the invariants the code below refers to
// (invariant 1–6) open chan_engine.hpp.

#include <algorithm>
#include <cstring>
#include <new>

#include "chan_engine.hpp"
#include "stackless/runtime/internal/futex.hpp"
#include "stackless/runtime/internal/park.hpp"

namespace stackless::detail {

namespace {

std::size_t round_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

// seg_cache: each thread's free segments, a few sizes (one per element layout in use) with a
// LIFO list each. A channel retires a segment every 32 cells and ebr frees it a little later
// (in batches of 64: collect_every), usually on the thread that makes the next ones; without
// the cache every segment is a malloc and a free of ~700 bytes, past glibc's tcache (7 blocks
// per size), through the arena's bins. Bounded: at most `per_size` blocks of each size; a size
// that finds no bin, or a block beyond the bound, goes to the allocator as before. Thread-local, so
// no synchronisation: a block freed on one thread and reused on another passes through the
// allocator's own hand-off in between (the segment is re-initialised by new_segment() either way).
//
// The cache is plain data (constant-initialised, trivially destructible: usable at any moment
// of the thread's life, also from other thread-locals' destructors, such as ebr's, and from the
// static destructors at exit). A second thread-local, registered by the first put(), empties it
// when the thread ends and closes it: later frees on this thread go to the allocator.
struct seg_cache {
  static constexpr std::size_t sizes = 4;
  static constexpr std::size_t per_size = 64;
  struct bin {
    std::size_t bytes;
    void* head;
    std::size_t count;
  };
  bool closed;
  bool reaper_registered;
  bin bins[sizes];

  void* get(std::size_t bytes) noexcept {
    for (auto& b : bins) {
      if (b.bytes == bytes && b.head) {
        void* p = b.head;
        b.head = *static_cast<void**>(p);
        --b.count;
        return p;
      }
    }
    return nullptr;
  }
  bool put(void* p, std::size_t bytes) noexcept;
  void drain() noexcept {
    for (auto& b : bins) {
      while (b.head) {
        void* p = b.head;
        b.head = *static_cast<void**>(p);
        ::operator delete(p);
      }
      b.count = 0;
    }
  }
};

constinit thread_local seg_cache t_seg_cache{};

struct seg_cache_reaper {
  ~seg_cache_reaper() {
    t_seg_cache.drain();
    t_seg_cache.closed = true;
  }
};

bool seg_cache::put(void* p, std::size_t bytes) noexcept {
  if (closed) return false;
  if (!reaper_registered) {
    reaper_registered = true;
    static thread_local seg_cache_reaper reaper;  // constructed now: its destructor runs at exit
    (void)&reaper;
  }
  bin* spare = nullptr;
  for (auto& b : bins) {
    if (b.bytes == bytes) {
      if (b.count >= per_size) return false;
      spare = &b;
      break;
    }
    if (!spare && b.count == 0) spare = &b;  // an empty bin may take another size
  }
  if (!spare) return false;
  spare->bytes = bytes;
  *static_cast<void**>(p) = spare->head;
  spare->head = p;
  ++spare->count;
  return true;
}

}  // namespace

// Segments allocated (not embedded) and not yet freed, in every channel of the process, linked
// or waiting in ebr. relaxed: a count for tests (segments_live()); nothing rides on it.
std::atomic<std::int64_t> g_segments_live{0};

std::int64_t segments_live() noexcept { return g_segments_live.load(std::memory_order_relaxed); }

void free_segment(void* p) noexcept {
  const std::uint32_t bytes = static_cast<segment*>(p)->bytes;
  if (bytes == 0) return;                                   // embedded: freed with the channel
  g_segments_live.fetch_sub(1, std::memory_order_relaxed);  // relaxed: see g_segments_live
  static_cast<segment*>(p)->~segment();
  if (!t_seg_cache.put(p, bytes)) ::operator delete(p);
}

void seg_layout(const elem_ops* o, std::size_t& stride, std::size_t& payload_off,
                std::size_t& seg_bytes) {
  std::size_t a = std::max(o->align, alignof(std::exception_ptr));
  stride = round_up(std::max(o->size, sizeof(std::exception_ptr)), a);
  payload_off = round_up(sizeof(segment), a);
  seg_bytes = payload_off + seg_size * stride;
}

// ---- segments --------------------------------------------------------------------------------

chan_core::chan_core(const elem_ops* o, std::size_t c, bool unb)
    : ops(o), cap(unb ? 0 : c), unbounded(unb), buffered(!unb && c > 0) {
  seg_layout(o, stride, payload_off, seg_bytes);
  // relaxed: nobody else sees the channel yet; whoever shares its handle (a spawn, a thread's
  // start, a store the other side acquires) publishes these stores with it.
  B.store(cap, std::memory_order_relaxed);
  segment* s = new_segment(0, reinterpret_cast<char*>(this) + first_segment_offset());
  first.store(s, std::memory_order_relaxed);
  send_head.store(s, std::memory_order_relaxed);
  recv_head.store(s, std::memory_order_relaxed);
  // Only a buffered channel's expand_buffer walks eb_head. Elsewhere it stays null: pointing at
  // the first segment, it kept try_retire() from ever unlinking it, and every segment after it
  // stayed linked until the channel died (a rendezvous or unbounded channel grew by a segment
  // per 32 values for as long as it lived).
  eb_head.store(buffered ? s : nullptr, std::memory_order_relaxed);
}

chan_core::~chan_core() {
  // Nobody uses the channel any more (a parked call holds a reference): destroy what is still
  // buffered and free every linked segment. Retired ones belong to ebr already. Every load is
  // relaxed: the acq_rel fetch_sub in chan_release() that brought refs to 0 ordered every use.
  for (segment* s = first.load(std::memory_order_relaxed); s;) {
    for (std::uint64_t k = 0; k < seg_size; ++k) {
      std::uint64_t i = s->id * seg_size + k;
      // BUFFERED: an element no receive took. (No record can be in a cell: a parked call holds
      // a reference on the channel.)
      if (s->cells[k].state.load(std::memory_order_relaxed) == C_BUFFERED) {
        void* p = payload(s, i);
        if (s->kind[k])
          static_cast<std::exception_ptr*>(p)->~exception_ptr();
        else if (!ops->trivial)
          ops->destroy(p);
      }
    }
    segment* n = s->next.load(std::memory_order_relaxed);
    free_segment(s);
    s = n;
  }
}

segment* chan_core::new_segment(std::uint64_t id, void* mem) {
  const bool embedded = mem != nullptr;
  if (!mem) mem = t_seg_cache.get(seg_bytes);
  if (!mem) mem = ::operator new(seg_bytes);
  segment* s = ::new (mem) segment;
  s->id = id;
  s->bytes = embedded ? 0 : static_cast<std::uint32_t>(seg_bytes);
  if (!embedded) g_segments_live.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count
  // A send side and a receive side per cell; plus, in a buffered channel, one unit that
  // expand_buffer holds until eb_head moves past (it never parks, so it needs no more: ebr
  // covers what it reads while the head is elsewhere). Relaxed: the CAS in walk() that links
  // the segment (release) publishes it.
  s->remaining.store(2 * static_cast<std::int32_t>(seg_size) + (buffered ? 1 : 0),
                     std::memory_order_relaxed);
  return s;
}

// walk() follows next pointers from `s` (pinned) to segment `id`, appending missing ones.
segment* chan_core::walk(segment* s, std::uint64_t id) {
  while (s->id < id) {
    segment* n = s->next.load(std::memory_order_acquire);  // pairs with the CAS below (the
                                                           // segment it links is initialised)
    if (!n) {
      segment* fresh = new_segment(s->id + 1);
      // acq_rel: release publishes fresh's initialisation to the acquire load above in other
      // walks; acquire (on failure) pairs with the winner's release the same way.
      if (s->next.compare_exchange_strong(n, fresh, std::memory_order_acq_rel))
        n = fresh;
      else
        free_segment(fresh);  // never published
    }
    s = n;
  }
  return s;
}

void chan_core::side_done(segment* s, int n) {
  // acq_rel: release orders this side's uses of the segment before its retirement; acquire lets
  // the call that brings the count to 0 see every other side's. Pairs with the acquire load of
  // `remaining` in try_retire().
  if (s->remaining.fetch_sub(n, std::memory_order_acq_rel) == n) try_retire();
}

// try_retire() unlinks finished segments from the front (invariant 5). A head never moves back
// onto a finished segment: only a call with an unfinished side in a segment moves a head there.
// Both events that can make `first` retirable — its count reaching 0 (side_done()) and the last
// head leaving it (find()) — call try_retire() after their change.
void chan_core::try_retire() {
  for (;;) {
    segment* f = first.load(std::memory_order_seq_cst);  // pairs with the CAS below
    // acquire: pairs with the acq_rel fetch_sub in side_done() (every side's uses are done).
    if (f->remaining.load(std::memory_order_acquire) != 0) return;
    // seq_cst: pairs with the head CAS in find() (acq_rel) — a head still on f keeps it linked.
    if (send_head.load(std::memory_order_seq_cst) == f ||
        recv_head.load(std::memory_order_seq_cst) == f ||
        eb_head.load(std::memory_order_seq_cst) == f)
      return;
    segment* n = f->next.load(std::memory_order_acquire);  // pairs with the CAS in walk()
    if (!n) return;
    // The embedded first segment goes with the channel's allocation, never through ebr.
    // seq_cst: pairs with the load of `first` above in other calls and in chan_balance(); one
    // call unlinks f, so one retires it.
    if (first.compare_exchange_strong(f, n, std::memory_order_seq_cst) && f->bytes != 0)
      ebr::retire(f, free_segment);
  }
}

std::uint64_t chan_core::wait_close_index() const {
  // close() sets the bit, then stores the index: a few instructions apart.
  std::uint64_t ci;
  // acquire: pairs with the release store of close_index in chan_close() (close_r is written).
  while ((ci = close_index.load(std::memory_order_acquire)) == no_index) cpu_relax();
  return ci;
}

// ---- elements --------------------------------------------------------------------------------
//
// The element of cell i is plain memory: the cell state that publishes or grants it orders it
// (invariant 3). kind[] is written and read on the same side of that state.

void chan_core::put(segment* s, std::uint64_t i, void* src, bool is_exc) {
  void* p = payload(s, i);
  if (is_exc) s->kind[i % seg_size] = 1;  // take() and give_back() clear it
  if (is_exc)
    ::new (p) std::exception_ptr(std::move(*static_cast<std::exception_ptr*>(src)));
  else if (ops->trivial)
    std::memcpy(p, src, ops->size);
  else
    ops->move_construct(p, src);
}

void chan_core::give_back(segment* s, std::uint64_t i, void* src) {
  void* p = payload(s, i);
  if (s->kind[i % seg_size]) {
    s->kind[i % seg_size] = 0;
    auto* e = static_cast<std::exception_ptr*>(p);
    *static_cast<std::exception_ptr*>(src) = std::move(*e);
    e->~exception_ptr();
  } else if (ops->trivial) {
    std::memcpy(src, p, ops->size);
  } else {
    ops->destroy(src);
    ops->move_construct(src, p);
    ops->destroy(p);
  }
}

std::exception_ptr chan_core::take(segment* s, std::uint64_t i, void* dst) {
  void* p = payload(s, i);
  if (s->kind[i % seg_size]) {
    s->kind[i % seg_size] = 0;
    auto* e = static_cast<std::exception_ptr*>(p);
    std::exception_ptr x = std::move(*e);
    e->~exception_ptr();
    return x;
  }
  if (ops->trivial) {
    std::memcpy(dst, p, ops->size);
  } else {
    ops->move_construct(dst, p);
    ops->destroy(p);
  }
  return nullptr;
}

// ---- resuming an owner -----------------------------------------------------------------------

namespace {

// wake_owner() wakes a select or a plain thread whose `sel` this caller just won. Everything it
// needs about the owner was read before the CAS (see chan_waiter::gen): after it, the owner may
// already be in its next call, rewriting its records.
void wake_owner(std::atomic<std::uint32_t>* word, tcb* t, std::uint64_t gen, bool to_back) {
  if (word) {
    // The thread waits for this store before its call returns (thread_wait()); after it,
    // futex_wake() only uses the address as a key, and the word is thread-local storage.
    word->store(1, std::memory_order_release);  // pairs with the acquire in thread_wait()
    futex_wake(word);
  } else {
    // The tasklet, and the generation of the park its select made: a park it began since then
    // is not ended by this.
    wake_park(t, gen, wake_reason::notified, to_back);
  }
}

}  // namespace

bool try_resume(case_rec* rec, bool to_back) {
  chan_waiter* o = rec->owner;
  if (!o->arbitrated) return wake(*o->door, wake_reason::notified, to_back);
  // acquire: pairs with the owner's seq_cst store of SEL_REG in select (door, gen and word were
  // written before it) and with its CAS REG → WAITING.
  std::uint32_t u = o->sel.load(std::memory_order_acquire);
  // Before the CAS (see chan_waiter::gen): who to wake and how.
  std::atomic<std::uint32_t>* word = o->thread ? &o->word : nullptr;
  tcb* t = o->thread ? nullptr : o->door->t;
  for (;;) {
    // relaxed: ordered by `sel`: written before the owner's SEL_REG store, which the acquire
    // load above (or a failed CAS below, acquire) read.
    std::uint64_t gen = o->gen.load(std::memory_order_relaxed);
    if (u == SEL_WAITING) {
      const std::uint32_t done = SEL_DONE | rec->index;
      const std::uint32_t won = t ? done | SEL_WAKING : done;  // a tasklet waits for WAKING
      check_sel_transition(u, won);
      // acq_rel: release pairs with the owner's acquire load of `sel` after its wait (select's
      // clean-up, thread_wait()'s failed CAS); the CAS against the owner's CAS to CANCELLED
      // decides who wins the call.
      if (o->sel.compare_exchange_weak(u, won, std::memory_order_acq_rel)) {
        wake_owner(word, t, gen, to_back);
        if (t) {
          check_sel_transition(won, done);
          // release: pairs with clean_up()'s acquire wait; our last touch of the owner.
          o->sel.store(done, std::memory_order_release);
        }
        return true;
      }
    } else if (u & SEL_REG) {
      if (u & SEL_REREG) return false;
      check_sel_transition(u, u | SEL_REREG);
      // acq_rel: pairs with the owner's CAS REG → WAITING in select, which then fails and
      // re-checks its cases.
      if (o->sel.compare_exchange_weak(u, u | SEL_REREG, std::memory_order_acq_rel)) return false;
    } else {
      return false;
    }
  }
}

// ---- expand_buffer ---------------------------------------------------------------------------

void chan_core::expand_buffer() {
  if (!buffered) return;
  ebr::guard g;
  // seq_cst: before the index (invariant 5); pairs with the head CAS in find().
  segment* s = eb_head.load(std::memory_order_seq_cst);
  for (;;) {
    // seq_cst: the Dekker pair with a send's FAA on S (send_op()) — this FAA then eb_cell()'s
    // load of S, against that FAA then buffer_has_room()'s load of B: one sees the other.
    std::uint64_t b = B.fetch_add(1, std::memory_order_seq_cst);
    s = find(eb_head, s, b / seg_size);
    if (eb_cell(s, b)) return;
  }
}

// eb_cell() makes cell b part of the buffer; false if the cell can never hold an element (its
// sender gave up), so the next one must be taken instead (invariant 4).
bool chan_core::eb_cell(segment* s, std::uint64_t b) {
  cell& c = s->cells[b % seg_size];
  // acquire: pairs with the release CAS that installed a sender's record (record and element
  // visible) and with leave_claim()'s store out of RESUMING_R.
  state_t st = c.state.load(std::memory_order_acquire);
  for (;;) {
    if (is_rec(st)) {
      if (st & send_bit) {
        // A sender's record: resume it, its element is buffered (a receive on its way to this
        // cell then takes it from there). Reads no counter: R and S are the hottest lines.
        check_cell_transition(st, C_RESUMING_EB);
        // acq_rel: acquire pairs with the sender's installing CAS (its element); on failure,
        // with whoever changed the cell. The release half is unused: leave_claim() publishes.
        if (!c.state.compare_exchange_weak(st, C_RESUMING_EB, std::memory_order_acq_rel)) continue;
        if (try_resume(rec_of(st), false)) {
          leave_claim(c, C_RESUMING_EB, C_BUFFERED);  // the receiver's acquire load takes it
          return true;
        }
        leave_claim(c, C_RESUMING_EB, C_INT_SEND);  // the sender's resolve() takes it back
        return false;
      }
      return true;  // a receiver's record: its sender will complete the pair
    }
    switch (st) {
      case C_EMPTY:
        // No send has taken index b yet: it will see b < B and buffer (its FAA on S comes after
        // ours on B). Otherwise its sender is on the way: make the cell part of the buffer.
        // seq_cst: the Dekker pair with send_op()'s FAA on S (see expand_buffer()).
        if ((S.load(std::memory_order_seq_cst) & count_mask) <= b) return true;
        check_cell_transition(st, C_IN_BUFFER);
        // acq_rel: release pairs with the acquire load of the cell in send_cell() (the sender
        // then buffers), acquire (on failure) with the sender's CAS that came first.
        if (c.state.compare_exchange_weak(st, C_IN_BUFFER, std::memory_order_acq_rel)) return true;
        continue;
      case C_INT_SEND:
        return false;
      case C_RESUMING_R:  // a receiver is resuming the sender: see how it ends
        cpu_relax();
        st = c.state.load(std::memory_order_acquire);  // pairs with leave_claim() in recv_cell()
        continue;
      default:  // BUFFERED, POISONED, DONE, INT_RCV, CLOSED, CLOSING: nothing to do
        return true;
    }
  }
}

// ---- resolve ---------------------------------------------------------------------------------

namespace {

/// wait_unclaimed() waits while a claimer holds the cell, and returns the state it left.
state_t wait_unclaimed(cell& c) {
  state_t st;
  // acquire: pairs with leave_claim()'s release store (the claimer's last use of the record).
  while ((st = c.state.load(std::memory_order_acquire)) == C_RESUMING_S || st == C_RESUMING_R ||
         st == C_RESUMING_EB || st == C_CLOSING)
    cpu_relax();
  return st;
}

}  // namespace

void resolve(chan_core* c, case_rec* rec) {
  bool is_send = rec->is_send;
  void* src = rec->buf;
  segment* s = rec->seg;
  cell& cl = s->cells[rec->cell % seg_size];
  const state_t given_up = is_send ? C_INT_SEND : C_INT_RCV;
  rec->installed = false;
  // acquire: pairs with leave_claim() (a claimer that already left the cell).
  state_t st = cl.state.load(std::memory_order_acquire);
  while (is_rec(st) && rec_of(st) == rec) {
    check_cell_transition(st, given_up);
    // acq_rel: release pairs with the acquire loads of a later claimer or eb_cell() (they skip
    // the cell); acquire (on failure) with the claimer's CAS that took the record.
    if (cl.state.compare_exchange_weak(st, given_up, std::memory_order_acq_rel)) {
      // A receive index given up: the buffer slides on (invariant 4). A send's cell is skipped
      // by expand_buffer when it gets there.
      if (is_send)
        c->give_back(s, rec->cell, src);
      else
        c->expand_buffer();
      c->side_done(s);
      return;
    }
  }
  // A claimer holds it and, having lost, marks it INT_* (and does the accounting).
  st = wait_unclaimed(cl);
  STACKLESS_ASSERT_STATE(
      st == given_up, "channel: a claimer that met a decided call must leave the cell INT_*", st);
  if (is_send) c->give_back(s, rec->cell, src);
  c->side_done(s);
}

}  // namespace stackless::detail
