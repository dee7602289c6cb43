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
import threading

import pytest

from conftest import BUILD, NOBODY, VENEER, rd, wfile
from parity import as_user
import test_killpriv
from test_users import nobody_dir, user_fuse  # noqa: F401 - fixture

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


@pytest.mark.stress
@pytest.mark.timeout(180)
def test_concurrent_requests_and_late_replies(env, uring_on):
    """Eight threads at once, more requests in flight than a queue has
    entries; every mkdir is pended by a filter and answered later from the
    filter's own thread, so its reply reaches the ring from a thread that is
    not the queue's (the commit the queue's thread is woken for).  Under
    TSan (`-m stress`) this is the ring's concurrency check."""
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    so = os.path.join(BUILD, "tests", "pending_filter.so")
    m = env.mount(lower, mnt, ["--uring", "--opens=send", "--filter", so])
    before = status(env, mnt)
    assert before["uring"] is True, m.log()
    threads, rounds = 8, 25
    errors = []

    def worker(k):
        try:
            for i in range(rounds):
                d = os.path.join(mnt, f"d{k}-{i}")
                os.mkdir(d)                         # pended, answered by the filter's thread
                with pytest.raises(PermissionError):
                    os.mkdir(os.path.join(mnt, f"deny-{k}-{i}"))
                data = os.urandom(1000 + 4096 * (i % 5))
                wfile(os.path.join(d, "f"), data)
                assert rd(os.path.join(d, "f")) == data
                os.rename(os.path.join(d, "f"), os.path.join(d, "g"))
                assert os.stat(os.path.join(d, "g")).st_size == len(data)
                assert os.listdir(d) == ["g"]
                if i % 2:
                    os.unlink(os.path.join(d, "g"))
                    os.rmdir(d)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append((k, repr(e)))

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    want = sorted(f"d{k}-{i}" for k in range(threads) for i in range(0, rounds, 2))
    assert sorted(os.listdir(mnt)) == want
    assert sorted(os.listdir(lower)) == want
    for name in want:
        assert os.listdir(os.path.join(lower, name)) == ["g"]
    after = status(env, mnt)
    assert after["uring"] is True
    # about 15 requests per round through the rings (a lower bound well below)
    assert after["uring_requests"] - before["uring_requests"] >= threads * rounds * 8, after
    assert "uring:" not in m.log(), m.log()


def test_ordinary_users_mount(env, uring_on, user_fuse):  # noqa: F811 - fixture
    """An unprivileged user's mount: the kernel lets any mount's daemon use
    io_uring queues (no capability is asked for) unless io_uring itself is
    closed to it by the kernel.io_uring_disabled sysctl; then the daemon
    says why and serves the device."""
    lower = nobody_dir(env, "ulower")
    mnt = nobody_dir(env, "umnt")
    wfile(os.path.join(lower, "f"), b"user data", 0o644, owner=(NOBODY, NOBODY))
    m = env.mount(lower, mnt, ["--uring"], user=NOBODY, env=user_fuse)
    assert as_user(lambda: rd(os.path.join(mnt, "f")), NOBODY) == ("ok", b"user data")
    assert as_user(lambda: wfile(os.path.join(mnt, "g"), b"written"), NOBODY)[0] == "ok"
    r = env.veneer("status", "--json", mnt, user=NOBODY, env=user_fuse, check=True)
    st = json.loads(r.stdout)["opens"]
    try:
        with open("/proc/sys/kernel/io_uring_disabled") as f:
            closed = int(f.read()) != 0     # 1: only io_uring_group (nobody is not in it)
    except FileNotFoundError:
        closed = False
    if closed:
        assert st["uring"] is False, st
        assert "uring off" in m.log(), m.log()
    else:
        assert st["uring"] is True, (st, m.log())
        assert st["uring_requests"] >= 2, st
        assert "uring on" in m.log(), m.log()
    assert rd(os.path.join(lower, "g")) == b"written"
