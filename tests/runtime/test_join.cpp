// SPDX-License-Identifier: Apache-2.0
// test_join.cpp — join()/join_for(): values, exceptions, several joiners, joins from tasklets and
// plain threads, joining yourself, killed tasklets, and where the exceptions of detached tasklets
// go (options::on_error).
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fixture.hpp"

namespace {

using namespace stackless_test;
using stackless::tasklet;
using stackless::tasklet_killed;
using stackless::usage_error;
namespace this_tasklet = stackless::this_tasklet;

struct custom_error {
  int code;
};

class JoinTest : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(JoinTest);

TEST_P(JoinTest, ReturnsTheValueFromAPlainThread) {
  auto t = sched().spawn([] {
    this_tasklet::yield();
    return 42;
  });
  EXPECT_EQ(t.join(), 42);
  EXPECT_EQ(t.join(), 42) << "a copyable result can be joined again";
  EXPECT_FALSE(t.alive());
}

TEST_P(JoinTest, ReturnsTheValueInsideATasklet) {
  const int v = sched().block_on([] {
    auto a = stackless::spawn([] { return 20; });
    auto b = stackless::spawn([] {
      this_tasklet::yield();
      return 22;
    });
    return a.join() + b.join();
  });
  EXPECT_EQ(v, 42);
}

TEST_P(JoinTest, MoveOnlyResultIsHandedOutOnce) {
  auto t = sched().spawn([] { return std::make_unique<int>(7); });
  auto p = t.join();
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, 7);
  EXPECT_THROW(t.join(), usage_error);
}

TEST_P(JoinTest, RethrowsTheTaskletsException) {
  auto t = sched().spawn([]() -> int {
    this_tasklet::yield();
    throw std::runtime_error("boom in tasklet");
  });
  try {
    t.join();
    ADD_FAILURE() << "join() did not rethrow";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "boom in tasklet");
  }
  EXPECT_THROW(t.join(), std::runtime_error) << "joining again rethrows again";

  auto u = sched().spawn([] { throw custom_error{17}; });
  try {
    u.join();
    ADD_FAILURE() << "join() did not rethrow";
  } catch (const custom_error& e) {
    EXPECT_EQ(e.code, 17) << "exceptions not derived from std::exception pass through too";
  }
}

TEST_P(JoinTest, RethrowsInsideAJoiningTasklet) {
  const std::string msg = sched().block_on([] {
    auto child = stackless::spawn([] { throw std::logic_error("child failed"); });
    try {
      child.join();
    } catch (const std::logic_error& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  });
  EXPECT_EQ(msg, "child failed");
}

TEST_P(JoinTest, BlockOnRethrows) {
  EXPECT_THROW(sched().block_on([] { throw std::out_of_range("oops"); }), std::out_of_range);
  EXPECT_THROW(sched().block_on([]() -> int { throw custom_error{1}; }), custom_error);
}

TEST_P(JoinTest, ManyJoinersAllSeeTheValue) {
  door d;
  auto target = sched().spawn([&] {
    d.wait();
    return std::string("shared");
  });
  // Tasklet joiners…
  std::vector<tasklet<std::string>> joiners;
  for (int i = 0; i < 8; ++i)
    joiners.push_back(sched().spawn([target]() mutable { return target.join(); }));
  // …and plain-thread joiners.
  std::vector<std::string> seen(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] { seen[i] = tasklet<std::string>(target).join(); });
  ASSERT_TRUE(wait_until([&] { return d.occupied(); }));
  d.open();
  for (auto& j : joiners) EXPECT_EQ(j.join(), "shared");
  for (auto& th : threads) th.join();
  for (auto& s : seen) EXPECT_EQ(s, "shared");
}

TEST_P(JoinTest, JoinOfAnEndedTaskletReturnsAtOnce) {
  auto t = sched().spawn([] { return 5; });
  sched().drain();
  EXPECT_FALSE(t.alive());
  EXPECT_TRUE(t.join_for(0ms));
  EXPECT_EQ(t.join(), 5);
}

TEST_P(JoinTest, JoinForTimesOutThenSucceeds) {
  door d;
  auto t = sched().spawn([&] {
    d.wait();
    return 3;
  });
  ASSERT_TRUE(wait_until([&] { return d.occupied(); }));
  EXPECT_FALSE(t.join_for(10ms)) << "parked tasklet: join_for must time out";
  // The same inside a tasklet.
  EXPECT_FALSE(sched().block_on([t]() mutable { return t.join_for(5ms); }));
  EXPECT_TRUE(t.alive());
  d.open();
  EXPECT_TRUE(t.join_for(60s));
  EXPECT_EQ(t.join(), 3);
}

TEST_P(JoinTest, JoinForInsideATaskletSucceedsWhenTheTargetEnds) {
  EXPECT_TRUE(sched().block_on([] {
    auto child = stackless::spawn([] {
      for (int i = 0; i < 10; ++i) this_tasklet::yield();
    });
    return child.join_for(60s);
  }));
}

TEST_P(JoinTest, JoiningYourselfIsAUsageError) {
  sched().block_on([] {
    auto me = this_tasklet::current();
    EXPECT_THROW(me.join(), usage_error);
    EXPECT_THROW(me.join_for(1ms), usage_error);
  });
}

TEST_P(JoinTest, JoinOfAKilledVoidTaskletReturnsNormally) {
  auto t = sched().spawn([] {
    for (;;) this_tasklet::yield();
  });
  t.kill();
  EXPECT_NO_THROW(t.join());
  EXPECT_FALSE(t.alive());
}

TEST_P(JoinTest, JoinOfAKilledValueTaskletThrowsTaskletKilled) {
  auto t = sched().spawn([]() -> int {
    park_forever();
    return 1;
  });
  ASSERT_TRUE(wait_until([&] { return t.blocked(); }));
  t.kill();
  EXPECT_THROW(t.join(), tasklet_killed);
  // A joiner that was already waiting when the kill came sees the same.
  auto u = sched().spawn([]() -> int {
    park_forever();
    return 1;
  });
  auto joiner = sched().spawn([u]() mutable {
    try {
      u.join();
    } catch (const tasklet_killed&) {
      return true;
    }
    return false;
  });
  ASSERT_TRUE(wait_until([&] { return u.blocked() && joiner.blocked(); }));
  u.kill();
  EXPECT_TRUE(joiner.join());
}

TEST_P(JoinTest, JoinedExceptionsAreNotReportedToOnError) {
  for (int i = 0; i < 20; ++i) {
    auto t = sched().spawn([] { throw std::runtime_error("joined"); });
    EXPECT_THROW(t.join(), std::runtime_error);
  }
  sched().drain();
  EXPECT_EQ(errors_.size(), 0u);
}

TEST_P(JoinTest, ExceptionOfADetachedTaskletGoesToOnError) {
  std::atomic<bool> dropped{false};
  std::atomic<std::uint64_t> id{0};
  {
    auto t = sched().spawn([&] {
      // Wait until the only handle is gone, so the tasklet is detached when it throws.
      while (!dropped.load()) this_tasklet::yield();
      throw std::runtime_error("detached boom");
    });
    t.set_name("lonely");
    id = t.id();
  }
  dropped = true;
  sched().drain();
  auto reports = errors_.take();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].id, id.load());
  EXPECT_EQ(reports[0].name, "lonely");
  EXPECT_NE(report_text(reports[0]).find("detached boom"), std::string::npos)
      << report_text(reports[0]);
  ASSERT_TRUE(reports[0].error);
  EXPECT_THROW(std::rethrow_exception(reports[0].error), std::runtime_error);
}

TEST_P(JoinTest, OnErrorDoesNotStopTheScheduler) {
  std::atomic<int> after{0};
  for (int i = 0; i < 10; ++i) sched().spawn([] { throw std::runtime_error("x"); });
  sched().drain();
  for (int i = 0; i < 10; ++i) sched().spawn([&] { after.fetch_add(1); });
  sched().drain();
  EXPECT_EQ(after.load(), 10);
  EXPECT_EQ(errors_.take().size(), 10u);
}

// A handle kept past the tasklet's end and dropped without a join must not lose the exception
// (DESIGN.md: "nothing is lost"): it reaches on_error when the last handle goes.
TEST_P(JoinTest, UnjoinedExceptionIsReportedWhenTheLastHandleDrops) {
  {
    auto t = sched().spawn([] { throw std::runtime_error("never joined"); });
    ASSERT_TRUE(wait_until([&] { return !t.alive(); }));
  }
  sched().drain();
  auto reports = errors_.take();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(report_text(reports[0]).find("never joined"), std::string::npos)
      << report_text(reports[0]);
}

TEST_P(JoinTest, JoinAcrossManyTasklets) {
  // A chain: each tasklet joins its predecessor and adds one.
  const int n = static_cast<int>(scaled(2000, 300));
  const int v = sched().block_on([n] {
    tasklet<int> prev = stackless::spawn([] { return 0; });
    for (int i = 0; i < n; ++i) {
      prev = stackless::spawn([p = prev]() mutable { return p.join() + 1; });
    }
    return prev.join();
  });
  EXPECT_EQ(v, n);
}

}  // namespace
