"""Verified images: `veneer pack` appends a dm-verity hash tree and a footer,
`veritysetup` and `unsquashfs` accept the result, `veneer verify` checks an
image offline, and a mount serves only bytes that match the tree: a damaged
block gives EIO (and a log line naming the image and the offset) for the
reads that touch it, while everything else still reads right.
"""
import errno
import json
import os
import re
import struct
import subprocess
import threading

import pytest

from conftest import errno_of, rd, wfile

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



def test_kernel_squashfs_reads_a_packed_image(env):
    src, img, _ = packed(env)
    mnt = env.mkdir("kmnt")
    r = subprocess.run(["mount", "-t", "squashfs", "-o", "loop,ro", img, mnt],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0 and os.environ.get("CI") != "true":
        pytest.skip(f"no loop-mounted squashfs here: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    try:
        for rel in ("small.txt", "big.txt", "dir/f39"):
            assert rd(os.path.join(mnt, rel)) == rd(os.path.join(src, rel))
        assert os.readlink(os.path.join(mnt, "link")) == "small.txt"
    finally:
        subprocess.run(["umount", mnt], capture_output=True, timeout=60)

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


# ---- veneer verify ----

def flip(img, off):
    with open(img, "r+b") as f:
        f.seek(off)
        c = f.read(1)[0]
        f.seek(off)
        f.write(bytes([c ^ 0x20]))


def copy(env, img, name):
    out = env.path(name)
    wfile(out, rd(img))
    return out


def test_verify_messages(env):
    src, img, root = packed(env)
    r = env.veneer("verify", img)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == f"digest: sha256:{root}"
    assert env.veneer("verify", "--digest", f"sha256:{root}", img).returncode == 0

    wrong = "f" * 64 if root != "f" * 64 else "e" * 64
    r = env.veneer("verify", "--digest", f"sha256:{wrong}", img)
    assert r.returncode == 1
    assert f"sha256:{root}" in r.stderr and f"sha256:{wrong}" in r.stderr, r.stderr

    r = env.veneer("verify", "--digest", "sha256:12", img)
    assert r.returncode == 2 and "bad digest" in r.stderr

    _, hash_offset, tree_end = footer(img)
    bad = copy(env, img, "bad-data.sqfs")
    flip(bad, 2 * BLOCK + 123)
    r = env.veneer("verify", bad)
    assert r.returncode == 1
    assert f"data block at offset {2 * BLOCK} does not match" in r.stderr, r.stderr
    assert "1 of " in r.stderr

    # the last hash block is the root's level (the levels run from the root down)
    bad = copy(env, img, "bad-tree.sqfs")
    flip(bad, hash_offset + BLOCK + 7)
    r = env.veneer("verify", bad)
    assert r.returncode == 1 and "hash tree mismatch" in r.stderr, r.stderr
    assert f"expected sha256:{root}" in r.stderr

    plain = env.path("plain.sqfs")
    veneer_pack(env, src, plain, "--no-tree")
    r = env.veneer("verify", plain)
    assert r.returncode == 1 and "no hash tree" in r.stderr, r.stderr
    r = env.veneer("verify", "--digest", f"sha256:{root}", plain)
    assert r.returncode == 1 and "no hash tree" in r.stderr, r.stderr


# ---- verified reads in the daemon ----

SB = struct.Struct("<IIIIIHHHHHHQQQQQQQQ")


def sb_field(img, name):
    fields = ("magic inodes mkfs_time block_size fragments compression block_log flags "
              "no_ids s_major s_minor root_inode bytes_used id_table_start "
              "xattr_id_table_start inode_table_start directory_table_start "
              "fragment_table_start lookup_table_start").split()
    with open(img, "rb") as f:
        return dict(zip(fields, SB.unpack(f.read(SB.size))))[name]


class View:
    def __init__(self, env):
        self.env = env
        self.lower = env.mkdir("lower")
        wfile(os.path.join(self.lower, "real.txt"), b"real\n")
        self.mnt = env.mkdir("mnt")
        self.m = env.mount(self.lower, self.mnt)

    def p(self, *parts):
        return os.path.join(self.mnt, *parts)

    def attach(self, img, at, *extra):
        return self.env.veneer("attach", *extra, self.mnt, img, at)

    def status(self):
        r = self.env.veneer("status", "--json", self.mnt)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)


@pytest.fixture
def view(env):
    v = View(env)
    yield v
    assert v.m.proc.poll() is None, "daemon died: " + v.m.log()
    assert rd(v.p("real.txt")) == b"real\n"


def test_verified_image_reads_right(env, view):
    src, img, root = packed(env)
    r = view.attach(img, "/v")
    assert r.returncode == 0, r.stderr
    for rel in ("small.txt", "big.txt", "dir/f00", "dir/f39"):
        assert rd(view.p("v", rel)) == rd(os.path.join(src, rel))
    assert os.readlink(view.p("v", "link")) == "small.txt"
    assert sorted(os.listdir(view.p("v", "dir"))) == [f"f{i:02d}" for i in range(40)]


def test_corrupt_data_block_gives_eio_and_a_log_line(env, view):
    src, img, root = packed(env)
    data = rd(os.path.join(src, "big.txt"))
    # big.txt sorts first: its compressed blocks start right after the
    # 96-byte superblock, so offset 5000 lies in its first block
    flip(img, 5000)
    r = view.attach(img, "/v")
    assert r.returncode == 0, r.stderr
    fd = os.open(view.p("v", "big.txt"), os.O_RDONLY)
    try:
        bs = sb_field(img, "block_size")
        last = (len(data) - 1) // bs * bs
        assert os.pread(fd, bs, last) == data[last:last + bs]
        assert errno_of(lambda: os.pread(fd, 100, 0)) == errno.EIO
        assert errno_of(lambda: os.pread(fd, 100, 0)) == errno.EIO     # still, not cached
    finally:
        os.close(fd)
    assert rd(view.p("v", "small.txt")) == rd(os.path.join(src, "small.txt"))
    assert rd(view.p("v", "dir", "f07")) == b"file 7\n"
    log = view.m.log()
    assert f"{img}: corrupt image: data block at offset 4096 does not match" in log, log


def test_corrupt_metadata_block_gives_eio_only_where_it_is_used(env, view):
    src = env.mkdir("msrc")
    names = [f"n{i:04d}-{i * 7919 % 10007:05d}" for i in range(3000)]
    many = os.path.join(src, "many")
    os.makedirs(many)
    for n in names:
        wfile(os.path.join(many, n), n.encode() * 3)
    wfile(os.path.join(src, "zz_last.txt"), b"last\n")
    img = env.path("meta.sqfs")
    veneer_pack(env, src, img)
    inode_start = sb_field(img, "inode_table_start")
    dir_start = sb_field(img, "directory_table_start")
    root_pos = inode_start + (sb_field(img, "root_inode") >> 16)
    # a 4 KiB block wholly inside the inode table, before the root's
    # metadata block: no file data (fragments lie in front of the table),
    # no directory, not the root
    at = (inode_start + BLOCK - 1) // BLOCK * BLOCK
    assert at + BLOCK <= root_pos < dir_start
    victim = at + 100
    flip(img, victim)
    r = view.attach(img, "/v")
    assert r.returncode == 0, r.stderr
    ok = eio = 0
    for n in names:
        p = view.p("v", "many", n)
        e = errno_of(lambda: rd(p))
        if e == 0:
            assert rd(p) == n.encode() * 3      # never wrong data
            ok += 1
        else:
            assert e == errno.EIO, (n, e)
            eio += 1
    assert eio > 0 and ok > 0, (eio, ok)
    assert rd(view.p("v", "zz_last.txt")) == b"last\n" or \
        errno_of(lambda: rd(view.p("v", "zz_last.txt"))) == errno.EIO
    log = view.m.log()
    assert f"{img}: corrupt image: data block at offset {at} does not match" in log, log



def test_corrupt_hash_block_fails_the_reads_below_it(env, view):
    src = env.mkdir("hsrc")
    rand = os.urandom(1536 * 1024)          # stored uncompressed: 384 data blocks
    wfile(os.path.join(src, "a_rand.bin"), rand)      # sorts first: starts at 96
    wfile(os.path.join(src, "z_small.txt"), b"small\n")
    img = env.path("h.sqfs")
    veneer_pack(env, src, img)
    _, hash_offset, _ = footer(img)
    assert 128 < hash_offset // BLOCK <= 128 * 128   # two levels: the root block, then level 0
    # level 0 starts after the superblock and the root block; its second
    # block holds the hashes of data blocks 128-255: image bytes [512 KiB, 1 MiB)
    bad_block = hash_offset + 3 * BLOCK
    flip(img, bad_block + 40)
    r = view.attach(img, "/h")
    assert r.returncode == 0, r.stderr
    fd = os.open(view.p("h", "a_rand.bin"), os.O_RDONLY)
    try:
        assert os.pread(fd, 4096, 0) == rand[:4096]
        assert errno_of(lambda: os.pread(fd, 4096, 600 * 1024)) == errno.EIO
        assert os.pread(fd, 4096, 1200 * 1024) == rand[1200 * 1024:1204 * 1024]
    finally:
        os.close(fd)
    assert rd(view.p("h", "z_small.txt")) == b"small\n"
    log = view.m.log()
    assert f"{img}: corrupt image: hash tree block at offset {bad_block} does not match" \
        in log, log

def test_image_without_a_tree_is_served_as_before(env, view):
    src = make_tree(env)
    img = env.path("plain.sqfs")
    veneer_pack(env, src, img, "--no-tree")
    r = view.attach(img, "/v")
    assert r.returncode == 0, r.stderr
    assert rd(view.p("v", "big.txt")) == rd(os.path.join(src, "big.txt"))
    assert rd(view.p("v", "dir", "f39")) == b"file 39\n"


# ---- pinning a digest; what status says ----

def layer_status(view, at):
    return next(l for l in view.status()["layers"] if l["path"] == at)


def test_digest_pin_accepted_and_refused(env, view):
    src, img, root = packed(env)
    r = view.attach(img, "/pinned", "--digest", f"sha256:{root}")
    assert r.returncode == 0, r.stderr
    assert rd(view.p("pinned", "small.txt")) == rd(os.path.join(src, "small.txt"))

    wrong = ("0" if root[0] != "0" else "1") + root[1:]
    r = view.attach(img, "/wrong", "--digest", f"sha256:{wrong}")
    assert r.returncode == 1
    assert f"sha256:{root}" in r.stderr and f"sha256:{wrong}" in r.stderr, r.stderr
    assert not os.path.exists(view.p("wrong"))

    r = view.attach(img, "/bad", "--digest", "sha256:xyz")
    assert r.returncode == 2 and "bad digest" in r.stderr

    plain = env.path("plain.sqfs")
    veneer_pack(env, src, plain, "--no-tree")
    r = view.attach(plain, "/plainpin", "--digest", f"sha256:{root}")
    assert r.returncode == 1 and "no hash tree" in r.stderr, r.stderr

    # the tree's root block damaged: refused even without a digest, both roots named
    _, hash_offset, _ = footer(img)
    bad = copy(env, img, "badroot.sqfs")
    flip(bad, hash_offset + BLOCK + 1)
    r = view.attach(bad, "/badroot")
    assert r.returncode == 1 and "hash tree mismatch" in r.stderr, r.stderr
    assert f"expected sha256:{root}" in r.stderr


def test_status_names_what_each_layer_is_checked_against(env, view):
    src, img, root = packed(env)
    plain = env.path("plain.sqfs")
    veneer_pack(env, src, plain, "--no-tree")
    assert view.attach(img, "/pinned", "--digest", f"sha256:{root}").returncode == 0
    assert view.attach(img, "/footer").returncode == 0
    assert view.attach(plain, "/plain").returncode == 0
    assert view.attach(src, "/dir").returncode == 0
    pinned, foot = layer_status(view, "/pinned"), layer_status(view, "/footer")
    assert pinned["integrity"] == "pinned" and pinned["digest"] == f"sha256:{root}"
    assert foot["integrity"] == "verified" and foot["digest"] == f"sha256:{root}"
    assert layer_status(view, "/plain")["integrity"] == "unverified"
    assert "digest" not in layer_status(view, "/plain")
    assert "integrity" not in layer_status(view, "/dir")
    r = env.veneer("status", view.mnt)
    assert r.returncode == 0
    rows = {f[3]: f for f in map(str.split, r.stdout.splitlines())
            if len(f) == 9 and f[0].isdigit()}
    assert rows["/pinned"][2] == "pinned" and rows["/footer"][2] == "verified"
    assert rows["/plain"][2] == "unverified" and rows["/dir"][2] == "-"
    assert f"digest sha256:{root}" in r.stdout


def test_layer_option_pins_a_digest(env):
    src, img, root = packed(env)
    lower, mnt = env.mkdir("l2"), env.mkdir("m2")
    m = env.mount(lower, mnt, args=["--layer", f"{img}:/opt/v#sha256:{root}"])
    assert rd(os.path.join(mnt, "opt", "v", "small.txt")) == rd(os.path.join(src, "small.txt"))
    r = env.veneer("status", "--json", mnt)
    (layer,) = json.loads(r.stdout)["layers"]
    assert layer["integrity"] == "pinned" and layer["path"] == "/opt/v"
    m.stop()

    wrong = ("0" if root[0] != "0" else "1") + root[1:]
    m = env.mount(lower, env.mkdir("m3"), args=["--layer", f"{img}#sha256:{wrong}"],
                  start=False)
    with pytest.raises(AssertionError, match="exited with"):
        m.start(timeout=30)
    log = m.log()
    assert f"sha256:{root}" in log and f"sha256:{wrong}" in log, log

    r = env.veneer("mount", "--layer", f"{img}#sha256:12", lower, env.mkdir("m4"))
    assert r.returncode != 0 and "bad digest" in r.stderr, r.stderr

    # the "://" of a URL scheme does not split SRC from PATH: the whole URL
    # is the source (example.invalid never resolves: the mount fails naming it)
    url = "http://example.invalid/x.sqfs"
    for spec in (url, url + ":/opt"):
        r = env.veneer("mount", "--layer", spec + f"#sha256:{root}", lower, env.mkdir("m5"))
        assert r.returncode != 0 and f"layer {url}: " in r.stderr, r.stderr


@pytest.mark.stress
def test_parallel_verified_reads(env, view):
    """Threads reading a verified image at once share its hash-block cache."""
    src = env.mkdir("psrc")
    expect = {}
    for i in range(600):
        rel = f"d{i % 6}/f{i:04d}"
        data = (f"{i} " * (50 + i * 13 % 4000)).encode()
        os.makedirs(os.path.join(src, os.path.dirname(rel)), exist_ok=True)
        wfile(os.path.join(src, rel), data)
        expect[rel] = data
    img = env.path("par.sqfs")
    veneer_pack(env, src, img)
    r = view.attach(img, "/p")
    assert r.returncode == 0, r.stderr
    rels = sorted(expect)
    errors = []

    def reader(k):
        try:
            for rel in rels[k::4] + rels[::-1][k::4]:
                if rd(view.p("p", rel)) != expect[rel]:
                    errors.append(rel)
        except OSError as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=100)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert "corrupt image" not in view.m.log()


def test_o_layer_holds_an_escaped_comma(env):
    src, img, root = packed(env)
    odd = env.path("a,b.sqfs")
    os.rename(img, odd)
    lower, mnt = env.mkdir("lo"), env.mkdir("mo")
    esc = odd.replace("\\", "\\\\").replace(",", "\\,")
    env.mount(lower, mnt, args=["-o", f"layer={esc}:/opt#sha256:{root},ro"])
    assert rd(os.path.join(mnt, "opt", "small.txt")) == rd(os.path.join(src, "small.txt"))
    r = env.veneer("status", "--json", mnt)
    (layer,) = json.loads(r.stdout)["layers"]
    assert layer["source"] == odd and layer["integrity"] == "pinned"
