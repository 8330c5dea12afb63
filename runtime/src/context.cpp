// SPDX-License-Identifier: Apache-2.0
// runtime/src/context.cpp — the only code that touches Boost.Context.
//
// We use the fcontext primitives (make_fcontext / jump_fcontext): one jump is a handful of
// instructions that save the callee-saved registers on the old stack and restore them from the
// new one. Boost's higher-level fiber types add a second indirection and their own stack
// ownership, which the runtime does itself (stack.cpp).
//
// A jump hands the resumed side a transfer {fctx of the side that just suspended, data}. The
// suspended side's fctx must be stored back into *its* context record, and only the resumed side
// knows it: so every jump carries a pointer to the suspending context record.
//
// Sanitizers: fcontext has no sanitizer hooks of its own, so this file does the bookkeeping.
//  - ASan: __sanitizer_start_switch_fiber(&fake, to_bottom, to_size) right before the jump,
//    __sanitizer_finish_switch_fiber(fake, …) right after it, on the resumed side. A context
//    that exits passes a null fake-stack slot so its fake frames are freed; a pooled stack reused
//    after that starts clean (google/sanitizers#1760).
//  - TSan: one fiber per tasklet (__tsan_create_fiber), __tsan_switch_to_fiber right before the
//    jump, __tsan_destroy_fiber after it ended. Flags 0 (synchronising): a switch is a
//    happens-before edge, which it is.
#include "context.hpp"

#include <cxxabi.h>
#include <pthread.h>

#include <boost/context/detail/fcontext.hpp>

#if defined(__SANITIZE_ADDRESS__)
#define STACKLESS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STACKLESS_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define STACKLESS_TSAN_ON 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STACKLESS_TSAN_ON 1
#endif
#endif

#if (defined(STACKLESS_ASAN) || defined(STACKLESS_TSAN_ON)) && !defined(STACKLESS_FIBER_ANNOTATIONS)
#error \
    "stackless: a sanitizer build needs the fiber annotations (configure with -DSTACKLESS_SANITIZER=...)"
#endif
#ifdef STACKLESS_ASAN
#include <sanitizer/asan_interface.h>
#endif
#ifdef STACKLESS_TSAN_ON
#include <sanitizer/tsan_interface.h>
#endif

namespace bctx = boost::context::detail;

namespace stackless::detail {
namespace {

// The C++ runtime keeps the exceptions being handled (caught, and the uncaught count) per thread.
// A tasklet that parks inside a catch block, or in a destructor during unwinding, and resumes on
// another thread would corrupt both threads' chains: so each context carries its own copy, and a
// switch swaps them (as folly's fibers do). The layout is the Itanium C++ ABI's.
struct eh_globals {
  void* caught;
  unsigned int uncaught;
};

// The calling thread's eh globals, looked up once per thread (the lookup is a call into
// libstdc++ and __tls_get_addr). Read only before a jump: after it we may be on another thread.
thread_local eh_globals* tl_eh = nullptr;

inline void swap_eh(context& from, context& to) noexcept {
  eh_globals* g = tl_eh;
  if (__builtin_expect(!g, 0)) g = tl_eh = reinterpret_cast<eh_globals*>(abi::__cxa_get_globals());
  from.eh_caught = g->caught;
  from.eh_uncaught = g->uncaught;
  g->caught = to.eh_caught;
  g->uncaught = to.eh_uncaught;
}

// A jump carries a pointer to the suspending side's context record: the resumed side stores the
// suspender's new fctx there and reads the argument. The record lives in a tcb or a worker, never
// on a stack: under ASan with detect_stack_use_after_return locals live in "fake" frames, which
// are freed at the exiting switch of a dying tasklet — before the other side could read them.

// Runs on the resumed side, first thing after a jump returns.
inline void* arrive(bctx::transfer_t t, context& self) noexcept {
  auto* from = static_cast<context*>(t.data);
  from->fctx = t.fctx;
#ifdef STACKLESS_ASAN
  __sanitizer_finish_switch_fiber(self.asan_fake, nullptr, nullptr);
#else
  (void)self;
#endif
  return from->xfer_arg;
}

void trampoline(bctx::transfer_t t) noexcept {
  auto* from = static_cast<context*>(t.data);
  from->fctx = t.fctx;
#ifdef STACKLESS_ASAN
  __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
  from->xfer_entry(from->xfer_arg);
  __builtin_unreachable();  // entry ends with an exiting switch
}

}  // namespace

void context_init_thread(context& c) noexcept {
  // Once per thread: a thread's stack does not move, and for the main thread glibc's
  // pthread_getattr_np() reads /proc/self/maps — a line per mapping, two per guarded tasklet
  // stack — which made every run_for() of a host with 10,000 tasklets cost milliseconds
  // (examples/entities.cpp: frames of 10–15 ms against a 4 ms budget).
  static thread_local void* lo = nullptr;
  static thread_local std::size_t size = 0;
  if (size == 0) {
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      pthread_attr_getstack(&attr, &lo, &size);
      pthread_attr_destroy(&attr);
    }
  }
  c.stack_lo = lo;
  c.stack_size = size;
#ifdef STACKLESS_TSAN_ON
  c.tsan_fiber = __tsan_get_current_fiber();
#endif
}

void context_create(context& c, void* lo, std::size_t size, void (*entry)(void*),
                    void** fiber_cache) noexcept {
  c.stack_lo = lo;
  c.stack_size = size;
  c.asan_fake = nullptr;
  // make_fcontext takes the top of the stack (stacks grow down on every platform we build for).
  c.fctx = bctx::make_fcontext(static_cast<char*>(lo) + size, size, &trampoline);
  c.entry = entry;
#ifdef STACKLESS_TSAN_ON
  if (!*fiber_cache) *fiber_cache = __tsan_create_fiber(0);
  c.tsan_fiber = *fiber_cache;
#else
  (void)fiber_cache;
#endif
}

void context_destroy(context& c) noexcept {
  c.tsan_fiber = nullptr;
  c.fctx = nullptr;
}

void context_fiber_free(void* fiber) noexcept {
#ifdef STACKLESS_TSAN_ON
  if (fiber) __tsan_destroy_fiber(fiber);
#else
  (void)fiber;
#endif
}

// Not instrumented by ASan: after __sanitizer_start_switch_fiber(nullptr, …) of an exiting
// tasklet its fake stack is gone, and a spilled reference read before the jump would be reported
// as a use after return. The function only touches context records, which live on the heap.
__attribute__((no_sanitize("address"))) void* context_switch(context& from, context& to, void* arg,
                                                             bool exiting) noexcept {
  from.xfer_arg = arg;
  from.xfer_entry = to.entry;
  from.fp = __builtin_frame_address(0);
  swap_eh(from, to);
  to.entry = nullptr;  // only the first switch into a new context starts it
#ifdef STACKLESS_ASAN
  __sanitizer_start_switch_fiber(exiting ? nullptr : &from.asan_fake, to.stack_lo, to.stack_size);
#else
  (void)exiting;
#endif
#ifdef STACKLESS_TSAN_ON
  __tsan_switch_to_fiber(to.tsan_fiber, 0);
#endif
  bctx::transfer_t t = bctx::jump_fcontext(to.fctx, &from);
  return arrive(t, from);
}

}  // namespace stackless::detail
