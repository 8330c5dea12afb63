#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# tests/gdb/test_gdb.py — the gdb extension (tools/gdb/stackless.py) against tests/gdb/parked.cpp:
#
#   1. `source`d by hand, on the live program: before any scheduler exists and with a scheduler
#      that has no tasklet, the commands say so; stopped where four tasklets are parked and a
#      fifth runs, `info tasklets` lists each with its name, state and what it waits on;
#      `tasklet bt ID` shows the function a parked one parked in, and a running one's thread;
#      `tasklet frame ID` makes `bt`/`frame`/`info args` see the tasklet and `tasklet restore`
#      gives the thread its registers back (`info all-registers` compared before and after, on
#      the breakpoint's thread and on one stopped in a system call); bad ids get a message; a
#      core file is written (gcore); `continue` during a view ends the view first (hook-continue).
#      Then the program must run to a normal exit.
#   2. On that core file: `info tasklets` works, `tasklet bt` refuses with a message.
#   3. Auto-loaded from the binary's .debug_gdb_scripts section (runtime/src/gdb_autoload.cpp),
#      with the auto-load safe-path opened: `info auto-load python-scripts` says it loaded, and
#      `info tasklets` and `tasklet bt` work.
#
# usage: test_gdb.py --gdb GDB --script tools/gdb/stackless.py PROGRAM
import argparse
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile

# No file gdb writes (the gcore below) may grow past this: a program with huge mappings (an ASan
# build reserves terabytes of shadow) would otherwise fill the disk. gdb gets EFBIG instead
# (SIGXFSZ is ignored), the gcore fails, and so does its check.
MAX_FILE_BYTES = 512 << 20

# parked_ids[i] (parked.cpp): the tasklet's name, what it waits on, the function its bt must show.
EXPECTED = [
    ("mutex-holder", "channel", "hold_mutex_here"),
    ("chan-receiver", "channel", "wait_on_channel_here"),
    ("mutex-waiter", "mutex", "wait_on_mutex_here"),
    ("sleeper", "sleep", "sleep_here"),
]

failures = []


def check(cond, what, context=""):
    if cond:
        print("ok   %s" % what)
    else:
        print("FAIL %s" % what)
        failures.append(what)
        if context:
            print("---- context ----\n%s\n-----------------" % context.rstrip())


def limit_files():
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def run_gdb(gdb, args, timeout=180):
    cmd = [gdb, "-batch", "-nx"] + args
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, text=True,
                           errors="replace", preexec_fn=limit_files)
    except subprocess.TimeoutExpired as e:
        out = e.stdout if isinstance(e.stdout, str) else (e.stdout or b"").decode(errors="replace")
        print(out)
        print("FAIL gdb timed out after %d s: %s" % (timeout, " ".join(cmd)))
        sys.exit(1)
    return p.stdout


def sections(out):
    """The output between `echo ==NAME==` markers, by NAME."""
    parts = {}
    name = "start"
    for line in out.splitlines():
        m = re.match(r"^==([a-z0-9_-]+)==$", line.strip())
        if m:
            name = m.group(1)
            parts[name] = ""
            continue
        parts[name] = parts.get(name, "") + line + "\n"
    return parts


def ex(*cmds):
    args = []
    for c in cmds:
        args += ["-ex", c]
    return args


def mark(name):
    return "echo ==%s==\\n" % name


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gdb", default="gdb")
    ap.add_argument("--script", required=True)
    ap.add_argument("program")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="stackless-gdb-")
    try:
        return run_checks(a, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_checks(a, tmp):
    core = os.path.join(tmp, "parked.core")

    # ---- 1. live, the script sourced by hand ------------------------------------------------
    cmds = ["set pagination off", "set confirm off",
            # One malloc arena: the worker threads' arenas reserve 64 MiB each, which gcore
            # writes out (the core is ~20 MiB instead of ~150).
            "set environment MALLOC_ARENA_MAX=1",
            # The embedded copy stays off: this run tests the file given.
            "set auto-load python-scripts off",
            "source %s" % a.script,
            "break main", "break stackless_test_no_tasklets", "break stackless_test_all_parked",
            "break stackless_test_all_ended", "run",
            mark("none"), "info tasklets", "tasklet bt 1", "continue",
            mark("empty"), "info tasklets", "continue",
            mark("info"), "info tasklets"]
    for i in range(len(EXPECTED)):
        cmds += [mark("bt%d" % i), "tasklet bt parked_ids[%d]" % i]
    cmds += [mark("running"), "tasklet bt parked_ids[4]",
             # The thread's registers, byte for byte, before and after the views: the selected
             # one (the worker running the observer) and the main thread (in a futex wait: a
             # system call the kernel must still restart).
             mark("regs"), "python stop_thread = gdb.selected_thread()",
             "python before = gdb.execute('info all-registers', to_string=True)",
             "tasklet bt parked_ids[3] -1", "tasklet frame parked_ids[1]", "tasklet restore",
             "python print('REGISTERS ' + ('SAME' if gdb.execute('info all-registers', "
             "to_string=True) == before else 'CHANGED'))",
             "thread 1",
             "python before = gdb.execute('info all-registers', to_string=True)",
             "tasklet bt parked_ids[0] -1", "tasklet frame parked_ids[2]", "tasklet frame",
             "python print('REGISTERS ' + ('SAME' if gdb.execute('info all-registers', "
             "to_string=True) == before else 'CHANGED'))",
             "python stop_thread.switch()",
             ]
    cmds += [mark("thread-bt"), "bt",
             mark("frame"), "tasklet frame parked_ids[2]", "bt", "frame 0",
             mark("frame-locals"),
             # Select the frame of wait_on_mutex_here (not a fixed number: inlining decides).
             "python exec(\"f = gdb.newest_frame()\\nwhile f and not (f.name() or '')"
             ".endswith('wait_on_mutex_here'): f = f.older()\\nf.select()\")",
             "frame", "info args",
             mark("restore"), "tasklet restore", "bt",
             mark("bad-id"), "tasklet bt 987654321",
             mark("bad-expr"), "tasklet bt no_such_symbol_xyz",
             mark("no-id"), "tasklet bt",
             mark("gcore"), "gcore %s" % core,
             # A view left active: `continue` must end it first (hook-continue).
             mark("cont"), "tasklet frame parked_ids[1]", "continue",
             mark("ended"), "info tasklets",
             mark("cont2"), "continue",
             mark("end")]
    out = run_gdb(a.gdb, ex(*cmds) + [a.program])
    s = sections(out)
    print(out)

    listing = s.get("info", "")
    check("): 5 tasklets" in listing, "info tasklets: one scheduler with 5 live tasklets",
          listing)
    rows = {}
    for line in listing.splitlines():
        f = line.split()
        if len(f) >= 3 and f[0].isdigit():
            rows[f[1]] = line
    for i, (name, waits, fn) in enumerate(EXPECTED):
        row = rows.get(name, "")
        check(row != "", "info tasklets lists '%s'" % name, listing)
        check(" PARKED " in row, "'%s' is PARKED" % name, row)
        check(waits in row, "'%s' waits on %s" % (name, waits), row)
        check("parked.cpp:" in row, "'%s' shows its spawn site" % name, row)
        bt = s.get("bt%d" % i, "")
        check("tasklet " in bt and "'%s' (PARKED)" % name in bt, "tasklet bt: heads '%s'" % name,
              bt)
        check(re.search(r"\b%s\b" % fn, bt) is not None, "tasklet bt of '%s' shows %s" % (name, fn),
              bt)
        check("context_switch" in bt, "tasklet bt of '%s' starts at the switch" % name, bt)
        check("make_fcontext" not in bt and "?? ()" not in bt,
              "tasklet bt of '%s' ends at the tasklet's first frame" % name, bt)
    obs = rows.get("observer", "")
    check(re.search(r" RUNNING\s+w[01] \(thread \d+\)", obs) is not None,
          "'observer' is RUNNING, on a worker and its gdb thread", obs)
    running = s.get("running", "")
    check("observe_here" in running and "stackless_test_all_parked" in running and
          "running on worker" in running, "tasklet bt of a running tasklet: its thread's bt",
          running)
    check("make_fcontext" not in running and "?? ()" not in running,
          "tasklet bt of a running tasklet ends at the tasklet's first frame", running)
    regs = s.get("regs", "")
    check(regs.count("REGISTERS SAME") == 2 and "CHANGED" not in regs,
          "every register of both threads is restored exactly", regs)
    check("stackless_test_all_parked" in s.get("thread-bt", ""),
          "after tasklet bt the thread's own bt is back", s.get("thread-bt", ""))
    frame = s.get("frame", "")
    check("wait_on_mutex_here" in frame and "Viewing tasklet" in frame,
          "tasklet frame: bt shows the tasklet", frame)
    locals_ = s.get("frame-locals", "")
    check("wait_on_mutex_here" in locals_ and "m = " in locals_,
          "tasklet frame: frame N / info args work in the tasklet's frames", locals_)
    restore = s.get("restore", "")
    check("stackless_test_all_parked" in restore and "wait_on_mutex_here" not in restore,
          "tasklet restore: the thread's own bt is back", restore)
    check("no live tasklet has id 987654321" in s.get("bad-id", ""), "a bad id gets a message",
          s.get("bad-id", ""))
    check("is not a tasklet id" in s.get("bad-expr", ""), "a bad expression gets a message",
          s.get("bad-expr", ""))
    check("usage: tasklet bt" in s.get("no-id", ""), "no id: the usage", s.get("no-id", ""))
    check(os.path.exists(core) and "Saved corefile" in s.get("gcore", ""),
          "gcore wrote a core file", s.get("gcore", ""))
    none = s.get("none", "")
    check("No live stackless scheduler." in none and "no live tasklet has id 1" in none,
          "no scheduler yet: info tasklets and tasklet bt say so", none)
    empty = s.get("empty", "")
    check("'gdbtest', 2 workers): 0 tasklets" in empty and "Traceback" not in empty,
          "a scheduler with no tasklet: info tasklets says 0", empty)
    ended = s.get("ended", "")
    live_rows = [l for l in ended.splitlines() if re.match(r"^\s+\d+\s", l) and " DEAD " not in l]
    check("the tasklet view ended" in s.get("cont", ""),
          "continue during a tasklet frame view ends the view first", s.get("cont", ""))
    check("stackless_test_all_ended" in s.get("cont", "") and "Scheduler 0" in ended and
          not live_rows, "the program ran on after the views; every tasklet ended",
          s.get("cont", "") + ended)
    check("parked: done" in out and "exited normally" in s.get("cont2", ""),
          "the program ended normally (every register was restored)", s.get("cont2", ""))

    # ---- 2. the core file -------------------------------------------------------------------
    if os.path.exists(core) and "Saved corefile" in s.get("gcore", ""):
        out = run_gdb(a.gdb, ["-iex", "set auto-load python-scripts off"] +
                      ex("source %s" % a.script, mark("info"), "info tasklets", mark("bt"),
                         "tasklet bt parked_ids[1]", mark("end")) + [a.program, core])
        print(out)
        s = sections(out)
        check(all(n in s.get("info", "") for n, _, _ in EXPECTED) and
              "PARKED" in s.get("info", ""), "core file: info tasklets lists the tasklets",
              s.get("info", ""))
        check("need a live process" in s.get("bt", ""),
              "core file: tasklet bt refuses with a message", s.get("bt", ""))
    if os.path.exists(core):
        os.unlink(core)  # now: the third run needs no disk for it

    # ---- 3. auto-loaded from .debug_gdb_scripts ---------------------------------------------
    out = run_gdb(a.gdb, ["-iex", "set auto-load safe-path /"] +
                  ex("set confirm off", "break stackless_test_all_parked", "run",
                     mark("info"), "info tasklets", mark("bt"), "tasklet bt parked_ids[2]",
                     mark("loaded"),
                     "info auto-load python-scripts", mark("kill"), "kill") + [a.program])
    print(out)
    s = sections(out)
    check(re.search(r"^Yes\s+stackless-gdb-tasklets\.py", s.get("loaded", ""), re.M) is not None,
          "the script auto-loads from .debug_gdb_scripts", s.get("loaded", ""))
    check("): 5 tasklets" in s.get("info", ""), "auto-loaded: info tasklets works",
          s.get("info", ""))
    check("wait_on_mutex_here" in s.get("bt", ""), "auto-loaded: tasklet bt works",
          s.get("bt", ""))

    if failures:
        print("\n%d check(s) failed:\n  %s" % (len(failures), "\n  ".join(failures)))
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
