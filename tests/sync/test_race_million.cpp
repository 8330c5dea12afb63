// SPDX-License-Identifier: Apache-2.0
// test_race_million.cpp — timed waits against notifies, a million rounds per test (issue 5:
// "timeout vs notify races in a loop, nothing lost, nothing woken twice").
//
// A timed wait and a notify race through one atomic word: the waiter's park door (a tasklet) or
// its futex word (a plain thread). Exactly one of them wins. If the timeout wins, the notify
// hands nothing over (the waker moves on and the permit / value / set stays where it was); if
// the notify wins, the wait returns success and owns what was handed over. Each test below runs
// that race a million times (fewer under sanitizers) with timeouts of 0–3 µs — mostly zero, i.e.
// already due when the waiter parks, so a round costs a switch and a timer check rather than a
// sleep — against a notifier on another OS thread that acts after a random spin of 0–3 µs, so
// its notify lands before, during and after the waiter's park. The accounting is exact:
//  - counting_semaphore::try_acquire_for vs release(1): every permit released is acquired once
//    or still there at the end; no acquire ever gets ahead of the releases.
//  - event::wait_for vs set (handshake per round, clear between rounds): true only with the
//    event set; false never when the set had completed before the wait began; the set of every
//    round is there afterwards.
//  - channel::receive_for vs send_for (both sides timing out, a rendezvous): every value sent is
//    received exactly once and in order; a send_for that timed out kept its value; nothing is
//    left behind. Once more with a buffered channel and the receiver a plain thread.
//  - condition_variable::wait_for vs notify_one: a no_timeout return under notifies made with
//    the mutex held always finds the notified item (no wake from nothing); never more wakes than
//    notifies; every item is consumed once.
// Each test prints its rounds and how many timed out and how many were notified (both outcomes
// are asserted to occur), and how often the notify beat a timeout that was due as the waiter
// parked. Every test runs over workers ∈ {1, 2, 4}. No test asserts how long anything took.
//
// On a loaded machine (ctest -j2 beside other tests, a build on the 2 cores) a round can cost
// milliseconds instead of about a microsecond — a plain-thread notifier preempted while it holds
// a primitive's spinlock leaves the waiter spinning for a time slice — so each test also stops at
// a wall-clock budget (kBudget) and prints that it did; its accounting stays exact either way.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "channel_fixture.hpp"

namespace {

using namespace stackless_test;
using clock_type = std::chrono::steady_clock;

class RaceMillion : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(RaceMillion);

/// kRounds is the number of races per test: timed waits that may meet a notify. Measured on an
/// idle 2-core VM (this binary alone): 1.5–21 s per test in the debug build (128 s for the
/// binary, every test its full million), 0.9–3 s per test under TSan (31 s for the binary).
/// CI (tools/dev test) runs 100,000 in every build; the full sizes run under tools/dev soak-tests
/// (STACKLESS_TEST_TIER=soak; fixture.hpp: ci_sized()).
const std::size_t kRounds = ci_sized(scaled(1'000'000, 400'000, 100'000), 100'000);

/// kBudget bounds a test's race loop in wall-clock time: a safety valve for loaded machines (see
/// the top of the file) — under ctest -j2 beside other spinning tests, or under ASan beside a
/// build, a round can cost 100 µs or more. Not a timing assertion: the test passes either way.
/// 10 s in CI; 60 s under tools/dev soak-tests, whose full sizes need more than 10 s on a loaded
/// machine.
const std::chrono::seconds kBudget{soak_tier() ? 60 : 10};

/// budget tells a race loop when to stop: after `rounds` rounds, or when kBudget has passed
/// (checked every 1024 rounds).
class budget {
 public:
  explicit budget(std::size_t rounds) : rounds_(rounds), end_(clock_type::now() + kBudget) {}
  /// more(i): round i (counted from 0) should run.
  bool more(std::size_t i) {
    if (i >= rounds_) return false;
    if ((i & 1023) == 0 && i > 0 && clock_type::now() > end_) {
      cut_ = true;
      return false;
    }
    return true;
  }
  /// half_spent(): half of kBudget has passed.
  bool half_spent() const { return clock_type::now() > end_ - kBudget / 2; }
  /// note() prints, if the budget cut the loop short, how far it got.
  void note(std::size_t done) const {
    if (cut_)
      std::printf("  (stopped by the %llds budget after %zu of %zu rounds: a loaded machine)\n",
                  static_cast<long long>(kBudget.count()), done, rounds_);
  }

 private:
  std::size_t rounds_;
  clock_type::time_point end_;
  bool cut_ = false;
};

inline void cpu_pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

/// spin_ns() busy-waits about ns nanoseconds (no yield, no syscall): a delay finer than a timer.
void spin_ns(std::uint32_t ns) {
  if (ns == 0) return;
  const auto until = clock_type::now() + std::chrono::nanoseconds(ns);
  while (clock_type::now() < until) cpu_pause();
}

/// busy_wait() waits until p() holds, for the handshakes of the race loops: it spins (no yield,
/// no syscall: the partner answers within microseconds when it has a CPU) for about 6 µs, then
/// backs off as spin_until() does — yields, then 20 µs sleeps — so that on a loaded machine
/// (2 cores, ctest -j2, sanitizers) it does not keep the partner from running. false only when
/// the hang guard passed.
template <class P>
bool busy_wait(P p) {
  for (int i = 0; i < 256; ++i) {
    if (p()) return true;
    cpu_pause();
  }
  return spin_until(p);
}

/// tiny() is a wait's timeout: zero (due as the waiter parks) three times in four, else 1–3 µs
/// (still short enough that a notify often lands inside it).
std::chrono::nanoseconds tiny(std::minstd_rand& rng) {
  const std::uint32_t x = rng();
  if (x % 4 != 0) return std::chrono::nanoseconds(0);
  return std::chrono::nanoseconds(1000 + (x >> 8) % 2001);
}

/// delay() is the notifier's spin before it acts: 0–3 µs, half the time at most 1 µs — about
/// when a waiter that started at the same moment parks, so a notify often meets a timeout that
/// is due right then.
std::uint32_t delay(std::minstd_rand& rng) {
  const std::uint32_t x = rng();
  return x & 1 ? (x >> 1) % 1001 : (x >> 1) % 3001;
}

// ---- counting_semaphore ---------------------------------------------------------------------

// One permit in flight at a time: the notifier releases the next one only after the waiter took
// the last, after a random spin; the waiter loops try_acquire_for(tiny). Each try_acquire_for is
// a round. A permit taken by a wait that reports a timeout, or handed to two waits, breaks the
// count; one created from nothing shows as an acquire ahead of the releases.
TEST_P(RaceMillion, SemaphoreTryAcquireForAgainstRelease) {
  budget b(kRounds);
  std::size_t rounds = 0;
  sl::counting_semaphore sem(0);
  std::atomic<std::uint64_t> released{0}, acquired{0};
  std::atomic<bool> stop{false};
  std::thread notifier([&] {
    std::minstd_rand rng(7);
    for (;;) {
      // pairs with the waiter's release store of `acquired`
      if (!busy_wait([&] {
            return stop.load(std::memory_order_acquire) ||
                   acquired.load(std::memory_order_acquire) ==
                       released.load(std::memory_order_relaxed);
          }))
        break;
      if (stop.load(std::memory_order_acquire)) break;
      spin_ns(delay(rng));
      released.fetch_add(1, std::memory_order_release);  // before the permit exists
      sem.release(1);
    }
  });
  std::uint64_t took = 0, timed_out = 0, ahead = 0, raced = 0, zero_raced = 0;
  sched().block_on([&] {
    std::minstd_rand rng(11);
    for (; b.more(rounds); ++rounds) {
      const auto d = tiny(rng);
      // No permit released yet: a success below is a release that came during the call.
      const bool none_yet = released.load(std::memory_order_acquire) == took;
      if (sem.try_acquire_for(d)) {
        ++took;
        raced += none_yet;
        zero_raced += none_yet && d.count() == 0;  // beat a timeout due as it parked
        if (took > released.load(std::memory_order_acquire)) ++ahead;
        acquired.store(took, std::memory_order_release);
      } else {
        ++timed_out;
      }
    }
    stop.store(true, std::memory_order_release);
  });
  notifier.join();
  // The notifier may have released one more permit after the waiter's last round: it is there.
  std::uint64_t left = 0;
  while (sem.try_acquire()) ++left;
  EXPECT_EQ(ahead, 0u) << "a permit acquired before it was released (made from nothing, or twice)";
  EXPECT_EQ(took + left, released.load()) << "permits lost or taken twice";
  EXPECT_LE(left, 1u);
  EXPECT_EQ(sem.value(), 0);
  EXPECT_EQ(took + timed_out, rounds);
  EXPECT_GT(took, 0u);
  EXPECT_GT(timed_out, 0u);
  std::printf(
      "semaphore (workers %u): %zu rounds, %llu acquired (%llu released during the "
      "call, %llu of them against a zero timeout), %llu timed out\n",
      workers(), rounds, static_cast<unsigned long long>(took),
      static_cast<unsigned long long>(raced), static_cast<unsigned long long>(zero_raced),
      static_cast<unsigned long long>(timed_out));
  b.note(rounds);
}

// ---- event ----------------------------------------------------------------------------------

// A round: the waiter announces it, the notifier spins 0–3 µs and sets, the waiter waits with a
// tiny timeout. Afterwards the waiter waits for that round's set and clears. Exactly one of
// {true, and the event is set} / {false} per round; false never when the set had completed
// before the wait began; every set is there after its round.
TEST_P(RaceMillion, EventWaitForAgainstSet) {
  budget b(kRounds);
  std::size_t rounds = 0;
  sl::event ev;
  std::atomic<std::uint64_t> go{0}, set_done{0};
  std::atomic<bool> stop{false};
  std::thread notifier([&] {
    std::minstd_rand rng(13);
    for (std::uint64_t r = 1;; ++r) {
      if (!busy_wait([&] {
            return stop.load(std::memory_order_acquire) || go.load(std::memory_order_acquire) == r;
          }) ||
          stop.load(std::memory_order_acquire))
        break;
      spin_ns(delay(rng));
      ev.set();
      set_done.store(r, std::memory_order_release);  // pairs with the waiter's acquire loads
    }
  });
  std::uint64_t notified = 0, raced = 0, zero_true = 0, timed_out = 0;
  std::uint64_t set_without = 0, missed = 0, lost = 0;
  sched().block_on([&] {
    std::minstd_rand rng(17);
    for (; b.more(rounds); ++rounds) {
      const std::uint64_t r = rounds + 1;
      go.store(r, std::memory_order_release);
      const auto d = tiny(rng);
      const bool before = set_done.load(std::memory_order_acquire) == r;
      const bool was_set = ev.is_set();
      if (ev.wait_for(d)) {
        ++notified;
        raced += !was_set;                        // the set came during the call
        zero_true += !was_set && d.count() == 0;  // ... and beat a timeout due as it parked
        if (!ev.is_set()) ++set_without;          // nobody clears during the round
      } else {
        ++timed_out;
        if (before) ++missed;  // the set had completed before the wait began
      }
      if (!busy_wait([&] { return set_done.load(std::memory_order_acquire) == r; })) {
        ADD_FAILURE() << "the notifier never finished round " << r;
        break;
      }
      if (!ev.is_set()) ++lost;
      ev.clear();
    }
    stop.store(true, std::memory_order_release);
  });
  notifier.join();
  EXPECT_EQ(set_without, 0u) << "wait_for() returned true with the event not set";
  EXPECT_EQ(missed, 0u) << "wait_for() timed out although the event was set before it began";
  EXPECT_EQ(lost, 0u) << "a set() vanished";
  EXPECT_EQ(notified + timed_out, rounds);
  EXPECT_FALSE(ev.is_set());
  EXPECT_GT(notified, 0u);
  EXPECT_GT(timed_out, 0u);
  std::printf(
      "event (workers %u): %zu rounds, %llu true (%llu set during the call, %llu of them "
      "against a zero timeout), %llu timed out\n",
      workers(), rounds, static_cast<unsigned long long>(notified),
      static_cast<unsigned long long>(raced), static_cast<unsigned long long>(zero_true),
      static_cast<unsigned long long>(timed_out));
  b.note(rounds);
}

// ---- channel --------------------------------------------------------------------------------

/// channel_race is one receive_for-vs-send_for race over `ch`: a sender sends 0, 1, 2, … with
/// send_for(tiny) (retrying a value whose send timed out), the receiver calls receive_for(tiny)
/// kRounds times (or until the budget is spent) and checks that the values come in order, without
/// gap or repeat.
struct channel_race {
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> sent{0};               // values whose send_for returned true
  std::atomic<std::uint64_t> received{0};           // written by the receiver only
  std::uint64_t timed_out = 0, out_of_order = 0;    // the receiver's
  std::uint64_t send_timeouts = 0, kept_wrong = 0;  // the sender's
  std::size_t rounds = 0;                           // the receiver's
  budget b{kRounds};

  void send_loop(channel<std::unique_ptr<std::uint64_t>> ch, unsigned seed) {
    std::minstd_rand rng(seed);
    for (std::uint64_t v = 0;; ++v) {
      auto p = std::make_unique<std::uint64_t>(v);
      // One value in flight: wait until the last one was received, so that each value meets a
      // receiver that is in (or between) its timed waits, not a full buffer.
      if (!busy_wait([&] {
            return stop.load(std::memory_order_acquire) ||
                   received.load(std::memory_order_acquire) == v;
          }) ||
          stop.load(std::memory_order_acquire))
        return;
      spin_ns(delay(rng));
      while (!ch.send_for(p, tiny(rng))) {
        if (!p || *p != v) ++kept_wrong;  // a timed-out send keeps its value
        ++send_timeouts;
        if (stop.load(std::memory_order_acquire)) return;
      }
      sent.store(v + 1, std::memory_order_release);
    }
  }
  void receive_loop(channel<std::unique_ptr<std::uint64_t>> ch, unsigned seed) {
    std::minstd_rand rng(seed);
    for (; b.more(rounds); ++rounds) {
      auto r = ch.receive_for(tiny(rng));
      if (!r) {
        ++timed_out;
        continue;
      }
      const std::uint64_t n = received.load(std::memory_order_relaxed);
      if (!*r || **r != n) ++out_of_order;
      received.store(n + 1, std::memory_order_release);  // pairs with the sender's wait
    }
    stop.store(true, std::memory_order_release);
  }
  /// finish() runs after both loops ended: nothing may be left behind or lost.
  void finish(channel<std::unique_ptr<std::uint64_t>>& ch, const char* what, unsigned w) {
    // A buffered channel may still hold the last value sent: receive it in order.
    while (auto r = ch.try_receive()) {
      if (!*r || **r != received.load()) ++out_of_order;
      received.fetch_add(1);
    }
    EXPECT_EQ(out_of_order, 0u) << "a value received out of order, twice, or not at all";
    EXPECT_EQ(kept_wrong, 0u) << "a timed-out send_for() lost its value";
    EXPECT_EQ(received.load(), sent.load()) << "values lost (sent but never received) or made up";
    EXPECT_TRUE(wait_balance(ch, 0)) << "a timed-out operation left a waiter behind";
    EXPECT_GT(received.load(), 0u);
    EXPECT_GT(timed_out, 0u);
    std::printf(
        "%s (workers %u): %zu receive rounds, %llu received, %llu receives timed out, "
        "%llu sends timed out\n",
        what, w, rounds, static_cast<unsigned long long>(received.load()),
        static_cast<unsigned long long>(timed_out), static_cast<unsigned long long>(send_timeouts));
    b.note(rounds);
  }
};

// A rendezvous: both sides time out, and a value passes only when a receive_for and a send_for
// meet. The receiver is a tasklet, the sender a plain thread.
TEST_P(RaceMillion, ChannelReceiveForAgainstSendFor) {
  channel<std::unique_ptr<std::uint64_t>> ch;
  channel_race race;
  std::thread sender([&race, ch] { race.send_loop(ch, 19); });
  sched().block_on([&race, ch] { race.receive_loop(ch, 23); });
  sender.join();
  race.finish(ch, "rendezvous channel, receiver a tasklet", workers());
}

// A buffered channel with the receiver a plain thread (this one) and the sender a tasklet: the
// plain thread's timed wait races through its futex word instead of a park door.
TEST_P(RaceMillion, ChannelReceiveForOnAPlainThreadAgainstSendFor) {
  channel<std::unique_ptr<std::uint64_t>> ch(1);
  channel_race race;
  auto sender = sched().spawn([&race, ch] { race.send_loop(ch, 29); });
  race.receive_loop(ch, 31);
  sender.join();
  race.finish(ch, "buffered channel, receiver a plain thread", workers());
}

// ---- select with a timer against a sender, the selecting tasklets ending -----------------------

// A tasklet's select(on_receive, after(tiny)) against a plain thread's try_send, the selecting
// tasklet ending at once and the next round's spawn reusing its control block. The sender that
// wins the select's `sel` word then wakes its park door; the select's timer may wake that door
// first, and the tasklet may take the value, end and be freed while the sender is still in
// wake_park(). The sender must be done with the tasklet before it can end (chan_engine.hpp:
// SEL_WAKING); ThreadSanitizer reported the door read racing the next control block's
// construction (soak_short, 2026-12-02) before that. The accounting: every try_send that
// returned true was received once, in order.
TEST_P(RaceMillion, SelectWithATimerAgainstTrySendWhileTheSelectorsEnd) {
  channel<std::uint64_t> ch;
  std::atomic<std::uint64_t> round{0};     // the round whose selector runs (driver → sender)
  std::atomic<std::uint64_t> finished{0};  // rounds whose selector ended (selector → sender)
  std::atomic<std::uint64_t> sent{0};      // values try_send delivered
  std::uint64_t received = 0, timed_out = 0, out_of_order = 0;  // the selectors' (one at a time)
  std::atomic<bool> stop{false};
  std::size_t rounds = 0;
  // A spawn and an end per round, a few times a timed wait's cost: 5,000 rounds in CI (under
  // TSan at workers = 1, without the fix, the race showed within the first few hundred).
  budget b{ci_sized(scaled(250'000, 100'000, 25'000), 5'000)};
  std::thread sender([&] {
    std::minstd_rand rng(37);
    for (std::uint64_t r = 1;; ++r) {
      if (!busy_wait([&] {
            return stop.load(std::memory_order_acquire) ||
                   round.load(std::memory_order_acquire) >= r;
          }) ||
          stop.load(std::memory_order_acquire))
        return;
      spin_ns(delay(rng));
      // Until the selector of round r took a value or ended: one value per round at most.
      std::uint64_t v = sent.load(std::memory_order_relaxed);
      while (finished.load(std::memory_order_acquire) < r) {
        if (ch.try_send(v)) {
          sent.store(v + 1, std::memory_order_release);
          break;
        }
        cpu_pause();
      }
    }
  });
  sched().block_on([&] {
    std::minstd_rand rng(41);
    for (; b.more(rounds); ++rounds) {
      // Every 64th round waits long enough for the sender to get through however slow the
      // machine is, so both outcomes occur (an ASan run at workers = 2 once had 0 receives in
      // 5,000 rounds of tiny timeouts); the others race.
      const auto timeout =
          rounds % 64 == 63 ? std::chrono::nanoseconds(std::chrono::milliseconds(200)) : tiny(rng);
      auto selector = sched().spawn([&] {
        std::optional<std::uint64_t> got;
        const std::size_t i = stackless::select(
            stackless::on_receive(ch, [&](std::optional<std::uint64_t> v) { got = v; }),
            stackless::after(timeout, [] {}));
        if (i == 1) {
          ++timed_out;
        } else {
          if (!got || *got != received) ++out_of_order;
          ++received;
        }
      });
      round.store(rounds + 1, std::memory_order_release);  // pairs with the sender's wait
      selector.join();
      finished.store(rounds + 1, std::memory_order_release);  // pairs with the sender's loop
    }
    stop.store(true, std::memory_order_release);
  });
  sender.join();
  EXPECT_EQ(out_of_order, 0u) << "a value received out of order, twice, or made up";
  EXPECT_EQ(received, sent.load()) << "a try_send that returned true was never received";
  EXPECT_TRUE(wait_balance(ch, 0)) << "a select left a record behind";
  EXPECT_GT(received, 0u);
  EXPECT_GT(timed_out, 0u);
  std::printf("select vs try_send (workers %u): %zu rounds, %llu received, %llu timed out\n",
              workers(), rounds, static_cast<unsigned long long>(received),
              static_cast<unsigned long long>(timed_out));
  b.note(rounds);
}

// ---- condition_variable ---------------------------------------------------------------------

// The notifier adds one item (under the mutex) after the waiter consumed the last, then calls
// notify_one. The waiter waits with wait_for(tiny), no predicate, when there is nothing to
// consume; a round is a wait. In the first half (of the rounds, or of the budget if that runs
// out first) every notify is made under the mutex, together
// with its item: a no_timeout return must then find an item (no spurious wakeups, no wake from
// nothing). In the second half the notifier notifies after unlocking, at random: such a notify
// may come late and wake a later wait that finds nothing (legitimate, as with std::), so only
// the count is checked there: never more wakes than notifies. Every item is consumed once.
TEST_P(RaceMillion, ConditionVariableWaitForAgainstNotifyOne) {
  budget b(kRounds);
  std::size_t rounds = 0;
  sl::mutex mu;
  sl::condition_variable cv;
  std::uint64_t items = 0;  // guarded by mu
  std::atomic<std::uint64_t> produced{0}, consumed{0}, notifies{0};
  std::atomic<bool> stop{false}, second_half{false};
  std::thread notifier([&] {
    std::minstd_rand rng(37);
    for (;;) {
      if (!busy_wait([&] {
            return stop.load(std::memory_order_acquire) ||
                   consumed.load(std::memory_order_acquire) ==
                       produced.load(std::memory_order_relaxed);
          }) ||
          stop.load(std::memory_order_acquire))
        break;
      spin_ns(delay(rng));
      // Only once the waiter has left the first half (pairs with its release store).
      const bool after_unlock = second_half.load(std::memory_order_acquire) && (rng() & 1);
      std::unique_lock lk(mu);
      ++items;
      produced.fetch_add(1, std::memory_order_relaxed);
      notifies.fetch_add(1, std::memory_order_release);  // before the notify it counts
      if (after_unlock) lk.unlock();
      cv.notify_one();
    }
  });
  std::uint64_t woken = 0, timed_out = 0, empty_wake = 0, late_wake = 0, taken = 0, woken_ahead = 0;
  sched().block_on([&] {
    std::minstd_rand rng(41);
    std::unique_lock lk(mu);
    bool first_half = true;
    for (;;) {
      rounds = woken + timed_out;
      if (!b.more(rounds)) break;
      if (first_half && (rounds >= kRounds / 2 || ((rounds & 1023) == 0 && b.half_spent()))) {
        first_half = false;
        second_half.store(true, std::memory_order_release);
      }
      if (items == 0) {
        if (cv.wait_for(lk, tiny(rng)) == std::cv_status::timeout) {
          ++timed_out;
        } else {
          ++woken;
          if (items == 0) ++(first_half ? empty_wake : late_wake);
          if (woken > notifies.load(std::memory_order_acquire)) ++woken_ahead;
        }
      }
      if (items > 0) {
        --items;
        ++taken;
        consumed.store(taken, std::memory_order_release);  // pairs with the notifier's wait
        // Let the notifier at the mutex: a tasklet that kept it would mostly find the next item
        // without waiting.
        lk.unlock();
        lk.lock();
      }
    }
    stop.store(true, std::memory_order_release);
  });
  notifier.join();
  EXPECT_EQ(empty_wake, 0u) << "wait_for() returned no_timeout although no notify was made";
  EXPECT_EQ(woken_ahead, 0u) << "more wakes than notifies";
  EXPECT_EQ(taken + items, produced.load()) << "items lost or taken twice";
  EXPECT_LE(items, 1u);
  EXPECT_GT(woken, 0u);
  EXPECT_GT(timed_out, 0u);
  std::printf(
      "condition_variable (workers %u): %zu rounds, %llu woken (%llu by a late notify), "
      "%llu timed out; %llu items\n",
      workers(), rounds, static_cast<unsigned long long>(woken),
      static_cast<unsigned long long>(late_wake), static_cast<unsigned long long>(timed_out),
      static_cast<unsigned long long>(taken));
}

}  // namespace
