#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tools/make_corpus.py — a deterministic text corpus for stackless-wordcount (tools/dev demo).

    tools/make_corpus.py --out DIR [--mb 200] [--files 64] [--seed 1] [--zipf 1.1] [--force]

Writes --files text files of --mb megabytes (10^6 bytes) in all into DIR, in nested directories
(DIR/part-00/text-000.txt, ...), plus two binary files (DIR/binary/: random bytes, and text with
a NUL in its first kilobyte) that the tool must skip. The text is lines of words drawn from a
Zipf distribution (exponent --zipf) over the words of /usr/share/dict/words (Debian: wamerican)
made only of ASCII letters, ranked in an order shuffled by the seed; each line starts with a
capital and ends with a full stop. File sizes vary (log-uniform over two decades), so there are
big files that the tool reads in many chunks and small ones that share one.

The same arguments and the same dictionary give byte-identical files (Python's random with a
fixed seed). The parameters are written to DIR.stamp (beside DIR, not in it: every file in DIR is
input); when the stamp matches, nothing is written again (--force regenerates). The files are
made in DIR.tmp and renamed, so an interrupted run leaves no half corpus behind.
"""

import argparse
import itertools
import json
import math
import os
import random
import re
import shutil
import sys

DICT = "/usr/share/dict/words"
WORDS_PER_LINE = 12
BATCH = 1 << 16  # words drawn per random.choices() call


def load_words(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            words = [w for w in f.read().split() if re.fullmatch(r"[A-Za-z]+", w)]
    except FileNotFoundError:
        sys.exit(f"make_corpus: {path} not found (Debian: apt-get install wamerican)")
    return sorted(set(words))


def file_sizes(rng, files, total):
    """files sizes, log-uniform over two decades, that add up to total bytes."""
    raw = [math.exp(rng.uniform(0, math.log(100))) for _ in range(files)]
    scale = total / sum(raw)
    sizes = [max(1, int(r * scale)) for r in raw]
    sizes[-1] += total - sum(sizes)
    return sizes


def write_text(f, rng, tokens, cum, per_word, size):
    """Writes lines of Zipf-drawn words to f, size bytes exactly (the final word may be cut).
    tokens are the words with a space after them; per_word is their mean length, weighted."""
    written = 0
    while written < size:
        k = min(BATCH, int((size - written) / per_word * 1.02) + WORDS_PER_LINE)
        batch = rng.choices(tokens, cum_weights=cum, k=k)
        batch[0::WORDS_PER_LINE] = [w[:1].upper() + w[1:] for w in batch[0::WORDS_PER_LINE]]
        ends = slice(WORDS_PER_LINE - 1, None, WORDS_PER_LINE)
        batch[ends] = [w[:-1] + ".\n" for w in batch[ends]]
        data = "".join(batch).encode("ascii")
        if written + len(data) > size:
            data = data[:size - written]
        f.write(data)
        written += len(data)


def generate(out, args):
    rng = random.Random(args.seed)
    words = load_words(args.dict)
    rng.shuffle(words)  # the rank order: frequent words are not the alphabet's first
    weights = [1.0 / (k ** args.zipf) for k in range(1, len(words) + 1)]
    cum = list(itertools.accumulate(weights))
    per_word = sum(w * (len(t) + 1) for w, t in zip(weights, words)) / cum[-1]
    tokens = [w + " " for w in words]
    total = int(args.mb * 1_000_000)
    sizes = file_sizes(rng, args.files, total)
    for i, size in enumerate(sizes):
        d = os.path.join(out, f"part-{i // 16:02d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"text-{i:03d}.txt"), "wb") as f:
            write_text(f, rng, tokens, cum, per_word, size)
    d = os.path.join(out, "binary")
    os.makedirs(d)
    with open(os.path.join(d, "random.bin"), "wb") as f:
        f.write(bytes(rng.getrandbits(8) for _ in range(64 * 1024)) + b"\0")
    with open(os.path.join(d, "text-with-nul.txt"), "wb") as f:
        f.write(b"These words are not counted: the file holds a NUL byte\0 early on.\n" * 100)
    return len(words)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="the corpus directory")
    ap.add_argument("--mb", type=float, default=200, help="megabytes of text (default 200)")
    ap.add_argument("--files", type=int, default=64, help="text files (default 64)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent s (default 1.1)")
    ap.add_argument("--dict", default=DICT, help=f"word list (default {DICT})")
    ap.add_argument("--force", action="store_true", help="regenerate even if the stamp matches")
    args = ap.parse_args()
    if args.mb <= 0 or args.files < 1:
        ap.error("--mb must be positive and --files at least 1")

    out = os.path.abspath(args.out.rstrip("/"))
    stamp = out + ".stamp"
    st = os.stat(args.dict) if os.path.exists(args.dict) else None
    params = {"mb": args.mb, "files": args.files, "seed": args.seed, "zipf": args.zipf,
              "dict": args.dict, "dict_size": st.st_size if st else None, "version": 1}
    if not args.force and os.path.isdir(out) and os.path.exists(stamp):
        with open(stamp) as f:
            try:
                if json.load(f) == params:
                    print(f"make_corpus: {out} is up to date ({args.mb:g} MB, {args.files} files)")
                    return
            except ValueError:
                pass
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    n = generate(tmp, args)
    shutil.rmtree(out, ignore_errors=True)
    if os.path.exists(stamp):
        os.remove(stamp)
    os.rename(tmp, out)
    with open(stamp, "w") as f:
        json.dump(params, f)
        f.write("\n")
    print(f"make_corpus: wrote {out}: {args.files} text files, {args.mb:g} MB, "
          f"Zipf s={args.zipf:g} over {n} words of {args.dict}, seed {args.seed}; 2 binary files")


if __name__ == "__main__":
    main()
