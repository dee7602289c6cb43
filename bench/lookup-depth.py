#!/usr/bin/env python3
"""Lookup cost by depth in a merged tree: depth 2 against depth 60.

Builds a real chain of 60 directories and an image holding the same chain
(so every level is a merged directory), mounts veneer in place with the
image attached at "/", and times lookups of names the kernel does not know
yet, whose ancestors it has cached: from a working directory at depth 2
and at depth 60, each name is stat()ed once with a relative path, so each
call is one FUSE LOOKUP.  Two kinds of names: real files (the real lookup
wins) and missing names (the real lookup fails, then every covering layer
is asked).  Rounds alternate the depths; the median per-lookup time of
each is reported, with the ratio.  Timings stay here; tests never assert
them.

    sudo bench/lookup-depth.py [--veneer build/veneer] [--names 2000] [--rounds 7]

Needs root (in-place mount), mksquashfs and /dev/fuse.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

DEPTH = 60
LEVEL = "d%02d"


def chain(n):
    return [LEVEL % i for i in range(n)]


def build(tmp, names, rounds):
    lower = os.path.join(tmp, "lower")
    src = os.path.join(tmp, "layer")
    deep = os.path.join(lower, *chain(DEPTH))
    os.makedirs(deep)
    os.makedirs(os.path.join(src, *chain(DEPTH)))
    for depth in (2, DEPTH):
        d = os.path.join(lower, *chain(depth))
        v = os.path.join(src, *chain(depth))
        for r in range(rounds):
            for i in range(names):
                open(os.path.join(d, "r%d-f%d" % (r, i)), "w").close()
        for i in range(50):       # something to merge at the measured levels
            open(os.path.join(v, "virtual%d" % i), "w").close()
    img = os.path.join(tmp, "layer.sqfs")
    subprocess.run(["mksquashfs", src, img, "-noappend", "-quiet", "-no-progress"],
                   check=True, capture_output=True)
    return lower, img


def mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def time_lookups(cwd, names):
    """Seconds per stat() of each name, relative to CWD (ancestors cached)."""
    os.chdir(cwd)
    t0 = time.perf_counter()
    for n in names:
        try:
            os.stat(n)
        except FileNotFoundError:
            pass
    dt = time.perf_counter() - t0
    os.chdir("/")
    return dt / len(names)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--veneer", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                     "veneer"))
    ap.add_argument("--names", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    args.veneer = os.path.abspath(args.veneer)     # before any chdir
    tmp = tempfile.mkdtemp(prefix="veneer-lookup-depth-")
    lower, img = build(tmp, args.names, args.rounds)
    proc = subprocess.Popen([args.veneer, "mount", "-f", "--layer",
                             img + ":/", lower], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not mounted(lower):
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit("veneer did not mount")
            time.sleep(0.02)
        cwd = {d: os.path.join(lower, *chain(d)) for d in (2, DEPTH)}
        for d in cwd.values():        # warm the ancestors and the directories' stacks
            os.listdir(d)
            os.stat(os.path.join(d, "virtual0"))
        res = {(d, k): [] for d in cwd for k in ("real", "missing")}
        for r in range(args.rounds):
            order = (2, DEPTH) if r % 2 == 0 else (DEPTH, 2)
            for d in order:
                real = ["r%d-f%d" % (r, i) for i in range(args.names)]
                missing = ["r%d-m%d" % (r, i) for i in range(args.names)]
                res[(d, "real")].append(time_lookups(cwd[d], real))
                res[(d, "missing")].append(time_lookups(cwd[d], missing))
        print("veneer: %s" % args.veneer)
        print("%d names per round, %d rounds, median microseconds per lookup"
              % (args.names, args.rounds))
        for k in ("real", "missing"):
            a = statistics.median(res[(2, k)]) * 1e6
            b = statistics.median(res[(DEPTH, k)]) * 1e6
            print("%-8s depth 2: %7.1f us   depth %d: %7.1f us   ratio %.2f"
                  % (k, a, DEPTH, b, b / a))
    finally:
        os.chdir("/")
        subprocess.run([args.veneer, "umount", lower], capture_output=True)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not mounted(lower):
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
