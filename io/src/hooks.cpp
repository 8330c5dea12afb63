// SPDX-License-Identifier: Apache-2.0
// io/src/hooks.cpp — the hooks behind the interposers (interpose.cpp, hooks_abi.hpp):
// stacklesslib's monkey-patching in C++. Called from a tasklet, a blocking call on a socket or a
// pipe parks the tasklet, not its worker; called from anywhere else it is libc's. After Go's
// internal/poll.FD (try the syscall; on EAGAIN wait for readiness, then retry), libgo's and
// Photon's hooks (a per-fd table that keeps the user's view of O_NONBLOCK).
//
// Which fds: those made by a hooked socket(), socketpair(), accept(), accept4(), pipe(), pipe2()
// (and their dup*() copies) — "managed" fds. Any other fd (made before the hooks were active, by
// open(), eventfd(), or inside libc) is passed through untouched: it blocks its worker as it
// would without the hooks. io::wait_readable() serves such fds.
//
// Per managed fd (fd_state, in a table indexed by fd number):
//  - USER_NB: the user asked for O_NONBLOCK (SOCK_NONBLOCK, fcntl F_SETFL, ioctl FIONBIO). Then
//    the fd behaves exactly as with libc: EAGAIN is the user's.
//  - SYS_NB: *we* set O_NONBLOCK in the kernel, lazily, the first time a tasklet makes a
//    blocking call on it (so an fd only plain threads use, or one handed to a child process
//    before any tasklet touched it, stays as the user made it). fcntl(F_GETFL) hides it.
//  - A plain thread's call on an fd with SYS_NB and not USER_NB is made blocking again by
//    waiting in poll(2) on EAGAIN; SO_RCVTIMEO/SO_SNDTIMEO bound every wait either way.
//  - reg: the fd's registration with the netpoller, made at the first wait and released by the
//    hooked close() (before libc's close, so the fd number cannot be reused while epoll still
//    knows it); close() first wakes the tasklets waiting on it, whose calls fail with EBADF.
//  - epoch: incremented by every close; a waiter woken `closed` tells a close of its fd (EBADF)
//    from its registration having moved to another scheduler (it retries).
//
// Interrupts: a kill(), raise_exception() or a timeout_scope's end cannot be thrown through the
// C code that called the hook (it has no cleanups, and often no unwind tables). The hooked call
// fails instead — ECANCELED for an interrupt (which stays pending: kill is sticky, and a raised
// exception waits in the tasklet), ETIMEDOUT when a timeout_scope's deadline passed, EINTR for
// the sleeps — and the runtime delivers the interrupt at the tasklet's next suspension point in
// C++ code. Every later hooked wait of that tasklet fails the same way at once, so C code that
// retries on EINTR still gets out.
//
// Threads: a tasklet parked in a hooked call resumes on the worker thread it parked on (an
// atomic scope pins it for the wait). C code reads errno through an address the compiler may
// have computed before the call (__errno_location() is declared const), and caches other
// thread-local addresses the same way; had the tasklet moved to another worker meanwhile, it
// would read the old thread's errno. (Found by test_hooks: an EAGAIN read as 0 on 2 workers.)
//
// Invariants: fd_state's fields other than `bits` are guarded by its lock; `bits` is written
// under it and read without it (relaxed: a stale read of a flag changes only whether the call
// takes the hooked path, and both paths are correct for an fd whose flags change concurrently —
// as with libc, a user racing fcntl against its own read gets either behaviour). The table's
// chunks are allocated once and never freed (published with release, read with acquire).
#include "stackless/io/hooks.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>
#include <vector>

#include "hooks_abi.hpp"
#include "stackless/io/blocking.hpp"
#include "stackless/io/socket.hpp"
#include "stackless/runtime/detail/tcb.hpp"
#include "stackless/runtime/internal/netpoll.hpp"
#include "stackless/runtime/internal/park.hpp"
#include "stackless/runtime/this_tasklet.hpp"
#include "stackless/runtime/timeout.hpp"

namespace sd = stackless::detail;

namespace {

const stackless_hook_fns_v1* libc = nullptr;  // set once by attach, before any hook runs
std::atomic<std::uint64_t> parked_calls{0};   // relaxed: a statistic
std::atomic<bool> attached{false};

bool in_tasklet() noexcept { return sd::current_tcb() != nullptr; }

// ---- the fd table ----------------------------------------------------------------------------

constexpr std::uint32_t MANAGED = 1, USER_NB = 2, SYS_NB = 4;

struct fd_state {
  std::atomic<std::uint32_t> bits{0};
  std::uint32_t epoch = 0;
  std::mutex mu;
  sd::io_registration reg;
};

constexpr int chunk_bits = 12;   // 4,096 fds a chunk
constexpr int chunks = 1 << 10;  // fds up to 4 Mi
std::atomic<fd_state*> table[chunks];

fd_state* find(int fd) noexcept {
  if (fd < 0 || fd >= (chunks << chunk_bits)) return nullptr;
  // acquire: pairs with the release CAS in slot().
  fd_state* c = table[fd >> chunk_bits].load(std::memory_order_acquire);
  return c ? &c[fd & ((1 << chunk_bits) - 1)] : nullptr;
}

fd_state* slot(int fd) {
  if (fd < 0 || fd >= (chunks << chunk_bits)) return nullptr;
  std::atomic<fd_state*>& a = table[fd >> chunk_bits];
  fd_state* c = a.load(std::memory_order_acquire);
  if (!c) {
    auto* fresh = new (std::nothrow) fd_state[1 << chunk_bits];
    if (!fresh) return nullptr;
    // release: the chunk's constructed contents before its pointer; acquire on failure.
    if (a.compare_exchange_strong(c, fresh, std::memory_order_acq_rel))
      c = fresh;
    else
      delete[] fresh;
  }
  return &c[fd & ((1 << chunk_bits) - 1)];
}

// manage() records a new fd made by a hooked call; user_nb: the user asked for O_NONBLOCK.
void manage(int fd, bool user_nb) {
  fd_state* s = slot(fd);
  if (!s) return;  // out of memory or an absurd fd: it is passed through, as libc's
  std::lock_guard g(s->mu);
  s->bits.store(MANAGED | (user_nb ? USER_NB : 0), std::memory_order_relaxed);
}

// forget() ends the management of fd before libc closes it: waiters are woken (EBADF) and the
// registration released.
void forget(int fd) {
  fd_state* s = find(fd);
  if (!s || !(s->bits.load(std::memory_order_relaxed) & MANAGED)) return;
  std::lock_guard g(s->mu);
  s->bits.store(0, std::memory_order_relaxed);
  ++s->epoch;
  sd::io_close(s->reg);
  sd::io_release(s->reg, fd);
}

// hooked() tells whether a blocking call on fd takes the hooked path; from a tasklet it first
// makes the fd non-blocking in the kernel (SYS_NB).
fd_state* hooked(int fd) {
  fd_state* s = find(fd);
  if (!s) return nullptr;
  std::uint32_t b = s->bits.load(std::memory_order_relaxed);
  if ((b & (MANAGED | USER_NB)) != MANAGED) return nullptr;
  if (b & SYS_NB) return s;
  if (!in_tasklet()) return nullptr;  // blocking in the kernel is right for a plain thread
  std::lock_guard g(s->mu);
  b = s->bits.load(std::memory_order_relaxed);
  if ((b & (MANAGED | USER_NB)) != MANAGED) return nullptr;
  if (!(b & SYS_NB)) {
    int fl = libc->fcntl(fd, F_GETFL, 0);
    if (fl < 0 || libc->fcntl(fd, F_SETFL, static_cast<unsigned long>(fl | O_NONBLOCK)) < 0)
      return nullptr;  // let libc report it
    s->bits.store(b | SYS_NB, std::memory_order_relaxed);
  }
  return s;
}

// ---- waiting ---------------------------------------------------------------------------------

// sock_deadline() is the deadline SO_RCVTIMEO (read) or SO_SNDTIMEO (write) sets for a call that
// starts now; no_deadline when unset or not a socket.
std::int64_t sock_deadline(int fd, bool write) {
  timeval tv{};
  socklen_t len = sizeof tv;
  if (getsockopt(fd, SOL_SOCKET, write ? SO_SNDTIMEO : SO_RCVTIMEO, &tv, &len) < 0)
    return sd::no_deadline;
  if (tv.tv_sec == 0 && tv.tv_usec == 0) return sd::no_deadline;
  return sd::clock_ns() + tv.tv_sec * 1'000'000'000LL + tv.tv_usec * 1'000LL;
}

// interrupted_errno() is the errno for a wait that the tasklet's scope or interrupt ended.
int scope_errno(std::int64_t own) {
  return sd::scoped_deadline(own) < own || own == sd::no_deadline ? ETIMEDOUT : EAGAIN;
}

// wait_fd() waits until fd may be ready for `write`; 0 to retry the call, or an errno.
// `deadline` is the call's own (SO_*TIMEO); its passing is EAGAIN, a timeout_scope's ETIMEDOUT.
int wait_fd(fd_state* s, int fd, bool write, std::int64_t deadline, const char* op) {
  const auto what = write ? sd::io_interest::write : sd::io_interest::read;
  const std::int64_t d = sd::scoped_deadline(deadline);
  try {
    if (!in_tasklet()) {
      sd::io_registration none;  // a plain thread waits in poll(2): no registration
      sd::io_status r = sd::io_wait(none, fd, what, d, nullptr, op);
      return r == sd::io_status::timeout ? scope_errno(deadline) : 0;
    }
    std::uint32_t epoch;
    {
      std::lock_guard g(s->mu);
      if (!(s->bits.load(std::memory_order_relaxed) & MANAGED)) return EBADF;
      epoch = s->epoch;
      sd::io_register(s->reg, fd, op);
    }
    parked_calls.fetch_add(1, std::memory_order_relaxed);
    stackless::this_tasklet::atomic pin;  // resume on this thread: see "Threads" at the top
    switch (sd::io_wait(s->reg, fd, what, d, nullptr, op)) {
      case sd::io_status::ready:
        return 0;
      case sd::io_status::timeout:
        return scope_errno(deadline);
      case sd::io_status::closed: {
        std::lock_guard g(s->mu);
        return s->epoch == epoch ? 0 : EBADF;  // moved, not closed: retry
      }
      default:  // interrupted (kill, raise_exception): it stays pending for C++ code
        return ECANCELED;
    }
  } catch (const std::system_error& e) {
    return e.code().value() ? e.code().value() : EIO;
  } catch (const std::bad_alloc&) {
    return ENOMEM;
  }
}

// retry() runs `call` until it does not fail with EAGAIN, waiting in between: the blocking
// call of a managed, user-blocking fd.
template <class Call>
auto retry(int fd, bool write, const char* op, Call call) -> decltype(call()) {
  fd_state* s = hooked(fd);
  if (!s) return call();
  std::int64_t deadline = 0;
  bool have_deadline = false;
  for (;;) {
    auto r = call();
    if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return r;
    if (!have_deadline) {
      deadline = sock_deadline(fd, write);
      have_deadline = true;
    }
    if (int e = wait_fd(s, fd, write, deadline, op)) {
      errno = e;
      return -1;
    }
  }
}

// ---- sleeping --------------------------------------------------------------------------------

// sleep_until() parks the calling tasklet until `deadline`; 0, ETIMEDOUT when a timeout_scope
// ended it early, EINTR when an interrupt did. Nothing is thrown: the interrupt stays pending.
// (The sleep hooks report either as EINTR, the only early end they have.)
int sleep_until(std::int64_t deadline) {
  const std::int64_t d = sd::scoped_deadline(deadline);
  if (d < deadline && d <= sd::clock_ns()) return ETIMEDOUT;
  parked_calls.fetch_add(1, std::memory_order_relaxed);
  stackless::this_tasklet::atomic pin;  // resume on this thread: see "Threads" at the top
  sd::prepare_park("sleep");
  sd::wake_reason r = sd::park([] {}, d);
  if (r == sd::wake_reason::timeout) return d < deadline ? ETIMEDOUT : 0;
  return EINTR;
}

std::int64_t ts_ns(const timespec& ts) { return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec; }
bool bad_ts(const timespec* ts) {
  return !ts || ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1'000'000'000L;
}
void put_rem(timespec* rem, std::int64_t deadline) {
  if (!rem) return;
  std::int64_t left = deadline - sd::clock_ns();
  if (left < 0) left = 0;
  rem->tv_sec = left / 1'000'000'000LL;
  rem->tv_nsec = left % 1'000'000'000LL;
}

// ---- poll ------------------------------------------------------------------------------------

// poll_tasklet() is poll(2) for a tasklet: libc's poll without waiting; if nothing is ready,
// the fds go into a private epoll set (level-triggered, the events asked for), the tasklet
// waits for that set to become readable (an epoll fd is pollable), and libc's poll without
// waiting gives the exact revents. `deadline`: absolute, or no_deadline.
int poll_tasklet(pollfd* fds, nfds_t n, std::int64_t deadline) {
  int r = libc->poll(fds, n, 0);
  if (r != 0 || deadline == 0) return r;
  if (n == 0) {
    if (int e = sleep_until(deadline)) {
      errno = e == EINTR ? ECANCELED : e;  // as for a poll with fds, below
      return -1;
    }
    return 0;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return -1;
  for (nfds_t i = 0; i < n; ++i) {
    if (fds[i].fd < 0) continue;
    epoll_event ev{};
    ev.events = 0;
    if (fds[i].events & POLLIN) ev.events |= EPOLLIN;
    if (fds[i].events & POLLOUT) ev.events |= EPOLLOUT;
    if (fds[i].events & POLLPRI) ev.events |= EPOLLPRI;
    if (fds[i].events & POLLRDHUP) ev.events |= EPOLLRDHUP;
    ev.data.fd = fds[i].fd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i].fd, &ev) < 0 && errno == EEXIST) {
      // The same fd twice: the set waits for the union of its events (poll reports each).
      for (nfds_t j = 0; j < i; ++j)
        if (fds[j].fd == fds[i].fd) ev.events |= static_cast<std::uint32_t>(fds[j].events);
      epoll_ctl(ep, EPOLL_CTL_MOD, fds[i].fd, &ev);
    }
    // EPERM (a regular file: always ready) cannot happen here: poll reported nothing ready.
  }
  // The wait goes through io_wait() directly, not io::wait_readable(): that one throws the
  // interrupt, which must stay pending here (see the top of the file).
  sd::io_registration reg;
  stackless::this_tasklet::atomic pin;  // resume on this thread: see "Threads" at the top
  int err = 0;
  for (;;) {
    sd::io_status st = sd::io_status::ready;
    try {
      parked_calls.fetch_add(1, std::memory_order_relaxed);
      st = sd::io_wait(reg, ep, sd::io_interest::read, sd::scoped_deadline(deadline), nullptr,
                       "poll");
    } catch (const std::system_error& e) {
      err = e.code().value() ? e.code().value() : EIO;
      break;
    } catch (const std::bad_alloc&) {
      err = ENOMEM;
      break;
    }
    if (st == sd::io_status::timeout) {
      if (sd::scoped_deadline(deadline) < deadline || deadline == sd::no_deadline) {
        err = ETIMEDOUT;  // a timeout_scope ended it; it throws at the next wait in C++ code
        break;
      }
      r = 0;  // poll's own timeout
      break;
    }
    if (st != sd::io_status::ready) {
      err = ECANCELED;  // an interrupt: pending for C++ code (see the top of the file)
      break;
    }
    r = libc->poll(fds, n, 0);
    if (r != 0) break;
    // The set was readable but the fds are not (another reader was first): wait again.
  }
  sd::io_release(reg, ep);
  libc->close(ep);
  if (err) {
    errno = err;
    return -1;
  }
  return r;
}

std::int64_t ms_deadline(int timeout_ms) {
  if (timeout_ms < 0) return sd::no_deadline;
  return sd::clock_ns() + static_cast<std::int64_t>(timeout_ms) * 1'000'000LL;
}

// ---- the hooks -------------------------------------------------------------------------------

ssize_t h_read(int fd, void* b, size_t n) {
  return retry(fd, false, "read", [&] { return libc->read(fd, b, n); });
}
ssize_t h_write(int fd, const void* b, size_t n) {
  return retry(fd, true, "write", [&] { return libc->write(fd, b, n); });
}
ssize_t h_readv(int fd, const iovec* v, int n) {
  return retry(fd, false, "readv", [&] { return libc->readv(fd, v, n); });
}
ssize_t h_writev(int fd, const iovec* v, int n) {
  return retry(fd, true, "writev", [&] { return libc->writev(fd, v, n); });
}
// A call with MSG_DONTWAIT is the user's non-blocking call: passed through.
ssize_t h_recv(int fd, void* b, size_t n, int fl) {
  if (fl & MSG_DONTWAIT) return libc->recv(fd, b, n, fl);
  return retry(fd, false, "recv", [&] { return libc->recv(fd, b, n, fl); });
}
ssize_t h_recvfrom(int fd, void* b, size_t n, int fl, sockaddr* a, socklen_t* l) {
  if (fl & MSG_DONTWAIT) return libc->recvfrom(fd, b, n, fl, a, l);
  return retry(fd, false, "recvfrom", [&] { return libc->recvfrom(fd, b, n, fl, a, l); });
}
ssize_t h_recvmsg(int fd, msghdr* m, int fl) {
  if (fl & MSG_DONTWAIT) return libc->recvmsg(fd, m, fl);
  return retry(fd, false, "recvmsg", [&] { return libc->recvmsg(fd, m, fl); });
}
ssize_t h_send(int fd, const void* b, size_t n, int fl) {
  if (fl & MSG_DONTWAIT) return libc->send(fd, b, n, fl);
  return retry(fd, true, "send", [&] { return libc->send(fd, b, n, fl); });
}
ssize_t h_sendto(int fd, const void* b, size_t n, int fl, const sockaddr* a, socklen_t l) {
  if (fl & MSG_DONTWAIT) return libc->sendto(fd, b, n, fl, a, l);
  return retry(fd, true, "sendto", [&] { return libc->sendto(fd, b, n, fl, a, l); });
}
ssize_t h_sendmsg(int fd, const msghdr* m, int fl) {
  if (fl & MSG_DONTWAIT) return libc->sendmsg(fd, m, fl);
  return retry(fd, true, "sendmsg", [&] { return libc->sendmsg(fd, m, fl); });
}

int h_accept4(int fd, sockaddr* a, socklen_t* l, int fl) {
  int r = retry(fd, false, "accept", [&] { return libc->accept4(fd, a, l, fl); });
  if (r >= 0) manage(r, fl & SOCK_NONBLOCK);
  return r;
}
int h_accept(int fd, sockaddr* a, socklen_t* l) { return h_accept4(fd, a, l, 0); }

int h_connect(int fd, const sockaddr* a, socklen_t l) {
  fd_state* s = hooked(fd);
  if (!s) return libc->connect(fd, a, l);
  std::int64_t deadline = sd::no_deadline;
  bool have_deadline = false;
  for (;;) {
    int r = libc->connect(fd, a, l);
    if (r == 0 || (errno != EINPROGRESS && errno != EAGAIN)) return r;
    const bool again = errno == EAGAIN;  // a unix socket's full backlog: connect again later
    if (!have_deadline) {
      deadline = sock_deadline(fd, true);
      have_deadline = true;
    }
    // Edge-triggered readiness may report an edge from before: wait until poll says writable.
    for (;;) {
      if (int e = wait_fd(s, fd, true, deadline, "connect")) {
        errno = e == EAGAIN ? EINPROGRESS : e;  // SO_SNDTIMEO: what a blocking connect says
        return -1;
      }
      pollfd p{fd, POLLOUT, 0};
      if (libc->poll(&p, 1, 0) > 0) break;
    }
    if (again) continue;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return -1;
    if (err) {
      errno = err;
      return -1;
    }
    return 0;
  }
}

int h_socket(int domain, int type, int protocol) {
  int r = libc->socket(domain, type, protocol);
  if (r >= 0) manage(r, type & SOCK_NONBLOCK);
  return r;
}
int h_socketpair(int domain, int type, int protocol, int* sv) {
  int r = libc->socketpair(domain, type, protocol, sv);
  if (r == 0) {
    manage(sv[0], type & SOCK_NONBLOCK);
    manage(sv[1], type & SOCK_NONBLOCK);
  }
  return r;
}
int h_pipe2(int* fds, int fl) {
  int r = libc->pipe2(fds, fl);
  if (r == 0) {
    manage(fds[0], fl & O_NONBLOCK);
    manage(fds[1], fl & O_NONBLOCK);
  }
  return r;
}
int h_pipe(int* fds) { return h_pipe2(fds, 0); }

int h_poll(pollfd* fds, nfds_t n, int timeout) {
  if (!in_tasklet()) return libc->poll(fds, n, timeout);
  return poll_tasklet(fds, n, timeout == 0 ? 0 : ms_deadline(timeout));
}
// The signal mask of ppoll cannot apply to a tasklet's wait (its worker's mask is the worker's):
// a tasklet's ppoll waits as poll with the timeout.
int h_ppoll(pollfd* fds, nfds_t n, const timespec* ts, const sigset_t* mask) {
  if (!in_tasklet()) return libc->ppoll(fds, n, ts, mask);
  if (ts && bad_ts(ts)) {
    errno = EINVAL;
    return -1;
  }
  std::int64_t d = !ts ? sd::no_deadline : ts_ns(*ts) == 0 ? 0 : sd::clock_ns() + ts_ns(*ts);
  return poll_tasklet(fds, n, d);
}
int h_select(int nfds, fd_set* rd, fd_set* wr, fd_set* ex, timeval* tv) {
  if (!in_tasklet()) return libc->select(nfds, rd, wr, ex, tv);
  if (nfds < 0 || nfds > FD_SETSIZE || (tv && (tv->tv_sec < 0 || tv->tv_usec < 0))) {
    errno = EINVAL;
    return -1;
  }
  std::vector<pollfd> p;
  for (int fd = 0; fd < nfds; ++fd) {
    short ev = 0;
    if (rd && FD_ISSET(fd, rd)) ev |= POLLIN;
    if (wr && FD_ISSET(fd, wr)) ev |= POLLOUT;
    if (ex && FD_ISSET(fd, ex)) ev |= POLLPRI;
    if (ev) p.push_back({fd, ev, 0});
  }
  std::int64_t d = sd::no_deadline;
  if (tv) {
    std::int64_t ns = tv->tv_sec * 1'000'000'000LL + tv->tv_usec * 1'000LL;
    d = ns == 0 ? 0 : sd::clock_ns() + ns;
  }
  int r = poll_tasklet(p.data(), p.size(), d);
  if (r < 0) return r;
  for (const pollfd& q : p)
    if (q.revents & POLLNVAL) {
      errno = EBADF;
      return -1;
    }
  if (rd) FD_ZERO(rd);
  if (wr) FD_ZERO(wr);
  if (ex) FD_ZERO(ex);
  int count = 0;
  for (const pollfd& q : p) {
    if (rd && (q.revents & (POLLIN | POLLHUP | POLLERR))) FD_SET(q.fd, rd), ++count;
    if (wr && (q.revents & (POLLOUT | POLLERR))) FD_SET(q.fd, wr), ++count;
    if (ex && (q.revents & POLLPRI)) FD_SET(q.fd, ex), ++count;
  }
  return count;
}

unsigned h_sleep(unsigned s) {
  if (!in_tasklet()) return libc->sleep(s);
  std::int64_t d = sd::clock_ns() + static_cast<std::int64_t>(s) * 1'000'000'000LL;
  if (sleep_until(d) == 0) return 0;  // else ended early: the seconds left
  std::int64_t left = d - sd::clock_ns();
  return left <= 0 ? 0 : static_cast<unsigned>((left + 999'999'999) / 1'000'000'000);
}
int h_usleep(useconds_t us) {
  if (!in_tasklet()) return libc->usleep(us);
  if (sleep_until(sd::clock_ns() + static_cast<std::int64_t>(us) * 1'000LL) != 0) {
    errno = EINTR;
    return -1;
  }
  return 0;
}
int h_nanosleep(const timespec* req, timespec* rem) {
  if (!in_tasklet()) return libc->nanosleep(req, rem);
  if (bad_ts(req)) {
    errno = EINVAL;
    return -1;
  }
  std::int64_t d = sd::clock_ns() + ts_ns(*req);
  if (sleep_until(d) != 0) {
    put_rem(rem, d);
    errno = EINTR;
    return -1;
  }
  return 0;
}
// clock_nanosleep returns its error instead of setting errno.
int h_clock_nanosleep(clockid_t c, int fl, const timespec* req, timespec* rem) {
  if (!in_tasklet() || (c != CLOCK_MONOTONIC && c != CLOCK_REALTIME))
    return libc->clock_nanosleep(c, fl, req, rem);
  if (bad_ts(req)) return EINVAL;
  std::int64_t rel = ts_ns(*req);
  if (fl & TIMER_ABSTIME) {
    timespec now{};
    clock_gettime(c, &now);
    rel -= ts_ns(now);
    if (rel < 0) rel = 0;
  }
  std::int64_t d = sd::clock_ns() + rel;
  if (sleep_until(d) != 0) {
    if (!(fl & TIMER_ABSTIME)) put_rem(rem, d);
    return EINTR;
  }
  return 0;
}

// getaddrinfo blocks on DNS: from a tasklet it runs on the blocking pool.
int h_getaddrinfo(const char* node, const char* service, const addrinfo* hints, addrinfo** res) {
  if (!in_tasklet()) return libc->getaddrinfo(node, service, hints, res);
  struct call {
    stackless::io::detail::blocking_job job;
    const char* node;
    const char* service;
    const addrinfo* hints;
    addrinfo** res;
    int rc = EAI_SYSTEM;
    int err = 0;
  } c{{}, node, service, hints, res};
  c.job.self = &c;
  c.job.run = [](stackless::io::detail::blocking_job* j) {
    auto* self = static_cast<call*>(j->self);
    self->rc = libc->getaddrinfo(self->node, self->service, self->hints, self->res);
    self->err = errno;
  };
  try {
    parked_calls.fetch_add(1, std::memory_order_relaxed);
    stackless::this_tasklet::atomic pin;  // resume on this thread: see "Threads" at the top
    stackless::io::detail::submit_and_wait_nothrow(c.job);
  } catch (...) {  // the pool could not start a thread: resolve here, blocking the worker
    return libc->getaddrinfo(node, service, hints, res);
  }
  errno = c.err;
  return c.rc;
}

int h_close(int fd) {
  forget(fd);
  return libc->close(fd);
}
void copy_state(int from, int to) {
  fd_state* s = find(from);
  std::uint32_t b = s ? s->bits.load(std::memory_order_relaxed) : 0;
  if (b & MANAGED) {
    fd_state* t = slot(to);
    if (!t) return;
    std::lock_guard g(t->mu);
    t->bits.store(b, std::memory_order_relaxed);  // the same open file: the same flags
  }
}
int h_dup(int fd) {
  int r = libc->dup(fd);
  if (r >= 0) copy_state(fd, r);
  return r;
}
int h_dup2(int fd, int to) {
  if (fd != to) forget(to);  // dup2 closes `to` first
  int r = libc->dup2(fd, to);
  if (r >= 0 && fd != to) copy_state(fd, r);
  return r;
}
int h_dup3(int fd, int to, int fl) {
  if (fd != to) forget(to);
  int r = libc->dup3(fd, to, fl);
  if (r >= 0) copy_state(fd, r);
  return r;
}

int h_fcntl(int fd, int cmd, unsigned long arg) {
  fd_state* s = find(fd);
  std::uint32_t b = s ? s->bits.load(std::memory_order_relaxed) : 0;
  if (!(b & MANAGED)) return libc->fcntl(fd, cmd, arg);
  switch (cmd) {
    case F_GETFL: {
      int r = libc->fcntl(fd, cmd, arg);
      if (r >= 0 && (b & SYS_NB) && !(b & USER_NB)) r &= ~O_NONBLOCK;
      return r;
    }
    case F_SETFL: {
      std::lock_guard g(s->mu);
      b = s->bits.load(std::memory_order_relaxed);
      const bool user_nb = arg & O_NONBLOCK;
      unsigned long real = arg;
      if (b & SYS_NB) real |= O_NONBLOCK;
      int r = libc->fcntl(fd, cmd, real);
      if (r == 0)
        s->bits.store((b & ~USER_NB) | (user_nb ? USER_NB : 0), std::memory_order_relaxed);
      return r;
    }
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
      int r = libc->fcntl(fd, cmd, arg);
      if (r >= 0) copy_state(fd, r);
      return r;
    }
    default:
      return libc->fcntl(fd, cmd, arg);
  }
}

int h_ioctl(int fd, unsigned long req, unsigned long arg) {
  if (req != FIONBIO) return libc->ioctl(fd, req, arg);
  fd_state* s = find(fd);
  if (!s || !(s->bits.load(std::memory_order_relaxed) & MANAGED) || !arg)
    return libc->ioctl(fd, req, arg);
  std::lock_guard g(s->mu);
  std::uint32_t b = s->bits.load(std::memory_order_relaxed);
  const bool user_nb = *reinterpret_cast<const int*>(arg) != 0;
  int on = user_nb || (b & SYS_NB) ? 1 : 0;
  int r = libc->ioctl(fd, req, reinterpret_cast<unsigned long>(&on));
  if (r == 0) s->bits.store((b & ~USER_NB) | (user_nb ? USER_NB : 0), std::memory_order_relaxed);
  return r;
}

const stackless_hook_fns_v1 hooks_table = {
    h_read,       h_write,     h_readv,           h_writev,      h_recv,    h_recvfrom, h_recvmsg,
    h_send,       h_sendto,    h_sendmsg,         h_accept,      h_accept4, h_connect,  h_socket,
    h_socketpair, h_pipe,      h_pipe2,           h_poll,        h_ppoll,   h_select,   h_sleep,
    h_usleep,     h_nanosleep, h_clock_nanosleep, h_getaddrinfo, h_close,   h_dup,      h_dup2,
    h_dup3,       h_fcntl,     h_ioctl,
};

}  // namespace

extern "C" __attribute__((visibility("default"), used)) const stackless_hook_fns_v1*
stackless_hooks_attach_v1(const stackless_hook_fns_v1* real) {
  if (!real) return nullptr;
  // The first interposer's libc table stands (a second interposer, preloaded and linked both,
  // finds the same libc functions).
  static const stackless_hook_fns_v1* first = real;
  libc = first;
  attached.store(true, std::memory_order_release);  // pairs with hooks_active()'s acquire
  return &hooks_table;
}

namespace stackless::io {

bool hooks_active() noexcept { return attached.load(std::memory_order_acquire); }

hooks_stats hooks_info() noexcept {
  hooks_stats s;
  s.active = hooks_active();
  s.parked_calls = parked_calls.load(std::memory_order_relaxed);
  std::uint64_t n = 0;
  for (auto& c : table) {
    fd_state* chunk = c.load(std::memory_order_acquire);
    if (!chunk) continue;
    for (int i = 0; i < (1 << chunk_bits); ++i)
      if (chunk[i].bits.load(std::memory_order_relaxed) & MANAGED) ++n;
  }
  s.managed_fds = n;
  return s;
}

}  // namespace stackless::io
