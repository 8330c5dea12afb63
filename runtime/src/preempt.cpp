// SPDX-License-Identifier: Apache-2.0
// runtime/src/preempt.cpp — preemption: the monitor thread, soft preemption at safe points, hard
// preemption by signal, and the stall watchdog. After Go's sysmon and asyncPreempt (proc.go,
// preempt.go, signal_unix.go), Seastar's preemption monitor and Caladan's preempt_disable.
//
// Soft preemption (always safe)
// - The monitor thread (one per scheduler, only when options::quantum > 0 or a run_for() slice
//   needs watching) wakes every quantum/2. For each worker it reads `runs` (bumped at every
//   switch-in and every yield that carried on) and `running_id`; when both are unchanged for a
//   whole quantum and other work waits anywhere (a queue, an inbox, a yield list, a due timer),
//   it stores 1 in that worker's thread_block::preempt. In run_for() it also does so once the
//   whole pump's deadline (worker_shared::deadline_pub) has passed, whoever runs then: the slice
//   bounds the call, not only one turn (lifecycle.cpp).
// - The running tasklet reads the word at its next safe point — this_tasklet::checkpoint(), or
//   the entry of a blocking runtime call (preempt_point()) — and yields to the back of the queue,
//   after firing due timers (a sleeper behind a hog becomes runnable only if someone fires its
//   timer, and the hog's worker is the one that is awake). Inside an atomic scope it does not.
// - launch() clears the word for every new turn, so a request meant for the previous tasklet costs
//   the next one at most one early yield.
//
// Hard preemption (opt-in, x86-64 Linux, not under ThreadSanitizer)
// - A tasklet inside a this_tasklet::preemptible scope publishes thread_block::hard_ok. When a
//   request has been ignored for one more tick (half a quantum; half a slice in run_for()) —
//   the tasklet opted in, and two more quanta would put a 1 ms periodic tasklet behind hogs
//   3 ms late, past the 2 ms p99 we aim for — the monitor sets
//   thread_block::signal_pending (0 → 1: repeats merge) and sends SIGURG to the worker thread
//   with tgkill.
// - The handler runs on the thread's alternate signal stack (SA_ONSTACK; every worker thread has
//   one: thread_altstack). It clears the pending bit, saves and restores errno, and refuses —
//   leaving the request for the next safe point, and counting the reason — when:
//     * preempt_disable > 0: the runtime is switching stacks on this thread (switch_out() to the
//       landing side: worker_owned::prev/why, the queues, w->current already naming the next
//       tasklet); switching away from there would leave a half-done transition. The counter is
//       thread_block::disable, one `addl` on memory (a signal cannot split it), with a compiler
//       signal fence on each side; the scheduler side of a worker lives at 1;
//     * the tasklet is in an atomic scope: the user asked for no switch at all;
//     * it is not inside a preemptible scope: nothing promises that the code holds no lock
//       (a std::mutex owned by a tasklet that was switched out blocks whoever wants it, maybe
//       the next tasklet on this very thread: a deadlock) and calls no malloc (glibc's tcache is
//       per thread and not re-entrant);
//     * the PC is in the runtime's own code, libc, libstdc++, Boost.Context or the dynamic
//       loader — checked against address ranges computed once, before the handler is
//       installed: the runtime's are the sections `stackless_text` / `stackless_text_cold`, into
//       which the build renames our objects' .text (what our .cpp files define; not the
//       templates and inline functions of the headers, into which the compiler inlines the
//       user's code — a tasklet's body runs inside tcb_impl<…>::body()); the libraries' are
//       their executable segments (dl_iterate_phdr). A preemptible scope promises pure computation,
//       and this catches a call that breaks the promise — a queue push or a spinlock held by a
//       wake, the channel's RESUMING spin states (whose spinners would wait a whole preemption for
//       it), malloc's per-thread cache. This is why those need no preempt_disable of their own;
//     * the stack has less than 16 KiB (and at least the xsave area plus 8 KiB) of headroom below
//       the interrupted stack pointer: the trampoline, the register save area and the switch
//       need that much, and a guard-page hit there would be reported against innocent code;
//     * the handler's own frame is on the tasklet's stack (no alternate stack): it would sit
//       exactly where the trampoline frame goes.
// - When it accepts, it does not switch inside the handler (the kernel's signal frame, the
//   signal mask and the altstack would all be left behind). It rewrites the interrupted context
//   instead, as Go's asyncPreempt does: the stack pointer moves 136 bytes down (past the 128-byte
//   red zone, which leaf code may be using), the interrupted PC is stored there, and the PC is
//   set to stackless_preempt_trampoline. When the handler returns, the kernel restores the
//   context and the trampoline runs as if called: it saves rflags and every general register,
//   the whole x87/SSE/AVX state (xsave, every component the OS enabled), calls
//   stackless_hard_preempted() — an ordinary function, which yields with switch_out() — and on
//   resumption restores everything and returns with `ret $128`, which pops the interrupted PC
//   and steps over the red zone: every register and the red zone are as they were.
// - A hard-preempted tasklet is pinned to its worker (tcb::hard_pinned, home) until its next
//   own switch: the interrupted code may hold thread_local addresses (errno's included) in
//   registers, valid only on this thread.
//
// The monitor also reports stalls: a worker that has run one tasklet for options::stall_warning
// without passing a safe point, while other work waits, gets one line on stderr naming it (at
// most one line a second per scheduler).
//
// Memory orders
// - thread_block::preempt: relaxed both ways (a hint; the switch itself is the synchronisation).
// - thread_block::hard_ok: relaxed (a stale value costs one refused or one unsent signal).
// - thread_block::signal_pending: the monitor's acq_rel exchange pairs with the handler's
//   acq_rel exchange; only the 0 → 1 transition sends a signal.
// - worker_shared::block_pub: release by the worker thread after it set up its block
//   (attach_thread), acquire by the monitor before it touches the block or sends a signal to
//   `tid`.
// - worker_counters::runs, worker_shared::running_id / has_yielders / slice_pub / deadline_pub:
//   relaxed stores by the owner, relaxed loads by the monitor (hints compared across ticks).
// - The counters are relaxed; stats() reads them at any time.
//
// Due timers are fired through scheduler_impl::fire_due_timers() (timers.cpp), the routine the
// worker loop uses too.
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <cpuid.h>
#include <ucontext.h>
#endif

#include "fence.hpp"
#include "scheduler_impl.hpp"
#include "stackless/runtime/internal/futex.hpp"
#include "stackless/runtime/internal/park.hpp"
#include "stackless/runtime/this_tasklet.hpp"
#include "trace.hpp"

#if defined(__SANITIZE_THREAD__)
#define STACKLESS_NO_HARD_PREEMPT 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STACKLESS_NO_HARD_PREEMPT 1
#endif
#endif

#if defined(__x86_64__) && !defined(STACKLESS_NO_HARD_PREEMPT)
#define STACKLESS_HARD_PREEMPT 1
#endif

namespace stackless::detail {

const std::atomic<std::uint32_t> zero_irq{0};
thread_local thread_block tl_block __asm__("stackless_tl_block")
    __attribute__((tls_model("initial-exec")));

#if !defined(__x86_64__)
thread_block* this_thread_block() noexcept { return &tl_block; }
#endif

namespace {

constexpr std::uint32_t irq_deliver = IRQ_KILLED | IRQ_EXC;

}  // namespace

// ---- soft preemption ------------------------------------------------------------------------

void soft_preempt(worker* w, tcb* t) {
  thread_block* b = w->block;
  b->preempt.store(0, std::memory_order_relaxed);  // relaxed: a hint (see Memory orders above)
  // In an atomic scope (or inside the runtime) the request waits: the monitor asks again at its
  // next tick if the tasklet is still running by then.
  if (t->atomic_depth > 0 || b->disable > 0) return;
  w->sched->fire_due_timers();
  bump(w->soft_preempts);
  trace_event(*w, trace_kind::preempt, t->id, 0);
  switch_out(t, switch_why::yield);  // to the back of the queue (or to the host: run_for)
}

void checkpoint_slow() {
  worker* w = current_worker();
  tcb* t = w ? w->current : nullptr;
  if (!t) return;
  // acquire (every irq load here): pairs with the seq_cst fetch_or of kill(), raise() and
  // pause() (tasklet.cpp); what they wrote before (the pending exception) is then visible.
  if (t->irq.load(std::memory_order_acquire) & irq_deliver) throw_if_interrupted();
  if (w->block->preempt.load(std::memory_order_relaxed)) {  // relaxed: the monitor's hint
    soft_preempt(w, t);
  } else if (t->irq.load(std::memory_order_acquire) & IRQ_PAUSE) {
    switch_out(t, switch_why::yield);  // pause() is waiting for it to switch
  } else {
    return;
  }
  // Resumed (maybe on another worker): an interrupt that came meanwhile is thrown now.
  if (t->irq.load(std::memory_order_acquire) & irq_deliver) throw_if_interrupted();
}

void preempt_point_slow() {
  worker* w = current_worker();
  if (w && w->current) soft_preempt(w, w->current);
}

// ---- hard preemption: code ranges, handler, trampoline ------------------------------------

#if defined(STACKLESS_HARD_PREEMPT)

extern "C" {
// The xsave area size for the features the OS enabled (CPUID 0xD/0 EBX), rounded up to 64.
__attribute__((visibility("hidden"))) std::uint64_t stackless_xsave_size = 0;
__attribute__((visibility("hidden"))) void stackless_preempt_trampoline();
__attribute__((visibility("hidden"))) void stackless_hard_preempted();
}

// The trampoline (see the top of the file). On entry: rsp = interrupted rsp - 136, and [rsp] is
// the interrupted PC. Every register holds the interrupted code's value.
__asm__(R"(
  .text
  .globl stackless_preempt_trampoline
  .hidden stackless_preempt_trampoline
  .type stackless_preempt_trampoline, @function
  .p2align 4
stackless_preempt_trampoline:
  pushfq
  pushq %rax
  pushq %rcx
  pushq %rdx
  pushq %rbx
  pushq %rbp
  pushq %rsi
  pushq %rdi
  pushq %r8
  pushq %r9
  pushq %r10
  pushq %r11
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, %rbx
  andq $-64, %rsp
  subq stackless_xsave_size(%rip), %rsp
  xorl %eax, %eax
  movq %rax, 512(%rsp)
  movq %rax, 520(%rsp)
  movq %rax, 528(%rsp)
  movq %rax, 536(%rsp)
  movq %rax, 544(%rsp)
  movq %rax, 552(%rsp)
  movq %rax, 560(%rsp)
  movq %rax, 568(%rsp)
  movl $-1, %eax
  movl $-1, %edx
  xsave64 (%rsp)
  cld
  call stackless_hard_preempted
  movl $-1, %eax
  movl $-1, %edx
  xrstor64 (%rsp)
  movq %rbx, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %r11
  popq %r10
  popq %r9
  popq %r8
  popq %rdi
  popq %rsi
  popq %rbp
  popq %rbx
  popq %rdx
  popq %rcx
  popq %rax
  popfq
  ret $128
  .size stackless_preempt_trampoline, .-stackless_preempt_trampoline
)");

// stackless_hard_preempted() is the trampoline's call: an ordinary function on the tasklet's
// stack, so it may switch like any yield. The tasklet is pinned here (see the top).
extern "C" void stackless_hard_preempted() {
  const int saved_errno = errno;
  worker* w = current_worker();
  tcb* t = w->current;
  w->block->preempt.store(0, std::memory_order_relaxed);  // relaxed: a hint
  w->sched->fire_due_timers();
  bump(w->hard_preempts);
  trace_event(*w, trace_kind::preempt, t->id, 1);
  switch_out(t, switch_why::yield, /*pin=*/true);
  errno = saved_errno;  // same thread: it was pinned
}

namespace {

struct code_range {
  std::uintptr_t lo, hi;
};
// Built once before the handler is installed; never changed after (the handler only reads).
code_range* g_ranges = nullptr;
std::size_t g_nranges = 0;
std::uintptr_t g_min_headroom = 16 * 1024;
bool g_hard_supported = false;
struct sigaction g_old_action;

// The runtime's own code: our objects' .text, renamed by the build (cmake/stackless_options.cmake,
// stackless_runtime_text). Weak: absent when the build could not rename it.
extern "C" {
extern const char __start_stackless_text[] __attribute__((weak));
extern const char __stop_stackless_text[] __attribute__((weak));
extern const char __start_stackless_text_cold[] __attribute__((weak));
extern const char __stop_stackless_text_cold[] __attribute__((weak));
}

bool runtime_library(const char* name) {
  static const char* const libs[] = {
      "/libc.so", "/libstdc++.so", "/libgcc_s.so", "/ld-linux", "/libpthread.so",
      "/libboost_context", "/libasan.so", "/libtsan.so", "/libubsan.so", "linux-vdso",
      // A shared build's other library (libstackless_sync.so: the channel's spin states, the
      // wait queues' spinlocks); the one holding this function is counted above.
      "/libstackless_"};
  for (const char* l : libs)
    if (std::strstr(name, l)) return true;
  return false;
}

void add_segments(const dl_phdr_info* info, std::vector<code_range>& out) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X))
      out.push_back({info->dlpi_addr + ph.p_vaddr, info->dlpi_addr + ph.p_vaddr + ph.p_memsz});
  }
}

int collect_ranges(dl_phdr_info* info, std::size_t, void* arg) {
  auto& out = *static_cast<std::vector<code_range>*>(arg);
  const auto self = reinterpret_cast<std::uintptr_t>(&collect_ranges);
  bool holds_runtime = false;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    const std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
    if (ph.p_type == PT_LOAD && self >= lo && self < lo + ph.p_memsz) holds_runtime = true;
  }
  const char* name = info->dlpi_name ? info->dlpi_name : "";
  if (holds_runtime) {
    auto add = [&](const char* lo, const char* hi) {
      if (lo && hi && lo < hi)
        out.push_back({reinterpret_cast<std::uintptr_t>(lo), reinterpret_cast<std::uintptr_t>(hi)});
    };
    add(__start_stackless_text, __stop_stackless_text);
    add(__start_stackless_text_cold, __stop_stackless_text_cold);
    // Without the renamed section the whole object counts as the runtime: hard preemption is
    // then refused everywhere in it — safe, and visible in stats().refused_runtime_code.
    if (!__start_stackless_text) add_segments(info, out);
  } else if (runtime_library(name)) {
    add_segments(info, out);
  }
  return 0;
}

bool in_runtime_code(std::uintptr_t pc) noexcept {
  std::size_t lo = 0, hi = g_nranges;  // the first range whose hi > pc
  while (lo < hi) {
    std::size_t mid = (lo + hi) / 2;
    if (g_ranges[mid].hi <= pc)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < g_nranges && g_ranges[lo].lo <= pc;
}

void chain_old(int sig, siginfo_t* si, void* uc) {
  if (g_old_action.sa_flags & SA_SIGINFO) {
    if (g_old_action.sa_sigaction) g_old_action.sa_sigaction(sig, si, uc);
  } else if (g_old_action.sa_handler != SIG_DFL && g_old_action.sa_handler != SIG_IGN) {
    g_old_action.sa_handler(sig);
  }
}

// The handler writes below the interrupted stack pointer, on memory ASan may still describe as
// a dead frame's redzone: it is not instrumented.
__attribute__((no_sanitize("address"))) void on_preempt_signal(int sig, siginfo_t* si, void* ucv) {
  const int saved_errno = errno;
  thread_block* b = &tl_block;  // the handler runs on the interrupted thread, no switch inside
  // acq_rel: pairs with the monitor's acq_rel exchange 0 → 1 in tick(); only that transition
  // sends a signal, so a 0 here means the signal was not ours.
  if (b->signal_pending.exchange(0, std::memory_order_acq_rel) == 0) {
    chain_old(sig, si, ucv);  // not ours
    errno = saved_errno;
    return;
  }
  worker* w = current_worker();
  if (!w || w->block != b) {  // the thread left the worker loop before the signal landed
    errno = saved_errno;
    return;
  }
  auto* uc = static_cast<ucontext_t*>(ucv);
  tcb* t = w->current;
  const auto pc = static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
  const auto sp = static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
  // The refusal counters: relaxed, counts for stats() (worker_counters).
  if (b->disable > 0) {
    w->refused_disabled.fetch_add(1, std::memory_order_relaxed);
  } else if (!t || t->preemptible_depth == 0) {
    w->refused_not_preemptible.fetch_add(1, std::memory_order_relaxed);
  } else if (t->atomic_depth > 0) {
    w->refused_atomic.fetch_add(1, std::memory_order_relaxed);
  } else if (in_runtime_code(pc)) {
    w->refused_runtime_code.fetch_add(1, std::memory_order_relaxed);
  } else {
    const auto lo = reinterpret_cast<std::uintptr_t>(t->stk->lo);
    const std::uintptr_t hi = lo + t->stk->size;
    const auto here = reinterpret_cast<std::uintptr_t>(&saved_errno);
    if ((here >= lo && here < hi) || sp < lo + g_min_headroom || sp > hi) {
      w->refused_stack.fetch_add(1, std::memory_order_relaxed);
    } else {
      auto* slot = reinterpret_cast<std::uintptr_t*>(sp - 128 - 8);
      *slot = pc;
      uc->uc_mcontext.gregs[REG_RSP] = static_cast<greg_t>(reinterpret_cast<std::uintptr_t>(slot));
      uc->uc_mcontext.gregs[REG_RIP] =
          static_cast<greg_t>(reinterpret_cast<std::uintptr_t>(&stackless_preempt_trampoline));
    }
  }
  errno = saved_errno;
}

void install_handler_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    unsigned a = 0, bx = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &bx, &c, &d) || !(c & (1u << 27))) return;  // no OSXSAVE
    __cpuid_count(0xD, 0, a, bx, c, d);
    if (bx < 576) return;
    stackless_xsave_size = (bx + 63) & ~std::uint64_t{63};
    g_min_headroom = std::max<std::uintptr_t>(16 * 1024, stackless_xsave_size + 8 * 1024);
    std::vector<code_range> v;
    dl_iterate_phdr(&collect_ranges, &v);
    std::sort(v.begin(), v.end(),
              [](const code_range& x, const code_range& y) { return x.lo < y.lo; });
    std::vector<code_range> merged;
    for (const code_range& r : v) {
      if (!merged.empty() && r.lo <= merged.back().hi)
        merged.back().hi = std::max(merged.back().hi, r.hi);
      else
        merged.push_back(r);
    }
    g_nranges = merged.size();
    g_ranges = new code_range[g_nranges ? g_nranges : 1];  // process lifetime: the handler reads it
    std::copy(merged.begin(), merged.end(), g_ranges);
    struct sigaction sa {};
    sa.sa_sigaction = &on_preempt_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    if (sigaction(SIGURG, &sa, &g_old_action) == 0) g_hard_supported = true;
  });
}

}  // namespace

#endif  // STACKLESS_HARD_PREEMPT

// ---- the preemptible and atomic scopes' effect on the thread block ---------------------------

namespace {
void publish_hard_ok(tcb* t) {
#if defined(STACKLESS_HARD_PREEMPT)
  if (worker* w = current_worker()) {
    // relaxed: a hint for the monitor (a stale value costs one refused or one unsent signal).
    w->block->hard_ok.store(t->preemptible_depth > 0 && t->atomic_depth == 0 && g_hard_supported,
                            std::memory_order_relaxed);
  }
#else
  (void)t;
#endif
}
}  // namespace

void scope_changed(tcb* t) { publish_hard_ok(t); }

// ---- attaching worker threads ---------------------------------------------------------------

void attach_thread(worker& w) noexcept {
  thread_block* b = &tl_block;  // no switch between here and the stores below
  // relaxed (preempt, hard_ok, tid): published by the release store of block_pub below.
  b->preempt.store(0, std::memory_order_relaxed);
  b->disable = 1;  // the scheduler side
  b->irq = &zero_irq;
  b->hard_ok.store(0, std::memory_order_relaxed);
  w.block = b;
  w.tid.store(static_cast<int>(::syscall(SYS_gettid)), std::memory_order_relaxed);
  w.block_pub.store(b, std::memory_order_release);  // pairs with the monitor's acquire in tick()
  w.loop_since_ns.store(now_ns(), std::memory_order_relaxed);  // relaxed: a figure for stats()
}

void detach_thread(worker& w) noexcept {
  // release: pairs with the monitor's acquire in tick(), which then leaves this block alone.
  w.block_pub.store(nullptr, std::memory_order_release);
  // relaxed: figures for stats(), each read on its own.
  w.loop_ns.fetch_add(now_ns() - w.loop_since_ns.exchange(0, std::memory_order_relaxed),
                      std::memory_order_relaxed);
  // relaxed (running_id, preempt, hard_ok): hints the monitor compares across ticks; a stale one
  // costs at most one spurious request.
  w.running_id.store(0, std::memory_order_relaxed);
  thread_block* b = &tl_block;
  b->preempt.store(0, std::memory_order_relaxed);
  b->disable = 0;
  b->irq = &zero_irq;
  b->hard_ok.store(0, std::memory_order_relaxed);
}

// ---- the monitor ----------------------------------------------------------------------------

class monitor {
 public:
  explicit monitor(scheduler_impl& s) : s_(s), seen_(s.nworkers) {
    q_ns_ = std::chrono::nanoseconds(s.opts.quantum).count();
    if (q_ns_ > 0) q_ns_ = std::max<std::int64_t>(q_ns_, 100'000);
    stall_ns_ = std::chrono::nanoseconds(s.opts.stall_warning).count();
#if defined(STACKLESS_HARD_PREEMPT)
    install_handler_once();
#endif
    thread_ = std::thread([this] {
      std::string n = s_.opts.name + "-mon";
      pthread_setname_np(pthread_self(), n.substr(0, 15).c_str());
      // The lowest real-time priority, where the process may have it (root, CAP_SYS_NICE): when
      // every core runs a hog, a normal-priority monitor waits for the kernel to preempt one
      // (measured here: its 0.5 ms ticks came 1–3 ms late, and so did every preemption). It
      // runs a few µs per tick. Without the permission it stays a normal thread.
      sched_param sp{};
      sp.sched_priority = 1;
      realtime = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0;
      loop();
    });
  }
  ~monitor() {
    // relaxed: poke()'s release increment publishes it to the monitor's acquire of word_.
    stop_.store(true, std::memory_order_relaxed);
    poke();
    thread_.join();
  }
  void poke() noexcept {
    word_.fetch_add(1, std::memory_order_release);  // pairs with the acquire in loop()
    futex_wake(&word_);
  }

  std::atomic<bool> realtime{false};

 private:
  struct seen {
    std::uint64_t runs = 0, id = 0;
    std::int64_t since = 0, requested_at = 0;
    bool requested = false, warned = false;
  };

  void loop() {
    // relaxed (stop_): the futex word carries it — the destructor stores it before its release
    // increment of word_, which wakes (or pre-empts) the wait below.
    while (!stop_.load(std::memory_order_relaxed)) {
      std::uint32_t w0 = word_.load(std::memory_order_acquire);  // pairs with poke()'s release
      std::int64_t period = q_ns_ > 0 ? q_ns_ / 2 : INT64_MAX;
      for (auto& w : s_.workers) {
        // relaxed: a hint for the period; run_pumped() pokes after it stores a slice.
        std::int64_t slice = w->slice_pub.load(std::memory_order_relaxed);
        if (slice > 0) period = std::min(period, std::max<std::int64_t>(slice / 2, 20'000));
      }
      futex_wait(&word_, w0, period == INT64_MAX ? INT64_MAX : now_ns() + period);
      if (stop_.load(std::memory_order_relaxed)) break;
      tick(now_ns());
      s_.poll_io_if_due();  // every worker busy for 10 ms: I/O is still served (netpoll.cpp)
    }
  }

  bool work_waiting(std::int64_t now) const {
    if (s_.injection.size_approx() != 0) return true;
    // relaxed: hints compared once per tick; a stale one delays a request by a tick.
    for (auto& v : s_.workers) {
      if (!v->deque.empty() || v->runnext.load(std::memory_order_relaxed) ||
          v->inbox_nonempty.load(std::memory_order_relaxed) ||
          v->has_yielders.load(std::memory_order_relaxed))
        return true;
    }
    return s_.next_deadline() <= (s_.host_clock ? s_.clock_now() : now);
  }

  void tick(std::int64_t now) {
    for (unsigned i = 0; i < s_.nworkers; ++i) {
      worker& w = *s_.workers[i];
      seen& st = seen_[i];
      // acquire: pairs with the release stores in attach_thread() / detach_thread().
      thread_block* b = w.block_pub.load(std::memory_order_acquire);
      // relaxed (running_id, runs, slice_pub): hints compared across ticks (Memory orders above).
      const std::uint64_t id = w.running_id.load(std::memory_order_relaxed);
      const std::uint64_t runs = w.runs.load(std::memory_order_relaxed);
      if (!b || id == 0) {
        st = seen{runs, id, now, 0, false, false};
        continue;
      }
      if (runs != st.runs || id != st.id) st = seen{runs, id, now, 0, false, false};
      const std::int64_t ran = now - st.since;  // at least this long, at most a tick more
      const std::int64_t slice = w.slice_pub.load(std::memory_order_relaxed);
      const std::int64_t limit = slice > 0 ? slice : q_ns_;
      // run_for()'s whole pump ends at its deadline, whoever runs then (lifecycle.cpp).
      const std::int64_t pump_end = w.deadline_pub.load(std::memory_order_relaxed);
      if ((limit > 0 && ran >= limit && (slice > 0 || work_waiting(now))) ||
          (pump_end > 0 && now >= pump_end)) {
        b->preempt.store(1, std::memory_order_relaxed);  // relaxed: a hint read at safe points
        if (!st.requested) {
          st.requested = true;
          st.requested_at = now;
        }
#if defined(STACKLESS_HARD_PREEMPT)
        const std::int64_t grace = slice > 0 ? slice / 2 : q_ns_ / 2;
        // hard_ok: relaxed, a hint. signal_pending: acq_rel, pairs with the handler's exchange
        // (on_preempt_signal()). tid: relaxed, published with block_pub (acquired above).
        if (g_hard_supported && now - st.requested_at >= grace &&
            b->hard_ok.load(std::memory_order_relaxed) &&
            b->signal_pending.exchange(1, std::memory_order_acq_rel) == 0) {
          ::syscall(SYS_tgkill, static_cast<int>(::getpid()), w.tid.load(std::memory_order_relaxed),
                    SIGURG);
          s_.preempt_signals.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count
        }
#endif
      }
      // A stall is a worker that holds others up: one tasklet running this long alone is not.
      if (q_ns_ > 0 && stall_ns_ > 0 && ran >= stall_ns_ && !st.warned && work_waiting(now)) {
        st.warned = true;
        report_stall(i, id, ran);
      }
    }
  }

  void report_stall(unsigned worker_index, std::uint64_t id, std::int64_t ran) {
    const std::int64_t now = now_ns();
    if (last_report_ != 0 && now - last_report_ < 1'000'000'000) return;  // one line a second
    last_report_ = now;
    std::string label = "#";
    label += std::to_string(id);
    s_.for_each_live([&](tcb* t) {
      if (t->id == id) label = tasklet_label(t);
    });
    std::fprintf(stderr,
                 "stackless: stall: worker %u has run tasklet %s for %lld ms without a "
                 "safe point (this_tasklet::checkpoint() or a blocking call); other tasklets on "
                 "it wait\n",
                 worker_index, label.c_str(), static_cast<long long>(ran / 1'000'000));
    s_.stalls_reported.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count for stats()
  }

  scheduler_impl& s_;
  std::vector<seen> seen_;
  std::int64_t q_ns_ = 0, stall_ns_ = 0;
  std::int64_t last_report_ = 0;
  std::atomic<std::uint32_t> word_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

void scheduler_impl::start_monitor() {
  std::lock_guard g(mon_mu);
  if (!mon)
    mon.reset(new monitor(*this));
  else
    mon->poke();  // a run_for() slice to watch: re-read the period now
}

void scheduler_impl::monitor_deleter::operator()(monitor* m) const noexcept { delete m; }

void scheduler_impl::stop_monitor() noexcept {
  std::lock_guard g(mon_mu);
  mon.reset();
}

void monitor_counts(const scheduler_impl& s, scheduler_stats& out) {
  // relaxed: counts for stats(), and `realtime`, a flag the monitor's thread sets once at its
  // start (mon_mu keeps the monitor alive while we read it).
  out.preempt_signals = s.preempt_signals.load(std::memory_order_relaxed);
  out.stalls_reported = s.stalls_reported.load(std::memory_order_relaxed);
  std::lock_guard g(s.mon_mu);
  if (s.mon) {
    out.monitor_running = true;
    out.monitor_realtime = s.mon->realtime.load(std::memory_order_relaxed);
  }
}

}  // namespace stackless::detail

// ---- this_tasklet ---------------------------------------------------------------------------

namespace stackless::this_tasklet {

using namespace stackless::detail;

preemptible::preemptible() {
  tcb* t = current_tcb();
  if (!t) throw usage_error("stackless: this_tasklet::preemptible used outside a tasklet");
  if (t->preemptible_depth++ == 0) scope_changed(t);
}

preemptible::~preemptible() {
  if (tcb* t = current_tcb()) {
    if (--t->preemptible_depth == 0) scope_changed(t);
  }
}

bool in_preemptible() {
  tcb* t = current_tcb();
  if (!t) throw usage_error("stackless: this_tasklet::in_preemptible() called outside a tasklet");
  return t->preemptible_depth > 0;
}

}  // namespace stackless::this_tasklet
