#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tests/wordcount/test_wordcount.py — stackless-wordcount's command line, end to end.

    test_wordcount.py path/to/stackless-wordcount

Builds a small tree in a temporary directory — text files with known words (upper case, digits,
'_', UTF-8, punctuation), a 2.5 MB file that the tool reads in several chunks (so words meet
chunk ends), one word longer than a whole chunk, an empty file, a binary file, a nested
directory, a symbolic link (not followed), and, unless running as root, an unreadable file —
and checks, for --workers 1 and 2, each reducer layout and the combiner on and off, that --json
gives exactly the totals and the top 10 that Python computes with the same rules
(tools/wordcount/words.hpp). Then the exit statuses: 1 for a named path that is missing or
unreadable (the results still printed), 2 for bad flags (the message names the flag); the text
report; and --compare with its SVG chart. CTest runs it (tests/CMakeLists.txt).
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

WORD = re.compile(rb"[A-Za-z0-9_]+")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}", file=sys.stderr)


def run(tool, *args):
    p = subprocess.run([tool, *args], capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def make_tree(root):
    """The tree; returns the contents of the text files the tool must count."""
    texts = {
        "a.txt": b"Hello hello HELLO world foo_bar 42 x\n",
        "sub/b.txt": "world, World! the the the; café naïve\n".encode(),
        "sub/deeper/c.md": b"THE_END the-end the\tend\r\nend",
        "empty.txt": b"",
        # Lines of words of different lengths, so that chunk ends (1 MiB) fall inside words.
        "sub/deeper/big.txt": b"alpha beta gamma delta epsilon zeta eta theta iota kappa\n" * 45000,
        # One word longer than a whole chunk, between two short ones.
        "long.txt": b"before " + b"Z" * (1536 * 1024) + b" after\n",
    }
    for name, data in texts.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    with open(os.path.join(root, "sub", "image.bin"), "wb") as f:
        f.write(b"GIF89a\x00\x01 hello hello hello hello hello hello hello\n")
    os.symlink("a.txt", os.path.join(root, "link-to-a.txt"))
    return texts


def expected(texts, top=10):
    counts = {}
    for data in texts.values():
        for w in WORD.findall(data):
            w = w.lower().decode()
            counts[w] = counts.get(w, 0) + 1
    best = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].encode()))[:top]
    return {
        "files": len(texts),
        "bytes": sum(len(d) for d in texts.values()),
        "words": sum(counts.values()),
        "distinct": len(counts),
        "skipped": 1,
        "top": [{"word": w, "count": n} for w, n in best],
    }


def same(got, want, what):
    for key, value in want.items():
        check(got.get(key) == value, f"{what}: {key} is {got.get(key)!r}, expected {value!r}")


def main():
    tool = sys.argv[1]
    root_user = os.geteuid() == 0
    with tempfile.TemporaryDirectory(prefix="stackless-wordcount-test-") as tmp:
        tree = os.path.join(tmp, "tree")
        texts = make_tree(tree)
        want = expected(texts)
        locked = os.path.join(tree, "sub", "locked.txt")
        if not root_user:  # root reads it anyway: the case cannot be made
            with open(locked, "wb") as f:
                f.write(b"secret words\n")
            os.chmod(locked, 0)

        # Every layout gives the same, exact answer.
        for workers in ("1", "2"):
            for reducers in ("partitions:1", "partitions:7", "per-key"):
                for combiner in ("on", "off"):
                    what = f"--workers {workers} --reducers {reducers} --combiner {combiner}"
                    rc, out, err = run(tool, "--workers", workers, "--reducers", reducers,
                                       "--combiner", combiner, "--json", tree)
                    check(rc == 0, f"{what}: exit status {rc}, stderr {err!r}")
                    try:
                        got = json.loads(out)
                    except ValueError:
                        check(False, f"{what}: not JSON: {out!r}")
                        continue
                    same(got, want, what)
                    check(got.get("workers") == int(workers), f"{what}: workers {got.get('workers')}")
                    check(got.get("reducers") == reducers, f"{what}: reducers {got.get('reducers')}")
                    check(isinstance(got.get("seconds"), float), f"{what}: seconds")
                    check(got.get("unreadable") == (0 if root_user else 1), f"{what}: unreadable")
                    if not root_user:
                        check("locked.txt" in err, f"{what}: the unreadable file is not named: {err!r}")

        # --top K.
        rc, out, _ = run(tool, "--top", "3", "--json", tree)
        check(rc == 0 and json.loads(out)["top"] == want["top"][:3], "--top 3")

        # A named path that is missing: reported, the rest counted, exit status 1.
        missing = os.path.join(tmp, "no-such-file.txt")
        rc, out, err = run(tool, "--json", tree, missing)
        check(rc == 1, f"missing path: exit status {rc}, expected 1")
        check("no-such-file.txt" in err, f"missing path: not named on stderr: {err!r}")
        try:
            same(json.loads(out), want, "missing path")
        except ValueError:
            check(False, f"missing path: results not printed: {out!r}")
        if not root_user:
            rc, out, err = run(tool, "--json", locked, os.path.join(tree, "a.txt"))
            check(rc == 1, f"unreadable named file: exit status {rc}, expected 1")
            check("locked.txt" in err, f"unreadable named file: not named: {err!r}")
            check(json.loads(out).get("files") == 1, "unreadable named file: the other not counted")

        # Bad usage: exit status 2, the flag named.
        for args, flag in ((["--bogus", tree], "--bogus"), (["--workers", "zero", tree], "--workers"),
                           (["--workers", "0", tree], "--workers"),
                           (["--reducers", "buckets", tree], "--reducers"),
                           (["--reducers", "partitions:0", tree], "--reducers"),
                           (["--combiner", "maybe", tree], "--combiner"), (["--top"], "--top"),
                           (["--json=yes", tree], "--json"), (["--chart", "x.svg", tree], "--chart")):
            rc, out, err = run(tool, *args)
            check(rc == 2, f"{args}: exit status {rc}, expected 2")
            check(flag in err, f"{args}: the message does not name {flag}: {err!r}")
        rc, _, err = run(tool)
        check(rc == 2 and "PATH" in err, f"no path: exit status {rc}, {err!r}")
        rc, out, _ = run(tool, "--help")
        check(rc == 0 and "usage:" in out, "--help")

        # The text report names the top word and the totals.
        rc, out, _ = run(tool, "--workers", "2", tree)
        check(rc == 0 and "alpha" in out and f"{want['words']:,}" in out, f"text report: {out!r}")

        # --compare: the runs agree, a table, and a chart that is well-formed SVG.
        chart = os.path.join(tmp, "compare.svg")
        rc, out, err = run(tool, "--compare", "--workers", "2", "--chart", chart, tree)
        check(rc == 0, f"--compare: exit status {rc}, {err!r}")
        check("speedup" in out and chart in out, f"--compare: no table or chart line: {out!r}")
        try:
            svg = ET.parse(chart).getroot()
            check(svg.tag.endswith("svg"), "--compare: the chart is not SVG")
            text = " ".join(t.text or "" for t in svg.iter() if t.tag.endswith("text"))
            for part in ("workers", "speedup", "ideal", "Machine", "Input"):
                check(part in text, f"--compare: the chart lacks '{part}'")
        except (OSError, ET.ParseError) as e:
            check(False, f"--compare: chart: {e}")
        rc, out, _ = run(tool, "--compare", "--workers", "2", "--json", "--chart", chart, tree)
        try:
            got = json.loads(out)
            same(got, want, "--compare --json")
            check([r["workers"] for r in got.get("compare", [])] == [1, 2], "--compare --json runs")
        except ValueError:
            check(False, f"--compare --json: not JSON: {out!r}")

    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("stackless-wordcount: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
