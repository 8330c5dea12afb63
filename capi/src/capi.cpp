// SPDX-License-Identifier: Apache-2.0
// capi/src/capi.cpp — the C API (<stackless.h>) over the public C++ API: handles, status codes,
// the thread-local last error, and the tasklet wrapper that turns a kill into a status code.
//
// Invariants:
//  - No exception leaves an extern "C" function: each runs its body inside guard(), which maps
//    every exception (the runtime's, the standard library's, and api_error, this file's own for
//    bad arguments and handles) to a stackless_status and the thread's last-error message.
//  - A handle is a heap object derived from `object`, listed in the registry while it is valid.
//    A call dereferences a handle only after finding it there, taking a reference under the
//    registry shard's lock (use()); destroy/release unlists it first, then drops the registry's
//    reference. The object is deleted when the last reference goes, so a handle destroyed while
//    another thread is inside a call with it stays alive until that call returns. Pointers are
//    only compared, never read, until found: garbage and freed handles are refused without
//    touching their memory (ASan-clean).
//  - A C function running as a tasklet never has a C++ exception thrown through it: it reaches
//    the runtime only through this file's functions, which all catch. A kill is delivered as
//    tasklet_exit at the tasklet's next blocking call here and returned as STACKLESS_KILLED; the
//    kill stays pending (the runtime raises it again at every later suspension point), so when
//    the function returns, c_call's checkpoint() raises it once more, outside the C frames, and
//    the tasklet ends as killed (not as a swallowed tasklet_exit).
//  - The scheduler object is deleted on the thread that destroys it, after every other
//    reference is gone: never inside one of its own tasklets.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_set>
#include <utility>

#include "stackless.h"
#include "stackless/runtime.hpp"
#include "stackless/sync/channel.hpp"

namespace capi {
namespace {

// ---- the last error --------------------------------------------------------------------------

thread_local char tl_error[1024];

// fail() records "fn: what" as the thread's last error and returns st. Never throws or
// allocates (it runs for NO_MEMORY too).
stackless_status fail(stackless_status st, const char* fn, const char* what) noexcept {
  std::snprintf(tl_error, sizeof tl_error, "%s: %s", fn, what ? what : "");
  return st;
}

// refuse() is how an entry point's body returns a failure that is not an exception (a timeout):
// guard() then records `what` under the entry point's name.
thread_local const char* tl_refused = "";
stackless_status refuse(stackless_status st, const char* what) noexcept {
  tl_refused = what;
  return st;
}

// api_error: a bad argument or handle found by this file; guard() turns it into its status.
struct api_error {
  stackless_status status;
  const char* what;
};
[[noreturn]] void bad_argument(const char* what) {
  throw api_error{STACKLESS_INVALID_ARGUMENT, what};
}

// ---- handles ---------------------------------------------------------------------------------

enum class kind : std::uint32_t {
  scheduler = 0x53434844,  // "SCHD"
  tasklet = 0x54534b4c,    // "TSKL"
  channel = 0x4348414e,    // "CHAN"
  bytes = 0x42595445,      // "BYTE"
};

}  // namespace

// object: what every handle is. refs counts the registry's listing (1 while listed) and the
// calls in flight with it.
struct object {
  explicit object(kind k) noexcept : magic(k) {}
  object(const object&) = delete;
  object& operator=(const object&) = delete;
  virtual ~object() = default;

  const kind magic;
  std::atomic<std::uint32_t> refs{1};
};

namespace {

void drop(object* o) noexcept {
  // acq_rel: the last dropper sees every other holder's use of the object before deleting it.
  if (o->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete o;
}

// registry: the live handles, in shards by address so that calls on different handles do not
// share a lock. Never destroyed (worker threads may still be in a call at exit).
class registry {
 public:
  void add(object* o) {
    shard& s = shard_of(o);
    std::lock_guard g(s.mu);
    s.live.insert(o);
  }
  // find() takes a reference to h if it is a listed object of kind k; else throws api_error
  // (INVALID_HANDLE) saying why. h is not dereferenced unless listed.
  object* find(const void* h, kind k) {
    if (!h) throw api_error{STACKLESS_INVALID_HANDLE, null_message(k)};
    auto* o = static_cast<object*>(const_cast<void*>(h));
    shard& s = shard_of(o);
    std::lock_guard g(s.mu);
    if (!s.live.count(o)) throw api_error{STACKLESS_INVALID_HANDLE, stale_message(k)};
    if (o->magic != k)
      throw api_error{STACKLESS_INVALID_HANDLE,
                      "a handle of another kind (a scheduler, tasklet or channel)"};
    o->refs.fetch_add(1, std::memory_order_relaxed);  // under the lock: not yet unlisted
    return o;
  }
  // remove() unlists o; false if it was not listed (another thread destroyed it first).
  bool remove(object* o) noexcept {
    shard& s = shard_of(o);
    std::lock_guard g(s.mu);
    return s.live.erase(o) == 1;
  }

 private:
  struct alignas(64) shard {
    std::mutex mu;
    std::unordered_set<const object*> live;
  };
  static constexpr unsigned shard_bits = 6;
  shard& shard_of(const object* o) noexcept {
    auto a = reinterpret_cast<std::uintptr_t>(o) >> 4;  // allocations are 16-byte aligned
    return shards_[static_cast<std::uint64_t>(a) * 0x9e3779b97f4a7c15ull >> (64 - shard_bits)];
  }
  static const char* null_message(kind k) noexcept {
    switch (k) {
      case kind::scheduler:
        return "NULL scheduler handle";
      case kind::tasklet:
        return "NULL tasklet handle";
      case kind::channel:
        return "NULL channel handle";
      case kind::bytes:
        return "NULL bytes channel handle";
    }
    return "NULL handle";
  }
  static const char* stale_message(kind k) noexcept {
    switch (k) {
      case kind::scheduler:
        return "not a live scheduler handle (destroyed, or never created)";
      case kind::tasklet:
        return "not a live tasklet handle (released, or never created)";
      case kind::channel:
        return "not a live channel handle (destroyed, or never created)";
      case kind::bytes:
        return "not a live bytes channel handle (destroyed, or never created)";
    }
    return "not a live handle";
  }

  shard shards_[1u << shard_bits];
};

registry& reg() {
  static registry* r = new registry;  // never destroyed: see registry
  return *r;
}

// ref<T>: a counted use of a handle for the length of a call.
template <class T>
class ref {
 public:
  explicit ref(T* p) noexcept : p_(p) {}
  ref(const ref&) = delete;
  ref& operator=(const ref&) = delete;
  ~ref() {
    if (p_) drop(p_);
  }
  T* operator->() const noexcept { return p_; }
  T* get() const noexcept { return p_; }

 private:
  T* p_;
};

}  // namespace
}  // namespace capi

// The handle types of <stackless.h>.
struct stackless_scheduler final : capi::object {
  stackless_scheduler() noexcept : object(capi::kind::scheduler) {}
  std::optional<stackless::scheduler> sched;
  // shutdown() has returned (shut), or is under way (shutting > 0): a spawn refused meanwhile
  // reports SHUTDOWN rather than USAGE.
  std::atomic<bool> shut{false};
  std::atomic<int> shutting{0};
  bool shutting_down() const noexcept { return shut.load() || shutting.load() > 0; }
};
struct stackless_tasklet final : capi::object {
  stackless_tasklet() noexcept : object(capi::kind::tasklet) {}
  stackless::tasklet<int> t;  // int: a killed tasklet<int> joins with tasklet_killed
};
struct stackless_channel final : capi::object {
  explicit stackless_channel(stackless::channel<void*> c) noexcept
      : object(capi::kind::channel), ch(std::move(c)) {}
  stackless::channel<void*> ch;
};
struct stackless_bytes_channel final : capi::object {
  stackless_bytes_channel(stackless::channel<std::string> c, std::size_t max) noexcept
      : object(capi::kind::bytes), ch(std::move(c)), max_message(max) {}
  stackless::channel<std::string> ch;
  const std::size_t max_message;
};

namespace capi {
namespace {

template <class T>
constexpr kind kind_of();
template <>
constexpr kind kind_of<stackless_scheduler>() {
  return kind::scheduler;
}
template <>
constexpr kind kind_of<stackless_tasklet>() {
  return kind::tasklet;
}
template <>
constexpr kind kind_of<stackless_channel>() {
  return kind::channel;
}
template <>
constexpr kind kind_of<stackless_bytes_channel>() {
  return kind::bytes;
}

// use() validates h and holds it for the call.
template <class T>
ref<T> use(T* h) {
  return ref<T>(static_cast<T*>(reg().find(h, kind_of<T>())));
}

// publish() lists a new object and hands it out; on failure it is deleted.
template <class T>
T* publish(T* o) {
  try {
    reg().add(o);
  } catch (...) {
    delete o;
    throw;
  }
  return o;
}

// unpublish() unlists h (validated by the caller's ref) and returns the registry's reference to
// the caller, who drops it when done; throws INVALID_HANDLE if another thread unlisted it first.
template <class T>
void unpublish(const ref<T>& h) {
  if (!reg().remove(h.get()))
    throw api_error{STACKLESS_INVALID_HANDLE, "the handle was destroyed by another thread"};
}

void need_timeout(std::int64_t us) {
  if (us < 0) bad_argument("negative timeout (0: do not wait; STACKLESS_FOREVER: no limit)");
}

template <class P>
void need_out(P* p, const char* what) {
  if (!p) bad_argument(what);
}

std::chrono::microseconds micros(std::int64_t us) { return std::chrono::microseconds(us); }

// guard() runs an entry point's body and maps every exception to a status code.
template <class F>
stackless_status guard(const char* fn, F&& body) noexcept {
  try {
    stackless_status st = body();
    return st == STACKLESS_OK ? st : fail(st, fn, tl_refused);
  } catch (const api_error& e) {
    return fail(e.status, fn, e.what);
  } catch (const stackless::tasklet_exit&) {
    return fail(STACKLESS_KILLED, fn,
                "the calling tasklet was killed: return from the tasklet's function");
  } catch (const stackless::tasklet_killed&) {
    return fail(STACKLESS_KILLED, fn, "the tasklet was killed before it returned");
  } catch (const stackless::channel_closed& e) {
    return fail(STACKLESS_CLOSED, fn, e.what());
  } catch (const stackless::deadlock_error& e) {
    return fail(STACKLESS_DEADLOCK, fn, e.what());
  } catch (const stackless::usage_error& e) {
    return fail(STACKLESS_USAGE, fn, e.what());
  } catch (const stackless::timeout_error& e) {
    return fail(STACKLESS_TIMEOUT, fn, e.what());
  } catch (const std::bad_alloc&) {
    return fail(STACKLESS_NO_MEMORY, fn, "out of memory");
  } catch (const std::invalid_argument& e) {
    return fail(STACKLESS_INVALID_ARGUMENT, fn, e.what());
  } catch (const std::system_error& e) {
    auto c = e.code();
    bool mem = c == std::errc::not_enough_memory || c == std::errc::resource_unavailable_try_again;
    return fail(mem ? STACKLESS_NO_MEMORY : STACKLESS_INTERNAL, fn, e.what());
  } catch (const std::exception& e) {
    return fail(STACKLESS_INTERNAL, fn, e.what());
  } catch (...) {
    return fail(STACKLESS_INTERNAL, fn, "unknown exception");
  }
}

// c_call: the body of a tasklet spawned through the C API. After the C function returns, a kill
// it was told about (STACKLESS_KILLED) — or one that came while it ran — is raised here, in C++
// frames only, so that the tasklet ends as killed.
struct c_call {
  stackless_fn fn;
  void* arg;
  int operator()() const {
    fn(arg);
    stackless::this_tasklet::checkpoint();
    return 0;
  }
};

// shut_down() is scheduler::shutdown() with the flags that let spawn() tell SHUTDOWN from USAGE.
void shut_down(stackless_scheduler* s) {
  s->shutting.fetch_add(1);
  try {
    s->sched->shutdown();
  } catch (...) {
    s->shutting.fetch_sub(1);
    throw;
  }
  s->shut.store(true);
  s->shutting.fetch_sub(1);
}

// Drains a closed channel: buffered values and those of parked senders are dropped (the
// senders' calls return). receive() never parks on a closed channel.
template <class T>
void drain_closed(stackless::channel<T>& ch) {
  try {
    for (;;) (void)ch.receive();
  } catch (const stackless::channel_closed&) {
  }
}

// send_within() / receive_within(): a channel call with a C timeout (STACKLESS_FOREVER: none).
// False / nullopt: the timeout passed.
template <class T>
bool send_within(stackless::channel<T>& ch, T& v, std::int64_t timeout_us) {
  if (timeout_us != STACKLESS_FOREVER) return ch.send_for(v, micros(timeout_us));
  ch.send(std::move(v));
  return true;
}
template <class T>
std::optional<T> receive_within(stackless::channel<T>& ch, std::int64_t timeout_us) {
  if (timeout_us != STACKLESS_FOREVER) return ch.receive_for(micros(timeout_us));
  return ch.receive();
}

// destroy_channel(): a channel handle's end — unlisted, the registry's reference dropped (the
// object lives on while `h` and any call in flight hold it), closed and drained.
template <class Ref>
void destroy_channel(Ref& h) {
  unpublish(h);
  drop(h.get());
  h->ch.close();
  drain_closed(h->ch);
}

}  // namespace
}  // namespace capi

using capi::api_error;
using capi::bad_argument;
using capi::fail;
using capi::guard;
using capi::micros;
using capi::need_out;
using capi::need_timeout;
using capi::refuse;
using capi::use;

extern "C" {

// ---- errors and versions ---------------------------------------------------------------------

const char* stackless_last_error(void) { return capi::tl_error; }

const char* stackless_status_name(stackless_status status) {
  switch (status) {
    case STACKLESS_OK:
      return "STACKLESS_OK";
    case STACKLESS_INVALID_ARGUMENT:
      return "STACKLESS_INVALID_ARGUMENT";
    case STACKLESS_INVALID_HANDLE:
      return "STACKLESS_INVALID_HANDLE";
    case STACKLESS_TIMEOUT:
      return "STACKLESS_TIMEOUT";
    case STACKLESS_CLOSED:
      return "STACKLESS_CLOSED";
    case STACKLESS_KILLED:
      return "STACKLESS_KILLED";
    case STACKLESS_SHUTDOWN:
      return "STACKLESS_SHUTDOWN";
    case STACKLESS_NO_MEMORY:
      return "STACKLESS_NO_MEMORY";
    case STACKLESS_USAGE:
      return "STACKLESS_USAGE";
    case STACKLESS_DEADLOCK:
      return "STACKLESS_DEADLOCK";
    case STACKLESS_TRUNCATED:
      return "STACKLESS_TRUNCATED";
    case STACKLESS_INTERNAL:
      return "STACKLESS_INTERNAL";
  }
  return "unknown";
}

int stackless_api_version(void) { return STACKLESS_C_API_VERSION; }

// ---- schedulers ------------------------------------------------------------------------------

void stackless_options_init(stackless_options* o) {
  if (!o) return;
  *o = stackless_options STACKLESS_OPTIONS_INIT;
}

stackless_status stackless_scheduler_create(const stackless_options* options,
                                            stackless_scheduler** out) {
  return guard(__func__, [&] {
    need_out(out, "out is NULL");
    stackless_options o = STACKLESS_OPTIONS_INIT;
    if (options) {
      // Versioned by size: copy the fields the caller's struct holds; refuse fields we do not
      // know that are set.
      constexpr std::size_t min_size = offsetof(stackless_options, workers) + sizeof(unsigned);
      if (options->size < min_size)
        bad_argument("options->size is too small (use stackless_options_init())");
      if (options->size > (std::size_t{1} << 16))
        bad_argument("options->size is implausibly large (use stackless_options_init())");
      const auto* bytes = reinterpret_cast<const unsigned char*>(options);
      for (std::size_t i = sizeof(stackless_options); i < options->size; ++i)
        if (bytes[i] != 0)
          bad_argument("options set fields this library does not know (a newer stackless.h)");
      std::memcpy(&o, options, std::min(options->size, sizeof o));
    }
    stackless::options so;
    so.workers = o.workers;
    if (o.stack_size) so.stack_size = o.stack_size;
    if (o.quantum_us < 0) bad_argument("negative quantum_us");
    so.quantum = micros(o.quantum_us);
    if (o.name) so.name = o.name;
    if (o.deadlock_grace_ms >= 0)
      so.deadlock_grace = std::chrono::milliseconds(o.deadlock_grace_ms);
    auto* s = new stackless_scheduler;
    try {
      s->sched.emplace(std::move(so));
    } catch (...) {
      delete s;
      throw;
    }
    *out = capi::publish(s);
    return STACKLESS_OK;
  });
}

stackless_status stackless_scheduler_shutdown(stackless_scheduler* s) {
  return guard(__func__, [&] {
    auto h = use(s);
    capi::shut_down(h.get());
    return STACKLESS_OK;
  });
}

stackless_status stackless_scheduler_destroy(stackless_scheduler* s) {
  return guard(__func__, [&] {
    auto h = use(s);
    capi::shut_down(h.get());  // USAGE from one of its tasklets: nothing changed
    capi::unpublish(h);        // the registry's reference is ours now
    // Calls of other threads with this handle finish quickly after shutdown(): wait for them, so
    // that the scheduler is destroyed here (never by a tasklet of its own).
    while (h->refs.load(std::memory_order_acquire) > 2) std::this_thread::yield();
    capi::drop(h.get());  // the registry's reference; ~ref drops ours and deletes
    return STACKLESS_OK;
  });
}

stackless_status stackless_scheduler_workers(stackless_scheduler* s, unsigned* out) {
  return guard(__func__, [&] {
    auto h = use(s);
    need_out(out, "out is NULL");
    *out = h->sched->workers();
    return STACKLESS_OK;
  });
}

stackless_status stackless_run_for(stackless_scheduler* s, int64_t slice_us, uint64_t* overran_id) {
  return guard(__func__, [&] {
    auto h = use(s);
    if (slice_us <= 0) bad_argument("slice_us must be positive");
    if (overran_id) *overran_id = 0;
    constexpr std::int64_t max_us = INT64_MAX / 1000;
    std::chrono::nanoseconds slice(slice_us > max_us ? INT64_MAX : slice_us * 1000);
    stackless::tasklet<void> t = h->sched->run_for(slice);
    if (t) {
      // Stopped at the end of the slice: the C API lets it continue in the next call.
      if (overran_id) *overran_id = t.id();
      try {
        if (t.paused()) t.resume();
      } catch (const stackless::usage_error&) {  // it ended meanwhile (killed by a thread)
      }
    }
    return STACKLESS_OK;
  });
}

stackless_status stackless_drain(stackless_scheduler* s) {
  return guard(__func__, [&] {
    auto h = use(s);
    h->sched->drain();
    return STACKLESS_OK;
  });
}

// ---- tasklets --------------------------------------------------------------------------------

stackless_status stackless_spawn(stackless_scheduler* s, stackless_fn fn, void* arg,
                                 stackless_tasklet** out) {
  return guard(__func__, [&] {
    auto h = use(s);
    if (!fn) bad_argument("fn is NULL");
    if (h->shut.load()) throw api_error{STACKLESS_SHUTDOWN, "the scheduler was shut down"};
    try {
      if (!out) {
        h->sched->spawn(capi::c_call{fn, arg});  // detached
        return STACKLESS_OK;
      }
      // The handle first: once the tasklet runs, a failure to hand it out could not be undone.
      auto* t = capi::publish(new stackless_tasklet);
      try {
        t->t = h->sched->spawn(capi::c_call{fn, arg});
      } catch (...) {
        capi::reg().remove(t);
        capi::drop(t);
        throw;
      }
      *out = t;
      return STACKLESS_OK;
    } catch (const stackless::usage_error&) {
      if (h->shutting_down())  // by another thread, meanwhile
        throw api_error{STACKLESS_SHUTDOWN, "the scheduler was shut down"};
      throw;
    }
  });
}

stackless_status stackless_join(stackless_tasklet* t, int64_t timeout_us) {
  return guard(__func__, [&] {
    auto h = use(t);
    need_timeout(timeout_us);
    if (timeout_us != STACKLESS_FOREVER && !h->t.join_for(micros(timeout_us)))
      return refuse(STACKLESS_TIMEOUT, "the tasklet has not ended");
    h->t.join();  // tasklet_killed: KILLED
    return STACKLESS_OK;
  });
}

stackless_status stackless_kill(stackless_tasklet* t, int pending) {
  return guard(__func__, [&] {
    auto h = use(t);
    h->t.kill(pending != 0);  // yourself: tasklet_exit, KILLED
    return STACKLESS_OK;
  });
}

stackless_status stackless_tasklet_alive(stackless_tasklet* t, int* out) {
  return guard(__func__, [&] {
    auto h = use(t);
    need_out(out, "out is NULL");
    *out = h->t.alive() ? 1 : 0;
    return STACKLESS_OK;
  });
}

stackless_status stackless_tasklet_blocked(stackless_tasklet* t, int* out) {
  return guard(__func__, [&] {
    auto h = use(t);
    need_out(out, "out is NULL");
    *out = h->t.blocked() ? 1 : 0;
    return STACKLESS_OK;
  });
}

stackless_status stackless_tasklet_id(stackless_tasklet* t, uint64_t* out) {
  return guard(__func__, [&] {
    auto h = use(t);
    need_out(out, "out is NULL");
    *out = h->t.id();
    return STACKLESS_OK;
  });
}

stackless_status stackless_tasklet_release(stackless_tasklet* t) {
  return guard(__func__, [&] {
    auto h = use(t);
    capi::unpublish(h);
    capi::drop(h.get());  // the registry's reference
    return STACKLESS_OK;
  });
}

stackless_status stackless_yield(void) {
  return guard(__func__, [] {
    stackless::this_tasklet::yield();
    return STACKLESS_OK;
  });
}

stackless_status stackless_sleep(int64_t us) {
  return guard(__func__, [&] {
    need_timeout(us);
    stackless::this_tasklet::sleep_for(micros(us));
    return STACKLESS_OK;
  });
}

stackless_status stackless_current_id(uint64_t* out) {
  return guard(__func__, [&] {
    need_out(out, "out is NULL");
    *out = stackless::this_tasklet::id();
    return STACKLESS_OK;
  });
}

// ---- channels of pointers --------------------------------------------------------------------

stackless_status stackless_channel_create(size_t capacity, stackless_channel** out) {
  return guard(__func__, [&] {
    need_out(out, "out is NULL");
    auto ch = capacity == STACKLESS_UNBOUNDED ? stackless::channel<void*>::unbounded()
                                              : stackless::channel<void*>(capacity);
    *out = capi::publish(new stackless_channel(std::move(ch)));
    return STACKLESS_OK;
  });
}

stackless_status stackless_channel_send(stackless_channel* ch, void* value, int64_t timeout_us) {
  return guard(__func__, [&] {
    auto h = use(ch);
    need_timeout(timeout_us);
    if (!capi::send_within(h->ch, value, timeout_us))
      return refuse(STACKLESS_TIMEOUT, "no receiver or room before the timeout");
    return STACKLESS_OK;
  });
}

stackless_status stackless_channel_receive(stackless_channel* ch, void** out, int64_t timeout_us) {
  return guard(__func__, [&] {
    auto h = use(ch);
    need_out(out, "out is NULL");
    need_timeout(timeout_us);
    auto v = capi::receive_within(h->ch, timeout_us);
    if (!v) return refuse(STACKLESS_TIMEOUT, "no value before the timeout");
    *out = *v;
    return STACKLESS_OK;
  });
}

stackless_status stackless_channel_close(stackless_channel* ch) {
  return guard(__func__, [&] {
    use(ch)->ch.close();
    return STACKLESS_OK;
  });
}

stackless_status stackless_channel_destroy(stackless_channel* ch) {
  return guard(__func__, [&] {
    auto h = use(ch);
    capi::destroy_channel(h);
    return STACKLESS_OK;
  });
}

// ---- channels of byte buffers ----------------------------------------------------------------

stackless_status stackless_bytes_channel_create(size_t capacity, size_t max_message,
                                                stackless_bytes_channel** out) {
  return guard(__func__, [&] {
    need_out(out, "out is NULL");
    if (max_message == 0) bad_argument("max_message is 0 (SIZE_MAX: no limit)");
    auto ch = capacity == STACKLESS_UNBOUNDED ? stackless::channel<std::string>::unbounded()
                                              : stackless::channel<std::string>(capacity);
    *out = capi::publish(new stackless_bytes_channel(std::move(ch), max_message));
    return STACKLESS_OK;
  });
}

stackless_status stackless_bytes_channel_send(stackless_bytes_channel* ch, const void* data,
                                              size_t len, int64_t timeout_us) {
  return guard(__func__, [&] {
    auto h = use(ch);
    need_timeout(timeout_us);
    if (!data && len > 0) bad_argument("data is NULL and len is not 0");
    if (len > h->max_message) bad_argument("the message is longer than the channel's max_message");
    std::string msg(len ? static_cast<const char*>(data) : "", len);
    if (!capi::send_within(h->ch, msg, timeout_us))
      return refuse(STACKLESS_TIMEOUT, "no receiver or room before the timeout");
    return STACKLESS_OK;
  });
}

stackless_status stackless_bytes_channel_receive(stackless_bytes_channel* ch, void* buf,
                                                 size_t buf_size, size_t* out_len,
                                                 int64_t timeout_us) {
  return guard(__func__, [&] {
    auto h = use(ch);
    need_out(out_len, "out_len is NULL");
    if (!buf && buf_size > 0) bad_argument("buf is NULL and buf_size is not 0");
    need_timeout(timeout_us);
    auto v = capi::receive_within(h->ch, timeout_us);
    if (!v) return refuse(STACKLESS_TIMEOUT, "no message before the timeout");
    const std::string& msg = *v;
    *out_len = msg.size();
    std::size_t n = msg.size() < buf_size ? msg.size() : buf_size;
    if (n) std::memcpy(buf, msg.data(), n);
    if (msg.size() > buf_size)
      return refuse(STACKLESS_TRUNCATED,
                    "the message was longer than the buffer (*out_len has its length)");
    return STACKLESS_OK;
  });
}

stackless_status stackless_bytes_channel_close(stackless_bytes_channel* ch) {
  return guard(__func__, [&] {
    use(ch)->ch.close();
    return STACKLESS_OK;
  });
}

stackless_status stackless_bytes_channel_destroy(stackless_bytes_channel* ch) {
  return guard(__func__, [&] {
    auto h = use(ch);
    capi::destroy_channel(h);
    return STACKLESS_OK;
  });
}

}  // extern "C"
