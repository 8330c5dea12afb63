// SPDX-License-Identifier: Apache-2.0
// io/src/endpoint.cpp — socket addresses: parsing, printing, resolving (getaddrinfo on the
// blocking pool).
#include "stackless/io/endpoint.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <system_error>

#include "stackless/io/blocking.hpp"

namespace stackless::io {

namespace {
[[noreturn]] void bad_address(std::string_view text, const char* why) {
  throw std::invalid_argument("stackless::io: bad address \"" + std::string(text) + "\": " + why);
}

// split_host_port(): "host:port" or "[v6]:port" into its parts; false if there is no port.
bool split_host_port(std::string_view text, std::string_view* host, std::string_view* port) {
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return false;
    *host = text.substr(1, close - 1);
    *port = text.substr(close + 2);
    return true;
  }
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  *host = text.substr(0, colon);
  *port = text.substr(colon + 1);
  return true;
}

bool parse_port(std::string_view p, std::uint16_t* out) {
  if (p.empty() || p.size() > 5) return false;
  unsigned v = 0;
  for (char c : p) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > 65535) return false;
  *out = static_cast<std::uint16_t>(v);
  return true;
}

// gai_category: getaddrinfo's EAI_* codes, with gai_strerror's messages.
class gai_category_t : public std::error_category {
 public:
  const char* name() const noexcept override { return "getaddrinfo"; }
  std::string message(int ev) const override { return gai_strerror(ev); }
};
const std::error_category& gai_category() {
  static const gai_category_t c;
  return c;
}
}  // namespace

endpoint::endpoint() noexcept : ss_{} {}

endpoint endpoint::from(const sockaddr* sa, socklen_t len) {
  if (len > sizeof(sockaddr_storage))
    throw std::invalid_argument("stackless::io: address too long");
  endpoint e;
  std::memcpy(&e.ss_, sa, len);
  e.len_ = len;
  return e;
}

endpoint endpoint::unix_path(std::string_view path) {
  endpoint e;
  auto* un = reinterpret_cast<sockaddr_un*>(&e.ss_);
  if (path.empty()) bad_address(path, "empty unix-domain path");
  if (path.size() >= sizeof(un->sun_path))
    bad_address(path, "unix-domain path longer than 107 bytes");
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, path.data(), path.size());
  if (path.front() == '@') un->sun_path[0] = '\0';  // Linux's abstract namespace
  e.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() +
                                  (path.front() == '@' ? 0 : 1));
  return e;
}

endpoint endpoint::parse(std::string_view text) {
  if (text.substr(0, 5) == "unix:") return unix_path(text.substr(5));
  std::string_view host, port;
  if (!split_host_port(text, &host, &port)) bad_address(text, "expected host:port or [v6]:port");
  std::uint16_t p = 0;
  if (!parse_port(port, &p)) bad_address(text, "the port is not a number from 0 to 65535");
  endpoint e;
  const std::string h(host);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&e.ss_);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&e.ss_);
  if (inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(p);
    e.len_ = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(p);
    e.len_ = sizeof(sockaddr_in6);
  } else {
    bad_address(text, "the host is not a numeric IPv4 or IPv6 address (use resolve())");
  }
  return e;
}

int endpoint::family() const noexcept { return len_ ? ss_.ss_family : AF_UNSPEC; }

std::uint16_t endpoint::port() const noexcept {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&ss_)->sin_port);
  if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss_)->sin6_port);
  return 0;
}

std::string endpoint::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  switch (family()) {
    case AF_INET:
      inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss_)->sin_addr, buf, sizeof buf);
      return std::string(buf) + ":" + std::to_string(port());
    case AF_INET6:
      inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss_)->sin6_addr, buf, sizeof buf);
      return "[" + std::string(buf) + "]:" + std::to_string(port());
    case AF_UNIX: {
      const auto* un = reinterpret_cast<const sockaddr_un*>(&ss_);
      std::size_t n =
          len_ > offsetof(sockaddr_un, sun_path) ? len_ - offsetof(sockaddr_un, sun_path) : 0;
      if (n == 0) return "unix:(unnamed)";
      if (un->sun_path[0] == '\0') return "unix:@" + std::string(un->sun_path + 1, n - 1);
      return "unix:" + std::string(un->sun_path, strnlen(un->sun_path, n));
    }
    default:
      return "(no address)";
  }
}

bool operator==(const endpoint& a, const endpoint& b) noexcept {
  return a.len_ == b.len_ && std::memcmp(&a.ss_, &b.ss_, a.len_) == 0;
}

std::vector<endpoint> resolve(std::string_view host, std::string_view service) {
  const std::string h(host), s(service);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* res = nullptr;
  int sys_err = 0;
  int rc = run_blocking([&] {
    int r = getaddrinfo(h.c_str(), s.c_str(), &hints, &res);
    sys_err = errno;  // the pool thread's errno, for EAI_SYSTEM
    return r;
  });
  if (rc != 0) {
    const std::string what = "resolve " + h + ":" + s;
    if (rc == EAI_SYSTEM) throw std::system_error(sys_err, std::generic_category(), what);
    throw std::system_error(rc, gai_category(), what);
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(res, freeaddrinfo);
  std::vector<endpoint> out;
  for (addrinfo* ai = res; ai; ai = ai->ai_next)
    out.push_back(endpoint::from(ai->ai_addr, ai->ai_addrlen));
  if (out.empty()) throw std::system_error(EAI_NONAME, gai_category(), "resolve " + h + ":" + s);
  return out;
}

std::vector<endpoint> resolve_address(std::string_view address) {
  if (address.substr(0, 5) == "unix:") return {endpoint::unix_path(address.substr(5))};
  std::string_view host, port;
  if (!split_host_port(address, &host, &port))
    bad_address(address, "expected host:port or [v6]:port");
  std::uint16_t p = 0;
  if (!parse_port(port, &p)) bad_address(address, "the port is not a number from 0 to 65535");
  const std::string h(host);
  in6_addr tmp{};
  if (inet_pton(AF_INET, h.c_str(), &tmp) == 1 || inet_pton(AF_INET6, h.c_str(), &tmp) == 1)
    return {endpoint::parse(address)};
  if (h.empty()) bad_address(address, "empty host");
  return resolve(h, port);
}

}  // namespace stackless::io
