// SPDX-License-Identifier: Apache-2.0
// sync/src/chan_engine.hpp — the channel engine: lock-free, after Koval, Alistarh and Elizarov,
// "Fast and Scalable Channels in Kotlin Coroutines" (PPoPP'23), with Stackless's semantics on top.
//
// Files. This header: the glossary, the state machines and their checks, the types, and the small
// helpers every path inlines. chan_cells.cpp: segments, elements, expand_buffer, resuming an
// owner, resolve (the out-of-line half of the engine). chan_sides.hpp: the two sides of a cell
// (send_cell, recv_cell) and the index loops (send_op, recv_op), compiled into each caller's own
// paths. channel.cpp: the entry points (send, receive, close, balance, create, release).
// select.cpp: select(). A private header: only sync/src and the tests include it.
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
//     │                              │  ──expand_buffer claims──▶ RESUMING_EB ──▶ BUFFERED |
//     INT_SEND │                              └─ its call gives up ─────▶ INT_SEND │  ──recv, must
//     wait───────▶ receiver rec ──send claims──▶ RESUMING_S ──▶ (won) | INT_RCV │ │  ──close
//     claims──────────▶ CLOSING ──▶ CLOSED | INT_RCV │                              └─ its call
//     gives up ─────▶ INT_RCV │  ──recv, r < S, its sender still not there after a short wait──▶
//     POISONED  (both │                                                      restart with new
//     indices) │  ──expand_buffer, sender on the way──▶ IN_BUFFER ──send──▶ BUFFERED └──close, r
//     past the last send─────▶ CLOSED
//   A try_send / try_receive that would have to wait marks its cell INT_SEND / INT_RCV (from
//   EMPTY; a try_receive also from IN_BUFFER); a receive reaches IN_BUFFER as it reaches EMPTY.
//   A rec carries a sender bit. expand_buffer resolves every sender record it passes (buffers
//   its element, or skips the cell if the sender gave up), so no later event of that cell can
//   change the buffer's size (Kotlin marks such cells EB instead; we need no mark).
//   cell_transition_ok() below is this diagram in code; every transition checks it (debug and
//   sanitizer builds).
//
// Invariants:
//  1. Each index is taken exactly once by each side (FAA on S, R, B). The cell is the only place
//     the two sides of an index meet, and every transition is a CAS from the state read, except
//     out of RESUMING*/CLOSING, which only the claimer leaves, and out of BUFFERED, which only
//     the receive of that index leaves (plain stores, through leave_claim()). A RESUMING_S that
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
// Splitting the hot paths over .cpp files without link-time optimisation — every split would be
// one more call per operation; hence chan_sides.hpp.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <source_location>
#include <vector>

#include "ebr.hpp"
#include "stackless/runtime/detail/deadline.hpp"
#include "stackless/runtime/detail/tcb.hpp"
#include "stackless/runtime/internal/assert.hpp"
#include "stackless/runtime/internal/spin.hpp"
#include "stackless/sync/detail/channel_core.hpp"

namespace stackless::detail {

inline constexpr std::uint64_t seg_size = 32;
inline constexpr std::uint64_t closed_bit = std::uint64_t{1} << 62;
inline constexpr std::uint64_t count_mask = closed_bit - 1;
inline constexpr std::uint64_t no_index = UINT64_MAX;

// How many pause loops a receive waits for a sender that took its index but has not reached the
// cell yet, before it gives the cell up (POISONED). ~10 µs here.
inline constexpr int poison_patience = 4096;

// ---- cell states -----------------------------------------------------------------------------

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
  C_MARKERS = 16,     // states below are markers; above, a case_rec* (| send_bit)
};
inline constexpr state_t send_bit = 2;  // on a record: a sender's (so balance() and
                                        // expand_buffer() need not read the record; bit 0 is free)
inline constexpr state_t rec_bits = 3;

inline bool is_rec(state_t s) { return s >= C_MARKERS; }

/// cell_transition_ok() is the cell state diagram above: true when a cell may go from `from` to
/// `to`. DONE, POISONED, INT_SEND, INT_RCV and CLOSED are final.
constexpr bool cell_transition_ok(state_t from, state_t to) noexcept {
  const bool to_rec = to >= C_MARKERS && (to & 1) == 0;
  const bool to_send_rec = to_rec && (to & send_bit), to_recv_rec = to_rec && !(to & send_bit);
  if (from >=
      C_MARKERS) {  // a record: its partner, expand_buffer or close claims it, or it gives up
    if (from & send_bit) return to == C_RESUMING_R || to == C_RESUMING_EB || to == C_INT_SEND;
    return to == C_RESUMING_S || to == C_CLOSING || to == C_INT_RCV;
  }
  switch (from) {
    case C_EMPTY:
      return to == C_BUFFERED || to == C_IN_BUFFER || to_send_rec || to_recv_rec ||
             to == C_INT_SEND || to == C_INT_RCV || to == C_POISONED || to == C_CLOSED;
    case C_IN_BUFFER:  // a sender is on its way: only it buffers here
      return to == C_BUFFERED || to_recv_rec || to == C_INT_RCV || to == C_POISONED ||
             to == C_CLOSED;
    case C_BUFFERED:
      return to == C_DONE;
    case C_RESUMING_S:
      return to == C_INT_RCV;  // a sender that won leaves it RESUMING_S
    case C_RESUMING_R:
      return to == C_DONE || to == C_INT_SEND;
    case C_RESUMING_EB:
      return to == C_BUFFERED || to == C_INT_SEND;
    case C_CLOSING:
      return to == C_CLOSED || to == C_INT_RCV;
    default:
      return false;
  }
}

/// check_cell_transition() asserts cell_transition_ok() (debug and sanitizer builds; nothing in
/// release). The state word printed is from << 32 | to (low 31 / 32 bits of each).
inline void check_cell_transition(state_t from, state_t to) noexcept {
  STACKLESS_ASSERT_STATE(cell_transition_ok(from, to), "channel: illegal cell transition",
                         (from & 0x7fffffff) << 32 | (to & 0xffffffff));
  (void)from;
  (void)to;
}

/// cell_state_broken() reports a cell in a state its reader can never meet (invariant 1) and
/// aborts — in every build, as it always did: going on would take or lose an element.
[[noreturn]] inline void cell_state_broken(
    state_t st, const char* what,
    std::source_location at = std::source_location::current()) noexcept {
  assert_failed("the cell is in a state this side can meet (invariant 1)", what, at.file_name(),
                static_cast<int>(at.line()), static_cast<long long>(st & 0x7fffffffffffffff));
}

// ---- waiter records and the sel word -----------------------------------------------------------

struct chan_waiter;
struct segment;

/// case_rec is a waiter record: one case of one blocking call. Aligned so bit 0 is free.
struct alignas(16) case_rec {
  chan_waiter* owner = nullptr;
  std::uint32_t index = 0;  // the select case it stands for
  // Owner-only: where it is installed.
  segment* seg = nullptr;
  std::uint64_t cell = 0;
  bool installed = false;
  bool deferred = false;  // select: not registered this round (it met its own select)
  bool is_send = false;
  void* buf = nullptr;  // send: the element's home; receive: where it goes
};

inline case_rec* rec_of(state_t s) { return reinterpret_cast<case_rec*>(s & ~rec_bits); }

// The sel word of an arbitrated call (a select, or a plain thread's send/receive): who won it.
//
//   (a select begins) ─▶ REG ──owner: nothing decided, CAS──▶ WAITING ──partner CAS──▶ DONE | case
//                         │ ▲                                   └──owner gives up, CAS──▶ CANCELLED
//                         │ └──────── owner re-checks its cases ─────┐
//                         ├──partner finds it registering, CAS──▶ REG | REREG
//                         └──owner completed a case itself (from REG or REG | REREG)──▶ DONE | case
//   A plain thread's send/receive begins at WAITING. DONE | case and CANCELLED last until the
//   owner's next call begins (a tasklet's send/receive leaves a WAITING word as it is).
//
//   A partner that wins a *tasklet's* select CASes WAITING ──▶ DONE | WAKING | case, wakes the
//   park door, then stores DONE | case (release): its last touch of the owner's memory. The
//   owner waits, in clean_up(), while WAKING is set. Without it the owner could be woken first by
//   something else that holds its own reference (the select's timer, a kill, a timeout scope),
//   take the case, end, and have its control block freed and reused while the partner's
//   wake_park() still reads the door (ThreadSanitizer saw exactly that in soak_short). A plain
//   thread needs no WAKING: it already waits for the partner's store to its futex word.
inline constexpr std::uint32_t SEL_WAITING = 0;
inline constexpr std::uint32_t SEL_REG = 1u << 30;  // registering: partners may not complete a case
inline constexpr std::uint32_t SEL_REREG =
    1u << 29;  //   and a partner found it so: re-check the cases
inline constexpr std::uint32_t SEL_CANCELLED = 1u << 28;
inline constexpr std::uint32_t SEL_DONE = 1u << 27;    // | case index
inline constexpr std::uint32_t SEL_WAKING = 1u << 26;  // with DONE: the partner is still waking
inline constexpr std::uint32_t SEL_CASE_MASK = SEL_WAKING - 1;  // the case index of DONE | case
inline constexpr std::size_t sel_max_cases = SEL_WAKING;

/// sel_transition_ok() is the sel diagram above: true when `sel` may go from `from` to `to`.
constexpr bool sel_transition_ok(std::uint32_t from, std::uint32_t to) noexcept {
  const bool to_done = (to & ~SEL_CASE_MASK) == SEL_DONE;  // DONE | a case index, no other flag
  const bool to_waking = (to & ~SEL_CASE_MASK) == (SEL_DONE | SEL_WAKING);
  const bool begins = to == SEL_REG || to == SEL_WAITING;  // the owner's next call
  if (from == SEL_REG) return to == (SEL_REG | SEL_REREG) || to == SEL_WAITING || to_done;
  if (from == (SEL_REG | SEL_REREG)) return to == SEL_REG || to_done;
  if (from == SEL_WAITING) return to_done || to_waking || to == SEL_CANCELLED || begins;
  if ((from & ~SEL_CASE_MASK) == (SEL_DONE | SEL_WAKING)) return to == (from & ~SEL_WAKING);
  if (from == SEL_CANCELLED || (from & ~SEL_CASE_MASK) == SEL_DONE) return begins;
  return false;
}

/// check_sel_transition() asserts sel_transition_ok() (debug and sanitizer builds). The state
/// word printed is from << 32 | to.
inline void check_sel_transition(std::uint32_t from, std::uint32_t to) noexcept {
  STACKLESS_ASSERT_STATE(sel_transition_ok(from, to), "channel: illegal select (sel) transition",
                         static_cast<std::uint64_t>(from) << 32 | to);
  (void)from;
  (void)to;
}

/// chan_waiter is the owner of the records of one blocking call.
struct chan_waiter {
  waiter* door = nullptr;   // tasklet: its park door (the tcb's waiter record)
  bool arbitrated = false;  // select or plain thread: `sel` decides, not the door
  bool thread = false;      // a plain thread: `word` is its futex
  std::atomic<std::uint32_t> sel{SEL_WAITING};
  std::atomic<std::uint32_t> word{0};
  // A select of a tasklet: the generation of its park, written before `sel` is published. A
  // partner that wins `sel` reads it *before* its CAS: the door's record is rewritten by the
  // tasklet's next park, which can begin as soon as the CAS is seen — so waking through the
  // record after the CAS could end a later, unrelated park.
  std::atomic<std::uint64_t> gen{0};  // relaxed: ordered by `sel` (see try_resume())
};

/// chan_ext is what a tasklet (tcb::sync_ext) or a plain thread (thread-local) keeps for its
/// blocking channel calls: their owner and records.
struct chan_ext {
  chan_waiter w;
  case_rec single;             // a send or receive
  std::vector<case_rec> recs;  // a select, one per case
};

// ---- cells, segments, the channel --------------------------------------------------------------

struct cell {
  std::atomic<state_t> state{C_EMPTY};
};

/// leave_claim() is the plain store that ends a claim (RESUMING*, CLOSING) or a BUFFERED cell:
/// only the claimer (the receive of that index) leaves it (invariant 1), so in debug builds the
/// cell must still hold `claimed`. Release: pairs with the acquire of whoever waits the claim out
/// (wait_unclaimed(), eb_cell(), recv_cell()) or reads the final state (chan_balance()).
inline void leave_claim(cell& c, state_t claimed, state_t to) noexcept {
  STACKLESS_ASSERT_STATE(c.state.load(std::memory_order_relaxed) == claimed,  // relaxed: a check
                         "channel: a claimed cell changed under its claimer",
                         c.state.load(std::memory_order_relaxed));
  check_cell_transition(claimed, to);
  (void)claimed;
  c.state.store(to, std::memory_order_release);
}

// A segment is one allocation: this header, then the elements (stride bytes each). The first
// segment of a channel lives in the channel's own allocation (embedded: bytes == 0): freeing it
// is a no-op.
struct segment {
  // Read by every call that walks here.
  std::uint64_t id;
  std::atomic<segment*> next{nullptr};
  std::uint32_t bytes = 0;           // the allocation's size (seg_bytes); 0: embedded
  std::uint8_t kind[seg_size] = {};  // the element in cell k is: 0 a value, 1 an exception_ptr
                                     // (written only for exceptions: the line stays shared)
  // Written by every completed pair: kept 64+ bytes away from what find() reads and from the
  // cells, whatever the (16-byte) alignment of the allocation.
  char pad0_[128 - sizeof(std::uint64_t) - sizeof(void*) - sizeof(std::uint32_t) - seg_size];
  std::atomic<std::int32_t> remaining;  // cell sides not finished (invariant 5)
  char pad1_[64 - sizeof(std::atomic<std::int32_t>)];
  cell cells[seg_size];
};

/// free_segment() is ebr's free function for a segment (a no-op for the embedded one). The
/// memory goes to the calling thread's segment cache (chan_cells.cpp), where the next segment
/// of that size made on this thread is taken from: a channel in steady state allocates nothing.
void free_segment(void* p) noexcept;
/// segments_live() is the number of segments allocated and not yet freed, in all channels of
/// the process (linked, or retired and waiting in ebr; embedded first segments not counted).
std::int64_t segments_live() noexcept;
/// seg_layout(): where a segment's elements go (they share storage with an exception_ptr).
void seg_layout(const elem_ops* o, std::size_t& stride, std::size_t& payload_off,
                std::size_t& seg_bytes);

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
  std::atomic<segment*> eb_head;  // buffered channels only (null otherwise: see the constructor)

  segment* new_segment(std::uint64_t id, void* mem = nullptr);
  static constexpr std::size_t first_segment_offset() {
    return (sizeof(chan_core) + alignof(std::max_align_t) - 1) / alignof(std::max_align_t) *
           alignof(std::max_align_t);
  }
  void* payload(segment* s, std::uint64_t i) {
    return reinterpret_cast<unsigned char*>(s) + payload_off + (i % seg_size) * stride;
  }
  segment* walk(segment* s, std::uint64_t id);
  inline segment* find(std::atomic<segment*>& head, segment* from, std::uint64_t id);
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

// find() walks from `from` (read from `head` while pinned, before the caller took its index) to
// segment `id`, appending segments as needed, and moves `head` forward to it. Inline: every
// send and receive runs it.
inline segment* chan_core::find(std::atomic<segment*>& head, segment* from, std::uint64_t id) {
  segment* s = walk(from, id);
  // acquire: pairs with the release of the CAS below in another call (the segment it names
  // was initialised before walk() linked it, and reached through that CAS's chain).
  segment* h = head.load(std::memory_order_acquire);
  while (h->id < s->id) {
    // acq_rel: release pairs with the head loads of send_op()/recv_op()/expand_buffer() (seq_cst)
    // and try_retire(); acquire (on failure too) with the CAS of the call that moved it first.
    if (head.compare_exchange_weak(h, s, std::memory_order_acq_rel)) {
      if (&head == &eb_head) {  // the segments it left: expand_buffer's unit is done
        // acquire: pairs with the CAS in walk() that linked the next segment.
        for (segment* x = h; x != s; x = x->next.load(std::memory_order_acquire)) side_done(x);
      } else {
        try_retire();
      }
      break;
    }
  }
  return s;
}

// ---- resuming an owner, resolving a record (chan_cells.cpp) ------------------------------------

/// try_resume() tries to complete rec's call with rec's case (invariant 2). False: the call
/// gave up, another case won, or its select is still registering (then it will look again).
bool try_resume(case_rec* rec, bool to_back);

/// resolve() ends rec's wait in its cell after its call was decided otherwise (invariant 2): it
/// takes the record out, or waits for the claimer that holds it. Sends get their element back.
void resolve(chan_core* c, case_rec* rec);

// ---- the calling tasklet or thread (channel.cpp) -----------------------------------------------

/// my_ext() is the calling tasklet's chan_ext (made on first use, freed with its control block)
/// or the plain thread's.
chan_ext* my_ext();

/// chan_wait() is the one wait of a channel call (a send, a receive, a select round): a tasklet
/// parks on its door (which a partner's try_resume() ends), a plain thread blocks on o's futex
/// word until a partner wins `sel` or the deadline passes (then it cancels `sel`, or — if a
/// partner won meanwhile — waits for that partner's wake). notified: a partner completed the
/// call; otherwise timeout (or, for a tasklet, interrupted).
wake_reason chan_wait(chan_waiter* o, bool tasklet, std::int64_t deadline);

/// chan_ref keeps a channel alive while a call of it is parked.
struct chan_ref {
  chan_core* c;
  explicit chan_ref(chan_core* c_) : c(c_) { chan_acquire(c); }
  chan_ref(chan_ref&& o) noexcept : c(o.c) { o.c = nullptr; }
  chan_ref(const chan_ref&) = delete;
  chan_ref& operator=(const chan_ref&) = delete;
  ~chan_ref() {
    if (c) chan_release(c);
  }
};

}  // namespace stackless::detail
