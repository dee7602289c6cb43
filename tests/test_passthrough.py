"""FUSE passthrough (--opens=passthrough): the kernel reads and writes real
files itself.  What the daemon sees, when data comes back to it (a trace
listener), the kernel's one-mode-per-inode rule under mixed opens, the page
cache after passthrough writes, setuid files, a killed daemon and the
fallback for ordinary users.

Passthrough needs Linux 6.9 or later: on an older kernel the mount logs why
it is off, and these tests skip saying so.
"""
import json
import mmap
import os
import signal
import stat

import pytest

from conftest import BUILD, NOBODY, rd, wfile
from parity import as_user
from test_trace import Watcher, settle
from test_users import nobody_dir, user_fuse  # noqa: F401 - fixture

PT = ["--opens=passthrough"]


def mount_pt(env, args=(), in_place=False):
    lower = env.mkdir("lower")
    mnt = lower if in_place else env.mkdir("mnt")
    m = env.mount(lower, None if in_place else mnt, PT + list(args))
    return lower, mnt, m


def need_passthrough(m, mnt):
    """Skips, with the kernel's reason, where the kernel has no passthrough."""
    probe = os.path.join(mnt, ".probe")
    with open(probe, "wb") as f:
        f.write(b"x")
    os.unlink(probe)
    log = m.log()
    if "passthrough off" in log:
        reason = log[log.index("passthrough off"):].splitlines()[0]
        pytest.skip(f"no FUSE passthrough here ({reason}); it needs Linux 6.9 or later")


def stats(env, mnt):
    st = json.loads(env.veneer("status", "--json", mnt, check=True).stdout)
    ops = st["operations"]
    return {k: ops.get(k, {}).get("count", 0) for k in ("open", "create", "read", "write")}, st


def test_data_never_reaches_the_daemon(env):
    lower, mnt, m = mount_pt(env)
    need_passthrough(m, mnt)
    data = os.urandom(3 << 20)
    with open(os.path.join(mnt, "big"), "wb") as f:
        f.write(data)
    assert rd(os.path.join(lower, "big")) == data
    assert rd(os.path.join(mnt, "big")) == data
    fd = os.open(os.path.join(mnt, "big"), os.O_RDWR)
    try:
        with mmap.mmap(fd, 0) as mp:	# shared, writable: the backing file's pages
            assert mp[1000:2000] == data[1000:2000]
            mp[0:4] = b"MMAP"
            mp.flush()
        os.pwrite(fd, b"PWRT", 8)
        os.fsync(fd)
    finally:
        os.close(fd)
    got = rd(os.path.join(lower, "big"))
    assert got[:4] == b"MMAP" and got[8:12] == b"PWRT" and got[12:] == data[12:]
    counts, st = stats(env, mnt)
    assert counts["read"] == 0 and counts["write"] == 0, counts
    assert counts["open"] + counts["create"] >= 3
    assert st["bytes"]["read_real"] == 0 and st["bytes"]["written"] == 0
    assert st["opens"] == {"mode": "passthrough", "passthrough": True, "passthrough_files": 0,
                           "passthrough_off": None, "killpriv": False, "uring": False,
                           "uring_requests": 0}


def test_a_trace_listener_brings_data_back(env):
    lower, mnt, m = mount_pt(env)
    need_passthrough(m, mnt)
    wfile(os.path.join(lower, "f"), b"traced bytes")
    w = Watcher(mnt, "--json", "--op", "read")
    assert rd(os.path.join(mnt, "f")) == b"traced bytes"
    settle()
    recs, _ = w.records()
    assert any(r["op"] == "read" and r["path"] == "/f" for r in recs), recs
    before, _ = stats(env, mnt)
    assert before["read"] >= 1
    assert rd(os.path.join(mnt, "f")) == b"traced bytes"	# nobody listens: passthrough again
    after, _ = stats(env, mnt)
    assert after["read"] == before["read"]


def test_mixed_opens_of_one_file_never_fail(env):
    """A file open through the page cache keeps later opens there, and one
    open in passthrough keeps later opens in passthrough: the kernel would
    fail an open of the other kind with EIO."""
    lower, mnt, m = mount_pt(env, ["--cache=always"])
    need_passthrough(m, mnt)
    p = os.path.join(mnt, "f")
    wfile(os.path.join(lower, "f"), b"one")
    w = Watcher(mnt, "--op", "read")
    cached = os.open(p, os.O_RDWR)	# the daemon serves it: page cache
    w.stop()
    later = os.open(p, os.O_RDWR)	# must join the page cache mode
    try:
        os.pwrite(later, b"two", 0)
        assert os.pread(cached, 3, 0) == b"two"
    finally:
        os.close(later)
        os.close(cached)
    reads_before, _ = stats(env, mnt)
    pt = os.open(p, os.O_RDWR)	# nothing else open: passthrough
    w = Watcher(mnt, "--op", "read")
    joined = os.open(p, os.O_RDONLY)	# a listener now, but the inode is in passthrough
    try:
        assert stats(env, mnt)[1]["opens"]["passthrough_files"] == 2
        os.pwrite(pt, b"333", 0)
        assert os.pread(joined, 3, 0) == b"333"
    finally:
        os.close(joined)
        os.close(pt)
    w.stop()
    reads_after, _ = stats(env, mnt)
    assert reads_after["read"] == reads_before["read"]
    assert rd(os.path.join(lower, "f")) == b"333"


def test_page_cache_starts_afresh_after_passthrough_writes(env):
    lower, mnt, m = mount_pt(env, ["--cache=always"])
    need_passthrough(m, mnt)
    p = os.path.join(mnt, "f")
    wfile(os.path.join(lower, "f"), b"cached-old")
    w = Watcher(mnt, "--op", "read")
    assert rd(p) == b"cached-old"	# pages kept (--cache=always)
    w.stop()
    with open(p, "r+b") as f:	# passthrough: writes go around those pages
        f.write(b"PASSED-new")
    w = Watcher(mnt, "--op", "read")
    try:
        assert rd(p) == b"PASSED-new"
    finally:
        w.stop()


def test_setuid_file_loses_its_bits_when_a_user_writes(env):
    """Passthrough writes run with the daemon's credentials, which would keep
    the bits; the kernel clears them first with the writer's own, as a
    native write does."""
    lower, mnt, m = mount_pt(env, ["-o", "allow_other"], in_place=True)
    need_passthrough(m, mnt)
    for name, mode in (("suid", 0o4777), ("sgid", 0o2777)):
        wfile(os.path.join(lower, name), b"#!/bin/sh\n", mode)
        os.chmod(os.path.join(lower, name), mode)

        def write(name=name):
            with open(os.path.join(mnt, name), "ab") as f:
                f.write(b"echo\n")
        assert as_user(write, NOBODY) == ("ok", None)
        got = stat.S_IMODE(os.stat(os.path.join(lower, name)).st_mode)
        assert got == 0o777, (name, oct(got))


def test_killed_daemon_loses_no_acknowledged_write(env):
    lower, mnt, m = mount_pt(env)
    need_passthrough(m, mnt)
    data = os.urandom(1 << 20)
    fd = os.open(os.path.join(mnt, "f"), os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, data)
    os.kill(m.pid(), signal.SIGKILL)
    m.proc.wait(timeout=20)
    try:
        os.close(fd)
    except OSError:
        pass
    assert rd(os.path.join(lower, "f")) == data


def test_ordinary_users_mount_falls_back(env, user_fuse):  # noqa: F811 - fixture
    lower = nobody_dir(env, "ulower")
    mnt = nobody_dir(env, "umnt")
    wfile(os.path.join(lower, "f"), b"user data", 0o644, owner=(NOBODY, NOBODY))
    m = env.mount(lower, mnt, PT, user=NOBODY, env=user_fuse)
    assert as_user(lambda: rd(os.path.join(mnt, "f")), NOBODY) == ("ok", b"user data")
    assert "passthrough off" in m.log() and "CAP_SYS_ADMIN" in m.log()
    r = env.veneer("status", "--json", mnt, user=NOBODY, env=user_fuse, check=True)
    st = json.loads(r.stdout)
    assert st["operations"]["read"]["count"] >= 1
    assert st["opens"]["passthrough"] is False and "CAP_SYS_ADMIN" in st["opens"]["passthrough_off"]


def test_a_filter_that_wants_data_keeps_passthrough_off(env):
    """A filter with READ or WRITE handlers and no VN_FILTER_DATA_SKIPPABLE
    sees every read: the mount never passes files through."""
    so = os.path.join(BUILD, "tests", "rewrite_filter.so")
    lower, mnt, m = mount_pt(env, ["--filter", so])
    wfile(os.path.join(lower, "f"), b"plain")
    rd(os.path.join(mnt, "f"))
    counts, _ = stats(env, mnt)
    assert counts["read"] >= 1

