// SPDX-License-Identifier: Apache-2.0
// tests/sync/test_mutex_fixture.hpp — what the mutex tests (test_mutex.cpp: exclusion, fairness,
// ownership, timed locking, recursive_mutex, std wrappers; test_mutex_leave.cpp: waiters that
// leave a parked lock()) share, on top of channel_fixture.hpp:
//
// - parked(t): waits until t is parked (for a locker: queued on the mutex);
// - holder<M>: a tasklet that takes a mutex and keeps it, parked, until let_go();
// - is_free(m): whether m can be taken right now (it is left free).
#pragma once

#include <atomic>

#include "channel_fixture.hpp"

namespace stackless_test::mutex_test {

/// parked() waits until t is parked (for a locker: queued on the mutex — it is queued before it
/// parks).
inline bool parked(const tasklet<void>& t) {
  return eventually([&] { return t.blocked(); });
}

/// holder is a tasklet that takes `m` and keeps it, parked on a door, until let_go(): the mutex
/// is held by a tasklet that is not running.
template <class M>
class holder {
 public:
  holder(sl::scheduler& s, M& m) {
    t_ = s.spawn([this, &m] {
      m.lock();
      held_ = true;
      door_.wait("holder");
      m.unlock();
    });
    EXPECT_TRUE(eventually([&] { return held_.load() && door_.occupied(); }))
        << "holder never took the lock";
  }
  /// let_go() makes the holder unlock, and waits until it has ended.
  void let_go() {
    if (t_.alive()) {
      door_.open();
      t_.join();
    }
  }
  ~holder() { let_go(); }
  holder(const holder&) = delete;
  holder& operator=(const holder&) = delete;

 private:
  std::atomic<bool> held_{false};
  door door_;
  tasklet<void> t_;
};

/// is_free() tells whether m can be taken right now (and leaves it free).
template <class M>
bool is_free(M& m) {
  if (!m.try_lock()) return false;
  m.unlock();
  return true;
}

}  // namespace stackless_test::mutex_test
