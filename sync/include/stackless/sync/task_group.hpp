// SPDX-License-Identifier: Apache-2.0
// stackless/sync/task_group.hpp — task_group: structured fork/join (stacklesslib futures'
// executor, oneTBB task_group, Go's errgroup).
#pragma once

#include <chrono>
#include <exception>
#include <memory>
#include <utility>
#include <vector>

#include "stackless/runtime/detail/deadline.hpp"
#include "stackless/runtime/errors.hpp"
#include "stackless/runtime/scheduler.hpp"
#include "stackless/runtime/tasklet.hpp"
#include "stackless/runtime/this_tasklet.hpp"

namespace stackless {

/// task_group runs tasks as tasklets and waits for all of them. The first task that throws
/// cancels the group: every other task still running is killed (tasklet_exit at its next
/// suspension point; destructors run), tasks run() later are killed at once, and wait()
/// rethrows that first exception once every task has ended. Tasks may run() more tasks into the
/// same group. Inside a tasklet, task_group() spawns on the caller's scheduler; from a plain
/// thread, give the scheduler.
///
/// Destroying a group that was not waited for cancels what is still running and waits for it;
/// an error nobody collected with wait() is then dropped (a destructor cannot throw).
class task_group {
 public:
  task_group() : st_(std::make_shared<state>()) {}
  explicit task_group(scheduler& s) : st_(std::make_shared<state>()), sched_(&s) {}
  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;
  ~task_group() {
    if (!pending()) return;
    cancel();
    try {
      wait();
    } catch (...) {
    }
  }

  /// run(f) starts f() as a tasklet of the group; in a cancelled group it starts nothing.
  template <class F>
  void run(F&& f) {
    auto body = [st = st_, fn = std::forward<F>(f)]() mutable {
      try {
        fn();
      } catch (const tasklet_exit&) {
        throw;
      } catch (...) {
        st->fail(std::current_exception());
      }
    };
    // A group already cancelled starts nothing: spawning first and killing after would let the
    // body begin on another worker before its kill arrives (tests/sync/test_map_reduce.cpp saw
    // mappers of a stopped job run). A cancel() that comes between this check and the push below
    // is still caught by dead_on_arrival.
    st_->lk.lock();
    const bool cancelled_before = st_->cancelled;
    st_->lk.unlock();
    if (cancelled_before) return;
    tasklet<void> t = sched_ ? sched_->spawn(std::move(body)) : stackless::spawn(std::move(body));
    st_->lk.lock();
    st_->tasks.push_back(t);
    const bool dead_on_arrival = st_->cancelled;
    st_->lk.unlock();
    if (dead_on_arrival) t.kill(/*pending=*/true);
  }

  /// wait() waits until every task (including ones started meanwhile) has ended, then rethrows
  /// the first exception a task threw, if any. The group may be reused afterwards.
  void wait() { (void)wait_deadline(detail::no_deadline); }
  /// wait_for() / wait_until(): as wait(), but false when tasks are still running at the
  /// deadline (they keep running; nothing is rethrown yet).
  template <class Rep, class P>
  bool wait_for(std::chrono::duration<Rep, P> d) {
    return wait_deadline(detail::deadline_after(d));  // saturates: hours::max() waits forever
  }
  template <class C, class D>
  bool wait_until(std::chrono::time_point<C, D> tp) {
    return wait_deadline(detail::deadline_at(tp));
  }

  /// cancel() kills every task still running; wait() still waits for them.
  void cancel() { st_->cancel(); }
  /// cancelled() tells whether the group was cancelled (by cancel() or a task's exception).
  bool cancelled() const {
    st_->lk.lock();
    bool c = st_->cancelled;
    st_->lk.unlock();
    return c;
  }

 private:
  // wait_deadline() is wait_until() on the steady clock in nanoseconds (detail/deadline.hpp).
  bool wait_deadline(std::int64_t deadline) {
    for (std::size_t i = 0;;) {
      st_->lk.lock();
      if (i == st_->tasks.size()) {
        st_->tasks.clear();
        std::exception_ptr e = std::exchange(st_->first, nullptr);
        st_->cancelled = false;
        st_->lk.unlock();
        if (e) std::rethrow_exception(e);
        return true;
      }
      tasklet<void> t = st_->tasks[i];
      st_->lk.unlock();
      if (deadline == detail::no_deadline) {
        t.join();
      } else if (!t.join_until(
                     std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadline)))) {
        return false;
      }
      ++i;
    }
  }

  struct state {
    detail::spinlock lk;
    std::vector<tasklet<void>> tasks;  // guarded by lk
    std::exception_ptr first;          // guarded by lk
    bool cancelled = false;            // guarded by lk

    void fail(std::exception_ptr e) {
      lk.lock();
      if (!first) first = std::move(e);
      lk.unlock();
      cancel();
    }
    void cancel() {
      lk.lock();
      cancelled = true;
      std::vector<tasklet<void>> all = tasks;
      lk.unlock();
      const detail::tcb* self = detail::current_tcb();
      for (auto& t : all)
        if (t.raw() != self) t.kill(/*pending=*/true);  // at once: never wait for a kill here
    }
  };
  bool pending() const {
    st_->lk.lock();
    bool p = !st_->tasks.empty();
    st_->lk.unlock();
    return p;
  }

  std::shared_ptr<state> st_;
  scheduler* sched_ = nullptr;
};

}  // namespace stackless
