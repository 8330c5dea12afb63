// stackless/runtime/detail/tcb.hpp — the tasklet control block, as much of it as the header
// templates need. Everything here is internal: the names may change at any time.
//
// A tcb is reference counted: one reference for the scheduler while the tasklet is alive, one per
// tasklet<> handle, one per timer or registry walk that holds it for a moment. `handles` counts the
// user-visible handles only: when it drops to zero the tasklet is detached.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "stackless/runtime/detail/spinlock.hpp"

namespace stackless {
class timeout_scope;
}

namespace stackless::detail {

class scheduler_impl;
struct local_table;
struct worker;
struct stack;
struct error_sink;
class tcb;

/// wake_reason is why a park ended. Exactly one waker wins a park (see park.cpp).
/// cancelled: a std::stop_token's stop request (only calls that took a token can get it).
enum class wake_reason : std::uint8_t { notified = 0, timeout = 1, interrupted = 2, cancelled = 3 };

/// waiter is one entry of a wait list. A tasklet's waiter lives in its tcb (never on its stack: a
/// waker on another thread must not touch a stack that may have moved or gone). A plain thread's
/// waiter lives on that thread's stack and is removed from every list before the wait returns.
/// A proxy waiter (`notify` set: when_any/when_all) calls notify instead of waking anyone; its
/// owner removes it from the list before it goes away.
struct waiter {
  waiter* next = nullptr;
  waiter* prev = nullptr;
  tcb* t = nullptr;                        // tasklet waiter
  std::uint64_t gen = 0;                   //   the park generation it was registered for
  std::atomic<std::uint32_t>* word = nullptr;  // plain-thread waiter: its futex word
  void (*notify)(waiter*, wake_reason) = nullptr;  // proxy waiter: called (under the list's lock)
  std::uintptr_t data = 0;                 // what the list's owner keeps per waiter (a count…)
  bool linked = false;                     // guarded by the lock of the list it is on
};

/// context is a suspended execution: the fcontext pointer plus the sanitizer bookkeeping.
struct context {
  void* fctx = nullptr;
  const void* stack_lo = nullptr;  // lowest usable address (ASan)
  std::size_t stack_size = 0;
  void* tsan_fiber = nullptr;
  void* asan_fake = nullptr;
  void (*entry)(void*) = nullptr;  // set until the first switch into a new context
  void* xfer_arg = nullptr;        // what a switch away from this context hands the other side
  void (*xfer_entry)(void*) = nullptr;
  void* eh_caught = nullptr;       // the C++ runtime's per-thread exception state, kept per
  unsigned eh_uncaught = 0;        //   context (a tasklet may park inside a catch block)
};

class tcb {
 public:
  tcb() noexcept = default;
  tcb(const tcb&) = delete;
  tcb& operator=(const tcb&) = delete;
  virtual ~tcb();

  /// body() runs the tasklet's function and stores its result. It may throw.
  virtual void body() = 0;
  /// discard() destroys the function and its arguments. Called by the tasklet itself when it
  /// ends (ran or not): captured resources go when the tasklet ends, not when its last handle
  /// does — and a chain of tasklets each holding the previous one's handle cannot turn into a
  /// chain of recursive destructors.
  virtual void discard() noexcept = 0;

  // Control blocks come from a per-worker cache of blocks by size class (alloc.cpp): spawn and
  // the end of a tasklet are the hottest paths, and glibc's tcache holds only 7 per size.
  static void* operator new(std::size_t size);
  static void operator delete(void* p, std::size_t size) noexcept;

  // Lifecycle (see scheduler.cpp for the state machine). Written with CAS by the scheduler.
  std::atomic<std::uint32_t> state{0};
  // The park/wake door: gen << 4 | reason << 2 | phase (see park.cpp).
  std::atomic<std::uint64_t> door{0};
  // Interrupt bits: 1 = killed (sticky), 2 = an exception is pending in `pending`.
  std::atomic<std::uint32_t> irq{0};

  std::atomic<int> refs{1};
  std::atomic<int> handles{0};
  std::atomic<bool> error_reported{false};

  scheduler_impl* sched = nullptr;
  std::uint64_t id = 0;

  spinlock lk;                    // guards name, pending, joiners
  std::string name;
  std::exception_ptr pending;     // the exception raise_exception()/kill() delivers
  waiter* joiners = nullptr;      // who waits for this tasklet to end

  // Outcome, written by the tasklet before it is marked dead, read after (acquire on state).
  std::exception_ptr error;       // the exception that escaped body()
  bool ended_by_kill = false;     // body() left through tasklet_exit (or never started)
  bool exit_thrown = false;       // tasklet_exit was thrown in it at least once (own writes)
  bool result_taken = false;      // a move-only result was handed to a joiner
  error_sink* sink = nullptr;     // set when it ended with an error: where to report it

  // Execution, touched only by the worker running the tasklet.
  waiter wait;                    // this tasklet's waiter record
  const char* wait_what = nullptr;  // what it parks on, for the deadlock report
  std::uint64_t wait_target = 0;  //   and the id it waits for, if any
  context ctx;
  stack* stk = nullptr;
  tcb* next = nullptr;            // intrusive link: yield list, inbox
  int atomic_depth = 0;           // this_tasklet::atomic nesting; > 0: pinned to `home`
  int preemptible_depth = 0;      // this_tasklet::preemptible nesting (preempt.cpp)
  bool hard_pinned = false;       // hard-preempted: pinned to `home` until its next own switch
  int irq_masked = 0;             // > 0: parks ignore pending interrupts (irq_mask, park.hpp)
  worker* home = nullptr;         // the worker a pinned tasklet must run on
  std::int64_t run_start_ns = 0;  // when it was last switched in
  // Per-tasklet state of the sync component (the channel waiter records: sync/src/channel.cpp),
  // made on first use and freed with the control block.
  void* sync_ext = nullptr;
  void (*sync_ext_free)(void*) noexcept = nullptr;
  timeout_scope* scope_top = nullptr;  // innermost timeout_scope (on this tasklet's stack)
  local_table* locals = nullptr;       // tasklet_local values (local.cpp), destroyed at its end

  // Registry (all live tasklets of a scheduler), guarded by the registry shard's lock.
  tcb* reg_next = nullptr;
  tcb* reg_prev = nullptr;
  unsigned shard = 0;
};

template <class R>
class tcb_result : public tcb {
 public:
  std::optional<R> value;
};
template <>
class tcb_result<void> : public tcb {};

template <class R, class F, class... A>
class tcb_impl final : public tcb_result<R> {
 public:
  template <class F2, class... A2>
  explicit tcb_impl(F2&& f, A2&&... a) {
    call_.emplace(std::forward<F2>(f), std::tuple<A...>(std::forward<A2>(a)...));
  }
  void body() override {
    auto& c = *call_;
    if constexpr (std::is_void_v<R>) {
      std::apply(std::move(c.first), std::move(c.second));
    } else {
      this->value.emplace(std::apply(std::move(c.first), std::move(c.second)));
    }
  }
  void discard() noexcept override { call_.reset(); }

 private:
  std::optional<std::pair<F, std::tuple<A...>>> call_;
};

// Out-of-line operations on a tcb (tasklet.cpp); the handle templates call them.
void handle_acquire(tcb*) noexcept;
void handle_release(tcb*) noexcept;
void join_wait(tcb*);                                   // waits for the end; may throw deadlock_error
bool join_wait_for(tcb*, std::chrono::nanoseconds);     // false on timeout
void join_rethrow(tcb*, bool has_value);                // rethrows error; tasklet_killed if no value
void kill(tcb*, bool pending);
void raise(tcb*, std::exception_ptr, bool pending);
void pause(tcb*);
void resume(tcb*);
/// joiner_link() puts a (proxy) waiter on t's joiner list: woken when t ends. False, and not
/// linked, when t has already ended. joiner_unlink() takes it off (false: t's end took it).
bool joiner_link(tcb* t, waiter* w);
bool joiner_unlink(tcb* t, waiter* w);
bool is_alive(const tcb*) noexcept;
bool is_blocked(const tcb*) noexcept;
bool is_scheduled(const tcb*) noexcept;
bool is_paused(const tcb*) noexcept;
std::string get_name(tcb*);
void set_name(tcb*, std::string);
[[noreturn]] void throw_usage(const char* what);

// Scheduling entry points.
scheduler_impl* current_scheduler() noexcept;           // null outside a tasklet
tcb* current_tcb() noexcept;                            // null outside a tasklet
bool spinning_may_help() noexcept;                      // another worker (or thread) may
                                                        //   release what we wait for now
const void* self_token() noexcept;                      // the calling tasklet, or a token of
                                                        //   the plain thread (lock owners)
void submit(scheduler_impl*, tcb*);                     // a new tasklet: make it runnable

}  // namespace stackless::detail
