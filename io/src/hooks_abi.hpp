// SPDX-License-Identifier: Apache-2.0
// io/src/hooks_abi.hpp — the C ABI between the interposers (interpose.cpp: the `read`, `connect`,
// `poll`… that a program calls, built into libstackless_hooks.so and stackless::hooks) and the
// hooks' implementation in the io library (hooks.cpp).
//
// Why two halves: the interposer may be LD_PRELOADed into a program that linked stackless
// statically. A preloaded library that carried the runtime would then be a second runtime, one
// with no tasklets, and every hook would pass through. So the interposer carries no runtime at
// all: on its first call it finds the program's io library by one exported symbol,
// stackless_hooks_attach_v1 (dlsym(RTLD_DEFAULT); the io library asks the linker to keep and
// export it, io/CMakeLists.txt), hands it libc's functions (found with dlsym(RTLD_NEXT) from the
// interposer, the only object that knows which `read` is "next"), and gets back the hooked ones.
// A program without stackless gets nothing back, and every call goes straight to libc.
//
// The version is in the name: a table of another layout has another name.
#pragma once

#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

extern "C" {

/// stackless_hook_fns_v1 is one set of the hooked functions: libc's (the interposer fills it),
/// or the hooks' (the io library's). fcntl and ioctl take their optional argument as an
/// unsigned long (what a variadic int or pointer argument is, on the ABIs Linux runs on).
struct stackless_hook_fns_v1 {
  ssize_t (*read)(int, void*, size_t);
  ssize_t (*write)(int, const void*, size_t);
  ssize_t (*readv)(int, const struct iovec*, int);
  ssize_t (*writev)(int, const struct iovec*, int);
  ssize_t (*recv)(int, void*, size_t, int);
  ssize_t (*recvfrom)(int, void*, size_t, int, struct sockaddr*, socklen_t*);
  ssize_t (*recvmsg)(int, struct msghdr*, int);
  ssize_t (*send)(int, const void*, size_t, int);
  ssize_t (*sendto)(int, const void*, size_t, int, const struct sockaddr*, socklen_t);
  ssize_t (*sendmsg)(int, const struct msghdr*, int);
  int (*accept)(int, struct sockaddr*, socklen_t*);
  int (*accept4)(int, struct sockaddr*, socklen_t*, int);
  int (*connect)(int, const struct sockaddr*, socklen_t);
  int (*socket)(int, int, int);
  int (*socketpair)(int, int, int, int*);
  int (*pipe)(int*);
  int (*pipe2)(int*, int);
  int (*poll)(struct pollfd*, nfds_t, int);
  int (*ppoll)(struct pollfd*, nfds_t, const struct timespec*, const sigset_t*);
  int (*select)(int, fd_set*, fd_set*, fd_set*, struct timeval*);
  unsigned (*sleep)(unsigned);
  int (*usleep)(useconds_t);
  int (*nanosleep)(const struct timespec*, struct timespec*);
  int (*clock_nanosleep)(clockid_t, int, const struct timespec*, struct timespec*);
  int (*getaddrinfo)(const char*, const char*, const struct addrinfo*, struct addrinfo**);
  int (*close)(int);
  int (*dup)(int);
  int (*dup2)(int, int);
  int (*dup3)(int, int, int);
  int (*fcntl)(int, int, unsigned long);
  int (*ioctl)(int, unsigned long, unsigned long);
};

/// stackless_hooks_attach_v1() takes libc's functions (kept for the life of the process) and
/// returns the hooked ones. Called once per interposer, from its first hooked call; thread-safe.
const struct stackless_hook_fns_v1* stackless_hooks_attach_v1(const struct stackless_hook_fns_v1*);
}
