// SPDX-License-Identifier: Apache-2.0
// test_channel_memory.cpp — a long-lived channel's memory stays bounded: the segments (32 cells
// each) that every value has passed are unlinked and freed while the channel lives, for every
// kind of channel. Before the fix, a rendezvous or unbounded channel unlinked none of them until
// it was destroyed (the head of expand_buffer, which only a buffered channel moves, stayed on the
// first segment and held back try_retire()): a ping-pong grew by ~22 bytes per value per
// channel, without bound.
//
// segments_live() counts every segment allocated and not yet freed, in all channels; ebr's
// pending() those retired and not yet freed. Their difference is the segments still linked.
#include <cstdint>
#include <string>

#include "chan_engine.hpp"
#include "channel_fixture.hpp"
#include "ebr.hpp"

namespace {

using namespace stackless_test;
namespace sd = stackless::detail;

std::int64_t linked_segments() {
  return sd::segments_live() - static_cast<std::int64_t>(sd::ebr::pending());
}

class ChannelMemory : public runtime_test {};
STACKLESS_INSTANTIATE_WORKERS(ChannelMemory);

// kind: 0 rendezvous, 1 buffered (capacity 1), 2 buffered (capacity 64), 3 unbounded.
channel<std::int64_t> make(int kind) {
  switch (kind) {
    case 0:
      return channel<std::int64_t>();
    case 1:
      return channel<std::int64_t>(1);
    case 2:
      return channel<std::int64_t>(64);
    default:
      return channel<std::int64_t>::unbounded();
  }
}

TEST_P(ChannelMemory, ALongLivedChannelKeepsAFewSegmentsLinked) {
  constexpr std::int64_t n = 20'000;  // 625 segments' worth
  auto& s = sched();
  for (int kind = 0; kind < 4; ++kind) {
    SCOPED_TRACE("channel kind " + std::to_string(kind));
    auto ch = make(kind);
    const std::int64_t before = linked_segments();
    auto consumer = s.spawn([ch]() mutable {
      std::int64_t sum = 0;
      for (std::int64_t i = 0; i < n; ++i) sum += ch.receive();
      return sum;
    });
    s.block_on([ch]() mutable {
      for (std::int64_t i = 1; i <= n; ++i) ch.send(i);
    });
    EXPECT_EQ(consumer.join(), n * (n + 1) / 2);
    // The channel is alive (ch holds it): only the segments around its heads stay linked.
    EXPECT_LE(linked_segments() - before, 4) << "segments linked after " << n << " values";
  }
}

}  // namespace
