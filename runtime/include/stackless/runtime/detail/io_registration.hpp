// SPDX-License-Identifier: Apache-2.0
// stackless/runtime/detail/io_registration.hpp — what a socket keeps of its registration with a
// scheduler's netpoller (runtime/src/netpoll.cpp; the calls on it are in the runtime's internal
// netpoll.hpp). Internal: the names may change at any time.
#pragma once

#include <cstdint>

#include "stackless/runtime/detail/spinlock.hpp"

namespace stackless::detail {

class netpoller;

/// io_registration is an fd's registration with one scheduler's netpoller (Go's pollDesc): the
/// slot that holds its waiters and the generation that slot had when the fd was registered, so
/// that an event for an earlier registration of the same slot (or of a reused fd number) wakes
/// nobody. Owned by whoever owns the fd; released before the fd is closed. A registration made on
/// one scheduler and used from a tasklet of another moves there (one at a time).
///
/// The fields are guarded by `lk`: a tasklet registers lazily, in its first io_wait(), while
/// another may close the socket (io_close()/io_release()) at the same moment. The netpoller's
/// calls take it for a few instructions (an epoll_ctl at most); copying is for an owner that
/// has the registration to itself (a moved socket) and copies no lock state.
struct io_registration {
  netpoller* np = nullptr;  // holds a reference on it while registered
  std::uint32_t slot = 0;
  std::uint32_t gen = 0;
  bool unpollable = false;  // epoll refused the fd (a regular file): it is always "ready"
  spinlock lk;

  io_registration() = default;
  io_registration(const io_registration& o) noexcept
      : np(o.np), slot(o.slot), gen(o.gen), unpollable(o.unpollable) {}
  io_registration& operator=(const io_registration& o) noexcept {
    np = o.np;
    slot = o.slot;
    gen = o.gen;
    unpollable = o.unpollable;
    return *this;
  }
};

}  // namespace stackless::detail
