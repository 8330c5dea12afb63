// SPDX-License-Identifier: Apache-2.0
// sync/src/select.cpp — select() over channels: chan_select(), in named steps (poll, register,
// park, clean up). The channel engine it drives — glossary, cell state diagram, the `sel` word's
// diagram, invariants 1–6 — is described at the top of chan_engine.hpp.
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

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <vector>

#include "chan_engine.hpp"
#include "chan_sides.hpp"
#include "stackless/runtime/detail/preempt.hpp"
#include "stackless/runtime/errors.hpp"
#include "stackless/runtime/internal/park.hpp"
#include "stackless/runtime/internal/scheduling.hpp"
#include "stackless/sync/channel.hpp"

namespace stackless::detail {

namespace {

constexpr std::size_t none = SIZE_MAX;

std::uint64_t select_rand() {
  static std::atomic<std::uint64_t> seed{0x9e3779b97f4a7c15ULL};
  // relaxed: only a source of different numbers; it orders nothing.
  std::uint64_t x = seed.fetch_add(0x9e3779b97f4a7c15ULL, std::memory_order_relaxed);
  x ^= x >> 31;
  x *= 0xbf58476d1ce4e5b9ULL;
  return x ^ (x >> 29);
}

[[noreturn]] void throw_send_closed() {
  throw channel_closed("stackless: select() sent on a closed channel");
}

bool is_channel_case(const select_case& sc) {
  return sc.kind == select_case::kind_t::recv || sc.kind == select_case::kind_t::send;
}

/// select_cases is what chan_select() learns from its cases before the first round.
struct select_cases {
  std::int64_t deadline = no_deadline;  // the earliest `after` case's
  std::size_t after_i = none;           // that case
  std::size_t def_i = none;             // the default case
  std::size_t channel_cases = 0;        // cases on a channel (recv, send)
};

/// read_cases() checks the cases (usage_error) and sums them up.
select_cases read_cases(const select_case* cs, std::size_t n) {
  if (n >= sel_max_cases) throw usage_error("stackless: select() with too many cases");
  select_cases p;
  for (std::size_t i = 0; i < n; ++i) {
    if (cs[i].kind == select_case::kind_t::after && cs[i].deadline < p.deadline) {
      p.deadline = cs[i].deadline;
      p.after_i = i;
    }
    if (cs[i].kind == select_case::kind_t::fallback) {
      if (p.def_i != none) throw usage_error("stackless: select() with two default cases");
      p.def_i = i;
    }
    if (is_channel_case(cs[i]) && !cs[i].ch)
      throw usage_error("stackless: select() case on an empty channel handle");
    p.channel_cases += is_channel_case(cs[i]);
  }
  return p;
}

/// select_call is one select() in progress: its cases, the caller's records (chan_ext::recs,
/// owned by chan_ext::w) and what the current round decided. Each round runs poll(), then
/// register_cases() and, unless that decided it, park_round() and clean_up().
class select_call {
 public:
  select_call(select_case* cs, std::size_t n, tcb* t)
      : cs_(cs), n_(n), start_(n > 1 ? select_rand() % n : 0), t_(t) {}

  bool in_tasklet() const { return t_ != nullptr; }
  std::size_t poll();
  bool register_cases();
  std::size_t finish_registered();
  bool any_deferred() const;
  wake_reason park_round(std::int64_t wake_at, bool poll_only);
  std::size_t clean_up();

 private:
  std::size_t at(std::size_t k) const { return (start_ + k) % n_; }  // a round's k-th case
  void begin_registration();
  bool register_case(std::size_t i);
  bool reregister_pushed_out();

  select_case* const cs_;
  const std::size_t n_;
  const std::size_t start_;  // the random case each round starts at
  tcb* const t_;             // the calling tasklet; null on a plain thread
  chan_ext* ext_ = nullptr;
  chan_waiter* o_ = nullptr;
  // This round's outcome when a case completed while registering:
  std::size_t winner_ = none;
  bool send_closed_ = false;
  std::exception_ptr exc_;  // an element send_exception() sent (the receiving case's)
  op_ctx won_ctx_{nullptr, nullptr};
  std::vector<chan_ref> keep_;  // the channels outlive the wait
};

/// poll() is step (1): every case once through the try_ paths. Returns the case performed, or
/// none.
std::size_t select_call::poll() {
  for (std::size_t k = 0; k < n_; ++k) {
    const std::size_t i = at(k);
    select_case& sc = cs_[i];
    if (sc.kind == select_case::kind_t::recv && !would_block_recv(sc.ch)) {
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
    } else if (sc.kind == select_case::kind_t::send && !would_block_send(sc.ch)) {
      op_ctx x{sc.ch, nullptr};
      step r = send_op(x, sc.buf, sc.is_exc);
      if (r == step::done) {
        after_partner_woken(x);
        return i;
      }
      if (r == step::closed) throw_send_closed();
    }
  }
  return none;
}

/// begin_registration() prepares the owner (`sel` = REG, the park door) and the records of a
/// round.
void select_call::begin_registration() {
  ext_ = my_ext();
  if (ext_->recs.size() < n_) ext_->recs.resize(n_);
  o_ = &ext_->w;
  o_->thread = !t_;
  o_->arbitrated = true;
  o_->word.store(0, std::memory_order_relaxed);  // relaxed: published by the SEL_REG store below
  if (t_) {
    o_->door = prepare_park("select");
    o_->gen.store(o_->door->gen, std::memory_order_relaxed);  // relaxed: as `word`
  }
  check_sel_transition(o_->sel.load(std::memory_order_relaxed), SEL_REG);  // relaxed: our word
  // seq_cst (release): publishes door, gen and word; pairs with the acquire load in try_resume().
  o_->sel.store(SEL_REG, std::memory_order_seq_cst);
  for (std::size_t i = 0; i < n_; ++i) {
    case_rec& rec = ext_->recs[i];
    rec.owner = o_;
    rec.index = static_cast<std::uint32_t>(i);
    rec.installed = false;
    rec.deferred = false;
    rec.is_send = cs_[i].kind == select_case::kind_t::send;
    rec.buf = cs_[i].buf;
  }
  winner_ = none;
  send_closed_ = false;
  exc_ = nullptr;
  won_ctx_ = op_ctx{nullptr, nullptr};
}

/// register_case() runs case i as a waiting call; true when the select is decided (by case i).
bool select_call::register_case(std::size_t i) {
  select_case& sc = cs_[i];
  case_rec* rec = &ext_->recs[i];
  rec->deferred = false;
  op_ctx x{sc.ch, rec};
  x.self_recs = ext_->recs.data();
  x.self_n = n_;
  step r = sc.kind == select_case::kind_t::recv ? recv_op(x, sc.buf, exc_)
                                                : send_op(x, sc.buf, sc.is_exc);
  if (r == step::wait) return false;
  if (r == step::closed) {
    if (sc.kind == select_case::kind_t::send)
      send_closed_ = true;
    else
      sc.closed = true;
  }
  winner_ = i;
  won_ctx_ = x;
  return true;
}

/// reregister_pushed_out() runs again every case whose record a partner pushed out of its cell
/// while `sel` was REG; true when one of them decided the select.
bool select_call::reregister_pushed_out() {
  for (std::size_t k = 0; k < n_; ++k) {
    const std::size_t i = at(k);
    case_rec* rec = &ext_->recs[i];
    if (!rec->installed) continue;
    // acquire: pairs with the release of whoever changed the cell (a claimer's leave_claim()).
    state_t st = rec->seg->cells[rec->cell % seg_size].state.load(std::memory_order_acquire);
    if (is_rec(st) && rec_of(st) == rec) continue;
    resolve(cs_[i].ch, rec);
    if (register_case(i)) return true;
  }
  return false;
}

/// register_cases() is step (2): every channel case gets a record in a cell, then `sel` goes
/// from REG to WAITING. True when a case completed meanwhile (finish_registered() ends it).
bool select_call::register_cases() {
  begin_registration();
  for (std::size_t k = 0; k < n_; ++k)
    if (is_channel_case(cs_[at(k)]) && register_case(at(k))) return true;
  for (;;) {
    std::uint32_t u = SEL_REG;
    check_sel_transition(u, SEL_WAITING);
    // acq_rel: pairs with try_resume()'s CAS REG → REG | REREG: if a partner pushed a record
    // out, this fails and we look again; once WAITING, partners may complete a case.
    if (o_->sel.compare_exchange_strong(u, SEL_WAITING, std::memory_order_acq_rel)) return false;
    // REREG: partners pushed records out. Look at every case again.
    check_sel_transition(u, SEL_REG);
    o_->sel.store(SEL_REG, std::memory_order_seq_cst);  // pairs with try_resume()'s acquire load
    if (reregister_pushed_out()) return true;
  }
}

/// finish_registered() ends a select that a case decided by its own hand while registering:
/// nobody else could win.
std::size_t select_call::finish_registered() {
  const std::uint32_t done = SEL_DONE | static_cast<std::uint32_t>(winner_);
  check_sel_transition(o_->sel.load(std::memory_order_relaxed), done);  // relaxed: a check
  // seq_cst: pairs with try_resume()'s acquire load and CAS: a partner that claims one of our
  // cells from now on loses and marks it INT_*.
  o_->sel.store(done, std::memory_order_seq_cst);
  for (std::size_t i = 0; i < n_; ++i)
    if (ext_->recs[i].installed) resolve(cs_[i].ch, &ext_->recs[i]);
  if (t_) cancel_park();
  if (send_closed_) throw_send_closed();
  after_partner_woken(won_ctx_);
  if (exc_) std::rethrow_exception(exc_);
  return winner_;
}

bool select_call::any_deferred() const {
  bool any = false;
  for (std::size_t i = 0; i < n_; ++i) any |= ext_->recs[i].deferred;
  return any;
}

/// park_round() is step (3): wait until a partner wins `sel`, wake_at passes or an interrupt
/// comes. poll_only (a default case): withdraw at once instead.
wake_reason select_call::park_round(std::int64_t wake_at, bool poll_only) {
  keep_.reserve(n_);
  for (std::size_t i = 0; i < n_; ++i)
    if (ext_->recs[i].installed) keep_.emplace_back(cs_[i].ch);
  wake_reason why = wake_reason::notified;
  if (poll_only) {
    if (t_) cancel_park();  // withdraw in clean_up() instead of waiting
  } else {
    why = chan_wait(o_, t_ != nullptr, wake_at);
  }
  return why;
}

/// clean_up() is step (4): decide `sel` (a select nobody won is CANCELLED), finish the winning
/// case and take every other record out of its cell. Returns the winner, or none.
std::size_t select_call::clean_up() {
  // acquire: pairs with try_resume()'s winning CAS (release).
  std::uint32_t u = o_->sel.load(std::memory_order_acquire);
  if (u == SEL_WAITING) {
    check_sel_transition(u, SEL_CANCELLED);
    // acq_rel: against try_resume()'s CAS WAITING → DONE: exactly one of them wins; on failure
    // u is the partner's DONE | case (acquire, as above).
    if (o_->sel.compare_exchange_strong(u, SEL_CANCELLED, std::memory_order_acq_rel))
      u = SEL_CANCELLED;
  }
  // A partner still waking our door: its last touch of this tasklet's memory is the store that
  // clears WAKING (see the sel diagram). A few instructions, never across a switch.
  // acquire: pairs with that release store in try_resume().
  while (u & SEL_WAKING) {
    cpu_relax();
    u = o_->sel.load(std::memory_order_acquire);
  }
  STACKLESS_ASSERT_STATE(u == SEL_CANCELLED || (u & ~SEL_CASE_MASK) == SEL_DONE,
                         "channel: a select's wait ends decided or cancelled", u);
  const std::size_t winner = (u & SEL_DONE) ? (u & SEL_CASE_MASK) : none;
  for (std::size_t i = 0; i < n_; ++i) {
    case_rec* rec = &ext_->recs[i];
    if (!rec->installed) continue;
    if (i == winner) {
      if (finish_won(cs_[i].ch, rec, cs_[i].buf, exc_)) cs_[i].closed = true;
    } else {
      resolve(cs_[i].ch, rec);
    }
  }
  keep_.clear();  // every record is out of its cell
  if (winner != none && exc_) std::rethrow_exception(exc_);
  return winner;
}

}  // namespace

std::size_t chan_select(select_case* cs, std::size_t n) {
  const select_cases p = read_cases(cs, n);
  // A plain thread of a fork() child with an inherited scheduler: refused before anything is
  // published (its partner may be a tasklet that never runs again).
  if (!current_tcb() && p.def_i == none) plain_thread_check_fork();
  select_call call(cs, n, current_tcb());
  if (call.in_tasklet() && p.def_i == none) {
    preempt_point();  // a select that may wait is a safe point
    chaos_point();
  }
  std::int64_t backoff = 50'000;
  const std::int64_t wait_deadline = scoped_deadline(p.deadline);  // a timeout_scope may end first

  for (;;) {
    if (std::size_t i = call.poll(); i != none) return i;  // (1)
    // A default over one channel is a plain poll. Over several, the poll above looked at them one
    // at a time: a value may have moved from a channel not yet looked at to one already passed
    // (Go's TestNonblockSelectRace). So register on all of them as a waiting select would — a
    // partner arriving meanwhile finds our record and completes it — and withdraw at once if
    // nothing happened: then nothing was ready at the moment the registration finished.
    if (p.def_i != none && p.channel_cases <= 1) return p.def_i;
    if (p.after_i != none && clock_ns() >= p.deadline) return p.after_i;
    const bool poll_only = p.def_i != none;

    if (call.register_cases()) return call.finish_registered();  // (2)

    // (3) A deferred case is retried after a backoff on the caller's clock: with a host clock
    // (options::clock) that is game time, so a paused game also delays such a retry.
    std::int64_t wake_at = wait_deadline;
    if (call.any_deferred()) wake_at = std::min(wake_at, clock_ns() + backoff);
    const wake_reason why = call.park_round(wake_at, poll_only);

    if (std::size_t i = call.clean_up(); i != none) return i;  // (4)
    if (poll_only) return p.def_i;
    if (why == wake_reason::interrupted) {
      throw_if_interrupted();
      continue;  // an interrupt that cannot be thrown now (unwinding): try again
    }
    scope_check(p.deadline);  // every record is out: a timeout_scope that ended throws now
    if (p.after_i != none && clock_ns() >= p.deadline) return p.after_i;
    backoff = std::min<std::int64_t>(backoff * 2, 10'000'000);  // a deferred case: next round
  }
}

}  // namespace stackless::detail
