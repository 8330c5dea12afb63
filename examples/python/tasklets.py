#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""examples/python/tasklets.py — stackless from Python through ctypes and the C API.

    python3 examples/python/tasklets.py [--workers 1,2] [path/to/libstackless_c.so]

(or STACKLESS_C_LIB=path/to/libstackless_c.so). Python 3 standard library only.

A fan-out/fan-in: the main thread puts lines of text on a bytes channel and closes it; mapper
tasklets — Python functions wrapped with ctypes.CFUNCTYPE and spawned with stackless_spawn() —
take lines until the channel is drained, count words, and send their counts back on a second
bytes channel, then their index on a channel of pointers; the main thread collects, joins and
prints. Run at each worker count given; exits 0 when every total is right.

The rules this example keeps, and why (docs/embedding_c.md says more):
  - ctypes.CDLL, not PyDLL: a foreign call releases the GIL, so the main thread waiting in
    stackless_join() or a receive lets the worker threads run Python.
  - A Python callback runs on a worker thread, which ctypes gives the GIL for the call.
  - A Python callback never parks (no stackless call that waits: timeouts of 0 only, on channels
    with room) and never yields. CPython's per-thread interpreter state keeps a stack of frames:
    if a callback were suspended in a stackless call while another Python callback ran on the
    same worker thread, or resumed on another worker thread, that stack would be unwound out of
    order. So the callbacks here run to completion, and the waiting is done by the main thread.
    (Tasklets in C may wait as they like; so may a single Python callback on a scheduler of one
    worker that runs no other Python.)
"""

import argparse
import ctypes
import os
import sys
import time

FOREVER = (1 << 63) - 1
OK, INVALID_ARGUMENT, INVALID_HANDLE, TIMEOUT, CLOSED, KILLED = 0, 1, 2, 3, 4, 5

TEXT = """\
Stackless Python added tasklets and channels to Python
a tasklet is a function that runs as a microthread
channels carry values between tasklets and block until both sides are there
this runtime runs tasklets on every core with work stealing
each worker has its own run queue and steals from the others when idle
a host program can pump a scheduler from its frame loop with run_for
and other languages reach it through a small C API
""".splitlines() * 40  # 280 lines: enough for the mappers to overlap on several workers


class Options(ctypes.Structure):
    """struct stackless_options (stackless.h): the size field versions it."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("workers", ctypes.c_uint),
        ("stack_size", ctypes.c_size_t),
        ("quantum_us", ctypes.c_int64),
        ("name", ctypes.c_char_p),
        ("deadlock_grace_ms", ctypes.c_int64),
    ]


TASKLET_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # void (*)(void*)


class StacklessError(RuntimeError):
    def __init__(self, lib, call, status):
        name = lib.stackless_status_name(status).decode()
        super().__init__(f"{call}: {name}: {lib.stackless_last_error().decode()}")
        self.status = status


def load(path):
    lib = ctypes.CDLL(path)  # CDLL: every call releases the GIL
    P = ctypes.POINTER
    vp, i64, sz = ctypes.c_void_p, ctypes.c_int64, ctypes.c_size_t
    protos = {
        "stackless_last_error": (ctypes.c_char_p, []),
        "stackless_status_name": (ctypes.c_char_p, [ctypes.c_int]),
        "stackless_api_version": (ctypes.c_int, []),
        "stackless_options_init": (None, [P(Options)]),
        "stackless_scheduler_create": (ctypes.c_int, [P(Options), P(vp)]),
        "stackless_scheduler_destroy": (ctypes.c_int, [vp]),
        "stackless_spawn": (ctypes.c_int, [vp, TASKLET_FN, vp, P(vp)]),
        "stackless_join": (ctypes.c_int, [vp, i64]),
        "stackless_tasklet_release": (ctypes.c_int, [vp]),
        "stackless_current_id": (ctypes.c_int, [P(ctypes.c_uint64)]),
        "stackless_channel_create": (ctypes.c_int, [sz, P(vp)]),
        "stackless_channel_send": (ctypes.c_int, [vp, vp, i64]),
        "stackless_channel_receive": (ctypes.c_int, [vp, P(vp), i64]),
        "stackless_channel_destroy": (ctypes.c_int, [vp]),
        "stackless_bytes_channel_create": (ctypes.c_int, [sz, sz, P(vp)]),
        "stackless_bytes_channel_send": (ctypes.c_int, [vp, ctypes.c_char_p, sz, i64]),
        "stackless_bytes_channel_receive": (ctypes.c_int, [vp, ctypes.c_char_p, sz, P(sz), i64]),
        "stackless_bytes_channel_close": (ctypes.c_int, [vp]),
        "stackless_bytes_channel_destroy": (ctypes.c_int, [vp]),
    }
    for name, (restype, argtypes) in protos.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


def check(lib, call, status):
    if status != OK:
        raise StacklessError(lib, call, status)


def call(lib, name, *args):
    check(lib, name, getattr(lib, name)(*args))


def run(lib, workers):
    MAX = 4096
    t0 = time.monotonic()
    opts = Options()
    lib.stackless_options_init(ctypes.byref(opts))
    opts.workers = workers
    opts.name = b"py"
    sched, lines, counts, done = (ctypes.c_void_p() for _ in range(4))
    call(lib, "stackless_scheduler_create", ctypes.byref(opts), ctypes.byref(sched))
    # Channels with room for everything: no callback ever has to wait on them.
    call(lib, "stackless_bytes_channel_create", len(TEXT), MAX, ctypes.byref(lines))
    call(lib, "stackless_bytes_channel_create", len(TEXT), MAX, ctypes.byref(counts))
    call(lib, "stackless_channel_create", ctypes.c_size_t(-1).value, ctypes.byref(done))
    for line in TEXT:
        data = line.encode()
        call(lib, "stackless_bytes_channel_send", lines, data, len(data), 0)
    call(lib, "stackless_bytes_channel_close", lines)  # the mappers stop when it is drained

    errors = []
    per_tasklet = {}

    def mapper(arg):  # runs as a tasklet, on a worker thread, holding the GIL
        try:
            index = arg or 0
            me = ctypes.c_uint64()
            call(lib, "stackless_current_id", ctypes.byref(me))
            buf = ctypes.create_string_buffer(MAX)
            n = ctypes.c_size_t()
            lines_done = 0
            while True:
                st = lib.stackless_bytes_channel_receive(lines, buf, MAX, ctypes.byref(n), 0)
                if st == CLOSED:
                    break  # closed and drained
                if st == TIMEOUT:
                    continue  # only while another mapper's receive is in flight: try again
                check(lib, "stackless_bytes_channel_receive", st)
                words = len(buf.raw[: n.value].split())
                msg = f"{index} {words}".encode()
                while True:  # room is guaranteed; a try may still lose a race: again
                    st = lib.stackless_bytes_channel_send(counts, msg, len(msg), 0)
                    if st != TIMEOUT:
                        break
                check(lib, "stackless_bytes_channel_send", st)
                lines_done += 1
            per_tasklet[index] = (me.value, lines_done)
            call(lib, "stackless_channel_send", done, index + 1, 0)  # unbounded: never waits
        except Exception as e:  # an exception must not escape a ctypes callback
            errors.append(f"mapper {arg}: {e}")

    callback = TASKLET_FN(mapper)  # must stay alive until every tasklet has ended
    mappers = max(2, 2 * workers)
    handles = []
    for i in range(mappers):
        h = ctypes.c_void_p()
        call(lib, "stackless_spawn", sched, callback, i, ctypes.byref(h))
        handles.append(h)

    # The main thread waits (the GIL is released meanwhile): the counts, then every mapper's end.
    total = 0
    buf = ctypes.create_string_buffer(MAX)
    n = ctypes.c_size_t()
    for _ in TEXT:
        call(lib, "stackless_bytes_channel_receive", counts, buf, MAX, ctypes.byref(n), FOREVER)
        total += int(buf.raw[: n.value].split()[1])
    finished = set()
    v = ctypes.c_void_p()
    for _ in range(mappers):
        call(lib, "stackless_channel_receive", done, ctypes.byref(v), FOREVER)
        finished.add(v.value - 1)
    for h in handles:
        call(lib, "stackless_join", h, FOREVER)
        call(lib, "stackless_tasklet_release", h)
    for ch, kind in ((lines, "bytes_"), (counts, "bytes_"), (done, "")):
        call(lib, f"stackless_{kind}channel_destroy", ch)
    call(lib, "stackless_scheduler_destroy", sched)

    want = sum(len(line.split()) for line in TEXT)
    busy = ", ".join(
        f"#{tid}: {k} line{'s' if k != 1 else ''}" for _, (tid, k) in sorted(per_tasklet.items())
    )
    print(f"workers {workers}: {mappers} Python tasklets counted {total} words in {len(TEXT)} "
          f"lines ({busy}) in {time.monotonic() - t0:.3f} s")
    if errors:
        for e in errors:
            print("error:", e, file=sys.stderr)
        return False
    if total != want or finished != set(range(mappers)):
        print(f"error: {total} words (want {want}), mappers finished: {sorted(finished)}",
              file=sys.stderr)
        return False
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("library", nargs="?", default=os.environ.get("STACKLESS_C_LIB"),
                    help="path of libstackless_c.so (default: $STACKLESS_C_LIB)")
    ap.add_argument("--workers", default="2", help="worker counts, comma-separated (default 2)")
    args = ap.parse_args()
    if not args.library:
        ap.error("give the path of libstackless_c.so, or set STACKLESS_C_LIB")
    # Chaos mode (STACKLESS_CHAOS, a debugging aid) makes calls yield at random, which would
    # suspend a Python callback in the middle (see the rules above): not for this process.
    os.environ.pop("STACKLESS_CHAOS", None)
    lib = load(args.library)
    print(f"libstackless_c API version {lib.stackless_api_version()}")
    ok = all([run(lib, int(w)) for w in args.workers.split(",")])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
