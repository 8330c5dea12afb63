// SPDX-License-Identifier: Apache-2.0
// stackless/runtime/internal/netpoll.hpp — waiting for a file descriptor: what the io component
// needs of the netpoller (runtime/src/netpoll.cpp), and nothing else.
//
// Usage (a non-blocking fd; the io component's sockets, and the hooks):
//
//   for (;;) {
//     ssize_t n = ::read(fd, buf, len);
//     if (n >= 0 || errno != EAGAIN) return n;
//     switch (io_wait(reg, fd, io_interest::read, deadline, st, "read")) { ... }
//   }
//   ...
//   io_release(reg);  // before ::close(fd)
//
// From a tasklet, io_wait() parks only the tasklet: the fd is registered (once) with the epoll
// set of the tasklet's scheduler, and a worker that polls it wakes the tasklet. From a plain
// thread it blocks the thread in ppoll(2). Readiness is edge-triggered: io_wait() may return
// `ready` when the fd is not (an edge seen earlier, since consumed): the caller retries its
// syscall and waits again on EAGAIN, as with any edge-triggered poller.
#pragma once

#include <cstdint>
#include <stop_token>

#include "stackless/runtime/detail/deadline.hpp"
#include "stackless/runtime/detail/io_registration.hpp"

namespace stackless::detail {

enum class io_interest : unsigned { read = 0, write = 1 };

/// io_status is how io_wait() ended.
enum class io_status : std::uint8_t {
  ready,        // an edge was seen (or the fd cannot be polled): retry the operation
  timeout,      // `deadline` passed
  cancelled,    // the stop_token was asked to stop
  interrupted,  // a tasklet was killed or got raise_exception(): throw_if_interrupted()
  closed,       // io_close() was called on the registration meanwhile (another tasklet closed
                //   the fd): the operation fails with EBADF
};

/// io_wait() waits until `fd` is ready for `what`, `deadline` (steady ns, already shortened by
/// any timeout_scope) passes, or *st asks to stop. `op` names the operation in deadlock reports
/// ("read", "accept"…). May throw std::system_error when the netpoller cannot be created (epoll
/// or eventfd refused: EMFILE, ENOMEM) or the fd cannot be registered (EBADF…).
io_status io_wait(io_registration& reg, int fd, io_interest what, std::int64_t deadline,
                  const std::stop_token* st, const char* op);

/// io_register() registers fd with the netpoller of the calling tasklet's scheduler, unless reg
/// is registered there already (a registration with another scheduler moves). io_wait() does it
/// on its own; this is for a caller that must do it under its own lock. Nothing on a plain
/// thread. Throws as io_wait().
void io_register(io_registration& reg, int fd, const char* op);

/// io_close() wakes every tasklet waiting on the registration with `closed`, and makes later
/// waits on it return `closed` until io_release(): for a close() of an fd other tasklets wait on.
void io_close(io_registration& reg) noexcept;

/// io_release() ends the registration (epoll forgets the fd; its waiters, if any, get `closed`).
/// Call it before the fd is closed. Idempotent.
void io_release(io_registration& reg, int fd) noexcept;

/// external_wait is a scope in which the calling tasklet waits for something outside any
/// scheduler (a blocking-pool thread: io::run_blocking): while one is open, the scheduler is not
/// quiescent, so the deadlock detector does not report a tasklet parked there. Nothing on a
/// plain thread.
class external_wait {
 public:
  external_wait() noexcept;
  ~external_wait();
  external_wait(const external_wait&) = delete;
  external_wait& operator=(const external_wait&) = delete;

 private:
  void* sched_;
};

/// io_waiters() is how many tasklets of the calling thread's scheduler wait in io_wait() now
/// (for tests and stats); 0 outside a scheduler.
std::uint64_t io_waiters() noexcept;

}  // namespace stackless::detail
