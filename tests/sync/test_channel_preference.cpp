// SPDX-License-Identifier: Apache-2.0
// test_channel_preference.cpp — channel preference (Stackless's channel.preference): who resumes
// first when an operation finds its partner already parked. workers = 1 only, where the order is
// deterministic.
//
// The rules (channel.hpp): with `receiver` (the default) a send() that finds a receiver waiting
// switches to it at once; a receive() that finds a sender waiting takes the value without
// switching. `sender` is the mirror image. With `none` the caller always continues.
//
// How it is observed: the caller and the parked partner each append to a log right after their
// operation returns. The caller continued ⇔ its entry comes first. A third tasklet, made runnable
// just before the caller's operation, records whether it ran before the first log entry: it must
// not have, whether the caller continued (no switch at all) or switched to its partner (at once,
// before anything else that was runnable).
#include <optional>
#include <string>
#include <vector>

#include "channel_fixture.hpp"

namespace {

using namespace stackless_test;
using stackless::preference;

class ChannelPreference : public runtime_test {
 protected:
  void SetUp() override {
    runtime_test::SetUp();
    if (chaos_mode()) GTEST_SKIP() << "asserts who runs next on one worker; chaos mode shuffles it";
  }
};
INSTANTIATE_TEST_SUITE_P(Workers, ChannelPreference, ::testing::Values(1u), worker_count_name);

const std::string kSender = "sender: send() returned";
const std::string kReceiver = "receiver: receive() returned";

struct outcome {
  std::vector<std::string> log;
  bool third_ran_before_first_entry = false;
  bool third_ran = false;
  int value = 0;
};

// The calling tasklet receives from a sender that is already parked.
outcome receive_from_parked_sender(stackless::scheduler& s, std::optional<preference> p) {
  return s.block_on([p] {
    channel<int> ch;
    if (p) ch.set_preference(*p);
    outcome o;
    bool third_ran = false;
    auto log = [&](const std::string& what) {
      if (o.log.empty()) o.third_ran_before_first_entry = third_ran;
      o.log.push_back(what);
    };
    auto sender = stackless::spawn([&] {
      ch.send(7);
      log(kSender);
    });
    EXPECT_TRUE(yield_until([&] { return ch.balance() == 1 && sender.blocked(); }));
    auto third = stackless::spawn([&] { third_ran = true; });
    o.value = ch.receive();
    log(kReceiver);
    sender.join();
    third.join();
    o.third_ran = third_ran;
    return o;
  });
}

// The calling tasklet sends to a receiver that is already parked.
outcome send_to_parked_receiver(stackless::scheduler& s, std::optional<preference> p) {
  return s.block_on([p] {
    channel<int> ch;
    if (p) ch.set_preference(*p);
    outcome o;
    bool third_ran = false;
    auto log = [&](const std::string& what) {
      if (o.log.empty()) o.third_ran_before_first_entry = third_ran;
      o.log.push_back(what);
    };
    auto receiver = stackless::spawn([&] {
      o.value = ch.receive();
      log(kReceiver);
    });
    EXPECT_TRUE(yield_until([&] { return ch.balance() == -1 && receiver.blocked(); }));
    auto third = stackless::spawn([&] { third_ran = true; });
    ch.send(8);
    log(kSender);
    receiver.join();
    third.join();
    o.third_ran = third_ran;
    return o;
  });
}

void expect_outcome(const outcome& o, const std::vector<std::string>& want, int value) {
  EXPECT_EQ(o.log, want);
  EXPECT_FALSE(o.third_ran_before_first_entry)
      << "an unrelated runnable tasklet ran before the first of the pair resumed";
  EXPECT_TRUE(o.third_ran);
  EXPECT_EQ(o.value, value);
}

TEST_P(ChannelPreference, DefaultIsReceiver) {
  channel<int> ch;
  EXPECT_EQ(ch.get_preference(), preference::receiver);
  ch.set_preference(preference::none);
  EXPECT_EQ(ch.get_preference(), preference::none);
  ch.set_preference(preference::sender);
  EXPECT_EQ(ch.get_preference(), preference::sender);
  ch.set_preference(preference::receiver);
  EXPECT_EQ(ch.get_preference(), preference::receiver);
}

// Default (receiver): receive() from a parked sender does not switch: the receiver logs first.
TEST_P(ChannelPreference, ReceiverPreferenceReceiveFromParkedSenderDoesNotSwitch) {
  expect_outcome(receive_from_parked_sender(sched(), std::nullopt), {kReceiver, kSender}, 7);
  expect_outcome(receive_from_parked_sender(sched(), preference::receiver), {kReceiver, kSender},
                 7);
}

// Default (receiver): send() to a parked receiver switches to it at once: the receiver logs
// before the sender's send() returns.
TEST_P(ChannelPreference, ReceiverPreferenceSendToParkedReceiverSwitches) {
  expect_outcome(send_to_parked_receiver(sched(), std::nullopt), {kReceiver, kSender}, 8);
  expect_outcome(send_to_parked_receiver(sched(), preference::receiver), {kReceiver, kSender}, 8);
}

// sender: the mirror image. receive() from a parked sender switches to the sender at once.
TEST_P(ChannelPreference, SenderPreferenceReceiveFromParkedSenderSwitches) {
  expect_outcome(receive_from_parked_sender(sched(), preference::sender), {kSender, kReceiver}, 7);
}

// sender: send() to a parked receiver does not switch: the sender logs first.
TEST_P(ChannelPreference, SenderPreferenceSendToParkedReceiverDoesNotSwitch) {
  expect_outcome(send_to_parked_receiver(sched(), preference::sender), {kSender, kReceiver}, 8);
}

// none: the caller continues in both cases.
TEST_P(ChannelPreference, NoPreferenceCallerContinuesOnReceive) {
  expect_outcome(receive_from_parked_sender(sched(), preference::none), {kReceiver, kSender}, 7);
}

TEST_P(ChannelPreference, NoPreferenceCallerContinuesOnSend) {
  expect_outcome(send_to_parked_receiver(sched(), preference::none), {kSender, kReceiver}, 8);
}

// Repeated hand-offs keep the rule: a sender that always finds the receiver parked (default
// preference) lets it run at once every time, so the two logs interleave strictly.
TEST_P(ChannelPreference, ReceiverPreferenceInterleavesStrictly) {
  const auto log = sched().block_on([] {
    channel<int> ch;
    std::vector<std::string> log;
    auto receiver = stackless::spawn([&] {
      for (int i = 0; i < 5; ++i) log.push_back("r" + std::to_string(ch.receive()));
    });
    for (int i = 0; i < 5; ++i) {
      EXPECT_TRUE(yield_until([&] { return ch.balance() == -1 && receiver.blocked(); }));
      ch.send(i);
      log.push_back("s" + std::to_string(i));
    }
    receiver.join();
    return log;
  });
  EXPECT_EQ(log,
            (std::vector<std::string>{"r0", "s0", "r1", "s1", "r2", "s2", "r3", "s3", "r4", "s4"}));
}

}  // namespace
