// SPDX-License-Identifier: Apache-2.0
// sync/src/condition_variable.cpp — condition_variable's wait and notify
// (sync/condition_variable.hpp).
//
// No lost wakeup: the waiter is on q_ (under lk_) *before* the user's lock is released, so a
// notify that follows the release finds it. If that notify comes before the waiter has parked,
// the park door records the wake (phase PARKING → WOKEN) and park() returns at once.
#include "stackless/sync/condition_variable.hpp"

#include "stackless/runtime/internal/park.hpp"

namespace stackless {

namespace detail {
wake_reason cv_wait(spinlock& lk, wait_list& q, std::int64_t own, const std::stop_token* st,
                    void (*unlock)(void*), void* arg) {
  lk.lock();
  return block(lk, q,
               {.what = "condition_variable",
                .deadline = scoped_deadline(own),
                .st = st,
                .after_publish = unlock,
                .arg = arg});
}
}  // namespace detail

void condition_variable::notify_one() noexcept {
  lk_.lock();
  detail::wake_first(q_);
  lk_.unlock();
}

void condition_variable::notify_all() noexcept {
  lk_.lock();
  detail::wake_all(q_);
  lk_.unlock();
}

}  // namespace stackless
