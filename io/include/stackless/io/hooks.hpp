// SPDX-License-Identifier: Apache-2.0
// stackless/io/hooks.hpp — monkey-patching for code you did not write (stacklesslib's most
// useful part): with the hooks active, libc's blocking calls made from a tasklet park the
// tasklet, not its worker thread, so an unmodified blocking client library (hiredis, libcurl's
// easy API) runs one request per tasklet, thousands at once on a few workers.
//
// Two ways to activate them (both install with the package):
//   target_link_libraries(app PRIVATE stackless::stackless stackless::hooks)   # at link time
//   LD_PRELOAD=/usr/lib/.../libstackless_hooks.so ./app                       # at run time
// The preloaded library carries no runtime: it uses the one the program linked (statically or
// not), and in a program without stackless every call is libc's.
//
// Hooked: read, write, readv, writev, recv, recvfrom, recvmsg, send, sendto, sendmsg, accept,
// accept4, connect, poll, ppoll, select, sleep, usleep, nanosleep, clock_nanosleep, getaddrinfo
// (on the blocking pool), close, dup, dup2, dup3, fcntl, ioctl(FIONBIO); and socket, socketpair,
// pipe, pipe2, which mark the fds they make as the hooks' own. Semantics:
//  - From a plain thread, a worker's own code, or before any scheduler exists: exactly libc's.
//  - From a tasklet, on an fd made by a hooked call after the hooks became active (a socket, a
//    pipe, their dups): the call parks the tasklet until the fd is ready. Other fds (files,
//    eventfds, fds made before) pass through and block as with libc; io::wait_readable() waits
//    for them.
//  - The user's O_NONBLOCK is kept per fd: fcntl(F_GETFL) reports what the user set, and a fd
//    the user made non-blocking gets EAGAIN as usual. (The hooks set O_NONBLOCK in the kernel
//    the first time a tasklet blocks on a fd; a child process that inherits that fd afterwards
//    sees it non-blocking.)
//  - SO_RCVTIMEO / SO_SNDTIMEO bound the waits (EAGAIN, or EINPROGRESS for connect).
//  - close() of a fd another tasklet waits on wakes that tasklet; its call fails with EBADF.
//  - kill(), raise_exception() and a timeout_scope cannot unwind through C code: the hooked call
//    fails instead (ECANCELED; ETIMEDOUT for a timeout_scope; EINTR for the sleeps) and the
//    interrupt is delivered at the tasklet's next suspension point in C++ code.
//  - ppoll's signal mask does not apply to a tasklet's wait.
//  - pthread_mutex_*, pthread_cond_* and pthread_create are not hooked: a tasklet blocked in one
//    blocks its worker (the stall detector names it). Use stackless's sync primitives.
//  - SIGPIPE: the io library's own sockets never raise it; code using the hooked write()/send()
//    on a socket keeps libc's behaviour (ignore SIGPIPE, or use MSG_NOSIGNAL).
#pragma once

#include <cstdint>

namespace stackless::io {

/// hooks_active() tells whether an interposer (stackless::hooks or libstackless_hooks.so) has
/// attached to this program's io library — after its first hooked call.
bool hooks_active() noexcept;

/// hooks_stats: whether they are active, how many hooked calls parked a tasklet so far, and how
/// many fds the hooks manage now.
struct hooks_stats {
  bool active = false;
  std::uint64_t parked_calls = 0;
  std::uint64_t managed_fds = 0;
};
hooks_stats hooks_info() noexcept;

}  // namespace stackless::io
