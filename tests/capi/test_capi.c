/* SPDX-License-Identifier: Apache-2.0 */
/* tests/capi/test_capi.c — the C API (<stackless.h>) from C11: schedulers, spawn/join, channels
 * of pointers and of bytes (tasklet to tasklet, plain thread to tasklet and back), timeouts,
 * close, kill of a tasklet parked in a receive, run_for pumping, and bad input (NULL, garbage,
 * destroyed and wrong-kind handles, negative timeouts, invalid sizes). Each scenario runs at 1, 2
 * and 4 workers (run_for at 1, the only count it accepts).
 *
 * A plain C program with its own CHECK macros (no GoogleTest: the point is that a C11 compiler
 * with -Wall -Wextra takes the header, and that a C caller sees status codes, never a C++
 * exception). Invariants: every failure prints file:line, the expression and the library's last
 * error, and exits 1; every handle the test makes is destroyed or released before exit, so
 * LeakSanitizer sees nothing; the whole program runs in well under a second in the debug build.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stackless.h"

/* ---- the assertions ------------------------------------------------------------------------ */

static unsigned g_workers; /* the worker count of the scenario that runs */

#define CHECK(cond)                                                                         \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      fprintf(stderr, "%s:%d: CHECK failed (workers=%u): %s\n  last error: %s\n", __FILE__, \
              __LINE__, g_workers, #cond, stackless_last_error());                          \
      exit(1);                                                                              \
    }                                                                                       \
  } while (0)

/* CHECK_STATUS: the call returns `want`; for a failure, the last error names the function. */
#define CHECK_STATUS(call, want)                                                                   \
  do {                                                                                             \
    stackless_status got_ = (call);                                                                \
    if (got_ != (want)) {                                                                          \
      fprintf(stderr, "%s:%d: %s returned %s, expected %s (workers=%u)\n  last error: %s\n",       \
              __FILE__, __LINE__, #call, stackless_status_name(got_), stackless_status_name(want), \
              g_workers, stackless_last_error());                                                  \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

#define CHECK_OK(call) CHECK_STATUS(call, STACKLESS_OK)

/* CHECK_FAILS: the call returns `want` (not OK) and leaves a message naming `fn`. */
#define CHECK_FAILS(call, want, fn)            \
  do {                                         \
    CHECK_STATUS(call, want);                  \
    CHECK(strstr(stackless_last_error(), fn)); \
  } while (0)

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* wait_blocked() waits until t is parked (in the call the test wants it in). */
static void wait_blocked(stackless_tasklet* t) {
  int64_t t0 = now_us();
  for (;;) {
    int blocked = 0;
    CHECK_OK(stackless_tasklet_blocked(t, &blocked));
    if (blocked) return;
    CHECK(now_us() - t0 < 5000000);
    CHECK_OK(stackless_sleep(100));
  }
}

static stackless_scheduler* make_scheduler(unsigned workers) {
  stackless_options o;
  stackless_options_init(&o);
  o.workers = workers;
  o.stack_size = 64 * 1024;
  o.name = "capi";
  stackless_scheduler* s = NULL;
  CHECK_OK(stackless_scheduler_create(&o, &s));
  CHECK(s != NULL);
  return s;
}

/* ---- create and destroy -------------------------------------------------------------------- */

static void test_create_destroy(unsigned workers) {
  stackless_scheduler* s = make_scheduler(workers);
  unsigned n = 0;
  CHECK_OK(stackless_scheduler_workers(s, &n));
  CHECK(n == workers);
  CHECK_OK(stackless_scheduler_destroy(s));

  stackless_scheduler* d = NULL; /* the defaults: one worker per hardware thread */
  CHECK_OK(stackless_scheduler_create(NULL, &d));
  CHECK_OK(stackless_scheduler_workers(d, &n));
  CHECK(n >= 1);
  CHECK_OK(stackless_scheduler_shutdown(d)); /* then destroy: both idempotent steps */
  CHECK_OK(stackless_scheduler_shutdown(d));
  CHECK_OK(stackless_scheduler_destroy(d));
}

/* ---- spawn and join many, results through the void* --------------------------------------- */

/* ThreadSanitizer makes each new tasklet (a fiber) cost milliseconds: fewer there. */
#if defined(__SANITIZE_THREAD__)
enum { MANY = 100 };
#else
enum { MANY = 500 };
#endif

typedef struct {
  int in;
  long out;
  atomic_int* detached_count;
} square_job;

static void square(void* p) {
  square_job* j = p;
  stackless_yield(); /* a switch in the middle: the result must still arrive */
  j->out = (long)j->in * j->in;
}

static void count_detached(void* p) { atomic_fetch_add((atomic_int*)p, 1); }

static void test_spawn_join_many(unsigned workers) {
  stackless_scheduler* s = make_scheduler(workers);
  static square_job jobs[MANY];
  static stackless_tasklet* ts[MANY];
  atomic_int detached = 0;
  for (int i = 0; i < MANY; ++i) {
    jobs[i].in = i;
    jobs[i].out = -1;
    CHECK_OK(stackless_spawn(s, square, &jobs[i], &ts[i]));
    CHECK_OK(stackless_spawn(s, count_detached, &detached, NULL)); /* detached */
  }
  for (int i = 0; i < MANY; ++i) {
    CHECK_OK(stackless_join(ts[i], STACKLESS_FOREVER));
    CHECK_OK(stackless_join(ts[i], 0)); /* joins again at once */
    CHECK(jobs[i].out == (long)i * i);
    int alive = 1;
    CHECK_OK(stackless_tasklet_alive(ts[i], &alive));
    CHECK(alive == 0);
    uint64_t id = 0;
    CHECK_OK(stackless_tasklet_id(ts[i], &id));
    CHECK(id != 0);
    CHECK_OK(stackless_tasklet_release(ts[i]));
  }
  CHECK_OK(stackless_drain(s));
  CHECK(atomic_load(&detached) == MANY);
  CHECK_OK(stackless_scheduler_destroy(s));
}

/* ---- channels of pointers between tasklets -------------------------------------------------- */

enum { ITEMS = 200 };

typedef struct {
  stackless_channel* ch;
  int values[ITEMS];
  long sum;
  stackless_status last; /* the consumer's final status: CLOSED */
} pipe_ctx;

static void producer(void* p) {
  pipe_ctx* c = p;
  for (int i = 0; i < ITEMS; ++i) {
    c->values[i] = i + 1;
    CHECK_OK(stackless_channel_send(c->ch, &c->values[i], STACKLESS_FOREVER));
  }
  CHECK_OK(stackless_channel_close(c->ch));
}

static void consumer(void* p) {
  pipe_ctx* c = p;
  for (;;) {
    void* v = NULL;
    stackless_status st = stackless_channel_receive(c->ch, &v, STACKLESS_FOREVER);
    if (st != STACKLESS_OK) {
      c->last = st;
      return;
    }
    c->sum += *(int*)v;
  }
}

static void test_pointer_channels(unsigned workers) {
  size_t capacities[] = {0, 8, STACKLESS_UNBOUNDED};
  stackless_scheduler* s = make_scheduler(workers);
  for (size_t k = 0; k < sizeof capacities / sizeof capacities[0]; ++k) {
    static pipe_ctx c;
    memset(&c, 0, sizeof c);
    CHECK_OK(stackless_channel_create(capacities[k], &c.ch));
    stackless_tasklet *a = NULL, *b = NULL;
    CHECK_OK(stackless_spawn(s, consumer, &c, &b));
    CHECK_OK(stackless_spawn(s, producer, &c, &a));
    CHECK_OK(stackless_join(a, STACKLESS_FOREVER));
    CHECK_OK(stackless_join(b, STACKLESS_FOREVER));
    CHECK(c.sum == (long)ITEMS * (ITEMS + 1) / 2);
    CHECK(c.last == STACKLESS_CLOSED);
    CHECK_OK(stackless_tasklet_release(a));
    CHECK_OK(stackless_tasklet_release(b));
    CHECK_OK(stackless_channel_destroy(c.ch));
  }
  CHECK_OK(stackless_scheduler_destroy(s));
}

/* ---- plain threads and tasklets, pointers and bytes ----------------------------------------- */

typedef struct {
  stackless_channel* to_tasklet;
  stackless_bytes_channel* to_thread;
  long sum;
} cross_ctx;

/* A plain thread sends ITEMS numbers (as pointers) to a tasklet, then closes. */
static void* thread_sender(void* p) {
  cross_ctx* c = p;
  for (intptr_t i = 1; i <= ITEMS; ++i)
    CHECK_OK(stackless_channel_send(c->to_tasklet, (void*)i, STACKLESS_FOREVER));
  CHECK_OK(stackless_channel_close(c->to_tasklet));
  return NULL;
}

/* The tasklet sums them and answers each with a text message on the bytes channel. */
static void tasklet_echo(void* p) {
  cross_ctx* c = p;
  for (;;) {
    void* v = NULL;
    stackless_status st = stackless_channel_receive(c->to_tasklet, &v, STACKLESS_FOREVER);
    if (st == STACKLESS_CLOSED) break;
    CHECK_OK(st);
    c->sum += (long)(intptr_t)v;
    char msg[32];
    int n = snprintf(msg, sizeof msg, "got %ld", (long)(intptr_t)v);
    CHECK_OK(stackless_bytes_channel_send(c->to_thread, msg, (size_t)n, STACKLESS_FOREVER));
  }
  CHECK_OK(stackless_bytes_channel_send(c->to_thread, NULL, 0, STACKLESS_FOREVER)); /* the end */
  CHECK_OK(stackless_bytes_channel_close(c->to_thread));
}

static void test_threads_and_tasklets(unsigned workers) {
  stackless_scheduler* s = make_scheduler(workers);
  cross_ctx c = {NULL, NULL, 0};
  CHECK_OK(stackless_channel_create(0, &c.to_tasklet));
  CHECK_OK(stackless_bytes_channel_create(4, 64, &c.to_thread));
  stackless_tasklet* t = NULL;
  CHECK_OK(stackless_spawn(s, tasklet_echo, &c, &t));
  pthread_t th;
  CHECK(pthread_create(&th, NULL, thread_sender, &c) == 0);
  /* This (plain) thread receives the answers. */
  for (long i = 1; i <= ITEMS; ++i) {
    char buf[64], want[32];
    size_t len = 0;
    CHECK_OK(stackless_bytes_channel_receive(c.to_thread, buf, sizeof buf, &len, 5000000));
    int n = snprintf(want, sizeof want, "got %ld", i);
    CHECK(len == (size_t)n && memcmp(buf, want, len) == 0);
  }
  size_t len = 99;
  CHECK_OK(stackless_bytes_channel_receive(c.to_thread, NULL, 0, &len, STACKLESS_FOREVER));
  CHECK(len == 0);
  CHECK_FAILS(stackless_bytes_channel_receive(c.to_thread, NULL, 0, &len, STACKLESS_FOREVER),
              STACKLESS_CLOSED, "stackless_bytes_channel_receive");
  CHECK(pthread_join(th, NULL) == 0);
  CHECK_OK(stackless_join(t, STACKLESS_FOREVER));
  CHECK(c.sum == (long)ITEMS * (ITEMS + 1) / 2);
  CHECK_OK(stackless_tasklet_release(t));
  CHECK_OK(stackless_channel_destroy(c.to_tasklet));
  CHECK_OK(stackless_bytes_channel_destroy(c.to_thread));
  CHECK_OK(stackless_scheduler_destroy(s));
}

/* Bytes: truncation, the size limit, binary content. */
static void test_bytes_details(void) {
  stackless_bytes_channel* ch = NULL;
  CHECK_OK(stackless_bytes_channel_create(STACKLESS_UNBOUNDED, 16, &ch));
  unsigned char bin[16];
  for (int i = 0; i < 16; ++i) bin[i] = (unsigned char)(i * 17); /* zeros and high bytes */
  CHECK_OK(stackless_bytes_channel_send(ch, bin, sizeof bin, 0));
  CHECK_OK(stackless_bytes_channel_send(ch, bin, sizeof bin, 0));
  CHECK_FAILS(stackless_bytes_channel_send(ch, bin, 17, 0), STACKLESS_INVALID_ARGUMENT,
              "stackless_bytes_channel_send"); /* beyond max_message */
  unsigned char out[16];
  size_t len = 0;
  CHECK_OK(stackless_bytes_channel_receive(ch, out, sizeof out, &len, 0));
  CHECK(len == 16 && memcmp(out, bin, 16) == 0);
  memset(out, 0, sizeof out);
  CHECK_FAILS(stackless_bytes_channel_receive(ch, out, 4, &len, 0), STACKLESS_TRUNCATED,
              "stackless_bytes_channel_receive");
  CHECK(len == 16 && memcmp(out, bin, 4) == 0 && out[4] == 0);
  CHECK_FAILS(stackless_bytes_channel_receive(ch, out, 4, &len, 0), STACKLESS_TIMEOUT,
              "stackless_bytes_channel_receive"); /* the truncated one was consumed */
  CHECK_OK(stackless_bytes_channel_destroy(ch));
}

/* ---- timeouts ----------------------------------------------------------------------------------
 */

typedef struct {
  stackless_channel* ch;
  stackless_status recv, send;
  int64_t waited_us;
} timeout_ctx;

static void tasklet_timeouts(void* p) {
  timeout_ctx* c = p;
  void* v = NULL;
  int64_t t0 = now_us();
  c->recv = stackless_channel_receive(c->ch, &v, 3000);
  c->waited_us = now_us() - t0;
  c->send = stackless_channel_send(c->ch, NULL, 0); /* rendezvous, nobody receives */
}

static void sleeper(void* p) {
  (void)p;
  stackless_sleep(20000);
}

static void test_timeouts(unsigned workers) {
  stackless_scheduler* s = make_scheduler(workers);
  stackless_channel* ch = NULL;
  CHECK_OK(stackless_channel_create(0, &ch));
  /* From a plain thread. */
  void* v = NULL;
  int64_t t0 = now_us();
  CHECK_FAILS(stackless_channel_receive(ch, &v, 2000), STACKLESS_TIMEOUT,
              "stackless_channel_receive");
  CHECK(now_us() - t0 >= 2000);
  CHECK_FAILS(stackless_channel_send(ch, &v, 0), STACKLESS_TIMEOUT, "stackless_channel_send");
  /* From a tasklet. */
  timeout_ctx c = {ch, STACKLESS_OK, STACKLESS_OK, 0};
  stackless_tasklet* t = NULL;
  CHECK_OK(stackless_spawn(s, tasklet_timeouts, &c, &t));
  CHECK_OK(stackless_join(t, STACKLESS_FOREVER));
  CHECK(c.recv == STACKLESS_TIMEOUT && c.send == STACKLESS_TIMEOUT);
  CHECK(c.waited_us >= 3000);
  CHECK_OK(stackless_tasklet_release(t));
  /* A join that times out, then one that does not. */
  CHECK_OK(stackless_spawn(s, sleeper, NULL, &t));
  CHECK_FAILS(stackless_join(t, 0), STACKLESS_TIMEOUT, "stackless_join");
  CHECK_FAILS(stackless_join(t, 1000), STACKLESS_TIMEOUT, "stackless_join");
  CHECK_OK(stackless_join(t, 5000000));
  CHECK_OK(stackless_tasklet_release(t));
  CHECK_OK(stackless_channel_destroy(ch));
  CHECK_OK(stackless_scheduler_destroy(s));
}

/* ---- close -------------------------------------------------------------------------------------
 */

typedef struct {
  stackless_channel* ch;
  stackless_status st;
} close_ctx;

static void parked_until_close(void* p) {
  close_ctx* c = p;
  void* v = NULL;
  c->st = stackless_channel_receive(c->ch, &v, STACKLESS_FOREVER);
}

static void test_close(unsigned workers) {
  stackless_scheduler* s = make_scheduler(workers);
  stackless_channel* ch = NULL;
  CHECK_OK(stackless_channel_create(2, &ch));
  int x = 7;
  CHECK_OK(stackless_channel_send(ch, &x, 0));
  CHECK_OK(stackless_channel_close(ch));
  CHECK_OK(stackless_channel_close(ch)); /* idempotent */
  CHECK_FAILS(stackless_channel_send(ch, &x, STACKLESS_FOREVER), STACKLESS_CLOSED,
              "stackless_channel_send");
  void* v = NULL;
  CHECK_OK(stackless_channel_receive(ch, &v, STACKLESS_FOREVER)); /* buffered: still there */
  CHECK(v == &x);
  CHECK_FAILS(stackless_channel_receive(ch, &v, STACKLESS_FOREVER), STACKLESS_CLOSED,
              "stackless_channel_receive");
  CHECK_OK(stackless_channel_destroy(ch));

  /* A receiver parked at close time wakes with CLOSED. */
  close_ctx c = {NULL, STACKLESS_OK};
  CHECK_OK(stackless_channel_create(0, &c.ch));
  stackless_tasklet* t = NULL;
  CHECK_OK(stackless_spawn(s, parked_until_close, &c, &t));
  wait_blocked(t);
  CHECK_OK(stackless_channel_close(c.ch));
  CHECK_OK(stackless_join(t, STACKLESS_FOREVER));
  CHECK(c.st == STACKLESS_CLOSED);
  CHECK_OK(stackless_tasklet_release(t));

  /* Destroying a channel wakes its parked receiver with CLOSED too. */
  c.st = STACKLESS_OK;
  CHECK_OK(stackless_channel_create(0, &c.ch));
  CHECK_OK(stackless_spawn(s, parked_until_close, &c, &t));
  wait_blocked(t); /* in the receive: before it, the handle would already be invalid */
  CHECK_OK(stackless_channel_destroy(c.ch));
  CHECK_OK(stackless_join(t, STACKLESS_FOREVER));
  CHECK(c.st == STACKLESS_CLOSED);
  CHECK_OK(stackless_tasklet_release(t));
  CHECK_OK(stackless_scheduler_destroy(s));
}

/* ---- kill --------------------------------------------------------------------------------------
 */

typedef struct {
  stackless_channel* ch;    /* nobody ever sends on it */
  stackless_channel* ready; /* the victim says it is about to park */
  stackless_status recv;    /* what the parked receive returned: KILLED */
  stackless_status after;   /* a blocking call after that: KILLED at once */
  atomic_int returned;      /* the C function returned (it was not unwound) */
} kill_ctx;

static void parked_receiver(void* p) {
  kill_ctx* k = p;
  CHECK_OK(stackless_channel_send(k->ready, NULL, STACKLESS_FOREVER));
  void* v = NULL;
  k->recv = stackless_channel_receive(k->ch, &v, STACKLESS_FOREVER);
  k->after = stackless_sleep(STACKLESS_FOREVER);
  atomic_store(&k->returned, 1);
}

typedef struct {
  stackless_channel* handle_ch; /* brings the tasklet its own handle */
  stackless_status kill_self, yield_after;
} self_ctx;

static void kills_itself(void* p) {
  self_ctx* c = p;
  void* me = NULL;
  CHECK_OK(stackless_channel_receive(c->handle_ch, &me, STACKLESS_FOREVER));
  c->kill_self = stackless_kill((stackless_tasklet*)me, 0);
  c->yield_after = stackless_yield();
}

static void forever_sleeper(void* p) {
  stackless_status* st = p;
  *st = stackless_sleep(STACKLESS_FOREVER);
}

static void never_runs(void* p) { atomic_store((atomic_int*)p, 1); }

static void test_kill(unsigned workers) {
  stackless_scheduler* s = make_scheduler(workers);
  kill_ctx k;
  memset(&k, 0, sizeof k);
  atomic_init(&k.returned, 0);
  CHECK_OK(stackless_channel_create(0, &k.ch));
  CHECK_OK(stackless_channel_create(1, &k.ready));
  stackless_tasklet* t = NULL;
  CHECK_OK(stackless_spawn(s, parked_receiver, &k, &t));
  void* v = NULL;
  CHECK_OK(stackless_channel_receive(k.ready, &v, STACKLESS_FOREVER));
  wait_blocked(t); /* parked in the receive (the ready send did not wait: capacity 1) */
  CHECK_OK(stackless_kill(t, 0)); /* returns once the tasklet has ended */
  CHECK(atomic_load(&k.returned) == 1);
  CHECK(k.recv == STACKLESS_KILLED);
  CHECK(k.after == STACKLESS_KILLED);
  CHECK_FAILS(stackless_join(t, STACKLESS_FOREVER), STACKLESS_KILLED, "stackless_join");
  CHECK_OK(stackless_kill(t, 0)); /* an ended tasklet: nothing to do */
  CHECK_OK(stackless_tasklet_release(t));

  /* kill(pending) returns at once; the join waits for the end. */
  stackless_status st = STACKLESS_OK;
  CHECK_OK(stackless_spawn(s, forever_sleeper, &st, &t));
  wait_blocked(t);
  CHECK_OK(stackless_kill(t, 1));
  CHECK_STATUS(stackless_join(t, STACKLESS_FOREVER), STACKLESS_KILLED);
  CHECK(st == STACKLESS_KILLED);
  CHECK_OK(stackless_tasklet_release(t));

  /* A tasklet that kills itself gets KILLED, and every later blocking call too. */
  self_ctx c = {NULL, STACKLESS_OK, STACKLESS_OK};
  CHECK_OK(stackless_channel_create(1, &c.handle_ch));
  CHECK_OK(stackless_spawn(s, kills_itself, &c, &t));
  CHECK_OK(stackless_channel_send(c.handle_ch, t, STACKLESS_FOREVER));
  CHECK_STATUS(stackless_join(t, STACKLESS_FOREVER), STACKLESS_KILLED);
  CHECK(c.kill_self == STACKLESS_KILLED && c.yield_after == STACKLESS_KILLED);
  CHECK_OK(stackless_tasklet_release(t));

  /* Killed on a one-worker scheduler before it ever ran: its function never runs. */
  if (workers == 1) {
    stackless_scheduler* one = make_scheduler(1);
    atomic_int ran = 0;
    CHECK_OK(stackless_spawn(one, never_runs, &ran, &t)); /* waits for a worker */
    CHECK_OK(stackless_kill(t, 0));
    CHECK_STATUS(stackless_join(t, STACKLESS_FOREVER), STACKLESS_KILLED);
    CHECK(atomic_load(&ran) == 0);
    CHECK_OK(stackless_tasklet_release(t));
    CHECK_OK(stackless_scheduler_destroy(one));
  }

  /* Shutdown kills what is parked: a receive returns KILLED, and the function returns. */
  memset(&k, 0, sizeof k);
  atomic_init(&k.returned, 0);
  CHECK_OK(stackless_channel_create(0, &k.ch));
  CHECK_OK(stackless_channel_create(1, &k.ready));
  CHECK_OK(stackless_spawn(s, parked_receiver, &k, &t));
  CHECK_OK(stackless_channel_receive(k.ready, &v, STACKLESS_FOREVER));
  CHECK_OK(stackless_scheduler_shutdown(s));
  CHECK(atomic_load(&k.returned) == 1 && k.recv == STACKLESS_KILLED);
  CHECK_STATUS(stackless_join(t, 0), STACKLESS_KILLED); /* the handle outlives the scheduler */
  CHECK_OK(stackless_scheduler_destroy(s));
  CHECK_STATUS(stackless_join(t, 0), STACKLESS_KILLED);
  CHECK_OK(stackless_tasklet_release(t));
  CHECK_OK(stackless_channel_destroy(k.ch));
  CHECK_OK(stackless_channel_destroy(k.ready));
  CHECK_OK(stackless_channel_destroy(c.handle_ch));
}

/* ---- deadlock and usage from inside -----------------------------------------------------------
 */

typedef struct {
  stackless_scheduler* s;
  stackless_status st;
} usage_ctx;

static void destroys_own_scheduler(void* p) {
  usage_ctx* c = p;
  c->st = stackless_scheduler_destroy(c->s);
}

static void test_usage_and_deadlock(unsigned workers) {
  stackless_options o = STACKLESS_OPTIONS_INIT;
  o.workers = workers;
  o.deadlock_grace_ms = 20;
  stackless_scheduler* s = NULL;
  CHECK_OK(stackless_scheduler_create(&o, &s));
  usage_ctx c = {s, STACKLESS_OK};
  stackless_tasklet* t = NULL;
  CHECK_OK(stackless_spawn(s, destroys_own_scheduler, &c, &t));
  CHECK_OK(stackless_join(t, STACKLESS_FOREVER));
  CHECK(c.st == STACKLESS_USAGE); /* and the scheduler is still there */
  CHECK_OK(stackless_tasklet_release(t));

  /* A tasklet parked on a channel nobody else holds: the join is a deadlock. */
  close_ctx d = {NULL, STACKLESS_OK};
  CHECK_OK(stackless_channel_create(0, &d.ch));
  CHECK_OK(stackless_spawn(s, parked_until_close, &d, &t));
  CHECK_FAILS(stackless_join(t, STACKLESS_FOREVER), STACKLESS_DEADLOCK, "stackless_join");
  CHECK_OK(stackless_kill(t, 0));
  CHECK(d.st == STACKLESS_KILLED);
  CHECK_OK(stackless_tasklet_release(t));
  CHECK_OK(stackless_channel_destroy(d.ch));
  CHECK_OK(stackless_scheduler_destroy(s));
}

/* ---- run_for: pump mode --------------------------------------------------------------------- */

typedef struct {
  int steps;
  int done;
} stepper_ctx;

static void stepper(void* p) {
  stepper_ctx* c = p;
  for (int i = 0; i < 5; ++i) {
    ++c->steps;
    CHECK_OK(stackless_yield());
  }
  CHECK_OK(stackless_sleep(1000)); /* a timer: a later pump runs the rest */
  c->done = 1;
}

static void spinner(void* p) {
  int64_t until = now_us() + 30000;
  while (now_us() < until) CHECK_OK(stackless_yield());
  *(int*)p = 1;
}

static void test_run_for(void) {
  g_workers = 1;
  stackless_scheduler* s = make_scheduler(1);
  enum { N = 10 };
  stepper_ctx c[N];
  stackless_tasklet* ts[N];
  for (int i = 0; i < N; ++i) {
    c[i].steps = c[i].done = 0;
    CHECK_OK(stackless_spawn(s, stepper, &c[i], &ts[i]));
  }
  int spun = 0;
  stackless_tasklet* sp = NULL;
  CHECK_OK(stackless_spawn(s, spinner, &spun, &sp));
  uint64_t spinner_id = 0;
  CHECK_OK(stackless_tasklet_id(sp, &spinner_id));
  /* Nothing runs until the host pumps. */
  CHECK(c[0].steps == 0);
  int overruns = 0;
  int64_t t0 = now_us();
  for (;;) {
    uint64_t overran = 0;
    CHECK_OK(stackless_run_for(s, 2000, &overran));
    if (overran) { /* the spinner, or a stepper still yielding when the slice ended */
      int ours = overran == spinner_id;
      for (int i = 0; i < N; ++i) {
        uint64_t id = 0;
        CHECK_OK(stackless_tasklet_id(ts[i], &id));
        ours |= overran == id;
      }
      CHECK(ours);
      ++overruns;
    }
    int all = spun;
    for (int i = 0; i < N; ++i) all &= c[i].done;
    if (all) break;
    CHECK(now_us() - t0 < 5000000);
    struct timespec frame = {0, 500000}; /* the host's own work between pumps */
    nanosleep(&frame, NULL);
  }
  /* The spinner yields through many slices: some pump caught it (every one may have, the last
   * at the safe point after its function returned). */
  CHECK(overruns > 0);
  for (int i = 0; i < N; ++i) {
    CHECK(c[i].steps == 5);
    CHECK_OK(stackless_join(ts[i], STACKLESS_FOREVER));
    CHECK_OK(stackless_tasklet_release(ts[i]));
  }
  CHECK_OK(stackless_join(sp, STACKLESS_FOREVER));
  CHECK_OK(stackless_tasklet_release(sp));
  CHECK_FAILS(stackless_run_for(s, 0, NULL), STACKLESS_INVALID_ARGUMENT, "stackless_run_for");
  CHECK_OK(stackless_scheduler_destroy(s));

  s = make_scheduler(2);
  CHECK_FAILS(stackless_run_for(s, 1000, NULL), STACKLESS_USAGE, "stackless_run_for");
  CHECK_OK(stackless_scheduler_destroy(s));
}

/* ---- bad input ------------------------------------------------------------------------------ */

static void noop(void* p) { (void)p; }

static void test_bad_input(void) {
  g_workers = 0;
  /* NULL handles. */
  CHECK_FAILS(stackless_spawn(NULL, noop, NULL, NULL), STACKLESS_INVALID_HANDLE, "stackless_spawn");
  CHECK_FAILS(stackless_scheduler_destroy(NULL), STACKLESS_INVALID_HANDLE,
              "stackless_scheduler_destroy");
  CHECK_FAILS(stackless_join(NULL, 0), STACKLESS_INVALID_HANDLE, "stackless_join");
  CHECK_FAILS(stackless_kill(NULL, 0), STACKLESS_INVALID_HANDLE, "stackless_kill");
  CHECK_FAILS(stackless_tasklet_release(NULL), STACKLESS_INVALID_HANDLE,
              "stackless_tasklet_release");
  void* v = NULL;
  CHECK_FAILS(stackless_channel_send(NULL, v, 0), STACKLESS_INVALID_HANDLE,
              "stackless_channel_send");
  CHECK_FAILS(stackless_channel_receive(NULL, &v, 0), STACKLESS_INVALID_HANDLE,
              "stackless_channel_receive");
  CHECK_FAILS(stackless_channel_close(NULL), STACKLESS_INVALID_HANDLE, "stackless_channel_close");
  CHECK_FAILS(stackless_bytes_channel_destroy(NULL), STACKLESS_INVALID_HANDLE,
              "stackless_bytes_channel_destroy");
  CHECK_FAILS(stackless_run_for(NULL, 1000, NULL), STACKLESS_INVALID_HANDLE, "stackless_run_for");

  /* Garbage: memory that was never a handle (read by nobody), and a wild pointer. */
  unsigned char junk[64];
  for (size_t i = 0; i < sizeof junk; ++i) junk[i] = (unsigned char)(0xA5 ^ i);
  CHECK_FAILS(stackless_channel_send((stackless_channel*)junk, v, 0), STACKLESS_INVALID_HANDLE,
              "stackless_channel_send");
  CHECK_FAILS(stackless_join((stackless_tasklet*)(uintptr_t)0x10, 0), STACKLESS_INVALID_HANDLE,
              "stackless_join");
  CHECK_FAILS(stackless_scheduler_destroy((stackless_scheduler*)(uintptr_t)0xdeadbeef0ull),
              STACKLESS_INVALID_HANDLE, "stackless_scheduler_destroy");

  /* Destroyed and wrong-kind handles; spawn after shutdown and after destroy. */
  stackless_scheduler* s = make_scheduler(1);
  stackless_channel* ch = NULL;
  CHECK_OK(stackless_channel_create(1, &ch));
  CHECK_FAILS(stackless_join((stackless_tasklet*)ch, 0), STACKLESS_INVALID_HANDLE,
              "stackless_join");
  CHECK_FAILS(stackless_bytes_channel_close((stackless_bytes_channel*)ch), STACKLESS_INVALID_HANDLE,
              "stackless_bytes_channel_close");
  CHECK_OK(stackless_channel_destroy(ch));
  CHECK_FAILS(stackless_channel_send(ch, v, 0), STACKLESS_INVALID_HANDLE, "stackless_channel_send");
  CHECK_FAILS(stackless_channel_destroy(ch), STACKLESS_INVALID_HANDLE, "stackless_channel_destroy");
  stackless_tasklet* t = NULL;
  CHECK_OK(stackless_spawn(s, noop, NULL, &t));
  CHECK_OK(stackless_join(t, STACKLESS_FOREVER));
  CHECK_OK(stackless_tasklet_release(t));
  CHECK_FAILS(stackless_join(t, 0), STACKLESS_INVALID_HANDLE, "stackless_join");
  CHECK_FAILS(stackless_tasklet_release(t), STACKLESS_INVALID_HANDLE, "stackless_tasklet_release");
  CHECK_FAILS(stackless_spawn(s, NULL, NULL, NULL), STACKLESS_INVALID_ARGUMENT, "stackless_spawn");
  CHECK_OK(stackless_scheduler_shutdown(s));
  CHECK_FAILS(stackless_spawn(s, noop, NULL, &t), STACKLESS_SHUTDOWN, "stackless_spawn");
  CHECK_OK(stackless_scheduler_destroy(s));
  CHECK_FAILS(stackless_spawn(s, noop, NULL, &t), STACKLESS_INVALID_HANDLE, "stackless_spawn");
  CHECK_FAILS(stackless_scheduler_destroy(s), STACKLESS_INVALID_HANDLE,
              "stackless_scheduler_destroy");

  /* Sizes and counts. */
  stackless_bytes_channel* b = NULL;
  CHECK_FAILS(stackless_bytes_channel_create(4, 0, &b), STACKLESS_INVALID_ARGUMENT,
              "stackless_bytes_channel_create"); /* max_message 0 */
  CHECK(b == NULL);
  CHECK_FAILS(stackless_channel_create((size_t)1 << 41, &ch), STACKLESS_INVALID_ARGUMENT,
              "stackless_channel_create");
  CHECK_FAILS(stackless_channel_create(0, NULL), STACKLESS_INVALID_ARGUMENT,
              "stackless_channel_create");
  stackless_options o;
  stackless_options_init(&o);
  o.size = 4;
  CHECK_FAILS(stackless_scheduler_create(&o, &s), STACKLESS_INVALID_ARGUMENT,
              "stackless_scheduler_create");
  stackless_options_init(&o);
  o.stack_size = (size_t)1 << 31;
  CHECK_FAILS(stackless_scheduler_create(&o, &s), STACKLESS_INVALID_ARGUMENT,
              "stackless_scheduler_create");
  stackless_options_init(&o);
  o.quantum_us = -1;
  CHECK_FAILS(stackless_scheduler_create(&o, &s), STACKLESS_INVALID_ARGUMENT,
              "stackless_scheduler_create");
  struct { /* a caller compiled against a newer header with one more field, set */
    stackless_options o;
    uint64_t newer;
  } big;
  memset(&big, 0, sizeof big);
  stackless_options_init(&big.o);
  big.o.size = sizeof big;
  big.o.workers = 1;
  big.newer = 1;
  CHECK_FAILS(stackless_scheduler_create(&big.o, &s), STACKLESS_INVALID_ARGUMENT,
              "stackless_scheduler_create");
  big.newer = 0; /* the same, left zero: accepted */
  CHECK_OK(stackless_scheduler_create(&big.o, &s));
  CHECK_OK(stackless_scheduler_destroy(s));

  /* Negative timeouts, NULL out-pointers and buffers. */
  CHECK_OK(stackless_channel_create(1, &ch));
  CHECK_OK(stackless_bytes_channel_create(1, 8, &b));
  CHECK_FAILS(stackless_channel_send(ch, v, -1), STACKLESS_INVALID_ARGUMENT,
              "stackless_channel_send");
  CHECK_FAILS(stackless_channel_receive(ch, &v, -5), STACKLESS_INVALID_ARGUMENT,
              "stackless_channel_receive");
  CHECK_FAILS(stackless_channel_receive(ch, NULL, 0), STACKLESS_INVALID_ARGUMENT,
              "stackless_channel_receive");
  CHECK_FAILS(stackless_sleep(-1), STACKLESS_INVALID_ARGUMENT, "stackless_sleep");
  CHECK_FAILS(stackless_bytes_channel_send(b, NULL, 3, 0), STACKLESS_INVALID_ARGUMENT,
              "stackless_bytes_channel_send");
  CHECK_FAILS(stackless_bytes_channel_send(b, "x", 1, INT64_MIN), STACKLESS_INVALID_ARGUMENT,
              "stackless_bytes_channel_send");
  size_t len = 0;
  CHECK_FAILS(stackless_bytes_channel_receive(b, NULL, 8, &len, 0), STACKLESS_INVALID_ARGUMENT,
              "stackless_bytes_channel_receive");
  CHECK_FAILS(stackless_bytes_channel_receive(b, &len, sizeof len, NULL, 0),
              STACKLESS_INVALID_ARGUMENT, "stackless_bytes_channel_receive");
  CHECK_OK(stackless_channel_destroy(ch));
  CHECK_OK(stackless_bytes_channel_destroy(b));

  /* Tasklet-only calls from a plain thread. */
  CHECK_FAILS(stackless_yield(), STACKLESS_USAGE, "stackless_yield");
  uint64_t id = 0;
  CHECK_FAILS(stackless_current_id(&id), STACKLESS_USAGE, "stackless_current_id");
  CHECK_FAILS(stackless_scheduler_create(NULL, NULL), STACKLESS_INVALID_ARGUMENT,
              "stackless_scheduler_create");

  CHECK(strcmp(stackless_status_name(STACKLESS_TIMEOUT), "STACKLESS_TIMEOUT") == 0);
  CHECK(strcmp(stackless_status_name((stackless_status)99), "unknown") == 0);
  CHECK(stackless_api_version() == STACKLESS_C_API_VERSION);
}

/* The last error is per thread: a failure on another thread does not change this one's. */
static void* fail_elsewhere(void* p) {
  (void)p;
  CHECK_FAILS(stackless_join(NULL, 0), STACKLESS_INVALID_HANDLE, "stackless_join");
  return NULL;
}

static void test_last_error_is_per_thread(void) {
  CHECK_FAILS(stackless_sleep(-1), STACKLESS_INVALID_ARGUMENT, "stackless_sleep");
  pthread_t th;
  CHECK(pthread_create(&th, NULL, fail_elsewhere, NULL) == 0);
  CHECK(pthread_join(th, NULL) == 0);
  CHECK(strstr(stackless_last_error(), "stackless_sleep"));
}

int main(void) {
  int64_t t0 = now_us();
  test_bad_input();
  test_last_error_is_per_thread();
  test_bytes_details();
  test_run_for();
  printf("bad input, bytes, run_for: %.3f s\n", (double)(now_us() - t0) / 1e6);
  static const unsigned counts[] = {1, 2, 4};
  for (size_t i = 0; i < sizeof counts / sizeof counts[0]; ++i) {
    g_workers = counts[i];
    int64_t w0 = now_us();
    test_create_destroy(g_workers);
    test_spawn_join_many(g_workers);
    int64_t w1 = now_us();
    test_pointer_channels(g_workers);
    test_threads_and_tasklets(g_workers);
    int64_t w2 = now_us();
    test_timeouts(g_workers);
    test_close(g_workers);
    int64_t w3 = now_us();
    test_kill(g_workers);
    test_usage_and_deadlock(g_workers);
    printf("workers %u: spawn %.3f s, channels %.3f s, timeouts+close %.3f s, kill %.3f s\n",
           g_workers, (double)(w1 - w0) / 1e6, (double)(w2 - w1) / 1e6, (double)(w3 - w2) / 1e6,
           (double)(now_us() - w3) / 1e6);
  }
  printf("test_capi: all passed in %.2f s\n", (double)(now_us() - t0) / 1e6);
  return 0;
}
