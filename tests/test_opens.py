"""Skipped opens (FUSE_CAP_NO_OPEN_SUPPORT): what changes, pinned as documented.

With --opens=skip (the default in place as root) the kernel opens files
without asking the daemon, so an error only the real filesystem gives at
open(2) comes from the first write instead: an immutable file shows it.
Checks the kernel makes on its own inode (ETXTBSY for a running program)
stay at open in both modes.
"""
import errno
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import wfile
from parity import Dir


def running_copy_of_sleep(directory):
    prog = os.path.join(directory, "sleeper")
    shutil.copy2(shutil.which("sleep"), prog)
    proc = subprocess.Popen([prog, "30"])
    time.sleep(0.2)
    return prog, proc


@pytest.mark.parametrize("opens", ["skip", "send"])
def test_running_program_is_busy_at_open(env, opens):
    lower = env.mkdir("inplace")
    env.mount(lower, args=[f"--opens={opens}"])
    prog, proc = running_copy_of_sleep(lower)
    try:
        with pytest.raises(OSError) as e:
            os.open(prog, os.O_WRONLY)
        assert e.value.errno == errno.ETXTBSY
    finally:
        proc.kill()
        proc.wait()


def make_immutable(path):
    r = subprocess.run(["chattr", "+i", path], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"the filesystem under {path} has no immutable flag: {r.stderr.strip()}")


@pytest.mark.parametrize("opens", ["skip", "send"])
def test_immutable_file_refuses_writes(env, opens):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    real = os.path.join(lower, "frozen")
    p = os.path.join(mnt, "frozen")
    with open(real, "w") as f:
        f.write("frozen")
    make_immutable(real)
    try:
        env.mount(lower, mnt, ["-o", "allow_other", "--cache=always", f"--opens={opens}"])
        if opens == "send":
            with pytest.raises(OSError) as e:
                os.open(p, os.O_WRONLY)
            assert e.value.errno == errno.EPERM
        else:
            fd = os.open(p, os.O_WRONLY)	# the kernel did not ask: the write tells
            try:
                with pytest.raises(OSError) as e:
                    os.write(fd, b"x")
                assert e.value.errno == errno.EPERM
            finally:
                os.close(fd)
        with open(p) as f:
            assert f.read() == "frozen"
    finally:
        subprocess.run(["chattr", "-i", real], capture_output=True)


def test_skipped_opens_truncate_and_append(env):
    lower = env.mkdir("inplace")
    env.mount(lower)
    p = os.path.join(lower, "f")
    with open(p, "w") as f:
        f.write("0123456789")
    with open(p, "a") as f:
        f.write("abc")
    with open(p) as f:
        assert f.read() == "0123456789abc"
    with open(p, "w") as f:		# O_TRUNC arrives as a setattr
        f.write("new")
    with open(p) as f:
        assert f.read() == "new"
    assert os.stat(p).st_size == 3


def test_skip_needs_default_permissions(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    r = env.veneer("mount", "--opens=skip", lower, mnt)
    assert r.returncode != 0 and "default_permissions" in r.stderr
    r = env.veneer("mount", "--opens=maybe", lower, mnt)
    assert r.returncode != 0 and "--opens" in r.stderr


# ---- skipped directory opens (FUSE_CAP_NO_OPENDIR_SUPPORT) ----

def op_counts(env, mnt):
    st = json.loads(env.veneer("status", "--json", mnt, check=True).stdout)
    return st["operations"]


@pytest.mark.parametrize("opens", ["skip", "send"])
def test_directory_opens_skipped_with_opens(env, opens):
    lower = env.mkdir("inplace")
    for d in ("a", "b", "c"):
        os.makedirs(os.path.join(lower, d, "sub"))
        wfile(os.path.join(lower, d, "f"), b"x")
    env.mount(lower, args=[f"--opens={opens}"])
    for d in ("a", "b", "c"):
        assert sorted(os.listdir(os.path.join(lower, d))) == ["f", "sub"]
        fd = os.open(os.path.join(lower, d), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)            # FSYNCDIR, without a handle when skipped
        finally:
            os.close(fd)
    ops = op_counts(env, lower)
    assert ops["readdir"]["count"] >= 3
    assert ops["fsyncdir"]["count"] >= 3 and ops["fsyncdir"]["errors"] == 0
    if opens == "skip":
        assert "opendir" not in ops and "releasedir" not in ops, ops.keys()
    else:
        assert ops["opendir"]["count"] >= 3


def test_listing_continues_across_a_newer_listing(env):
    """Without handles the daemon keeps one listing per directory, and a
    second reader replaces it; offsets come from names, so the first reader
    still sees every name that stayed exactly once (POSIX readdir)."""
    lower = env.mkdir("inplace")
    d = os.path.join(lower, "big")
    os.makedirs(d)
    names = [f"entry-with-a-longish-name-{i:05d}" for i in range(3000)]
    for n in names:
        open(os.path.join(d, n), "w").close()
    env.mount(lower)
    a = Dir(d)
    try:
        seen = []
        while len(seen) < 600:
            n = a.read()
            assert n is not None
            if n not in (".", ".."):
                seen.append(n)
        pos = a.tell()
        following = [a.read() for _ in range(20)]
        # the directory changes, and a second reader lists it whole
        removed = set(n for n in names if n not in seen)
        removed = set(sorted(removed)[::50])
        for n in removed:
            os.unlink(os.path.join(d, n))
        added = {f"new-{i}" for i in range(200)}
        for n in added:
            open(os.path.join(d, n), "w").close()
        assert set(os.listdir(d)) == (set(names) - removed) | added
        # seekdir back within the first reader: the same names follow
        a.seek(pos)
        rest = []
        while (n := a.read()) is not None:
            rest.append(n)
        assert [n for n in rest if n not in added][:5] == \
            [n for n in following if n not in removed][:5]
    finally:
        a.close()
    listed = [n for n in seen + rest if n not in (".", "..")]
    assert len(listed) == len(set(listed)), "a name listed twice"
    stayed = set(names) - removed
    assert stayed <= set(listed), sorted(stayed - set(listed))[:5]
    assert set(listed) <= set(names) | added
