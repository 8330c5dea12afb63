// SPDX-License-Identifier: Apache-2.0
// sync/src/channel.cpp — the channel's entry points: create / acquire / release, send and
// receive (a call that may park: blocking_call()), close, and the diagnostics (closing, closed,
// balance, preference, capacity). The engine they drive — glossary, cell state diagram,
// invariants 1–6, rejected alternatives — is described at the top of chan_engine.hpp; select()
// is in select.cpp.

#include "stackless/sync/channel.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <new>
#include <stdexcept>

#include "chan_engine.hpp"
#include "chan_sides.hpp"
#include "stackless/runtime/detail/preempt.hpp"
#include "stackless/runtime/internal/futex.hpp"
#include "stackless/runtime/internal/park.hpp"
#include "stackless/runtime/internal/scheduling.hpp"

namespace stackless::detail {

// ---- create, acquire, release ----------------------------------------------------------------

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
// relaxed: the caller holds a reference already; a new one publishes nothing (as shared_ptr).
void chan_acquire(chan_core* c) noexcept { c->refs.fetch_add(1, std::memory_order_relaxed); }
void chan_release(chan_core* c) noexcept {
  // acq_rel: release orders this holder's uses before the destruction; acquire lets the last
  // holder see every other holder's (pairs with this same fetch_sub in the other holders).
  if (c->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    c->~chan_core();
    ::operator delete(c);
  }
}

// ---- the calling tasklet or thread -----------------------------------------------------------

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

namespace {
bool thread_wait(chan_waiter* o, std::int64_t deadline) {
  for (;;) {
    if (o->word.load(std::memory_order_acquire)) return true;  // pairs with wake_owner()'s store
    if (deadline != no_deadline && now_ns() >= deadline) {
      std::uint32_t u = SEL_WAITING;
      check_sel_transition(u, SEL_CANCELLED);
      // acq_rel: against try_resume()'s CAS WAITING → DONE: exactly one of them wins the call.
      if (o->sel.compare_exchange_strong(u, SEL_CANCELLED, std::memory_order_acq_rel)) return false;
      // A partner won: wait for its store (pairs with the release in wake_owner()).
      while (!o->word.load(std::memory_order_acquire)) futex_wait(&o->word, 0);
      return true;
    }
    futex_wait(&o->word, 0, deadline);
  }
}
}  // namespace

wake_reason chan_wait(chan_waiter* o, bool tasklet, std::int64_t deadline) {
  if (tasklet) return park([] {}, deadline);
  plain_thread_will_block();  // a single-worker scheduler nobody drives yet may hold the partner
  return thread_wait(o, deadline) ? wake_reason::notified : wake_reason::timeout;
}

namespace {

// will_block_send() / will_block_receive(): the channel callback's guess (channel_event(),
// scheduling.hpp) that a send or receive starting now must wait — no receiver (sender) has
// reached its index and, for a send, the buffer is full. seq_cst: as chan_balance() reads them.
bool will_block_send(const void* p) {
  const chan_core* c = static_cast<const chan_core*>(p);
  const std::uint64_t s = c->S.load(std::memory_order_seq_cst);
  if (c->unbounded || (s & ~count_mask)) return false;  // unbounded, or closed: no wait
  return (s & count_mask) >= c->R.load(std::memory_order_seq_cst) + c->cap;
}
bool will_block_receive(const void* p) {
  const chan_core* c = static_cast<const chan_core*>(p);
  const std::uint64_t s = c->S.load(std::memory_order_seq_cst);
  if (s & ~count_mask) return false;  // closed: no wait
  return c->R.load(std::memory_order_seq_cst) >= (s & count_mask);
}

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
  // relaxed (both): the owner's own words between calls; the release CAS that installs the
  // record (send_empty(), recv_empty()) publishes them to the partner that claims it.
  check_sel_transition(ext->w.sel.load(std::memory_order_relaxed), SEL_WAITING);
  ext->w.sel.store(SEL_WAITING, std::memory_order_relaxed);
  ext->w.word.store(0, std::memory_order_relaxed);
  return rec;
}

// blocking_call() runs one send or receive (op: send_op or recv_op) as a call that may park.
// An interrupt (kill, raise_exception) ends a parked call with the exception; a tasklet that is
// unwinding cannot take one (throw_if_interrupted() declines), so its call simply waits again.
template <class Op>
op_status blocking_call(chan_core* c, bool is_send, void* buf, bool block, std::int64_t own,
                        Op op) {
  tcb* t = current_tcb();
  if (t && block) {
    preempt_point();  // a call that may wait is a safe point (try_ forms are not)
    channel_event(c, is_send, is_send ? &will_block_send : &will_block_receive);  // Stackless's
  }
  // A plain thread of a fork() child with an inherited scheduler: refused before anything is
  // published (its partner may be a tasklet that never runs again).
  if (!t && block) plain_thread_check_fork();
  const std::int64_t deadline =
      block ? scoped_deadline(own) : own;  // a timeout_scope may end first
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
    const wake_reason why = chan_wait(&ext->w, t != nullptr, deadline);
    if (why == wake_reason::notified) {
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

}  // namespace

// ---- send, receive ---------------------------------------------------------------------------

op_status chan_send(chan_core* c, void* src, bool is_exc, bool block, std::int64_t deadline) {
  if (!block && would_block_send(c)) return op_status::would_block;
  if (block) chaos_point();
  return blocking_call(c, true, src, block, deadline,
                       [&](op_ctx& x, std::exception_ptr&) { return send_op(x, src, is_exc); });
}

op_status chan_receive(chan_core* c, void* dst, bool block, std::int64_t deadline) {
  if (!block && would_block_recv(c)) return op_status::would_block;
  if (block) chaos_point();
  return blocking_call(c, false, dst, block, deadline,
                       [&](op_ctx& x, std::exception_ptr& exc) { return recv_op(x, dst, exc); });
}

// ---- close -----------------------------------------------------------------------------------

namespace {

/// close_cell() runs chan_close() at cell i, a receive index past the last send (invariant 6):
/// a parked receiver is woken with CLOSED, a cell its receiver has not reached is marked CLOSED.
void close_cell(cell& cl) {
  // acquire: pairs with the receiver's release CAS that installed its record.
  state_t st = cl.state.load(std::memory_order_acquire);
  for (;;) {
    if (is_rec(st)) {
      check_cell_transition(st, C_CLOSING);
      // acq_rel: acquire pairs with the receiver's installing CAS (its record); on failure, with
      // whoever changed the cell (the receiver giving up). leave_claim() publishes below.
      if (!cl.state.compare_exchange_weak(st, C_CLOSING, std::memory_order_acq_rel)) continue;
      // The receiver reads CLOSING / CLOSED in finish_won(), or waits the claim out in resolve().
      if (try_resume(rec_of(st), true))
        leave_claim(cl, C_CLOSING, C_CLOSED);
      else
        leave_claim(cl, C_CLOSING, C_INT_RCV);
      return;
    }
    if (st == C_EMPTY || st == C_IN_BUFFER) {
      check_cell_transition(st, C_CLOSED);
      // acq_rel: release pairs with the receiver's acquire load in recv_cell() (it reports
      // closed); acquire (on failure) with the receiver's CAS that came first.
      if (!cl.state.compare_exchange_weak(st, C_CLOSED, std::memory_order_acq_rel)) continue;
    }
    return;
  }
}

}  // namespace

void chan_close(chan_core* c) {
  ebr::guard g;
  // seq_cst: read before the bit is set, as send_op() reads it before its index (invariant 5):
  // every cell close() visits is at or after it. Pairs with the head CAS in find().
  segment* h = c->send_head.load(std::memory_order_seq_cst);
  // seq_cst: pairs with send_op()'s FAA (a send after this sees the bit) and with the S loads
  // of recv_empty(), buffer_has_room() and would_block_*().
  std::uint64_t old = c->S.fetch_or(closed_bit, std::memory_order_seq_cst);
  if (old & closed_bit) return;
  std::uint64_t ci = old & count_mask;
  std::uint64_t r_end = c->R.load(std::memory_order_seq_cst);  // pairs with recv_op()'s FAA
  c->close_r = r_end;
  c->close_index.store(ci, std::memory_order_release);  // pairs with wait_close_index()'s acquire
  // seq_cst: pairs with the loads of closed_flag in recv_op() and buffer_has_room().
  c->closed_flag.store(true, std::memory_order_seq_cst);
  // Receivers with an index at or past ci will never get a sender: wake the parked ones with
  // CLOSED, and mark the cells of those still on their way (invariant 6).
  segment* s = h;
  for (std::uint64_t i = ci; i < r_end; ++i) {
    s = c->walk(s, i / seg_size);  // no head moves: close() takes no index
    close_cell(s->cells[i % seg_size]);
  }
}

// ---- diagnostics -----------------------------------------------------------------------------

bool chan_closing(const chan_core* c) noexcept {
  return c->S.load(std::memory_order_seq_cst) & closed_bit;  // pairs with chan_close()'s fetch_or
}
bool chan_closed(const chan_core* c) noexcept {
  // seq_cst: S pairs with chan_close()'s fetch_or, R with recv_op()'s FAA.
  if (!(c->S.load(std::memory_order_seq_cst) & closed_bit)) return false;
  const std::uint64_t r = c->R.load(std::memory_order_seq_cst);
  const std::uint64_t ci = c->wait_close_index();
  if (r >= ci) return true;
  // Send cells no receiver has reached yet: drained all the same when every one of them is a
  // cancelled send (a sender killed or timed out after it took its index) — nothing there will
  // ever be received. Found by tests/fuzz/fuzz_model: closed() stayed false until a receive
  // walked past the cell. Any other state (a parked sender, a buffered element, a sender still
  // writing) is something to receive. Read-only, like chan_balance().
  ebr::guard g;
  // first: seq_cst, pairs with try_retire()'s CAS; next: acquire, pairs with walk()'s CAS.
  for (segment* s = c->first.load(std::memory_order_seq_cst); s && s->id * seg_size < ci;
       s = s->next.load(std::memory_order_acquire)) {
    for (std::uint64_t k = 0; k < seg_size; ++k) {
      const std::uint64_t i = s->id * seg_size + k;
      if (i < r || i >= ci) continue;
      // acquire: pairs with the release CAS that cancelled the send (or installed a record).
      if (s->cells[k].state.load(std::memory_order_acquire) != C_INT_SEND) return false;
    }
  }
  return true;
}
int chan_balance(const chan_core* c) noexcept {
  // Count the records between the two counters (the parked calls are there). O(balance): a
  // diagnostic, kept off the hot paths (two counters would cost every parked call two RMWs).
  ebr::guard g;
  // seq_cst: R and S pair with the FAAs of recv_op() / send_op() (and close()'s fetch_or).
  std::uint64_t r = c->R.load(std::memory_order_seq_cst);
  std::uint64_t sv = c->S.load(std::memory_order_seq_cst) & count_mask;
  std::uint64_t ci = c->close_index.load(std::memory_order_acquire);  // pairs with chan_close()
  if (ci != no_index) sv = std::min(sv, ci);
  std::uint64_t lo = std::min(r, sv), hi = std::max(r, sv);
  int senders = 0, receivers = 0;
  // first: seq_cst, pairs with try_retire()'s CAS; next: acquire, pairs with walk()'s CAS.
  for (segment* s = c->first.load(std::memory_order_seq_cst); s && s->id * seg_size < hi;
       s = s->next.load(std::memory_order_acquire)) {
    for (std::uint64_t k = 0; k < seg_size; ++k) {
      std::uint64_t i = s->id * seg_size + k;
      if (i < lo || i >= hi) continue;
      // acquire: pairs with the release CASes that install records and leave_claim().
      state_t st = s->cells[k].state.load(std::memory_order_acquire);
      if (!is_rec(st)) continue;
      if (st & send_bit)
        ++senders;
      else
        ++receivers;
    }
  }
  return senders - receivers;
}
// relaxed (preference): a setting read by plan_for(); it publishes nothing.
void chan_set_preference(chan_core* c, int p) noexcept {
  c->pref.store(p < 0 ? -1 : p > 0 ? 1 : 0, std::memory_order_relaxed);
}
int chan_get_preference(const chan_core* c) noexcept {
  return c->pref.load(std::memory_order_relaxed);
}
std::size_t chan_capacity(const chan_core* c) noexcept { return c->unbounded ? SIZE_MAX : c->cap; }

}  // namespace stackless::detail
