// SPDX-License-Identifier: Apache-2.0
// sync/src/chan_sides.hpp — the two sides of a channel cell (send_cell, recv_cell), the index
// loops around them (send_op, recv_op), and how a completed call hands over to its partner.
// The cell state diagram and the invariants they follow open chan_engine.hpp.
//
// These are the hot paths of every send, receive and select. They have internal linkage on
// purpose: channel.cpp (send/receive) and select.cpp each compile them into their own paths,
// as when the channel was one file — without link-time optimisation a call across .cpp files
// would cost every operation a call. Only those two files include this header.
#pragma once

#include <algorithm>
#include <exception>
#include <optional>

#include "chan_engine.hpp"
#include "stackless/runtime/internal/park.hpp"
#include "stackless/runtime/internal/scheduling.hpp"

namespace stackless::detail {

/// step is how one index of a call ended at its cell.
enum class step : std::uint8_t { done, restart, wait, would_block, closed };

/// op_ctx is one call's view of its operation while it runs its indices.
struct op_ctx {
  chan_core* c;
  case_rec* rec;               // null: never wait (try_)
  const char* what = nullptr;  // a single call of a tasklet: prepare its park when it must wait
  // A select: its own records (recs[0, n) of its chan_ext) are not partners.
  const case_rec* self_recs = nullptr;
  std::size_t self_n = 0;
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

/// wake_plan says how a call that completes a pair with a parked partner hands over.
/// Rendezvous channels follow Stackless's preference: a preferred partner runs next and the
/// caller yields to it; otherwise the partner goes to the back of the run queue and the caller
/// continues. Buffered and unbounded channels (Go's, not Stackless's) do what Go does: the
/// partner runs next and the caller continues — a producer fills the buffer before it switches.
struct wake_plan {
  bool to_back;
  bool yield;
};

namespace {

inline wake_plan plan_for(chan_core* c, bool caller_sends) {
  if (c->cap != 0 || c->unbounded) return {false, false};
  int p = c->pref.load(std::memory_order_relaxed);  // relaxed: a setting; it publishes nothing
  bool partner_preferred = caller_sends ? p < 0 : p > 0;
  return partner_preferred ? wake_plan{false, true} : wake_plan{true, false};
}

/// after_partner_woken() finishes a call that completed a pair with a parked partner.
inline void after_partner_woken(op_ctx& x) {
  // Stackless: the preferred side resumes first. A tasklet that woke a preferred partner (now
  // its worker's runnext) yields to it; it stays runnable. Nothing to do on a plain thread.
  if (x.yield_after) yield_now();
}

/// meets_self() handles a cell holding a record of the caller's own select (a send and a receive
/// case on one channel): that case is withdrawn from the cell and retried in a later round.
/// Whose record it is, is decided from its address alone: a record in a cell may belong to
/// another call that is giving it up and rewriting it for its next round (or freeing it) at this
/// very moment — only a claimer may read a foreign record (invariant 2), and we have not claimed.
/// Our own records are ours to read and resolve.
inline bool meets_self(op_ctx& x, state_t st) {
  if (!x.self_recs) return false;
  const auto at = reinterpret_cast<std::uintptr_t>(rec_of(st));
  const auto lo = reinterpret_cast<std::uintptr_t>(x.self_recs);
  if (at < lo || at >= lo + x.self_n * sizeof(case_rec)) return false;
  case_rec* own = rec_of(st);
  resolve(x.c, own);
  own->deferred = true;
  return true;
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
inline bool buffer_has_room(chan_core* c, std::uint64_t i) {
  if (c->unbounded) return true;
  // closed_flag: seq_cst, pairs with its seq_cst store in chan_close(). S: relaxed, a second
  // look at the bit only; wait_close_index() (acquire) is what orders close_r.
  if (c->closed_flag.load(std::memory_order_seq_cst) ||
      (c->S.load(std::memory_order_relaxed) & closed_bit)) {
    c->wait_close_index();  // acquire: close_r is written
    return i < c->close_r + c->cap;
  }
  // seq_cst: B pairs with expand_buffer()'s FAA (the Dekker pair described there); R with
  // recv_op()'s FAA.
  return i < c->B.load(std::memory_order_seq_cst) ||
         i < c->R.load(std::memory_order_seq_cst) + c->cap;
}

/// finish_won() completes rec's case after a partner resumed it. For a receive: `closed` if
/// close() did it, else the element is taken.
inline bool finish_won(chan_core* c, case_rec* rec, void* dst, std::exception_ptr& exc) {
  bool is_send = rec->is_send;
  segment* s = rec->seg;
  rec->installed = false;
  if (is_send) return false;  // the receiver (or, via BUFFERED, the next one) finishes the cell
  cell& cl = s->cells[rec->cell % seg_size];
  // acquire: pairs with chan_close()'s leave_claim() out of CLOSING; a sender's RESUMING_S was
  // ordered by the park door (or `sel`) that resumed us.
  state_t st = cl.state.load(std::memory_order_acquire);
  if (st == C_CLOSING || st == C_CLOSED) return true;  // close() sets no more than that
  // invariant 2: only a sender that won leaves it so
  if (st != C_RESUMING_S) [[unlikely]]
    cell_state_broken(st, "channel: a receive was resumed, its cell is not RESUMING_S");
  exc = c->take(s, rec->cell, dst);  // the sender put it before resuming us (park door: acq_rel)
  c->side_done(s, 2);  // both sides: the sender left the cell RESUMING_S (and expanded the buffer)
  return false;
}

// ---- the send side -----------------------------------------------------------------------------

/// send_to_receiver() completes the pair with the receiver whose record is in cell i (st).
/// nullopt: the cell changed first, look again.
inline std::optional<step> send_to_receiver(op_ctx& x, segment* s, std::uint64_t i, void* src,
                                            bool is_exc, state_t& st, bool stored) {
  chan_core* c = x.c;
  cell& cl = s->cells[i % seg_size];
  check_cell_transition(st, C_RESUMING_S);
  // acq_rel: acquire pairs with the receiver's installing CAS (its record); on failure, with
  // whoever changed the cell. The release half is unused (the door or `sel` publishes).
  if (!cl.state.compare_exchange_weak(st, C_RESUMING_S, std::memory_order_acq_rel))
    return std::nullopt;
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
  leave_claim(cl, C_RESUMING_S, C_INT_RCV);  // the receiver's resolve() waits for it
  c->expand_buffer();                        // a receive index used up (invariant 4)
  c->side_done(s);
  return step::restart;
}

/// send_empty() runs send index i at its EMPTY cell: buffer, give up (try_send) or install the
/// record. nullopt: the cell changed first, look again.
inline std::optional<step> send_empty(op_ctx& x, segment* s, std::uint64_t i, void* src,
                                      bool is_exc, state_t& st, bool& stored) {
  chan_core* c = x.c;
  cell& cl = s->cells[i % seg_size];
  // On a rendezvous channel a send that cannot wait only pairs with a receiver already
  // parked (its record is in the cell): one merely on its way may be a try_receive that
  // will not wait either, and two calls that do not wait never meet (as in Go).
  bool no_wait = buffer_has_room(c, i) && (x.rec || c->cap != 0 || c->unbounded);
  if (no_wait) {
    if (!stored) c->put(s, i, src, is_exc), stored = true;
    check_cell_transition(st, C_BUFFERED);
    // acq_rel: release publishes the element to the receiver's acquire load in recv_cell();
    // acquire (on failure) pairs with the CAS that came first (a receiver, expand_buffer).
    if (!cl.state.compare_exchange_strong(st, C_BUFFERED, std::memory_order_acq_rel))
      return std::nullopt;
    return step::done;  // the receiver that takes it finishes both sides
  }
  if (!x.rec) {
    check_cell_transition(st, C_INT_SEND);
    // acq_rel: release pairs with the receiver's acquire load in recv_cell() (it skips the
    // cell); acquire (on failure) as above.
    if (!cl.state.compare_exchange_strong(st, C_INT_SEND, std::memory_order_acq_rel))
      return std::nullopt;
    if (stored) c->give_back(s, i, src);
    c->side_done(s);
    return step::would_block;
  }
  if (!stored) c->put(s, i, src, is_exc), stored = true;
  x.ready_to_wait();
  const state_t mine = reinterpret_cast<state_t>(x.rec) | send_bit;
  check_cell_transition(st, mine);
  // acq_rel: release publishes the record and the element to the claimer's acquire (recv_cell(),
  // eb_cell()); acquire (on failure) as above.
  if (!cl.state.compare_exchange_strong(st, mine, std::memory_order_acq_rel)) return std::nullopt;
  x.rec->seg = s;
  x.rec->cell = i;
  x.rec->installed = true;
  return step::wait;
}

/// send_cell() runs send index i at its cell. `stored`: the element is in the cell already.
inline step send_cell(op_ctx& x, segment* s, std::uint64_t i, void* src, bool is_exc) {
  chan_core* c = x.c;
  cell& cl = s->cells[i % seg_size];
  bool stored = false;
  // acquire: pairs with the release CAS that set the state (a receiver's record, IN_BUFFER).
  state_t st = cl.state.load(std::memory_order_acquire);
  for (;;) {
    if (is_rec(st)) {  // a receiver waits here
      if (meets_self(x, st)) {
        st = cl.state.load(std::memory_order_acquire);  // pairs with the CAS in resolve()
        continue;
      }
      if (std::optional<step> r = send_to_receiver(x, s, i, src, is_exc, st, stored)) return *r;
      continue;
    }
    switch (st) {
      case C_EMPTY:
        if (std::optional<step> r = send_empty(x, s, i, src, is_exc, st, stored)) return *r;
        continue;
      case C_IN_BUFFER:
        if (!stored) c->put(s, i, src, is_exc), stored = true;
        check_cell_transition(st, C_BUFFERED);
        // acq_rel: as in send_empty() (the element to the receiver's acquire load).
        if (!cl.state.compare_exchange_strong(st, C_BUFFERED, std::memory_order_acq_rel)) continue;
        return step::done;  // the receiver that takes it finishes both sides
      case C_POISONED:
      case C_INT_RCV:
        if (stored) c->give_back(s, i, src);
        c->side_done(s);
        return step::restart;
      default:  // nothing else can be in a cell a sender reaches (invariant 1)
        cell_state_broken(st, "channel: sender found an impossible cell state");
    }
  }
}

// ---- the receive side --------------------------------------------------------------------------

/// recv_from_sender() completes the pair with the sender whose record is in cell i (st).
/// nullopt: the cell changed first, look again.
inline std::optional<step> recv_from_sender(op_ctx& x, segment* s, std::uint64_t i, void* dst,
                                            std::exception_ptr& exc, state_t& st) {
  chan_core* c = x.c;
  cell& cl = s->cells[i % seg_size];
  check_cell_transition(st, C_RESUMING_R);
  // acq_rel: acquire pairs with the sender's installing CAS (its record and element); on
  // failure, with whoever changed the cell. The release half is unused: leave_claim() publishes.
  if (!cl.state.compare_exchange_weak(st, C_RESUMING_R, std::memory_order_acq_rel))
    return std::nullopt;
  wake_plan plan = plan_for(c, false);
  if (try_resume(rec_of(st), plan.to_back)) {
    exc = c->take(s, i, dst);
    leave_claim(cl, C_RESUMING_R, C_DONE);  // eb_cell() may be waiting the claim out
    c->expand_buffer();
    c->side_done(s, 2);  // the resumed sender never touches the cell again
    x.yield_after = plan.yield;
    return step::done;
  }
  leave_claim(cl, C_RESUMING_R, C_INT_SEND);  // expand_buffer will skip it; resolve() gives back
  c->side_done(s);
  return step::restart;
}

/// sender_arrived() waits a little for the sender of index i, which took its index but has not
/// reached the cell (state st) yet. Returns the state the cell then has (st if it never came).
inline state_t sender_arrived(cell& cl, state_t st) {
  // A few instructions, it never parks in between. Poisoning at once (as Koval et al. do) makes
  // both sides start over, and lets a try_receive() report "empty" while a send that began
  // before it is still in flight, which is not linearizable. Only a sender thread the OS took
  // off its CPU right there outlasts the wait; then poison, as the paper does.
  state_t now = st;
  for (int k = 0; k < poison_patience && now == st; ++k) {
    cpu_relax();
    now = cl.state.load(std::memory_order_acquire);  // pairs with the sender's release CAS
  }
  return now;
}

/// recv_empty() runs receive index i at its EMPTY or IN_BUFFER cell: wait for its sender,
/// report closed, give up (try_receive) or install the record. nullopt: look again.
inline std::optional<step> recv_empty(op_ctx& x, segment* s, std::uint64_t i, state_t& st) {
  chan_core* c = x.c;
  cell& cl = s->cells[i % seg_size];
  // seq_cst: pairs with send_op()'s FAA on S (an index below S has a sender on its way) and
  // with chan_close()'s fetch_or (the closed bit).
  std::uint64_t sv = c->S.load(std::memory_order_seq_cst);
  std::uint64_t limit = sv & count_mask;
  bool closed = sv & closed_bit;
  if (closed) limit = std::min(limit, c->wait_close_index());
  if (i < limit) {
    if (state_t now = sender_arrived(cl, st); now != st) {
      st = now;
      return std::nullopt;
    }
    check_cell_transition(st, C_POISONED);
    // acq_rel: release pairs with the sender's acquire load in send_cell() (it restarts);
    // acquire (on failure) with the sender's CAS that came first.
    if (!cl.state.compare_exchange_strong(st, C_POISONED, std::memory_order_acq_rel))
      return std::nullopt;
    c->expand_buffer();
    c->side_done(s);
    return step::restart;
  }
  if (closed) {  // no send will ever come to this cell
    check_cell_transition(st, C_CLOSED);
    // acq_rel: against chan_close()'s CAS of the same cell (both mark it CLOSED).
    if (!cl.state.compare_exchange_strong(st, C_CLOSED, std::memory_order_acq_rel))
      return std::nullopt;
    return step::closed;
  }
  if (!x.rec) {
    check_cell_transition(st, C_INT_RCV);
    // acq_rel: release pairs with the sender's acquire load in send_cell() (it restarts);
    // acquire (on failure) with the CAS that came first.
    if (!cl.state.compare_exchange_strong(st, C_INT_RCV, std::memory_order_acq_rel))
      return std::nullopt;
    c->expand_buffer();
    c->side_done(s);
    return step::would_block;
  }
  x.ready_to_wait();
  const state_t mine = reinterpret_cast<state_t>(x.rec);
  check_cell_transition(st, mine);
  // acq_rel: release publishes the record to the claimer's acquire (send_cell(), chan_close());
  // acquire (on failure) with the CAS that came first.
  if (!cl.state.compare_exchange_strong(st, mine, std::memory_order_acq_rel)) return std::nullopt;
  x.rec->seg = s;
  x.rec->cell = i;
  x.rec->installed = true;
  return step::wait;
}

/// recv_cell() runs receive index i at its cell.
inline step recv_cell(op_ctx& x, segment* s, std::uint64_t i, void* dst, std::exception_ptr& exc) {
  chan_core* c = x.c;
  cell& cl = s->cells[i % seg_size];
  // acquire: pairs with the release CAS that set the state (a sender's record, BUFFERED with
  // its element, INT_SEND) or leave_claim() (RESUMING_EB → BUFFERED).
  state_t st = cl.state.load(std::memory_order_acquire);
  for (;;) {
    if (is_rec(st)) {  // a sender waits here with its element
      if (meets_self(x, st)) {
        st = cl.state.load(std::memory_order_acquire);  // pairs with the CAS in resolve()
        continue;
      }
      if (std::optional<step> r = recv_from_sender(x, s, i, dst, exc, st)) return *r;
      continue;
    }
    switch (st) {
      case C_EMPTY:
      case C_IN_BUFFER:
        if (std::optional<step> r = recv_empty(x, s, i, st)) return *r;
        continue;
      case C_BUFFERED:
        exc = c->take(s, i, dst);
        leave_claim(cl, C_BUFFERED, C_DONE);  // only this receive leaves BUFFERED
        c->expand_buffer();
        c->side_done(s, 2);  // its sender is gone: both sides
        return step::done;
      case C_INT_SEND:
        c->side_done(s);
        return step::restart;
      case C_RESUMING_EB:
        cpu_relax();
        st = cl.state.load(std::memory_order_acquire);  // pairs with leave_claim() in eb_cell()
        continue;
      case C_CLOSED:
        return step::closed;
      default:
        cell_state_broken(st, "channel: receiver found an impossible cell state");
    }
  }
}

// ---- the index loops -------------------------------------------------------------------------

/// send_op() takes send indices until one completes, must wait (rec installed), would block, or
/// the channel is closed.
inline step send_op(op_ctx& x, void* src, bool is_exc) {
  chan_core* c = x.c;
  ebr::guard g;
  for (;;) {
    // seq_cst: before the index (invariant 5); pairs with the head CAS in find().
    segment* h = c->send_head.load(std::memory_order_seq_cst);
    // seq_cst: pairs with the S loads of recv_empty(), eb_cell() and would_block_recv(), and
    // with chan_close()'s fetch_or (an index taken after the close sees the bit).
    std::uint64_t sv = c->S.fetch_add(1, std::memory_order_seq_cst);
    if (sv & closed_bit) return step::closed;
    std::uint64_t i = sv & count_mask;
    segment* s = c->find(c->send_head, h, i / seg_size);
    step r = send_cell(x, s, i, src, is_exc);
    if (r != step::restart) return r;
  }
}

/// recv_op() takes receive indices until one completes, must wait, would block, or the channel
/// is closed and drained.
inline step recv_op(op_ctx& x, void* dst, std::exception_ptr& exc) {
  chan_core* c = x.c;
  ebr::guard g;
  for (;;) {
    // seq_cst: before the index (invariant 5); pairs with the head CAS in find().
    segment* h = c->recv_head.load(std::memory_order_seq_cst);
    // seq_cst: pairs with the R loads of buffer_has_room(), would_block_recv() and chan_close().
    std::uint64_t i = c->R.fetch_add(1, std::memory_order_seq_cst);
    // seq_cst: pairs with the store of closed_flag in chan_close().
    if (c->closed_flag.load(std::memory_order_seq_cst) && i >= c->wait_close_index())
      return step::closed;
    segment* s = c->find(c->recv_head, h, i / seg_size);
    step r = recv_cell(x, s, i, dst, exc);
    if (r != step::restart) return r;
  }
}

/// would_block_send()/would_block_recv(): the try_ pre-checks, which take no index (so polling
/// a full or empty channel does not walk the cell array).
inline bool would_block_send(chan_core* c) {
  std::uint64_t sv = c->S.load(std::memory_order_seq_cst);  // pairs with send_op()'s FAA and
                                                            // chan_close()'s fetch_or
  if (sv & closed_bit) return false;                        // let send_op() report it
  return !buffer_has_room(c, sv & count_mask);
}
inline bool would_block_recv(chan_core* c) {
  // seq_cst: R pairs with recv_op()'s FAA, S with send_op()'s FAA and chan_close()'s fetch_or.
  std::uint64_t r = c->R.load(std::memory_order_seq_cst);
  std::uint64_t sv = c->S.load(std::memory_order_seq_cst);
  if (sv & closed_bit) return false;
  return r >= (sv & count_mask);
}

}  // namespace

}  // namespace stackless::detail
