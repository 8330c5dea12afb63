// SPDX-License-Identifier: Apache-2.0
// stackless/runtime/internal/scheduling.hpp — the two scheduling calls a primitive needs besides
// the park door (park.hpp): giving the worker away for a moment, and making sure a plain thread
// that is about to block will be served.
#pragma once

#include <atomic>

namespace stackless::detail {

/// yield_now() puts the calling tasklet at the back of its worker's run queue and switches away
/// (it stays runnable; no interrupt is delivered here). Outside a tasklet it does nothing.
void yield_now();

/// chaos_point() is a point where chaos mode (options::chaos) may yield: the entry of a call
/// that may block anyway, before it takes any lock. It delivers no interrupt. Off (every
/// scheduler without chaos), it is one relaxed load.
extern std::atomic<unsigned> chaos_schedulers;  // schedulers with chaos on, process-wide
void chaos_point_slow() noexcept;
inline void chaos_point() noexcept {
  // relaxed: a hint; a scheduler whose chaos just began may miss a few points.
  if (__builtin_expect(chaos_schedulers.load(std::memory_order_relaxed) != 0, 0))
    chaos_point_slow();
}

/// channel_event() is where a channel tells its scheduler's channel callback
/// (scheduler::set_channel_callback) about a blocking send or receive of the calling tasklet,
/// before the call begins: `will_block` is the channel's guess that no partner waits. Off (no
/// scheduler of the process has a channel callback), it is one relaxed load.
extern std::atomic<unsigned> channel_callback_schedulers;  // process-wide count
void channel_event_slow(const void* channel, bool sending, bool (*will_block)(const void*));
inline void channel_event(const void* channel, bool sending, bool (*will_block)(const void*)) {
  // relaxed: a hint; a callback being set right now may miss a few calls.
  if (__builtin_expect(channel_callback_schedulers.load(std::memory_order_relaxed) != 0, 0))
    channel_event_slow(channel, sending, will_block);
}

/// plain_thread_will_block() is called by a plain thread (not a tasklet) that is about to block
/// on a futex: it starts the worker thread of every scheduler that nothing drives yet, since the
/// waker the thread waits for may be a tasklet of any of them.
void plain_thread_will_block();

/// plain_thread_check_fork() throws usage_error ("stackless: scheduler inherited across fork()")
/// while a scheduler inherited across fork() is alive: a plain thread of the child that blocks
/// may be waiting for one of its tasklets, which never run again. Called before a plain thread
/// publishes itself anywhere.
void plain_thread_check_fork();

}  // namespace stackless::detail
