// SPDX-License-Identifier: Apache-2.0
// tests/fuzz/fuzz_model.cpp — libFuzzer target: a decoded program run at workers = 1, every
// result compared with a sequential reference model.
//
// The world: three int channels (capacities 0–3 from the input), one mutex, one
// counting_semaphore (0–2 permits), one event, and four actor tasklets. A controller tasklet
// (the only one that decides anything) reads the program one op at a time:
//  - actor ops are posted to an actor's command slot; the actor, spinning on yield() while idle,
//    runs exactly one call — send, send_exception, receive, try_send, try_receive, send_for,
//    receive_for, select (receive on one channel, send on another, optionally default_case),
//    lock, try_lock, try_lock_for, unlock, acquire, try_acquire, try_acquire_for, event wait,
//    wait_for, sleep_for — records its outcome and goes idle again;
//  - controller ops act directly: close, kill, raise_exception, pause, resume, release, event
//    set and clear.
// After each op the controller yields until the world is quiescent: every live actor is idle,
// paused, or parked in an untimed call (tasklet::blocked()). A timed call (the _for forms,
// sleep_for; 20 µs) is waited out before the next op, so the timer never races another op: at
// that point nothing else can happen, and the model treats a timed call as its try form. No
// wall-clock time is compared. (There is no virtual clock to use: the runtime's timers read
// steady_clock; a host clock for pumped schedulers is planned, docs/API.md "Embedding".) The
// actors have all started (reached their first yield) before the first op: a raise_exception()
// before a tasklet's first suspension point is delivered at the first one, inside its first call.
//
// The model is a sequential simulation of the documented rules: per channel a FIFO buffer and
// FIFO queues of parked senders and receivers (a parked select sits in one queue of each of its
// channels and leaves both when one case happens), close() waking parked receivers (a select's
// receive case too) while parked senders' values, a parked select's send case's among them, stay
// receivable; fair FIFO hand-off for the mutex and the semaphore; a manual-reset event; kill /
// raise_exception ending a parked call with nothing taken; pause holding an actor's next command;
// raise_exception and kill resuming a paused actor. Because every actor makes one call per command
// and then only spins, the outcome of each call does not depend on the order in which woken actors
// run — only on the documented hand-off rules — so the comparison is exact and not fragile.
//
// Compared after every op: each actor's last outcome (value received, success / would-block /
// timed out, channel_closed, the exception a sender passed, usage_error, raised, killed), the
// number of raise_exception()s it got while idle, alive / paused; each channel's closing(),
// closed() (exactly: a closed() that lagged behind a cancelled send's cell was a bug this target
// found, fixed in chan_closed()) and balance(); the semaphore's value(); the event's is_set(). The
// one free choice is select() between two ready cases (random, as Go's): the model accepts either
// and follows the one taken. At the end the controller kills the actors; run() must return with no
// live tasklet, and shutdown() must leave no stack outstanding. A mismatch prints the program and
// aborts.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <optional>
#include <stackless/runtime.hpp>
#include <stackless/sync.hpp>
#include <string>
#include <vector>

#include "decoder.hpp"

namespace {

using namespace std::chrono_literals;
using stackless::fuzz::decoder;
namespace this_tasklet = stackless::this_tasklet;

constexpr int n_actors = 4;
constexpr int n_channels = 3;
constexpr int max_ops = 96;
constexpr auto short_wait = 20us;
constexpr int closed_value = -1000000;  // a select's receive case saw a closed channel

enum class op : std::uint8_t {
  // actor ops
  send,
  send_exc,
  recv,
  try_send,
  try_recv,
  send_for,
  recv_for,
  select,
  lock,
  try_lock,
  lock_for,
  unlock,
  acquire,
  try_acquire,
  acquire_for,
  ev_wait,
  ev_wait_for,
  sleep,
  // controller ops
  close,
  kill,
  raise,
  pause,
  resume,
  release,
  ev_set,
  ev_clear,
  count
};
constexpr int first_controller_op = static_cast<int>(op::close);

const char* op_name(op o) {
  static const char* names[] = {
      "send",        "send_exc", "recv",        "try_send", "try_recv", "send_for", "recv_for",
      "select",      "lock",     "try_lock",    "lock_for", "unlock",   "acquire",  "try_acquire",
      "acquire_for", "ev_wait",  "ev_wait_for", "sleep",    "close",    "kill",     "raise",
      "pause",       "resume",   "release",     "ev_set",   "ev_clear"};
  return names[static_cast<int>(o)];
}

bool timed(op o) {
  return o == op::send_for || o == op::recv_for || o == op::lock_for || o == op::acquire_for ||
         o == op::ev_wait_for || o == op::sleep;
}

struct command {
  op o = op::send;
  int actor = 0;
  int ch = 0;   // the channel (the receive case's, for select)
  int ch2 = 0;  // select's send case
  int value = 0;
  bool with_default = false;
};

enum class kind : std::uint8_t { ok, value, fail, closed, exc, usage, raised, killed, selected };

struct outcome {
  kind k = kind::ok;
  int which = 0;  // select: the case index
  int value = 0;
  friend bool operator==(const outcome&, const outcome&) = default;
};

std::string show(const std::optional<outcome>& o) {
  if (!o) return "-";
  static const char* kinds[] = {"ok",    "value",  "fail",   "closed",  "exc",
                                "usage", "raised", "killed", "selected"};
  return std::string(kinds[static_cast<int>(o->k)]) + "(" + std::to_string(o->which) + "," +
         std::to_string(o->value) + ")";
}

struct injected {};  // what raise_exception() delivers
struct sent_error {  // what send_exception() sends
  int value;
};

// ---- the real world ------------------------------------------------------------------------

struct actor_slot {
  std::optional<command> pending;  // controller → actor
  bool busy = false;               // running a command
  command current;
  std::optional<outcome> last;
  int raised_idle = 0;
  bool started = false;  // a raise_exception() before the first suspension point waits for it
  stackless::tasklet<void> handle;
};

struct world {
  std::vector<stackless::channel<int>> ch;
  stackless::mutex m;
  stackless::counting_semaphore sem;
  stackless::event ev;
  actor_slot actors[n_actors];
  explicit world(int permits) : sem(permits) {}
};

outcome execute(world& w, const command& c) {
  auto& ch = w.ch[c.ch];
  switch (c.o) {
    case op::send:
      ch.send(c.value);
      return {kind::ok};
    case op::send_exc:
      ch.send_exception(std::make_exception_ptr(sent_error{c.value}));
      return {kind::ok};
    case op::recv:
      return {kind::value, 0, ch.receive()};
    case op::try_send: {
      int v = c.value;
      return {ch.try_send(v) ? kind::ok : kind::fail};
    }
    case op::try_recv: {
      auto v = ch.try_receive();
      return v ? outcome{kind::value, 0, *v} : outcome{kind::fail};
    }
    case op::send_for: {
      int v = c.value;
      return {ch.send_for(v, short_wait) ? kind::ok : kind::fail};
    }
    case op::recv_for: {
      auto v = ch.receive_for(short_wait);
      return v ? outcome{kind::value, 0, *v} : outcome{kind::fail};
    }
    case op::select: {
      int got = 0;
      auto on_value = [&](std::optional<int> v) { got = v ? *v : closed_value; };
      std::size_t i = c.with_default
                          ? stackless::select(stackless::on_receive(ch, on_value),
                                              stackless::on_send(w.ch[c.ch2], c.value, [] {}),
                                              stackless::default_case([] {}))
                          : stackless::select(stackless::on_receive(ch, on_value),
                                              stackless::on_send(w.ch[c.ch2], c.value, [] {}));
      return {kind::selected, static_cast<int>(i), i == 0 ? got : 0};
    }
    case op::lock:
      w.m.lock();
      return {kind::ok};
    case op::try_lock:
      return {w.m.try_lock() ? kind::ok : kind::fail};
    case op::lock_for:
      return {w.m.try_lock_for(short_wait) ? kind::ok : kind::fail};
    case op::unlock:
      w.m.unlock();
      return {kind::ok};
    case op::acquire:
      w.sem.acquire();
      return {kind::ok};
    case op::try_acquire:
      return {w.sem.try_acquire() ? kind::ok : kind::fail};
    case op::acquire_for:
      return {w.sem.try_acquire_for(short_wait) ? kind::ok : kind::fail};
    case op::ev_wait:
      w.ev.wait();
      return {kind::ok};
    case op::ev_wait_for:
      return {w.ev.wait_for(short_wait) ? kind::ok : kind::fail};
    case op::sleep:
      this_tasklet::sleep_for(short_wait);
      return {kind::ok};
    default:
      std::abort();
  }
}

void actor_main(world& w, int id) {
  actor_slot& a = w.actors[id];
  a.started = true;
  for (;;) {
    try {
      while (!a.pending) this_tasklet::yield();
    } catch (const injected&) {
      ++a.raised_idle;
      continue;
    }
    a.current = *a.pending;
    a.pending.reset();
    a.busy = true;
    outcome r;
    try {
      r = execute(w, a.current);
    } catch (const injected&) {
      r = {kind::raised};
    } catch (const stackless::channel_closed&) {
      r = {kind::closed};
    } catch (const sent_error& e) {
      r = {kind::exc, 0, e.value};
    } catch (const stackless::usage_error&) {
      r = {kind::usage};
    } catch (const stackless::tasklet_exit&) {
      a.last = outcome{kind::killed};
      a.busy = false;
      throw;
    }
    a.last = r;
    a.busy = false;
  }
}

// ---- the model -----------------------------------------------------------------------------

struct m_waiter {
  int actor;
  int kase;  // -1: a plain call; 0 / 1: a select's receive / send case
  int value = 0;
  bool exc = false;
};

struct m_channel {
  std::size_t cap = 0;
  std::deque<std::pair<int, bool>> buf;  // value, is an exception
  std::deque<m_waiter> senders, receivers;
  bool closed = false;
};

struct m_actor {
  bool alive = true, busy = false, paused = false;
  std::optional<command> pending;
  std::optional<outcome> last;
  int raised_idle = 0;
};

struct model {
  m_channel ch[n_channels];
  int owner = -1;  // the mutex; may be a dead actor
  std::deque<int> lock_q;
  int permits = 0;
  std::deque<int> sem_q;
  bool ev_set = false;
  std::vector<int> ev_q;
  m_actor actors[n_actors];

  void withdraw(int a) {
    for (auto& c : ch) {
      std::erase_if(c.senders, [a](const m_waiter& x) { return x.actor == a; });
      std::erase_if(c.receivers, [a](const m_waiter& x) { return x.actor == a; });
    }
    std::erase(lock_q, a);
    std::erase(sem_q, a);
    std::erase(ev_q, a);
  }
  void complete(int a, outcome o) {
    withdraw(a);
    actors[a].busy = false;
    actors[a].last = o;
  }
  // A receiver (plain or a select's receive case) gets a value or an exception.
  void deliver(const m_waiter& r, int v, bool exc) {
    if (exc)
      complete(r.actor, {kind::exc, 0, v});
    else if (r.kase < 0)
      complete(r.actor, {kind::value, 0, v});
    else
      complete(r.actor, {kind::selected, 0, v});
  }
  void sender_done(const m_waiter& s) {
    complete(s.actor, s.kase < 0 ? outcome{kind::ok} : outcome{kind::selected, 1, 0});
  }

  bool send_ready(int c) const {
    const m_channel& x = ch[c];
    return x.closed || !x.receivers.empty() || x.buf.size() < x.cap;
  }
  bool recv_ready(int c) const {
    const m_channel& x = ch[c];
    return x.closed || !x.buf.empty() || !x.senders.empty();
  }
  // send on c, which is ready; the outcome for the sender.
  outcome do_send(int c, int v, bool exc) {
    m_channel& x = ch[c];
    if (x.closed) return {kind::closed};
    if (!x.receivers.empty()) {
      m_waiter r = x.receivers.front();
      x.receivers.pop_front();
      deliver(r, v, exc);
    } else {
      x.buf.emplace_back(v, exc);
    }
    return {kind::ok};
  }
  // receive from c, which is ready: value, exc, or closed (value closed_value).
  outcome do_recv(int c) {
    m_channel& x = ch[c];
    std::pair<int, bool> got;
    if (!x.buf.empty()) {
      got = x.buf.front();
      x.buf.pop_front();
      if (!x.senders.empty()) {
        m_waiter s = x.senders.front();
        x.senders.pop_front();
        x.buf.emplace_back(s.value, s.exc);
        sender_done(s);
      }
    } else if (!x.senders.empty()) {
      m_waiter s = x.senders.front();
      x.senders.pop_front();
      got = {s.value, s.exc};
      sender_done(s);
    } else {
      return {kind::closed};
    }
    if (got.second) return {kind::exc, 0, got.first};
    return {kind::value, 0, got.first};
  }

  // Runs command c of actor a (idle, not paused). `real` is the real outcome, for select's
  // choice between two ready cases only. Returns the outcome, or nullopt when a parks.
  std::optional<outcome> run(const command& c, const std::optional<outcome>& real) {
    const int a = c.actor;
    m_channel& x = ch[c.ch];
    switch (c.o) {
      case op::send:
      case op::send_exc: {
        const bool exc = c.o == op::send_exc;
        if (send_ready(c.ch)) return do_send(c.ch, c.value, exc);
        x.senders.push_back({a, -1, c.value, exc});
        return std::nullopt;
      }
      case op::try_send:
      case op::send_for:
        if (send_ready(c.ch)) return do_send(c.ch, c.value, false);
        return outcome{kind::fail};
      case op::recv:
        if (recv_ready(c.ch)) return do_recv(c.ch);
        x.receivers.push_back({a, -1});
        return std::nullopt;
      case op::try_recv:
      case op::recv_for:
        if (recv_ready(c.ch)) return do_recv(c.ch);
        return outcome{kind::fail};
      case op::select: {
        const bool r0 = recv_ready(c.ch), r1 = send_ready(c.ch2);
        int pick = -1;
        if (r0 && r1) {
          // Either case may be chosen: follow the real one (a closed send case throws
          // channel_closed; a received exception is thrown).
          pick =
              real && ((real->k == kind::selected && real->which == 1) || real->k == kind::closed)
                  ? 1
                  : 0;
        } else if (r0) {
          pick = 0;
        } else if (r1) {
          pick = 1;
        }
        if (pick == 0) {
          outcome o = do_recv(c.ch);
          if (o.k == kind::exc) return o;
          return outcome{kind::selected, 0, o.k == kind::closed ? closed_value : o.value};
        }
        if (pick == 1) {
          outcome o = do_send(c.ch2, c.value, false);
          if (o.k == kind::closed) return o;
          return outcome{kind::selected, 1, 0};
        }
        if (c.with_default) return outcome{kind::selected, 2, 0};
        x.receivers.push_back({a, 0});
        ch[c.ch2].senders.push_back({a, 1, c.value, false});
        return std::nullopt;
      }
      case op::lock:
        if (owner == a) return outcome{kind::usage};
        if (owner < 0) {
          owner = a;
          return outcome{kind::ok};
        }
        lock_q.push_back(a);
        return std::nullopt;
      case op::try_lock:
      case op::lock_for:
        if (owner < 0) {
          owner = a;
          return outcome{kind::ok};
        }
        if (owner == a && c.o == op::lock_for) return outcome{kind::usage};
        return outcome{kind::fail};
      case op::unlock:
        if (owner != a) return outcome{kind::usage};
        if (lock_q.empty()) {
          owner = -1;
        } else {
          owner = lock_q.front();
          lock_q.pop_front();
          complete(owner, {kind::ok});
        }
        return outcome{kind::ok};
      case op::acquire:
        if (permits > 0) {
          --permits;
          return outcome{kind::ok};
        }
        sem_q.push_back(a);
        return std::nullopt;
      case op::try_acquire:
      case op::acquire_for:
        if (permits > 0) {
          --permits;
          return outcome{kind::ok};
        }
        return outcome{kind::fail};
      case op::ev_wait:
        if (ev_set) return outcome{kind::ok};
        ev_q.push_back(a);
        return std::nullopt;
      case op::ev_wait_for:
        return outcome{ev_set ? kind::ok : kind::fail};
      case op::sleep:
        return outcome{kind::ok};
      default:
        std::abort();
    }
  }

  void start(const command& c, const std::optional<outcome>& real) {
    m_actor& m = actors[c.actor];
    m.busy = true;
    if (auto o = run(c, real)) {
      m.busy = false;
      m.last = *o;
    }
  }

  void close(int c) {
    m_channel& x = ch[c];
    x.closed = true;
    std::deque<m_waiter> rs;
    rs.swap(x.receivers);
    for (const m_waiter& r : rs)
      complete(r.actor,
               r.kase < 0 ? outcome{kind::closed} : outcome{kind::selected, 0, closed_value});
    // Parked senders stay, a parked select's send case among them: their values are still
    // received.
  }
  int balance(int c) const {
    return static_cast<int>(ch[c].senders.size()) - static_cast<int>(ch[c].receivers.size());
  }
};

// ---- the controller ------------------------------------------------------------------------

struct run_state {
  world* w = nullptr;
  model m;
  std::string trace;
  int step = 0;
  bool tracing = std::getenv("STACKLESS_FUZZ_TRACE") != nullptr;  // print every program run
};

[[noreturn]] void fail(run_state& st, const std::string& what) {
  std::fprintf(stderr, "fuzz_model: MISMATCH at op %d: %s\nprogram:\n%s\n", st.step, what.c_str(),
               st.trace.c_str());
  std::fflush(stderr);
  std::abort();
}

bool quiescent(world& w) {
  for (actor_slot& a : w.actors) {
    if (!a.handle.alive() || a.handle.paused()) continue;
    if (a.pending) return false;
    if (a.busy && (timed(a.current.o) || !a.handle.blocked())) return false;
  }
  return true;
}

void settle(run_state& st) {
  const auto give_up = std::chrono::steady_clock::now() + 2s;
  for (long i = 0; !quiescent(*st.w); ++i) {
    this_tasklet::yield();
    if ((i & 1023) == 0 && std::chrono::steady_clock::now() > give_up)
      fail(st, "no quiescence after 2 s (a lost wake-up or a timer that never fired)");
  }
}

void compare(run_state& st) {
  world& w = *st.w;
  model& m = st.m;
  for (int i = 0; i < n_actors; ++i) {
    actor_slot& a = w.actors[i];
    m_actor& b = m.actors[i];
    if (a.last != b.last)
      fail(st, "actor " + std::to_string(i) + " last outcome: real " + show(a.last) + ", model " +
                   show(b.last));
    if (a.raised_idle != b.raised_idle)
      fail(st, "actor " + std::to_string(i) + " raised while idle: real " +
                   std::to_string(a.raised_idle) + ", model " + std::to_string(b.raised_idle));
    if (a.handle.alive() != b.alive || (b.alive && a.handle.paused() != b.paused))
      fail(st, "actor " + std::to_string(i) + " alive/paused differ");
    if (b.alive && !b.paused && b.busy != a.busy)
      fail(st, "actor " + std::to_string(i) + " parked in the model: " + std::to_string(b.busy));
  }
  for (int c = 0; c < n_channels; ++c) {
    const m_channel& x = m.ch[c];
    const bool closed = x.closed && x.buf.empty() && x.senders.empty();
    const bool real_closed = w.ch[c].closed();
    if (w.ch[c].closing() != x.closed || real_closed != closed)
      fail(st, "channel " + std::to_string(c) + " closing/closed: real " +
                   std::to_string(w.ch[c].closing()) + "/" + std::to_string(real_closed) +
                   ", model " + std::to_string(x.closed) + "/" + std::to_string(closed));
    if (w.ch[c].balance() != m.balance(c))
      fail(st, "channel " + std::to_string(c) + " balance: real " +
                   std::to_string(w.ch[c].balance()) + ", model " + std::to_string(m.balance(c)));
  }
  if (w.sem.value() != m.permits)
    fail(st, "semaphore value: real " + std::to_string(w.sem.value()) + ", model " +
                 std::to_string(m.permits));
  if (w.ev.is_set() != m.ev_set) fail(st, "event is_set differs");
}

// An actor op: posted to the actor (if it can take it) and mirrored in the model.
void actor_op(run_state& st, const command& c) {
  world& w = *st.w;
  m_actor& b = st.m.actors[c.actor];
  if (!b.alive || b.busy || b.pending) {
    st.trace += "  (skipped: actor busy, dead, or holding a command)\n";
    return;
  }
  w.actors[c.actor].pending = c;
  if (b.paused) {
    b.pending = c;
    return;
  }
  settle(st);
  st.m.start(c, w.actors[c.actor].last);
}

void resume_model(run_state& st, int a) {
  m_actor& b = st.m.actors[a];
  b.paused = false;
  if (b.pending) {
    command c = *b.pending;
    b.pending.reset();
    settle(st);
    st.m.start(c, st.w->actors[a].last);
  } else {
    settle(st);
  }
}

void controller_op(run_state& st, op o, int a, int c) {
  world& w = *st.w;
  model& m = st.m;
  m_actor& b = m.actors[a];
  actor_slot& r = w.actors[a];
  switch (o) {
    case op::close:
      w.ch[c].close();
      m.close(c);
      settle(st);
      break;
    case op::kill:
      r.handle.kill();
      if (b.alive) {
        if (b.busy) {
          m.withdraw(a);
          b.last = outcome{kind::killed};
        }
        b.alive = false;
        b.busy = b.paused = false;
        b.pending.reset();
      }
      settle(st);
      break;
    case op::raise: {
      std::optional<outcome> got;
      try {
        r.handle.raise_exception(std::make_exception_ptr(injected{}));
      } catch (const stackless::usage_error&) {
        got = outcome{kind::usage};
      }
      if (!b.alive) {
        if (!got) fail(st, "raise_exception on a dead tasklet did not throw usage_error");
        break;
      }
      if (got) fail(st, "raise_exception on a live tasklet threw usage_error");
      if (b.busy) {
        m.withdraw(a);
        b.busy = false;
        b.last = outcome{kind::raised};
        settle(st);
      } else {
        ++b.raised_idle;
        if (b.paused) {
          resume_model(st, a);  // delivery resumes a paused tasklet
        } else {
          settle(st);
        }
      }
      break;
    }
    case op::pause: {
      bool usage = false;
      if (b.alive && b.paused) break;  // pausing twice: not compared
      try {
        r.handle.pause();
      } catch (const stackless::usage_error&) {
        usage = true;
      }
      const bool expect_usage = !b.alive || b.busy;
      if (usage != expect_usage)
        fail(st, std::string("pause(): usage_error ") + (usage ? "thrown" : "not thrown"));
      if (!usage) b.paused = true;
      settle(st);
      break;
    }
    case op::resume: {
      bool usage = false;
      try {
        r.handle.resume();
      } catch (const stackless::usage_error&) {
        usage = true;
      }
      if (usage != !b.alive)
        fail(st, std::string("resume(): usage_error ") + (usage ? "thrown" : "not thrown"));
      if (b.alive && b.paused)
        resume_model(st, a);
      else
        settle(st);
      break;
    }
    case op::release:
      w.sem.release();
      if (m.sem_q.empty()) {
        ++m.permits;
      } else {
        int x = m.sem_q.front();
        m.sem_q.pop_front();
        m.complete(x, {kind::ok});
      }
      settle(st);
      break;
    case op::ev_set: {
      w.ev.set();
      m.ev_set = true;
      std::vector<int> q;
      q.swap(m.ev_q);
      for (int x : q) m.complete(x, {kind::ok});
      settle(st);
      break;
    }
    case op::ev_clear:
      w.ev.clear();
      m.ev_set = false;
      settle(st);
      break;
    default:
      std::abort();
  }
}

void controller(run_state& st, decoder& in) {
  world& w = *st.w;
  int next_value = 1;
  for (st.step = 0; st.step < max_ops && !in.done(); ++st.step) {
    const op o = static_cast<op>(in.below(static_cast<unsigned>(op::count)));
    const int a = static_cast<int>(in.below(n_actors));
    if (static_cast<int>(o) < first_controller_op) {
      command c;
      c.o = o;
      c.actor = a;
      c.ch = static_cast<int>(in.below(n_channels));
      c.ch2 = (c.ch + 1 + static_cast<int>(in.below(n_channels - 1))) % n_channels;
      c.with_default = in.flag();
      c.value = next_value++;
      st.trace +=
          std::to_string(st.step) + ": actor " + std::to_string(a) + " " + op_name(o) + " ch" +
          std::to_string(c.ch) +
          (o == op::select ? " ch2 " + std::to_string(c.ch2) + (c.with_default ? " default" : "")
                           : std::string()) +
          " v" + std::to_string(c.value) + "\n";
      actor_op(st, c);
    } else {
      const int c = static_cast<int>(in.below(n_channels));
      st.trace += std::to_string(st.step) + ": " + op_name(o) + " actor " + std::to_string(a) +
                  (o == op::close ? " ch" + std::to_string(c) : std::string()) + "\n";
      controller_op(st, o, a, c);
    }
    compare(st);
    if (st.tracing) {
      st.trace += "   ->";
      for (const m_actor& b : st.m.actors)
        st.trace += " " + show(b.last) + (b.alive ? b.busy ? "[parked]" : "" : "[dead]");
      st.trace += "\n";
    }
  }
  // Teardown: every actor is killed (a paused one too); parked calls end "killed".
  st.trace += "end: kill all\n";
  for (int a = 0; a < n_actors; ++a) controller_op(st, op::kill, a, 0);
  compare(st);
  for (auto& a : w.actors)
    if (a.handle.alive()) fail(st, "an actor outlived kill()");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  decoder in(data, size);
  stackless::options o;
  o.workers = 1;
  o.deadlock_grace = 50ms;
  std::size_t caps[n_channels];
  for (auto& c : caps) c = in.below(4);
  const int permits = static_cast<int>(in.below(3));
  run_state st;
  for (int c = 0; c < n_channels; ++c) {
    st.m.ch[c].cap = caps[c];
    st.trace += "ch" + std::to_string(c) + " capacity " + std::to_string(caps[c]) + "\n";
  }
  st.m.permits = permits;
  st.trace += "permits " + std::to_string(permits) + "\n";
  {
    stackless::scheduler s(o);
    {
      world w(permits);
      for (std::size_t c : caps) w.ch.emplace_back(c);
      st.w = &w;
      auto ctl = s.spawn([&] {
        for (int a = 0; a < n_actors; ++a)
          w.actors[a].handle = stackless::spawn([&w, a] { actor_main(w, a); });
        for (auto& a : w.actors)
          while (!a.started) this_tasklet::yield();
        controller(st, in);
      });
      s.run();
      if (ctl.alive()) fail(st, "run() returned with the controller alive");
      ctl.join();  // rethrows what escaped the controller (nothing should)
      if (s.stats().live != 0) fail(st, "run() returned with live tasklets");
      for (auto& a : w.actors) a.handle = {};
    }
    s.shutdown();
    const auto stats = s.stats();
    if (stats.live != 0 || stats.stacks_outstanding != 0)
      fail(st, "after shutdown: live " + std::to_string(stats.live) + ", stacks outstanding " +
                   std::to_string(stats.stacks_outstanding));
  }
  if (st.tracing) std::fprintf(stderr, "%s\n", st.trace.c_str());
  return 0;
}
