// SPDX-License-Identifier: Apache-2.0
// test_tasklet_local.cpp — tasklet_local<T> (runtime/tasklet_local.hpp; runtime/src/local.cpp):
// every tasklet sees its own value, the same object on whichever worker it resumes; the value is
// made on first use (default constructor or the factory), destroyed when its tasklet ends — on
// the tasklet's own stack, before join() returns, also when it was killed — or by reset();
// plain threads have their own values, destroyed at thread exit; values outlive the
// tasklet_local object itself. Over workers ∈ {1, 2, 4}.
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "channel_fixture.hpp"

namespace {

using namespace stackless_test;
using sl::tasklet_local;

class TaskletLocal : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(TaskletLocal);

/// probe counts its constructions and destructions, remembers which tasklet (or thread: null)
/// made it, and checks that it is destroyed by that same tasklet. `flag` (if set) goes true when
/// it is destroyed.
struct probe_counts {
  std::atomic<int> made{0}, destroyed{0}, wrong_owner{0};
};
struct probe {
  probe_counts* c;
  const sd::tcb* owner = sd::current_tcb();
  std::atomic<bool>* flag = nullptr;
  int value = 0;
  explicit probe(probe_counts& counts) : c(&counts) { c->made.fetch_add(1); }
  probe(probe&& o) noexcept : c(o.c), owner(o.owner), flag(o.flag), value(o.value) {
    c->made.fetch_add(1);
  }
  probe(const probe&) = delete;
  ~probe() {
    if (sd::current_tcb() != owner) c->wrong_owner.fetch_add(1);
    if (flag) flag->store(true);
    c->destroyed.fetch_add(1);
  }
};

/// os_thread() is the calling OS thread's id, read afresh (std::this_thread::get_id() is
/// pthread_self(), which the compiler may cache across a tasklet's switches: it is declared const).
long os_thread() { return ::syscall(SYS_gettid); }

// Each tasklet writes its own value and finds it again — the same object — after many yields and
// parks (woken by a plain thread, it resumes on any worker); plain threads have theirs.
TEST_P(TaskletLocal, EachTaskletSeesItsOwnValueAcrossMigrations) {
  tasklet_local<int> local;
  const int n = 16;
  const int yields = static_cast<int>(scaled(200, 60));
  std::atomic<int> mismatches{0}, migrations{0}, fresh_not_zero{0};
  local.get() = -1;  // this plain thread's value
  sl::counting_semaphore permits(0);
  std::vector<tasklet<void>> ts;
  for (int i = 0; i < n; ++i) {
    ts.push_back(sched().spawn([&, i] {
      if (local.has_value()) fresh_not_zero.fetch_add(1);
      int& v = local.get();
      if (v != 0) fresh_not_zero.fetch_add(1);
      v = i + 1;
      const int* addr = &v;
      auto where = os_thread();
      for (int y = 0; y < yields; ++y) {
        // Woken by a plain thread, a tasklet goes to whichever worker is free: it migrates.
        if (y % 2) {
          this_tasklet::yield();
        } else {
          permits.acquire();
        }
        if (os_thread() != where) {
          migrations.fetch_add(1, std::memory_order_relaxed);
          where = os_thread();
        }
        if (&local.get() != addr || *local != i + 1) mismatches.fetch_add(1);
        ++*local;  // everyone writes its own
        --*local;
      }
    }));
  }
  std::thread th([&] {
    EXPECT_FALSE(local.has_value());
    EXPECT_EQ(local.get(), 0);
    local.get() = 7;
    for (int y = 0; y < 100; ++y) {
      std::this_thread::yield();
      EXPECT_EQ(local.get(), 7);
    }
  });
  std::atomic<bool> stop{false};
  std::thread feeder([&] {
    while (!stop.load()) {
      permits.release(4);
      std::this_thread::yield();
    }
  });
  for (auto& t : ts) t.join();
  stop = true;
  feeder.join();
  th.join();
  EXPECT_EQ(mismatches.load(), 0) << "a tasklet saw another's value, or a new object";
  EXPECT_EQ(fresh_not_zero.load(), 0) << "a new tasklet did not start with a fresh value";
  EXPECT_EQ(local.get(), -1) << "the plain thread's value changed";
  local.reset();
  RecordProperty("migrations", migrations.load());
}

// The value is destroyed when its tasklet ends, by that tasklet, before join() returns — also
// when it was killed; a tasklet that never used it makes none.
TEST_P(TaskletLocal, ValueIsDestroyedWhenItsTaskletEnds) {
  probe_counts counts;
  tasklet_local<probe> local([&] { return probe(counts); });
  const int n = 12;
  std::vector<std::atomic<bool>> gone(n);
  std::vector<tasklet<void>> ts;
  for (int i = 0; i < n; ++i) {
    ts.push_back(sched().spawn([&, i] {
      local->flag = &gone[i];
      local->value = i;
      for (int y = 0; y < i % 4; ++y) this_tasklet::yield();
    }));
  }
  for (int i = 0; i < n; ++i) {
    ts[i].join();
    EXPECT_TRUE(gone[i].load()) << "tasklet " << i
                                << "'s value was not destroyed before join() returned";
  }
  EXPECT_EQ(counts.destroyed.load(), counts.made.load());
  EXPECT_GE(counts.destroyed.load(), n);
  // Killed while parked: its value goes as it unwinds.
  std::atomic<bool> killed_gone{false};
  sl::event never;
  auto victim = sched().spawn([&] {
    local->flag = &killed_gone;
    never.wait();
  });
  ASSERT_TRUE(wait_until([&] { return victim.blocked(); }));
  EXPECT_FALSE(killed_gone.load());
  victim.kill();
  EXPECT_TRUE(killed_gone.load()) << "a killed tasklet's value was not destroyed";
  // A tasklet that does not use it makes nothing.
  const int made = counts.made.load();
  sched().spawn([] { this_tasklet::yield(); }).join();
  EXPECT_EQ(counts.made.load(), made);
  EXPECT_EQ(counts.destroyed.load(), counts.made.load());
  EXPECT_EQ(counts.wrong_owner.load(), 0) << "a value was destroyed outside its own tasklet";
}

// The factory makes each tasklet's first value; two tasklet_locals are independent.
TEST_P(TaskletLocal, FactoryConstructor) {
  std::atomic<int> calls{0};
  tasklet_local<std::string> name([&] {
    calls.fetch_add(1);
    return std::string("init");
  });
  tasklet_local<std::string> other;
  const int n = 8;
  std::atomic<int> bad{0};
  std::vector<tasklet<void>> ts;
  for (int i = 0; i < n; ++i) {
    ts.push_back(sched().spawn([&, i] {
      if (*name != "init" || !other->empty()) bad.fetch_add(1);
      name->append(std::to_string(i));
      other.get() = "x";
      this_tasklet::yield();
      if (name.get() != "init" + std::to_string(i) || other.get() != "x") bad.fetch_add(1);
      if (name->size() != 4 + std::to_string(i).size()) bad.fetch_add(1);
    }));
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(calls.load(), n) << "the factory is called once per tasklet that uses the value";
  // A tasklet that only asks has_value() does not call it.
  EXPECT_FALSE(sched().block_on([&] { return name.has_value(); }));
  EXPECT_EQ(calls.load(), n);
}

TEST_P(TaskletLocal, ResetAndHasValue) {
  probe_counts counts;
  std::atomic<int> calls{0};
  tasklet_local<probe> local([&] {
    calls.fetch_add(1);
    return probe(counts);
  });
  auto check = [&] {
    const int made = counts.made.load(), destroyed = counts.destroyed.load(), c0 = calls.load();
    EXPECT_FALSE(local.has_value());
    local.reset();  // nothing to reset
    EXPECT_EQ(counts.destroyed.load(), destroyed);
    local->value = 5;
    EXPECT_TRUE(local.has_value());
    EXPECT_EQ(calls.load(), c0 + 1);
    EXPECT_EQ((*local).value, 5);
    local.reset();
    EXPECT_FALSE(local.has_value());
    EXPECT_EQ(counts.destroyed.load(), destroyed + 1);
    EXPECT_EQ(counts.made.load(), made + 1);
    EXPECT_EQ(local->value, 0) << "get() after reset() did not make a new value";
    EXPECT_EQ(calls.load(), c0 + 2);
    local.reset();
    EXPECT_FALSE(local.has_value());
  };
  {
    SCOPED_TRACE("in a tasklet");
    sched().block_on(check);
  }
  {
    SCOPED_TRACE("on a plain thread");
    check();
  }
  EXPECT_EQ(counts.destroyed.load(), counts.made.load());
  EXPECT_EQ(counts.wrong_owner.load(), 0);
}

// Plain threads have their own values, destroyed when the thread exits; a tasklet's value is
// not the value of the worker thread it runs on.
TEST_P(TaskletLocal, PlainThreadsHaveTheirOwnValues) {
  probe_counts counts;
  tasklet_local<probe> local([&] { return probe(counts); });
  local->value = 1;  // this thread
  std::atomic<bool> thread_gone{false};
  std::thread th([&] {
    EXPECT_FALSE(local.has_value());
    local->value = 2;
    local->flag = &thread_gone;
  });
  th.join();
  EXPECT_TRUE(thread_gone.load()) << "a plain thread's value was not destroyed at its exit";
  EXPECT_EQ(local->value, 1);
  sched().block_on([&] {
    EXPECT_FALSE(local.has_value()) << "a tasklet saw a thread's value";
    local->value = 3;
  });
  EXPECT_EQ(local->value, 1);
  local.reset();  // before `counts` goes: a thread's values live until the thread exits
  EXPECT_EQ(counts.destroyed.load(), counts.made.load());
  EXPECT_EQ(counts.wrong_owner.load(), 0);
}

// Destroying the tasklet_local does not destroy the values already made: each goes with its
// tasklet.
TEST_P(TaskletLocal, ValuesOutliveTheTaskletLocal) {
  probe_counts counts;
  sl::event go;
  std::atomic<bool> gone{false};
  tasklet<void> t;
  {
    auto local = std::make_unique<tasklet_local<probe>>([&] { return probe(counts); });
    std::atomic<bool> made{false};
    t = sched().spawn([&, l = local.get()] {
      (*l)->flag = &gone;
      made = true;  // l is destroyed after this: not used again
      go.wait();
    });
    // (An atomic, not t.blocked(): blocked() does not order the tasklet's earlier reads of
    // *local before our delete.)
    ASSERT_TRUE(wait_until([&] { return made.load(); }));
  }
  EXPECT_FALSE(gone.load()) << "destroying the tasklet_local destroyed a tasklet's value";
  go.set();
  t.join();
  EXPECT_TRUE(gone.load());
  EXPECT_EQ(counts.destroyed.load(), counts.made.load());
  EXPECT_EQ(counts.wrong_owner.load(), 0);
}

}  // namespace
