/* SPDX-License-Identifier: Apache-2.0 */
/* stackless.h — the C API of stackless: schedulers, tasklets and channels for C programs and for
 * other languages' foreign-function interfaces (Python ctypes, …). Library: libstackless_c.so
 * (CMake: find_package(stackless) and target stackless::c; docs/embedding_c.md).
 *
 * C11, no C++ types; the same rules as the C++ API (docs/API.md), narrowed to what C can hold:
 *
 * Status codes. Every function that can fail returns a stackless_status; STACKLESS_OK is 0. No
 * C++ exception ever leaves the library: each entry point maps whatever happened to a code. On
 * any code but STACKLESS_OK the function also sets the calling thread's last-error message
 * (stackless_last_error()); a successful call leaves it alone, as errno.
 *
 * Handles. stackless_scheduler, stackless_tasklet, stackless_channel and stackless_bytes_channel
 * are opaque. Every handle a function takes is checked against the library's table of live
 * handles before it is used: NULL, a pointer that never was a handle (garbage, a pointer to
 * something else), a handle of another kind, and a handle after its destroy/release all return
 * STACKLESS_INVALID_HANDLE — without reading the memory it points to. What is NOT detected: a
 * handle used after its destroy/release once the library has reused the same address for a new
 * handle of the same kind (malloc may hand it out again): the stale handle then names the new
 * object. Handles may be used from any thread; a handle destroyed while another thread is inside
 * a call with it stays valid for that call (it is freed when the call returns).
 *
 * Timeouts are int64_t microseconds: 0 does not wait (the call succeeds only if it can at once,
 * else STACKLESS_TIMEOUT), a positive value waits at most that long, STACKLESS_FOREVER waits
 * without limit. A negative timeout is STACKLESS_INVALID_ARGUMENT.
 *
 * Blocking. Every call that waits (join, kill, yield, sleep, a channel send or receive, drain)
 * parks the calling tasklet — its worker thread runs other tasklets meanwhile — or, called from a
 * plain thread (one that is not running a tasklet), blocks that thread. Channels and joins work
 * between tasklets, between plain threads, and across both.
 *
 * Killing a tasklet that runs C code. stackless_kill() makes the victim's next (or current)
 * blocking call in this API return STACKLESS_KILLED; the C function must then return (it may
 * clean up first; every later blocking call returns STACKLESS_KILLED at once, without waiting).
 * When the function returns, the tasklet ends as killed: stackless_join() reports
 * STACKLESS_KILLED, and stackless_kill() returns. Nothing is unwound through C frames: the C++
 * runtime's tasklet_exit stops at the API boundary. A killed function that never makes a
 * blocking call, or that ignores STACKLESS_KILLED and loops, is never stopped (and a waiting
 * stackless_kill() never returns). A tasklet killed before it started never runs its function.
 * The function must not longjmp() out of itself, and must not let a C++ exception escape (one
 * that does is caught, and join reports STACKLESS_INTERNAL with its message).
 *
 * The last error is thread-local: read it right after the failing call, before any other
 * stackless call (a tasklet may resume on another worker thread after its next blocking call).
 */
#ifndef STACKLESS_H
#define STACKLESS_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define STACKLESS_C_API __attribute__((visibility("default")))
#else
#define STACKLESS_C_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** STACKLESS_C_API_VERSION is the version of this header; stackless_api_version() is the
 * library's. Additions that keep old callers working do not change it. */
#define STACKLESS_C_API_VERSION 1

/** STACKLESS_FOREVER: a timeout that never expires. */
#define STACKLESS_FOREVER INT64_MAX
/** STACKLESS_UNBOUNDED: a channel capacity for a channel whose send never waits. */
#define STACKLESS_UNBOUNDED SIZE_MAX

/** stackless_status: what a call did. The values are stable (they are part of the ABI). */
typedef enum stackless_status {
  STACKLESS_OK = 0,
  /** An argument is out of range: a negative timeout, a NULL out-pointer or function, a NULL
   * buffer with a non-zero size, a capacity beyond 2^40, an options struct of unknown size … */
  STACKLESS_INVALID_ARGUMENT = 1,
  /** A handle is NULL, not a live handle of the expected kind, or already destroyed. */
  STACKLESS_INVALID_HANDLE = 2,
  /** The timeout passed before the call could complete; nothing happened. */
  STACKLESS_TIMEOUT = 3,
  /** The channel is closed: a send after close, a receive once closed and drained, or a wait
   * that close interrupted. */
  STACKLESS_CLOSED = 4,
  /** The calling tasklet was killed: return from the tasklet's function. From stackless_join():
   * the joined tasklet ended by a kill (or the caller was killed while it waited). */
  STACKLESS_KILLED = 5,
  /** The scheduler was shut down: it takes no new tasklets. */
  STACKLESS_SHUTDOWN = 6,
  /** Out of memory, or the kernel refused a stack or a thread. */
  STACKLESS_NO_MEMORY = 7,
  /** The call cannot work from here: a tasklet-only call (yield) from a plain thread, joining
   * yourself, run_for() on a scheduler with more than one worker or one whose worker thread has
   * started, destroying a scheduler from one of its own tasklets … */
  STACKLESS_USAGE = 8,
  /** A join or drain can never finish: every tasklet of the scheduler is parked and nothing can
   * wake one (the message lists them). */
  STACKLESS_DEADLOCK = 9,
  /** A bytes-channel message was larger than the receive buffer: its first bytes were copied and
   * the rest is lost; *out_len holds its full length. */
  STACKLESS_TRUNCATED = 10,
  /** Anything else (a bug, or an exception a callback let escape); see the message. */
  STACKLESS_INTERNAL = 11
} stackless_status;

typedef struct stackless_scheduler stackless_scheduler;
typedef struct stackless_tasklet stackless_tasklet;
typedef struct stackless_channel stackless_channel;
typedef struct stackless_bytes_channel stackless_bytes_channel;

/** stackless_fn: a tasklet's function; `arg` is what stackless_spawn() was given. */
typedef void (*stackless_fn)(void* arg);

/** stackless_options: how a scheduler is made. Start from stackless_options_init() (or
 * STACKLESS_OPTIONS_INIT), then set fields. `size` is sizeof(stackless_options) as the caller
 * was compiled: the library reads only the fields that fit in it (fields are only ever added at
 * the end), so an older caller keeps working with a newer library; bytes the library does not
 * know must be zero (else STACKLESS_INVALID_ARGUMENT), so a newer caller's request is never
 * silently ignored. */
typedef struct stackless_options {
  size_t size;        /**< sizeof(stackless_options); set by stackless_options_init() */
  unsigned workers;   /**< worker threads; 0: one per hardware thread; 1: single-threaded,
                           deterministic, and the only count stackless_run_for() accepts */
  size_t stack_size;  /**< usable bytes of each tasklet's stack; 0: the default, 256 KiB; at
                           most 1 GiB. RSS grows only with use */
  int64_t quantum_us; /**< > 0: preemption with this time slice (at least 100 µs); 0: off. Only
                           soft preemption: a tasklet switches at its next stackless call */
  const char* name;   /**< worker thread name prefix (copied); NULL: "stackless" */
  int64_t deadlock_grace_ms; /**< how long everything must stay parked before a join gets
                                  STACKLESS_DEADLOCK; 0: never; < 0: the default, 200 ms */
} stackless_options;

/** STACKLESS_OPTIONS_INIT: stackless_options' defaults, as an initializer. */
#define STACKLESS_OPTIONS_INIT \
  { sizeof(stackless_options), 0u, 0u, 0, NULL, -1 }

/* ---- errors and versions -------------------------------------------------------------------- */

/** stackless_last_error() is a description of the calling thread's last failure ("" if none).
 * The string belongs to the library and stays valid until the thread's next failing call. */
STACKLESS_C_API const char* stackless_last_error(void);
/** stackless_status_name() is the code's name ("STACKLESS_TIMEOUT"); "unknown" for others. */
STACKLESS_C_API const char* stackless_status_name(stackless_status status);
/** stackless_api_version() is the library's STACKLESS_C_API_VERSION. */
STACKLESS_C_API int stackless_api_version(void);

/* ---- schedulers ----------------------------------------------------------------------------- */

/** stackless_options_init() sets every field of *o to its default and o->size to
 * sizeof(stackless_options). Does nothing when o is NULL. */
STACKLESS_C_API void stackless_options_init(stackless_options* o);

/** stackless_scheduler_create() makes a scheduler with the given options (NULL: the defaults)
 * and stores its handle in *out. With workers = 1 no thread starts until one is needed (see
 * stackless_run_for()). Errors: INVALID_ARGUMENT (out NULL, options->size too small or with
 * unknown non-zero fields, stack_size beyond 1 GiB, negative quantum), NO_MEMORY (threads or
 * memory refused). */
STACKLESS_C_API stackless_status stackless_scheduler_create(const stackless_options* options,
                                                            stackless_scheduler** out);

/** stackless_scheduler_shutdown() stops the scheduler taking tasklets (a later spawn returns
 * STACKLESS_SHUTDOWN), kills every live tasklet (each one's next blocking call returns
 * STACKLESS_KILLED; see the top of this file), waits for them all to end and joins the worker
 * threads. Idempotent. The handle stays valid until stackless_scheduler_destroy(); its tasklet
 * handles stay valid until released. Not from a tasklet of this scheduler (USAGE). */
STACKLESS_C_API stackless_status stackless_scheduler_shutdown(stackless_scheduler* s);

/** stackless_scheduler_destroy() shuts the scheduler down (stackless_scheduler_shutdown()) and
 * frees it; the handle is invalid from then on. Tasklet handles of the scheduler stay valid
 * (their tasklets have ended) until released. Not from a tasklet of this scheduler (USAGE: the
 * scheduler is then left as it was). */
STACKLESS_C_API stackless_status stackless_scheduler_destroy(stackless_scheduler* s);

/** stackless_scheduler_workers() stores the number of worker threads in *out. */
STACKLESS_C_API stackless_status stackless_scheduler_workers(stackless_scheduler* s, unsigned* out);

/** stackless_run_for() is pump mode for a host's frame loop (workers = 1 only, and only while no
 * worker thread has started: before any blocking call on it from a plain thread): the calling
 * thread runs the scheduler's tasklets until none is runnable or until `slice_us` has passed,
 * whichever is first, then returns. A tasklet still running when the slice ends is stopped at
 * its next stackless call and put back at the end of the run queue (the C++ API returns it
 * paused; here it simply continues in the next call): its id is stored in *overran_id (may be
 * NULL), 0 if there was none. Tasklets that wait (for a channel, a timer) stay parked; a call
 * runs those whose wait ended. A blocking join or kill from the host thread pumps too. Errors:
 * INVALID_ARGUMENT (slice_us <= 0), USAGE (more than one worker, a worker thread started, called
 * from a tasklet). */
STACKLESS_C_API stackless_status stackless_run_for(stackless_scheduler* s, int64_t slice_us,
                                                   uint64_t* overran_id);

/** stackless_drain() waits until every tasklet of the scheduler has ended (detached ones too).
 * From a plain thread only (USAGE from a tasklet). */
STACKLESS_C_API stackless_status stackless_drain(stackless_scheduler* s);

/* ---- tasklets ------------------------------------------------------------------------------- */

/** stackless_spawn() makes a tasklet that runs fn(arg) on scheduler s, from any thread (a
 * tasklet too). With out non-NULL it stores a handle to it there (release it with
 * stackless_tasklet_release()); with out NULL the tasklet is detached. `arg` is passed as it is:
 * what it points to must outlive the tasklet's use of it. Errors: INVALID_HANDLE (s),
 * INVALID_ARGUMENT (fn NULL), SHUTDOWN (s was shut down), NO_MEMORY. */
STACKLESS_C_API stackless_status stackless_spawn(stackless_scheduler* s, stackless_fn fn, void* arg,
                                                 stackless_tasklet** out);

/** stackless_join() waits at most `timeout_us` for the tasklet to end (0: only looks). OK: its
 * function returned. KILLED: it ended by a kill — or the calling tasklet was killed while it
 * waited (then return from your function). TIMEOUT: it is still running. DEADLOCK: it can
 * never end. USAGE: joining yourself. Any number of joins may wait for one tasklet. */
STACKLESS_C_API stackless_status stackless_join(stackless_tasklet* t, int64_t timeout_us);

/** stackless_kill() kills the tasklet (see the top of this file): its current or next blocking
 * call returns STACKLESS_KILLED, and it ends when its function returns; one that has not
 * started never runs. With pending = 0 the call waits until the tasklet has ended; with
 * pending != 0 it returns at once. Killing an ended tasklet does nothing (OK). Killing yourself
 * returns STACKLESS_KILLED: return from your function. */
STACKLESS_C_API stackless_status stackless_kill(stackless_tasklet* t, int pending);

/** stackless_tasklet_alive() stores 1 in *out while the tasklet has not ended, 0 after. */
STACKLESS_C_API stackless_status stackless_tasklet_alive(stackless_tasklet* t, int* out);

/** stackless_tasklet_blocked() stores 1 in *out while the tasklet is parked (waiting in a
 * channel call, a join, a sleep …), 0 otherwise (Stackless's tasklet.blocked). A snapshot: it
 * may change as soon as the call returns. */
STACKLESS_C_API stackless_status stackless_tasklet_blocked(stackless_tasklet* t, int* out);

/** stackless_tasklet_id() stores the tasklet's id (unique in the process, never 0) in *out. */
STACKLESS_C_API stackless_status stackless_tasklet_id(stackless_tasklet* t, uint64_t* out);

/** stackless_tasklet_release() frees the handle; the tasklet itself runs on (detached). The
 * handle is invalid from then on. */
STACKLESS_C_API stackless_status stackless_tasklet_release(stackless_tasklet* t);

/** stackless_yield() moves the calling tasklet to the back of the run queue and runs the next
 * one (Stackless schedule()). USAGE from a plain thread; KILLED when the tasklet was killed. */
STACKLESS_C_API stackless_status stackless_yield(void);

/** stackless_sleep() parks the calling tasklet (blocks a plain thread) for `us` microseconds
 * (STACKLESS_FOREVER: until killed). KILLED: the tasklet was killed meanwhile. */
STACKLESS_C_API stackless_status stackless_sleep(int64_t us);

/** stackless_current_id() stores the calling tasklet's id in *out; USAGE from a plain thread. */
STACKLESS_C_API stackless_status stackless_current_id(uint64_t* out);

/* ---- channels of pointers ------------------------------------------------------------------- */

/** stackless_channel_create() makes a channel of void* values: capacity 0 is a rendezvous (a
 * send waits for a receiver, as in Stackless), N buffers N values, STACKLESS_UNBOUNDED never
 * makes a sender wait. The channel carries the pointers only: what they point to is the
 * program's business. INVALID_ARGUMENT: out NULL, or a capacity beyond 2^40 (not unbounded). */
STACKLESS_C_API stackless_status stackless_channel_create(size_t capacity, stackless_channel** out);

/** stackless_channel_send() sends `value`, waiting at most `timeout_us` for a receiver or for
 * room. TIMEOUT: nothing was sent. CLOSED: the channel was closed (before, or while waiting).
 * KILLED: the calling tasklet was killed (nothing was sent). */
STACKLESS_C_API stackless_status stackless_channel_send(stackless_channel* ch, void* value,
                                                        int64_t timeout_us);

/** stackless_channel_receive() takes the next value into *out, waiting at most `timeout_us`.
 * CLOSED: the channel is closed and nothing is left to receive. TIMEOUT, KILLED: nothing was
 * received (*out is unchanged). */
STACKLESS_C_API stackless_status stackless_channel_receive(stackless_channel* ch, void** out,
                                                           int64_t timeout_us);

/** stackless_channel_close() closes the channel: from then on nothing waits on it — values
 * already buffered, and those of senders already waiting, can still be received; waiting
 * receivers wake with CLOSED; a send returns CLOSED. Idempotent. */
STACKLESS_C_API stackless_status stackless_channel_close(stackless_channel* ch);

/** stackless_channel_destroy() closes the channel, drops the values still in it, and frees the
 * handle, which is invalid from then on. Calls waiting on it in other threads or tasklets end:
 * a waiting receive returns CLOSED; a waiting send returns OK, its value dropped with the rest
 * (what dropped pointers point to is not freed: destroy a channel nobody uses any more). */
STACKLESS_C_API stackless_status stackless_channel_destroy(stackless_channel* ch);

/* ---- channels of byte buffers --------------------------------------------------------------- */

/** stackless_bytes_channel_create() makes a channel of byte messages (each send copies its
 * bytes; a receive copies them out). capacity: as stackless_channel_create(). max_message is
 * the largest message a send accepts (SIZE_MAX: no limit); 0 is INVALID_ARGUMENT. A receiver
 * whose buffer holds max_message bytes never sees STACKLESS_TRUNCATED. */
STACKLESS_C_API stackless_status stackless_bytes_channel_create(size_t capacity, size_t max_message,
                                                                stackless_bytes_channel** out);

/** stackless_bytes_channel_send() sends a copy of data[0, len) (len 0 sends an empty message;
 * data may then be NULL). INVALID_ARGUMENT: data NULL with len > 0, or len > max_message.
 * TIMEOUT, CLOSED, KILLED: as stackless_channel_send(). */
STACKLESS_C_API stackless_status stackless_bytes_channel_send(stackless_bytes_channel* ch,
                                                              const void* data, size_t len,
                                                              int64_t timeout_us);

/** stackless_bytes_channel_receive() takes the next message into buf[0, buf_size) and stores
 * its length in *out_len. TRUNCATED: the message had *out_len > buf_size bytes; the first
 * buf_size were copied and the message is consumed. INVALID_ARGUMENT: out_len NULL, or buf NULL
 * with buf_size > 0. CLOSED, TIMEOUT, KILLED: as stackless_channel_receive(). */
STACKLESS_C_API stackless_status stackless_bytes_channel_receive(stackless_bytes_channel* ch,
                                                                 void* buf, size_t buf_size,
                                                                 size_t* out_len,
                                                                 int64_t timeout_us);

/** stackless_bytes_channel_close(): as stackless_channel_close(). */
STACKLESS_C_API stackless_status stackless_bytes_channel_close(stackless_bytes_channel* ch);

/** stackless_bytes_channel_destroy(): as stackless_channel_destroy(). */
STACKLESS_C_API stackless_status stackless_bytes_channel_destroy(stackless_bytes_channel* ch);

#ifdef __cplusplus
}
#endif

#endif /* STACKLESS_H */
