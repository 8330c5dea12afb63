// SPDX-License-Identifier: Apache-2.0
// runtime/src/netpoller.hpp — the netpoller: one epoll set per scheduler, polled by its workers
// (netpoll.cpp has the design, the invariants and the memory orders).
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "stackless/runtime/detail/spinlock.hpp"
#include "stackless/runtime/detail/wait_list.hpp"

namespace stackless::detail {

struct worker;

/// poll_slot is the state of one registration (Go's pollDesc). Slots are never freed while the
/// netpoller lives: an event that names a slot whose registration has ended finds a different
/// generation and is dropped.
struct alignas(64) poll_slot {
  spinlock lk;
  std::uint32_t gen = 0;    // guarded by lk; bumped when a registration ends
  std::uint8_t ready = 0;   // guarded by lk; bit i: an edge for interest i nobody consumed yet
  bool closing = false;     // guarded by lk; io_close() was called: waits return `closed`
  bool registered = false;  // guarded by lk; the slot holds a live registration
  int fd = -1;              // guarded by lk
  std::uint32_t index = 0;  // constant: this slot's number
  wait_list waiters[2];     // guarded by lk; by io_interest
  poll_slot* next_free = nullptr;  // guarded by netpoller::mu
};

class netpoller {
 public:
  /// Throws std::system_error if epoll or the eventfd cannot be created.
  netpoller();
  ~netpoller();
  netpoller(const netpoller&) = delete;
  netpoller& operator=(const netpoller&) = delete;

  // Reference counting: the scheduler holds one, and every registration one.
  void acquire() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }  // from a held ref
  void release() noexcept;

  /// add() registers fd (edge-triggered, read and write) in a fresh slot: its index and
  /// generation. -1 with errno set if epoll_ctl refuses it.
  int add(int fd, std::uint32_t* slot, std::uint32_t* gen);
  /// remove() ends registration (slot, gen): waiters get `closed`, epoll forgets fd, the slot is
  /// free again.
  void remove(std::uint32_t slot, std::uint32_t gen, int fd) noexcept;
  poll_slot& at(std::uint32_t slot) noexcept {
    // acquire: pairs with the release store of the chunk in add().
    return chunks_[slot >> chunk_shift].load(std::memory_order_acquire)[slot & chunk_mask];
  }

  /// poll() takes the ready events without blocking (timeout_ns 0) or waiting up to the absolute
  /// steady-clock `deadline_ns` (INT64_MAX: no limit), and wakes their waiters. Returns how many
  /// tasklets it woke. A blocking poll also returns when kick() is called.
  std::size_t poll(std::int64_t deadline_ns, bool block);
  /// kick() makes a blocking poll() return (an eventfd write).
  void kick() noexcept;

  /// waiting(): tasklets parked in io_wait() now. relaxed: a hint for whether to poll at all;
  /// see netpoll.cpp for why a stale value loses no wake-up.
  std::uint64_t waiting() const noexcept { return nwait_.load(std::memory_order_relaxed); }
  std::uint64_t registered() const noexcept { return nreg_.load(std::memory_order_relaxed); }
  void waiter_added() noexcept { nwait_.fetch_add(1, std::memory_order_seq_cst); }
  void waiter_gone(std::uint64_t n = 1) noexcept { nwait_.fetch_sub(n, std::memory_order_relaxed); }

  /// The worker blocked in epoll_wait, if any (at most one at a time): unpark() kicks it.
  std::atomic<worker*> blocker{nullptr};
  /// When a worker last polled (steady ns): the fairness tick and the monitor poll when nobody
  /// has for poll_interval_ns. relaxed: a hint.
  std::atomic<std::int64_t> last_poll{0};
  static constexpr std::int64_t poll_interval_ns = 10'000'000;
  std::atomic<std::uint64_t> polls{0}, events{0};  // counts for stats() (relaxed)

 private:
  static constexpr unsigned chunk_shift = 10;
  static constexpr std::uint32_t chunk_mask = (1u << chunk_shift) - 1;
  static constexpr unsigned max_chunks = 1u << 12;  // 4M registrations at once
  static constexpr std::uint64_t kick_key = UINT64_MAX;

  std::size_t dispatch(const epoll_event* ev, int n) noexcept;

  int epfd_ = -1;
  int efd_ = -1;
  std::atomic<int> refs_{1};
  alignas(64) std::atomic<std::uint64_t> nwait_{0};
  std::atomic<std::uint64_t> nreg_{0};
  std::mutex mu_;              // guards free_, nchunks_ and the chunk allocation
  poll_slot* free_ = nullptr;  // guarded by mu_
  std::uint32_t nslots_ = 0;   // guarded by mu_: slots handed out so far
  std::unique_ptr<std::atomic<poll_slot*>[]> chunks_;
};

}  // namespace stackless::detail
