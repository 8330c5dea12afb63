// SPDX-License-Identifier: Apache-2.0
// sync/src/ebr.cpp — epoch-based reclamation (see ebr.hpp for the papers and the rules).
//
// Global epoch E. Each OS thread that ever pins owns a record (a lock-free, grow-only list;
// records of exited threads are reused):
//   local = E_seen << 1 | active
// pin():   local = E << 1 | 1, and the announcement must be visible before the section reads a
//          shared pointer: the Dekker pair with try_advance(), which reads every local. Pins are
//          on every channel operation and advances are rare, so the barrier is asymmetric
//          (Linux membarrier(2), as liburcu and folly's hazard pointers do): pin() is a plain
//          store plus a compiler barrier, and try_advance() first runs membarrier(
//          PRIVATE_EXPEDITED), which puts a full barrier on every running thread of the
//          process. Without membarrier — and under ThreadSanitizer, which models neither it nor
//          fences — pin() uses a seq_cst exchange (a full barrier) instead.
// unpin(): local = 0 (release: the reads of the section happen before it).
// try_advance(): E may go from e to e + 1 only when every active record has seen e. Then no
//          thread is still in a section that began in epoch e - 1 or earlier, so what was retired
//          in epoch e - 1 (tagged e - 1) is unreachable by anyone when E reaches e + 1.
// Retired objects wait in the retiring thread's limbo list, tagged with the epoch of their
// retirement, and are freed once E >= tag + 2. A thread that exits hands its limbo list to a
// global orphan list that every collect() also looks at.
#include "ebr.hpp"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <vector>

namespace stackless::detail::ebr {

namespace {

struct retired {
  void* p;
  void (*free_fn)(void*) noexcept;
  std::uint64_t epoch;
};

std::atomic<std::uint64_t> g_epoch{2};
std::atomic<record*> g_records{nullptr};
std::atomic<std::uint64_t> g_pending{0};
std::mutex g_orphan_mu;
// Retired objects of threads that exited, guarded by g_orphan_mu. Whatever is still here when
// the process exits (no thread pins then) is freed by the destructor.
struct orphan_list : std::vector<retired> {
  ~orphan_list() {
    for (retired& x : *this) x.free_fn(x.p);
  }
};
orphan_list g_orphans;

constexpr std::size_t collect_every = 64;

bool membarrier_usable() {
#if defined(STACKLESS_TSAN)
  return false;
#else
  static const bool ok = [] {
    long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED)) return false;
    return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
  }();
  return ok;
#endif
}
const bool g_asymmetric = membarrier_usable();

}  // namespace

struct alignas(64) record {
  std::atomic<std::uint64_t> local{0};
  std::atomic<bool> owned{false};  // a live thread owns it
  record* next = nullptr;          // immutable once published
  // Owner-only:
  unsigned depth = 0;
  std::vector<retired> limbo;
  std::size_t since_collect = 0;
};

namespace {

record* acquire_record() {
  // acquire: pairs with the release CAS below that published each record (its fields).
  for (record* r = g_records.load(std::memory_order_acquire); r; r = r->next) {
    bool f = false;
    // The load is relaxed: a pre-check only; the CAS decides. The CAS (acquire) pairs with the
    // release store of `owned` in ~thread_slot(): the previous owner's last writes are ours.
    if (!r->owned.load(std::memory_order_relaxed) &&
        r->owned.compare_exchange_strong(f, true, std::memory_order_acquire))
      return r;
  }
  record* r = new record;
  r->owned.store(true, std::memory_order_relaxed);  // relaxed: published by the CAS below
  // relaxed: only the CAS's expected value; a stale one makes the CAS fail and reload.
  record* head = g_records.load(std::memory_order_relaxed);
  do {
    r->next = head;
  } while (!g_records.compare_exchange_weak(head, r, std::memory_order_release,  // pairs with the
                                            std::memory_order_relaxed));         // acquire above
  return r;
}

void free_ready(std::vector<retired>& v, std::uint64_t e) {
  std::size_t kept = 0;
  for (retired& x : v) {
    if (x.epoch + 2 <= e) {
      x.free_fn(x.p);
      g_pending.fetch_sub(1, std::memory_order_relaxed);  // relaxed: a statistic (pending())
    } else {
      v[kept++] = x;
    }
  }
  v.resize(kept);
}

bool try_advance() {
  // The heavy side of the asymmetric barrier: after it, every pin() announced before any other
  // thread's last read of a pointer is visible here.
  if (g_asymmetric) syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
  // seq_cst: pairs with the CAS below in other threads and the epoch loads of pin().
  std::uint64_t e = g_epoch.load(std::memory_order_seq_cst);
  // acquire: pairs with the release CAS in acquire_record() that published each record.
  for (record* r = g_records.load(std::memory_order_acquire); r; r = r->next) {
    // seq_cst: pairs with pin()'s announcement (its exchange, or its relaxed store made visible
    // by the membarrier above) and with the release store of unpin().
    std::uint64_t l = r->local.load(std::memory_order_seq_cst);
    if ((l & 1) && (l >> 1) != e) return false;
  }
  // seq_cst: pairs with the epoch loads of pin(), retire() and collect().
  return g_epoch.compare_exchange_strong(e, e + 1, std::memory_order_seq_cst);
}

struct thread_slot {
  record* r = nullptr;
  ~thread_slot() {
    if (!r) return;
    if (!r->limbo.empty()) {
      std::lock_guard<std::mutex> lk(g_orphan_mu);
      g_orphans.insert(g_orphans.end(), r->limbo.begin(), r->limbo.end());
      r->limbo.clear();
    }
    r->local.store(0, std::memory_order_release);  // pairs with the seq_cst load in try_advance()
    r->owned.store(false, std::memory_order_release);  // pairs with the acquire in acquire_record()
  }
};

// Never inlined into a caller that could cache the address across a tasklet switch: a tasklet
// resumes on any thread (see runtime/src/worker.cpp, current_worker()).
[[gnu::noinline]] record* my_record() {
  thread_local thread_slot slot;
  if (!slot.r) slot.r = acquire_record();
  return slot.r;
}

}  // namespace

record* pin() noexcept {
  record* r = my_record();
  if (r->depth++ == 0) {
    // seq_cst: pairs with the epoch CAS in try_advance().
    std::uint64_t v = g_epoch.load(std::memory_order_seq_cst) << 1 | 1;
    if (g_asymmetric) {
      // relaxed: the membarrier in try_advance() is this store's fence (pairs with its loads).
      r->local.store(v, std::memory_order_relaxed);
      std::atomic_signal_fence(
          std::memory_order_seq_cst);  // the compiler keeps it before the reads
    } else {
      // seq_cst (a full barrier): pairs with the seq_cst loads of `local` in try_advance().
      r->local.exchange(v, std::memory_order_seq_cst);
    }
  }
  return r;
}

void unpin(record* r) noexcept {
  // release: ends the section's reads; pairs with the seq_cst load of `local` in try_advance().
  if (--r->depth == 0) r->local.store(0, std::memory_order_release);
}

void retire(void* p, void (*free_fn)(void*) noexcept) {
  record* r = my_record();
  // seq_cst: pairs with the epoch CAS in try_advance() (the tag is an epoch p was unlinked by).
  r->limbo.push_back(retired{p, free_fn, g_epoch.load(std::memory_order_seq_cst)});
  g_pending.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic (pending())
  if (++r->since_collect >= collect_every) {
    r->since_collect = 0;
    collect();
  }
}

void collect() {
  record* r = my_record();
  try_advance();
  std::uint64_t e = g_epoch.load(std::memory_order_seq_cst);  // pairs with try_advance()'s CAS
  free_ready(r->limbo, e);
  std::unique_lock<std::mutex> lk(g_orphan_mu, std::try_to_lock);
  if (lk.owns_lock() && !g_orphans.empty()) free_ready(g_orphans, e);
}

// relaxed: a statistic for tests; it orders nothing.
std::uint64_t pending() noexcept { return g_pending.load(std::memory_order_relaxed); }

}  // namespace stackless::detail::ebr
