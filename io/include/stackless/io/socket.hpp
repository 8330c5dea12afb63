// SPDX-License-Identifier: Apache-2.0
// stackless/io/socket.hpp — tasklet-aware sockets: tcp_stream, tcp_listener, udp_socket,
// unix_stream, unix_listener, and waiting for fds the caller owns (stacklesslib's
// replacements.socket).
//
// Every call that may wait parks only the calling tasklet (its worker runs others meanwhile;
// the scheduler's netpoller wakes it); from a plain thread it blocks the thread. Each has a form
// with a std::stop_token (a stop request ends the wait: operation_cancelled), and `_for` /
// `_until` forms with their own timeout; all of them obey the caller's timeout_scope
// (timeout_error) and kill (tasklet_exit). What a call throws:
//   - std::system_error with the errno, naming the operation and the endpoint:
//     "connect 127.0.0.1:9: Connection refused"; its own timeout is errc::timed_out
//     ("read 127.0.0.1:6379: Connection timed out");
//   - end_of_stream from read_exact() when the peer closed first;
//   - std::logic_error-derived usage_error for a call on a closed socket.
// A wait that ends early (timeout, stop, kill) has consumed nothing that was not returned:
// read_some() reads only once it returns; write_all() may have written a prefix (write_some()
// says how much).
//
// Sockets are non-blocking underneath, close-on-exec, and never raise SIGPIPE (MSG_NOSIGNAL; a
// write to a reset connection is EPIPE). RAII: the destructor closes. A socket may be used by
// one reader and one writer tasklet at a time (a read and a write may wait concurrently);
// closing it while another tasklet waits on it wakes that tasklet with EBADF. A socket may be
// used from tasklets of different schedulers, one after another (its registration moves).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>

#include "stackless/io/endpoint.hpp"
#include "stackless/runtime/detail/deadline.hpp"
#include "stackless/runtime/detail/io_registration.hpp"

namespace stackless::io {

/// end_of_stream is thrown by read_exact() when the peer closes the stream before `n` bytes.
class end_of_stream : public std::runtime_error {
 public:
  end_of_stream(const std::string& what, std::size_t got) : std::runtime_error(what), got_(got) {}
  std::size_t bytes_read() const noexcept { return got_; }  // what was read before the end

 private:
  std::size_t got_;
};

namespace detail {
/// wait() / wait_*() of socket: the deadline is the call's own (no_deadline: none).
using stackless::detail::no_deadline;
template <class Rep, class P>
std::int64_t after(std::chrono::duration<Rep, P> d) {
  return stackless::detail::deadline_after(d);
}
template <class C, class D>
std::int64_t at(std::chrono::time_point<C, D> tp) {
  return stackless::detail::deadline_at(tp);
}
}  // namespace detail

/// socket is what every socket type shares: the fd, its registration with the netpoller, close
/// and the local address. Movable, not copyable.
class socket {
 public:
  socket() noexcept = default;
  /// socket(fd) adopts an open socket fd (made non-blocking here); the object closes it.
  explicit socket(int fd);
  socket(socket&& o) noexcept;
  socket& operator=(socket&& o) noexcept;
  socket(const socket&) = delete;
  socket& operator=(const socket&) = delete;
  ~socket();

  bool is_open() const noexcept { return fd_ >= 0; }
  int native_handle() const noexcept { return fd_; }
  /// close(): wakes any tasklet waiting on this socket (EBADF), then closes the fd. Idempotent.
  /// Another tasklet may close a socket that one uses: a waiting operation fails with EBADF at
  /// once, a later one with EBADF or usage_error. (As with threads and close(2), an operation
  /// already inside its system call at that instant may act on the fd number if the kernel
  /// hands it out again first; closing a socket in use is for ending a connection, not for
  /// reusing its object.)
  void close() noexcept;
  /// release() gives up the fd without closing it (the caller owns it from now on).
  int release() noexcept;
  endpoint local_endpoint() const;
  /// set_option() / get_option(): setsockopt/getsockopt for an int option.
  void set_option(int level, int name, int value);
  int get_option(int level, int name) const;

 protected:
  /// wait_io() waits until the fd is ready (readable if `write` is false), throwing as the
  /// header says: `op` and `peer` name the call in messages.
  void wait_io(bool write, std::int64_t deadline, const std::stop_token* st, const char* op) const;
  /// fail() throws the system_error for errno `e` of operation `op`.
  [[noreturn]] void fail(int e, const char* op) const;
  void check_open(const char* op) const;
  std::string describe() const;  // the endpoint for messages: the peer, else the local address

  // Atomic (seq_cst loads are plain loads on x86) because close() may come from another
  // tasklet while an operation reads it; the operations read it once per system call.
  std::atomic<int> fd_{-1};
  endpoint peer_;  // for streams and connected sockets; empty otherwise
  mutable stackless::detail::io_registration reg_;
};

/// stream is a connected byte stream (tcp_stream and unix_stream are streams).
class stream : public socket {
 public:
  using socket::socket;
  stream() noexcept = default;

  /// read_some() reads at least one byte, or returns 0 at the end of the stream.
  std::size_t read_some(std::span<std::byte> buf, std::stop_token st = {}) {
    return read_some_impl(buf, detail::no_deadline, &st);
  }
  template <class Rep, class P>
  std::size_t read_some_for(std::span<std::byte> buf, std::chrono::duration<Rep, P> d,
                            std::stop_token st = {}) {
    return read_some_impl(buf, detail::after(d), &st);
  }
  template <class C, class D>
  std::size_t read_some_until(std::span<std::byte> buf, std::chrono::time_point<C, D> tp,
                              std::stop_token st = {}) {
    return read_some_impl(buf, detail::at(tp), &st);
  }
  /// read_exact() fills buf, or throws end_of_stream.
  void read_exact(std::span<std::byte> buf, std::stop_token st = {}) {
    read_exact_impl(buf, detail::no_deadline, &st);
  }
  template <class Rep, class P>
  void read_exact_for(std::span<std::byte> buf, std::chrono::duration<Rep, P> d,
                      std::stop_token st = {}) {
    read_exact_impl(buf, detail::after(d), &st);
  }
  template <class C, class D>
  void read_exact_until(std::span<std::byte> buf, std::chrono::time_point<C, D> tp,
                        std::stop_token st = {}) {
    read_exact_impl(buf, detail::at(tp), &st);
  }
  /// write_some() writes at least one byte (unless buf is empty): how many.
  std::size_t write_some(std::span<const std::byte> buf, std::stop_token st = {}) {
    return write_impl(buf, false, detail::no_deadline, &st);
  }
  /// write_all() writes all of buf (looping over partial writes).
  void write_all(std::span<const std::byte> buf, std::stop_token st = {}) {
    write_impl(buf, true, detail::no_deadline, &st);
  }
  void write_all(std::string_view s, std::stop_token st = {}) { write_all(as_bytes(s), st); }
  template <class Rep, class P>
  void write_all_for(std::span<const std::byte> buf, std::chrono::duration<Rep, P> d,
                     std::stop_token st = {}) {
    write_impl(buf, true, detail::after(d), &st);
  }
  template <class Rep, class P>
  void write_all_for(std::string_view s, std::chrono::duration<Rep, P> d, std::stop_token st = {}) {
    write_impl(as_bytes(s), true, detail::after(d), &st);
  }
  template <class C, class D>
  void write_all_until(std::span<const std::byte> buf, std::chrono::time_point<C, D> tp,
                       std::stop_token st = {}) {
    write_impl(buf, true, detail::at(tp), &st);
  }
  /// shutdown(): SHUT_WR (the peer reads the end of the stream), SHUT_RD or SHUT_RDWR.
  void shutdown(int how = SHUT_WR);
  const endpoint& peer_endpoint() const noexcept { return peer_; }

  static std::span<const std::byte> as_bytes(std::string_view s) noexcept {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
  }

 protected:
  std::size_t read_some_impl(std::span<std::byte> buf, std::int64_t deadline,
                             const std::stop_token* st);
  void read_exact_impl(std::span<std::byte> buf, std::int64_t deadline, const std::stop_token* st);
  std::size_t write_impl(std::span<const std::byte> buf, bool all, std::int64_t deadline,
                         const std::stop_token* st);
  /// connect_impl(): a socket of ep's family, connected to ep (EINPROGRESS, wait writable,
  /// SO_ERROR), within deadline.
  void connect_impl(const endpoint& ep, int type_flags, std::int64_t deadline,
                    const std::stop_token* st);
  friend class listener;
};

/// tcp_stream is a TCP connection.
class tcp_stream : public stream {
 public:
  tcp_stream() noexcept = default;
  /// connect() resolves address ("host:port", "[v6]:port") and connects to the first endpoint
  /// that accepts, trying each in turn; the error of the last one if none does.
  static tcp_stream connect(std::string_view address, std::stop_token st = {}) {
    return connect_impl(address, detail::no_deadline, &st);
  }
  template <class Rep, class P>
  static tcp_stream connect_for(std::string_view address, std::chrono::duration<Rep, P> d,
                                std::stop_token st = {}) {
    return connect_impl(address, detail::after(d), &st);
  }
  template <class C, class D>
  static tcp_stream connect_until(std::string_view address, std::chrono::time_point<C, D> tp,
                                  std::stop_token st = {}) {
    return connect_impl(address, detail::at(tp), &st);
  }
  static tcp_stream connect(const endpoint& ep, std::stop_token st = {});
  /// set_nodelay(): TCP_NODELAY (no Nagle delay for small writes).
  void set_nodelay(bool on = true);

 private:
  friend class tcp_listener;
  explicit tcp_stream(int fd, const endpoint& peer);
  static tcp_stream connect_impl(std::string_view address, std::int64_t deadline,
                                 const std::stop_token* st);
};

/// unix_stream is a unix-domain stream connection.
class unix_stream : public stream {
 public:
  unix_stream() noexcept = default;
  /// connect(path): a filesystem path, or "@name" in the abstract namespace.
  static unix_stream connect(std::string_view path, std::stop_token st = {});
  /// pair(): two connected streams (socketpair).
  static std::pair<unix_stream, unix_stream> pair();

 private:
  friend class unix_listener;
  explicit unix_stream(int fd, const endpoint& peer);
};

/// listener is a listening socket (tcp_listener and unix_listener are listeners).
class listener : public socket {
 public:
  listener() noexcept = default;

 protected:
  void listen_on(const endpoint& ep, int backlog);
  /// accept_fd() waits for a connection: the new fd (non-blocking, close-on-exec) and its peer.
  /// EMFILE/ENFILE/ENOBUFS/ENOMEM are thrown (the caller may back off and accept again: the
  /// pending connection stays queued).
  int accept_fd(endpoint* peer, std::int64_t deadline, const std::stop_token* st);
};

/// tcp_listener accepts TCP connections.
class tcp_listener : public listener {
 public:
  tcp_listener() noexcept = default;
  /// bind() listens on address ("127.0.0.1:0" picks a free port: local_endpoint() tells which;
  /// "[::]:8080"), with SO_REUSEADDR.
  static tcp_listener bind(std::string_view address, int backlog = 1024);
  tcp_stream accept(std::stop_token st = {}) { return accept_impl(detail::no_deadline, &st); }
  template <class Rep, class P>
  tcp_stream accept_for(std::chrono::duration<Rep, P> d, std::stop_token st = {}) {
    return accept_impl(detail::after(d), &st);
  }
  template <class C, class D>
  tcp_stream accept_until(std::chrono::time_point<C, D> tp, std::stop_token st = {}) {
    return accept_impl(detail::at(tp), &st);
  }

 private:
  tcp_stream accept_impl(std::int64_t deadline, const std::stop_token* st);
};

/// unix_listener accepts unix-domain stream connections.
class unix_listener : public listener {
 public:
  unix_listener() noexcept = default;
  /// bind(path): a filesystem path (must not exist yet) or "@name" (abstract namespace).
  static unix_listener bind(std::string_view path, int backlog = 1024);
  unix_stream accept(std::stop_token st = {}) { return accept_impl(detail::no_deadline, &st); }
  template <class Rep, class P>
  unix_stream accept_for(std::chrono::duration<Rep, P> d, std::stop_token st = {}) {
    return accept_impl(detail::after(d), &st);
  }

 private:
  unix_stream accept_impl(std::int64_t deadline, const std::stop_token* st);
};

/// udp_socket sends and receives datagrams.
class udp_socket : public socket {
 public:
  udp_socket() noexcept = default;
  /// bind() makes a socket bound to address ("127.0.0.1:0", "[::]:5353").
  static udp_socket bind(std::string_view address);
  /// send_to() sends one datagram (all of buf, or throws EMSGSIZE).
  void send_to(std::span<const std::byte> buf, const endpoint& to, std::stop_token st = {}) {
    send_to_impl(buf, to, detail::no_deadline, &st);
  }
  /// receive_from() waits for one datagram: its size (truncated to buf) and its sender.
  std::pair<std::size_t, endpoint> receive_from(std::span<std::byte> buf, std::stop_token st = {}) {
    return receive_from_impl(buf, detail::no_deadline, &st);
  }
  template <class Rep, class P>
  std::pair<std::size_t, endpoint> receive_from_for(std::span<std::byte> buf,
                                                    std::chrono::duration<Rep, P> d,
                                                    std::stop_token st = {}) {
    return receive_from_impl(buf, detail::after(d), &st);
  }

 private:
  void send_to_impl(std::span<const std::byte> buf, const endpoint& to, std::int64_t deadline,
                    const std::stop_token* st);
  std::pair<std::size_t, endpoint> receive_from_impl(std::span<std::byte> buf,
                                                     std::int64_t deadline,
                                                     const std::stop_token* st);
};

// ---- fds the caller owns ---------------------------------------------------------------------

/// wait_readable() / wait_writable() wait until `fd` (the caller's; it should be non-blocking)
/// is ready. The _for/_until forms return false on timeout. For libraries with their own fds;
/// the fd is registered for the duration of the call only, so closing it afterwards needs
/// nothing more.
void wait_readable(int fd, std::stop_token st = {});
void wait_writable(int fd, std::stop_token st = {});
bool wait_fd_until(int fd, bool write, std::int64_t deadline, const std::stop_token* st);
template <class Rep, class P>
bool wait_readable_for(int fd, std::chrono::duration<Rep, P> d, std::stop_token st = {}) {
  return wait_fd_until(fd, false, detail::after(d), &st);
}
template <class Rep, class P>
bool wait_writable_for(int fd, std::chrono::duration<Rep, P> d, std::stop_token st = {}) {
  return wait_fd_until(fd, true, detail::after(d), &st);
}
template <class C, class D>
bool wait_readable_until(int fd, std::chrono::time_point<C, D> tp, std::stop_token st = {}) {
  return wait_fd_until(fd, false, detail::at(tp), &st);
}
template <class C, class D>
bool wait_writable_until(int fd, std::chrono::time_point<C, D> tp, std::stop_token st = {}) {
  return wait_fd_until(fd, true, detail::at(tp), &st);
}

}  // namespace stackless::io
