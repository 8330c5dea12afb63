// SPDX-License-Identifier: Apache-2.0
// runtime/src/local.cpp — the storage behind tasklet_local<T>: a small table per tasklet (in its
// tcb) or per plain thread, keyed by never-reused 64-bit keys. Only the owning tasklet touches
// its table (no locks); the table is destroyed at the tasklet's end, on its own stack
// (tasklet_entry, worker.cpp), or at the thread's exit.
#include <atomic>
#include <vector>

#include "scheduler_impl.hpp"
#include "stackless/runtime/tasklet_local.hpp"

namespace stackless::detail {

struct local_table {
  struct entry {
    std::uint64_t key;
    void* value;
    void (*destroy)(void*) noexcept;
  };
  std::vector<entry> entries;
  ~local_table() { clear(); }
  void clear() noexcept {
    // A destructor may use other tasklet_locals (even make new ones): take entries one at a
    // time from the back until none is left.
    while (!entries.empty()) {
      entry e = entries.back();
      entries.pop_back();
      e.destroy(e.value);
    }
  }
};

namespace {
std::atomic<std::uint64_t> next_key{1};

local_table*& table_slot() noexcept {
  if (tcb* t = current_tcb()) return t->locals;
  static thread_local struct thread_table {
    local_table* p = nullptr;
    ~thread_table() { delete p; }
  } tt;
  return tt.p;
}
}  // namespace

// relaxed: only the uniqueness of the key matters (the RMW gives it); no data rides on it.
std::uint64_t local_new_key() noexcept { return next_key.fetch_add(1, std::memory_order_relaxed); }

void* local_find(std::uint64_t key) noexcept {
  local_table* tab = table_slot();
  if (!tab) return nullptr;
  for (auto& e : tab->entries)
    if (e.key == key) return e.value;
  return nullptr;
}

void local_insert(std::uint64_t key, void* v, void (*destroy)(void*) noexcept) {
  local_table*& tab = table_slot();
  if (!tab) tab = new local_table;
  tab->entries.push_back({key, v, destroy});
}

void local_erase(std::uint64_t key) noexcept {
  local_table* tab = table_slot();
  if (!tab) return;
  for (std::size_t i = 0; i < tab->entries.size(); ++i) {
    if (tab->entries[i].key == key) {
      local_table::entry e = tab->entries[i];
      tab->entries.erase(tab->entries.begin() + static_cast<std::ptrdiff_t>(i));
      e.destroy(e.value);
      return;
    }
  }
}

/// destroy_locals() runs at the end of a tasklet, on its stack.
void destroy_locals(tcb* t) noexcept {
  while (local_table* tab = t->locals) {
    tab->clear();
    if (tab->entries.empty()) {
      t->locals = nullptr;
      delete tab;
    }
  }
}

}  // namespace stackless::detail
