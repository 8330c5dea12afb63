#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tools/bench_submit.py — the submit round trip (the "Embedding" issue, part 1): a plain thread
submits work, it runs on the runtime's threads, the result comes back; p50/p99 of ours against
std::async, a oneTBB task_arena and a Boost.Asio io_context, and against this machine's futex
round trip.

    tools/bench_submit.py [--build-dir build/release] [--reps 3] [--n 20000] [--warmup 2000]
                          [--workers 1,2] [--markdown] [--out DIR]

The programs (built by CMake with -DSTACKLESS_BUILD_BENCH=ON, as `tools/dev bench` does; this
script builds nothing and takes them from --build-dir): stackless_submit_rtt (bench/
submit_rtt.cpp: ours, `scheduler::submit(f).get()`; the futex floor; std::async with
std::launch::async, which starts a thread per call), peer_submit_tbb (bench/peers/tbb/
submit_tbb.cpp: task_arena(T, 0)::enqueue + std::promise) and peer_submit_asio (bench/peers/
asio/submit_asio.cpp: asio::post of a std::packaged_task to an io_context run by T threads).
Each prints one JSON line (bench/submit_rtt.hpp): p50, p99, mean and max µs of n round trips
made back to back from main after an untimed warm-up. A missing peer binary shows as "–".

Every variant runs --reps times, in the opposite order on every other repetition (slow drifts of
a shared machine hit everyone alike); the table gives the median of the runs' p50, p99 and mean,
the voluntary context switches per round trip of the whole process (getrusage; the warm-up's
included), and the ratios ours/this (ours at the same T; for the variants without T, ours at
T=1 / T=2). Then the targets of docs/BENCHMARKS.md — p50 <= 1.5x the futex round trip of the
same run, and below every peer's p50 — and whether this run met them. It writes
<out>/bench_submit.json (every run and the medians) and <out>/bench_submit.md. Only the standard
library is used.
"""
import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys

from bench import (find_binary, fmt_ratio, int_list, markdown_table, report_failures,
                   text_table)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 300
FUTEX_TARGET = 1.5  # ours' p50 <= this x the futex round trip's p50
KEYS = ("p50_us", "p99_us", "mean_us", "max_us")
# impl -> (label, executable, variant argument, takes T). Ours first; the floor last.
IMPLS = {
    "ours": ("ours: submit().get()", "stackless_submit_rtt", "submit", True),
    "async": ("std::async (a thread per call)", "stackless_submit_rtt", "async", False),
    "tbb": ("oneTBB arena.enqueue + promise", "peer_submit_tbb", "enqueue", True),
    "asio": ("Boost.Asio post(packaged_task)", "peer_submit_asio", "post", True),
    "futex": ("futex round trip (floor)", "stackless_submit_rtt", "futex", False),
}
PEERS = ("async", "tbb", "asio")


def variants(workers):
    """[(impl, T or None)] in run order."""
    out = []
    for impl, (_label, _exe, _var, takes_t) in IMPLS.items():
        out += [(impl, t) for t in workers] if takes_t else [(impl, None)]
    return out


def run_once(binary, impl, t, args):
    """One run; a record with status ok / failed."""
    rec = {"impl": impl, "workers": t}
    argv = [binary, IMPLS[impl][2], "--n", str(args.n), "--warmup", str(args.warmup)]
    if t is not None:
        argv += ["--workers", str(t)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return dict(rec, status="failed", error=f"timed out after {TIMEOUT_S} s")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    trips = args.n + args.warmup
    rec["nvcsw_per_rt"] = (after.ru_nvcsw - before.ru_nvcsw) / trips
    rec["nivcsw_per_rt"] = (after.ru_nivcsw - before.ru_nivcsw) / trips
    if proc.returncode != 0:
        return dict(rec, status="failed",
                    error=f"exit code {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    try:
        line = json.loads(proc.stdout.strip().splitlines()[-1])
        rec.update({k: float(line[k]) for k in KEYS})
    except (IndexError, KeyError, ValueError) as e:
        return dict(rec, status="failed", error=f"no valid JSON line ({e}): {proc.stdout!r}")
    return dict(rec, status="ok")


def median_of(runs, impl, t, key):
    vals = [r[key] for r in runs if r["impl"] == impl and r["workers"] == t and r["status"] == "ok"]
    return statistics.median(vals) if vals else None


def fmt_us(x):
    if x is None:
        return "–"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def ratio(a, b):
    return a / b if a is not None and b else None


def table(med, workers):
    """Header and rows: one row per variant."""
    header = ["variant", "T", "p50 µs", "p99 µs", "mean µs", "csw/rt",
              "ours/this p50", "ours/this p99"]
    rows = []
    for impl, t in variants(workers):
        m = med[(impl, t)]
        if impl == "ours":
            r50 = r99 = ""
        elif t is not None:
            r50 = fmt_ratio(ratio(med[("ours", t)]["p50_us"], m["p50_us"]))
            r99 = fmt_ratio(ratio(med[("ours", t)]["p99_us"], m["p99_us"]))
        else:  # no T: against ours at each T
            r50 = " / ".join(fmt_ratio(ratio(med[("ours", w)]["p50_us"], m["p50_us"]))
                             for w in workers)
            r99 = " / ".join(fmt_ratio(ratio(med[("ours", w)]["p99_us"], m["p99_us"]))
                             for w in workers)
        csw = m["nvcsw_per_rt"]
        rows.append([IMPLS[impl][0], "–" if t is None else str(t), fmt_us(m["p50_us"]),
                     fmt_us(m["p99_us"]), fmt_us(m["mean_us"]),
                     "–" if csw is None else f"{csw:.2f}", r50, r99])
    return header, rows


def targets(med, workers, present):
    """[(text, met or None)] for each T: p50 <= 1.5x futex, p50 below every peer's p50."""
    out = []
    futex = med[("futex", None)]["p50_us"]
    for t in workers:
        ours = med[("ours", t)]["p50_us"]
        r = ratio(ours, futex)
        out.append((f"T={t}: p50 {fmt_us(ours)} µs <= {FUTEX_TARGET}x futex ({fmt_us(futex)} µs): "
                    f"ours/futex = {fmt_ratio(r)}", None if r is None else r <= FUTEX_TARGET))
        for p in PEERS:
            if p not in present:
                out.append((f"T={t}: below {IMPLS[p][0]}: not measured (no binary)", None))
                continue
            pt = t if IMPLS[p][3] else None
            peer = med[(p, pt)]["p50_us"]
            r = ratio(ours, peer)
            out.append((f"T={t}: p50 below {IMPLS[p][0]}"
                        f"{'' if pt is None else f' T={pt}'} ({fmt_us(peer)} µs): "
                        f"ours/peer = {fmt_ratio(r)}", None if r is None else r < 1))
    return out




def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build", "release"),
                    help="CMake build dir holding bench/stackless_submit_rtt (default "
                         "build/release)")
    ap.add_argument("--reps", type=int, default=3, help="runs per variant (default 3)")
    ap.add_argument("--n", type=int, default=20_000, help="timed round trips per run")
    ap.add_argument("--warmup", type=int, default=2_000, help="untimed round trips first")
    ap.add_argument("--workers", type=int_list, default=[1, 2], help="T values (default 1,2)")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--out", help="report directory (default <build-dir>/bench-submit)")
    args = ap.parse_args()
    if args.reps < 1 or args.n < 100 or args.warmup < 0:
        ap.error("--reps >= 1, --n >= 100, --warmup >= 0")

    build_dir = os.path.abspath(args.build_dir)
    out_dir = args.out or os.path.join(build_dir, "bench-submit")
    os.makedirs(out_dir, exist_ok=True)
    failures = []
    binaries = {}
    for impl, (_label, exe, _var, _t) in IMPLS.items():
        path = find_binary(build_dir, exe)
        if path:
            binaries[impl] = path
        elif exe == "stackless_submit_rtt":
            sys.exit(f"error: {exe} not found under {build_dir} (build the target: cmake --build "
                     f"{args.build_dir} --target stackless_submit_rtt peer_submit_tbb "
                     "peer_submit_asio)")
        else:
            print(f"note: {exe} not found under {build_dir}: {IMPLS[impl][0]} shows –",
                  file=sys.stderr)

    cases = [c for c in variants(args.workers) if c[0] in binaries]
    runs = []
    for rep in range(args.reps):
        for impl, t in (cases if rep % 2 == 0 else cases[::-1]):
            rec = run_once(binaries[impl], impl, t, args)
            rec["rep"] = rep
            runs.append(rec)
            name = f"{impl}{'' if t is None else f' T={t}'}"
            if rec["status"] != "ok":
                failures.append(f"{name} rep {rep + 1}: {rec['error']}")
                print(f"!!! FAILED: {failures[-1]}", file=sys.stderr)
            else:
                print(f"  rep {rep + 1}/{args.reps} {name:<10} p50 {rec['p50_us']:8.2f} µs  "
                      f"p99 {rec['p99_us']:9.2f} µs  mean {rec['mean_us']:8.2f} µs  "
                      f"csw/rt {rec['nvcsw_per_rt']:.2f}", file=sys.stderr)

    med = {(i, t): {k: median_of(runs, i, t, k) for k in KEYS + ("nvcsw_per_rt",)}
           for i, t in variants(args.workers)}
    title = (f"Submit round trip from one plain thread: median over {args.reps} runs of each "
             f"run's p50 / p99 / mean of {args.n:,} round trips (after {args.warmup:,} untimed). "
             "ours/this < 1: ours is faster.")
    notes = ("T: ours options.workers; oneTBB task_arena(T, 0) (T worker threads); Asio threads "
             "running the io_context. csw/rt: voluntary context switches of the whole process "
             "per round trip. std::async and the futex ping-pong have no T; their ratio cells "
             "are ours at T=" + " / T=".join(map(str, args.workers)) + ".")
    tab = table(med, args.workers)
    goals = targets(med, args.workers, binaries)
    goal_lines = [f"- {'MET' if ok else 'MISSED' if ok is False else 'UNKNOWN'}: {text}"
                  for text, ok in goals]
    print("\n" + title + "\n\n" + (markdown_table if args.markdown else text_table)(*tab) + "\n")
    print(notes + "\n\nTargets (docs/BENCHMARKS.md):\n" + "\n".join(goal_lines))
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "host": platform.node(), "machine": platform.platform(), "cpus": os.cpu_count(),
            "load_avg": os.getloadavg(), "reps": args.reps, "n": args.n, "warmup": args.warmup,
            "workers": args.workers, "binaries": binaries}
    with open(os.path.join(out_dir, "bench_submit.json"), "w") as f:
        json.dump({"meta": meta, "runs": runs,
                   "medians": {f"{i}/{'-' if t is None else t}": v for (i, t), v in med.items()},
                   "targets": [{"target": text, "met": ok} for text, ok in goals],
                   "failures": failures}, f, indent=1)
    with open(os.path.join(out_dir, "bench_submit.md"), "w") as f:
        f.write(f"# submit round trip ({meta['date']}, {meta['machine']}, {meta['cpus']} CPUs)"
                f"\n\n{title}\n\n{markdown_table(*tab)}\n\n{notes}\n\nTargets:\n\n"
                + "\n".join(goal_lines) + "\n")
    print(f"\nwrote {out_dir}/bench_submit.json, bench_submit.md")
    return report_failures(failures)


if __name__ == "__main__":
    sys.exit(main())
