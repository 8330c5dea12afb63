#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tools/bench.py — run the comparison workloads on stackless and on every peer, and compare.

    tools/bench.py --build-dir build/release [--quick] [--workloads chain,pingpong] [--reps K] [--out DIR]

Each program (bench/workloads.cpp and bench/peers/*) takes `<workload> <workers> <n>` and prints
one line `RESULT workload=... impl=... workers=... n=... total_ms=... ns_per_op=... check=...`;
exit code 2 means "this workload is not applicable here". For every workload and workers in
{1, 2}, this script runs ours and every peer alternately K times (so slow drifts of a noisy
machine hit everyone alike), takes the median ns_per_op of each, and prints a table of ratios
ours/peer measured in the same run (< 1: we are faster); for the workloads whose whole run is the
figure of merit (chain) it also prints the median total ms, and for the lateness workloads
(sleep, preempt, preempt_hard: their RESULT lines carry p50_ns / p99_ns / max_ns) a table of the
median p50 and p99 lateness in µs with the ratio ours/peer of p99. The preemption workloads add
two tables: ours' preemption counters (optional RESULT fields soft_preemptions=,
hard_preemptions=, ...) and the quantum's throughput cost, hog / hog_q0 (ours with quantum 1 ms
and 0; the two run interleaved, and selecting one selects both). It writes <out>/bench.json
(every raw run and the medians), <out>/bench.md (the tables) and <out>/bench.svg: three panels —
ours / best peer per throughput workload and T, the lateness workloads' p99 (ours and the best
peer), and the speedup time(T=1) / time(T=2) of ours and every peer — captioned with the date,
the machine and the sizes (svg_chart()).

A run that fails (exit code other than 0 and 2, a timeout, or a wrong check value) is reported
loudly, and the script exits non-zero at the end. A peer whose binary is missing shows as "–".
Only the standard library is used.
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import textwrap

# name: (n of the full suite, n of --quick, what one "op" of ns_per_op is). The order is the
# default order of the runs and of the table; chain, the headline (the Stackless vs Go "100,000
# tasklets" benchmark), comes first, in --quick (tools/dev demo) too, and keeps its full size there.
WORKLOADS = {
    "chain": (100_000, 100_000, "one tasklet of a line of n, created, passed a value through "
              "rendezvous channels (total time incl. creation / n)"),
    "spawn": (1_000_000, 200_000, "one tasklet spawned and joined"),
    "yield": (10_000_000, 1_000_000, "one yield (a switch), on one worker"),
    "pingpong": (1_000_000, 100_000, "one round trip over two rendezvous channels, two tasklets"),
    "pingpong_x": (100_000, 20_000, "one round trip as in pingpong, the two sides on different "
                   "OS threads (cross-thread wake-up); T=2 only"),
    "fib": (27, 22, "one spawn of fib(n), every call above n < 2 spawns"),
    "skynet": (1_000_000, 100_000, "one spawn of a 10-way tree of n leaves"),
    "mpmc_c1": (1_000_000, 200_000, "one item through one buffered channel of capacity 1, "
                "4 producers, 4 consumers"),
    "mpmc_c64": (1_000_000, 200_000, "one item through one buffered channel of capacity 64, "
                 "4 producers, 4 consumers"),
    "mpmc_c1024": (1_000_000, 200_000, "one item through one buffered channel of capacity 1024, "
                   "4 producers, 4 consumers"),
    "mutex": (1_000_000, 200_000, "one lock; ++counter; unlock by one of 8 tasklets sharing one "
              "mutex and one counter (n divisible by 8)"),
    "mutex_tp": (1_000_000, 200_000, "as mutex; ours with mutex_policy::throughput (Go's "
                 "sync.Mutex rules), the peers with the same mutex as in `mutex`"),
    "sleep": (2_000, 300, "NOT a time per op: the p99 lateness (ns) of one 1 ms sleep, one "
              "tasklet sleeping n times in a row on an otherwise idle scheduler"),
    # The preemption group (issue 6) adds ~2 min to the full suite (5 reps): ~95 s for preempt
    # and preempt_hard together, nearly all of it Go's (~20 ms a period: 200 periods + a
    # 20-period warm-up = 4.4 s a run, x 2 T x 5 reps x 2 workloads; ours ~0.4 s a run), and
    # ~30 s for hog + hog_q0 (~1.1 s a run at T=1). --quick: ~10 s in all.
    "preempt": (200, 50, "NOT a time per op: the p99 lateness (ns) of one 1 ms sleep of a "
                "periodic tasklet while T CPU hogs (one per worker) spin; ours: quantum 1 ms, the "
                "hogs call checkpoint() every ~350 ns (soft preemption)"),
    "preempt_hard": (200, 50, "as preempt, but ours' hogs spin inside this_tasklet::preemptible "
                     "and never call the runtime (hard preemption, by signal); Go: the same "
                     "program as preempt"),
    "hog": (3_000_000, 600_000, "one unit (~350 ns of register arithmetic) of n, done by 2T hogs "
            "(two per worker, taking turns), nothing else runs; ours: checkpoint() after each "
            "unit, quantum 1 ms"),
    "hog_q0": (3_000_000, 600_000, "as hog, ours with quantum 0 (no preemption, no monitor "
               "thread): hog / hog_q0 is the quantum's cost; no peer"),
}
# Workloads that are defined on fixed workers only (the programs force it; the other T is not run).
ONLY_WORKERS = {"pingpong_x": (2,)}
# Workloads that are always run together, interleaved (per repetition and T, in alternating
# order), because a ratio between them is the figure of merit: selecting one selects all.
PAIRED = (("hog", "hog_q0"),)
# Workloads whose total time is shown too (in ms), next to ns per op.
SHOW_TOTAL_MS = ("chain",)
# What differs between implementations, printed under the table when one of its workloads runs.
NOTES = {
    ("pingpong_x",): "pingpong_x forces the sides apart: ours pins side 0 (this_tasklet::atomic) "
                  "and holds its worker until side 1, spawned from the main thread afterwards, has "
                  "started on the other worker and pinned itself (thread ids checked); Go: "
                  "LockOSThread in both goroutines (GOMAXPROCS 2); Boost.Fiber: two std::threads, "
                  "each its own round_robin scheduler with one fiber.",
    ("mpmc_c1", "mpmc_c64", "mpmc_c1024"): "mpmc: Boost.Fiber's buffered_channel needs a power-of-2 capacity >= 2 and holds "
               "capacity - 1 values, so it runs with capacity 2 / 64 / 1024, holding 1 / 63 / 1023 "
               "values; Go and ours hold exactly 1 / 64 / 1024.",
    ("mutex", "mutex_tp"): "mutex: ours stackless::mutex with its default policy (fair: FIFO hand-off, "
                "a lock convoy under contention) and, in mutex_tp, mutex_policy::throughput (Go's "
                "rules: barging, FIFO hand-off after a waiter waited 1 ms); Go sync.Mutex, Boost.Fiber boost::fibers::mutex "
                "(8 fibers on the work_stealing team), std::thread 8 threads on one std::mutex "
                "(pinned to T CPUs); oneTBB: not applicable.",
    ("sleep",): "sleep: ns_per_op is the p99 lateness of a 1 ms sleep on an idle scheduler "
                "(lateness = wake-up time - (start + 1 ms), steady clock); see the lateness "
                "table for p50. Boost.Fiber at T=2: its work_stealing threads spin while idle "
                "(suspend = false, as in every fiber workload) instead of blocking until the "
                "deadline; at T=1 it runs on round_robin (work_stealing(1) spins forever once "
                "its ready queue is empty), which blocks on a condition variable. std::thread: "
                "std::this_thread::sleep_for on the main thread.",
    ("preempt", "preempt_hard"): "preempt, preempt_hard: ns_per_op is the p99 lateness of the "
                "periodic tasklet's 1 ms sleep (as in sleep) while one CPU hog per worker spins; "
                "the clock starts once every hog runs. Ours: options::quantum = 1 ms; preempt's "
                "hogs call this_tasklet::checkpoint() every unit, preempt_hard's run inside "
                "this_tasklet::preemptible with no call at all (only the signal can switch "
                "them). Go: one program for both (GOMAXPROCS hogs, no checkpoint: sysmon "
                "preempts a goroutine after 10 ms, by signal). Boost.Fiber, oneTBB, std::thread: "
                "not applicable (no preemption in a user-level scheduler; std::thread is not "
                "run). hog ns/unit in the preemption table: wall time x T / units the hogs did "
                "meanwhile (~350 when every hog had a CPU to itself).",
    ("hog", "hog_q0"): "hog: two hogs per worker, no other work, n units in total; ours' hogs "
                "call checkpoint() after every unit in both hog (quantum 1 ms: the two hogs of a "
                "worker take turns every quantum) and hog_q0 (quantum 0, no monitor thread: each "
                "runs to its end), so hog / hog_q0 (the quantum-cost table: the median of the "
                "per-repetition ratios) is what preemption costs, switches and all; target <= "
                "1.02. Go: the same loop without checkpoint (its 10 ms preemption); no hog_q0.",
}
MPMC_PRODUCERS = 4
# Optional fields of a RESULT line, kept in the run's record when present (the lateness
# workloads print them; their ns_per_op is p99_ns).
LATENESS_FIELDS = ("p50_ns", "p99_ns", "max_ns")
# Counts per run from getrusage (see run_once()): key -> struct rusage field. The tables give
# them per operation (count / n): what a noisy or slower machine does not change.
COUNTS = {"minflt": "ru_minflt", "nvcsw": "ru_nvcsw", "nivcsw": "ru_nivcsw"}
# Optional counters of the preemption workloads (ours: the scheduler's stats() over the timed
# run; hog_ns_per_unit from ours and Go), kept in the run's record when present.
PREEMPT_FIELDS = ("soft_preemptions", "hard_preemptions", "preempt_signals", "preempt_refused",
                  "hog_ns_per_unit")
PREEMPT_WORKLOADS = ("preempt", "preempt_hard", "hog", "hog_q0")
# Column order; ours first. impl -> executable name in the build directory.
IMPLS = {"stackless": "stackless_bench", "go": "peer_go", "fiber": "peer_fiber",
         "tbb": "peer_tbb", "threads": "peer_threads"}
LABEL = {"stackless": "ours", "go": "Go", "fiber": "Boost.Fiber", "tbb": "oneTBB",
         "threads": "std::thread"}
WORKERS = (1, 2)
TIMEOUT_S = 120
NOT_APPLICABLE = 2
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def expected_check(workload, n):
    """The check value a correct run prints (the programs verify it too)."""
    if workload in ("spawn", "chain", "pingpong", "pingpong_x", "mutex", "mutex_tp", "sleep",
                    "preempt", "preempt_hard", "hog", "hog_q0"):
        # mutex: the counter (n is a multiple of 8, the programs check); sleep, preempt*: sleeps;
        # hog*: units of work
        return n
    if workload == "yield":
        return n // 2 * 2
    if workload == "fib":
        a, b = 0, 1
        for _ in range(n):
            a, b = b, a + b
        return a
    if workload == "skynet":
        return n * (n - 1) // 2
    if workload.startswith("mpmc_"):
        per = n // MPMC_PRODUCERS  # each producer sends 1..per
        return MPMC_PRODUCERS * (per * (per + 1) // 2)
    raise ValueError(workload)


def workers_of(workload):
    """The values of T a workload runs with."""
    return ONLY_WORKERS.get(workload, WORKERS)


def find_binary(build_dir, name):
    """The path of executable `name` under build_dir (bench/ first), or None."""
    for cand in (os.path.join(build_dir, "bench", name), os.path.join(build_dir, name)):
        if os.access(cand, os.X_OK) and os.path.isfile(cand):
            return cand
    for root, _dirs, files in os.walk(build_dir):
        if name in files and os.access(os.path.join(root, name), os.X_OK):
            return os.path.join(root, name)
    return None


def build_go_peer(build_dir, failures):
    """Builds bench/peers/go/peer.go into <build_dir>/peer_go; returns its path or None."""
    return build_go_program(build_dir, os.path.join("bench", "peers", "go", "peer.go"), "peer_go",
                            failures)


def build_go_program(build_dir, source, name, failures):
    """Builds the Go program `source` (a path under the repository) into <build_dir>/<name>
    outside any module (GO111MODULE=off, caches under build_dir), as build_go_peer() does;
    returns its path, or None (no `go`: a note; a failed build: appended to failures)."""
    go = shutil.which("go")
    if go is None:
        print(f"note: `go` not found, {name} is skipped", file=sys.stderr)
        return None
    out = os.path.join(build_dir, name)
    env = dict(os.environ, GO111MODULE="off",
               GOCACHE=os.path.join(build_dir, "go-cache"),
               GOPATH=os.path.join(build_dir, "go-path"))
    proc = subprocess.run([go, "build", "-o", out, os.path.join(REPO, source)], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        failures.append(f"building {source} failed:\n{proc.stderr.strip()}")
        return None
    return out


def run_once(binary, impl, workload, workers, n):
    """Runs one program once; returns a record with status ok / n/a / failed."""
    rec = {"impl": impl, "workload": workload, "workers": workers, "n": n}
    # The child's resource use: RUSAGE_CHILDREN before and after (runs are sequential, so the
    # difference is this program's). Its start-up is included (a few hundred page faults for
    # every program, ours and the peers', negligible per operation at these sizes).
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        proc = subprocess.run([binary, workload, str(workers), str(n)],
                              capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return dict(rec, status="failed", error=f"timed out after {TIMEOUT_S} s")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for key, field in COUNTS.items():
        rec[key] = getattr(after, field) - getattr(before, field)
    rec["returncode"] = proc.returncode
    if proc.returncode == NOT_APPLICABLE and not proc.stdout.strip():
        return dict(rec, status="n/a")
    fields = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            fields = dict(re.findall(r"(\w+)=(\S+)", line))
    err = proc.stderr.strip()[-2000:]
    if proc.returncode != 0:
        how = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
               else f"exit code {proc.returncode}")
        return dict(rec, status="failed", error=f"{how}: {err}")
    try:
        rec.update(total_ms=float(fields["total_ms"]), ns_per_op=float(fields["ns_per_op"]),
                   check=int(fields["check"]))
        for key in LATENESS_FIELDS + PREEMPT_FIELDS:
            if key in fields:
                rec[key] = float(fields[key])
    except (KeyError, ValueError):
        return dict(rec, status="failed", error=f"no valid RESULT line: {proc.stdout!r} {err}")
    want = expected_check(workload, n)
    if rec["check"] != want:
        return dict(rec, status="failed", error=f"check {rec['check']} != expected {want}")
    return dict(rec, status="ok")


# --- formatting -------------------------------------------------------------------------------

def fmt_ns(x):
    if x is None:
        return "–"
    if x >= 1000:
        return f"{x:,.0f}"
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def fmt_ratio(x):
    if x is None:
        return "–"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}" if x >= 0.01 else f"{x:.1g}"  # 0.003, not 0.00


def ratio(a, b):
    return a / b if a is not None and b else None


def pair(a, b):
    """Two values of one impl (T=1, T=2) in one cell."""
    return f"{a} / {b}"


def build_table(medians, impls, workloads, ns, failed):
    """Header and rows (lists of strings) of the comparison table: ours in three columns, then
    per peer one cell of times (T=1 / T=2) and one of ratios ours/peer (T=1 / T=2). A time that
    could not be measured because every run failed shows as FAIL."""
    def cell(w, i, t):
        v = medians[w][i].get(t)
        return "FAIL" if v is None and (w, i, t) in failed else fmt_ns(v)

    header = ["workload", "n", "ours T=1", "ours T=2", "speedup"]
    peers = [i for i in impls if i != "stackless"]
    for p in peers:
        header += [f"{p} T=1 / T=2", f"ours/{p}"]
    rows = []
    for w in workloads:
        m = medians[w]
        o1, o2 = m["stackless"].get(1), m["stackless"].get(2)
        speed = ratio(o1, o2)
        row = [w, f"{ns[w]:,}", cell(w, "stackless", 1), cell(w, "stackless", 2),
               "–" if speed is None else f"{speed:.2f}x"]
        for p in peers:
            p1, p2 = m[p].get(1), m[p].get(2)
            if p1 is None and p2 is None and not {(w, p, 1), (w, p, 2)} & failed:
                row += ["–", "–"]
            else:
                row += [pair(cell(w, p, 1), cell(w, p, 2)),
                        pair(fmt_ratio(ratio(o1, p1)), fmt_ratio(ratio(o2, p2)))]
        rows.append(row)
    return header, rows


def total_table(totals, impls, workloads, ns):
    """Header and rows of the total-time table (median total ms, T=1 / T=2 per impl that has a
    value), for the workloads in SHOW_TOTAL_MS; None if there is none."""
    shown = [w for w in workloads if w in SHOW_TOTAL_MS]
    if not shown:
        return None
    impls = [i for i in impls if i == "stackless" or any(totals[w][i] for w in shown)]
    def ms(v):
        return "–" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.1f}")
    header = ["total ms", "n"] + [f"{LABEL[i]} T=1 / T=2" for i in impls]
    rows = [[w, f"{ns[w]:,}"] + [pair(ms(totals[w][i].get(1)), ms(totals[w][i].get(2)))
                                 for i in impls] for w in shown]
    return header, rows


def lateness_medians(runs, impls, workloads):
    """{workload: {impl: {T: {"p50": µs, "p99": µs, "max": µs}}}}, medians over the ok runs that
    carry lateness fields, for the workloads that have any such run."""
    out = {}
    for w in workloads:
        per_impl = {}
        for i in impls:
            for t in WORKERS:
                ok = [r for r in runs if (r["workload"], r["impl"], r["workers"]) == (w, i, t)
                      and r["status"] == "ok" and "p50_ns" in r]
                if ok:
                    per_impl.setdefault(i, {})[t] = {
                        k: statistics.median(r[f"{k}_ns"] for r in ok if f"{k}_ns" in r) / 1000
                        for k in ("p50", "p99", "max") if any(f"{k}_ns" in r for r in ok)}
        if per_impl:
            out[w] = per_impl
    return out


def lateness_table(late, impls, not_applicable=frozenset()):
    """Header and rows of the lateness table (median p50 / p99 in µs per impl and T, then the
    ratio ours/peer of p99), or None if no workload carried lateness fields. An impl that said
    "not applicable" for a workload shows n/a."""
    if not late:
        return None
    shown = [i for i in impls if i == "stackless" or any(i in late[w] for w in late)]
    peers = [i for i in shown if i != "stackless"]
    def us(v):
        return "–" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.1f}")
    def get(w, i, t, k):
        return late[w].get(i, {}).get(t, {}).get(k)
    header = (["lateness p50 / p99 (µs)", "T"] + [LABEL[i] for i in shown]
              + [f"p99 ours/{LABEL[p]}" for p in peers])
    rows = []
    for w in late:
        for t in workers_of(w):
            row = [w, str(t)]
            for i in shown:
                p50, p99 = get(w, i, t, "p50"), get(w, i, t, "p99")
                if p50 is None and p99 is None:
                    row.append("n/a" if (i, w) in not_applicable else "–")
                else:
                    row.append(pair(us(p50), us(p99)))
            ours = get(w, "stackless", t, "p99")
            row += [fmt_ratio(ratio(ours, get(w, p, t, "p99"))) for p in peers]
            rows.append(row)
    return header, rows


def median_field(runs, workload, impl, t, key):
    """The median of `key` over the ok runs of (workload, impl, T) that carry it, or None."""
    vals = [r[key] for r in runs if (r["workload"], r["impl"], r["workers"]) == (workload, impl, t)
            and r["status"] == "ok" and key in r]
    return statistics.median(vals) if vals else None


def preemption_table(runs, workloads):
    """Header and rows of ours' preemption counters (medians per timed run) and the hogs' ns per
    unit (ours / Go) for the preemption workloads that ran, or None."""
    shown = [w for w in workloads if w in PREEMPT_WORKLOADS]
    if not shown:
        return None
    def num(v):
        return "–" if v is None else f"{v:,.0f}"
    header = ["preemption (median per run)", "T", "ours soft", "ours hard", "ours signals",
              "ours refused", "hog ns/unit ours / Go"]
    rows = []
    for w in shown:
        for t in workers_of(w):
            cells = [num(median_field(runs, w, "stackless", t, k)) for k in PREEMPT_FIELDS[:4]]
            per_unit = [median_field(runs, w, i, t, "hog_ns_per_unit") for i in ("stackless", "go")]
            rows.append([w, str(t)] + cells
                        + ["–" if per_unit == [None, None] else pair(*map(num, per_unit))])
    return header, rows


def quantum_cost(runs, workloads):
    """{T: {"hog": ns, "hog_q0": ns, "ratio": median of the per-repetition ratios hog/hog_q0,
    "go": ns}} of ours, when both hog and hog_q0 ran; else {}. The two run interleaved in each
    repetition, so their per-repetition ratio cancels the machine's slow drifts."""
    if not {"hog", "hog_q0"} <= set(workloads):
        return {}
    out = {}
    for t in WORKERS:
        by_rep = {}
        for r in runs:
            if r["impl"] == "stackless" and r["workers"] == t and r["status"] == "ok" \
                    and r["workload"] in ("hog", "hog_q0"):
                by_rep.setdefault(r["rep"], {})[r["workload"]] = r["ns_per_op"]
        ratios = [v["hog"] / v["hog_q0"] for v in by_rep.values() if len(v) == 2 and v["hog_q0"]]
        out[t] = {"hog": median_field(runs, "hog", "stackless", t, "ns_per_op"),
                  "hog_q0": median_field(runs, "hog_q0", "stackless", t, "ns_per_op"),
                  "ratio": statistics.median(ratios) if ratios else None,
                  "go": median_field(runs, "hog", "go", t, "ns_per_op")}
    return out


def quantum_cost_table(cost):
    """Header and rows of the quantum-cost table, or None."""
    if not cost:
        return None
    header = ["quantum cost (ns/unit)", "T", "ours q=1 ms", "ours q=0", "hog / hog_q0",
              "target", "Go"]
    rows = [["hog", str(t), fmt_ns(c["hog"]), fmt_ns(c["hog_q0"]),
             "–" if c["ratio"] is None else f"{c['ratio']:.3f}", "<= 1.02", fmt_ns(c["go"])]
            for t, c in cost.items()]
    return header, rows


def counts_table(runs, impls, workloads, ns, key):
    """Header and rows of a table of `key` (a COUNTS field) per operation: the median over the ok
    runs of count / operations (total_ms / ns_per_op), T=1 / T=2 per impl that has a value; None
    if no run carries it."""
    def per_op(w, i, t):
        # Operations of the run: total time / time per op (not n: fib's n is its argument).
        ok = [r[key] / (r["total_ms"] * 1e6 / r["ns_per_op"]) for r in runs
              if (r["workload"], r["impl"], r["workers"]) == (w, i, t) and r["status"] == "ok"
              and key in r and r["ns_per_op"] > 0]
        return statistics.median(ok) if ok else None
    def fmt(v):
        return "–" if v is None else (f"{v:.3g}" if v >= 0.001 else f"{v:.1e}" if v else "0")
    cells = {(w, i, t): per_op(w, i, t) for w in workloads for i in impls for t in WORKERS}
    impls = [i for i in impls if any(cells[(w, i, t)] is not None
                                     for w in workloads for t in WORKERS)]
    if not impls:
        return None
    header = [f"{key} per op", "n"] + [f"{LABEL[i]} T=1 / T=2" for i in impls]
    rows = [[w, f"{ns[w]:,}"] + [pair(fmt(cells[(w, i, 1)]), fmt(cells[(w, i, 2)])) for i in impls]
            for w in workloads]
    return header, rows


def run_groups(workloads):
    """The workloads as groups run together: a PAIRED group where its members were selected (at
    the place of the first), every other workload alone."""
    groups, seen = [], set()
    for w in workloads:
        if w in seen:
            continue
        group = next((g for g in PAIRED if w in g), (w,))
        group = tuple(x for x in group if x in workloads)
        seen.update(group)
        groups.append(group)
    return groups


def legend(workloads, reps):
    lines = [f"ns per operation, median of {reps} run(s); lower is better. "
             "speedup = ours T=1 time / ours T=2 time. ours/peer < 1 means we are faster.",
             "T = workers (Go: GOMAXPROCS; Boost.Fiber: work_stealing threads; oneTBB: arena "
             "slots; std::thread: CPUs pinned). yield always runs on one worker, pingpong_x on "
             "two. An operation is:"]
    lines += [f"  {w}: {WORKLOADS[w][2]}" for w in workloads]
    lines += [f"  note: {text}" for names, text in NOTES.items() if set(names) & set(workloads)]
    return lines


def text_table(header, rows):
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    def line(r):
        return "  ".join(c.ljust(wd) if i == 0 else c.rjust(wd)
                         for i, (c, wd) in enumerate(zip(r, widths)))
    return "\n".join([line(header), "  ".join("-" * wd for wd in widths)] + [line(r) for r in rows])


def int_list(text, allow_empty=False):
    """An argparse type: a comma-separated list of integers >= 1 (--workers 1,2)."""
    try:
        vals = [int(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}")
    if (not vals and not allow_empty) or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"need integers >= 1: {text!r}")
    return vals


def markdown_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)



def update_readme(path, name, text):
    """Replaces what README.md holds between the lines `<!-- begin generated: NAME -->` and
    `<!-- end generated: NAME -->` with text (bench_wordcount.py --readme uses it): rerunning the
    benchmark regenerates its tables. Fails if the markers are missing."""
    begin, end = f"<!-- begin generated: {name} -->", f"<!-- end generated: {name} -->"
    with open(path) as f:
        doc = f.read()
    i, j = doc.find(begin), doc.find(end)
    if i < 0 or j < i:
        raise SystemExit(f"{path}: no '{begin}' ... '{end}' section to regenerate")
    doc = doc[:i + len(begin)] + "\n" + text.rstrip() + "\n" + doc[j:]
    with open(path, "w") as f:
        f.write(doc)
    print(f"regenerated the '{name}' section of {path}")


def report_failures(failures):
    """Prints the failures (bench_echo.py and bench_wordcount.py use it too); the exit status."""
    if failures:
        print("\n" + "!" * 72 + f"\n{len(failures)} FAILURE(S):", file=sys.stderr)
        for msg in failures:
            print("  - " + msg, file=sys.stderr)
        print("!" * 72, file=sys.stderr)
        return 1
    return 0

def best_peer_ratios(medians, workloads):
    """[(label, ratio ours/best peer, best peer name)] per workload and T; ratio None if unknown."""
    bars = []
    for w in workloads:
        for t in workers_of(w):
            ours = medians[w]["stackless"].get(t)
            peers = [(v.get(t), p) for p, v in medians[w].items() if p != "stackless" and v.get(t)]
            best = min(peers) if peers else None
            bars.append((f"{w} T={t}", ratio(ours, best[0]) if best else None,
                         best[1] if best else None))
    return bars


# --- chart --------------------------------------------------------------------------------------

# Okabe-Ito colours: they stay apart under the common colour-vision deficiencies (red/green do
# not), and every bar carries a marker or its name as text too, so nothing rests on colour alone.
FASTER_COLOR, SLOWER_COLOR, NO_DATA_COLOR = "#0072B2", "#E69F00", "gray"
IMPL_COLOR = {"stackless": "#0072B2", "go": "#009E73", "fiber": "#CC79A7", "tbb": "#56B4E9",
              "threads": "#D55E00"}
PAD = 16  # px around the chart and between panels
# The value texts' white outline (painted under the fill): a gridline or reference line that
# crosses a text does not cut through its digits.
HALO = ' paint-order="stroke" stroke="white" stroke-width="3" stroke-linejoin="round"'


def text_width(s, size=12):
    """The width in px of s in sans-serif at font size `size`, generously estimated: an SVG has
    no font metrics, and DejaVu Sans (what most Linux renderers pick) draws digits ~0.64 em wide;
    over-estimating only widens a margin, under-estimating clips a label."""
    return len(s) * size * 0.64


def xml_text(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def is_lateness(workload):
    """True for the workloads whose ns_per_op is a lateness (the p99 of a 1 ms sleep), not a time
    per op: their description says "NOT a time per op", or is "as X, ..." of such an X
    (preempt_hard). They are compared on the chart's latency panel, not as throughput."""
    desc = WORKLOADS[workload][2]
    if desc.startswith("NOT a time per op"):
        return True
    first = desc.split()[1].strip(",;") if desc.startswith("as ") else None
    return first in WORKLOADS and first != workload and is_lateness(first)


def svg_text(x, y, s, anchor="start", size=12, fill=None, extra=""):
    return (f'<text x="{x:.1f}" y="{y:.1f}"' + (f' text-anchor="{anchor}"' if anchor != "start" else "")
            + (f' font-size="{size}"' if size != 12 else "") + (f' fill="{fill}"' if fill else "")
            + extra + f">{xml_text(s)}</text>")


def triangle(x, y, up, color):
    """A 9 px triangle marker with its left edge at x, centred on y: up (▲) or down (▼). Drawn, not
    a font glyph, so it shows whatever fonts the viewer has."""
    a, b = (y + 4, y - 4) if up else (y - 4, y + 4)
    return f'<polygon points="{x:.1f},{a:.1f} {x + 9:.1f},{a:.1f} {x + 4.5:.1f},{b:.1f}" fill="{color}"/>'


def swatch(x, y, fill, label):
    """A legend entry (a 12 px square, then the label) at x, text baseline y; its right end."""
    return ([f'<rect x="{x:.1f}" y="{y - 10:.1f}" width="12" height="12" fill="{fill}"/>',
             svg_text(x + 17, y, label)], x + 17 + text_width(label) + 14)


def log_ticks(lo_exp, hi_exp, minor):
    """Tick values 10**lo_exp .. 10**hi_exp: every decade, and 2 and 5 times it if minor."""
    ticks = []
    for d in range(lo_exp, hi_exp + 1):
        ticks += [m * 10.0 ** d for m in ((1, 2, 5) if minor else (1,)) if d < hi_exp or m == 1]
    return ticks


def fmt_tick(v):
    return f"{v:,.0f}" if v >= 1 else f"{v:g}"


def throughput_panel(medians, workloads, y0, left, plot_w):
    """Panel 1: ours / best peer (the fastest peer at the same T), ns per op, one bar per workload
    and T on a log scale centred on 1; left (blue, ▼) = ours faster, right (hatched orange, ▲) =
    ours slower. Returns (svg elements, height, rightmost x used)."""
    keys = [(w, t) for w in workloads for t in workers_of(w)]
    bars = best_peer_ratios(medians, workloads)
    known = [r for _, r, _ in bars if r]
    span = max([1.0] + [math.ceil(abs(math.log10(r)) * 2) / 2 for r in known])  # decades each side
    row_h = 22
    mid, scale = left + plot_w / 2, (plot_w / 2) / span
    title = "Throughput: ours / best peer, ns per op at the same T (< 1: ours is faster; log scale)"
    out = [svg_text(PAD, y0 + 14, title, size=14)]
    right = PAD + text_width(title, 14)
    ly, x = y0 + 36, left
    for fill, up, color, what in ((FASTER_COLOR, False, FASTER_COLOR, "ours faster (ratio < 1)"),
                                  ("url(#slower)", True, SLOWER_COLOR, "ours slower (ratio > 1)")):
        out += [f'<rect x="{x:.1f}" y="{ly - 10:.1f}" width="12" height="12" fill="{fill}"/>',
                triangle(x + 17, ly - 4, up, color), svg_text(x + 31, ly, what)]
        x += 31 + text_width(what) + 18
    right = max(right, x)
    top = y0 + 52
    bottom = top + row_h * len(bars)
    lo = -math.floor(span)
    for v in log_ticks(lo, -lo, minor=span <= 1):
        x = mid + math.log10(v) * scale
        out.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{bottom}" '
                   f'stroke="{"black" if v == 1 else "#ddd"}"/>')
        out.append(svg_text(x, bottom + 16, fmt_tick(v) + "×", anchor="middle"))
    for i, ((w, t), (label, r, peer)) in enumerate(zip(keys, bars)):
        y = top + i * row_h
        out.append(svg_text(left - 8, y + 15, label, anchor="end"))
        if not r:
            why = "no data" if medians[w].get("stackless", {}).get(t) is None else "no peer ran"
            out.append(svg_text(mid + 6, y + 15, why, fill=NO_DATA_COLOR))
            right = max(right, mid + 6 + text_width(why))
            continue
        x = mid + math.log10(r) * scale
        faster = r < 1
        out.append(f'<rect x="{min(x, mid):.1f}" y="{y + 4}" width="{max(abs(x - mid), 1):.1f}" '
                   f'height="{row_h - 8}" fill="{FASTER_COLOR if faster else "url(#slower)"}"/>')
        tx = max(x, mid) + 6
        value = f"{fmt_ratio(r)}× vs {LABEL[peer]}"
        out += [triangle(tx, y + 11, not faster, FASTER_COLOR if faster else SLOWER_COLOR),
                svg_text(tx + 13, y + 15, value, extra=HALO)]
        right = max(right, tx + 13 + text_width(value))
    return out, bottom + 24 - y0, right


def latency_panel(medians, workloads, y0, left, plot_w):
    """Panel 2: the lateness workloads, whose ns_per_op is the p99 lateness of a 1 ms sleep: ours
    and the best peer (lowest p99 at the same T) in µs, log scale, lower is better. Returns (svg
    elements, height, rightmost x used)."""
    rows = []  # (label, [(impl, µs)]): ours, then the best peer
    for w in workloads:
        for t in workers_of(w):
            ours = medians[w].get("stackless", {}).get(t)
            peers = [(v[t] / 1000, p) for p, v in medians[w].items() if p != "stackless" and v.get(t)]
            entries = ([("stackless", ours / 1000)] if ours else []) + (
                [(min(peers)[1], min(peers)[0])] if peers else [])
            rows.append((f"{w} T={t}", entries))
    vals = [v for _, e in rows for _, v in e if v > 0]
    lo_exp = math.floor(math.log10(min(vals))) if vals else 0
    hi_exp = max(math.ceil(math.log10(max(vals))) if vals else 1, lo_exp + 1)
    scale = plot_w / (hi_exp - lo_exp)
    def xof(v):
        return left + (math.log10(max(v, 10.0 ** lo_exp)) - lo_exp) * scale
    bar_h, pitch, gap = 10, 13, 10
    title = "Latency: p99 lateness of a 1 ms sleep, µs (lower is better; log scale)"
    out = [svg_text(PAD, y0 + 14, title, size=14)]
    right = PAD + text_width(title, 14)
    ly, x = y0 + 36, left
    for impl in ["stackless"] + sorted({i for _, e in rows for i, _ in e if i != "stackless"},
                                       key=list(IMPLS).index):
        parts, x = swatch(x, ly, IMPL_COLOR[impl],
                          "ours" if impl == "stackless" else f"{LABEL[impl]} (best peer)")
        out += parts
    right = max(right, x)
    top = y0 + 52
    heights = [pitch * max(len(e), 1) + gap for _, e in rows]
    bottom = top + sum(heights)
    for v in log_ticks(lo_exp, hi_exp, minor=hi_exp - lo_exp <= 2):
        x = xof(v)
        out.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{bottom}" stroke="#ddd"/>')
        out.append(svg_text(x, bottom + 16, fmt_tick(v) + " µs", anchor="middle"))
    y = top
    for (label, entries), h in zip(rows, heights):
        out.append(svg_text(left - 8, y + h / 2 + 4, label, anchor="end"))
        if not entries:
            out.append(svg_text(left + 6, y + h / 2 + 4, "no data", fill=NO_DATA_COLOR))
            y += h
            continue
        ours = dict(entries).get("stackless")
        for k, (impl, v) in enumerate(entries):
            by = y + gap / 2 + k * pitch
            x = xof(v)
            out.append(f'<rect x="{left:.1f}" y="{by:.1f}" width="{max(x - left, 1):.1f}" '
                       f'height="{bar_h}" fill="{IMPL_COLOR[impl]}"/>')
            value = f"{LABEL[impl]} {v:,.0f} µs" if v >= 100 else f"{LABEL[impl]} {v:.1f} µs"
            if impl != "stackless" and ours:
                value += f" (ours {fmt_ratio(ours / v)}×)"
            elif impl == "stackless" and len(entries) == 1:
                value += " (no peer ran)"
            out.append(svg_text(x + 6, by + bar_h - 1, value, extra=HALO))
            right = max(right, x + 6 + text_width(value))
        y += h
    return out, bottom + 24 - y0, right


def speedup_panel(medians, workloads, y0, left, plot_w):
    """Panel 3: what a second worker buys, time(T=1) / time(T=2) per op, for ours and every peer
    that ran both, per throughput workload run at both T; 1 = no gain, 2 = ideal on 2 workers.
    Returns (svg elements, height, rightmost x used)."""
    rows = []  # (workload, [(impl, speedup)])
    for w in workloads:
        if not {1, 2} <= set(workers_of(w)):
            continue
        rows.append((w, [(i, v[1] / v[2]) for i, v in medians[w].items() if v.get(1) and v.get(2)]))
    vals = [s for _, e in rows for _, s in e]
    smax = max([2.5] + [math.ceil(s * 2) / 2 for s in vals])
    step = 0.5 if smax <= 5 else (1 if smax <= 10 else 5)
    scale = plot_w / smax
    bar_h, pitch, gap = 10, 13, 10
    title = "Speedup on 2 workers: time(T=1) / time(T=2), ns per op (higher is better)"
    out = [svg_text(PAD, y0 + 14, title, size=14)]
    right = PAD + text_width(title, 14)
    ly, x = y0 + 36, left
    for impl in sorted({i for _, e in rows for i, _ in e}, key=list(IMPLS).index):
        parts, x = swatch(x, ly, IMPL_COLOR[impl], LABEL[impl])
        out += parts
    right = max(right, x)
    top = y0 + 68  # room for the reference lines' labels
    heights = [pitch * max(len(e), 1) + gap for _, e in rows]
    bottom = top + sum(heights)
    for k in range(int(smax / step) + 1):
        x = left + k * step * scale
        out.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{bottom}" stroke="#ddd"/>')
        out.append(svg_text(x, bottom + 16, f"{k * step:g}×", anchor="middle"))
    # The two labels point away from each other (left of 1, right of 2): they never overlap.
    for v, what, anchor, dx in ((1, "no gain: 1× ", "end", -4), (2, " 2×: ideal on 2 workers", "start", 4)):
        x = left + v * scale
        out += [f'<line x1="{x:.1f}" y1="{top - 8}" x2="{x:.1f}" y2="{bottom}" stroke="black" '
                f'stroke-dasharray="{"none" if v == 1 else "4,3"}"/>',
                svg_text(x + dx, top - 10, what.strip(), anchor=anchor)]
        right = max(right, x + dx + (text_width(what) if anchor == "start" else 0))
    y = top
    for (w, entries), h in zip(rows, heights):
        out.append(svg_text(left - 8, y + h / 2 + 4, w, anchor="end"))
        if not entries:
            out.append(svg_text(left + 6, y + h / 2 + 4, "no data", fill=NO_DATA_COLOR))
        for k, (impl, s) in enumerate(entries):
            by = y + gap / 2 + k * pitch
            x = left + s * scale
            out.append(f'<rect x="{left:.1f}" y="{by:.1f}" width="{max(x - left, 1):.1f}" '
                       f'height="{bar_h}" fill="{IMPL_COLOR[impl]}"/>')
            value = f"{LABEL[impl]} {s:.2f}×"
            out.append(svg_text(x + 6, by + bar_h - 1, value, extra=HALO))
            right = max(right, x + 6 + text_width(value))
        y += h
    return out, bottom + 24 - y0, right


def svg_chart(medians, workloads, meta):
    """The chart (bench.svg), panels stacked: throughput (ours / best peer per workload and T),
    latency (the lateness workloads, ours and the best peer in µs), speedup (T=1 / T=2 for ours
    and every peer), then a caption (date, machine, sizes, repetitions; from meta as main()
    writes it into bench.json, so a chart can be redrawn from a bench.json). A panel without
    workloads is left out. Margins come from the longest label and value text: nothing clips."""
    tput = [w for w in workloads if not is_lateness(w)]
    late = [w for w in workloads if is_lateness(w)]
    labels = ([f"{w} T={t}" for w in workloads for t in workers_of(w)] or [""])
    left = PAD + max(text_width(l) for l in labels) + 12
    plot_w = 440
    panels, y, right = [], PAD + 24, 0
    for make, ws in ((throughput_panel, tput), (latency_panel, late), (speedup_panel, tput)):
        if ws:
            out, h, r = make(medians, ws, y, left, plot_w)
            panels += out
            y += h + PAD
            right = max(right, r)
    heading = "stackless vs peers"
    width = math.ceil(max(right, left + plot_w + 50, PAD + text_width(heading, 16)) + PAD)
    quick = meta.get("quick")
    n = meta.get("n", {})
    caption = (f"{meta.get('date', '?')}, {meta.get('host', '?')}: {meta.get('machine', '?')}, "
               f"{meta.get('cpus', '?')} CPUs. {'--quick' if quick else 'Full'} sizes, median of "
               f"{meta.get('reps', '?')} run(s) per program and T (T = workers). n: "
               # a no-break space keeps each "workload n" together when the caption wraps
               + ", ".join(f"{w}\u00a0{n[w]:,}" for w in workloads if w in n) + ".")
    lines = textwrap.wrap(caption, max(40, int((width - 2 * PAD) / text_width("x", 11))))
    height = math.ceil(y + 16 * len(lines) + PAD)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           # The hatching of "ours slower" bars: a second cue besides the colour (and the ▲).
           '<defs><pattern id="slower" patternUnits="userSpaceOnUse" width="6" height="6" '
           f'patternTransform="rotate(45)"><rect width="6" height="6" fill="{SLOWER_COLOR}"/>'
           '<line x1="0" y1="0" x2="0" y2="6" stroke="white" stroke-width="2"/></pattern></defs>',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           svg_text(PAD, PAD + 6, heading, size=16, extra=' font-weight="bold"')]
    out += panels
    out += [svg_text(PAD, y + 12 + 16 * k, line, size=11, fill="#333") for k, line in enumerate(lines)]
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --- main ---------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", required=True, help="CMake build dir with STACKLESS_BUILD_BENCH=ON")
    ap.add_argument("--quick", action="store_true", help="1 rep and smaller n (a smoke test)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset")
    ap.add_argument("--reps", type=int, help="repetitions per program (default 5, --quick 1)")
    ap.add_argument("--out", help="report directory (default <build-dir>/bench-report)")
    args = ap.parse_args()

    build_dir = os.path.abspath(args.build_dir)
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workload(s) {unknown}; known: {list(WORKLOADS)}")
    for group in PAIRED:  # a pair's ratio is the point: one selects the others, right after it
        if set(group) & set(workloads):
            first = min(workloads.index(w) for w in group if w in workloads)
            rest = [w for w in workloads if w not in group]
            workloads = rest[:first] + list(group) + rest[first:]
    reps = args.reps or (1 if args.quick else 5)
    ns = {w: WORKLOADS[w][1 if args.quick else 0] for w in workloads}
    out_dir = args.out or os.path.join(build_dir, "bench-report")
    failures = []

    # Locate the programs. Ours is required; a missing peer is just shown as "–".
    binaries = {}
    for impl, exe in IMPLS.items():
        path = build_go_peer(build_dir, failures) if impl == "go" else find_binary(build_dir, exe)
        if path:
            binaries[impl] = path
        elif impl == "stackless":
            sys.exit(f"error: {exe} not found under {build_dir} (configure with "
                     "-DSTACKLESS_BUILD_BENCH=ON and build it)")
        else:
            print(f"note: {exe} not found, the {LABEL[impl]} column shows –", file=sys.stderr)
    impls = list(IMPLS)  # every column, present or not, so tables always have the same shape

    # Run: repetitions outermost, so every program sees the same conditions on average; the
    # members of a PAIRED group inside each repetition and T, in alternating order.
    runs, not_applicable = [], set()
    for group in run_groups(workloads):
        for rep in range(reps):
            for t in workers_of(group[0]):
                for w in (group if rep % 2 == 0 else group[::-1]):
                    for impl in impls:
                        if impl not in binaries or (impl, w) in not_applicable:
                            continue
                        rec = run_once(binaries[impl], impl, w, t, ns[w])
                        rec["rep"] = rep
                        runs.append(rec)
                        if rec["status"] == "n/a":
                            not_applicable.add((impl, w))
                        elif rec["status"] == "failed":
                            failures.append(f"{impl} {w} workers={t} n={ns[w]}: {rec['error']}")
                            print(f"!!! FAILED: {failures[-1]}", file=sys.stderr)
                        else:
                            print(f"  {w:<12} rep {rep + 1}/{reps} T={t} {impl:<9} "
                                  f"{fmt_ns(rec['ns_per_op']):>9} ns/op", file=sys.stderr)

    medians = {w: {i: {} for i in impls} for w in workloads}
    totals = {w: {i: {} for i in impls} for w in workloads}  # median total_ms
    for w in workloads:
        for i in impls:
            for t in WORKERS:
                ok = [r for r in runs if (r["workload"], r["impl"], r["workers"]) == (w, i, t)
                      and r["status"] == "ok"]
                if ok:
                    medians[w][i][t] = statistics.median(r["ns_per_op"] for r in ok)
                    totals[w][i][t] = statistics.median(r["total_ms"] for r in ok)

    # Report.
    failed = {(r["workload"], r["impl"], r["workers"]) for r in runs if r["status"] == "failed"}
    header, rows = build_table(medians, impls, workloads, ns, failed)
    notes = legend(workloads, reps)
    totals_tab = total_table(totals, impls, workloads, ns)
    late = lateness_medians(runs, impls, workloads)
    late_tab = lateness_table(late, impls, not_applicable)
    preempt_tab = preemption_table(runs, workloads)
    cost = quantum_cost(runs, workloads)
    cost_tab = quantum_cost_table(cost)
    fault_tab = counts_table(runs, impls, workloads, ns, "minflt")
    csw_tab = counts_table(runs, impls, workloads, ns, "nvcsw")
    print(notes[0] + "\n\n" + text_table(header, rows) + "\n" + "\n".join(notes[1:]))
    if totals_tab:
        print("\n" + text_table(*totals_tab))
    if late_tab:
        print("\n" + text_table(*late_tab))
    if preempt_tab:
        print("\n" + text_table(*preempt_tab))
    if cost_tab:
        print("\n" + text_table(*cost_tab))
    for tab in (fault_tab, csw_tab):
        if tab:
            print("\n" + text_table(*tab))
    os.makedirs(out_dir, exist_ok=True)
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "host": platform.node(), "machine": platform.platform(), "cpus": os.cpu_count(),
            "quick": args.quick, "reps": reps, "n": ns, "binaries": binaries,
            "timeout_s": TIMEOUT_S}
    bars = best_peer_ratios(medians, workloads)
    with open(os.path.join(out_dir, "bench.json"), "w") as f:
        json.dump({"meta": meta, "runs": runs,
                   "medians_ns_per_op": {w: {i: {str(t): v for t, v in m.items()}
                                             for i, m in mi.items()} for w, mi in medians.items()},
                   "medians_total_ms": {w: {i: {str(t): v for t, v in m.items()}
                                            for i, m in mi.items()} for w, mi in totals.items()},
                   "medians_lateness_us": {w: {i: {str(t): v for t, v in m.items()}
                                               for i, m in mi.items()} for w, mi in late.items()},
                   "quantum_cost": {str(t): c for t, c in cost.items()},
                   "ours_over_best_peer": [{"label": l, "ratio": r, "peer": p} for l, r, p in bars],
                   "failures": failures}, f, indent=1)
    with open(os.path.join(out_dir, "bench.md"), "w") as f:
        f.write(f"# stackless vs peers ({meta['date']}, {meta['machine']}, {meta['cpus']} CPUs)\n\n"
                + notes[0] + "\n\n" + markdown_table(header, rows) + "\n\n"
                + notes[1] + "\n\n" + "\n".join("- " + l.strip() for l in notes[2:]) + "\n"
                + ("\nMedian total time, ms:\n\n" + markdown_table(*totals_tab) + "\n"
                   if totals_tab else "")
                + ("\nMedian lateness p50 / p99, µs (and ours/peer of p99):\n\n"
                   + markdown_table(*late_tab) + "\n" if late_tab else "")
                + ("\nPreemptions of ours (median per timed run) and the hogs' ns per unit:\n\n"
                   + markdown_table(*preempt_tab) + "\n" if preempt_tab else "")
                + ("\nThe quantum's throughput cost (ours, hog / hog_q0: median of the "
                   "per-repetition ratios):\n\n" + markdown_table(*cost_tab) + "\n"
                   if cost_tab else "")
                + ("\nMinor page faults per operation (getrusage of each program, start-up "
                   "included; median):\n\n" + markdown_table(*fault_tab) + "\n"
                   if fault_tab else "")
                + ("\nVoluntary context switches per operation (getrusage, median):\n\n"
                   + markdown_table(*csw_tab) + "\n" if csw_tab else ""))
    with open(os.path.join(out_dir, "bench.svg"), "w") as f:
        f.write(svg_chart(medians, workloads, meta))
    print(f"\nwrote {out_dir}/bench.json, bench.md, bench.svg")

    return report_failures(failures)


if __name__ == "__main__":
    sys.exit(main())
