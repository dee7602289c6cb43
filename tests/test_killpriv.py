"""Killpriv v2 (--killpriv=on, the default): the kernel stops asking for
security.capability before every write and leaves clearing setuid/setgid
bits to the daemon, telling it when (FUSE_WRITE_KILL_SUIDGID on writes,
FATTR_KILL_SUIDGID on truncate and chown, FUSE_OPEN_KILL_SUIDGID on open
with O_TRUNC) — except for fallocate and copy_file_range, where the daemon
decides from the caller's CAP_FSETID, and chown(-1, -1), which arrives as a
SETATTR that sets nothing.

Every way an unprivileged user (and root, who keeps the bits) changes a
setuid or setgid file is done on a native directory and through the mount,
in every open mode and with killpriv on and off, and the modes must match.
With passthrough, killpriv v2 stays off (passthrough writes run with the
daemon's CAP_FSETID, so only the kernel's own clearing is right there).
"""
import ctypes
import json
import mmap
import os
import stat

import pytest

from conftest import NOBODY, wfile
from parity import as_user
from test_users import nobody_dir, user_fuse  # noqa: F401 - fixture

NOFSETID = "root without CAP_FSETID"
CAP_FSETID = 4

# name -> (mode, what is done to it, by whom)
CASES = {
    "write": (0o6775, "write", NOBODY),
    "write_gnx": (0o6745, "write", NOBODY),     # setgid without g+x stays
    "odirect": (0o4755, "odirect", NOBODY),
    "pwritev": (0o4755, "pwritev", NOBODY),
    "truncate": (0o6775, "truncate", NOBODY),
    "ftruncate": (0o4755, "ftruncate", NOBODY),
    "otrunc": (0o6775, "otrunc", NOBODY),
    "chown": (0o6775, "chown", NOBODY),
    "nullchown": (0o6775, "nullchown", NOBODY),     # chown(-1, -1) clears them too
    "utime": (0o6775, "utime", NOBODY),             # ... and a timestamp change does not
    "fallocate": (0o6775, "fallocate", NOBODY),
    "copy": (0o6775, "copy", NOBODY),
    "root_write": (0o6775, "write", 0),
    "root_truncate": (0o6775, "truncate", 0),
    "root_fallocate": (0o6775, "fallocate", 0),
    "root_copy": (0o6775, "copy", 0),
    "root_nullchown": (0o6775, "nullchown", 0),
    # root without CAP_FSETID clears them like any other caller
    "nofsetid_write": (0o6775, "write", NOFSETID),
    "nofsetid_otrunc": (0o6775, "otrunc", NOFSETID),
    "nofsetid_truncate": (0o6775, "truncate", NOFSETID),
    "nofsetid_fallocate": (0o6775, "fallocate", NOFSETID),
}


def make_tree(root):
    os.chmod(root, 0o777)
    wfile(os.path.join(root, "src"), b"abcd", 0o644)
    for name, (mode, _, _) in CASES.items():
        p = os.path.join(root, name)
        wfile(p, b"0123456789" * 500, 0o644, owner=(NOBODY, NOBODY))
        os.chmod(p, mode)


def change(root, name, how):
    p = os.path.join(root, name)
    if how in ("write", "odirect", "pwritev"):
        flags = os.O_WRONLY | (os.O_DIRECT if how == "odirect" else 0)
        fd = os.open(p, flags)
        try:
            if how == "odirect":
                buf = mmap.mmap(-1, 4096)
                buf.write(b"d" * 4096)
                os.pwritev(fd, [buf], 0)
            elif how == "pwritev":
                os.pwritev(fd, [b"p", b"q"], 7)
            else:
                os.write(fd, b"x")
        finally:
            os.close(fd)
    elif how == "truncate":
        os.truncate(p, 3)
    elif how == "ftruncate":
        fd = os.open(p, os.O_WRONLY)
        os.ftruncate(fd, 5)
        os.close(fd)
    elif how == "otrunc":
        os.close(os.open(p, os.O_WRONLY | os.O_TRUNC))
    elif how == "chown":
        os.chown(p, -1, NOBODY)
    elif how == "nullchown":
        os.chown(p, -1, -1)
    elif how == "utime":
        os.utime(p, (1, 2))
    elif how == "fallocate":
        fd = os.open(p, os.O_WRONLY)
        os.posix_fallocate(fd, 0, 65536)
        os.close(fd)
    elif how == "copy":
        src = os.open(os.path.join(root, "src"), os.O_RDONLY)
        fd = os.open(p, os.O_WRONLY)
        os.copy_file_range(src, fd, 4)
        os.close(fd)
        os.close(src)


def drop_fsetid():
    """Clears CAP_FSETID from this thread's effective set (capset, version 3)."""
    libc = ctypes.CDLL(None, use_errno=True)
    hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    assert libc.capget(hdr, data) == 0
    data[0] &= ~(1 << CAP_FSETID)
    assert libc.capset(hdr, data) == 0


def run_as(uid, fn):
    if uid == NOFSETID:
        return as_user(lambda: (drop_fsetid(), fn())[1], 0)
    return as_user(fn, uid) if uid else ("ok", fn())


def modes_after_changes(root):
    got = {}
    for name, (_, how, uid) in CASES.items():
        res = run_as(uid, lambda: change(root, name, how))
        got[name] = (res[0], oct(stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode)))
    return got


def status(env, mnt):
    return json.loads(env.veneer("status", "--json", mnt, check=True).stdout)


@pytest.mark.parametrize("killpriv", ["on", "off"])
@pytest.mark.parametrize("opens", ["skip", "send", "passthrough"])
def test_setuid_setgid_cleared_as_natively(env, opens, killpriv):
    native = env.mkdir("native")
    make_tree(native)
    want = modes_after_changes(native)

    lower = env.mkdir("lower")
    make_tree(lower)
    m = env.mount(lower, None, ["--opens=" + opens, "--killpriv=" + killpriv,
                                "-o", "allow_other"])
    st = status(env, lower)["opens"]
    passthrough = st["passthrough"]
    assert st["killpriv"] == (killpriv == "on" and not passthrough), (st, m.log())
    if opens == "passthrough" and not passthrough:
        assert "passthrough off" in m.log()
    assert modes_after_changes(lower) == want


@pytest.mark.parametrize("killpriv", ["on", "off"])
def test_writes_stop_asking_for_security_capability(env, killpriv):
    """The kernel asks for security.capability before every write unless
    killpriv v2 is on; then once per file (until its attributes are next
    refreshed)."""
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    env.mount(lower, mnt, ["--opens=send", "--killpriv=" + killpriv])
    fd = os.open(os.path.join(mnt, "f"), os.O_CREAT | os.O_WRONLY, 0o644)
    for _ in range(20):
        os.write(fd, b"x" * 100)
    os.close(fd)
    ops = status(env, mnt)["operations"]
    assert ops["write"]["count"] == 20
    asked = ops.get("getxattr", {}).get("count", 0)
    if killpriv == "on":
        assert asked <= 1, ops
    else:
        assert asked == 20, ops


def test_ordinary_user_mount_has_killpriv(env, user_fuse):
    """Without root the hook still asks for killpriv v2 (passthrough alone needs root)."""
    lower = nobody_dir(env, "ulower")
    mnt = nobody_dir(env, "umnt")
    m = env.mount(lower, mnt, ["--opens=passthrough"], user=NOBODY, env=user_fuse)
    p = os.path.join(mnt, "f")

    def work():
        wfile(p, b"#!/bin/sh\n", 0o644)
        os.chmod(p, 0o6775)
        with open(p, "ab") as f:   # the owner lacks CAP_FSETID: its write clears both
            f.write(b"echo\n")
        return oct(stat.S_IMODE(os.stat(p).st_mode))
    assert as_user(work, NOBODY) == ("ok", "0o775")
    r = env.veneer("status", "--json", mnt, user=NOBODY, env=user_fuse, check=True)
    st = json.loads(r.stdout)["opens"]
    assert st["passthrough"] is False and st["killpriv"] is True, (st, m.log())
