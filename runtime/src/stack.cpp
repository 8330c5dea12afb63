// SPDX-License-Identifier: Apache-2.0
// runtime/src/stack.cpp — see stack.hpp for the layout and the mapping budget.
#include "stack.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <new>

#include "context.hpp"
#include "stackless/runtime/detail/tcb.hpp"

namespace stackless::detail {
namespace {

constexpr std::size_t slab_stacks = 64;
constexpr std::size_t pool_keep_guarded = 1024;  // guarded stacks kept in the pool beyond: unmapped

// The mapping budget is a property of the process (the kernel counts mappings per process), so
// it is the one process-wide counter of the runtime: guarded stacks alive in all schedulers.
// Every access is relaxed: a budget heuristic (schedulers may overshoot it by a few stacks
// between their reads); no data is published through it. The made_ counters below are counts
// for stats(), relaxed as well.
std::atomic<long> g_guarded_live{0};

long guard_budget() {
  static const long budget = [] {
    long max_maps = 65530;
    std::ifstream f("/proc/sys/vm/max_map_count");
    if (f) f >> max_maps;
    return max_maps / 4;  // two mappings per guarded stack: half of the limit at most
  }();
  return budget;
}

// The descriptor sits just below the top 256 bytes of the region, which are the canary zone of
// the slab stack above it (see stack.hpp).
stack* descriptor_of(char* lo, std::size_t total) {
  auto top = reinterpret_cast<std::uintptr_t>(lo + total - canary_words * 8 - sizeof(stack)) &
             ~std::uintptr_t{63};
  return reinterpret_cast<stack*>(top);
}

stack* describe(char* lo, std::size_t total, bool guarded) {
  stack* d = descriptor_of(lo, total);
  auto* s = new (d) stack{lo, static_cast<std::size_t>(reinterpret_cast<char*>(d) - lo), guarded};
  if (!guarded) {
    auto* c = reinterpret_cast<std::uint64_t*>(lo) - canary_words;
    for (std::size_t i = 0; i < canary_words; ++i) c[i] = stack_canary;
  }
  return s;
}

}  // namespace

stack_pool::stack_pool(std::size_t usable)
    : page_(static_cast<std::size_t>(sysconf(_SC_PAGESIZE))) {
  if (usable < 16 * 1024) usable = 16 * 1024;
  size_ = (usable + page_ - 1) / page_ * page_;
}

stack_pool::~stack_pool() {
  std::lock_guard g(mu_);
  for (stack* s : guarded_all_) {
    context_fiber_free(s->fiber);
    munmap(s->lo - page_, size_ + page_);
    g_guarded_live.fetch_sub(1, std::memory_order_relaxed);  // relaxed: a budget count
  }
  for (char* slab : slabs_) {
    for (std::size_t i = 0; i < slab_stacks; ++i)
      context_fiber_free(descriptor_of(slab + page_ + i * size_, size_)->fiber);
    munmap(slab, page_ + slab_stacks * size_);
  }
}

stack* stack_pool::get() {
  std::unique_lock g(mu_);
  if (!free_.empty()) {
    stack* s = free_.back();
    free_.pop_back();
    return s;
  }
  if (g_guarded_live.load(std::memory_order_relaxed) < guard_budget()) {  // relaxed: a budget count
    g.unlock();
    stack* s = map_guarded();
    g.lock();
    if (s) {
      s->all_index = guarded_all_.size();
      guarded_all_.push_back(s);
      guarded_made_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count (under mu_)
      return s;
    }
  }
  return carve_slab();
}

stack* stack_pool::map_guarded() {
  void* m = mmap(nullptr, size_ + page_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  if (mprotect(m, page_, PROT_NONE) != 0) {
    munmap(m, size_ + page_);
    return nullptr;
  }
  g_guarded_live.fetch_add(1, std::memory_order_relaxed);  // relaxed: a budget count
  return describe(static_cast<char*>(m) + page_, size_, true);
}

// Called with mu_ held.
stack* stack_pool::carve_slab() {
  if (slab_free_.empty()) {
    void* m = mmap(nullptr, page_ + slab_stacks * size_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    slabs_.push_back(static_cast<char*>(m));
    for (std::size_t i = slab_stacks; i-- > 0;)
      slab_free_.push_back(describe(static_cast<char*>(m) + page_ + i * size_, size_, false));
  }
  stack* s = slab_free_.back();
  slab_free_.pop_back();
  unguarded_made_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count (under mu_)
  return s;
}

void stack_pool::trim(stack* s) noexcept {
  // Keep the page holding the descriptor (and the canary of the stack above); drop everything
  // the tasklet dirtied below it. Its own canary lives on the stack below's top page: untouched.
  auto keep = reinterpret_cast<std::uintptr_t>(s) & ~(std::uintptr_t{page_} - 1);
  auto lo = reinterpret_cast<std::uintptr_t>(s->lo);
  if (keep > lo) madvise(s->lo, keep - lo, MADV_DONTNEED);
}

void stack_pool::put(stack* const* s, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) trim(s[i]);
  std::lock_guard g(mu_);
  for (std::size_t i = 0; i < n; ++i) {
    stack* st = s[i];
    if (st->guarded && free_.size() >= pool_keep_guarded) {
      stack* last = guarded_all_.back();  // swap-remove: a chain of 100,000 tasklets unmaps
      last->all_index = st->all_index;    // thousands at once
      guarded_all_[st->all_index] = last;
      guarded_all_.pop_back();
      context_fiber_free(st->fiber);
      munmap(st->lo - page_, size_ + page_);
      g_guarded_live.fetch_sub(1, std::memory_order_relaxed);  // relaxed: a budget count
      continue;
    }
    free_.push_back(st);
  }
}

std::uint64_t stack_pool::pooled() const {
  std::lock_guard g(mu_);
  return free_.size();
}

// ---- overflow reporting -------------------------------------------------------------------

namespace {

struct sigaction g_prev_segv;
std::once_flag g_handler_once;

void write_str(const char* s) { (void)!write(2, s, strlen(s)); }

void write_num(unsigned long long v) {
  char buf[24];
  int i = sizeof buf;
  do {
    buf[--i] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v && i > 0);
  (void)!write(2, buf + i, sizeof buf - i);
}

void on_segv(int sig, siginfo_t* si, void* uc) {
  const tcb* t = current_tcb();  // reads the worker's thread_local pointer: async-signal-safe
  if (t && t->stk && t->stk->guarded) {
    auto a = reinterpret_cast<std::uintptr_t>(si->si_addr);
    auto lo = reinterpret_cast<std::uintptr_t>(t->stk->lo);
    // The guard page, or just below it (a large frame can jump over the guard).
    if (a < lo && a + 64 * 1024 >= lo) {
      write_str("stackless: stack overflow in tasklet #");
      write_num(t->id);
      write_str(" '");
      (void)!write(2, t->name.data(), t->name.size());
      write_str("' (stack size ");
      write_num(t->stk->size);
      write_str(" bytes); raise options::stack_size\n");
      signal(SIGABRT, SIG_DFL);
      abort();
    }
  }
  // Not ours: hand it to whoever was there before us, or crash the ordinary way.
  if (g_prev_segv.sa_flags & SA_SIGINFO) {
    if (g_prev_segv.sa_sigaction) return g_prev_segv.sa_sigaction(sig, si, uc);
  } else if (g_prev_segv.sa_handler != SIG_DFL && g_prev_segv.sa_handler != SIG_IGN) {
    return g_prev_segv.sa_handler(sig);
  }
  signal(SIGSEGV, SIG_DFL);  // returning re-executes the faulting access: default action
}

}  // namespace

void install_overflow_handler() {
  std::call_once(g_handler_once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = &on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_prev_segv);
  });
}

thread_altstack::thread_altstack() {
  stack_t old{};
  if (sigaltstack(nullptr, &old) == 0 && !(old.ss_flags & SS_DISABLE)) return;  // has one
  const std::size_t size = 64 * 1024;
  mem_ = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem_ == MAP_FAILED) {
    mem_ = nullptr;
    return;
  }
  stack_t ss{};
  ss.ss_sp = mem_;
  ss.ss_size = size;
  installed_ = sigaltstack(&ss, nullptr) == 0;
}

thread_altstack::~thread_altstack() {
  if (installed_) {
    stack_t ss{};
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, nullptr);
  }
  if (mem_) munmap(mem_, 64 * 1024);
}

}  // namespace stackless::detail
