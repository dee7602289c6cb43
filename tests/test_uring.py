"""FUSE over io_uring (--uring): requests come through one io_uring queue per
CPU and their replies are committed there; INIT, FORGET, INTERRUPT and
notifications stay on the device.

The kernel offers it only while the fuse module's enable_uring parameter is
on, a host-wide setting veneer never changes: the mount is refused, saying
why, while it is off.  These tests switch it on for their mounts and put the
old value back; without root or without a kernel that has it they skip,
saying why.
"""
import hashlib
import json
import os
import stat
import subprocess

import pytest

from conftest import VENEER, rd, wfile
import test_killpriv

PARAM = "/sys/module/fuse/parameters/enable_uring"


def set_param(value):
    with open(PARAM, "w") as f:
        f.write(value)


@pytest.fixture
def uring_param():
    """Yields a function that sets enable_uring; the old value comes back after."""
    if not os.path.exists(PARAM):
        pytest.skip("this kernel has no FUSE over io_uring (Linux 6.14+, CONFIG_FUSE_IO_URING)")
    if os.geteuid() != 0:
        pytest.skip("switching enable_uring needs root")
    with open(PARAM) as f:
        old = f.read().strip()
    try:
        yield set_param
    finally:
        set_param(old)


@pytest.fixture
def uring_on(uring_param):
    uring_param("1")


def status(env, mnt):
    return json.loads(env.veneer("status", "--json", mnt, check=True).stdout)["opens"]


def test_refused_while_the_host_has_it_off(env, uring_param):
    uring_param("0")
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    r = subprocess.run([VENEER, "mount", "--uring", lower, mnt], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0
    assert "enable_uring is N" in r.stderr and "never changes it" in r.stderr, r.stderr
    with open("/proc/self/mountinfo") as f:
        assert mnt not in f.read()
    with open(PARAM) as f:
        assert f.read().strip() == "N"   # untouched


def test_requests_and_replies_go_through_the_rings(env, uring_on):
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    m = env.mount(lower, mnt, ["--uring", "--opens=send"])
    before = status(env, mnt)
    assert before["uring"] is True, m.log()
    data = os.urandom((1 << 20) + 12345)     # writes and reads of max_write and a tail
    wfile(os.path.join(mnt, "big"), data)
    os.mkdir(os.path.join(mnt, "d"))
    for i in range(50):
        wfile(os.path.join(mnt, "d", f"f{i}"), b"x" * i, 0o640)
    os.rename(os.path.join(mnt, "d", "f0"), os.path.join(mnt, "d", "renamed"))
    os.unlink(os.path.join(mnt, "d", "f1"))
    os.setxattr(os.path.join(mnt, "big"), "user.k", b"v")
    assert os.getxattr(os.path.join(mnt, "big"), "user.k") == b"v"
    assert hashlib.sha256(rd(os.path.join(mnt, "big"))).digest() == hashlib.sha256(data).digest()
    assert rd(os.path.join(lower, "big")) == data
    assert sorted(os.listdir(os.path.join(mnt, "d"))) == sorted(
        ["renamed"] + [f"f{i}" for i in range(2, 50)])
    assert stat.S_IMODE(os.stat(os.path.join(mnt, "d", "f7")).st_mode) == 0o640
    with pytest.raises(FileNotFoundError):
        os.stat(os.path.join(mnt, "missing"))
    after = status(env, mnt)
    # every one of those requests came through a ring: far more than the 50 creates
    assert after["uring_requests"] - before["uring_requests"] >= 150, after
    r = env.veneer("umount", mnt)
    assert r.returncode == 0, r.stderr
    assert m.proc.wait(timeout=20) == 0, m.log()


@pytest.mark.parametrize("killpriv", ["on", "off"])
def test_setuid_setgid_cleared_as_natively(env, uring_on, killpriv):
    """The kill flags of requests taken from a ring are seen as from the device."""
    native = env.mkdir("native")
    test_killpriv.make_tree(native)
    want = test_killpriv.modes_after_changes(native)
    lower = env.mkdir("lower")
    test_killpriv.make_tree(lower)
    m = env.mount(lower, None, ["--uring", "--killpriv=" + killpriv, "-o", "allow_other"])
    st = status(env, lower)
    assert st["uring"] is True and st["killpriv"] == (killpriv == "on"), (st, m.log())
    assert test_killpriv.modes_after_changes(lower) == want


def test_with_passthrough(env, uring_on):
    """OPEN replies committed through a ring still carry their backing file."""
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    m = env.mount(lower, mnt, ["--uring", "--opens=passthrough"])
    data = os.urandom(3 << 20)
    wfile(os.path.join(mnt, "f"), data)
    with open(os.path.join(mnt, "f"), "rb") as f:
        assert f.read() == data
        st = status(env, mnt)
    assert st["uring"] is True, m.log()
    if not st["passthrough"]:
        pytest.skip(f"no FUSE passthrough here: {st['passthrough_off']}")
    assert st["passthrough_files"] == 1, st
    assert rd(os.path.join(lower, "f")) == data


def test_killed_daemon_releases_the_mount(env, uring_on):
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    m = env.mount(lower, mnt, ["--uring"])
    wfile(os.path.join(mnt, "f"), b"acknowledged")
    os.kill(m.pid(), 9)
    m.proc.wait(timeout=20)
    with pytest.raises(OSError):
        os.stat(os.path.join(mnt, "f"))
    assert rd(os.path.join(lower, "f")) == b"acknowledged"
