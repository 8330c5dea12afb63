// SPDX-License-Identifier: Apache-2.0
// runtime/src/stack.cpp — see stack.hpp for the layout and the mapping budget.
#include "stack.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>

#include "context.hpp"
#include "stackless/runtime/detail/tcb.hpp"
#include "stackless/runtime/internal/faults.hpp"

namespace stackless::detail {
namespace {

constexpr std::size_t slab_stacks = 64;
constexpr std::size_t pool_keep_guarded = 1024;  // guarded stacks kept in the pool beyond: unmapped
constexpr std::size_t keep_dirty_bytes = 16u << 20;  // untrimmed stacks kept by release_excess()

// The mapping budget is a property of the process (the kernel counts mappings per process), so
// it is the one process-wide counter of the runtime: guarded stacks alive in all schedulers.
// Every access is relaxed: a budget heuristic (schedulers may overshoot it by a few stacks
// between their reads); no data is published through it. The made_ counters below are counts
// for stats(), relaxed as well.
std::atomic<long> g_guarded_live{0};
// Slots of stack_guard = always schedulers taken by live tasklets (reserve_guarded()); relaxed
// like the above, but an RMW, so the limit itself is never overshot.
std::atomic<long> g_guarded_reserved{0};
std::atomic<long> g_max_map_count_for_tests{0};  // relaxed: set by a test before it spawns

long max_map_count() {
  static const long kernel = [] {
    long max_maps = 65530;
    std::ifstream f("/proc/sys/vm/max_map_count");
    if (f) f >> max_maps;
    return max_maps;
  }();
  long t = g_max_map_count_for_tests.load(std::memory_order_relaxed);  // relaxed: see above
  return t > 0 ? t : kernel;
}

// Two mappings per guarded stack: canary_beyond_budget uses half of the limit at most.
long guard_budget() { return max_map_count() / 4; }

[[noreturn]] void throw_map_failure(int err, std::size_t bytes) {
  throw std::system_error(err, std::generic_category(),
                          "stackless: cannot map a tasklet stack (" + std::to_string(bytes) +
                              " bytes; RLIMIT_AS or vm.max_map_count reached?)");
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

std::size_t checked_stack_size(std::size_t requested) {
  if (requested > max_stack_size)
    throw std::invalid_argument("stackless: options::stack_size (" + std::to_string(requested) +
                                " bytes) is above the limit of 1 GiB (max_stack_size, " +
                                std::to_string(max_stack_size) + " bytes)");
  return requested;
}

long guarded_limit() noexcept { return max_map_count() / 8 * 3; }

bool reserve_guarded() noexcept {
  // relaxed: a count; the RMW alone makes the limit exact.
  if (g_guarded_reserved.fetch_add(1, std::memory_order_relaxed) < guarded_limit()) return true;
  g_guarded_reserved.fetch_sub(1, std::memory_order_relaxed);
  return false;
}

void release_guarded() noexcept { g_guarded_reserved.fetch_sub(1, std::memory_order_relaxed); }

void set_max_map_count_for_tests(long n) noexcept {
  g_max_map_count_for_tests.store(n, std::memory_order_relaxed);  // relaxed: see its declaration
}

stack_pool::stack_pool(std::size_t usable, stack_guard_policy policy)
    : policy_(policy), page_(static_cast<std::size_t>(sysconf(_SC_PAGESIZE))) {
  if (usable < 16 * 1024) usable = 16 * 1024;
  if (usable > max_stack_size) usable = max_stack_size;  // checked_stack_size() threw already
  size_ = (usable + page_ - 1) / page_ * page_;
  keep_dirty_ = std::max<std::size_t>(16, keep_dirty_bytes / size_);
}

stack_pool::~stack_pool() {
  std::lock_guard g(mu_);
  for (stack* s : guarded_all_) unmap_guarded(s);
  for (char* slab : slabs_) {
    for (std::size_t i = 0; i < slab_stacks; ++i)
      context_fiber_free(descriptor_of(slab + page_ + i * size_, size_)->fiber);
    munmap(slab, page_ + slab_stacks * size_);
  }
}

stack* stack_pool::get() {
  std::unique_lock g(mu_);
  // The most recently used first: its pages are resident (and likely in a cache).
  for (auto* list : {&free_, &clean_}) {
    if (!list->empty()) {
      stack* s = list->back();
      list->pop_back();
      if (s->guarded) --pooled_guarded_;
      note_excess();
      return s;
    }
  }
  // always: every stack guarded (spawn reserved the slot); otherwise while the budget lasts.
  if (policy_ == stack_guard_policy::always ||
      g_guarded_live.load(std::memory_order_relaxed) < guard_budget()) {  // relaxed: a budget count
    g.unlock();
    int err = 0;
    stack* s = map_guarded(err);
    g.lock();
    if (s) {
      try {
        guarded_all_.push_back(s);
        reserve_for_all();
      } catch (...) {
        if (!guarded_all_.empty() && guarded_all_.back() == s) guarded_all_.pop_back();
        unmap_guarded(s);
        throw;
      }
      s->all_index = guarded_all_.size() - 1;
      guarded_made_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count (under mu_)
      return s;
    }
    if (policy_ == stack_guard_policy::always) throw_map_failure(err, size_ + page_);
  }
  return carve_slab();
}

stack* stack_pool::map_guarded(int& err) {
  if (fault_now(fault::stack_map)) {  // a test's injected ENOMEM (faults.hpp)
    err = ENOMEM;
    return nullptr;
  }
  void* m = mmap(nullptr, size_ + page_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (m == MAP_FAILED) {
    err = errno;
    return nullptr;
  }
  if (mprotect(m, page_, PROT_NONE) != 0) {
    err = errno;
    munmap(m, size_ + page_);
    return nullptr;
  }
  g_guarded_live.fetch_add(1, std::memory_order_relaxed);  // relaxed: a budget count
  return describe(static_cast<char*>(m) + page_, size_, true);
}

void stack_pool::unmap_guarded(stack* s) noexcept {
  context_fiber_free(s->fiber);
  munmap(s->lo - page_, size_ + page_);
  g_guarded_live.fetch_sub(1, std::memory_order_relaxed);  // relaxed: a budget count
}

// Called with mu_ held.
stack* stack_pool::carve_slab() {
  if (slab_free_.empty()) {
    const std::size_t bytes = page_ + slab_stacks * size_;
    if (fault_now(fault::stack_map)) throw_map_failure(ENOMEM, bytes);  // a test's (faults.hpp)
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) throw_map_failure(errno, bytes);
    try {
      slabs_.push_back(static_cast<char*>(m));
      slab_free_.reserve(slab_free_.size() + slab_stacks);
      reserve_for_all();
    } catch (...) {
      if (!slabs_.empty() && slabs_.back() == m) slabs_.pop_back();
      munmap(m, bytes);
      throw;
    }
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
  std::lock_guard g(mu_);
  free_.insert(free_.end(), s, s + n);  // cannot throw: reserve_for_all()
  for (std::size_t i = 0; i < n; ++i) pooled_guarded_ += s[i]->guarded;
  note_excess();
}

void stack_pool::reserve_for_all() {
  // Room in free_ and clean_ for every stack this pool has made, so that put() and
  // release_excess(), which run where an exception cannot go, never allocate.
  const std::size_t all = guarded_all_.size() + slabs_.size() * slab_stacks;
  for (auto* list : {&free_, &clean_})
    if (list->capacity() < all) list->reserve(std::max(all, 2 * list->capacity()));
}

void stack_pool::note_excess() noexcept {
  // relaxed: a hint for has_excess(); release_excess() decides under mu_.
  excess_.store(free_.size() > keep_dirty_ || pooled_guarded_ > pool_keep_guarded,
                std::memory_order_relaxed);
}

void stack_pool::release_excess(std::size_t max_stacks) noexcept {
  // 1. Take the oldest untrimmed stacks beyond keep_dirty_ (the front of free_: LIFO use), at
  //    most max_stacks of them, and decide how many guarded ones go (the pool's excess).
  std::vector<stack*> batch;
  std::size_t unmap_n = 0;
  {
    std::lock_guard g(mu_);
    if (free_.size() > keep_dirty_) {
      const auto k = static_cast<std::ptrdiff_t>(std::min(free_.size() - keep_dirty_, max_stacks));
      try {
        batch.assign(free_.begin(), free_.begin() + k);
      } catch (...) {
        return;  // no memory for the list: the stacks stay as they are, still usable
      }
      free_.erase(free_.begin(), free_.begin() + k);
      if (pooled_guarded_ > pool_keep_guarded)
        unmap_n = std::min(pooled_guarded_ - pool_keep_guarded, max_stacks);
      for (stack* st : batch) pooled_guarded_ -= st->guarded;
    }
  }
  // 2. Trim, without the lock (get() and put() go on meanwhile), the ones that stay: the first
  //    unmap_n guarded ones of the batch are unmapped in step 3 instead.
  std::size_t skip = unmap_n;
  for (stack* st : batch) {
    if (st->guarded && skip > 0)
      --skip;
    else
      trim(st);
  }
  // 3. Unmap those, keep the rest trimmed; then, if the pool still holds more guarded stacks
  //    than its bound (the untrimmed ones it keeps may be guarded), unmap the oldest trimmed.
  std::lock_guard g(mu_);
  skip = unmap_n;
  for (stack* st : batch) {
    if (st->guarded && skip > 0) {
      --skip;
      unmap_pooled(st);
      continue;
    }
    clean_.push_back(st);  // cannot throw: reserve_for_all()
    pooled_guarded_ += st->guarded;
  }
  std::size_t drop = pooled_guarded_ > pool_keep_guarded ? pooled_guarded_ - pool_keep_guarded : 0;
  drop = std::min(drop, max_stacks - std::min(max_stacks, unmap_n));
  auto keep = clean_.begin();
  for (auto it = clean_.begin(); it != clean_.end(); ++it) {
    if (drop > 0 && (*it)->guarded) {
      unmap_pooled(*it);
      --pooled_guarded_;
      --drop;
    } else {
      *keep++ = *it;
    }
  }
  clean_.erase(keep, clean_.end());
  note_excess();
}

void stack_pool::unmap_pooled(stack* st) noexcept {
  stack* last = guarded_all_.back();  // swap-remove: thousands may go at once
  last->all_index = st->all_index;
  guarded_all_[st->all_index] = last;
  guarded_all_.pop_back();
  unmap_guarded(st);
}

std::uint64_t stack_pool::pooled() const {
  std::lock_guard g(mu_);
  return free_.size() + clean_.size();
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

// The interrupted stack pointer, from the signal's context.
std::uintptr_t interrupted_sp(void* uc) {
  auto* u = static_cast<ucontext_t*>(uc);
#if defined(__x86_64__)
  return static_cast<std::uintptr_t>(u->uc_mcontext.gregs[REG_RSP]);
#elif defined(__aarch64__)
  return static_cast<std::uintptr_t>(u->uc_mcontext.sp);
#else
  (void)u;
  return 0;  // unknown: only the guard-page test applies
#endif
}

bool on_altstack(std::uintptr_t sp) {
  stack_t ss{};
  if (sigaltstack(nullptr, &ss) != 0 || (ss.ss_flags & SS_DISABLE)) return false;
  auto lo = reinterpret_cast<std::uintptr_t>(ss.ss_sp);
  return sp >= lo && sp < lo + ss.ss_size;
}

// is_overflow(): the fault at `addr`, with the stack pointer at `sp`, is t's stack overflowing
// (stack.hpp says which faults count).
bool is_overflow(const tcb* t, std::uintptr_t addr, std::uintptr_t sp) {
  const stack* st = t->stk;
  auto lo = reinterpret_cast<std::uintptr_t>(st->lo);
  // The guard page, or just below it (a frame of up to 64 KiB can step over the guard).
  if (st->guarded && addr < lo && addr + 64 * 1024 >= lo) return true;
  if (sp == 0) return false;
  auto top = reinterpret_cast<std::uintptr_t>(st);  // the descriptor: the stack's top
  if (sp >= lo && sp <= top) return false;          // on its stack: some other fault
  return !sp_on_switch_side(sp) && !on_altstack(sp);
}

void on_segv(int sig, siginfo_t* si, void* uc) {
  const tcb* t = current_tcb();  // reads the worker's thread_local pointer: async-signal-safe
  if (t && t->stk) {
    const std::uintptr_t sp = interrupted_sp(uc);
    if (is_overflow(t, reinterpret_cast<std::uintptr_t>(si->si_addr), sp)) {
      write_str("stackless: stack overflow in tasklet #");
      write_num(t->id);
      if (t->name.empty()) {
        write_str(" (unnamed)");
      } else {
        write_str(" '");
        (void)!write(2, t->name.data(), t->name.size());
        write_str("'");
      }
      if (*t->spawned_at.file_name()) {  // static strings: safe to read here
        write_str(" spawned at ");
        write_str(t->spawned_at.file_name());
        write_str(":");
        write_num(t->spawned_at.line());
      }
      write_str(" (");
      write_str(t->stk->guarded ? "guarded" : "unguarded");
      write_str(" stack of ");
      write_num(t->stk->size);
      write_str(" bytes; the stack pointer is ");
      const auto lo = reinterpret_cast<std::uintptr_t>(t->stk->lo);
      if (sp != 0 && sp < lo) {
        write_num(lo - sp);
        write_str(" bytes below it");
      } else {
        write_str(sp != 0 && sp <= reinterpret_cast<std::uintptr_t>(t->stk) ? "inside it"
                                                                            : "outside it");
      }
      write_str("); raise options::stack_size\n");
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
