#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tools/bench_ab.py — ours against ours: two builds of stackless side by side, same run.

    tools/bench_ab.py --old OLD_BUILD_DIR --new NEW_BUILD_DIR [--workloads w1,w2] [--reps K] [--quick]

For a change that must not make anything slower (a refactoring): every workload of
tools/bench.py (the same sizes; --quick: the smaller ones) runs with workers 1 and 2, the old
build's stackless_bench and the new one's alternately K times (so the drifts of a noisy machine
hit both alike), and the table shows the median ns per op of each and new/old (above 1: the new
build is slower). Lateness workloads compare their p99. Exits non-zero if a run failed.

    tools/bench_ab.py --old OLD --new NEW --instructions [--workloads w1,w2]

counts instructions instead (valgrind's callgrind, every thread, one run per build at workers 1
and the --quick size; --instructions-n N overrides it): stable where a VM's times are not, for
the single-worker paths (spawn, yield, park/wake, channels, mutex). The counts include the
program's start-up (~2.5 M instructions), the same for both builds.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (tools/bench.py: the workloads, their sizes and the runner)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True, help="build dir of the old version (STACKLESS_BUILD_BENCH=ON)")
    ap.add_argument("--new", required=True, help="build dir of the new version")
    ap.add_argument("--workloads", default=",".join(bench.WORKLOADS))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="the smaller sizes of --quick")
    ap.add_argument("--instructions", action="store_true",
                    help="callgrind instruction counts at workers 1 instead of times")
    ap.add_argument("--instructions-n", type=int, default=0, help="the size for --instructions")
    args = ap.parse_args()
    bins = {}
    for label, d in (("old", args.old), ("new", args.new)):
        b = bench.find_binary(d, "stackless_bench")
        if not b:
            sys.exit(f"bench_ab: no stackless_bench under {d}")
        bins[label] = b
    if args.instructions:
        return instructions(bins, args)
    failures = []
    rows = []
    for w in args.workloads.split(","):
        if w not in bench.WORKLOADS:
            sys.exit(f"bench_ab: unknown workload {w!r}")
        n = bench.WORKLOADS[w][1 if args.quick else 0]
        for t in bench.workers_of(w):
            got = {"old": [], "new": []}
            for _ in range(args.reps):
                for label in ("old", "new"):
                    rec = bench.run_once(bins[label], "stackless", w, t, n)
                    if rec["status"] == "failed":
                        failures.append(f"{label} {w} T={t}: {rec.get('error')}")
                    elif rec["status"] == "ok":
                        got[label].append(rec.get("p99_ns", rec["ns_per_op"]))
            if not got["old"] or not got["new"]:
                continue
            mo, mn = statistics.median(got["old"]), statistics.median(got["new"])
            rows.append((w, t, n, mo, mn, mn / mo if mo else float("nan")))
            print(f"{w:12} T={t} n={n:<9} old {mo:12.1f}  new {mn:12.1f}  new/old {mn / mo:5.3f}",
                  flush=True)
    print()
    print("| workload | T | n | old ns/op (p99 ns for lateness) | new | new/old |")
    print("|---|---|---|---|---|---|")
    for w, t, n, mo, mn, r in rows:
        print(f"| {w} | {t} | {n} | {mo:.1f} | {mn:.1f} | {r:.3f} |")
    for f in failures:
        print("FAILED:", f, file=sys.stderr)
    return 1 if failures else 0


def count_instructions(binary, workload, n):
    """Instructions of one run at workers 1 under callgrind (all threads), or None."""
    proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                           binary, workload, "1", str(n)], capture_output=True, text=True)
    m = re.search(r"Collected : (\d+)", proc.stderr)
    return int(m.group(1)) if proc.returncode == 0 and m else None


def instructions(bins, args):
    skip = {"sleep", "preempt", "preempt_hard", "hog", "hog_q0", "pingpong_x"}  # time, not work
    print("| workload | n | old instructions | new | new/old |")
    print("|---|---|---|---|---|")
    failed = False
    for w in args.workloads.split(","):
        if w not in bench.WORKLOADS:
            sys.exit(f"bench_ab: unknown workload {w!r}")
        if w in skip or 1 not in bench.workers_of(w):
            continue
        # chain keeps n stacks mapped at once, two mappings each: valgrind runs out of
        # segments past a few thousand.
        n = args.instructions_n or (2000 if w == "chain" else bench.WORKLOADS[w][1])
        old, new = (count_instructions(bins[k], w, n) for k in ("old", "new"))
        if old is None or new is None:
            print(f"| {w} | {n} | {old} | {new} | (a run failed under valgrind) |")
            failed = True
            continue
        print(f"| {w} | {n} | {old} | {new} | {new / old:.3f} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
