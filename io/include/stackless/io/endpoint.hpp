// SPDX-License-Identifier: Apache-2.0
// stackless/io/endpoint.hpp — socket addresses (IPv4, IPv6, unix-domain) and name resolution.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace stackless::io {

/// endpoint is an IPv4, IPv6 or unix-domain socket address.
class endpoint {
 public:
  endpoint() noexcept;
  /// parse() reads a numeric address: "127.0.0.1:8080", "[::1]:8080", "unix:/run/x.sock".
  /// Throws std::invalid_argument naming the text when it is not one (names: resolve()).
  static endpoint parse(std::string_view text);
  /// unix_path() is the unix-domain address of a filesystem path (at most 107 bytes; longer
  /// throws std::invalid_argument). A path starting with '@' is Linux's abstract namespace.
  static endpoint unix_path(std::string_view path);
  /// from() copies a sockaddr (accept(), recvfrom()); throws std::invalid_argument if len is
  /// larger than any address.
  static endpoint from(const sockaddr* sa, socklen_t len);

  int family() const noexcept;          // AF_INET, AF_INET6, AF_UNIX, or AF_UNSPEC when empty
  std::uint16_t port() const noexcept;  // 0 for unix-domain addresses
  /// to_string(): "127.0.0.1:8080", "[::1]:8080", "unix:/path".
  std::string to_string() const;

  const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&ss_); }
  sockaddr* data() noexcept { return reinterpret_cast<sockaddr*>(&ss_); }
  socklen_t size() const noexcept { return len_; }
  bool empty() const noexcept { return len_ == 0; }

  friend bool operator==(const endpoint& a, const endpoint& b) noexcept;

 private:
  sockaddr_storage ss_;
  socklen_t len_ = 0;
};

/// resolve() looks up host and service ("example.org", "http" or "80") with getaddrinfo on the
/// blocking pool (io::run_blocking): a tasklet parks, its worker goes on. Throws
/// std::system_error naming the name on failure ("resolve nosuch.invalid:80: Name or service
/// not known"); returns at least one endpoint otherwise, IPv4 and IPv6 in the resolver's order.
std::vector<endpoint> resolve(std::string_view host, std::string_view service);

/// resolve_address() resolves "host:port" / "[v6]:port" / "unix:/path": numeric addresses
/// directly, names through resolve(). What connect(address) uses.
std::vector<endpoint> resolve_address(std::string_view address);

}  // namespace stackless::io
