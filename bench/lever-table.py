#!/usr/bin/env python3
"""The lever table of the config suite: one row per workload, one column per
veneer lever (and the peers), each cell the ratio to native of the medians
over every round in the given raw files, with the median itself.

    bench/lever-table.py [--n 5000] RAW.txt [RAW.txt ...]

RAW files are bench/run-config.sh's raw.txt (one line per target and round:
target, round, create s, unlink s, tar -x s, grep -r cold s, grep -r warm s,
rm -rf s, git clone s, rm -rf clone s).  Several runs of the same targets
may be pooled; targets missing from them are left out.
"""
import argparse
import statistics

WORKLOADS = [  # title, raw column after the round, per file (µs) or whole (s)
    ("create+write+close, µs/file", 0, True),
    ("unlink, µs/file", 1, True),
    ("`tar -x`, s", 2, False),
    ("`grep -r` cold, s", 3, False),
    ("`grep -r` warm (first stat after cold reads), s", 4, False),
    ("`rm -rf` of the tree, s", 5, False),
    ("`git clone`, s", 6, False),
    ("`rm -rf` of the clone, s", 7, False),
]
TARGETS = [
    ("passthrough_ll", "passthrough_ll (harness)"),
    ("passthrough_ll-multi", "passthrough_ll-multi"),
    ("veneer-inplace-skip-kpoff", "no lever"),
    ("veneer-inplace-skip", "killpriv (default)"),
    ("veneer-inplace-send-kpoff", "opens sent, no lever"),
    ("veneer-inplace-pt", "passthrough"),
    ("veneer-inplace-skip-kpoff-uring", "io_uring"),
    ("veneer-inplace-skip-uring", "killpriv + io_uring"),
    ("veneer-inplace-pt-uring", "passthrough + io_uring"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000, help="files of create/unlink (N)")
    ap.add_argument("raw", nargs="+")
    a = ap.parse_args()
    rounds = {}
    for path in a.raw:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) >= 4 and not line.startswith("#"):
                    rounds.setdefault(p[0], []).append([float(x) for x in p[2:]])
    if "native" not in rounds:
        raise SystemExit("no native rounds in " + " ".join(a.raw))
    targets = [t for t in TARGETS if t[0] in rounds]

    def median(t, i):
        v = [r[i] for r in rounds[t] if len(r) > i]
        return statistics.median(v) if v else None

    print("| workload | native | " + " | ".join(name for _, name in targets) + " |")
    print("|---|---|" + "---|" * len(targets))
    for title, i, per_file in WORKLOADS:
        scale, digits = (1e6 / a.n, 1) if per_file else (1, 2)
        nm = median("native", i)
        if nm is None:
            continue
        cells = []
        for t, _ in targets:
            m = median(t, i)
            cells.append("-" if not m else f"{nm / m:.2f}× ({m * scale:.{digits}f})")
        print(f"| {title} | {nm * scale:.{digits}f} | " + " | ".join(cells) + " |")
    print()
    print("Rounds: " + ", ".join(f"{t} {len(v)}" for t, v in rounds.items()) + ".")


if __name__ == "__main__":
    main()
