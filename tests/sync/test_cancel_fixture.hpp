// SPDX-License-Identifier: Apache-2.0
// tests/sync/test_cancel_fixture.hpp — what the stop_token cancellation tests (test_cancel.cpp)
// and their races against notifies (test_cancel_race.cpp) share, on top of channel_fixture.hpp:
// outcome_of(f) runs f and tells how it ended — kReturned, kCancelled (operation_cancelled), or
// what else.
#pragma once

#include <chrono>
#include <exception>
#include <string>

#include "channel_fixture.hpp"

namespace stackless_test::cancel_test {

using sl::operation_cancelled;
using clock_type = std::chrono::steady_clock;

inline const std::string kCancelled = "operation_cancelled";
inline const std::string kReturned = "returned";

/// outcome_of() runs f and tells how it ended: kReturned, kCancelled, or what else.
template <class F>
std::string outcome_of(F&& f) {
  try {
    f();
  } catch (const operation_cancelled&) {
    return kCancelled;
  } catch (const std::exception& e) {
    return std::string("exception: ") + e.what();
  }
  return kReturned;
}

}  // namespace stackless_test::cancel_test
