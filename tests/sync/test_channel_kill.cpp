// SPDX-License-Identifier: Apache-2.0
// test_channel_kill.cpp — kill() and raise_exception() of tasklets parked in channel operations:
// a killed sender's value is never delivered (and is destroyed), a killed receiver takes nothing,
// the channel keeps working; raise_exception() delivers its exception; a kill racing the partner
// of a parked operation: exactly one of them wins, nothing is lost or duplicated; a channel whose
// handles are all gone lives while parked operations use it (ASan checks the memory).
#include <memory>
#include <new>
#include <thread>
#include <vector>

#include "channel_fixture.hpp"

namespace {

using namespace stackless_test;

class ChannelKill : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(ChannelKill);

TEST_P(ChannelKill, KilledSenderValueIsNeverDelivered) {
  for (std::size_t cap : {std::size_t{0}, std::size_t{1}}) {
    for (int how = 0; how < 2; ++how) {  // parked in send() / in send_for()
      SCOPED_TRACE("capacity " + std::to_string(cap) + (how ? ", send_for" : ", send"));
      channel<std::shared_ptr<int>> ch(cap);
      if (cap) ch.send(std::make_shared<int>(0));  // full
      auto marker = std::make_shared<int>(111);
      std::weak_ptr<int> watch = marker;
      std::atomic<bool> unwound{false}, returned{false};
      auto victim = sched().spawn([ch, how, &unwound, &returned, m = std::move(marker)]() mutable {
        raii_flag guard(unwound);
        if (how) {
          (void)ch.send_for(m, std::chrono::hours(1));
        } else {
          ch.send(std::move(m));
        }
        returned = true;
      });
      ASSERT_TRUE(cap ? wait_blocked(std::vector<tasklet<void>>{victim})
                      : wait_parked(ch, std::vector<tasklet<void>>{victim}, 1));
      victim.kill();
      EXPECT_FALSE(victim.alive());
      EXPECT_TRUE(unwound.load());
      EXPECT_FALSE(returned.load()) << "send() returned normally after kill()";
      EXPECT_TRUE(wait_until([&] { return watch.expired(); }))
          << "the killed sender's value is still held somewhere (the channel?)";
      EXPECT_TRUE(wait_balance(ch, 0)) << "the killed sender still counts: " << ch.balance();
      // A receiver later gets only the other values.
      if (cap) {
        EXPECT_EQ(*ch.receive(), 0);
      }
      EXPECT_FALSE(ch.try_receive().has_value()) << "the killed sender's value was delivered";
      auto other = sched().spawn([ch]() mutable { ch.send(std::make_shared<int>(222)); });
      auto v = ch.receive();
      ASSERT_TRUE(v);
      EXPECT_EQ(*v, 222);
      other.join();
      EXPECT_FALSE(ch.try_receive().has_value());
    }
  }
}

TEST_P(ChannelKill, KilledReceiverTakesNothing) {
  for (std::size_t cap : {std::size_t{0}, std::size_t{2}}) {
    for (int how = 0; how < 3; ++how) {  // receive() / receive_for() / range-for
      SCOPED_TRACE("capacity " + std::to_string(cap) + ", variant " + std::to_string(how));
      channel<int> ch(cap);
      std::atomic<bool> unwound{false}, returned{false};
      auto victim = sched().spawn([ch, how, &unwound, &returned]() mutable {
        raii_flag guard(unwound);
        if (how == 0) (void)ch.receive();
        if (how == 1) (void)ch.receive_for(std::chrono::hours(1));
        if (how == 2)
          for (int v : ch) (void)v;
        returned = true;
      });
      ASSERT_TRUE(wait_parked(ch, std::vector<tasklet<void>>{victim}, -1));
      victim.kill();
      EXPECT_FALSE(victim.alive());
      EXPECT_TRUE(unwound.load());
      EXPECT_FALSE(returned.load());
      EXPECT_TRUE(wait_balance(ch, 0)) << "the killed receiver still counts: " << ch.balance();
      if (cap == 0) {
        int v = 5;
        EXPECT_FALSE(ch.try_send(v)) << "try_send() found the killed receiver";
        // A value sent now waits for a live receiver.
        auto tx = sched().spawn([ch]() mutable { ch.send(6); });
        ASSERT_TRUE(wait_parked(ch, std::vector<tasklet<void>>{tx}, 1))
            << "the send went to the killed receiver";
        EXPECT_EQ(ch.receive(), 6);
        tx.join();
      } else {
        ch.send(6);
        EXPECT_EQ(ch.try_receive(), std::optional<int>(6));
      }
    }
  }
}

TEST_P(ChannelKill, RaiseExceptionIntoAParkedReceiver) {
  channel<int> ch;
  auto rx = sched().spawn([ch]() mutable {
    try {
      return ch.receive();
    } catch (const poke& p) {
      return -p.n;
    }
  });
  ASSERT_TRUE(wait_parked(ch, std::vector<tasklet<int>>{rx}, -1));
  rx.raise_exception(std::make_exception_ptr(poke{4}));
  EXPECT_EQ(rx.join(), -4);
  EXPECT_TRUE(wait_balance(ch, 0));
  // Still works.
  auto rx2 = sched().spawn([ch]() mutable { return ch.receive(); });
  ch.send(3);
  EXPECT_EQ(rx2.join(), 3);
}

TEST_P(ChannelKill, RaiseExceptionIntoAParkedSender) {
  for (std::size_t cap : {std::size_t{0}, std::size_t{1}}) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    channel<int> ch(cap);
    if (cap) ch.send(1);
    auto tx = sched().spawn([ch]() mutable {
      try {
        ch.send(33);
      } catch (const poke& p) {
        return p.n;
      }
      return 0;
    });
    ASSERT_TRUE(cap ? wait_blocked(std::vector<tasklet<int>>{tx})
                    : wait_parked(ch, std::vector<tasklet<int>>{tx}, 1));
    tx.raise_exception(std::make_exception_ptr(poke{5}));
    EXPECT_EQ(tx.join(), 5);
    EXPECT_TRUE(wait_balance(ch, 0));
    if (cap) {
      EXPECT_EQ(ch.receive(), 1);
    }
    EXPECT_FALSE(ch.try_receive().has_value()) << "the interrupted send's value was delivered";
  }
}

TEST_P(ChannelKill, RaiseExceptionIntoParkedTimedOperations) {
  channel<int> ch;
  auto rx = sched().spawn([ch]() mutable {
    try {
      (void)ch.receive_for(std::chrono::hours(1));
    } catch (const poke& p) {
      return p.n;
    }
    return 0;
  });
  ASSERT_TRUE(wait_parked(ch, std::vector<tasklet<int>>{rx}, -1));
  rx.raise_exception(std::make_exception_ptr(poke{6}));
  EXPECT_EQ(rx.join(), 6);
  auto tx = sched().spawn([ch]() mutable {
    int v = 9;
    try {
      (void)ch.send_for(v, std::chrono::hours(1));
    } catch (const poke& p) {
      return v == 9 ? p.n : -1;  // the interrupted send_for keeps its value
    }
    return 0;
  });
  ASSERT_TRUE(wait_parked(ch, std::vector<tasklet<int>>{tx}, 1));
  tx.raise_exception(std::make_exception_ptr(poke{7}));
  EXPECT_EQ(tx.join(), 7);
  EXPECT_FALSE(ch.try_receive().has_value());
}

// A kill racing the partner that would complete a parked send: either the receiver got the value
// and send() returned, or send() was interrupted and nobody got it — never both, never neither.
TEST_P(ChannelKill, KillRacingAReceiverExactlyOneWins) {
  const int rounds = static_cast<int>(scaled(150, 40));
  int delivered = 0;
  for (int r = 0; r < rounds; ++r) {
    channel<int> ch;
    std::atomic<bool> send_returned{false};
    auto tx = sched().spawn([ch, r, &send_returned]() mutable {
      ch.send(r);
      send_returned = true;   // no suspension point between the return and this store
      this_tasklet::yield();  // a kill that lost the race ends it here
    });
    ASSERT_TRUE(wait_parked(ch, std::vector<tasklet<void>>{tx}, 1));
    std::atomic<int> go{0};
    std::optional<int> got;
    std::thread receiver([&] {
      go.fetch_add(1);
      while (go.load() < 2) {
      }
      got = (r % 2) ? ch.try_receive() : ch.receive_for(5ms);
    });
    std::thread killer([&] {
      go.fetch_add(1);
      while (go.load() < 2) {
      }
      tx.kill();
    });
    receiver.join();
    killer.join();
    tx.join();
    EXPECT_FALSE(tx.alive());
    EXPECT_EQ(got.has_value(), send_returned.load())
        << "round " << r << ": received=" << got.has_value()
        << " but send returned=" << send_returned.load();
    if (got) {
      EXPECT_EQ(*got, r);
      ++delivered;
    }
    EXPECT_FALSE(ch.try_receive().has_value());
  }
  RecordProperty("delivered", delivered);
}

// The mirror: a kill racing the sender that would complete a parked receive.
TEST_P(ChannelKill, KillRacingASenderExactlyOneWins) {
  const int rounds = static_cast<int>(scaled(150, 40));
  for (int r = 0; r < rounds; ++r) {
    channel<int> ch;
    std::atomic<int> got{-1};
    auto rx = sched().spawn([ch, &got]() mutable {
      const int v = ch.receive();
      got = v;
      this_tasklet::yield();
    });
    ASSERT_TRUE(wait_parked(ch, std::vector<tasklet<void>>{rx}, -1));
    std::atomic<int> go{0};
    bool sent = false;
    std::thread sender([&] {
      go.fetch_add(1);
      while (go.load() < 2) {
      }
      int v = r;
      sent = (r % 2) ? ch.try_send(v) : ch.send_for(v, 5ms);
    });
    std::thread killer([&] {
      go.fetch_add(1);
      while (go.load() < 2) {
      }
      rx.kill();
    });
    sender.join();
    killer.join();
    rx.join();
    EXPECT_EQ(sent, got.load() == r) << "round " << r << ": sent=" << sent << " got=" << got.load();
    EXPECT_TRUE(got.load() == -1 || got.load() == r);
    EXPECT_FALSE(ch.try_receive().has_value());
  }
}

// handle_slot holds a channel handle in storage of its own: drop() destroys the handle (its
// reference goes) while its memory stays — a parked operation read the handle before it parked,
// and freeing that memory would be a (test-made) race with that read.
template <class T>
class handle_slot {
 public:
  template <class... A>
  explicit handle_slot(A&&... a) {
    ::new (static_cast<void*>(buf_)) channel<T>(std::forward<A>(a)...);
  }
  ~handle_slot() { drop(); }
  handle_slot(const handle_slot&) = delete;
  handle_slot& operator=(const handle_slot&) = delete;
  channel<T>* get() { return std::launder(reinterpret_cast<channel<T>*>(buf_)); }
  channel<T>* operator->() { return get(); }
  void drop() {
    if (!dropped_) get()->~channel();
    dropped_ = true;
  }

 private:
  alignas(channel<T>) unsigned char buf_[sizeof(channel<T>)];
  bool dropped_ = false;
};

// Channels whose handles are all gone live while parked operations use them; killing the parked
// tasklets then frees them. ASan reports any use after free; the weak_ptrs check for leaks.
TEST_P(ChannelKill, ChannelReferencedOnlyByParkedTaskletsIsKeptAlive) {
  auto held = std::make_shared<int>(1);
  std::weak_ptr<int> watch = held;
  handle_slot<int> rx_chan;
  handle_slot<std::shared_ptr<int>> tx_chan;
  handle_slot<std::shared_ptr<int>> buf_chan(std::size_t{1});
  buf_chan->send(held);  // full, and holding a value
  channel<int>* rxp = rx_chan.get();
  channel<std::shared_ptr<int>>* txp = tx_chan.get();
  channel<std::shared_ptr<int>>* bufp = buf_chan.get();
  std::atomic<int> unwound{0};
  std::vector<tasklet<void>> ts;
  ts.push_back(sched().spawn([rxp, &unwound] {
    raii_count guard(unwound);
    (void)rxp->receive();
  }));
  ts.push_back(sched().spawn([txp, &unwound, v = held]() mutable {
    raii_count guard(unwound);
    txp->send(std::move(v));
  }));
  ts.push_back(sched().spawn([bufp, &unwound, v = held]() mutable {
    raii_count guard(unwound);
    bufp->send(std::move(v));
  }));
  held.reset();
  ASSERT_TRUE(wait_until(
      [&] { return rx_chan->balance() == -1 && tx_chan->balance() == 1 && all_blocked(ts); }));
  rx_chan.drop();  // the last handles go: only the parked operations use the channels now
  tx_chan.drop();
  buf_chan.drop();
  EXPECT_FALSE(watch.expired()) << "values of parked senders and the buffer are alive";
  for (auto& t : ts) EXPECT_TRUE(t.alive());
  for (auto& t : ts) t.kill();
  for (auto& t : ts) EXPECT_FALSE(t.alive());
  EXPECT_EQ(unwound.load(), 3);
  EXPECT_TRUE(wait_until([&] { return watch.expired(); }))
      << "a channel with no handle and no parked operation left was not freed";
}

TEST_P(ChannelKill, ManyParkedOperationsOnADroppedChannelAllKilled) {
  const int k = static_cast<int>(scaled(50, 20));
  handle_slot<int> ch;
  channel<int>* p = ch.get();
  std::vector<tasklet<void>> ts;
  for (int i = 0; i < k; ++i) ts.push_back(sched().spawn([p] { (void)p->receive(); }));
  ASSERT_TRUE(wait_parked(*p, ts, -k));
  ch.drop();
  // Kill them from a tasklet and from plain threads at once.
  std::thread th([&] {
    for (int i = 0; i < k; i += 2) ts[static_cast<std::size_t>(i)].kill();
  });
  sched().block_on([&] {
    for (int i = 1; i < k; i += 2) ts[static_cast<std::size_t>(i)].kill();
  });
  th.join();
  for (auto& t : ts) EXPECT_FALSE(t.alive());
}

}  // namespace
