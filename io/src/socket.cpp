// SPDX-License-Identifier: Apache-2.0
// io/src/socket.cpp — the sockets: every operation tries its syscall first and waits for
// readiness only on EAGAIN (Go's net.FD: the common case of data already there costs one
// syscall and no epoll traffic). The wait itself is the runtime's io_wait() (netpoll.cpp).
//
// Invariants:
//  - fd_ is non-blocking and close-on-exec from the moment the object owns it; sends use
//    MSG_NOSIGNAL, so no write raises SIGPIPE.
//  - reg_ is released before fd_ is closed (epoll must forget the fd before its number can be
//    reused), and close() first wakes the tasklets waiting on reg_ (they fail with EBADF without
//    touching the object again).
#include "stackless/io/socket.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <system_error>
#include <unordered_map>

#include "stackless/runtime/errors.hpp"
#include "stackless/runtime/internal/netpoll.hpp"
#include "stackless/runtime/internal/park.hpp"
#include "stackless/runtime/timeout.hpp"

namespace stackless::io {

namespace sd = stackless::detail;

namespace {
[[noreturn]] void throw_errno(int e, const std::string& what) {
  throw std::system_error(e, std::generic_category(), what);
}

void set_nonblocking(int fd) {
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    throw_errno(errno, "stackless::io: fcntl(O_NONBLOCK) on fd " + std::to_string(fd));
}

// end_wait(): what a wait that did not end `ready` means for the caller; true to retry.
bool end_wait(sd::io_status s, std::int64_t own, const std::string& what) {
  switch (s) {
    case sd::io_status::ready:
      return true;
    case sd::io_status::timeout:
      sd::scope_check(own);  // the caller's timeout_scope, if its deadline was the earlier one
      throw std::system_error(ETIMEDOUT, std::generic_category(), what);
    case sd::io_status::cancelled:
      throw operation_cancelled();
    case sd::io_status::interrupted:
      sd::throw_if_interrupted();
      return true;  // masked, or unwinding: retry (the interrupt stays pending)
    case sd::io_status::closed:
      break;
  }
  throw std::system_error(EBADF, std::generic_category(), what + " (closed while waiting)");
}
}  // namespace

// ---- socket ----------------------------------------------------------------------------------

socket::socket(int fd) : fd_(fd) {
  if (fd < 0) throw std::invalid_argument("stackless::io::socket: negative fd");
  set_nonblocking(fd);
}

socket::socket(socket&& o) noexcept
    : fd_(o.fd_.exchange(-1)), peer_(o.peer_), reg_(std::exchange(o.reg_, {})) {}

socket& socket::operator=(socket&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.fd_.exchange(-1);
    peer_ = o.peer_;
    reg_ = std::exchange(o.reg_, {});
  }
  return *this;
}

socket::~socket() { close(); }

void socket::close() noexcept {
  const int fd = fd_.exchange(-1);  // one closer wins; operations from here on see -1
  if (fd < 0) return;
  sd::io_close(reg_);  // waiters fail with EBADF
  sd::io_release(reg_, fd);
  ::close(fd);
}

int socket::release() noexcept {
  const int fd = fd_.exchange(-1);
  sd::io_release(reg_, fd);
  return fd;
}

void socket::check_open(const char* op) const {
  if (fd_ < 0) throw usage_error(std::string("stackless::io: ") + op + " on a closed socket");
}

endpoint socket::local_endpoint() const {
  check_open("local_endpoint");
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) < 0) fail(errno, "getsockname");
  return endpoint::from(reinterpret_cast<sockaddr*>(&ss), len);
}

void socket::set_option(int level, int name, int value) {
  check_open("setsockopt");
  if (::setsockopt(fd_, level, name, &value, sizeof value) < 0) fail(errno, "setsockopt");
}

int socket::get_option(int level, int name) const {
  check_open("getsockopt");
  int v = 0;
  socklen_t len = sizeof v;
  if (::getsockopt(fd_, level, name, &v, &len) < 0) fail(errno, "getsockopt");
  return v;
}

std::string socket::describe() const {
  if (!peer_.empty()) return peer_.to_string();
  if (fd_ >= 0) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) == 0 && len > 0)
      return endpoint::from(reinterpret_cast<sockaddr*>(&ss), len).to_string();
  }
  return "fd " + std::to_string(fd_);
}

void socket::fail(int e, const char* op) const {
  throw_errno(e, std::string(op) + " " + describe());
}

void socket::wait_io(bool write, std::int64_t deadline, const std::stop_token* st,
                     const char* op) const {
  const int fd = fd_.load();
  // Closed by another tasklet since this operation's system call: as if it had come first.
  const sd::io_status s =
      fd < 0 ? sd::io_status::closed
             : sd::io_wait(reg_, fd, write ? sd::io_interest::write : sd::io_interest::read,
                           sd::scoped_deadline(deadline), st, op);
  if (s == sd::io_status::ready) return;
  // A closed socket is not described by its local address: its fd is gone.
  std::string what = op;
  if (!peer_.empty()) what += " " + peer_.to_string();
  end_wait(s, deadline, what);
}

// ---- stream ----------------------------------------------------------------------------------

std::size_t stream::read_some_impl(std::span<std::byte> buf, std::int64_t deadline,
                                   const std::stop_token* st) {
  check_open("read");
  if (buf.empty()) return 0;
  for (;;) {
    ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) fail(errno, "read");
    wait_io(false, deadline, st, "read");
  }
}

void stream::read_exact_impl(std::span<std::byte> buf, std::int64_t deadline,
                             const std::stop_token* st) {
  std::size_t got = 0;
  while (got < buf.size()) {
    std::size_t n = read_some_impl(buf.subspan(got), deadline, st);
    if (n == 0)
      throw end_of_stream("read_exact " + describe() + ": end of stream after " +
                              std::to_string(got) + " of " + std::to_string(buf.size()) + " bytes",
                          got);
    got += n;
  }
}

std::size_t stream::write_impl(std::span<const std::byte> buf, bool all, std::int64_t deadline,
                               const std::stop_token* st) {
  check_open("write");
  std::size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::send(fd_, buf.data() + done, buf.size() - done, MSG_NOSIGNAL);
    if (n >= 0) {
      done += static_cast<std::size_t>(n);
      if (!all) return done;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) fail(errno, "write");
    wait_io(true, deadline, st, "write");
  }
  return done;
}

void stream::shutdown(int how) {
  check_open("shutdown");
  if (::shutdown(fd_, how) < 0) fail(errno, "shutdown");
}

void stream::connect_impl(const endpoint& ep, int type_flags, std::int64_t deadline,
                          const std::stop_token* st) {
  close();
  peer_ = ep;
  int fd = ::socket(ep.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC | type_flags, 0);
  if (fd < 0) fail(errno, "connect");
  fd_ = fd;
  if (::connect(fd_, ep.data(), ep.size()) == 0) return;
  if (errno != EINPROGRESS && errno != EINTR && errno != EAGAIN) {
    int e = errno;
    close();
    throw_errno(e, "connect " + ep.to_string());
  }
  try {
    wait_io(true, deadline, st, "connect");
  } catch (...) {
    close();
    throw;
  }
  int err = get_option(SOL_SOCKET, SO_ERROR);
  if (err != 0) {
    close();
    throw_errno(err, "connect " + ep.to_string());
  }
}

// ---- tcp_stream ------------------------------------------------------------------------------

tcp_stream::tcp_stream(int fd, const endpoint& peer) {
  fd_ = fd;
  peer_ = peer;
}

tcp_stream tcp_stream::connect(const endpoint& ep, std::stop_token st) {
  tcp_stream s;
  s.stream::connect_impl(ep, 0, sd::no_deadline, &st);
  return s;
}

tcp_stream tcp_stream::connect_impl(std::string_view address, std::int64_t deadline,
                                    const std::stop_token* st) {
  std::vector<endpoint> eps = resolve_address(address);
  std::exception_ptr last;
  for (const endpoint& ep : eps) {
    if (ep.family() == AF_UNIX)
      throw std::invalid_argument("stackless::io: tcp_stream::connect to a unix-domain address (" +
                                  std::string(address) + "): use unix_stream");
    tcp_stream s;
    try {
      s.stream::connect_impl(ep, 0, deadline, st);
      return s;
    } catch (const std::system_error& e) {
      if (e.code() == std::errc::timed_out) throw;  // the deadline covers every endpoint
      last = std::current_exception();
    }
  }
  std::rethrow_exception(last);
}

void tcp_stream::set_nodelay(bool on) { set_option(IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0); }

// ---- unix_stream -----------------------------------------------------------------------------

unix_stream::unix_stream(int fd, const endpoint& peer) {
  fd_ = fd;
  peer_ = peer;
}

unix_stream unix_stream::connect(std::string_view path, std::stop_token st) {
  unix_stream s;
  s.stream::connect_impl(endpoint::unix_path(path), 0, sd::no_deadline, &st);
  return s;
}

std::pair<unix_stream, unix_stream> unix_stream::pair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
    throw_errno(errno, "socketpair");
  endpoint none;
  return {unix_stream(sv[0], none), unix_stream(sv[1], none)};
}

// ---- listeners -------------------------------------------------------------------------------

void listener::listen_on(const endpoint& ep, int backlog) {
  int fd = ::socket(ep.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_errno(errno, "listen " + ep.to_string());
  fd_ = fd;
  if (ep.family() != AF_UNIX) set_option(SOL_SOCKET, SO_REUSEADDR, 1);
  if (::bind(fd_, ep.data(), ep.size()) < 0 || ::listen(fd_, backlog) < 0) {
    int e = errno;
    close();
    throw_errno(e, "listen " + ep.to_string());
  }
}

int listener::accept_fd(endpoint* peer, std::int64_t deadline, const std::stop_token* st) {
  check_open("accept");
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      *peer = endpoint::from(reinterpret_cast<sockaddr*>(&ss), len);
      return fd;
    }
    // A connection reset before we took it, or a signal: take the next one.
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) fail(errno, "accept");
    wait_io(false, deadline, st, "accept");
  }
}

tcp_listener tcp_listener::bind(std::string_view address, int backlog) {
  std::vector<endpoint> eps = resolve_address(address);
  tcp_listener l;
  l.listen_on(eps.front(), backlog);
  return l;
}

tcp_stream tcp_listener::accept_impl(std::int64_t deadline, const std::stop_token* st) {
  endpoint peer;
  int fd = accept_fd(&peer, deadline, st);
  return tcp_stream(fd, peer);
}

unix_listener unix_listener::bind(std::string_view path, int backlog) {
  unix_listener l;
  l.listen_on(endpoint::unix_path(path), backlog);
  return l;
}

unix_stream unix_listener::accept_impl(std::int64_t deadline, const std::stop_token* st) {
  endpoint peer;
  int fd = accept_fd(&peer, deadline, st);
  return unix_stream(fd, peer);
}

// ---- udp_socket ------------------------------------------------------------------------------

udp_socket udp_socket::bind(std::string_view address) {
  endpoint ep = resolve_address(address).front();
  udp_socket s;
  int fd = ::socket(ep.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_errno(errno, "bind " + ep.to_string());
  s.fd_ = fd;
  if (::bind(fd, ep.data(), ep.size()) < 0) {
    int e = errno;
    s.close();
    throw_errno(e, "bind " + ep.to_string());
  }
  return s;
}

void udp_socket::send_to_impl(std::span<const std::byte> buf, const endpoint& to,
                              std::int64_t deadline, const std::stop_token* st) {
  check_open("send_to");
  for (;;) {
    ssize_t n = ::sendto(fd_, buf.data(), buf.size(), MSG_NOSIGNAL, to.data(), to.size());
    if (n >= 0) return;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) throw_errno(errno, "send_to " + to.to_string());
    wait_io(true, deadline, st, "send_to");
  }
}

std::pair<std::size_t, endpoint> udp_socket::receive_from_impl(std::span<std::byte> buf,
                                                               std::int64_t deadline,
                                                               const std::stop_token* st) {
  check_open("receive_from");
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ssize_t n = ::recvfrom(fd_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&ss), &len);
    if (n >= 0)
      return {static_cast<std::size_t>(n), endpoint::from(reinterpret_cast<sockaddr*>(&ss), len)};
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) fail(errno, "receive_from");
    wait_io(false, deadline, st, "receive_from");
  }
}

// ---- fds the caller owns ---------------------------------------------------------------------
//
// The fd is registered while at least one tasklet waits on it and released when the last one
// stops: the caller may close it any time after, and a reused fd number starts afresh (an
// EPOLL_CTL_ADD reports the fd's readiness at once, so nothing that happened before the call is
// missed). The table's lock covers registering and releasing, never the wait.

namespace {
struct fd_wait_entry {
  sd::io_registration reg;
  int users = 0;
};
std::mutex& fd_waits_mu() {
  static std::mutex mu;
  return mu;
}
std::unordered_map<int, fd_wait_entry>& fd_waits() {
  static auto* m = new std::unordered_map<int, fd_wait_entry>;  // never destroyed: used at exit
  return *m;
}
}  // namespace

bool wait_fd_until(int fd, bool write, std::int64_t deadline, const std::stop_token* st) {
  if (fd < 0) throw std::invalid_argument("stackless::io::wait_readable/writable: negative fd");
  const char* op = write ? "wait_writable" : "wait_readable";
  fd_wait_entry* e = nullptr;
  {
    std::lock_guard g(fd_waits_mu());
    e = &fd_waits()[fd];  // a node: its address is stable while it is in the map
    ++e->users;
    try {
      sd::io_register(e->reg, fd, op);
    } catch (...) {
      if (--e->users == 0) fd_waits().erase(fd);
      throw;
    }
  }
  sd::io_status s = sd::io_status::closed;
  try {
    s = sd::io_wait(e->reg, fd, write ? sd::io_interest::write : sd::io_interest::read,
                    sd::scoped_deadline(deadline), st, op);
  } catch (...) {
    std::lock_guard g(fd_waits_mu());
    if (--e->users == 0) {
      sd::io_release(e->reg, fd);
      fd_waits().erase(fd);
    }
    throw;
  }
  {
    std::lock_guard g(fd_waits_mu());
    if (--e->users == 0) {
      sd::io_release(e->reg, fd);
      fd_waits().erase(fd);
    }
  }
  if (s == sd::io_status::timeout) {
    sd::scope_check(deadline);
    return false;
  }
  const std::string what = std::string(op) + " fd " + std::to_string(fd);
  return end_wait(s, deadline, what);
}

void wait_readable(int fd, std::stop_token st) { wait_fd_until(fd, false, sd::no_deadline, &st); }
void wait_writable(int fd, std::stop_token st) { wait_fd_until(fd, true, sd::no_deadline, &st); }

}  // namespace stackless::io
