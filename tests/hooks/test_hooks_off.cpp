// SPDX-License-Identifier: Apache-2.0
// test_hooks_off.cpp — the same hiredis and libcurl workloads as test_hooks.cpp, in a program
// that does not link the hooks: every command blocks its worker, so at most `workers` are ever
// in flight (the difference the hooks make, shown by counts, not by timing). CTest runs it a second
// time with LD_PRELOAD=libstackless_hooks.so and STACKLESS_EXPECT_HOOKS=1 (tests/CMakeLists.txt):
// then the preloaded interposer must find this program's statically linked runtime and make the
// same workload concurrent.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "curl_client.hpp"
#include "fixture.hpp"
#include "http_server.hpp"  // examples/: the project's own HTTP server
#include "redis_server.hpp"
#include "stackless/io.hpp"

namespace {

using namespace stackless_test;
namespace io = stackless::io;

class HooksOff : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(HooksOff);

bool expect_hooks() {
  const char* e = std::getenv("STACKLESS_EXPECT_HOOKS");
  return e && std::strcmp(e, "1") == 0;
}

TEST_P(HooksOff, HiredisClientsRunOnePerWorkerWithoutTheHooks) {
  redis_server redis;
  const int clients = static_cast<int>(scaled(200, 50));
  const int rounds = 3;
  redis_result r = redis_rounds(sched(), redis.port(), clients, rounds);
  EXPECT_EQ(r.failed, 0);
  EXPECT_EQ(r.correct, clients * rounds);
  if (expect_hooks()) {
    EXPECT_TRUE(io::hooks_active()) << "LD_PRELOAD of libstackless_hooks.so did not attach";
    EXPECT_GT(r.max_in_flight, static_cast<int>(workers()));
  } else {
    EXPECT_FALSE(io::hooks_active());
    EXPECT_LE(r.max_in_flight, static_cast<int>(workers()));
  }
}

TEST_P(HooksOff, LibcurlTransfersRunOnePerWorkerWithoutTheHooks) {
  const int transfers = static_cast<int>(scaled(200, 50));
  // The server has a scheduler (and a worker) of its own: without the hooks a transfer blocks
  // the client's worker, which must not be the one that would answer it.
  stackless::scheduler server_sched({.workers = 1});
  auto listener = io::tcp_listener::bind("127.0.0.1:0", 4096);
  const std::string url = "http://" + listener.local_endpoint().to_string() + "/";
  (void)server_sched.spawn(http_example::accept_loop, std::ref(listener));
  curl_result r = curl_transfers(sched(), url, transfers, http_example::kBody);
  server_sched.shutdown();  // kills the accept loop and the connections
  EXPECT_EQ(r.ok, transfers);
  EXPECT_EQ(r.failed, 0);
  if (expect_hooks()) {
    EXPECT_GT(r.max_in_flight, static_cast<int>(workers()));
  } else {
    EXPECT_LE(r.max_in_flight, static_cast<int>(workers()));
  }
}

}  // namespace
