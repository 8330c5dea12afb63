#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tools/bench_echo.py — the echo benchmark (issue 15 §5): ours against Go, Boost.Asio and
plain threads, in one run.

    tools/bench_echo.py [--build-dir build/release] [--connections 4,1000] [--workers 1,2]
                        [--reps 3] [--seconds 3] [--msg 512] [--client-threads 1]
                        [--servers ours,go,asio,threads] [--markdown] [--out DIR]

The servers (each takes `--port 0 --workers N`, prints "listening on 127.0.0.1:PORT" first and
exits 0 on SIGTERM; each echoes with one task per connection and a 16 KiB buffer, TCP_NODELAY):
  ours     examples/echo.cpp (stackless_echo): a tasklet per connection on stackless::io
  go       bench/peers/go_echo/echo.go, a goroutine per connection (GOMAXPROCS = N); built here
           with `go build`, as tools/bench.py builds the Go peer
  asio     bench/peers/asio/echo_asio.cpp: Boost.Asio, C++20 coroutines, ONE io_context run by
           N threads
  threads  bench/peers/threads/echo_threads.cpp: an OS thread per connection, blocking calls,
           the process pinned to N CPUs
The load client (bench/echo_client.cpp, stackless_echo_client) shares no code with any server:
raw epoll on --client-threads OS threads, C connections doing request/response ping-pong of
--msg bytes, every echo checked, 1 s of warm-up then --seconds measured.

For each (connections, workers) and each repetition, every server is started, measured and
killed in turn — in the opposite order on every other repetition, so slow drifts of a noisy
machine hit everyone alike. The tables give the median messages/s of each and the ratios
ours/peer (> 1: ours is faster), the server's RSS (VmRSS from /proc/PID/status, read just
before the measurement ends, connections still open) and the server's CPU time per message
(utime + stime from /proc/PID/stat over the measured window; the client runs on the same
cores, so on a 2-core machine this, not messages/s, is the cleaner cost figure). It writes
<out>/bench_echo.json (every run and the medians) and <out>/bench_echo.md (the tables).

RLIMIT_NOFILE is raised to its hard limit for this script and so for every server and the
client it starts (1000 connections need 1000 fds on each side). A run that fails (a server
that does not start, a client error, a server that does not exit 0 on SIGTERM) is reported
loudly and the script exits non-zero at the end. Only the standard library is used.
"""
import argparse
import datetime
import json
import os
import platform
import resource
import selectors
import shutil
import signal
import statistics
import subprocess
import sys

from bench import int_list, markdown_table, report_failures, text_table  # tools/bench.py
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Column order; ours first. impl -> executable under the build directory (go: built here).
IMPLS = {"ours": "stackless_echo", "go": "peer_go_echo", "asio": "peer_asio_echo",
         "threads": "peer_threads_echo"}
LABEL = {"ours": "ours", "go": "Go", "asio": "Asio", "threads": "threads"}
CLIENT = "stackless_echo_client"
WARMUP_S = 1.0
START_TIMEOUT_S = 10   # for a server's "listening on" line
STOP_TIMEOUT_S = 10    # for a server to exit after SIGTERM
CLK_TCK = os.sysconf("SC_CLK_TCK")


def find_binary(build_dir, name):
    """The path of executable `name` under build_dir (bench/ and examples/ first), or None."""
    for sub in ("bench", "examples", ""):
        cand = os.path.join(build_dir, sub, name)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    for root, _dirs, files in os.walk(build_dir):
        if name in files and os.access(os.path.join(root, name), os.X_OK):
            return os.path.join(root, name)
    return None


def build_go_echo(build_dir, failures):
    """Builds bench/peers/go_echo/echo.go into <build_dir>/peer_go_echo; its path or None."""
    go = shutil.which("go")
    if go is None:
        print("note: `go` not found, the Go column shows –", file=sys.stderr)
        return None
    out = os.path.join(build_dir, "peer_go_echo")
    env = dict(os.environ, GO111MODULE="off", GOCACHE=os.path.join(build_dir, "go-cache"),
               GOPATH=os.path.join(build_dir, "go-path"))
    cmd = [go, "build", "-o", out, os.path.join(REPO, "bench", "peers", "go_echo", "echo.go")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        failures.append(f"building the Go echo server failed:\n{proc.stderr.strip()}")
        return None
    return out


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_status(pid, key):
    """A field of /proc/PID/status in KiB (VmRSS, VmHWM), or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_cpu_s(pid):
    """utime + stime of a process, all its threads, in seconds (/proc/PID/stat), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The command name may hold spaces: the fields after it start past the last ')'.
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)
    except (OSError, IndexError, ValueError):
        return None


def wait_for_line(proc, timeout):
    """The first line the process prints on stdout, or None after timeout or its exit."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not sel.select(left):
            return None
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            return None
        buf += chunk
    return buf.split(b"\n", 1)[0].decode(errors="replace")


def stop_server(proc):
    """SIGTERM, then SIGKILL if it does not exit in time; its exit code (None if killed)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def run_once(server_bin, client_bin, impl, conns, workers, args):
    """Starts one server, runs the client against it, stops the server; a record."""
    rec = {"impl": impl, "connections": conns, "workers": workers}
    err = tempfile.TemporaryFile()
    server = subprocess.Popen([server_bin, "--port", "0", "--workers", str(workers)],
                              stdout=subprocess.PIPE, stderr=err)
    try:
        line = wait_for_line(server, START_TIMEOUT_S)
        prefix = "listening on "
        if not line or not line.startswith(prefix):
            stop_server(server)
            err.seek(0)
            return dict(rec, status="failed", error=f"no '{prefix}ADDR' line within "
                        f"{START_TIMEOUT_S} s (got {line!r}): {err.read().decode()[-2000:]}")
        addr = line[len(prefix):].strip()
        client = subprocess.Popen(
            [client_bin, "--addr", addr, "--connections", str(conns), "--msg", str(args.msg),
             "--seconds", str(args.seconds), "--threads", str(args.client_threads),
             "--warmup", str(WARMUP_S)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        # The server's CPU time over (nearly) the client's measured window, and its RSS at the
        # window's end while every connection is still open. The client connects before its
        # warm-up starts (a few ms, even for 1000), so its window starts ~WARMUP_S after t0.
        marks = {"cpu0": WARMUP_S + 0.05, "cpu1": WARMUP_S + args.seconds - 0.05}
        samples = {}
        for name, at in marks.items():
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            if client.poll() is not None:
                break
            samples[name] = (time.monotonic(), proc_cpu_s(server.pid))
        rss_kib = proc_status(server.pid, "VmRSS")
        try:
            out, cerr = client.communicate(timeout=WARMUP_S + args.seconds + 60)
        except subprocess.TimeoutExpired:
            client.kill()
            out, cerr = client.communicate()
            cerr = "timed out\n" + cerr
        hwm_kib = proc_status(server.pid, "VmHWM")
        server_alive = server.poll() is None
    finally:
        code = stop_server(server)
    err.seek(0)
    server_err = err.read().decode(errors="replace").strip()[-2000:]
    rec.update(rss_kib=rss_kib, hwm_kib=hwm_kib, server_exit=code)
    if client.returncode != 0:
        return dict(rec, status="failed",
                    error=f"client exit code {client.returncode}: {cerr.strip()[-2000:]}"
                          + (f" | server stderr: {server_err}" if server_err else "")
                          + ("" if server_alive else " | the server had exited"))
    try:
        result = json.loads(out.strip().splitlines()[-1])
        rec.update(messages=result["messages"], seconds=result["seconds"],
                   msgs_per_s=result["msgs_per_s"])
    except (ValueError, KeyError, IndexError):
        return dict(rec, status="failed", error=f"no JSON line from the client: {out!r}")
    if "cpu0" in samples and "cpu1" in samples and None not in (samples["cpu0"][1],
                                                                  samples["cpu1"][1]):
        (ta, ca), (tb, cb) = samples["cpu0"], samples["cpu1"]
        msgs = rec["msgs_per_s"] * (tb - ta)
        rec["server_cpu_s"] = cb - ca
        rec["server_cpu_us_per_msg"] = (cb - ca) * 1e6 / msgs if msgs > 0 else None
    if code != 0:
        how = "did not exit within %d s of SIGTERM (killed)" % STOP_TIMEOUT_S if code is None \
            else f"exit code {code} after SIGTERM"
        return dict(rec, status="failed", error=f"server {how}: {server_err}")
    return dict(rec, status="ok")


# --- tables ------------------------------------------------------------------------------------

def median_of(runs, impl, c, w, key):
    vals = [r[key] for r in runs if (r["impl"], r["connections"], r["workers"]) == (impl, c, w)
            and r["status"] == "ok" and r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt_rate(x):
    return "–" if x is None else f"{x:,.0f}"


def fmt_ratio(a, b):
    return "–" if a is None or not b else f"{a / b:.2f}"


def throughput_table(runs, impls, cases):
    header = ["connections", "workers"] + [f"{LABEL[i]} msg/s" for i in impls] \
        + [f"ours/{LABEL[i]}" for i in impls if i != "ours"]
    rows = []
    for c, w in cases:
        med = {i: median_of(runs, i, c, w, "msgs_per_s") for i in impls}
        rows.append([str(c), str(w)] + [fmt_rate(med[i]) for i in impls]
                    + [fmt_ratio(med.get("ours"), med[i]) for i in impls if i != "ours"])
    return header, rows


def rss_table(runs, impls, cases, conn_list):
    """Median VmRSS (MiB) per case, then per workers the marginal KiB per connection between the
    fewest and the most connections."""
    header = ["connections", "workers"] + [f"{LABEL[i]} RSS MiB" for i in impls]
    rows = []
    for c, w in cases:
        rows.append([str(c), str(w)] + [
            "–" if (v := median_of(runs, i, c, w, "rss_kib")) is None else f"{v / 1024:.1f}"
            for i in impls])
    lo, hi = min(conn_list), max(conn_list)
    if hi > lo:
        for w in sorted({w for _, w in cases}):
            cells = []
            for i in impls:
                a, b = median_of(runs, i, lo, w, "rss_kib"), median_of(runs, i, hi, w, "rss_kib")
                cells.append("–" if a is None or b is None else f"{(b - a) / (hi - lo):.1f}")
            rows.append([f"KiB/conn ({lo}→{hi})", str(w)] + cells)
    return header, rows


def cpu_table(runs, impls, cases):
    header = ["connections", "workers"] + [f"{LABEL[i]} µs/msg" for i in impls] \
        + [f"ours/{LABEL[i]}" for i in impls if i != "ours"]
    rows = []
    for c, w in cases:
        med = {i: median_of(runs, i, c, w, "server_cpu_us_per_msg") for i in impls}
        rows.append([str(c), str(w)]
                    + ["–" if med[i] is None else f"{med[i]:.2f}" for i in impls]
                    + [fmt_ratio(med.get("ours"), med[i]) for i in impls if i != "ours"])
    return header, rows






def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build", "release"),
                    help="CMake build dir with STACKLESS_BUILD_BENCH=ON (default build/release)")
    ap.add_argument("--connections", type=int_list, default=[4, 1000],
                    help="comma-separated connection counts (default 4,1000)")
    ap.add_argument("--workers", type=int_list, default=[1, 2],
                    help="comma-separated worker counts (default 1,2)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per server (default 3)")
    ap.add_argument("--seconds", type=float, default=3.0,
                    help="measured seconds per run, after 1 s of warm-up (default 3)")
    ap.add_argument("--msg", type=int, default=512, help="message size in bytes (default 512)")
    ap.add_argument("--client-threads", type=int, default=1,
                    help="the client's OS threads (default 1)")
    ap.add_argument("--servers", default=",".join(IMPLS),
                    help=f"comma-separated subset of {','.join(IMPLS)}")
    ap.add_argument("--markdown", action="store_true",
                    help="print the tables as Markdown (they are always written to bench_echo.md)")
    ap.add_argument("--out", help="report directory (default <build-dir>/bench-echo)")
    args = ap.parse_args()
    if args.reps < 1 or args.seconds <= 0.2 or args.msg < 1 or args.client_threads < 1:
        ap.error("--reps >= 1, --seconds > 0.2, --msg >= 1 and --client-threads >= 1")
    impls = [i for i in args.servers.split(",") if i]
    if unknown := [i for i in impls if i not in IMPLS]:
        ap.error(f"unknown server(s) {unknown}; known: {list(IMPLS)}")

    build_dir = os.path.abspath(args.build_dir)
    out_dir = args.out or os.path.join(build_dir, "bench-echo")
    failures = []
    nofile = raise_nofile()
    if nofile != resource.RLIM_INFINITY and nofile < max(args.connections) + 64:
        print(f"warning: RLIMIT_NOFILE is {nofile} (hard limit): too few fds for "
              f"{max(args.connections)} connections", file=sys.stderr)

    client = find_binary(build_dir, CLIENT)
    if client is None:
        sys.exit(f"error: {CLIENT} not found under {build_dir} (configure with "
                 "-DSTACKLESS_BUILD_BENCH=ON and build it: tools/dev build --release)")
    binaries = {}
    for impl in impls:
        path = build_go_echo(build_dir, failures) if impl == "go" \
            else find_binary(build_dir, IMPLS[impl])
        if path:
            binaries[impl] = path
        elif impl == "ours":
            sys.exit(f"error: {IMPLS[impl]} not found under {build_dir} (tools/dev build --release)")
        else:
            print(f"note: {IMPLS[impl]} not found, the {LABEL[impl]} column shows –",
                  file=sys.stderr)

    cases = [(c, w) for c in args.connections for w in args.workers]
    runs = []
    for c, w in cases:
        for rep in range(args.reps):
            order = impls if rep % 2 == 0 else impls[::-1]
            for impl in order:
                if impl not in binaries:
                    continue
                rec = run_once(binaries[impl], client, impl, c, w, args)
                rec["rep"] = rep
                runs.append(rec)
                if rec["status"] != "ok":
                    failures.append(f"{impl} connections={c} workers={w} rep {rep + 1}: "
                                    f"{rec['error']}")
                    print(f"!!! FAILED: {failures[-1]}", file=sys.stderr)
                else:
                    cpu = rec.get("server_cpu_us_per_msg")
                    print(f"  C={c:<5} T={w} rep {rep + 1}/{args.reps} {impl:<8}"
                          f"{fmt_rate(rec['msgs_per_s']):>10} msg/s  "
                          f"RSS {rec['rss_kib'] / 1024 if rec['rss_kib'] else 0:6.1f} MiB  "
                          f"server CPU {'–' if cpu is None else f'{cpu:.2f}'} µs/msg",
                          file=sys.stderr)
                time.sleep(0.2)  # let the closed connections' last segments go by

    tables = [
        (f"Messages per second (median of {args.reps}; {args.msg}-byte request/response "
         f"ping-pong, {args.seconds:g} s measured after {WARMUP_S:g} s warm-up, client on "
         f"{args.client_threads} thread(s)). ours/peer > 1: ours is faster.",
         throughput_table(runs, impls, cases)),
        ("Server RSS, MiB (VmRSS near the end of the measured window, connections open; "
         "median), and the marginal KiB per connection.", rss_table(runs, impls, cases,
                                                                     args.connections)),
        ("Server CPU time per message, µs (utime + stime over the measured window / messages; "
         "median). ours/peer < 1: ours spends less.", cpu_table(runs, impls, cases)),
    ]
    notes = ("workers: ours options.workers; Go GOMAXPROCS; Asio threads running one "
             "io_context; threads: the process pinned to that many CPUs. The client shares the "
             f"machine's {os.cpu_count()} CPUs with the server.")
    fmt = markdown_table if args.markdown else text_table
    for title, tab in tables:
        print(title + "\n\n" + fmt(*tab) + "\n")
    print(notes)

    os.makedirs(out_dir, exist_ok=True)
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "host": platform.node(), "machine": platform.platform(), "cpus": os.cpu_count(),
            "reps": args.reps, "seconds": args.seconds, "warmup": WARMUP_S, "msg": args.msg,
            "client_threads": args.client_threads, "connections": args.connections,
            "workers": args.workers, "binaries": dict(binaries, client=client),
            "rlimit_nofile": nofile}
    medians = {f"{c}/{w}": {i: {k: median_of(runs, i, c, w, k)
                                for k in ("msgs_per_s", "rss_kib", "server_cpu_us_per_msg")}
                            for i in impls} for c, w in cases}
    with open(os.path.join(out_dir, "bench_echo.json"), "w") as f:
        json.dump({"meta": meta, "runs": runs, "medians": medians, "failures": failures}, f,
                  indent=1)
    with open(os.path.join(out_dir, "bench_echo.md"), "w") as f:
        f.write(f"# echo: stackless vs peers ({meta['date']}, {meta['machine']}, "
                f"{meta['cpus']} CPUs)\n\n")
        for title, tab in tables:
            f.write(title + "\n\n" + markdown_table(*tab) + "\n\n")
        f.write(notes + "\n")
    print(f"\nwrote {out_dir}/bench_echo.json, bench_echo.md")

    return report_failures(failures)


if __name__ == "__main__":
    sys.exit(main())
