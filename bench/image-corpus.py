#!/usr/bin/env python3
"""Writes the corpus of the image benchmarks (verify-cost.sh,
remote-image.sh) into DIR: big.bin, BIG_MIB MiB half random (stored
uncompressed) and half text (compressed), and small/, SMALL_N small files.

Usage: image-corpus.py DIR BIG_MIB SMALL_N
"""
import os
import sys

top, mib, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(os.path.join(top, "small"), exist_ok=True)
with open(os.path.join(top, "big.bin"), "wb") as f:
    for i in range(mib):
        f.write(os.urandom(1 << 19))
        f.write(b"".join(b"line %08d of chunk %d\n" % (j, i) for j in range(20000))[:1 << 19])
for i in range(n):
    with open(os.path.join(top, "small", f"f{i:05d}"), "wb") as f:
        f.write((f"file {i} " * (i % 300 + 10)).encode())
