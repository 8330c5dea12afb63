// SPDX-License-Identifier: Apache-2.0
// bench/hiredis_rtt.cpp — what the hooks cost on a blocking client's round trip: a loop of
// hiredis GETs against a redis-server this program starts, (1) on a plain thread and (2) in one
// tasklet. Built twice: stackless_hiredis_rtt without the hooks, stackless_hiredis_rtt_hooked
// with stackless::hooks linked in. The hooked tasklet's loop against the plain thread's loop of
// the unhooked build is issue 15's "within 1.2x" figure (tools/dev bench prints both).
//
//   stackless_hiredis_rtt[_hooked] [--gets N] [--reps R]
//
// Output: one line per (where) with the median ns per GET over R repetitions.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stackless/stackless.hpp>
#include <string>
#include <vector>

#include "../tests/hooks/redis_server.hpp"

namespace {

double gets_ns(int port, int n) {
  redisContext* c = redisConnect("127.0.0.1", port);
  if (!c || c->err) {
    std::fprintf(stderr, "redisConnect failed\n");
    std::exit(1);
  }
  freeReplyObject(redisCommand(c, "SET bench v"));
  for (int i = 0; i < 100; ++i) freeReplyObject(redisCommand(c, "GET bench"));  // warm
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    auto* r = static_cast<redisReply*>(redisCommand(c, "GET bench"));
    if (!r || r->type != REDIS_REPLY_STRING) {
      std::fprintf(stderr, "GET failed\n");
      std::exit(1);
    }
    freeReplyObject(r);
  }
  auto t1 = std::chrono::steady_clock::now();
  redisFree(c);
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / n;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int n = 20000, reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--gets") == 0) n = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--reps") == 0) reps = std::atoi(argv[i + 1]);
  }
  stackless_test::redis_server redis;
  std::vector<double> plain, tasklet;
  stackless::scheduler s({.workers = 1});
  for (int r = 0; r < reps; ++r) {
    plain.push_back(gets_ns(redis.port(), n));
    tasklet.push_back(s.block_on([&] { return gets_ns(redis.port(), n); }));
  }
  const char* build = stackless::io::hooks_active() ? "hooked" : "unhooked";
  std::printf("hiredis GET round trip, %s build: plain thread %.0f ns, tasklet (T=1) %.0f ns\n",
              build, median(plain), median(tasklet));
  return 0;
}
