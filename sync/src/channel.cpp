// sync/src/channel.cpp — the channel engine: lock-free, after Koval, Alistarh and Elizarov, "Fast
// and Scalable Channels in Kotlin Coroutines" (PPoPP'23), with Stackless's semantics on top.
//
// Glossary. The channel is an infinite array of *cells*, stored as a linked list of *segments*
// of 32 cells. Three counters hand out cell indices: S (sends ever started; bit 62 = closed), R
// (receives ever started) and B (the end of the buffer: a send whose index is below B stores its
// element and leaves; only buffered channels use it). Send number s and receive number r = s meet
// in cell s: whoever comes first leaves its element or its *waiter record* there and parks;
// the second completes the pair. A waiter record (case_rec) belongs to a blocking call (a single
// send/receive, or a select with one record per case) and lives in the tasklet's control block
// (tcb::sync_ext) or, for a plain thread, in thread-local storage — never on a stack.
//
// Cell states (cell::state):
//
//   EMPTY ──send, room (s < B or s < R + cap)──▶ BUFFERED ──recv──▶ DONE
//     │  ──send, must wait───────▶ sender rec ──recv claims──▶ RESUMING_R ──▶ DONE | INT_SEND
//     │                              │  ──expand_buffer claims──▶ RESUMING_EB ──▶ BUFFERED | INT_SEND
//     │                              └─ its call gives up ─────▶ INT_SEND
//     │  ──recv, must wait───────▶ receiver rec ──send claims──▶ RESUMING_S ──▶ (won) | INT_RCV
//     │                              │  ──close claims──────────▶ CLOSING ──▶ CLOSED | INT_RCV
//     │                              └─ its call gives up ─────▶ INT_RCV
//     │  ──recv, r < S, its sender still not there after a short wait──▶ POISONED  (both
//     │                                                      restart with new indices)
//     │  ──expand_buffer, sender on the way──▶ IN_BUFFER ──send──▶ BUFFERED
//     └──close, r past the last send─────▶ CLOSED
//   A rec carries a sender bit. expand_buffer resolves every sender record it passes (buffers
//   its element, or skips the cell if the sender gave up), so no later event of that cell can
//   change the buffer's size (Kotlin marks such cells EB instead; we need no mark).
//
// Invariants:
//  1. Each index is taken exactly once by each side (FAA on S, R, B). The cell is the only place
//     the two sides of an index meet, and every transition is a CAS from the state read, except
//     out of RESUMING*/CLOSING, which only the claimer leaves (plain stores). A RESUMING_S that
//     won stays so: its receiver is resumed and takes the element from it.
//  2. A claimer (RESUMING*, CLOSING) then tries to resume the record's owner. Exactly one
//     resumer wins a blocking call: the tasklet's park door (park.cpp) for a single operation; the
//     `sel` word for a select and for a plain thread. The loser — the owner itself giving up
//     (timeout, kill) or another case's partner — marks the cell INT_* and moves on. An owner
//     that gives up spins while a cell of its own is claimed, so a claimer never touches a record
//     that is gone. The spins are a few instructions long: the claimer does not switch inside,
//     and there is no preemption safe point between a claim and its final store (soft
//     preemption only acts at safe points; hard preemption is confined to `preemptible` scopes,
//     where channel calls are not allowed).
//  3. An element is moved into the cell before the state that publishes it (release) and moved
//     out after the state that grants it (acquire, or the park door's acq_rel); a sender whose
//     element was not taken gets it back.
//  4. Buffer capacity: every receive index, whatever happens to it (taken, poisoned, given up),
//     advances B once (expand_buffer; for a receiver resumed by a sender, the sender does it at
//     once); a cell that B passes but no element will ever occupy (INT_SEND) makes
//     expand_buffer take the next one. So B - R stays the capacity, and a send has room when
//     s < B or s < R + capacity (a receive that took its index has not expanded yet; Kotlin's
//     bufferOrRendezvousSend()). On a rendezvous channel (capacity 0) that is s < R: a receiver
//     is at or on its way to the cell — a send that cannot wait needs a parked one.
//  5. Memory: a segment counts the cell sides not yet finished (a send and a receive side per
//     cell; a receive that completes a pair finishes both, since a sender leaves a BUFFERED
//     cell, or is resumed, for good), plus in a buffered channel one unit held until eb_head
//     has moved past it. It is unlinked when that count is 0 and no head pointer is on it — in
//     order, from `first` — and freed by epoch-based reclamation (ebr.hpp): a thread reads a
//     head pointer only while pinned, and reads it *before* taking its index, so its walk starts
//     at or before the segment of its index. Cells past a close never finish: a closed
//     channel keeps its last segments until it is destroyed.
//  6. close(): sets S's closed bit; close_index = S at that moment, close_r = R just after.
//     Sends that got an index below it complete (possibly parking: their call began before
//     close), with the room R allowed at the close (close_r); later ones throw.
//     Receivers parked at or past close_index are woken with CLOSED; cells in between are marked
//     CLOSED so no receiver parks there later.
//
// Stackless's balance() counts the parked calls: the records in the cells between R and S (a
// record carries a sender bit, so counting reads no record).
//
// Rejected alternatives: Go's lock-based hchan (a lock per channel; select locks every channel
// in address order) — simple, but every operation takes the lock, and our pingpong target is a
// fraction of a lock handoff across cores. Crossbeam's list flavour (lock-free data path, a
// mutex-guarded waker list) — the waiting path is where the 100,000-tasklet chain lives.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <vector>

#include "ebr.hpp"
#include "stackless/runtime/detail/preempt.hpp"
#include "stackless/runtime/errors.hpp"
#include "stackless/runtime/internal/futex.hpp"
#include "stackless/runtime/internal/park.hpp"
#include "stackless/runtime/internal/scheduling.hpp"
#include "stackless/sync/channel.hpp"

namespace stackless::detail {

namespace {

constexpr std::uint64_t seg_size = 32;
constexpr std::uint64_t closed_bit = std::uint64_t{1} << 62;
constexpr std::uint64_t count_mask = closed_bit - 1;
constexpr std::uint64_t no_index = UINT64_MAX;

using state_t = std::uintptr_t;
enum : state_t {
  C_EMPTY = 0,
  C_BUFFERED = 1,
  C_IN_BUFFER = 2,
  C_RESUMING_S = 3,  // a sender claimed a waiting receiver (and put its element in the cell)
  C_RESUMING_EB = 4,
  C_POISONED = 5,
  C_DONE = 6,
  C_INT_SEND = 7,
  C_INT_RCV = 8,
  C_CLOSED = 9,
  C_CLOSING = 10,
  C_RESUMING_R = 11,  // a receiver claimed a waiting sender
  C_MARKERS = 16,  // states below are markers; above, a case_rec* (| EB bit)
};
constexpr state_t send_bit = 2;  // on a record: a sender's (so balance() and expand_buffer()
                                 // need not read the record; bit 0 is free)
constexpr state_t rec_bits = 3;

inline bool is_rec(state_t s) { return s >= C_MARKERS; }

// How many pause loops a receive waits for a sender that took its index but has not reached the
// cell yet, before it gives the cell up (POISONED). ~10 µs here.
constexpr int poison_patience = 4096;



}  // namespace

struct chan_waiter;

/// case_rec is a waiter record: one case of one blocking call. Aligned so bit 0 is free.
struct alignas(16) case_rec {
  chan_waiter* owner = nullptr;
  std::uint32_t index = 0;  // the select case it stands for
  // Owner-only: where it is installed.
  struct segment* seg = nullptr;
  std::uint64_t cell = 0;
  bool installed = false;
  bool deferred = false;  // select: not registered this round (it met its own select)
  bool is_send = false;
  void* buf = nullptr;    // send: the element's home; receive: where it goes
};

// sel word (selects and plain threads).
constexpr std::uint32_t SEL_WAITING = 0;
constexpr std::uint32_t SEL_REG = 1u << 30;    // registering: partners may not complete a case
constexpr std::uint32_t SEL_REREG = 1u << 29;  //   and a partner found it so: re-check the cases
constexpr std::uint32_t SEL_CANCELLED = 1u << 28;
constexpr std::uint32_t SEL_DONE = 1u << 27;   // | case index

/// chan_waiter is the owner of the records of one blocking call.
struct chan_waiter {
  waiter* door = nullptr;                // tasklet: its park door (the tcb's waiter record)
  bool arbitrated = false;               // select or plain thread: `sel` decides, not the door
  bool thread = false;                   // a plain thread: `word` is its futex
  std::atomic<std::uint32_t> sel{SEL_WAITING};
  std::atomic<std::uint32_t> word{0};
  // A select of a tasklet: the generation of its park, written before `sel` is published. A
  // partner that wins `sel` reads it *before* its CAS: the door's record is rewritten by the
  // tasklet's next park, which can begin as soon as the CAS is seen — so waking through the
  // record after the CAS could end a later, unrelated park.
  std::atomic<std::uint64_t> gen{0};  // relaxed: ordered by `sel` (see try_resume())
};

class chan_core;
void resolve(chan_core* c, case_rec* rec);

struct chan_ext {
  chan_waiter w;
  case_rec single;              // a send or receive
  std::vector<case_rec> recs;   // a select, one per case
};

struct cell {
  std::atomic<state_t> state{C_EMPTY};
};

// A segment is one allocation: this header, then the elements (stride bytes each). The first
// segment of a channel lives in the channel's own allocation (`embedded`): freeing it is a no-op.
struct segment {
  // Read by every call that walks here.
  std::uint64_t id;
  std::atomic<segment*> next{nullptr};
  bool embedded = false;
  std::uint8_t kind[seg_size] = {};  // the element in cell k is: 0 a value, 1 an exception_ptr
                                     // (written only for exceptions: the line stays shared)
  // Written by every completed pair: kept 64+ bytes away from what find() reads and from the
  // cells, whatever the (16-byte) alignment of the allocation.
  char pad0_[128 - sizeof(std::uint64_t) - sizeof(void*) - 1 - seg_size];
  std::atomic<std::int32_t> remaining;  // cell sides not finished (invariant 5)
  char pad1_[64 - sizeof(std::atomic<std::int32_t>)];
  cell cells[seg_size];
};

class chan_core {
 public:
  chan_core(const elem_ops* o, std::size_t cap, bool unb);
  ~chan_core();

  const elem_ops* ops;
  const std::uint64_t cap;
  const bool unbounded;
  const bool buffered;  // cap > 0 and bounded: B is used
  std::size_t stride = 0, payload_off = 0, seg_bytes = 0, seg_align = 0;

  std::atomic<int> refs{1};
  std::atomic<int> pref{-1};
  std::atomic<std::uint64_t> close_index{no_index};
  std::uint64_t close_r = 0;  // R right after close(); published by close_index (release)
  // Set by close() after S's bit: read on the hot paths instead of S, whose line the senders
  // keep writing. A call that misses it still meets the closed bit where it matters (the cell).
  std::atomic<bool> closed_flag{false};
  std::atomic<segment*> first;  // oldest segment still linked

  // The counters each get their own cache line (senders and receivers run on different
  // workers). Padding rather than alignas: an over-aligned new is a slow malloc path, and a
  // chain of 100,000 tasklets makes 100,000 channels.
  char pad0_[64];
  std::atomic<std::uint64_t> S{0};
  std::atomic<segment*> send_head;
  char pad1_[64 - 16];
  std::atomic<std::uint64_t> R{0};
  std::atomic<segment*> recv_head;
  char pad2_[64 - 16];
  std::atomic<std::uint64_t> B{0};
  std::atomic<segment*> eb_head;

  segment* new_segment(std::uint64_t id, void* mem = nullptr);
  static constexpr std::size_t first_segment_offset() {
    return (sizeof(chan_core) + alignof(std::max_align_t) - 1) / alignof(std::max_align_t) * alignof(std::max_align_t);
  }
  void* payload(segment* s, std::uint64_t i) {
    return reinterpret_cast<unsigned char*>(s) + payload_off + (i % seg_size) * stride;
  }
  segment* walk(segment* s, std::uint64_t id);
  segment* find(std::atomic<segment*>& head, segment* from, std::uint64_t id);
  void side_done(segment* s, int n = 1);
  void try_retire();
  std::uint64_t wait_close_index() const;

  // elements
  void put(segment* s, std::uint64_t i, void* src, bool is_exc);
  void give_back(segment* s, std::uint64_t i, void* src);
  std::exception_ptr take(segment* s, std::uint64_t i, void* dst);

  void expand_buffer();
  bool eb_cell(segment* s, std::uint64_t b);
};

namespace {

void free_segment(void* p) noexcept {
  if (!static_cast<segment*>(p)->embedded) ::operator delete(p);
}

std::size_t round_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

}  // namespace

// seg_layout(): where a segment's elements go (they share storage with an exception_ptr).
static void seg_layout(const elem_ops* o, std::size_t& stride, std::size_t& payload_off, std::size_t& seg_bytes) {
  std::size_t a = std::max(o->align, alignof(std::exception_ptr));
  stride = round_up(std::max(o->size, sizeof(std::exception_ptr)), a);
  payload_off = round_up(sizeof(segment), a);
  seg_bytes = payload_off + seg_size * stride;
}

chan_core::chan_core(const elem_ops* o, std::size_t c, bool unb)
    : ops(o), cap(unb ? 0 : c), unbounded(unb), buffered(!unb && c > 0) {
  seg_layout(o, stride, payload_off, seg_bytes);
  B.store(cap, std::memory_order_relaxed);
  segment* s = new_segment(0, reinterpret_cast<char*>(this) + first_segment_offset());
  first.store(s, std::memory_order_relaxed);
  send_head.store(s, std::memory_order_relaxed);
  recv_head.store(s, std::memory_order_relaxed);
  eb_head.store(s, std::memory_order_relaxed);
}

chan_core::~chan_core() {
  // Nobody uses the channel any more (a parked call holds a reference): destroy what is still
  // buffered and free every linked segment. Retired ones belong to ebr already.
  for (segment* s = first.load(std::memory_order_relaxed); s;) {
    for (std::uint64_t k = 0; k < seg_size; ++k) {
      std::uint64_t i = s->id * seg_size + k;
      // BUFFERED: an element no receive took. (No record can be in a cell: a parked call holds
      // a reference on the channel.)
      if (s->cells[k].state.load(std::memory_order_relaxed) == C_BUFFERED) {
        void* p = payload(s, i);
        if (s->kind[k]) static_cast<std::exception_ptr*>(p)->~exception_ptr();
        else if (!ops->trivial) ops->destroy(p);
      }
    }
    segment* n = s->next.load(std::memory_order_relaxed);
    free_segment(s);
    s = n;
  }
}

segment* chan_core::new_segment(std::uint64_t id, void* mem) {
  bool embedded = mem != nullptr;
  if (!mem) mem = ::operator new(seg_bytes);
  segment* s = ::new (mem) segment;
  s->id = id;
  s->embedded = embedded;
  // A send side and a receive side per cell; plus, in a buffered channel, one unit that
  // expand_buffer holds until eb_head moves past (it never parks, so it needs no more: ebr
  // covers what it reads while the head is elsewhere).
  s->remaining.store(2 * static_cast<std::int32_t>(seg_size) + (buffered ? 1 : 0), std::memory_order_relaxed);
  return s;
}

// find() walks from `from` (read from `head` while pinned, before the caller took its index) to
// segment `id`, appending segments as needed, and moves `head` forward to it.
// walk() follows next pointers from `s` (pinned) to segment `id`, appending missing ones.
segment* chan_core::walk(segment* s, std::uint64_t id) {
  while (s->id < id) {
    segment* n = s->next.load(std::memory_order_acquire);  // pairs with the CAS below
    if (!n) {
      segment* fresh = new_segment(s->id + 1);
      if (s->next.compare_exchange_strong(n, fresh, std::memory_order_acq_rel)) n = fresh;
      else free_segment(fresh);  // never published
    }
    s = n;
  }
  return s;
}

segment* chan_core::find(std::atomic<segment*>& head, segment* from, std::uint64_t id) {
  segment* s = walk(from, id);
  segment* h = head.load(std::memory_order_acquire);
  while (h->id < s->id) {
    if (head.compare_exchange_weak(h, s, std::memory_order_acq_rel)) {
      if (&head == &eb_head) {  // the segments it left: expand_buffer's unit is done
        for (segment* x = h; x != s; x = x->next.load(std::memory_order_acquire)) side_done(x);
      } else {
        try_retire();
      }
      break;
    }
  }
  return s;
}

void chan_core::side_done(segment* s, int n) {
  if (s->remaining.fetch_sub(n, std::memory_order_acq_rel) == n) try_retire();
}

// try_retire() unlinks finished segments from the front (invariant 5). A head never moves back
// onto a finished segment: only a call with an unfinished side in a segment moves a head there.
void chan_core::try_retire() {
  for (;;) {
    segment* f = first.load(std::memory_order_seq_cst);
    if (f->remaining.load(std::memory_order_acquire) != 0) return;
    if (send_head.load(std::memory_order_seq_cst) == f || recv_head.load(std::memory_order_seq_cst) == f ||
        eb_head.load(std::memory_order_seq_cst) == f)
      return;
    segment* n = f->next.load(std::memory_order_acquire);
    if (!n) return;
    // The embedded first segment goes with the channel's allocation, never through ebr.
    if (first.compare_exchange_strong(f, n, std::memory_order_seq_cst) && !f->embedded)
      ebr::retire(f, free_segment);
  }
}

std::uint64_t chan_core::wait_close_index() const {
  // close() sets the bit, then stores the index: a few instructions apart.
  std::uint64_t ci;
  while ((ci = close_index.load(std::memory_order_acquire)) == no_index) cpu_relax();
  return ci;
}

void chan_core::put(segment* s, std::uint64_t i, void* src, bool is_exc) {
  void* p = payload(s, i);
  if (is_exc) s->kind[i % seg_size] = 1;  // take() and give_back() clear it
  if (is_exc) ::new (p) std::exception_ptr(std::move(*static_cast<std::exception_ptr*>(src)));
  else if (ops->trivial) std::memcpy(p, src, ops->size);
  else ops->move_construct(p, src);
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
    waiter w;  // a fresh record: the tasklet, and the generation of the park its select made
    w.t = t;
    w.gen = gen;
    wake(w, wake_reason::notified, to_back);
  }
}

/// try_resume() tries to complete rec's call with rec's case (invariant 2). False: the call
/// gave up, another case won, or its select is still registering (then it will look again).
bool try_resume(case_rec* rec, bool to_back) {
  chan_waiter* o = rec->owner;
  if (!o->arbitrated) return wake(*o->door, wake_reason::notified, to_back);
  std::uint32_t u = o->sel.load(std::memory_order_acquire);  // pairs with the owner's store
  // Before the CAS (see chan_waiter::gen): who to wake and how.
  std::atomic<std::uint32_t>* word = o->thread ? &o->word : nullptr;
  tcb* t = o->thread ? nullptr : o->door->t;
  for (;;) {
    std::uint64_t gen = o->gen.load(std::memory_order_relaxed);
    if (u == SEL_WAITING) {
      if (o->sel.compare_exchange_weak(u, SEL_DONE | rec->index, std::memory_order_acq_rel)) {
        wake_owner(word, t, gen, to_back);
        return true;
      }
    } else if (u & SEL_REG) {
      if ((u & SEL_REREG) || o->sel.compare_exchange_weak(u, u | SEL_REREG, std::memory_order_acq_rel))
        return false;
    } else {
      return false;
    }
  }
}

case_rec* rec_of(state_t s) { return reinterpret_cast<case_rec*>(s & ~rec_bits); }

/// settle() waits while a claimer holds the cell, and returns the state it left.
state_t settle(cell& c) {
  state_t st;
  while ((st = c.state.load(std::memory_order_acquire)) == C_RESUMING_S || st == C_RESUMING_R ||
         st == C_RESUMING_EB || st == C_CLOSING)
    cpu_relax();
  return st;
}

}  // namespace

// ---- expand_buffer ---------------------------------------------------------------------------

void chan_core::expand_buffer() {
  if (!buffered) return;
  ebr::guard g;
  segment* s = eb_head.load(std::memory_order_seq_cst);
  for (;;) {
    std::uint64_t b = B.fetch_add(1, std::memory_order_seq_cst);
    s = find(eb_head, s, b / seg_size);
    if (eb_cell(s, b)) return;
  }
}

// eb_cell() makes cell b part of the buffer; false if the cell can never hold an element (its
// sender gave up), so the next one must be taken instead (invariant 4).
bool chan_core::eb_cell(segment* s, std::uint64_t b) {
  cell& c = s->cells[b % seg_size];
  state_t st = c.state.load(std::memory_order_acquire);
  for (;;) {
    if (is_rec(st)) {
      if (st & send_bit) {
        // A sender's record: resume it, its element is buffered (a receive on its way to this
        // cell then takes it from there). Reads no counter: R and S are the hottest lines.
        if (!c.state.compare_exchange_weak(st, C_RESUMING_EB, std::memory_order_acq_rel)) continue;
        if (try_resume(rec_of(st), false)) {
          c.state.store(C_BUFFERED, std::memory_order_release);  // pairs with the receiver's acquire
          return true;
        }
        c.state.store(C_INT_SEND, std::memory_order_release);
        return false;
      }
      return true;  // a receiver's record: its sender will complete the pair
    }
    switch (st) {
      case C_EMPTY:
        // No send has taken index b yet: it will see b < B and buffer (its FAA on S comes after
        // ours on B). Otherwise its sender is on the way: make the cell part of the buffer.
        if ((S.load(std::memory_order_seq_cst) & count_mask) <= b) return true;
        if (c.state.compare_exchange_weak(st, C_IN_BUFFER, std::memory_order_acq_rel)) return true;
        continue;
      case C_INT_SEND:
        return false;
      case C_RESUMING_R:  // a receiver is resuming the sender: see how it ends
        cpu_relax();
        st = c.state.load(std::memory_order_acquire);
        continue;
      default:  // BUFFERED, POISONED, DONE, INT_RCV, CLOSED, CLOSING: nothing to do
        return true;
    }
  }
}

// ---- the two sides of a cell -----------------------------------------------------------------

namespace {

enum class step : std::uint8_t { done, restart, wait, would_block, closed };

struct op_ctx {
  chan_core* c;
  case_rec* rec;               // null: never wait (try_)
  const char* what = nullptr;  // a single call of a tasklet: prepare its park when it must wait
  chan_waiter* self = nullptr; // a select: its own records are not partners
  bool door_ready = false;
  bool yield_after = false;

  // ready_to_wait() is called just before rec is published: the park door needs a generation
  // before any partner can see the record.
  void ready_to_wait() {
    if (what && !door_ready) {
      rec->owner->door = prepare_park(what);
      door_ready = true;
    }
  }
};

/// meets_self() handles a cell holding a record of the caller's own select (a send and a receive
/// case on one channel): that case is withdrawn from the cell and retried in a later round.
bool meets_self(op_ctx& x, state_t st) {
  if (!x.self) return false;
  case_rec* other = rec_of(st);
  if (other->owner != x.self) return false;
  resolve(x.c, other);
  other->deferred = true;
  return true;
}

/// wake_plan says how a call that completes a pair with a parked partner hands over.
/// Rendezvous channels follow Stackless's preference: a preferred partner runs next and the
/// caller yields to it; otherwise the partner goes to the back of the run queue and the caller
/// continues. Buffered and unbounded channels (Go's, not Stackless's) do what Go does: the
/// partner runs next and the caller continues — a producer fills the buffer before it switches.
struct wake_plan {
  bool to_back;
  bool yield;
};
wake_plan plan_for(chan_core* c, bool caller_sends) {
  if (c->cap != 0 || c->unbounded) return {false, false};
  int p = c->pref.load(std::memory_order_relaxed);
  bool partner_preferred = caller_sends ? p < 0 : p > 0;
  return partner_preferred ? wake_plan{false, true} : wake_plan{true, false};
}

/// buffer_has_room() says whether send index i may leave its element without a receiver:
/// i < B (expand_buffer made the cell part of the buffer), or i < R + capacity — a receive that
/// took its element but has not run expand_buffer yet (it was resumed and has not run again)
/// still frees its slot at once, as Kotlin's bufferOrRendezvousSend() does. With capacity 0,
/// i < R means a receiver is on its way to the cell (a rendezvous).
/// After close() (only sends that took their index before it get here), a receive that began
/// after the close must not make room for them (directly, or through its expand_buffer): such a
/// send decided "full" before the close. So the room is what R allowed at the close (close_r; a
/// receive slipping in between the two is the one approximation left). A blocking send that
/// finds no room parks and is still received (Stackless).
bool buffer_has_room(chan_core* c, std::uint64_t i) {
  if (c->unbounded) return true;
  if (c->closed_flag.load(std::memory_order_seq_cst) || (c->S.load(std::memory_order_relaxed) & closed_bit)) {
    c->wait_close_index();  // acquire: close_r is written
    return i < c->close_r + c->cap;
  }
  return i < c->B.load(std::memory_order_seq_cst) || i < c->R.load(std::memory_order_seq_cst) + c->cap;
}

/// send_cell() runs sender index s at its cell. `stored`: the element is in the cell already.
step send_cell(op_ctx& x, segment* s, std::uint64_t i, void* src, bool is_exc) {
  chan_core* c = x.c;
  cell& cl = s->cells[i % seg_size];
  bool stored = false;
  state_t st = cl.state.load(std::memory_order_acquire);
  for (;;) {
    if (is_rec(st)) {  // a receiver waits here
      if (meets_self(x, st)) {
        st = cl.state.load(std::memory_order_acquire);
        continue;
      }
      if (!cl.state.compare_exchange_weak(st, C_RESUMING_S, std::memory_order_acq_rel)) continue;
      if (!stored) c->put(s, i, src, is_exc);
      wake_plan plan = plan_for(c, true);
      if (try_resume(rec_of(st), plan.to_back)) {
        // The cell stays RESUMING_S: the receiver takes the element and finishes both sides of
        // the cell (after this, the cell may be gone). Its expand_buffer is ours to do, now: the
        // receive happened here, and a slot freed only once the woken tasklet runs again would
        // let a try_send in between find the buffer full when it is not.
        c->expand_buffer();
        x.yield_after = plan.yield;
        return step::done;
      }
      c->give_back(s, i, src);
      cl.state.store(C_INT_RCV, std::memory_order_release);
      c->expand_buffer();  // a receive index used up (invariant 4)
      c->side_done(s);
      return step::restart;
    }
    switch (st) {
      case C_EMPTY: {
        // On a rendezvous channel a send that cannot wait only pairs with a receiver already
        // parked (its record is in the cell): one merely on its way may be a try_receive that
        // will not wait either, and two calls that do not wait never meet (as in Go).
        bool no_wait = buffer_has_room(c, i) && (x.rec || c->cap != 0 || c->unbounded);
        if (no_wait) {
          if (!stored) c->put(s, i, src, is_exc), stored = true;
          if (!cl.state.compare_exchange_strong(st, C_BUFFERED, std::memory_order_acq_rel)) continue;
          return step::done;  // the receiver that takes it finishes both sides
        }
        if (!x.rec) {
          if (!cl.state.compare_exchange_strong(st, C_INT_SEND, std::memory_order_acq_rel)) continue;
          if (stored) c->give_back(s, i, src);
          c->side_done(s);
          return step::would_block;
        }
        if (!stored) c->put(s, i, src, is_exc), stored = true;
        x.ready_to_wait();
        if (!cl.state.compare_exchange_strong(st, reinterpret_cast<state_t>(x.rec) | send_bit,
                                              std::memory_order_acq_rel))
          continue;
        x.rec->seg = s;
        x.rec->cell = i;
        x.rec->installed = true;
        return step::wait;
      }
      case C_IN_BUFFER:
        if (!stored) c->put(s, i, src, is_exc), stored = true;
        if (!cl.state.compare_exchange_strong(st, C_BUFFERED, std::memory_order_acq_rel)) continue;
        return step::done;  // as above
      case C_POISONED:
      case C_INT_RCV:
        if (stored) c->give_back(s, i, src);
        c->side_done(s);
        return step::restart;
      default:  // nothing else can be in a cell a sender reaches (invariant 1)
        std::fprintf(stderr, "stackless: channel: sender found cell state %lu\n", static_cast<unsigned long>(st));
        std::abort();
    }
  }
}

/// recv_cell() runs receiver index r at its cell.
step recv_cell(op_ctx& x, segment* s, std::uint64_t i, void* dst, std::exception_ptr& exc) {
  chan_core* c = x.c;
  cell& cl = s->cells[i % seg_size];
  state_t st = cl.state.load(std::memory_order_acquire);
  for (;;) {
    if (is_rec(st)) {  // a sender waits here with its element
      if (meets_self(x, st)) {
        st = cl.state.load(std::memory_order_acquire);
        continue;
      }
      if (!cl.state.compare_exchange_weak(st, C_RESUMING_R, std::memory_order_acq_rel)) continue;
      wake_plan plan = plan_for(c, false);
      if (try_resume(rec_of(st), plan.to_back)) {
        exc = c->take(s, i, dst);
        cl.state.store(C_DONE, std::memory_order_release);
        c->expand_buffer();
        c->side_done(s, 2);  // the resumed sender never touches the cell again
        x.yield_after = plan.yield;
        return step::done;
      }
      cl.state.store(C_INT_SEND, std::memory_order_release);  // expand_buffer will skip it
      c->side_done(s);
      return step::restart;
    }
    switch (st) {
      case C_EMPTY:
      case C_IN_BUFFER: {
        std::uint64_t sv = c->S.load(std::memory_order_seq_cst);
        std::uint64_t limit = sv & count_mask;
        bool closed = sv & closed_bit;
        if (closed) limit = std::min(limit, c->wait_close_index());
        if (i < limit) {
          // Its sender took the index and is on its way: a few instructions, it never parks in
          // between. Wait a little for it — poisoning at once (as Koval et al. do) makes both
          // sides start over, and lets a try_receive() report "empty" while a send that began
          // before it is still in flight, which is not linearizable. Only a sender thread the
          // OS took off its CPU right there outlasts the wait; then poison, as the paper does.
          state_t now = st;
          for (int k = 0; k < poison_patience && now == st; ++k) {
            cpu_relax();
            now = cl.state.load(std::memory_order_acquire);
          }
          if (now != st) {
            st = now;
            continue;
          }
          if (!cl.state.compare_exchange_strong(st, C_POISONED, std::memory_order_acq_rel)) continue;
          c->expand_buffer();
          c->side_done(s);
          return step::restart;
        }
        if (closed) {  // no send will ever come to this cell
          if (!cl.state.compare_exchange_strong(st, C_CLOSED, std::memory_order_acq_rel)) continue;
          return step::closed;
        }
        if (!x.rec) {
          if (!cl.state.compare_exchange_strong(st, C_INT_RCV, std::memory_order_acq_rel)) continue;
          c->expand_buffer();
          c->side_done(s);
          return step::would_block;
        }
        x.ready_to_wait();
        if (!cl.state.compare_exchange_strong(st, reinterpret_cast<state_t>(x.rec), std::memory_order_acq_rel))
          continue;
        x.rec->seg = s;
        x.rec->cell = i;
        x.rec->installed = true;
        return step::wait;
      }
      case C_BUFFERED:
        exc = c->take(s, i, dst);
        cl.state.store(C_DONE, std::memory_order_release);
        c->expand_buffer();
        c->side_done(s, 2);  // its sender is gone: both sides
        return step::done;
      case C_INT_SEND:
        c->side_done(s);
        return step::restart;
      case C_RESUMING_EB:
        cpu_relax();
        st = cl.state.load(std::memory_order_acquire);
        continue;
      case C_CLOSED:
        return step::closed;
      default:
        std::fprintf(stderr, "stackless: channel: receiver found cell state %lu\n", static_cast<unsigned long>(st));
        std::abort();
    }
  }
}

/// send_op() takes send indices until one completes, must wait (rec installed), would block, or
/// the channel is closed.
step send_op(op_ctx& x, void* src, bool is_exc) {
  chan_core* c = x.c;
  ebr::guard g;
  for (;;) {
    segment* h = c->send_head.load(std::memory_order_seq_cst);  // before the index (invariant 5)
    std::uint64_t sv = c->S.fetch_add(1, std::memory_order_seq_cst);
    if (sv & closed_bit) return step::closed;
    std::uint64_t i = sv & count_mask;
    segment* s = c->find(c->send_head, h, i / seg_size);
    step r = send_cell(x, s, i, src, is_exc);
    if (r != step::restart) return r;
  }
}

step recv_op(op_ctx& x, void* dst, std::exception_ptr& exc) {
  chan_core* c = x.c;
  ebr::guard g;
  for (;;) {
    segment* h = c->recv_head.load(std::memory_order_seq_cst);
    std::uint64_t i = c->R.fetch_add(1, std::memory_order_seq_cst);
    if (c->closed_flag.load(std::memory_order_seq_cst) && i >= c->wait_close_index()) return step::closed;
    segment* s = c->find(c->recv_head, h, i / seg_size);
    step r = recv_cell(x, s, i, dst, exc);
    if (r != step::restart) return r;
  }
}

/// would_block_send()/would_block_recv(): the try_ pre-checks, which take no index (so polling
/// a full or empty channel does not walk the cell array).
bool would_block_send(chan_core* c) {
  std::uint64_t sv = c->S.load(std::memory_order_seq_cst);
  if (sv & closed_bit) return false;  // let send_op() report it
  return !buffer_has_room(c, sv & count_mask);
}
bool would_block_recv(chan_core* c) {
  std::uint64_t r = c->R.load(std::memory_order_seq_cst);
  std::uint64_t sv = c->S.load(std::memory_order_seq_cst);
  if (sv & closed_bit) return false;
  return r >= (sv & count_mask);
}

/// resolve() ends rec's wait in its cell after its call was decided otherwise (invariant 2): it
/// takes the record out, or waits for the claimer that holds it. Sends get their element back.
}  // namespace

void resolve(chan_core* c, case_rec* rec) {
  bool is_send = rec->is_send;
  void* src = rec->buf;
  segment* s = rec->seg;
  cell& cl = s->cells[rec->cell % seg_size];
  rec->installed = false;
  state_t st = cl.state.load(std::memory_order_acquire);
  while (is_rec(st) && rec_of(st) == rec) {
    if (cl.state.compare_exchange_weak(st, is_send ? C_INT_SEND : C_INT_RCV, std::memory_order_acq_rel)) {
      // A receive index given up: the buffer slides on (invariant 4). A send's cell is skipped
      // by expand_buffer when it gets there.
      if (is_send) c->give_back(s, rec->cell, src);
      else c->expand_buffer();
      c->side_done(s);
      return;
    }
  }
  // A claimer holds it and, having lost, marks it INT_* (and does the accounting).
  settle(cl);
  if (is_send) c->give_back(s, rec->cell, src);
  c->side_done(s);
}

namespace {

/// finish_won() completes rec's case after a partner resumed it. For a receive: `closed` if
/// close() did it, else the element is taken.
bool finish_won(chan_core* c, case_rec* rec, void* dst, std::exception_ptr& exc) {
  bool is_send = rec->is_send;
  segment* s = rec->seg;
  rec->installed = false;
  if (is_send) return false;  // the receiver (or, via BUFFERED, the next one) finishes the cell
  cell& cl = s->cells[rec->cell % seg_size];
  state_t st = cl.state.load(std::memory_order_acquire);
  if (st == C_CLOSING || st == C_CLOSED) return true;  // close() sets no more than that
  if (st != C_RESUMING_S) {  // invariant 2: only a sender that won leaves it so
    std::fprintf(stderr, "stackless: channel: internal error: a receive was resumed, its cell is in state %lu\n",
                 static_cast<unsigned long>(st));
    std::abort();
  }
  exc = c->take(s, rec->cell, dst);  // the sender put it before resuming us (park door: acq_rel)
  c->side_done(s, 2);  // both sides: the sender left the cell RESUMING_S (and expanded the buffer)
  return false;
}

chan_ext* my_ext() {
  if (tcb* t = current_tcb()) {
    if (!t->sync_ext) {
      t->sync_ext = new chan_ext;
      t->sync_ext_free = [](void* p) noexcept { delete static_cast<chan_ext*>(p); };
    }
    return static_cast<chan_ext*>(t->sync_ext);
  }
  thread_local chan_ext ext;  // plain thread; never cached across a switch (no switch here)
  return &ext;
}

/// Blocks the plain thread until its record is resumed or the deadline passes; true if resumed.
bool thread_wait(chan_waiter* o, std::int64_t deadline) {
  for (;;) {
    if (o->word.load(std::memory_order_acquire)) return true;  // pairs with wake_owner()
    if (deadline != chan_no_deadline && now_ns() >= deadline) {
      std::uint32_t u = SEL_WAITING;
      if (o->sel.compare_exchange_strong(u, SEL_CANCELLED, std::memory_order_acq_rel)) return false;
      while (!o->word.load(std::memory_order_acquire)) futex_wait(&o->word, 0);  // a partner won
      return true;
    }
    futex_wait(&o->word, 0, deadline);
  }
}

void after_partner_woken(op_ctx& x) {
  // Stackless: the preferred side resumes first. A tasklet that woke a preferred partner (now
  // its worker's runnext) yields to it; it stays runnable. Nothing to do on a plain thread.
  if (x.yield_after) {
    yield_now();
  }
}

struct chan_ref {  // keeps the channel alive while its call is parked
  chan_core* c;
  explicit chan_ref(chan_core* c_) : c(c_) { chan_acquire(c); }
  ~chan_ref() { chan_release(c); }
};

}  // namespace

// ---- public entry points ---------------------------------------------------------------------

std::int64_t chan_now_ns() noexcept { return now_ns(); }

chan_core* chan_create(const elem_ops* ops, std::size_t capacity, bool unbounded) {
  if (!unbounded && capacity > (std::uint64_t{1} << 40))
    throw std::invalid_argument("stackless: channel capacity too large (use channel::unbounded())");
  // One allocation: the core, then its first segment (16-byte alignment is all malloc gives,
  // and all an element may ask for).
  if (ops->align > alignof(std::max_align_t))
    throw std::invalid_argument("stackless: channel<T>: over-aligned T is not supported");
  std::size_t stride, payload_off, seg_bytes;
  seg_layout(ops, stride, payload_off, seg_bytes);
  void* mem = ::operator new(chan_core::first_segment_offset() + seg_bytes);
  return ::new (mem) chan_core(ops, capacity, unbounded);
}
void chan_acquire(chan_core* c) noexcept { c->refs.fetch_add(1, std::memory_order_relaxed); }
void chan_release(chan_core* c) noexcept {
  if (c->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    c->~chan_core();
    ::operator delete(c);
  }
}

namespace {

/// single_call() sets up the record of a blocking send or receive.
case_rec* single_call(chan_ext* ext, tcb* t, bool is_send, void* buf) {
  case_rec* rec = &ext->single;
  rec->owner = &ext->w;
  rec->index = 0;
  rec->is_send = is_send;
  rec->buf = buf;
  rec->installed = false;
  ext->w.thread = !t;
  ext->w.arbitrated = !t;  // a tasklet's single call is decided by its park door
  ext->w.sel.store(SEL_WAITING, std::memory_order_relaxed);
  ext->w.word.store(0, std::memory_order_relaxed);
  return rec;
}

/// wait_single() parks (or blocks) until rec's call is decided; true if a partner completed it.
bool wait_single(chan_ext* ext, tcb* t, std::int64_t deadline, wake_reason& why) {
  why = wake_reason::notified;
  if (t) {
    why = park([] {}, deadline);
    return why == wake_reason::notified;
  }
  plain_thread_will_block();
  return thread_wait(&ext->w, deadline);
}

}  // namespace

// blocking_call() runs one send or receive (op: send_op or recv_op) as a call that may park.
// An interrupt (kill, raise_exception) ends a parked call with the exception; a tasklet that is
// unwinding cannot take one (throw_if_interrupted() declines), so its call simply waits again.
template <class Op>
op_status blocking_call(chan_core* c, bool is_send, void* buf, bool block, std::int64_t own, Op op) {
  tcb* t = current_tcb();
  if (t && block) preempt_point();  // a call that may wait is a safe point (try_ forms are not)
  const std::int64_t deadline = block ? scoped_deadline(own) : own;  // a timeout_scope may end first
  chan_ext* ext = block ? my_ext() : nullptr;
  for (;;) {
    case_rec* rec = block ? single_call(ext, t, is_send, buf) : nullptr;
    op_ctx x{c, rec};
    if (t && block) x.what = is_send ? "channel.send" : "channel.receive";
    std::exception_ptr exc;  // an element send_exception() sent
    step r = op(x, exc);
    if (r != step::wait) {
      if (x.door_ready) cancel_park();  // it got ready to wait, then did not have to
      if (r == step::done) {
        after_partner_woken(x);
        if (exc) std::rethrow_exception(exc);
        return op_status::ok;
      }
      return r == step::closed ? op_status::closed : op_status::would_block;
    }
    chan_ref keep(c);
    wake_reason why;
    if (wait_single(ext, t, deadline, why)) {
      if (finish_won(c, rec, buf, exc)) return op_status::closed;
      if (exc) std::rethrow_exception(exc);
      return op_status::ok;
    }
    resolve(c, rec);
    if (why != wake_reason::interrupted) {
      scope_check(own);  // the call is undone: a timeout_scope that ended throws now
      return op_status::timeout;
    }
    throw_if_interrupted();
  }
}

op_status chan_send(chan_core* c, void* src, bool is_exc, bool block, std::int64_t deadline) {
  if (!block && would_block_send(c)) return op_status::would_block;
  return blocking_call(c, true, src, block, deadline,
                       [&](op_ctx& x, std::exception_ptr&) { return send_op(x, src, is_exc); });
}

op_status chan_receive(chan_core* c, void* dst, bool block, std::int64_t deadline) {
  if (!block && would_block_recv(c)) return op_status::would_block;
  return blocking_call(c, false, dst, block, deadline,
                       [&](op_ctx& x, std::exception_ptr& exc) { return recv_op(x, dst, exc); });
}

void chan_close(chan_core* c) {
  ebr::guard g;
  segment* h = c->send_head.load(std::memory_order_seq_cst);
  std::uint64_t old = c->S.fetch_or(closed_bit, std::memory_order_seq_cst);
  if (old & closed_bit) return;
  std::uint64_t ci = old & count_mask;
  std::uint64_t r_end = c->R.load(std::memory_order_seq_cst);
  c->close_r = r_end;
  c->close_index.store(ci, std::memory_order_release);  // pairs with wait_close_index()
  c->closed_flag.store(true, std::memory_order_seq_cst);
  // Receivers with an index at or past ci will never get a sender: wake the parked ones with
  // CLOSED, and mark the cells of those still on their way (invariant 6).
  segment* s = h;
  for (std::uint64_t i = ci; i < r_end; ++i) {
    s = c->walk(s, i / seg_size);  // no head moves: close() takes no index
    cell& cl = s->cells[i % seg_size];
    state_t st = cl.state.load(std::memory_order_acquire);
    for (;;) {
      if (is_rec(st)) {
        if (!cl.state.compare_exchange_weak(st, C_CLOSING, std::memory_order_acq_rel)) continue;
        if (try_resume(rec_of(st), true)) cl.state.store(C_CLOSED, std::memory_order_release);
        else cl.state.store(C_INT_RCV, std::memory_order_release);
        break;
      }
      if (st == C_EMPTY || st == C_IN_BUFFER) {
        if (!cl.state.compare_exchange_weak(st, C_CLOSED, std::memory_order_acq_rel)) continue;
      }
      break;
    }
  }
}

bool chan_closing(const chan_core* c) noexcept {
  return c->S.load(std::memory_order_seq_cst) & closed_bit;
}
bool chan_closed(const chan_core* c) noexcept {
  if (!(c->S.load(std::memory_order_seq_cst) & closed_bit)) return false;
  return c->R.load(std::memory_order_seq_cst) >= c->wait_close_index();
}
int chan_balance(const chan_core* c) noexcept {
  // Count the records between the two counters (the parked calls are there). O(balance): a
  // diagnostic, kept off the hot paths (two counters would cost every parked call two RMWs).
  ebr::guard g;
  std::uint64_t r = c->R.load(std::memory_order_seq_cst);
  std::uint64_t sv = c->S.load(std::memory_order_seq_cst) & count_mask;
  std::uint64_t ci = c->close_index.load(std::memory_order_acquire);
  if (ci != no_index) sv = std::min(sv, ci);
  std::uint64_t lo = std::min(r, sv), hi = std::max(r, sv);
  int senders = 0, receivers = 0;
  for (segment* s = c->first.load(std::memory_order_seq_cst); s && s->id * seg_size < hi;
       s = s->next.load(std::memory_order_acquire)) {
    for (std::uint64_t k = 0; k < seg_size; ++k) {
      std::uint64_t i = s->id * seg_size + k;
      if (i < lo || i >= hi) continue;
      state_t st = s->cells[k].state.load(std::memory_order_acquire);
      if (!is_rec(st)) continue;
      if (st & send_bit) ++senders;
      else ++receivers;
    }
  }
  return senders - receivers;
}
void chan_set_preference(chan_core* c, int p) noexcept { c->pref.store(p < 0 ? -1 : p > 0 ? 1 : 0, std::memory_order_relaxed); }
int chan_get_preference(const chan_core* c) noexcept { return c->pref.load(std::memory_order_relaxed); }
std::size_t chan_capacity(const chan_core* c) noexcept { return c->unbounded ? SIZE_MAX : c->cap; }


// ---- select ----------------------------------------------------------------------------------
//
// A round of select(): (1) poll every case in a random order with the try_ paths; (2) register:
// run each case as a blocking call whose record stays in the cell, with `sel` = REG, so that no
// partner can complete a case yet — a partner that finds a REG select sets REREG, gives up that
// cell (marks it INT_*) and moves on, and the select re-runs the cases whose records were pushed
// out before it switches `sel` to WAITING (Kotlin's select does the same: "re-register"); a case
// that finds its partner ready during registration completes, and the select is decided by its
// own hand; (3) park; the first partner to CAS `sel` from WAITING to DONE | case wins; a timeout or
// kill CASes it to CANCELLED. (4) Every other record is taken out of its cell (resolve()).
//
// A select with a send and a receive case on one channel must not pair with itself (Go skips its
// own sudog). A cell can only pair the indices it was given, so when one case meets the other's
// record the older case withdraws and sits this round out; the select then parks with a short
// deadline (50 µs, doubling to 10 ms) and tries again. That is the one place select polls.

namespace {

std::uint64_t select_rand() {
  static std::atomic<std::uint64_t> seed{0x9e3779b97f4a7c15ULL};
  std::uint64_t x = seed.fetch_add(0x9e3779b97f4a7c15ULL, std::memory_order_relaxed);
  x ^= x >> 31;
  x *= 0xbf58476d1ce4e5b9ULL;
  return x ^ (x >> 29);
}

[[noreturn]] void throw_send_closed() {
  throw channel_closed("stackless: select() sent on a closed channel");
}

}  // namespace

std::size_t chan_select(select_case* cs, std::size_t n) {
  constexpr std::size_t none = SIZE_MAX;
  if (n >= SEL_DONE) throw usage_error("stackless: select() with too many cases");
  std::int64_t deadline = chan_no_deadline;
  std::size_t after_i = none, def_i = none;
  for (std::size_t i = 0; i < n; ++i) {
    if (cs[i].kind == select_case::after && cs[i].deadline < deadline) {
      deadline = cs[i].deadline;
      after_i = i;
    }
    if (cs[i].kind == select_case::fallback) {
      if (def_i != none) throw usage_error("stackless: select() with two default cases");
      def_i = i;
    }
    if ((cs[i].kind == select_case::recv || cs[i].kind == select_case::send) && !cs[i].ch)
      throw usage_error("stackless: select() case on an empty channel handle");
  }
  std::size_t channel_cases = 0;
  for (std::size_t i = 0; i < n; ++i)
    channel_cases += cs[i].kind == select_case::recv || cs[i].kind == select_case::send;
  const std::size_t start = n > 1 ? select_rand() % n : 0;
  tcb* t = current_tcb();
  if (t && def_i == none) preempt_point();  // a select that may wait is a safe point
  std::int64_t backoff = 50'000;
  const std::int64_t wait_deadline = scoped_deadline(deadline);  // a timeout_scope may end first

  for (;;) {
    // (1) Poll.
    for (std::size_t k = 0; k < n; ++k) {
      std::size_t i = (start + k) % n;
      select_case& sc = cs[i];
      if (sc.kind == select_case::recv && !would_block_recv(sc.ch)) {
        op_ctx x{sc.ch, nullptr};
        std::exception_ptr exc;
        step r = recv_op(x, sc.buf, exc);
        if (r == step::done) {
          after_partner_woken(x);
          if (exc) std::rethrow_exception(exc);
          return i;
        }
        if (r == step::closed) {
          sc.closed = true;
          return i;
        }
      } else if (sc.kind == select_case::send && !would_block_send(sc.ch)) {
        op_ctx x{sc.ch, nullptr};
        step r = send_op(x, sc.buf, sc.is_exc);
        if (r == step::done) {
          after_partner_woken(x);
          return i;
        }
        if (r == step::closed) throw_send_closed();
      }
    }
    // A default over one channel is a plain poll. Over several, the poll above looked at them one
    // at a time: a value may have moved from a channel not yet looked at to one already passed
    // (Go's TestNonblockSelectRace). So register on all of them as a waiting select would — a
    // partner arriving meanwhile finds our record and completes it — and withdraw at once if
    // nothing happened: then nothing was ready at the moment the registration finished.
    if (def_i != none && channel_cases <= 1) return def_i;
    if (after_i != none && now_ns() >= deadline) return after_i;
    const bool poll_only = def_i != none;

    // (2) Register.
    chan_ext* ext = my_ext();
    if (ext->recs.size() < n) ext->recs.resize(n);
    chan_waiter* o = &ext->w;
    o->thread = !t;
    o->arbitrated = true;
    o->word.store(0, std::memory_order_relaxed);
    if (t) {
      o->door = prepare_park("select");
      o->gen.store(o->door->gen, std::memory_order_relaxed);
    }
    o->sel.store(SEL_REG, std::memory_order_seq_cst);  // publishes gen (release)
    for (std::size_t i = 0; i < n; ++i) {
      case_rec& rec = ext->recs[i];
      rec.owner = o;
      rec.index = static_cast<std::uint32_t>(i);
      rec.installed = false;
      rec.deferred = false;
      rec.is_send = cs[i].kind == select_case::send;
      rec.buf = cs[i].buf;
    }
    std::size_t winner = none;
    bool send_closed = false, any_deferred = false;
    std::exception_ptr exc;
    op_ctx won_ctx{nullptr, nullptr};
    // reg() runs case i as a waiting call; true when the select is decided (by case i).
    auto reg = [&](std::size_t i) {
      select_case& sc = cs[i];
      case_rec* rec = &ext->recs[i];
      rec->deferred = false;
      op_ctx x{sc.ch, rec};
      x.self = o;
      step r = sc.kind == select_case::recv ? recv_op(x, sc.buf, exc) : send_op(x, sc.buf, sc.is_exc);
      if (r == step::wait) return false;
      if (r == step::closed) {
        if (sc.kind == select_case::send) send_closed = true;
        else sc.closed = true;
      }
      winner = i;
      won_ctx = x;
      return true;
    };
    bool decided = false;
    for (std::size_t k = 0; k < n && !decided; ++k) {
      std::size_t i = (start + k) % n;
      if (cs[i].kind == select_case::recv || cs[i].kind == select_case::send) decided = reg(i);
    }
    while (!decided) {
      std::uint32_t u = SEL_REG;
      if (o->sel.compare_exchange_strong(u, SEL_WAITING, std::memory_order_acq_rel)) break;
      // REREG: partners pushed records out. Look at every case again.
      o->sel.store(SEL_REG, std::memory_order_seq_cst);
      for (std::size_t k = 0; k < n && !decided; ++k) {
        std::size_t i = (start + k) % n;
        case_rec* rec = &ext->recs[i];
        if (!rec->installed) continue;
        state_t st = rec->seg->cells[rec->cell % seg_size].state.load(std::memory_order_acquire);
        if (is_rec(st) && rec_of(st) == rec) continue;
        resolve(cs[i].ch, rec);
        decided = reg(i);
      }
    }
    if (decided) {
      // Decided by our own hand while registering: nobody else could win.
      o->sel.store(SEL_DONE | static_cast<std::uint32_t>(winner), std::memory_order_seq_cst);
      for (std::size_t i = 0; i < n; ++i)
        if (ext->recs[i].installed) resolve(cs[i].ch, &ext->recs[i]);
      if (t) cancel_park();
      if (send_closed) throw_send_closed();
      after_partner_woken(won_ctx);
      if (exc) std::rethrow_exception(exc);
      return winner;
    }
    for (std::size_t i = 0; i < n; ++i) any_deferred |= ext->recs[i].deferred;

    // (3) Park.
    std::int64_t wake_at = wait_deadline;
    if (any_deferred) wake_at = std::min(wake_at, now_ns() + backoff);
    std::vector<chan_ref> keep;  // the channels outlive the wait
    keep.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
      if (ext->recs[i].installed) keep.emplace_back(cs[i].ch);
    wake_reason why = wake_reason::notified;
    if (poll_only) {
      if (t) cancel_park();  // withdraw below instead of waiting
    } else if (t) {
      why = park([] {}, wake_at);
    } else {
      plain_thread_will_block();
      if (!thread_wait(o, wake_at)) why = wake_reason::timeout;
    }
    std::uint32_t u = o->sel.load(std::memory_order_acquire);
    if (u == SEL_WAITING) {
      if (o->sel.compare_exchange_strong(u, SEL_CANCELLED, std::memory_order_acq_rel)) u = SEL_CANCELLED;
    }
    winner = (u & SEL_DONE) ? (u & (SEL_DONE - 1)) : none;

    // (4) Take every other record out.
    for (std::size_t i = 0; i < n; ++i) {
      case_rec* rec = &ext->recs[i];
      if (!rec->installed) continue;
      if (i == winner) {
        if (finish_won(cs[i].ch, rec, cs[i].buf, exc)) cs[i].closed = true;
      } else {
        resolve(cs[i].ch, rec);
      }
    }
    if (winner != none) {
      if (exc) std::rethrow_exception(exc);
      return winner;
    }
    if (poll_only) return def_i;
    if (why == wake_reason::interrupted) {
      throw_if_interrupted();
      continue;  // an interrupt that cannot be thrown now (unwinding): try again
    }
    scope_check(deadline);  // every record is out: a timeout_scope that ended throws now
    if (after_i != none && now_ns() >= deadline) return after_i;
    backoff = std::min<std::int64_t>(backoff * 2, 10'000'000);  // a deferred case: next round
  }
}

}  // namespace stackless::detail
