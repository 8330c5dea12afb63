// SPDX-License-Identifier: Apache-2.0
// runtime/src/netpoll.cpp — the netpoller: one edge-triggered epoll set per scheduler, polled by
// the scheduler's own workers (not a side thread), and io_wait(), the wait of every socket
// operation. After Go's netpoll.go / netpoll_epoll.go and findRunnable (proc.go), and tokio's
// I/O driver.
//
// Who polls (so that readiness is seen whoever is busy or asleep):
//   1. a worker that finds nothing runnable polls without blocking before it steals or parks
//      (scheduler_impl::search(), worker.cpp) — unless another worker is blocked in epoll_wait,
//      which gets the events anyway;
//   2. a worker going to sleep while tasklets wait for I/O and no other worker is blocked in
//      epoll_wait becomes the *blocker*: it sleeps in epoll_wait (until the earliest timer)
//      instead of on its futex (idle.cpp, sleep_worker()); unpark() reaches it through the
//      eventfd in the same set (kick());
//   3. a busy worker polls at its fairness tick, and the monitor thread (when it runs) at its
//      tick, once nobody has polled for poll_interval_ns (10 ms; Go's sysmon) — so a scheduler
//      whose workers all run long tasklets, or a fork/join job that never lets its worker reach
//      the scheduler side (1.), still serves I/O; at a tick where a park's unlock step is
//      pending (it may hold a slot's lock) the poll is made right after that step (fair_pick(),
//      worker.cpp);
//   4. a pumped scheduler (run()/run_for()) polls without blocking when it runs out of work.
//   Whoever polls wakes the waiters: a worker queues them locally, anyone else injects them.
//
// Registration: an fd is added to the set once (EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET) when a
// tasklet first waits on it; the event's data is (generation << 32 | slot). Slots are never freed
// while the netpoller lives and a slot's generation changes when its registration ends, so an
// event already taken from the kernel for an ended registration — or for an fd number since
// reused — names a generation that no longer matches and wakes nobody (Go's pollDesc.fdseq).
// The netpoller is reference counted (the scheduler and each registration hold one): a socket
// may outlive its scheduler, and the epoll fd stays valid until its last registration ends.
//
// Invariants (each slot's fields are guarded by its lock):
//  - A waiter record is on a slot's list only while its tasklet is parked in io_wait() on it
//    (or about to be); nwait_ counts the records on every list.
//  - ready bit i is set only when an edge for interest i arrived while nobody waited; a waiter
//    consumes it instead of parking. Together with the lock this is the no-lost-wake-up rule:
//    the edge either finds the record or leaves the bit the waiter checks under the same lock.
//  - An edge wakes *every* waiter of that interest (not one): each retries its syscall, and the
//    ones that get EAGAIN wait for the next edge — waking one could leave data that it did not
//    read unseen by the others until another edge, which may never come.
//  - At most one worker is the blocker (blocker, CAS from null); it leaves the role before it
//    returns from sleep_worker().
//
// Memory orders:
//  - nwait_: incremented seq_cst by the waiter under the slot lock; read relaxed by the pollers
//    as a hint. A poller that misses a new waiter loses nothing: the waiter's own worker goes
//    through search() (polls) and park_worker() (becomes the blocker, or finds one) after the
//    park, and its own increment is visible to it.
//  - blocker vs. park_word (a Dekker pair): the sleeper CASes blocker (seq_cst), fences, then
//    reads its park_word; unpark() stores park_word, fences, then reads blocker and kicks if it
//    names that worker (idle.cpp). One of them sees the other: no sleep through an unpark.
//  - The chunk table: a chunk pointer is stored (release) before any slot in it is handed out;
//    at() loads it with acquire. Slot contents are under the slot lock.
//
// Rejected: a side thread that polls and hands events to the workers (a thread hop and a
// context switch on every readiness, and a thread to wake for every remote wake); level-
// triggered registration (every ready fd would be reported to every poll until drained, and the
// registration would have to change with every wait); one-shot registration (an epoll_ctl per
// wait, which costs as much as the read it waits for).
#include "stackless/runtime/internal/netpoll.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include "fence.hpp"
#include "netpoller.hpp"
#include "scheduler_impl.hpp"
#include "trace.hpp"

namespace stackless::detail {

namespace {
std::system_error errno_error(int e, const std::string& what) {
  return std::system_error(e, std::generic_category(), what);
}

timespec to_timespec(std::int64_t ns) noexcept {
  if (ns < 0) ns = 0;
  return timespec{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

// epoll_pwait2 (Linux 5.11) takes a timespec: a timer due in 300 µs is not rounded up to 1 ms.
// Where the kernel lacks it, epoll_wait with the timeout rounded up (never early).
std::atomic<bool> no_pwait2{false};  // relaxed: set once, read as a hint

int epoll_wait_until(int epfd, epoll_event* ev, int max, std::int64_t deadline, bool block) {
  if (!block || deadline != INT64_MAX) {
    std::int64_t rem = block ? deadline - now_ns() : 0;
    if (!no_pwait2.load(std::memory_order_relaxed)) {
      timespec ts = to_timespec(rem);
      int n = epoll_pwait2(epfd, ev, max, &ts, nullptr);
      if (n >= 0 || errno != ENOSYS) return n;
      no_pwait2.store(true, std::memory_order_relaxed);
    }
    std::int64_t ms = rem <= 0 ? 0 : (rem + 999'999) / 1'000'000;
    return epoll_wait(epfd, ev, max, static_cast<int>(std::min<std::int64_t>(ms, INT32_MAX)));
  }
  return epoll_wait(epfd, ev, max, -1);
}
}  // namespace

// ---- the netpoller ---------------------------------------------------------------------------

netpoller::netpoller() : chunks_(new std::atomic<poll_slot*>[max_chunks]) {
  for (unsigned i = 0; i < max_chunks; ++i) chunks_[i].store(nullptr, std::memory_order_relaxed);
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) throw errno_error(errno, "stackless: netpoller: epoll_create1");
  efd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd_ < 0) {
    int e = errno;
    ::close(epfd_);
    throw errno_error(e, "stackless: netpoller: eventfd");
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLET;
  ev.data.u64 = kick_key;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, efd_, &ev) < 0) {
    int e = errno;
    ::close(efd_);
    ::close(epfd_);
    throw errno_error(e, "stackless: netpoller: epoll_ctl(eventfd)");
  }
}

netpoller::~netpoller() {
  ::close(efd_);
  ::close(epfd_);
  for (unsigned i = 0; i < max_chunks; ++i) delete[] chunks_[i].load(std::memory_order_relaxed);
}

void netpoller::release() noexcept {
  // acq_rel: the last release sees every other holder's use before it deletes.
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

int netpoller::add(int fd, std::uint32_t* slot, std::uint32_t* gen) {
  poll_slot* d = nullptr;
  {
    std::lock_guard g(mu_);
    if (free_) {
      d = free_;
      free_ = d->next_free;
    } else {
      if ((nslots_ >> chunk_shift) >= max_chunks) {
        errno = ENOSPC;
        return -1;
      }
      if ((nslots_ & chunk_mask) == 0) {
        auto* c = new poll_slot[chunk_mask + 1];
        for (std::uint32_t i = 0; i <= chunk_mask; ++i) c[i].index = nslots_ + i;
        // release: pairs with the acquire in at(); the slots' indexes are visible with it.
        chunks_[nslots_ >> chunk_shift].store(c, std::memory_order_release);
      }
      d = &at(nslots_++);
    }
  }
  d->lk.lock();
  d->registered = true;
  d->fd = fd;
  d->ready = 0;
  d->closing = false;
  const std::uint32_t g = d->gen;
  d->lk.unlock();

  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = (static_cast<std::uint64_t>(g) << 32) | d->index;
  int rc = epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
  // An fd registered before and closed without io_release() (its number reused since): the set
  // still names the old open file only if it is still open elsewhere (a dup); take it over.
  if (rc < 0 && errno == EEXIST) rc = epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev);
  if (rc < 0) {
    int e = errno;
    d->lk.lock();
    d->registered = false;
    ++d->gen;
    d->lk.unlock();
    std::lock_guard g2(mu_);
    d->next_free = free_;
    free_ = d;
    errno = e;
    return -1;
  }
  nreg_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count for stats()
  *slot = d->index;
  *gen = g;
  return 0;
}

void netpoller::remove(std::uint32_t slot, std::uint32_t gen, int fd) noexcept {
  poll_slot& d = at(slot);
  d.lk.lock();
  if (d.gen != gen || !d.registered) {
    d.lk.unlock();
    return;
  }
  d.registered = false;
  ++d.gen;  // from here on, events of this registration wake nobody
  d.ready = 0;
  d.closing = false;
  std::uint64_t n = 0;
  for (wait_list& q : d.waiters) {
    while (waiter* w = q.pop_front()) {
      w->data = 1;  // closed: read by the woken tasklet after its wake (the door orders it)
      wake(*w);
      ++n;
    }
  }
  d.lk.unlock();
  if (n) waiter_gone(n);
  // EBADF/ENOENT when the fd was closed already (the kernel dropped it): nothing to undo.
  epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  nreg_.fetch_sub(1, std::memory_order_relaxed);  // relaxed: a count for stats()
  std::lock_guard g(mu_);
  d.next_free = free_;
  free_ = &d;
}

std::size_t netpoller::poll(std::int64_t deadline_ns, bool block) {
  epoll_event ev[128];
  std::size_t woke = 0;
  for (;;) {
    int n = epoll_wait_until(epfd_, ev, 128, deadline_ns, block);
    last_poll.store(now_ns(), std::memory_order_relaxed);  // relaxed: a hint (see the header)
    polls.fetch_add(1, std::memory_order_relaxed);         // relaxed: a count for stats()
    if (n <= 0) return woke;                               // timeout, EINTR
    woke += dispatch(ev, n);
    if (n < 128) return woke;
    block = false;  // a full batch: take the rest without waiting
  }
}

std::size_t netpoller::dispatch(const epoll_event* ev, int n) noexcept {
  std::size_t woke = 0;
  events.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);  // a count
  for (int i = 0; i < n; ++i) {
    const std::uint64_t key = ev[i].data.u64;
    if (key == kick_key) {
      std::uint64_t v;
      while (::read(efd_, &v, sizeof v) > 0) {
      }
      continue;
    }
    const std::uint32_t e = ev[i].events;
    unsigned bits = 0;
    if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) bits |= 1u << 0;
    if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) bits |= 1u << 1;
    poll_slot& d = at(static_cast<std::uint32_t>(key));
    d.lk.lock();
    if (d.gen != static_cast<std::uint32_t>(key >> 32) || !d.registered) {
      d.lk.unlock();  // an ended registration's event: nobody to wake
      continue;
    }
    std::uint64_t popped = 0;
    for (unsigned b = 0; b < 2; ++b) {
      if (!(bits & (1u << b))) continue;
      if (d.waiters[b].empty()) {
        d.ready |= static_cast<std::uint8_t>(1u << b);
        continue;
      }
      while (waiter* w = d.waiters[b].pop_front()) {
        w->data = 0;
        woke += wake(*w);
        ++popped;
      }
    }
    d.lk.unlock();
    if (popped) waiter_gone(popped);
  }
  return woke;
}

void netpoller::kick() noexcept {
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t r = ::write(efd_, &one, sizeof one);  // EAGAIN: already pending
}

// ---- the scheduler's side --------------------------------------------------------------------

netpoller* scheduler_impl::netpoll() {
  // acquire: pairs with the release CAS below (the netpoller is fully built when seen).
  if (netpoller* np = np_.load(std::memory_order_acquire)) return np;
  auto* fresh = new netpoller();  // may throw std::system_error
  netpoller* expected = nullptr;
  // acq_rel: release publishes `fresh`; acquire (on failure) sees the winner's.
  if (np_.compare_exchange_strong(expected, fresh, std::memory_order_acq_rel)) return fresh;
  fresh->release();
  return expected;
}

bool scheduler_impl::poll_io() {
  netpoller* np = np_.load(std::memory_order_acquire);  // pairs with netpoll()'s CAS
  // relaxed: hints — see the memory orders at the top of the file.
  if (!np || np->waiting() == 0 || np->blocker.load(std::memory_order_relaxed)) return false;
  return traced_poll(*this, *np, 0, false) > 0;
}

bool scheduler_impl::poll_io_if_due() {
  netpoller* np = np_.load(std::memory_order_acquire);  // pairs with netpoll()'s CAS
  // relaxed: hints, as above.
  if (!np || np->waiting() == 0 || np->blocker.load(std::memory_order_relaxed)) return false;
  if (now_ns() - np->last_poll.load(std::memory_order_relaxed) < netpoller::poll_interval_ns)
    return false;
  return traced_poll(*this, *np, 0, false) > 0;
}

void scheduler_impl::want_poller() {
  // A tasklet just began to wait for I/O and no worker sleeps in epoll_wait: an idle worker
  // becomes the blocker (it spins, finds nothing and sleeps in epoll_wait), so readiness is seen
  // even if this worker stays busy. relaxed: hints; the worst case is the fairness-tick poll.
  if (nworkers > 1 && nidle.load(std::memory_order_relaxed) > 0) wake_one();
}

// ---- io_wait ---------------------------------------------------------------------------------

namespace {

// A plain thread's stop requests reach its ppoll through this eventfd (made on first use).
struct thread_stop_fd {
  int fd = -1;
  ~thread_stop_fd() {
    if (fd >= 0) ::close(fd);
  }
};
thread_local thread_stop_fd tl_stop_fd;
[[gnu::noinline]] int stop_fd() {
  if (tl_stop_fd.fd < 0) {
    tl_stop_fd.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (tl_stop_fd.fd < 0) throw errno_error(errno, "stackless: io wait: eventfd");
  }
  return tl_stop_fd.fd;
}

struct stop_writer {
  int fd;
  void operator()() const noexcept {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(fd, &one, sizeof one);
  }
};

// wait_thread(): io_wait() on a plain thread — it may block, so it blocks in ppoll.
io_status wait_thread(int fd, io_interest what, std::int64_t deadline, const std::stop_token* st) {
  pollfd p[2] = {{fd, static_cast<short>(what == io_interest::read ? POLLIN : POLLOUT), 0},
                 {-1, POLLIN, 0}};
  nfds_t n = 1;
  std::optional<std::stop_callback<stop_writer>> cb;
  if (st && st->stop_possible()) {
    if (st->stop_requested()) return io_status::cancelled;
    p[1].fd = stop_fd();
    n = 2;
    cb.emplace(*st, stop_writer{p[1].fd});
  }
  io_status out = io_status::ready;
  for (;;) {
    timespec ts{};
    timespec* tp = nullptr;
    if (deadline != no_deadline) {
      std::int64_t rem = deadline - now_ns();
      if (rem <= 0) {
        out = io_status::timeout;
        break;
      }
      ts = to_timespec(rem);
      tp = &ts;
    }
    int r = ppoll(p, n, tp, nullptr);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw errno_error(errno, "stackless: io wait: ppoll");
    }
    if (r == 0) continue;  // the loop re-checks the deadline
    if (n == 2 && p[1].revents) out = io_status::cancelled;
    break;  // POLLERR/POLLHUP/POLLNVAL too: the caller's syscall reports them
  }
  if (n == 2) {
    cb.reset();  // no write after this (its destructor waits for a running callback)
    std::uint64_t v;
    while (::read(p[1].fd, &v, sizeof v) > 0) {
    }
  }
  return out;
}

}  // namespace

namespace {
// snapshot is what io_wait() needs of a registration, read under its lock: after that the
// registration may be closed or released by another tasklet, and the slot's generation check
// (under the slot's lock) tells.
struct snapshot {
  netpoller* np;
  std::uint32_t slot;
  std::uint32_t gen;
  bool unpollable;
};

// release_locked() ends reg's registration; reg.lk is held. Returns the netpoller to release
// (after the lock: release() may destroy it).
netpoller* release_locked(io_registration& reg, int fd) noexcept {
  reg.unpollable = false;
  netpoller* np = std::exchange(reg.np, nullptr);
  if (np) np->remove(reg.slot, reg.gen, fd);
  return np;
}

snapshot register_with(scheduler_impl& s, io_registration& reg, int fd, const char* op) {
  netpoller* np = s.netpoll();
  std::lock_guard g(reg.lk);
  if (reg.np == np || reg.unpollable) return {np, reg.slot, reg.gen, reg.unpollable};
  if (netpoller* old = release_locked(reg, fd)) old->release();  // it moves to this scheduler
  if (np->add(fd, &reg.slot, &reg.gen) < 0) {
    int e = errno;
    if (e == EPERM) {  // a regular file or a directory: always ready, the syscall blocks
      reg.unpollable = true;
      return {np, 0, 0, true};
    }
    throw errno_error(e,
                      std::string("stackless: ") + op + ": cannot poll fd " + std::to_string(fd));
  }
  np->acquire();
  reg.np = np;
  return {np, reg.slot, reg.gen, false};
}
}  // namespace

void io_register(io_registration& reg, int fd, const char* op) {
  if (tcb* t = current_tcb()) register_with(*t->sched, reg, fd, op);
}

io_status io_wait(io_registration& reg, int fd, io_interest what, std::int64_t deadline,
                  const std::stop_token* st, const char* op) {
  tcb* t = current_tcb();
  if (!t) return wait_thread(fd, what, deadline, st);
  scheduler_impl& s = *t->sched;
  const snapshot r = register_with(s, reg, fd, op);
  if (r.unpollable) return io_status::ready;
  netpoller* np = r.np;
  poll_slot& d = np->at(r.slot);
  const unsigned i = static_cast<unsigned>(what);
  d.lk.lock();
  if (d.gen != r.gen || d.closing) {
    d.lk.unlock();
    return io_status::closed;
  }
  if (d.ready & (1u << i)) {  // an edge nobody consumed: retry the syscall first
    d.ready &= static_cast<std::uint8_t>(~(1u << i));
    d.lk.unlock();
    return io_status::ready;
  }
  wait_here wh(op, static_cast<std::uint64_t>(fd));
  waiter* w = wh.record();
  w->data = 0;
  w->notify = nullptr;
  d.waiters[i].push_back(w);
  np->waiter_added();
  // relaxed: a hint (want_poller()).
  if (!np->blocker.load(std::memory_order_relaxed)) s.want_poller();
  wake_reason wr = wh.wait([&d] { d.lk.unlock(); }, deadline, st);
  if (wr != wake_reason::notified) {
    d.lk.lock();
    if (d.waiters[i].erase_if_linked(w)) np->waiter_gone();
    d.lk.unlock();
  }
  switch (wr) {
    case wake_reason::notified:
      return w->data ? io_status::closed : io_status::ready;
    case wake_reason::timeout:
      return io_status::timeout;
    case wake_reason::cancelled:
      return io_status::cancelled;
    default:
      return io_status::interrupted;
  }
}

void io_close(io_registration& reg) noexcept {
  reg.lk.lock();
  netpoller* np = reg.np;
  const std::uint32_t slot = reg.slot, gen = reg.gen;
  // The netpoller stays alive after the unlock: reg's reference on it is dropped only by
  // io_release(), which the caller makes after this call.
  reg.lk.unlock();
  if (!np) return;
  poll_slot& d = np->at(slot);
  std::uint64_t n = 0;
  d.lk.lock();
  if (d.gen == gen && d.registered) {
    d.closing = true;
    for (wait_list& q : d.waiters) {
      while (waiter* w = q.pop_front()) {
        w->data = 1;  // closed
        wake(*w);
        ++n;
      }
    }
  }
  d.lk.unlock();
  if (n) np->waiter_gone(n);
}

void io_release(io_registration& reg, int fd) noexcept {
  reg.lk.lock();
  netpoller* np = release_locked(reg, fd);
  reg.lk.unlock();
  if (np) np->release();
}

external_wait::external_wait() noexcept : sched_(nullptr) {
  if (tcb* t = current_tcb()) {
    sched_ = t->sched;
    // seq_cst: read by quiescent() (seq_cst) before it declares a deadlock.
    t->sched->external_waits.fetch_add(1, std::memory_order_seq_cst);
  }
}

external_wait::~external_wait() {
  if (sched_)
    static_cast<scheduler_impl*>(sched_)->external_waits.fetch_sub(1, std::memory_order_seq_cst);
}

std::uint64_t io_waiters() noexcept {
  worker* w = current_worker();
  tcb* t = current_tcb();
  scheduler_impl* s = t ? t->sched : (w ? w->sched : nullptr);
  if (!s) return 0;
  netpoller* np = s->np_.load(std::memory_order_acquire);  // pairs with netpoll()'s CAS
  return np ? np->waiting() : 0;
}

}  // namespace stackless::detail
