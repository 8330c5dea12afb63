// SPDX-License-Identifier: Apache-2.0
// redis_server.hpp — a real redis-server (Debian's), started by a test on a free loopback port
// and stopped with it; and the hiredis workload both hook tests run: tasklets doing SET/GET
// rounds through hiredis's blocking API, counting how many requests are in flight at once.
#pragma once

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "stackless/stackless.hpp"

extern char** environ;

namespace stackless_test {

class redis_server {
 public:
  redis_server() {
    port_ = free_port();
    const std::string p = std::to_string(port_);
    std::vector<std::string> args = {"redis-server", "--port",     p,         "--bind",
                                     "127.0.0.1",    "--save",     "",        "--appendonly",
                                     "no",           "--loglevel", "warning", "--maxclients",
                                     "4000"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawnp(&pid_, "redis-server", &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
      throw std::runtime_error("cannot start redis-server (tools/dev deps installs it): " +
                               std::string(strerror(rc)));
    // Ready when it accepts a connection (a plain thread: the hooks are libc's here).
    for (int i = 0; i < 2000; ++i) {
      if (redisContext* c = redisConnect("127.0.0.1", port_)) {
        const bool ok = c->err == 0;
        redisFree(c);
        if (ok) return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    stop();
    throw std::runtime_error("redis-server did not accept connections within 20 s");
  }
  ~redis_server() { stop(); }
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;
  int port() const { return port_; }

 private:
  static int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) < 0)
      throw std::runtime_error("no free loopback port");
    ::close(fd);
    return ntohs(a.sin_port);
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }
  pid_t pid_ = -1;
  int port_ = 0;
};

struct redis_result {
  int correct = 0;  // GETs that returned what the tasklet SET
  int failed = 0;   // errors (a failed connect, a wrong reply)
  int max_in_flight = 0;
};

// redis_rounds() runs `clients` tasklets on `sched`, each with its own hiredis connection doing
// `rounds` SET then GET of its own key. in_flight counts the commands between send and reply:
// without the hooks a command blocks its worker, so at most `workers` are ever in flight; with
// them, a tasklet waiting for its reply is parked and others send theirs.
inline redis_result redis_rounds(stackless::scheduler& sched, int port, int clients, int rounds) {
  std::atomic<int> in_flight{0}, max_in_flight{0}, correct{0}, failed{0};
  auto note = [&](int n) {
    int m = max_in_flight.load();
    while (n > m && !max_in_flight.compare_exchange_weak(m, n)) {
    }
  };
  sched.block_on([&] {
    std::vector<stackless::tasklet<void>> ts;
    for (int c = 0; c < clients; ++c) {
      ts.push_back(stackless::spawn([&, c] {
        redisContext* ctx = redisConnect("127.0.0.1", port);
        if (!ctx || ctx->err) {
          failed.fetch_add(1);
          if (ctx) redisFree(ctx);
          return;
        }
        for (int r = 0; r < rounds; ++r) {
          const std::string key = "k" + std::to_string(c);
          const std::string val = "v" + std::to_string(c) + "." + std::to_string(r);
          note(in_flight.fetch_add(1) + 1);
          auto* set =
              static_cast<redisReply*>(redisCommand(ctx, "SET %s %s", key.c_str(), val.c_str()));
          auto* get =
              set ? static_cast<redisReply*>(redisCommand(ctx, "GET %s", key.c_str())) : nullptr;
          in_flight.fetch_sub(1);
          if (get && get->type == REDIS_REPLY_STRING && val == get->str)
            correct.fetch_add(1);
          else
            failed.fetch_add(1);
          if (set) freeReplyObject(set);
          if (get) freeReplyObject(get);
        }
        redisFree(ctx);
      }));
    }
    for (auto& t : ts) t.join();
  });
  return {correct.load(), failed.load(), max_in_flight.load()};
}

}  // namespace stackless_test
