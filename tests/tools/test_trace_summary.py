#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tests/tools/test_trace_summary.py TEST_TRACE_BINARY TRACE_SUMMARY — tools/trace-summary on a real trace.

Runs the TraceSample test of test_trace (tests/runtime/test_trace.cpp) with STACKLESS_TRACE set,
so that its two schedulers write <dir>/sample.json and <dir>/sample.1.json, then runs
tools/trace-summary on the first and checks that its report names the workload's tasklets, its
park reasons and its sections. Exit status 0 when every check holds.
"""
import os
import subprocess
import sys
import tempfile


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    binary, summary = sys.argv[1], sys.argv[2]
    failures = []
    with tempfile.TemporaryDirectory(prefix="stackless-trace-summary-") as d:
        trace = os.path.join(d, "sample.json")
        env = dict(os.environ, STACKLESS_TRACE=trace)
        r = subprocess.run([binary, "--gtest_filter=TraceSample.*"], env=env, capture_output=True,
                           text=True, timeout=600)
        if r.returncode != 0:
            sys.exit(f"test_trace failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        for p in (trace, os.path.join(d, "sample.1.json")):
            if not os.path.exists(p):
                failures.append(f"STACKLESS_TRACE did not produce {p}")
        r = subprocess.run([sys.executable, summary, trace], capture_output=True, text=True, timeout=300)
        out = r.stdout
        print(out)
        if r.returncode != 0:
            failures.append(f"trace-summary exited {r.returncode}: {r.stderr}")
        for needle in ("pinger", "ponger", "sleeper", "forker", "(unnamed) @ test_trace.cpp",
                       "test-door", "join", "sleep", "per tasklet name", "top blocking objects",
                       "steals per worker", "longest run slices", "dropped events: 0",
                       "stackless scheduler 'sample'"):
            if needle not in out:
                failures.append(f"the summary does not mention {needle!r}")
        r = subprocess.run([sys.executable, summary, "--help"], capture_output=True, text=True, timeout=60)
        if r.returncode != 0 or "usage" not in r.stdout:
            failures.append("trace-summary --help failed")
    for f in failures:
        print("FAILED:", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
