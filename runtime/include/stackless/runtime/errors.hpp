// SPDX-License-Identifier: Apache-2.0
// stackless/runtime/errors.hpp — the exceptions the runtime throws.
#pragma once

#include <stdexcept>
#include <string>

namespace stackless {

/// tasklet_exit is raised inside a tasklet by tasklet::kill() at its suspension point (Stackless
/// TaskletExit). It deliberately does not derive from std::exception, so `catch (const
/// std::exception&)` does not swallow it. A `catch (...)` that swallows it is reported through
/// options::on_error when the tasklet ends, and the tasklet gets it again at every later
/// suspension point: a killed tasklet always ends.
struct tasklet_exit {
  const char* what() const noexcept { return "tasklet_exit"; }
};

/// usage_error is thrown when the runtime is called in a way that cannot work: a tasklet-only call
/// from a plain thread, joining yourself, resuming a dead tasklet, spawning on a scheduler that was
/// shut down, an empty handle. The message says what was wrong.
class usage_error : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

/// scheduler_closed is thrown by scheduler::submit() (and by spawn() from a plain thread) once
/// shutdown() has begun: the scheduler admits no new work. A usage_error, so code that already
/// catches spawn()'s error after shutdown keeps working.
class scheduler_closed : public usage_error {
 public:
  using usage_error::usage_error;
};

/// queue_full is thrown by scheduler::submit(f, when_full::fail) when options::max_pending
/// submitted tasklets are waiting for their first run.
class queue_full : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// deadlock_error is thrown from a join()/block_on() whose tasklet can never be woken: every
/// tasklet of the scheduler is parked, nothing is runnable, no timer is pending. The message lists
/// every blocked tasklet with what it waits on.
class deadlock_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// tasklet_killed is thrown by join() of a tasklet<R> (R not void) that was killed before it
/// produced its value. join() of a killed tasklet<void> returns normally (Stackless: a kill is
/// silent).
class tasklet_killed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace stackless
