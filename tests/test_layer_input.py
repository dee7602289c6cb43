"""Layers and hostile input: long names and paths inside images and attach
points, and images that are truncated, garbage, corrupt, rewritten in place
or gone.  Each bad input must give a clear error (or EIO for the damaged
range only), never a crash, and the daemon must keep serving.
"""
import errno
import json
import os
import random
import shutil
import stat
import struct
import subprocess

import pytest

from conftest import errno_of, mksquashfs, rd, snapshot, wfile

pytestmark = pytest.mark.timeout(120)

SB = struct.Struct("<IIIIIHHHHHHQQQQQQQQ")
SB_FIELDS = ("magic inodes mkfs_time block_size fragments compression block_log flags "
             "no_ids s_major s_minor root_inode bytes_used id_table_start "
             "xattr_id_table_start inode_table_start directory_table_start "
             "fragment_table_start lookup_table_start").split()


# ---- helpers ----



def superblock(img):
    with open(img, "rb") as f:
        return dict(zip(SB_FIELDS, SB.unpack(f.read(SB.size))))




class View:
    """A mount with some real files; checks the daemon serves and LOWER is untouched."""

    def __init__(self, env, args=(), name="v"):
        self.env = env
        self.lower = env.mkdir(name + "-lower")
        wfile(os.path.join(self.lower, "real.txt"), b"real data\n")
        os.makedirs(os.path.join(self.lower, "rdir"))
        wfile(os.path.join(self.lower, "rdir", "inner"), b"inner\n" * 50)
        self.before = snapshot(self.lower)
        self.mnt = env.mkdir(name + "-mnt")
        self.m = env.mount(self.lower, self.mnt, args=list(args))

    def p(self, *parts):
        return os.path.join(self.mnt, *parts)

    def status(self):
        r = self.env.veneer("status", "--json", self.mnt)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def assert_alive(self):
        assert self.m.proc.poll() is None, "daemon died: " + self.m.log()
        assert rd(self.p("real.txt")) == b"real data\n"
        assert rd(self.p("rdir", "inner")) == b"inner\n" * 50
        assert "real.txt" in os.listdir(self.mnt)
        self.status()

    def assert_lower_untouched(self):
        assert snapshot(self.lower) == self.before

    def attach(self, src, at):
        return self.env.veneer("attach", self.mnt, src, at)

    def detach(self, spec):
        r = self.env.veneer("detach", self.mnt, spec)
        assert r.returncode == 0, r.stderr


@pytest.fixture
def view(env):
    v = View(env)
    yield v
    v.assert_alive()
    v.assert_lower_untouched()


def open_walk(root, comps, flags=os.O_RDONLY):
    """openat() down COMPS from ROOT (never one long path); returns an fd."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for c in comps[:-1]:
            nfd = os.open(c, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return os.open(comps[-1], flags, dir_fd=fd)
    finally:
        os.close(fd)


def make_walk(root, comps, data):
    """Creates dirs COMPS[:-1] and file COMPS[-1] under ROOT with mkdirat/openat."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for c in comps[:-1]:
            os.mkdir(c, dir_fd=fd)
            nfd = os.open(c, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        f = os.open(comps[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd)
        os.write(f, data)
        os.close(f)
    finally:
        os.close(fd)


def components(total, tag):
    """Names joined by '/' of exactly TOTAL bytes, each at most 255."""
    comps = []
    left = total
    i = 0
    while left > 0:
        n = min(255, left)
        if left - n == 1:       # would leave a lone separator
            n -= 2
        comps.append((f"{tag}{i:02d}-" + "x" * 300)[:n])
        left -= n + (1 if left - n > 0 else 0)
        i += 1
    assert len("/".join(comps)) == total
    return comps


def read_fd(fd):
    try:
        return os.read(fd, 1 << 20)
    finally:
        os.close(fd)


# ---- long names and paths ----

def test_255_byte_name_inside_image(env, view):
    name = "n" * 250 + ".data"
    assert len(name) == 255
    src = env.mkdir("src", "d")
    wfile(os.path.join(src, name), b"long name\n")
    os.mkdir(os.path.join(src, "D" * 255))
    wfile(os.path.join(src, "D" * 255, "E" * 255), b"both long\n")
    img = mksquashfs(env.path("src"), env.path("n.img"))
    r = view.attach(img, "/l")
    assert r.returncode == 0, r.stderr
    assert name in os.listdir(view.p("l", "d"))
    assert rd(view.p("l", "d", name)) == b"long name\n"
    assert rd(view.p("l", "d", "D" * 255, "E" * 255)) == b"both long\n"
    assert errno_of(lambda: os.stat(view.p("l", "d", "n" * 256))) == errno.ENAMETOOLONG


def test_path_max_inside_image(env, view):
    # the longest path inside the image that still fits through the mount
    inner_len = 4095 - len(view.mnt) - 1
    comps = components(inner_len, "p")
    src = env.mkdir("s")
    assert len(src) <= len(view.mnt)
    make_walk(src, comps, b"at the end of a long path\n")
    img = mksquashfs(src, env.path("p.img"))
    r = view.attach(img, "/")
    assert r.returncode == 0, r.stderr
    full = view.mnt + "/" + "/".join(comps)
    assert len(full) == 4095
    assert read_fd(open_walk(view.mnt, comps)) == b"at the end of a long path\n"
    assert rd(full) == b"at the end of a long path\n"
    assert os.stat(full).st_size == 26
    # listing the deepest directory shows the file
    fd = open_walk(view.mnt, comps[:-1] + ["."], os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert os.listdir(fd) == [comps[-1]]
    finally:
        os.close(fd)


def test_path_beyond_path_max_through_attach_point(env, view):
    """Image path + attach point longer than PATH_MAX: works or ENAMETOOLONG."""
    comps = components(4000, "q")
    src = env.mkdir("s")
    make_walk(src, comps, b"deep\n")
    img = mksquashfs(src, env.path("q.img"))
    at = "/" + "/".join(components(200, "at"))
    r = view.attach(img, at)
    assert r.returncode == 0, r.stderr
    at_comps = at.strip("/").split("/")
    try:
        got = read_fd(open_walk(view.mnt, at_comps + comps))
        assert got == b"deep\n"
    except OSError as e:
        assert e.errno == errno.ENAMETOOLONG, e
    # the shallow part is fine either way
    assert os.listdir(view.p(*at_comps)) == [comps[0]]
    view.assert_alive()
    view.detach(at)
    assert not os.path.exists(view.p(at_comps[0]))


def test_deep_attach_point(env, view):
    src = env.mkdir("src")
    wfile(os.path.join(src, "leaf"), b"leaf\n")
    img = mksquashfs(src, env.path("d.img"))
    levels = [chr(ord("a") + i) for i in range(26)]
    at = "/" + "/".join(levels)
    r = view.attach(img, at)
    assert r.returncode == 0, r.stderr
    assert rd(view.p(*levels, "leaf")) == b"leaf\n"
    # the synthesized directories on the way are read-only 0555
    for i in (1, 13, 25):
        st = os.stat(view.p(*levels[:i]))
        assert st.st_mode & 0o7777 == 0o555
        assert os.listdir(view.p(*levels[:i])) == [levels[i]]
    # the attach point itself is the image's root
    assert os.stat(view.p(*levels)).st_mode & 0o7777 == 0o755
    assert os.listdir(view.p(*levels)) == ["leaf"]
    assert errno_of(lambda: os.mkdir(view.p(*levels[:5], "new"))) == errno.EROFS
    assert errno_of(lambda: wfile(view.p(*levels[:5], "newf"), b"x")) == errno.EROFS
    view.detach(at)
    assert not os.path.exists(view.p("a"))


def test_254_character_paths(env):
    # an attach point of 254 characters, and a 254-character path inside an image
    at = "/" + "/".join(components(253, "t"))
    assert len(at) == 254
    inner = components(253, "i")
    src = env.mkdir("src")
    make_walk(src, inner, b"254\n")
    img = mksquashfs(src, env.path("t.img"))
    v = View(env, args=["--layer", f"{img}:{at}"])
    assert rd(v.mnt + at + "/" + "/".join(inner)) == b"254\n"
    r = v.attach(img, "/")
    assert r.returncode == 0, r.stderr
    view_path = "/" + "/".join(inner)
    assert len(view_path) == 254
    assert rd(v.mnt + view_path) == b"254\n"
    st = v.status()
    assert sorted(l["path"] for l in st["layers"]) == sorted(["/", at])
    v.detach(at)
    assert not os.path.exists(v.mnt + at)
    assert rd(v.mnt + view_path) == b"254\n"
    v.assert_alive()
    v.assert_lower_untouched()


# ---- images refused at attach ----

def good_image(env, name="good.img", comp="gzip"):
    src = env.mkdir("goodsrc")
    if not os.listdir(src):
        for i in range(30):
            wfile(os.path.join(src, f"f{i:02d}"), os.urandom(i * 400 + 1))
        os.makedirs(os.path.join(src, "sub"))
        wfile(os.path.join(src, "sub", "x"), b"x\n")
    return mksquashfs(src, env.path(name), comp=comp)


def assert_refused(view, r, img, reason):
    assert r.returncode != 0
    msg = r.stderr
    assert img in msg, msg
    assert reason.lower() in msg.lower(), msg
    assert "\n" not in msg.strip(), "one line: " + msg
    assert view.status()["layers"] == []
    view.assert_alive()


def test_attach_truncated_image(env, view):
    img = good_image(env)
    # cut the used part in half (the 4 KiB padding after it does not count)
    used = superblock(img)["bytes_used"]
    assert used > 4096
    os.truncate(img, used // 2)
    assert_refused(view, view.attach(img, "/t"), img, "truncated")
    os.truncate(img, 50)        # shorter than a superblock
    assert_refused(view, view.attach(img, "/t"), img, "truncated")
    os.truncate(img, 0)
    r = view.attach(img, "/t")
    assert r.returncode != 0 and img in r.stderr
    assert not os.path.exists(view.p("t"))


def test_attach_garbage_superblock(env, view):
    img = good_image(env)
    rnd = random.Random(1)
    with open(img, "r+b") as f:
        f.write(bytes(rnd.randrange(256) for _ in range(96)))
    assert_refused(view, view.attach(img, "/g"), img, "not a squashfs image")
    # right magic, garbage after it
    with open(img, "r+b") as f:
        f.seek(4)
        f.write(bytes(rnd.randrange(256) for _ in range(92)))
        f.seek(0)
        f.write(struct.pack("<I", 0x73717368))
    r = view.attach(img, "/g")
    assert r.returncode != 0 and img in r.stderr
    assert any(w in r.stderr for w in ("corrupt", "not supported", "truncated")), r.stderr
    view.assert_alive()


def test_attach_text_file_and_missing_path(env, view):
    txt = env.path("notes.txt")
    wfile(txt, b"this is not an image\n" * 10)
    assert_refused(view, view.attach(txt, "/x"), txt, "not a squashfs image")
    tiny = env.path("tiny.txt")
    wfile(tiny, b"hi")
    assert_refused(view, view.attach(tiny, "/x"), tiny, "")
    missing = env.path("missing.img")
    assert_refused(view, view.attach(missing, "/x"), missing, "no such file")
    fifo = env.path("fifo")
    os.mkfifo(fifo)
    assert_refused(view, view.attach(fifo, "/x"), fifo, "not a squashfs image")


def test_mount_with_bad_layer_fails_cleanly(env):
    lower = env.mkdir("lower")
    wfile(os.path.join(lower, "r"), b"r\n")
    mnt = env.mkdir("mnt")
    bad = env.path("bad.img")
    wfile(bad, b"garbage, not squashfs\n" * 100)
    for spec, reason in [(bad, "not a squashfs image"), (bad + ":/opt", "not a squashfs image"),
                         (env.path("nope.img"), "no such file")]:
        m = env.mount(lower, mnt, args=["--layer", spec], start=False)
        with pytest.raises(AssertionError, match="exited with"):
            m.start(timeout=30)
        assert m.proc.returncode != 0
        log = m.log()
        assert spec.split(":")[0] in log, log
        assert reason in log.lower(), log
        assert not any(line.split()[4] == mnt for line in open("/proc/self/mountinfo"))
    assert os.listdir(mnt) == []
    assert sorted(os.listdir(lower)) == ["r"]


def test_paths_with_a_newline_are_refused(env):
    """The built-in filters get their settings one a line: a path that
    holds a newline is refused with a message, not split."""
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    odd = env.mkdir("a\nb")
    r = env.veneer("mount", "--layer", odd, lower, mnt)
    assert r.returncode != 0 and r.stderr.startswith("veneer: bad --layer"), r.stderr
    assert "newline" in r.stderr, r.stderr
    r = env.veneer("mount", "--trace", os.path.join(odd, "t.jsonl"), lower, mnt)
    assert r.returncode != 0 and r.stderr.startswith("veneer: trace file"), r.stderr
    assert "newline" in r.stderr, r.stderr
    assert not any(line.split()[4] == mnt for line in open("/proc/self/mountinfo"))
    assert os.listdir(odd) == []


# ---- corrupt metadata ----

def walk_view(root):
    """Reads everything under ROOT; returns the set of errnos met."""
    errs = set()
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            names = os.listdir(d)
        except OSError as e:
            errs.add(e.errno)
            continue
        for n in names:
            p = os.path.join(d, n)
            try:
                st = os.lstat(p)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(p)
                elif stat.S_ISLNK(st.st_mode):
                    os.readlink(p)
                elif stat.S_ISREG(st.st_mode):
                    rd(p)
            except OSError as e:
                errs.add(e.errno)
    return errs


def md_blocks(data, start, end):
    """(body_start, body_end) of each metadata block in [start, end)."""
    out = []
    pos = start
    while pos + 2 <= end:
        size = struct.unpack_from("<H", data, pos)[0] & 0x7fff
        out.append((pos + 2, pos + 2 + size))
        pos += 2 + size
    assert pos == end, "metadata blocks do not tile the table"
    return out


def flip_positions(img, n, seed, compressed):
    """The middle of each block of the inode and directory tables, then N random
    offsets in those tables (inside block bodies when compressed)."""
    data = open(img, "rb").read()
    sb = superblock(img)
    lo, mid = sb["inode_table_start"], sb["directory_table_start"]
    hi = min(v for v in (sb["fragment_table_start"], sb["lookup_table_start"],
                         sb["id_table_start"]) if v > mid)
    blocks = md_blocks(data, lo, mid) + md_blocks(data, mid, hi)
    rnd = random.Random(seed)
    out = [(a + b) // 2 for a, b in blocks]
    for _ in range(n):
        if compressed:
            a, b = rnd.choice(blocks)
            out.append(rnd.randrange(a, b))
        else:
            out.append(rnd.randrange(lo, hi))
    return out, len(blocks)


@pytest.mark.parametrize("metadata", ["compressed", "uncompressed"])
def test_metadata_bit_flips(env, view, metadata):
    """Refused at attach, or EIO where the damage is; never a crash."""
    compressed = metadata == "compressed"
    extra = [] if compressed else ["-noI", "-noD", "-noF"]
    src = env.mkdir("msrc")
    # enough entries for several metadata blocks per table
    for d in range(4):
        os.makedirs(os.path.join(src, f"dir{d}"))
        for i in range(100):
            wfile(os.path.join(src, f"dir{d}", f"a-rather-long-file-name-{i:04d}"),
                  f"{d}/{i}\n".encode() * (i % 7))
        os.symlink("a-rather-long-file-name-0001", os.path.join(src, f"dir{d}", "link"))
    orig = mksquashfs(src, env.path("orig.img"), extra=extra)
    data = open(orig, "rb").read()
    positions, nblocks = flip_positions(orig, 12 if compressed else 40, seed=7,
                                        compressed=compressed)
    assert nblocks >= 3
    seen = set()
    for k, pos in enumerate(positions):
        img = env.path(f"flip{k}.img")
        b = bytearray(data)
        b[pos] ^= 1 << (k % 8)
        wfile(img, bytes(b))
        at = f"/f{k}"
        r = view.attach(img, at)
        if r.returncode != 0:
            assert img in r.stderr and "corrupt" in r.stderr, r.stderr
            seen.add("refused")
        else:
            errs = walk_view(view.p(f"f{k}"))
            seen.add(frozenset(errs))
            if compressed:
                # a zlib stream carries a checksum: every flip is noticed, as EIO
                assert errs == {errno.EIO}, (pos, errs)
            else:
                # garbage may pass as data; what is noticed is EIO
                assert errs <= {errno.EIO}, (pos, errs)
            view.detach(at)
            assert not os.path.exists(view.p(f"f{k}"))
        if k % 8 == 0:
            view.assert_alive()
    view.assert_alive()
    if compressed:
        # which outcome a flip gets depends on where it lands (the image's
        # bytes vary with file times): refused at attach, or EIO, nothing else
        assert seen and seen <= {"refused", frozenset({errno.EIO})}, seen


def test_metadata_flip_in_inode_table_gives_eio(env, view):
    """A damaged inode table block: EIO for the entries it holds, the rest works."""
    src = env.mkdir("isrc", "d")
    for i in range(800):
        wfile(os.path.join(src, f"file{i:03d}"), str(i).encode())
    img = mksquashfs(env.path("isrc"), env.path("i.img"))
    sb = superblock(img)
    b = bytearray(open(img, "rb").read())
    blocks = md_blocks(b, sb["inode_table_start"], sb["directory_table_start"])
    assert len(blocks) >= 3
    lo, hi = blocks[0]          # the root inode is written last: not in this one
    for i in range(8):
        b[(lo + hi) // 2 + i] ^= 0xff
    wfile(img, bytes(b))
    r = view.attach(img, "/i")
    assert r.returncode == 0, r.stderr
    names = os.listdir(view.p("i", "d"))
    assert len(names) == 800
    good = bad = 0
    for n in names:
        try:
            assert rd(view.p("i", "d", n)) == str(int(n[4:])).encode()
            good += 1
        except OSError as e:
            assert e.errno == errno.EIO, (n, e)
            bad += 1
    assert good > 0 and bad > 0
    view.detach("/i")


# ---- corrupt data blocks ----

def big_text(n=1 << 20):
    lines = []
    size = 0
    i = 0
    while size < n:
        line = f"line {i:08d} value {i * 7919 % 100003:06d} {'abcdefgh'[i % 8] * (i % 23)}\n"
        lines.append(line)
        size += len(line)
        i += 1
    return "".join(lines).encode()[:n]


@pytest.mark.parametrize("comp", ["gzip", "xz"])
def test_data_block_flip_gives_eio_for_that_range_only(env, view, comp):
    src = env.mkdir("dsrc")
    data = big_text()
    wfile(os.path.join(src, "a_big"), data)                 # first: its blocks start at 96
    wfile(os.path.join(src, "b_small"), b"small file\n" * 10)
    wfile(os.path.join(src, "c_other"), big_text(300000)[::-1])
    img = mksquashfs(src, env.path(f"{comp}.img"), comp=comp)
    sb = superblock(img)
    assert sb["block_size"] == 128 * 1024
    assert sb["compression"] == {"gzip": 1, "xz": 4}[comp]
    nblocks = len(data) // sb["block_size"]
    with open(img, "rb") as f:
        whole = f.read()
    # a_big's first block starts at 96: find its end by decompressing it,
    # and flip a byte in its middle
    pos = 96 + estimate_first_block(whole, comp, data[:sb["block_size"]]) // 2
    b = bytearray(whole)
    b[pos] ^= 0x55
    wfile(img, bytes(b))
    r = view.attach(img, "/c")
    assert r.returncode == 0, r.stderr
    p = view.p("c", "a_big")
    assert os.stat(p).st_size == len(data)
    fd = os.open(p, os.O_RDONLY)
    try:
        bs = sb["block_size"]
        # the last block first: readahead only ever goes forward
        assert os.pread(fd, bs, (nblocks - 1) * bs) == data[(nblocks - 1) * bs:]
        assert os.pread(fd, 4096, 3 * bs + 100) == data[3 * bs + 100:3 * bs + 4196]
        assert errno_of(lambda: os.pread(fd, 4096, 1000)) == errno.EIO
        assert errno_of(lambda: os.pread(fd, 100, bs // 2)) == errno.EIO
        # still EIO when asked again, and the rest still reads
        assert errno_of(lambda: os.pread(fd, 10, 0)) == errno.EIO
        assert os.pread(fd, bs, 5 * bs) == data[5 * bs:6 * bs]
    finally:
        os.close(fd)
    assert rd(view.p("c", "b_small")) == b"small file\n" * 10
    assert rd(view.p("c", "c_other")) == big_text(300000)[::-1]
    view.detach("/c")


def test_xz_block_asking_for_a_2_gib_dictionary_gives_eio(env, view):
    """liblzma allocates whatever dictionary an xz header names; the daemon
    decodes with a memory limit, so a hostile block costs an EIO, not 2 GiB."""
    import zlib
    src = env.mkdir("xsrc")
    data = big_text(300000)
    wfile(os.path.join(src, "a_big"), data)                 # its first block starts at 96
    wfile(os.path.join(src, "b_small"), b"small file\n" * 10)
    img = mksquashfs(src, env.path("xz.img"), comp="xz")
    b = bytearray(open(img, "rb").read())
    assert b[96:102] == b"\xfd7zXZ\x00"                    # an xz stream header
    hdr = 96 + 12                                           # the block header after it
    size = (b[hdr] + 1) * 4
    lzma2 = b.find(b"\x21\x01", hdr + 2, hdr + size - 4)  # filter LZMA2, 1 property byte
    assert lzma2 > 0
    b[lzma2 + 2] = 38                                       # dictionary 2 GiB
    b[hdr + size - 4:hdr + size] = zlib.crc32(bytes(b[hdr:hdr + size - 4])).to_bytes(4, "little")
    wfile(img, bytes(b))
    r = view.attach(img, "/x")
    assert r.returncode == 0, r.stderr
    bs = superblock(img)["block_size"]
    fd = os.open(view.p("x", "a_big"), os.O_RDONLY)
    try:
        assert errno_of(lambda: os.pread(fd, 4096, 0)) == errno.EIO
        assert os.pread(fd, bs, bs) == data[bs:2 * bs]
    finally:
        os.close(fd)
    assert rd(view.p("x", "b_small")) == b"small file\n" * 10
    view.assert_alive()
    view.detach("/x")


def estimate_first_block(whole, comp, plain):
    """Length of the compressed stream at offset 96 (the first data block)."""
    if comp == "gzip":
        import zlib
        d = zlib.decompressobj()
        out = d.decompress(whole[96:96 + len(plain) + 4096])
        assert out == plain
        return len(whole[96:96 + len(plain) + 4096]) - len(d.unused_data)
    import lzma
    d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    out = d.decompress(whole[96:96 + len(plain) + 4096])
    assert out == plain
    return len(whole[96:96 + len(plain) + 4096]) - len(d.unused_data)


# ---- images that change or vanish after attach ----

def tree_image(env, name, tag=b"", comp="gzip"):
    src = env.mkdir(name + "-src")
    for d in range(3):
        os.makedirs(os.path.join(src, f"d{d}"))
        for i in range(10):
            wfile(os.path.join(src, f"d{d}", f"f{i}"), tag + f"{d}/{i}\n".encode() * 100)
    img = mksquashfs(src, env.path(name), comp=comp)
    os.utime(img, (1_000_000_000, 1_000_000_000))   # an mtime a rewrite surely changes
    return img


def test_image_appended_to_after_attach(env, view):
    img = tree_image(env, "app.img")
    r = view.attach(img, "/app")
    assert r.returncode == 0, r.stderr
    assert rd(view.p("app", "d0", "f0")) == b"0/0\n" * 100
    with open(img, "ab") as f:
        f.write(b"\0" * 4096)
    assert errno_of(lambda: rd(view.p("app", "d1", "f1"))) == errno.EIO
    assert errno_of(lambda: os.listdir(view.p("app", "d2"))) == errno.EIO
    view.assert_alive()
    view.detach("/app")
    assert not os.path.exists(view.p("app"))
    # attached again, the grown image is consistent again
    r = view.attach(img, "/app")
    assert r.returncode == 0, r.stderr
    assert rd(view.p("app", "d1", "f1")) == b"1/1\n" * 100


def test_image_rewritten_in_place_after_attach(env, view):
    img = tree_image(env, "rw.img")
    other = tree_image(env, "other.img", tag=b"OTHER ", comp="xz")
    ino = os.stat(img).st_ino
    r = view.attach(img, "/rw")
    assert r.returncode == 0, r.stderr
    assert rd(view.p("rw", "d0", "f0")) == b"0/0\n" * 100
    with open(img, "r+b") as f:
        f.write(open(other, "rb").read())
    assert os.stat(img).st_ino == ino
    got = errno_of(lambda: rd(view.p("rw", "d1", "f3")))
    assert got == errno.EIO
    assert errno_of(lambda: os.listdir(view.p("rw", "d2"))) == errno.EIO
    view.assert_alive()
    view.detach("/rw")
    assert not os.path.exists(view.p("rw"))


def test_directory_source_removed_after_attach(env, view):
    src = env.mkdir("dirsrc")
    for d in range(2):
        os.makedirs(os.path.join(src, f"d{d}"))
        for i in range(5):
            wfile(os.path.join(src, f"d{d}", f"f{i}"), f"{d}.{i}\n".encode())
    r = view.attach(src, "/ds")
    assert r.returncode == 0, r.stderr
    assert rd(view.p("ds", "d0", "f0")) == b"0.0\n"
    st = view.status()["layers"]
    assert [l["kind"] for l in st] == ["directory"]
    shutil.rmtree(src)
    for p in [("ds", "d0", "f1"), ("ds", "d1", "f2"), ("ds", "d1")]:
        e = errno_of(lambda: rd(view.p(*p)) if p[-1].startswith("f")
                     else os.listdir(view.p(*p)))
        assert e in (errno.ENOENT, errno.EIO), (p, e)
    view.assert_alive()
    # a new directory at the same path is not the source: nothing reappears
    os.makedirs(os.path.join(src, "d0"))
    wfile(os.path.join(src, "d0", "f4"), b"impostor\n")
    assert errno_of(lambda: rd(view.p("ds", "d0", "f4"))) in (errno.ENOENT, errno.EIO)
    view.detach("/ds")
    assert not os.path.exists(view.p("ds"))
    assert view.status()["layers"] == []


# ---- names an image must not be able to use ----

def test_crafted_names_are_skipped(env, view):
    """'..', 'x/' and a name with NUL in a directory table: never shown, no escape."""
    src = env.mkdir("nsrc", "d")
    for n in ["ab", "xy", "cd", "ef", "gh", "keep"]:
        wfile(os.path.join(src, n), n.encode() + b"\n")
    img = mksquashfs(env.path("nsrc"), env.path("names.img"), extra=["-noI", "-noD", "-noF"])
    b = bytearray(open(img, "rb").read())
    start = superblock(img)["directory_table_start"]
    for old, new in [(b"ab", b".."), (b"xy", b"x/"), (b"cd", b"c\0"), (b"ef", b"e.")]:
        i = b.index(old, start)
        b[i:i + 2] = new
    wfile(img, bytes(b))
    r = view.attach(img, "/n")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(view.p("n", "d"))) == ["e.", "gh", "keep"]
    assert rd(view.p("n", "d", "e.")) == b"ef\n"
    assert rd(view.p("n", "d", "keep")) == b"keep\n"
    assert errno_of(lambda: os.stat(view.p("n", "d", "x"))) == errno.ENOENT
    assert errno_of(lambda: os.stat(view.p("n", "d", "c"))) == errno.ENOENT
    # ".." is the kernel's: the image root, then the real root
    assert os.listdir(view.p("n", "d", "..")) == ["d"]
    assert os.path.samestat(os.stat(view.p("n", "d", "..", "..")), os.stat(view.mnt))
    r = subprocess.run(["find", view.p("n")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert sorted(os.path.relpath(p, view.mnt) for p in r.stdout.split()) == [
        "n", "n/d", "n/d/e.", "n/d/gh", "n/d/keep"]
    view.detach("/n")


def test_name_longer_than_name_max_is_skipped(env, view):
    """A directory entry whose name is 256 bytes long (a size field patched by
    one) is never shown; its neighbours are."""
    src = env.mkdir("lsrc", "d")
    long_name = "z" * 255
    for n in ["a", "b", long_name]:
        wfile(os.path.join(src, n), b"x")
    img = mksquashfs(env.path("lsrc"), env.path("long.img"), extra=["-noI", "-noD", "-noF"])
    b = bytearray(open(img, "rb").read())
    start = superblock(img)["directory_table_start"]
    i = b.index(long_name.encode(), start)
    assert int.from_bytes(b[i - 2:i], "little") == 254   # size field: length - 1
    b[i - 2:i] = (255).to_bytes(2, "little")
    wfile(img, bytes(b))
    r = view.attach(img, "/l")
    assert r.returncode == 0, r.stderr
    try:
        names = os.listdir(view.p("l", "d"))
    except OSError as e:
        assert e.errno == errno.EIO
        names = []
    assert all(len(n) <= 255 for n in names)
    assert set(names) <= {"a", "b"}
    assert errno_of(lambda: os.stat(view.p("l", "d", long_name))) in (errno.ENOENT, errno.EIO)
    view.detach("/l")
