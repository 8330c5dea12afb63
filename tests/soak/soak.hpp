// SPDX-License-Identifier: Apache-2.0
// tests/soak/soak.hpp — what the soak program's parts share: the run's context (the scheduler,
// the stop flag, the operation counters, the error count), the exactly-once ledger, a cheap
// per-tasklet random source, and the sub-workloads' entry points (workloads.cpp).
//
// Glossary:
//   driver   a tasklet (or, for the plain-thread workload, a plain thread) that runs one
//            sub-workload in rounds until ctx::stop; main() starts the drivers and joins them.
//   round    one bounded piece of a sub-workload that ends quiescent — every tasklet and thread it
//            started has ended — and then checks its accounting exactly.
//   ledger   the exactly-once record of one round's message sequence numbers.
//
// Kills and exact accounting: kill() raises tasklet_exit only at a suspension point, and a
// blocking call that loses the race to a kill (or to its timeout, or to a timeout_scope) "takes
// nothing": an interrupted send delivers nothing, an interrupted receive takes nothing. So a
// producer marks a sequence number `sent` right after send() returns (no suspension point
// between) and `aborted` when send() throws tasklet_exit; a consumer marks `received` right
// after receive() returns. At the end of a round every number taken is exactly sent+received or
// exactly aborted; anything else (lost, received twice, received after an abort, received but
// never sent) is an accounting error.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "stackless/stackless.hpp"

namespace soak {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

#if defined(STACKLESS_SANITIZED)
inline constexpr bool sanitized = true;
#else
inline constexpr bool sanitized = false;
#endif
#if defined(STACKLESS_TSAN)
inline constexpr bool tsan = true;
#else
inline constexpr bool tsan = false;
#endif

/// counters are the operations the workloads complete, for the rates in the report lines and the
/// hang watchdog (their sum must keep moving). Relaxed: only totals are read.
struct counters {
  std::atomic<std::uint64_t> messages{0};      // channel values received (every kind, every API)
  std::atomic<std::uint64_t> aborted{0};       // sends interrupted by a kill (accounted, not lost)
  std::atomic<std::uint64_t> cv_items{0};      // items through the mutex + condition_variable queue
  std::atomic<std::uint64_t> locks{0};         // critical sections (mutex users)
  std::atomic<std::uint64_t> permits{0};       // semaphore acquisitions
  std::atomic<std::uint64_t> events{0};        // event waits that passed
  std::atomic<std::uint64_t> sleeps{0};        // sleeps, select-after and with_timeout expiries
  std::atomic<std::uint64_t> kills{0};         // tasklets killed by a driver
  std::atomic<std::uint64_t> hog_slices{0};    // preemptible / checkpoint compute slices done
  std::atomic<std::uint64_t> thread_calls{0};  // spawn+join / block_on / channel ops from threads
  std::atomic<std::uint64_t> rounds{0};        // rounds checked

  std::uint64_t progress() const {
    return messages.load() + cv_items.load() + locks.load() + permits.load() + events.load() +
           sleeps.load() + hog_slices.load() + thread_calls.load() + rounds.load();
  }
};

/// thread_pool runs the rounds' plain-thread jobs on threads that live for the whole run: it
/// grows when a job finds no idle thread, so it settles at the rounds' peak within the warm-up.
/// A tasklet that started a std::thread per job would block its worker in pthread_create (and in
/// the join), which under load shows up as stall warnings; the churn of threads that come and go
/// is drive_plain_threads()'s, on a plain thread. Its std::mutex is never held across a park.
class thread_pool {
 public:
  thread_pool() = default;
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;
  ~thread_pool() { stop(); }

  /// reserve() starts n threads now, so that the thread count is flat from the start.
  void reserve(std::size_t n) {
    std::lock_guard g(m_);
    while (threads_.size() < n) threads_.emplace_back([this] { loop(); });
  }
  void post(std::function<void()> job) {
    std::lock_guard g(m_);
    jobs_.push_back(std::move(job));
    if (jobs_.size() > idle_)
      threads_.emplace_back([this] { loop(); });
    else
      cv_.notify_one();
  }
  /// stop() lets the threads finish their jobs and joins them.
  void stop() {
    {
      std::lock_guard g(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void loop() {
    std::unique_lock lk(m_);
    for (;;) {
      ++idle_;
      cv_.wait(lk, [&] { return stop_ || !jobs_.empty(); });
      --idle_;
      if (jobs_.empty()) return;  // stopping
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      lk.unlock();
      job();
      lk.lock();
    }
  }

  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;  // guarded by m_
  std::size_t idle_ = 0;                    // guarded by m_
  bool stop_ = false;                       // guarded by m_
  std::vector<std::thread> threads_;        // guarded by m_ (stop() runs alone)
};

/// ctx is one run: everything hangs off it (no global state).
struct ctx {
  stackless::scheduler* s = nullptr;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> errors{0};
  counters n;
  unsigned scale = 1;  // divides the tasklet counts and round sizes (sanitizer builds: more)
  bool kills = true;

  /// fail() counts an accounting error and prints it (the first 20 of them).
  void fail(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
    std::uint64_t k = errors.fetch_add(1, std::memory_order_relaxed);
    if (k >= 20) return;
    va_list ap;
    va_start(ap, fmt);
    std::fprintf(stderr, "soak: ERROR: ");
    std::vfprintf(stderr, fmt, ap);
    std::fputc('\n', stderr);
    va_end(ap);
  }
  bool stopping() const { return stop.load(std::memory_order_relaxed); }

  thread_pool pool;  // the rounds' plain threads
};

/// rng is a small per-tasklet generator (splitmix64); never shared between tasklets.
class rng {
 public:
  explicit rng(std::uint64_t seed) : x_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (x_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// below(n) is uniform enough in [0, n).
  std::uint64_t below(std::uint64_t n) { return n ? next() % n : 0; }
  std::chrono::microseconds us(std::uint64_t max) { return std::chrono::microseconds(below(max)); }

 private:
  std::uint64_t x_;
};

/// seed() hands every tasklet a different starting point (relaxed: any distinct value will do).
std::uint64_t seed();

/// ledger records each sequence number of a round: sent (send returned), received (receive
/// returned it), aborted (send threw tasklet_exit). take() hands out the numbers 0..size-1.
class ledger {
 public:
  static constexpr std::uint8_t sent_bit = 1, received_bit = 2, aborted_bit = 4;

  /// ledger() makes a round of `size` numbers; each receipt also counts in `receipts`.
  ledger(ctx& c, std::size_t size, std::atomic<std::uint64_t>& receipts)
      : c_(c),
        receipts_(receipts),
        size_(size),
        bits_(std::make_unique<std::atomic<std::uint8_t>[]>(size)) {}

  /// take() is the next sequence number, or nullopt once all were handed out or ctx::stop is set.
  std::optional<std::uint64_t> take() {
    if (c_.stopping()) return std::nullopt;  // the run is ending: finish the round early
    std::uint64_t i = next_.fetch_add(1, std::memory_order_relaxed);
    if (i >= size_) return std::nullopt;
    return i;
  }
  /// exhausted(): no number will be handed out any more (all were, or the run is stopping).
  bool exhausted() const { return c_.stopping() || next_.load(std::memory_order_relaxed) >= size_; }

  void sent(std::uint64_t i) {
    mark(i, sent_bit, sent_bit | aborted_bit, "sent twice or after abort");
  }
  void aborted(std::uint64_t i) {
    mark(i, aborted_bit, sent_bit | aborted_bit, "aborted twice or after send");
    c_.n.aborted.fetch_add(1, std::memory_order_relaxed);
  }
  void received(std::uint64_t i) {
    mark(i, received_bit, received_bit, "received twice");
    receipts_.fetch_add(1, std::memory_order_relaxed);
  }

  /// check() runs once the round is quiescent: every number taken is sent+received or aborted.
  /// Returns the number of errors found (each also reported through ctx::fail).
  std::uint64_t check(const char* what) const;

 private:
  void mark(std::uint64_t i, std::uint8_t bit, std::uint8_t conflict, const char* msg) {
    if (i >= size_) {
      c_.fail("%s: value %llu out of range (round of %zu)", "ledger", (unsigned long long)i, size_);
      return;
    }
    std::uint8_t before = bits_[i].fetch_or(bit, std::memory_order_acq_rel);
    if (before & conflict) c_.fail("ledger: sequence %llu %s", (unsigned long long)i, msg);
  }

  ctx& c_;
  std::atomic<std::uint64_t>& receipts_;
  std::size_t size_;
  std::unique_ptr<std::atomic<std::uint8_t>[]> bits_;
  std::atomic<std::uint64_t> next_{0};
};

/// plain_thread runs f as a job of ctx::pool (a plain thread). finish() waits for it from a
/// tasklet, parking on an event, so the worker keeps running others. An exception f lets out is
/// an error.
class plain_thread {
 public:
  template <class F>
  plain_thread(ctx& c, const char* what, F f) : done_(std::make_shared<stackless::event>()) {
    c.pool.post([&c, what, f = std::move(f), d = done_]() mutable {
      try {
        f();
      } catch (const std::exception& e) {
        c.fail("%s: plain thread: unexpected exception: %s", what, e.what());
      }
      d->set();
    });
  }
  plain_thread(const plain_thread&) = delete;
  plain_thread& operator=(const plain_thread&) = delete;
  ~plain_thread() { finish(); }
  void finish() {
    if (!done_) return;
    done_->wait();
    done_.reset();
  }

 private:
  std::shared_ptr<stackless::event>
      done_;  // shared: the job sets it after the waiter may have gone
};

/// chan_kind: the three channel kinds.
enum class chan_kind { rendezvous, buffered, unbounded };
const char* name_of(chan_kind k);

/// channel_round_spec is one exactly-once round over one channel.
struct channel_round_spec {
  chan_kind kind = chan_kind::rendezvous;
  std::size_t messages = 20000;
  unsigned producers = 4, consumers = 4;     // tasklets, each with its own send/receive style
  bool threads = true;                       // plus one plain-thread producer and one consumer
  bool kills = true;                         // kill (and replace) producers and consumers at random
  std::chrono::microseconds kill_gap{2000};  // at most this long between kills
};

/// channel_round() runs one round and checks its ledger; call it from a tasklet.
void channel_round(ctx& c, const channel_round_spec& spec, rng& r);

// The drivers: each loops over rounds until ctx::stop, from a tasklet (plain_threads: from a plain
// thread). channels.cpp has the exactly-once ones, workloads.cpp the others.
void drive_channels(ctx& c, chan_kind k);
void drive_long_lived_channels(ctx& c);  // channels that live for the whole run
void drive_cv_queue(ctx& c);
void drive_mutex(ctx& c);
void drive_semaphore(ctx& c);
void drive_event(ctx& c);
void drive_timers(ctx& c);
void drive_hogs(ctx& c);
void drive_plain_threads(ctx& c);  // a plain thread, not a tasklet

}  // namespace soak
