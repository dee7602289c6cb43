"""Verified images: `veneer pack` appends a dm-verity hash tree and a footer,
`veritysetup` and `unsquashfs` accept the result, `veneer verify` checks an
image offline, and a mount serves only bytes that match the tree: a damaged
block gives EIO (and a log line naming the image and the offset) for the
reads that touch it, while everything else still reads right.
"""
import errno
import os
import re
import struct
import subprocess

import pytest

from conftest import rd, wfile

pytestmark = pytest.mark.timeout(120)

BLOCK = 4096
FOOTER = struct.Struct("<32sQQII8s")


def make_tree(env, name="tree"):
    src = env.mkdir(name)
    wfile(os.path.join(src, "small.txt"), b"small file\n" * 10)
    # incompressible-ish text well over one squashfs block, so that it has
    # whole data blocks of its own
    wfile(os.path.join(src, "big.txt"),
          b"".join(b"line %08d %d\n" % (i, i * 7919 % 100003) for i in range(60000)))
    os.makedirs(os.path.join(src, "dir"))
    for i in range(40):
        wfile(os.path.join(src, "dir", f"f{i:02d}"), f"file {i}\n".encode())
    os.symlink("small.txt", os.path.join(src, "link"))
    return src


def veneer_pack(env, src, img, *extra):
    r = env.veneer("pack", *extra, src, "-o", img)
    assert r.returncode == 0, r.stderr
    return r.stdout


def footer(img):
    with open(img, "rb") as f:
        f.seek(-FOOTER.size, os.SEEK_END)
        root, hash_offset, tree_end, version, _, magic = FOOTER.unpack(f.read(FOOTER.size))
    assert magic == b"VNVERITY" and version == 1
    return root.hex(), hash_offset, tree_end


def packed(env, name="img.sqfs"):
    """A tree packed with a hash tree; returns (src, img, hex root)."""
    src = make_tree(env, name + ".src")
    img = env.path(name)
    out = veneer_pack(env, src, img)
    last = out.strip().splitlines()[-1]
    m = re.fullmatch(r"digest: sha256:([0-9a-f]{64})", last)
    assert m, out
    return src, img, m.group(1)


# ---- pack ----

def test_pack_appends_a_tree_veritysetup_accepts(env):
    src, img, root = packed(env)
    froot, hash_offset, tree_end = footer(img)
    assert froot == root
    assert hash_offset % BLOCK == 0 and os.path.getsize(img) == tree_end + FOOTER.size
    r = subprocess.run(["veritysetup", "verify", img, img, root, f"--hash-offset={hash_offset}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # a wrong root is rejected by the same check
    bad = ("0" if root[0] != "0" else "1") + root[1:]
    r = subprocess.run(["veritysetup", "verify", img, img, bad, f"--hash-offset={hash_offset}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0


def test_packed_image_still_reads_as_squashfs(env):
    src, img, _ = packed(env)
    out = env.path("out")
    r = subprocess.run(["unsquashfs", "-d", out, "-no-progress", img], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for rel in ("small.txt", "big.txt", "dir/f07"):
        assert rd(os.path.join(out, rel)) == rd(os.path.join(src, rel))
    r = env.veneer("ls", img, "/dir")
    assert r.returncode == 0 and "f39" in r.stdout, r.stderr


def test_pack_is_reproducible_and_no_tree_is_plain(env):
    src = make_tree(env)
    a, b, c = env.path("a.sqfs"), env.path("b.sqfs"), env.path("c.sqfs")
    da = veneer_pack(env, src, a).strip().splitlines()[-1]
    db = veneer_pack(env, src, b).strip().splitlines()[-1]
    assert da == db and rd(a) == rd(b)
    out = veneer_pack(env, src, c, "--no-tree")
    assert "digest:" not in out
    _, hash_offset, _ = footer(a)
    assert rd(c) == rd(a)[:hash_offset]
