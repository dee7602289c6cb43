"""Filters through a real mount: each verdict, contexts, loading and refusal."""
import errno
import os
import re
import subprocess
import time

import pytest

from conftest import BUILD, TOP, installed_pkg_config


def module(name):
    path = os.path.join(BUILD, "tests", name + "_filter.so")
    assert os.path.exists(path), f"test filter {path} was not built"
    return path


def test_filter_completes_operation(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    open(os.path.join(lower, "f"), "w").close()
    env.mount(lower, mnt, ["--filter", module("complete")])
    # answered by the filter: the real file has no such attribute
    assert os.getxattr(os.path.join(mnt, "f"), "user.vn.complete") == b"completed-by-filter"
    with pytest.raises(OSError) as e:
        os.getxattr(os.path.join(lower, "f"), "user.vn.complete")
    assert e.value.errno == errno.ENODATA
    # other attributes still pass down
    os.setxattr(os.path.join(lower, "f"), "user.other", b"real")
    assert os.getxattr(os.path.join(mnt, "f"), "user.other") == b"real"


def test_filter_rewrites_result_in_post(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    with open(os.path.join(lower, "a.upper"), "w") as f:
        f.write("make me loud")
    with open(os.path.join(lower, "plain"), "w") as f:
        f.write("stay quiet")
    os.chmod(os.path.join(lower, "a.upper"), 0o644)
    env.mount(lower, mnt, ["--cache=never", "--filter", module("rewrite")])
    with open(os.path.join(mnt, "a.upper")) as f:
        assert f.read() == "MAKE ME LOUD"
    with open(os.path.join(mnt, "plain")) as f:
        assert f.read() == "stay quiet"
    assert os.stat(os.path.join(mnt, "a.upper")).st_mode & 0o777 == 0o400
    assert os.stat(os.path.join(lower, "a.upper")).st_mode & 0o777 == 0o644


def test_filter_pends_and_completes_from_another_thread(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    env.mount(lower, mnt, ["--cache=always", "--filter", module("pending")])
    with pytest.raises(OSError) as e:
        os.mkdir(os.path.join(mnt, "deny-this"))
    assert e.value.errno == errno.EPERM
    assert not os.path.exists(os.path.join(lower, "deny-this"))
    os.mkdir(os.path.join(mnt, "ok-0"))
    # the post callback ran after the pended pre resumed: it set st_nlink
    # (asked at once: the kernel may fetch the attributes again later)
    assert os.stat(os.path.join(mnt, "ok-0")).st_nlink == 42
    for i in range(1, 20):
        os.mkdir(os.path.join(mnt, f"ok-{i}"))
    assert sorted(os.listdir(lower)) == sorted(f"ok-{i}" for i in range(20))


def read_counts(path):
    with open(path) as f:
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", f.read())}


def test_filter_contexts_are_freed(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    for d in range(5):
        os.mkdir(os.path.join(lower, f"d{d}"))
        for i in range(20):
            with open(os.path.join(lower, f"d{d}", f"f{i}"), "w") as f:
                f.write("x")
    report = env.path("contexts.txt")
    m = env.mount(lower, mnt, ["--cache=always", "--filter", module("context") + ":" + report])
    for root, dirs, files in os.walk(mnt):
        for name in files:
            with open(os.path.join(root, name)) as f:
                f.read()
    c = read_counts(report)
    assert c["node_allocs"] >= 105 and c["file_allocs"] >= 100
    # RELEASE reaches the daemon asynchronously after close() returns
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and c["file_frees"] != c["file_allocs"]:
        time.sleep(0.05)
        c = read_counts(report)
    assert c["file_frees"] == c["file_allocs"]
    # the kernel forgets inodes under memory pressure: their contexts go with them
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and read_counts(report)["node_frees"] == 0:
        time.sleep(0.1)
    assert read_counts(report)["node_frees"] > 0
    assert m.stop() == 0
    c = read_counts(report)
    assert c["node_frees"] == c["node_allocs"]
    assert c["file_frees"] == c["file_allocs"]


@pytest.mark.parametrize("name,message", [
    ("bad_version", "API"),
    ("no_entry", "vn_filter_entry"),
])
def test_bad_filter_is_refused(env, name, message):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    r = env.veneer("mount", "--filter", module(name), lower, mnt)
    assert r.returncode != 0
    assert "veneer:" in r.stderr and module(name) in r.stderr and message in r.stderr
    assert subprocess.run(["mountpoint", "-q", mnt]).returncode != 0


def test_missing_filter_is_refused(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    r = env.veneer("mount", "--filter", env.path("nope.so"), lower, mnt)
    assert r.returncode != 0 and "nope.so" in r.stderr


def test_example_filter_builds_out_of_tree(env):
    """examples/deny_writes.c built only against the installed header and .pc file."""
    cflags = installed_pkg_config(env, "veneer-filter", "--cflags")
    so = env.path("deny_writes.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-Wall", "-Werror", "-o", so,
                    os.path.join(TOP, "examples", "deny_writes.c")] + cflags, check=True)
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    os.mkdir(os.path.join(lower, "protected"))
    with open(os.path.join(lower, "protected", "keep"), "w") as f:
        f.write("safe")
    env.mount(lower, mnt, ["--filter", so + ":/protected"])
    for action in (lambda: open(os.path.join(mnt, "protected", "new"), "w"),
                   lambda: open(os.path.join(mnt, "protected", "keep"), "w"),
                   lambda: os.unlink(os.path.join(mnt, "protected", "keep")),
                   lambda: os.rename(os.path.join(mnt, "protected", "keep"),
                                     os.path.join(mnt, "out"))):
        with pytest.raises(PermissionError):
            action()
    with open(os.path.join(mnt, "protected", "keep")) as f:
        assert f.read() == "safe"
    with open(os.path.join(mnt, "free"), "w") as f:
        f.write("ok")
    assert os.path.exists(os.path.join(lower, "free"))
    # past PATH_MAX no path can be built: the filter still tells protected from free
    for top in ("protected", "free-tree"):
        os.close(deep_dir(os.path.join(lower, top), create=True))
    for top, refused in (("protected", True), ("free-tree", False)):
        fd = deep_dir(os.path.join(mnt, top), create=False)
        try:
            if refused:
                with pytest.raises(PermissionError):
                    os.open("new", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
                with pytest.raises(PermissionError):
                    os.mkdir("sub", dir_fd=fd)
            else:
                os.close(os.open("new", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
        finally:
            os.close(fd)


def deep_dir(top, create):
    """A directory descriptor more than PATH_MAX below TOP (made when CREATE)."""
    if create:
        os.makedirs(top, exist_ok=True)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    name = "d" * 200
    for _ in range(22):
        if create:
            os.mkdir(name, dir_fd=fd)
        below = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = below
    return fd
