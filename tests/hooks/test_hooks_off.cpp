// SPDX-License-Identifier: Apache-2.0
// test_hooks_off.cpp — the same hiredis workload as test_hooks.cpp, in a program that does not
// link the hooks: every command blocks its worker, so at most `workers` are ever in flight (the
// difference the hooks make, shown by counts, not by timing). CTest runs it a second time with
// LD_PRELOAD=libstackless_hooks.so and STACKLESS_EXPECT_HOOKS=1 (tests/CMakeLists.txt): then the
// preloaded interposer must find this program's statically linked runtime and make the same
// workload concurrent.
#include <cstdlib>
#include <cstring>

#include "fixture.hpp"
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

}  // namespace
