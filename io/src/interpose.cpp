// SPDX-License-Identifier: Apache-2.0
// io/src/interpose.cpp — the interposers: `read`, `connect`, `poll`, `nanosleep`… with libc's
// signatures, built into libstackless_hooks.so (LD_PRELOAD) and into stackless::hooks (linked
// into the executable, whole, so that its definitions come before libc's). Each forwards to the
// hooks of the program's io library (hooks.cpp), or to libc when the program has none.
//
// Invariants:
//  - Nothing here depends on the runtime: the preloaded library must not bring a second one
//    (hooks_abi.hpp says why). It needs libc and libdl (in libc since glibc 2.34).
//  - libc's functions are found with dlsym(RTLD_NEXT) from this object, which comes before libc
//    in the lookup order in both builds; the hooks never call the interposed names themselves
//    (they would come back here), only the table they were given.
//  - fns() is safe from any thread at any time, including before main(): the first call fills
//    the tables; a racing first call fills a second, identical copy and its CAS loses.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/ioctl.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>

#include "hooks_abi.hpp"

#if defined(STACKLESS_HOOKS_LINKED)
// stackless::hooks: the io library is linked into the same executable; referring to the attach
// function directly also makes the linker keep it.
#define STACKLESS_FIND_ATTACH() (&stackless_hooks_attach_v1)
#else
#define STACKLESS_FIND_ATTACH()                                                      \
  (reinterpret_cast<const stackless_hook_fns_v1* (*)(const stackless_hook_fns_v1*)>( \
      dlsym(RTLD_DEFAULT, "stackless_hooks_attach_v1")))
#endif

namespace {

using fcntl_fn = int (*)(int, int, ...);
using ioctl_fn = int (*)(int, unsigned long, ...);
fcntl_fn libc_fcntl_v = nullptr;
ioctl_fn libc_ioctl_v = nullptr;

// The table holds fixed-argument forms; these call libc's variadic ones as variadic.
int libc_fcntl(int fd, int cmd, unsigned long arg) { return libc_fcntl_v(fd, cmd, arg); }
int libc_ioctl(int fd, unsigned long req, unsigned long arg) { return libc_ioctl_v(fd, req, arg); }

template <class F>
void next(F*& f, const char* name) {
  f = reinterpret_cast<F*>(dlsym(RTLD_NEXT, name));
}

const stackless_hook_fns_v1* load() {
  static stackless_hook_fns_v1 libc;  // written once, before the CAS below publishes it
  next(libc.read, "read");
  next(libc.write, "write");
  next(libc.readv, "readv");
  next(libc.writev, "writev");
  next(libc.recv, "recv");
  next(libc.recvfrom, "recvfrom");
  next(libc.recvmsg, "recvmsg");
  next(libc.send, "send");
  next(libc.sendto, "sendto");
  next(libc.sendmsg, "sendmsg");
  next(libc.accept, "accept");
  next(libc.accept4, "accept4");
  next(libc.connect, "connect");
  next(libc.socket, "socket");
  next(libc.socketpair, "socketpair");
  next(libc.pipe, "pipe");
  next(libc.pipe2, "pipe2");
  next(libc.poll, "poll");
  next(libc.ppoll, "ppoll");
  next(libc.select, "select");
  next(libc.sleep, "sleep");
  next(libc.usleep, "usleep");
  next(libc.nanosleep, "nanosleep");
  next(libc.clock_nanosleep, "clock_nanosleep");
  next(libc.getaddrinfo, "getaddrinfo");
  next(libc.close, "close");
  next(libc.dup, "dup");
  next(libc.dup2, "dup2");
  next(libc.dup3, "dup3");
  libc_fcntl_v = reinterpret_cast<fcntl_fn>(dlsym(RTLD_NEXT, "fcntl"));
  libc_ioctl_v = reinterpret_cast<ioctl_fn>(dlsym(RTLD_NEXT, "ioctl"));
  libc.fcntl = &libc_fcntl;
  libc.ioctl = &libc_ioctl;
  auto attach = STACKLESS_FIND_ATTACH();
  const stackless_hook_fns_v1* hooked = attach ? attach(&libc) : nullptr;
  return hooked ? hooked : &libc;
}

std::atomic<const stackless_hook_fns_v1*> table{nullptr};

inline const stackless_hook_fns_v1& fns() {
  // acquire: pairs with the release CAS below (the table's contents are written before it).
  const stackless_hook_fns_v1* t = table.load(std::memory_order_acquire);
  if (__builtin_expect(t == nullptr, 0)) {
    static std::atomic<int> loading{0};
    const int saved = errno;
    // A first call made while the first call's dlsym runs on this thread (dlsym → malloc →
    // something hooked) must not recurse: it is libc's, found without the table.
    if (loading.exchange(1, std::memory_order_acq_rel) == 0) {
      const stackless_hook_fns_v1* mine = load();
      const stackless_hook_fns_v1* expected = nullptr;
      // release: publishes the table's contents; acquire (on failure): reads the winner's.
      table.compare_exchange_strong(expected, mine, std::memory_order_acq_rel);
    }
    while ((t = table.load(std::memory_order_acquire)) == nullptr) {
    }
    errno = saved;
  }
  return *t;
}

}  // namespace

extern "C" {

// The names are libc's, with its signatures (glibc's headers declare them; the definitions here
// take their place). `default` visibility: they must be found from other objects.
#define STACKLESS_EXPORT __attribute__((visibility("default")))

STACKLESS_EXPORT ssize_t read(int fd, void* buf, size_t n) { return fns().read(fd, buf, n); }
STACKLESS_EXPORT ssize_t write(int fd, const void* buf, size_t n) {
  return fns().write(fd, buf, n);
}
STACKLESS_EXPORT ssize_t readv(int fd, const struct iovec* iov, int n) {
  return fns().readv(fd, iov, n);
}
STACKLESS_EXPORT ssize_t writev(int fd, const struct iovec* iov, int n) {
  return fns().writev(fd, iov, n);
}
STACKLESS_EXPORT ssize_t recv(int fd, void* buf, size_t n, int flags) {
  return fns().recv(fd, buf, n, flags);
}
STACKLESS_EXPORT ssize_t recvfrom(int fd, void* buf, size_t n, int flags, struct sockaddr* a,
                                  socklen_t* len) {
  return fns().recvfrom(fd, buf, n, flags, a, len);
}
STACKLESS_EXPORT ssize_t recvmsg(int fd, struct msghdr* m, int flags) {
  return fns().recvmsg(fd, m, flags);
}
STACKLESS_EXPORT ssize_t send(int fd, const void* buf, size_t n, int flags) {
  return fns().send(fd, buf, n, flags);
}
STACKLESS_EXPORT ssize_t sendto(int fd, const void* buf, size_t n, int flags,
                                const struct sockaddr* a, socklen_t len) {
  return fns().sendto(fd, buf, n, flags, a, len);
}
STACKLESS_EXPORT ssize_t sendmsg(int fd, const struct msghdr* m, int flags) {
  return fns().sendmsg(fd, m, flags);
}
STACKLESS_EXPORT int accept(int fd, struct sockaddr* a, socklen_t* len) {
  return fns().accept(fd, a, len);
}
STACKLESS_EXPORT int accept4(int fd, struct sockaddr* a, socklen_t* len, int flags) {
  return fns().accept4(fd, a, len, flags);
}
STACKLESS_EXPORT int connect(int fd, const struct sockaddr* a, socklen_t len) {
  return fns().connect(fd, a, len);
}
STACKLESS_EXPORT int socket(int domain, int type, int protocol) {
  return fns().socket(domain, type, protocol);
}
STACKLESS_EXPORT int socketpair(int domain, int type, int protocol, int sv[2]) {
  return fns().socketpair(domain, type, protocol, sv);
}
STACKLESS_EXPORT int pipe(int fds[2]) { return fns().pipe(fds); }
STACKLESS_EXPORT int pipe2(int fds[2], int flags) { return fns().pipe2(fds, flags); }
STACKLESS_EXPORT int poll(struct pollfd* fds, nfds_t n, int timeout) {
  return fns().poll(fds, n, timeout);
}
STACKLESS_EXPORT int ppoll(struct pollfd* fds, nfds_t n, const struct timespec* ts,
                           const sigset_t* mask) {
  return fns().ppoll(fds, n, ts, mask);
}
STACKLESS_EXPORT int select(int n, fd_set* r, fd_set* w, fd_set* e, struct timeval* tv) {
  return fns().select(n, r, w, e, tv);
}
STACKLESS_EXPORT unsigned sleep(unsigned s) { return fns().sleep(s); }
STACKLESS_EXPORT int usleep(useconds_t us) { return fns().usleep(us); }
STACKLESS_EXPORT int nanosleep(const struct timespec* req, struct timespec* rem) {
  return fns().nanosleep(req, rem);
}
STACKLESS_EXPORT int clock_nanosleep(clockid_t c, int flags, const struct timespec* req,
                                     struct timespec* rem) {
  return fns().clock_nanosleep(c, flags, req, rem);
}
STACKLESS_EXPORT int getaddrinfo(const char* node, const char* service,
                                 const struct addrinfo* hints, struct addrinfo** res) {
  return fns().getaddrinfo(node, service, hints, res);
}
STACKLESS_EXPORT int close(int fd) { return fns().close(fd); }
STACKLESS_EXPORT int dup(int fd) { return fns().dup(fd); }
STACKLESS_EXPORT int dup2(int fd, int to) { return fns().dup2(fd, to); }
STACKLESS_EXPORT int dup3(int fd, int to, int flags) { return fns().dup3(fd, to, flags); }

// fcntl and ioctl are variadic; the optional argument is read as an unsigned long, which holds
// an int or a pointer alike (glibc's own fcntl reads it as a pointer).
STACKLESS_EXPORT int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  return fns().fcntl(fd, cmd, arg);
}
// Programs built with _FILE_OFFSET_BITS=64 call fcntl64 (glibc 2.28+); on 64-bit ABIs it is the
// same function.
STACKLESS_EXPORT int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  return fns().fcntl(fd, cmd, arg);
}
STACKLESS_EXPORT int ioctl(int fd, unsigned long req, ...) {
  va_list ap;
  va_start(ap, req);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  return fns().ioctl(fd, req, arg);
}

}  // extern "C"
