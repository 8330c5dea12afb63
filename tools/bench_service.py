#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tools/bench_service.py — the compute service under load: examples/service.cpp (ours) against
its Go peer (bench/peers/go/service, net/http + goroutines), driven by wrk.

    tools/bench_service.py [--build-dir build/release] [--workers 1,2] [--reps 3] [--seconds 5]
                           [--connections 32] [--wrk-threads 1] [--fib 24] [--body-kib 4]
                           [--servers ours,go] [--markdown] [--out DIR]

Two endpoints: `GET /fib/N` (a small N: each request is tens to hundreds of µs of recursive
spawn/join, or goroutines, down to the same cutoff) and `POST /wordcount` with a fixed body of
--body-kib KiB of words (a wrk Lua script sends it; the service splits it into pieces, counts them
with map_reduce, or goroutines and maps, and answers the top 10). Before measuring, the script
checks that both servers give the same answer to each request.

For each endpoint, each T in --workers (ours: options.workers; Go: GOMAXPROCS) and each
repetition, every server is started, warmed up with 1 s of wrk, measured with `wrk -t<wrk-threads>
-c<connections> -d<seconds>s --latency`, and stopped with SIGTERM (it must exit 0) — in the
opposite order on every other repetition, so slow drifts of a noisy machine hit both alike. The
table gives the median requests/s and the median p99 latency (wrk's) of each, and the ratios
ours/Go. A run with non-2xx answers or socket errors is a failure. wrk runs on the same machine
and CPUs as the server: on the 2-CPU VM, at T=2 the client takes a share of the server's CPUs —
the figures are for comparing the two servers under the same load, not for capacity planning.

It writes <out>/bench_service.json (every run and the medians) and <out>/bench_service.md.
Needs wrk (/usr/bin/wrk; Debian: `apt-get install wrk`) and go; the standard library otherwise.
"""
import argparse
import datetime
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from bench import (build_go_program, find_binary, int_list, markdown_table, report_failures,
                   text_table)
from bench_echo import stop_server, wait_for_line

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMPLS = ("ours", "go")
LABEL = {"ours": "ours", "go": "Go"}
OURS = "stackless_service"
GO_SOURCE = os.path.join("bench", "peers", "go", "service", "main.go")
GO_NAME = "peer_go_service"
START_TIMEOUT_S = 10
WARMUP_S = 1
# The words of the --body-kib body: common English words, some capitalised, with punctuation.
VOCABULARY = ("the of and to in a is that for it as was with be by on not he this are or his "
              "from at which but have an they you were her she there been one all we their "
              "Stackless tasklet channel scheduler worker map reduce word count service").split()


def make_body(kib):
    """A deterministic text of about kib KiB (the same on every run)."""
    rnd = random.Random(20261207)
    out, size = [], 0
    while size < kib * 1024:
        w = rnd.choice(VOCABULARY)
        if rnd.random() < 0.1:
            w = w.capitalize()
        sep = rnd.choice((" ", " ", " ", ", ", ". ", "\n"))
        out.append(w + sep)
        size += len(w) + len(sep)
    return "".join(out).encode()[:kib * 1024]


def wrk_script(path, body_path):
    with open(path, "w") as f:
        f.write('-- POST /wordcount with a fixed body (tools/bench_service.py)\n'
                f'local f = io.open("{body_path}", "rb")\n'
                'wrk.method = "POST"\n'
                'wrk.body = f:read("*a")\n'
                'f:close()\n'
                'wrk.headers["Content-Type"] = "text/plain"\n')


def parse_duration_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return None
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}[m.group(2)]


def parse_wrk(out):
    """requests/s, p50 and p99 (ms), and the error counts from wrk --latency's output."""
    rec = {}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        rec["rps"] = float(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        if m := re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M):
            rec[key] = parse_duration_ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    rec["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    rec["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return rec


def start_server(binary, workers):
    env = dict(os.environ, GOMAXPROCS=str(workers))
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen([binary, "--port", "0", "--workers", str(workers)],
                            stdout=subprocess.PIPE, stderr=err, env=env)
    line = wait_for_line(proc, START_TIMEOUT_S)
    if not line or not line.startswith("listening on "):
        stop_server(proc)
        err.seek(0)
        raise RuntimeError(f"no 'listening on' line (got {line!r}): {err.read().decode()[-500:]}")
    return proc, err, int(line.rsplit(":", 1)[1])


def ask(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path, body=body)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data)


def check_answers(binaries, args, body, failures):
    """Both servers answer the benchmark's two requests alike (and correctly for fib)."""
    answers = {}
    for impl, binary in binaries.items():
        proc, _err, port = start_server(binary, 1)
        try:
            answers[impl] = (ask(port, "GET", f"/fib/{args.fib}"),
                             ask(port, "POST", "/wordcount", body))
        finally:
            stop_server(proc)
    a, b = 0, 1
    for _ in range(args.fib):
        a, b = b, a + b
    for impl, (fib, wc) in answers.items():
        if fib != (200, {"n": args.fib, "fib": a}):
            failures.append(f"{impl}: /fib/{args.fib} answered {fib}")
        if wc[0] != 200:
            failures.append(f"{impl}: /wordcount answered {wc}")
    if len(answers) == 2 and answers["ours"][1] != answers["go"][1]:
        failures.append(f"/wordcount: ours {answers['ours'][1]} != Go {answers['go'][1]}")
    return answers


def run_once(binary, impl, endpoint, workers, args, script):
    rec = {"impl": impl, "endpoint": endpoint, "workers": workers}
    try:
        proc, err, port = start_server(binary, workers)
    except RuntimeError as e:
        return dict(rec, status="failed", error=str(e))
    url = f"http://127.0.0.1:{port}" + (f"/fib/{args.fib}" if endpoint == "fib" else "/wordcount")
    extra = ["-s", script] if endpoint == "wordcount" else []
    base = ["wrk", f"-t{args.wrk_threads}", f"-c{args.connections}", "--latency", *extra]
    try:
        subprocess.run(base + [f"-d{WARMUP_S}s", url], capture_output=True, text=True,
                       timeout=WARMUP_S + 30)
        res = subprocess.run(base + [f"-d{args.seconds:g}s", url], capture_output=True,
                             text=True, timeout=args.seconds + 60)
        alive = proc.poll() is None
    finally:
        code = stop_server(proc)
    err.seek(0)
    server_err = err.read().decode(errors="replace").strip()[-1000:]
    rec.update(parse_wrk(res.stdout), server_exit=code)
    if res.returncode != 0 or "rps" not in rec:
        return dict(rec, status="failed",
                    error=f"wrk exit {res.returncode}: {res.stderr.strip()[-500:]} "
                          f"{res.stdout.strip()[-500:]}" + ("" if alive else " (server died)"))
    if rec["non_2xx"] or rec["socket_errors"]:
        return dict(rec, status="failed", error=f"{rec['non_2xx']} non-2xx answers, "
                    f"{rec['socket_errors']} socket errors; server stderr: {server_err}")
    if code != 0:
        return dict(rec, status="failed", error=f"server exit {code} after SIGTERM: {server_err}")
    return dict(rec, status="ok")


def median_of(runs, impl, endpoint, workers, key):
    vals = [r[key] for r in runs if (r["impl"], r["endpoint"], r["workers"]) ==
            (impl, endpoint, workers) and r["status"] == "ok" and r.get(key) is not None]
    return statistics.median(vals) if vals else None


def table(runs, impls, cases, args):
    header = ["endpoint", "T"] + [f"{LABEL[i]} req/s" for i in impls]
    if "go" in impls and "ours" in impls:
        header += ["ours/Go req/s"]
    header += [f"{LABEL[i]} p99 ms" for i in impls]
    if "go" in impls and "ours" in impls:
        header += ["ours/Go p99"]
    rows = []
    for ep, w in cases:
        rps = {i: median_of(runs, i, ep, w, "rps") for i in impls}
        p99 = {i: median_of(runs, i, ep, w, "p99_ms") for i in impls}
        name = f"/fib/{args.fib}" if ep == "fib" else f"/wordcount {args.body_kib} KiB"
        row = [name, str(w)] + ["–" if rps[i] is None else f"{rps[i]:,.0f}" for i in impls]
        if len(header) > 2 + 2 * len(impls):
            row.append("–" if None in (rps["ours"], rps["go"]) else f"{rps['ours'] / rps['go']:.2f}")
        row += ["–" if p99[i] is None else f"{p99[i]:.2f}" for i in impls]
        if len(header) > 2 + 2 * len(impls):
            row.append("–" if None in (p99["ours"], p99["go"]) else f"{p99['ours'] / p99['go']:.2f}")
        rows.append(row)
    return header, rows




def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build", "release"),
                    help="CMake build dir holding examples/stackless_service (default build/release)")
    ap.add_argument("--workers", type=int_list, default=[1, 2], help="T values (default 1,2)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per server (default 3)")
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds per wrk run (default 5)")
    ap.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    ap.add_argument("--wrk-threads", type=int, default=1, help="wrk -t (default 1)")
    ap.add_argument("--fib", type=int, default=24, help="N of GET /fib/N (default 24)")
    ap.add_argument("--body-kib", type=int, default=4, help="the /wordcount body (default 4 KiB)")
    ap.add_argument("--servers", default=",".join(IMPLS), help="a subset of ours,go")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--out", help="report directory (default <build-dir>/bench-service)")
    args = ap.parse_args()
    if args.reps < 1 or args.seconds < 1 or args.connections < 1 or args.wrk_threads < 1 \
            or not 0 <= args.fib <= 50 or args.body_kib < 1 or args.body_kib > 1024:
        ap.error("--reps, --connections, --wrk-threads >= 1, --seconds >= 1, --fib in 0..50, "
                 "--body-kib in 1..1024")
    impls = [i for i in args.servers.split(",") if i]
    if unknown := [i for i in impls if i not in IMPLS]:
        ap.error(f"unknown server(s) {unknown}; known: {list(IMPLS)}")
    if shutil.which("wrk") is None:
        sys.exit("error: wrk not found (Debian: apt-get install wrk)")

    build_dir = os.path.abspath(args.build_dir)
    out_dir = args.out or os.path.join(build_dir, "bench-service")
    os.makedirs(out_dir, exist_ok=True)
    failures = []
    binaries = {}
    for impl in impls:
        path = build_go_program(build_dir, GO_SOURCE, GO_NAME, failures) if impl == "go" \
            else find_binary(build_dir, OURS)
        if path:
            binaries[impl] = path
        elif impl == "ours":
            sys.exit(f"error: {OURS} not found under {build_dir} (build the target "
                     "stackless_service: tools/dev build --release)")
    body = make_body(args.body_kib)
    body_path = os.path.join(out_dir, "wordcount_body.txt")
    with open(body_path, "wb") as f:
        f.write(body)
    script = os.path.join(out_dir, "wordcount.lua")
    wrk_script(script, body_path)
    answers = check_answers(binaries, args, body, failures)
    if failures:
        return report_failures(failures)

    cases = [(ep, w) for ep in ("fib", "wordcount") for w in args.workers]
    runs = []
    for ep, w in cases:
        for rep in range(args.reps):
            order = impls if rep % 2 == 0 else impls[::-1]
            for impl in order:
                if impl not in binaries:
                    continue
                rec = run_once(binaries[impl], impl, ep, w, args, script)
                rec["rep"] = rep
                runs.append(rec)
                if rec["status"] != "ok":
                    failures.append(f"{impl} {ep} T={w} rep {rep + 1}: {rec['error']}")
                    print(f"!!! FAILED: {failures[-1]}", file=sys.stderr)
                else:
                    print(f"  {ep:<9} T={w} rep {rep + 1}/{args.reps} {impl:<4} "
                          f"{rec['rps']:>10,.0f} req/s  p50 {rec.get('p50_ms') or 0:7.2f} ms  "
                          f"p99 {rec.get('p99_ms') or 0:7.2f} ms", file=sys.stderr)
                time.sleep(0.2)

    title = (f"Requests per second and p99 latency (medians of {args.reps} runs of "
             f"`wrk -t{args.wrk_threads} -c{args.connections} -d{args.seconds:g}s --latency` "
             f"after {WARMUP_S} s of warm-up). ours/Go > 1 in req/s: ours is faster; < 1 in p99: "
             "ours answers sooner.")
    notes = (f"T: ours options.workers, Go GOMAXPROCS. wrk shares the machine's {os.cpu_count()} "
             "CPUs with the server. /wordcount's answer: "
             f"{answers.get('ours', answers.get('go', (None, (None, {}))))[1][1].get('words')} "
             "words.")
    tab = table(runs, impls, cases, args)
    print(title + "\n\n" + (markdown_table if args.markdown else text_table)(*tab) + "\n")
    print(notes)
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "host": platform.node(), "machine": platform.platform(), "cpus": os.cpu_count(),
            "reps": args.reps, "seconds": args.seconds, "connections": args.connections,
            "wrk_threads": args.wrk_threads, "fib": args.fib, "body_bytes": len(body),
            "workers": args.workers, "binaries": binaries}
    medians = {f"{ep}/{w}": {i: {k: median_of(runs, i, ep, w, k) for k in ("rps", "p50_ms",
                                                                              "p99_ms")}
                             for i in impls} for ep, w in cases}
    with open(os.path.join(out_dir, "bench_service.json"), "w") as f:
        json.dump({"meta": meta, "runs": runs, "medians": medians, "failures": failures}, f,
                  indent=1)
    with open(os.path.join(out_dir, "bench_service.md"), "w") as f:
        f.write(f"# the compute service: stackless vs Go ({meta['date']}, {meta['machine']}, "
                f"{meta['cpus']} CPUs)\n\n{title}\n\n{markdown_table(*tab)}\n\n{notes}\n")
    print(f"\nwrote {out_dir}/bench_service.json, bench_service.md")
    return report_failures(failures)


if __name__ == "__main__":
    sys.exit(main())
