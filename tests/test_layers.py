"""Layers: virtual read-only files projected into the real tree (DESIGN section 3).

Table-driven errno checks on a virtual file, a virtual directory, a
synthesized directory and a merged directory; precedence and merging; live
attach and detach with the kernel caches they must invalidate; the control
socket's owner check.
"""
import errno
import json
import os
import subprocess
import threading
import time

import pytest

from conftest import NOBODY, become, opens_skipped, pack, rd, wfile




TREE = {
    "vdir/inner.txt": b"inner",
    "vdir/sub/deep.txt": b"deep",
    "merged/vfile.txt": b"virtual in merged",
    "merged/shadowed.txt": b"virtual loses",
    "merged/vsub/x": b"x",
    "top.txt": b"top file",
    "hidden_dir/under.txt": b"never seen",
}


def layered(env, args=(), in_place=False, tree=TREE, at="/"):
    lower = env.mkdir("lower")
    os.makedirs(os.path.join(lower, "merged"), exist_ok=True)
    wfile(os.path.join(lower, "merged", "real.txt"), b"real")
    wfile(os.path.join(lower, "merged", "shadowed.txt"), b"real wins")
    wfile(os.path.join(lower, "hidden_dir"), b"a real file hides a virtual dir")
    img = pack(env, tree)
    spec = img if at == "/" else f"{img}:{at}"
    if in_place:
        m = env.mount(lower, args=["--layer", spec] + list(args))
        return m, lower
    mnt = env.mkdir("mnt")
    m = env.mount(lower, mnt, args=["--layer", spec] + list(args))
    return m, mnt


def err(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except OSError as e:
        return e.errno
    return 0


# ---- precedence and merging ----

def test_virtual_files_read_and_merge(env):
    m, mnt = layered(env)
    assert rd(os.path.join(mnt, "top.txt")) == b"top file"
    assert rd(os.path.join(mnt, "vdir", "sub", "deep.txt")) == b"deep"
    assert sorted(os.listdir(os.path.join(mnt, "merged"))) == [
        "real.txt", "shadowed.txt", "vfile.txt", "vsub"]
    assert rd(os.path.join(mnt, "merged", "shadowed.txt")) == b"real wins"
    assert rd(os.path.join(mnt, "merged", "real.txt")) == b"real"
    # a real file hides a virtual directory of the same name and all under it
    assert rd(os.path.join(mnt, "hidden_dir")) == b"a real file hides a virtual dir"
    assert err(os.stat, os.path.join(mnt, "hidden_dir", "under.txt")) == errno.ENOTDIR
    listing = os.listdir(mnt)
    assert len(listing) == len(set(listing))
    assert sorted(listing) == ["hidden_dir", "merged", "top.txt", "vdir"]
    # hidden by real objects: merged/shadowed.txt and hidden_dir (with all under it)
    st = json.loads(env.veneer("status", "--json", mnt, check=True).stdout)
    assert st["layers"][0]["hidden"] == 2


def test_merged_listing_offsets_are_stable(env):
    """telldir/seekdir inside one handle of a merged directory."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.opendir.restype = ctypes.c_void_p
    libc.readdir.restype = ctypes.c_void_p
    libc.readdir.argtypes = [ctypes.c_void_p]
    libc.telldir.restype = ctypes.c_long
    libc.telldir.argtypes = [ctypes.c_void_p]
    libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
    libc.closedir.argtypes = [ctypes.c_void_p]
    m, mnt = layered(env)
    d = libc.opendir(os.path.join(mnt, "merged").encode())
    assert d

    def name_of(ent):
        # struct dirent: d_ino(8) d_off(8) d_reclen(2) d_type(1) d_name
        return ctypes.string_at(ent + 19).decode()
    names, marks = [], []
    while True:
        marks.append(libc.telldir(d))
        ent = libc.readdir(d)
        if not ent:
            break
        names.append(name_of(ent))
    assert len(names) == len(set(names)) == 6  # . .. and four names
    for i in (4, 1, 3):
        libc.seekdir(d, marks[i])
        assert name_of(libc.readdir(d)) == names[i]
    libc.closedir(d)


def test_inode_numbers_unique_and_hard_links_shared(env):
    tree = dict(TREE)
    m, mnt = layered(env, tree=tree)
    seen = {}
    for root, dirs, files in os.walk(mnt):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            assert st.st_ino not in seen, f"{p} and {seen.get(st.st_ino)} share {st.st_ino}"
            seen[st.st_ino] = p
    assert len(seen) >= 12


def test_two_layers_newest_wins_and_directories_merge(env):
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    a = pack(env, {"d/a_only": b"a", "d/both": b"from a", "f": b"a file"}, "a.sqfs")
    b = pack(env, {"d/b_only": b"b", "d/both": b"from b", "f/is_dir_in_b": b"b"}, "b.sqfs")
    env.mount(lower, mnt, args=["--layer", a, "--layer", b])
    assert sorted(os.listdir(os.path.join(mnt, "d"))) == ["a_only", "b_only", "both"]
    assert rd(os.path.join(mnt, "d", "both")) == b"from b"
    assert rd(os.path.join(mnt, "d", "a_only")) == b"a"
    # type conflict: the newest layer's directory hides the older file
    assert os.path.isdir(os.path.join(mnt, "f"))
    assert rd(os.path.join(mnt, "f", "is_dir_in_b")) == b"b"


def test_attach_points_root_deep_and_existing_dir(env):
    lower = env.mkdir("lower")
    os.makedirs(os.path.join(lower, "opt", "realdir"))
    wfile(os.path.join(lower, "opt", "realdir", "mine"), b"mine")
    mnt = env.mkdir("mnt")
    img = pack(env, {"bin/tool": b"tool"})
    env.mount(lower, mnt, args=["--layer", img, "--layer", f"{img}:/very/deep/a/b/c/d",
                                "--layer", f"{img}:/opt/realdir"])
    assert rd(os.path.join(mnt, "bin", "tool")) == b"tool"
    deep = os.path.join(mnt, "very", "deep", "a", "b", "c", "d", "bin", "tool")
    assert rd(deep) == b"tool"
    # synthesized directories on the way: read-only, 0555
    st = os.stat(os.path.join(mnt, "very", "deep"))
    assert st.st_mode & 0o7777 == 0o555
    assert os.listdir(os.path.join(mnt, "very")) == ["deep"]
    assert sorted(os.listdir(os.path.join(mnt, "opt", "realdir"))) == ["bin", "mine"]
    assert rd(os.path.join(mnt, "opt", "realdir", "bin", "tool")) == b"tool"
    # the same image at two places: different objects, different numbers
    assert os.stat(deep).st_ino != os.stat(os.path.join(mnt, "bin", "tool")).st_ino


def test_removing_real_file_uncovers_virtual_one(env):
    m, mnt = layered(env, in_place=True)
    p = os.path.join(mnt, "merged", "shadowed.txt")
    assert rd(p) == b"real wins"
    os.unlink(p)
    assert rd(p) == b"virtual loses"
    assert err(os.unlink, p) == errno.EROFS
    # rm -rf of a merged directory leaves the virtual entries
    r = subprocess.run(["rm", "-rf", os.path.join(mnt, "merged")], capture_output=True, text=True)
    assert r.returncode != 0
    assert sorted(os.listdir(os.path.join(mnt, "merged"))) == ["shadowed.txt", "vfile.txt", "vsub"]
    m.stop()
    assert os.listdir(os.path.join(mnt, "merged")) == []  # the real directory, now empty


# ---- the operations table ----

TARGETS = {
    "virtual file": "top.txt",
    "virtual dir": "vdir",
    "synthesized dir": None,   # filled per mount: see synth_mount
    "merged dir": "merged",
}


def expect_erofs_or_eperm(e):
    return e == errno.EROFS


@pytest.mark.parametrize("in_place", [False, True], ids=["separate", "in-place"])
def test_operations_table_virtual_file(env, in_place):
    m, mnt = layered(env, in_place=in_place)
    f = os.path.join(mnt, "top.txt")
    real_dir = os.path.join(mnt, "merged")
    # works as on a read-only disk file
    fd = os.open(f, os.O_RDONLY)
    assert os.pread(fd, 100, 0) == b"top file"
    assert os.lseek(fd, 0, os.SEEK_DATA) == 0
    assert os.lseek(fd, 0, os.SEEK_HOLE) == len(b"top file")
    import fcntl
    fcntl.flock(fd, fcntl.LOCK_EX)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    assert os.access(f, os.R_OK)
    assert os.statvfs(f).f_bsize > 0
    # writes: EROFS at open when opens are sent; at the first write when skipped
    skip = opens_skipped(in_place)
    if skip:
        fd = os.open(f, os.O_WRONLY)
        assert err(os.write, fd, b"x") == errno.EROFS
        os.close(fd)
        fd = os.open(f, os.O_RDWR)
        assert err(os.posix_fallocate, fd, 0, 10) == errno.EROFS
        os.close(fd)
    else:
        assert err(os.open, f, os.O_WRONLY) == errno.EROFS
        assert err(os.open, f, os.O_RDWR) == errno.EROFS
    assert err(os.open, f, os.O_RDONLY | os.O_TRUNC) == errno.EROFS
    assert err(os.truncate, f, 0) == errno.EROFS
    assert err(os.chmod, f, 0o600) == errno.EROFS
    assert err(os.chown, f, 1, 1) == errno.EROFS
    assert err(os.utime, f, (1, 1)) == errno.EROFS
    assert err(os.setxattr, f, "user.x", b"1") == errno.EROFS
    assert err(os.removexattr, f, "user.x") == errno.EROFS
    assert err(os.unlink, f) == errno.EROFS
    assert err(os.rename, f, os.path.join(real_dir, "moved")) == errno.EROFS
    wfile(os.path.join(real_dir, "mine"), b"m")
    assert err(os.rename, os.path.join(real_dir, "mine"), f) == errno.EROFS
    assert err(os.link, f, os.path.join(real_dir, "hard")) == errno.EROFS
    assert rd(f) == b"top file"
    if not in_place:
        # no default_permissions: the daemon answers access(W_OK)
        assert err(os.access, f, os.W_OK) is not None
        assert not os.access(f, os.W_OK)


@pytest.mark.parametrize("kind", ["virtual dir", "synthesized dir"])
def test_operations_table_virtual_directories(env, kind):
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    img = pack(env, {"vdir/inner.txt": b"inner"})
    env.mount(lower, mnt, args=["--layer", f"{img}:/synth/point"])
    d = os.path.join(mnt, "synth", "point", "vdir") if kind == "virtual dir" \
        else os.path.join(mnt, "synth")
    assert os.path.isdir(d)
    assert os.listdir(d)
    # creating anything inside a purely virtual directory: EROFS
    assert err(os.open, os.path.join(d, "new"), os.O_CREAT | os.O_WRONLY, 0o644) == errno.EROFS
    assert err(os.mkdir, os.path.join(d, "newdir")) == errno.EROFS
    assert err(os.symlink, "t", os.path.join(d, "newlink")) == errno.EROFS
    assert err(os.mknod, os.path.join(d, "fifo"), 0o644 | 0o010000) == errno.EROFS
    wfile(os.path.join(mnt, "realfile"), b"r")
    assert err(os.link, os.path.join(mnt, "realfile"), os.path.join(d, "hard")) == errno.EROFS
    assert err(os.rename, os.path.join(mnt, "realfile"), os.path.join(d, "moved")) == errno.EROFS
    # the directory itself
    assert err(os.rmdir, d) == errno.EROFS
    assert err(os.chmod, d, 0o700) == errno.EROFS
    assert err(os.rename, d, os.path.join(mnt, "elsewhere")) == errno.EROFS
    assert err(os.setxattr, d, "user.x", b"1") == errno.EROFS
    assert os.access(d, os.R_OK | os.X_OK)


def test_operations_table_merged_directory(env):
    m, mnt = layered(env)
    d = os.path.join(mnt, "merged")
    v = os.path.join(d, "vfile.txt")
    # creating a name that is virtual: EEXIST, as for any existing name
    assert err(os.open, v, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644) == errno.EEXIST
    assert err(os.mkdir, os.path.join(d, "vsub")) == errno.EEXIST
    assert err(os.mkdir, v) == errno.EEXIST
    assert err(os.symlink, "t", v) == errno.EEXIST
    assert err(os.mknod, v, 0o644 | 0o010000) == errno.EEXIST
    # O_CREAT without O_EXCL opens the virtual file; read-only rules apply
    fd = os.open(v, os.O_CREAT | os.O_RDONLY, 0o644)
    assert os.read(fd, 100) == b"virtual in merged"
    os.close(fd)
    assert err(os.open, v, os.O_CREAT | os.O_WRONLY, 0o644) == errno.EROFS
    # real names in a merged directory behave as real ones
    p = os.path.join(d, "newreal")
    wfile(p, b"new")
    os.rename(p, p + "2")
    os.unlink(p + "2")
    os.chmod(d, 0o750)
    assert os.stat(d).st_mode & 0o777 == 0o750
    # a merged directory is not empty while it shows virtual entries
    sub = os.path.join(mnt, "vdir")
    assert err(os.rmdir, sub) == errno.EROFS
    os.unlink(os.path.join(d, "real.txt"))
    os.unlink(os.path.join(d, "shadowed.txt"))
    assert err(os.rmdir, d) == errno.ENOTEMPTY


def test_device_nodes_and_setuid_bits_have_no_effect(env):
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    src = env.path("src")
    os.makedirs(src)
    wfile(os.path.join(src, "suid"), b"#!/bin/sh\nid -u\n", mode=0o4755)
    img = env.path("dev.sqfs")
    subprocess.run(["mksquashfs", src, img, "-noappend", "-quiet", "-no-progress",
                    "-p", "null c 666 0 0 1 3", "-p", "fifo i 644 0 0 f"],
                   check=True, capture_output=True)
    env.mount(lower, mnt, args=["--layer", img, "-o", "allow_other,dev,suid"])
    st = os.stat(os.path.join(mnt, "null"))
    import stat as S
    assert S.S_ISCHR(st.st_mode)
    assert S.S_ISFIFO(os.stat(os.path.join(mnt, "fifo")).st_mode)
    assert err(os.open, os.path.join(mnt, "null"), os.O_RDONLY) in (errno.ENXIO, errno.EACCES,
                                                                      errno.ENODEV)
    st = os.stat(os.path.join(mnt, "suid"))
    assert st.st_mode & 0o6000 == 0
    r = subprocess.run([os.path.join(mnt, "suid")], capture_output=True, text=True,
                       preexec_fn=become(NOBODY))
    assert r.stdout.strip() == str(NOBODY)
    r = env.veneer("ls", img)
    assert r.returncode == 0 and "1, " in r.stdout and "3" in r.stdout


# ---- live attach and detach ----

def test_attach_invalidates_cached_entries_and_listings(env):
    lower = env.mkdir("lower")
    os.makedirs(os.path.join(lower, "etc"))
    m = env.mount(lower)  # in place: long caching, negative entries kept
    missing = os.path.join(lower, "etc", "tool.conf")
    assert err(os.stat, missing) == errno.ENOENT
    assert os.listdir(os.path.join(lower, "etc")) == []
    assert err(os.stat, os.path.join(lower, "opt")) == errno.ENOENT
    one = pack(env, {"etc/tool.conf": b"one", "opt/x": b"x1"}, "one.sqfs")
    r = env.veneer("attach", lower, one, "/")
    assert r.returncode == 0, r.stderr
    assert "attached layer" in r.stdout
    assert rd(missing) == b"one"                       # negative entry filled
    assert os.listdir(os.path.join(lower, "etc")) == ["tool.conf"]  # cached listing
    assert rd(os.path.join(lower, "opt", "x")) == b"x1"
    two = pack(env, {"etc/tool.conf": b"two!"}, "two.sqfs")
    assert env.veneer("attach", lower, two).returncode == 0
    assert rd(missing) == b"two!"                      # positive entry of an older layer
    st = json.loads(env.veneer("status", "--json", lower, check=True).stdout)
    ids = [layer["id"] for layer in st["layers"]]
    assert len(ids) == 2
    assert st["layers"][0]["source"] == two and st["layers"][0]["path"] == "/"
    assert env.veneer("detach", lower, str(ids[0])).returncode == 0
    assert rd(missing) == b"one"
    assert env.veneer("detach", lower, "/").returncode == 0
    assert err(os.stat, missing) == errno.ENOENT
    assert err(os.stat, os.path.join(lower, "opt")) == errno.ENOENT
    assert os.listdir(os.path.join(lower, "etc")) == []
    r = env.veneer("detach", lower, "/")
    assert r.returncode != 0 and "no layer" in r.stderr
    m.stop()


def test_open_file_survives_detach(env):
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    data = bytes(range(256)) * 4096
    img = pack(env, {"big": data}, comp="xz")
    env.mount(lower, mnt, args=["--layer", img])
    f = open(os.path.join(mnt, "big"), "rb")
    assert f.read(1000) == data[:1000]
    assert env.veneer("detach", mnt, "1").returncode == 0
    assert not os.path.exists(os.path.join(mnt, "big"))
    assert f.read() == data[1000:]
    f.seek(0)
    assert f.read() == data
    f.close()


def test_control_socket_refuses_other_users_and_bad_requests(env):
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    img = pack(env, {"a": b"a"})
    env.mount(lower, mnt)
    r = env.veneer("attach", mnt, img, user=NOBODY)
    assert r.returncode != 0
    assert "permission" in r.stderr.lower() or "no veneer mount" in r.stderr
    assert not os.path.exists(os.path.join(mnt, "a"))
    r = env.veneer("attach", mnt, img, "relative/path")
    assert r.returncode != 0 and r.stderr.startswith("veneer:")
    r = env.veneer("attach", mnt, env.path("missing.sqfs"))
    assert r.returncode != 0 and "missing.sqfs" in r.stderr
    r = env.veneer("detach", mnt, "99")
    assert r.returncode != 0 and "99" in r.stderr
    r = env.veneer("status", env.path("lower"))
    assert r.returncode != 0 and "no veneer mount" in r.stderr
    assert env.veneer("attach", mnt, img, check=True)
    assert rd(os.path.join(mnt, "a")) == b"a"


def test_directory_source_inside_the_mount_is_refused(env):
    lower = env.mkdir("lower")
    os.makedirs(os.path.join(lower, "src"))
    wfile(os.path.join(lower, "src", "f"), b"f")
    img_src = env.path("imgsrc")
    os.makedirs(img_src)
    wfile(os.path.join(img_src, "from_image"), b"inside")
    subprocess.run(["mksquashfs", img_src, os.path.join(lower, "inner.sqfs"), "-noappend",
                    "-quiet", "-no-progress"], check=True, capture_output=True)
    env.mount(lower)
    r = env.veneer("attach", lower, os.path.join(lower, "src"), "/x")
    assert r.returncode != 0 and "inside the mount" in r.stderr
    # an image stored inside the covered tree is read through the lower
    r = env.veneer("attach", lower, os.path.join(lower, "inner.sqfs"), "/img")
    assert r.returncode == 0, r.stderr
    assert rd(os.path.join(lower, "img", "from_image")) == b"inside"


@pytest.mark.stress
@pytest.mark.timeout(180)
def test_live_attach_detach_under_readers(env):
    lower = env.mkdir("lower")
    os.makedirs(os.path.join(lower, "shared"))
    wfile(os.path.join(lower, "shared", "real"), b"real")
    mnt = env.mkdir("mnt")
    blobs = {f"shared/f{i}": (f"file {i} ".encode() * 5000) for i in range(8)}
    img = pack(env, blobs, comp="zstd")
    env.mount(lower, mnt, args=["--layer", img])
    stop = threading.Event()
    errors = []
    counts = [0, 0]

    def reader(k):
        while not stop.is_set():
            for rel, want in blobs.items():
                try:
                    got = rd(os.path.join(mnt, rel))
                    if got != want:
                        errors.append(f"wrong bytes in {rel}")
                    counts[0] += 1
                except OSError as e:
                    if e.errno != errno.ENOENT:
                        errors.append(f"{rel}: {e}")
                try:
                    names = os.listdir(os.path.join(mnt, "shared"))
                    if len(names) != len(set(names)) or "real" not in names:
                        errors.append(f"bad listing {names}")
                except OSError as e:
                    errors.append(f"listing: {e}")

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 8
    try:
        while time.monotonic() < deadline and not errors:
            r = env.veneer("detach", mnt, "/")
            if r.returncode != 0:
                errors.append("detach: " + r.stderr)
            r = env.veneer("attach", mnt, img)
            if r.returncode != 0:
                errors.append("attach: " + r.stderr)
            counts[1] += 1
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors[:5]
    assert counts[1] >= 3 and counts[0] > 0
    assert rd(os.path.join(mnt, "shared", "f3")) == blobs["shared/f3"]


# ---- pack and ls ----

def test_pack_and_ls(env):
    src = env.mkdir("tree")
    os.makedirs(os.path.join(src, "d"))
    wfile(os.path.join(src, "d", "f"), b"hello")
    os.symlink("d/f", os.path.join(src, "link"))
    img = env.path("out.sqfs")
    r = env.veneer("pack", src, "-o", img)
    assert r.returncode == 0, r.stderr
    img2 = env.path("out2.sqfs")
    env.veneer("pack", src, "-o", img2, check=True)
    assert rd(img) == rd(img2)  # reproducible
    r = env.veneer("pack", src, "-o", img)
    assert r.returncode != 0 and "exists" in r.stderr
    r = env.veneer("ls", img)
    assert r.returncode == 0
    assert "link -> d/f" in r.stdout and " d" in r.stdout
    r = env.veneer("ls", img, "/d")
    assert r.returncode == 0 and r.stdout.rstrip().endswith("f")
    r = env.veneer("ls", img, "/nope")
    assert r.returncode != 0 and "nope" in r.stderr
    wfile(env.path("notimg"), b"just text, not an image at all" * 10)
    r = env.veneer("ls", env.path("notimg"))
    assert r.returncode != 0 and "not a squashfs image" in r.stderr
    r = env.veneer("pack", env.path("missing"), "-o", env.path("x.sqfs"))
    assert r.returncode != 0 and "missing" in r.stderr


def test_large_image_directory(env):
    """Names in a large directory come from its index: every one, and nothing else."""
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    tree = {f"big/n{i:04d}": str(i).encode() for i in range(600)}
    img = pack(env, tree, comp="zstd")
    env.mount(lower, mnt, args=["--layer", img])
    d = os.path.join(mnt, "big")
    assert sorted(os.listdir(d)) == sorted(f"n{i:04d}" for i in range(600))
    for i in range(0, 600, 7):
        assert rd(os.path.join(d, f"n{i:04d}")) == str(i).encode()
    for name in ("n0600", "n-1", "N0001", "n000", "n00010"):
        assert err(os.stat, os.path.join(d, name)) == errno.ENOENT
    inos = {os.stat(os.path.join(d, f"n{i:04d}")).st_ino for i in range(600)}
    assert len(inos) == 600


@pytest.mark.parametrize("comp", ["zstd", "xz"])
def test_random_reads_across_blocks(env, comp):
    """Reads of any size at any offset, inside a block, across blocks and past
    the end, give the image's bytes (small reads offer whole blocks to the
    page cache: later reads come from there)."""
    import random
    rnd = random.Random(11)
    data = b"".join(f"{i:08d} ".encode() * 50 + rnd.randbytes(300) for i in range(3000))
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    img = pack(env, {"big": data, "small": data[:5000]}, comp=comp)
    env.mount(lower, mnt, args=["--layer", img])
    fd = os.open(os.path.join(mnt, "big"), os.O_RDONLY)
    try:
        for _ in range(1500):
            off = rnd.choice([rnd.randrange(0, len(data)), len(data) - rnd.randrange(0, 140000),
                              rnd.randrange(0, len(data) // 131072 + 1) * 131072 - 1])
            n = rnd.choice([1, 100, 4096, 5000, 70000, 131072, 200000])
            off = max(off, 0)
            assert os.pread(fd, n, off) == data[off:off + n], (off, n)
    finally:
        os.close(fd)
    assert rd(os.path.join(mnt, "big")) == data
    assert rd(os.path.join(mnt, "small")) == data[:5000]


def test_directory_source_does_not_cross_mounts(env):
    """A directory source that holds a mount point (its own mount, above all,
    would bring lookups back to the daemon) shows nothing under it."""
    src = env.mkdir("src")
    wfile(os.path.join(src, "f"), b"in the source")
    inner = env.mkdir("src", "sub")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", inner], check=True)
    try:
        wfile(os.path.join(inner, "g"), b"on another filesystem")
        lower = env.mkdir("lower")
        mnt = env.mkdir("mnt")
        m = env.mount(lower, mnt, args=["--layer", src])
        assert rd(os.path.join(mnt, "f")) == b"in the source"
        assert err(os.stat, os.path.join(mnt, "sub", "g")) == errno.ENOENT
        m.stop()
    finally:
        subprocess.run(["umount", "-l", inner])
