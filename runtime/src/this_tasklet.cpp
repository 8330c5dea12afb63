// runtime/src/this_tasklet.cpp — calls about the running tasklet.
#include <thread>

#include "scheduler_impl.hpp"
#include "stackless/runtime/this_tasklet.hpp"

namespace stackless::this_tasklet {

using namespace stackless::detail;

namespace {
tcb* need(const char* what) {
  tcb* t = current_tcb();
  if (!t) throw usage_error(std::string("stackless: this_tasklet::") + what + "() called outside a tasklet");
  return t;
}
}  // namespace

void yield() {
  tcb* t = need("yield");
  if (t->irq.load(std::memory_order_relaxed)) throw_if_interrupted();
  switch_out(t, switch_why::yield);
  if (t->irq.load(std::memory_order_relaxed)) throw_if_interrupted();  // t is ours on any worker
}

std::uint64_t id() { return need("id")->id; }

tasklet<void> current() {
  tcb* t = need("current");
  handle_acquire(t);
  return tasklet<void>(t, tasklet<void>::adopt_t{});
}

void checkpoint() {
  tcb* t = current_tcb();
  if (t && t->irq.load(std::memory_order_relaxed)) throw_if_interrupted();
}

void detail_::sleep_ns(std::int64_t deadline) {
  tcb* t = current_tcb();
  if (!t) {
    std::this_thread::sleep_until(std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadline)));
    return;
  }
  throw_if_interrupted();
  while (now_ns() < deadline) {
    prepare_park("sleep");
    wake_reason r = park([] {}, deadline);
    if (r == wake_reason::interrupted) throw_if_interrupted();
  }
}

atomic::atomic() {
  tcb* t = need("atomic");
  if (t->atomic_depth++ == 0) t->home = current_worker();  // pinned here until the scope ends
}
atomic::~atomic() {
  if (tcb* t = current_tcb()) --t->atomic_depth;
}
bool in_atomic() { return need("in_atomic")->atomic_depth > 0; }

}  // namespace stackless::this_tasklet
