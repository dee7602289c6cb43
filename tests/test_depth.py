"""Real files at depth: a layer must never change what real files do.

Programs reach deep files through a deep working directory, so the path
from the mount root grows past PATH_MAX while each call's own path stays
short.  Every call on real files there must succeed as it does natively,
and a 256-byte name must give ENAMETOOLONG for every call, in place with
a layer attached at "/" (whose image covers the first levels of the deep
tree, so those are merged directories; once as an image, once as a
directory source) and without one.  The same script
runs natively and its results are compared.
"""
import errno
import os

import pytest

from conftest import pack

pytestmark = pytest.mark.timeout(180)

COMP = 200          # bytes per directory name on the way down
LEVELS = 27         # 27 * 201 bytes: the working directory is 5,400+ bytes deep
LONG = "n" * 256    # one byte past NAME_MAX


def errname(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def call(results, label, fn, *args):
    """Runs fn, recording 'ok' or the errno's name under LABEL."""
    try:
        fn(*args)
        results.append((label, "ok"))
    except OSError as e:
        results.append((label, errname(e)))


def create_excl(name):
    os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))


def open_rw(name):
    fd = os.open(name, os.O_RDWR)
    os.write(fd, b"data")
    os.close(fd)


def calls_on_real_files(results):
    """In the current (deep) directory: every call on real objects."""
    call(results, "mkdir", os.mkdir, "d")
    call(results, "create", create_excl, "f")
    call(results, "open", open_rw, "f")
    call(results, "chmod", os.chmod, "f", 0o600)
    call(results, "chown", os.chown, "f", 1, 1)
    call(results, "stat", lambda: results.append(("size", os.stat("f").st_size)))
    call(results, "truncate", os.truncate, "f", 2)
    call(results, "link", os.link, "f", "g")
    call(results, "rename", os.rename, "g", "d/h")
    call(results, "listdir", lambda: results.append(("names", sorted(os.listdir(".")))))
    call(results, "unlink", os.unlink, "d/h")
    call(results, "rmdir", os.rmdir, "d")
    # the same calls with a name one byte too long
    call(results, "mkdir-long", os.mkdir, LONG)
    call(results, "create-long", create_excl, LONG)
    call(results, "open-long", os.open, LONG, os.O_RDONLY)
    call(results, "chmod-long", os.chmod, LONG, 0o600)
    call(results, "chown-long", os.chown, LONG, 1, 1)
    call(results, "stat-long", os.stat, LONG)
    call(results, "truncate-long", os.truncate, LONG, 0)
    call(results, "link-long", os.link, "f", LONG)
    call(results, "rename-long", os.rename, "f", LONG)
    call(results, "rename-from-long", os.rename, LONG, "x")
    call(results, "unlink-long", os.unlink, LONG)
    call(results, "rmdir-long", os.rmdir, LONG)
    call(results, "unlink", os.unlink, "f")


def component(i):
    return ("c%02d" % i) + "x" * (COMP - 3)


def go_deep(top):
    """From TOP, makes and enters LEVELS directories; returns the cwd's depth in bytes."""
    os.chdir(top)
    depth = 0
    for i in range(LEVELS):
        name = component(i)
        if not os.path.isdir(name):	# the first levels may exist already
            os.mkdir(name)
        os.chdir(name)
        depth += 1 + len(name)
    return depth


def run_deep(top):
    old = os.getcwd()
    try:
        depth = go_deep(top)
        results = []
        calls_on_real_files(results)
        return depth, results
    finally:
        os.chdir(old)


def image_covering_top(env):
    """An image whose tree repeats the first levels of the deep tree, with
    a virtual file at each, plus an unrelated directory."""
    tree = {"other/v.txt": b"virtual\n"}
    rel = "deep"
    for i in range(3):
        rel = os.path.join(rel, component(i))
        tree[os.path.join(rel, "v.txt")] = b"virtual %d\n" % i
    return pack(env, tree)


def native(env):
    top = env.mkdir("native", "deep")
    depth, results = run_deep(top)
    assert depth > 5000
    return results


@pytest.mark.parametrize("layer", [None, "image", "directory"],
                         ids=["no-layer", "image-at-root", "directory-at-root"])
def test_real_files_at_depth(env, layer):
    want = native(env)
    assert ("mkdir", "ok") in want and ("unlink", "ok") in want
    assert all(r == "ENAMETOOLONG" for label, r in want if label.endswith("-long")), want
    lower = env.mkdir("lower")
    top = os.path.join(lower, "deep")
    # real directories where the image has its own (made before the mount:
    # through it they would be virtual names, EEXIST)
    os.makedirs(os.path.join(top, *[component(i) for i in range(3)]))
    img = image_covering_top(env)
    src = {"image": img, "directory": img + ".src"}.get(layer)   # pack() keeps its tree
    args = ["--layer", src + ":/"] if layer else []
    env.mount(lower, args=args)
    depth, got = run_deep(top)
    assert depth > 5000
    diff = [f"{w} != {g}" for w, g in zip(want, got) if w != g]
    assert got == want, "\n".join(diff) or f"{want} != {got}"
    if layer:
        # the first levels of the deep tree are merged directories
        rel = top
        for i in range(3):
            rel = os.path.join(rel, component(i))
            with open(os.path.join(rel, "v.txt"), "rb") as f:
                assert f.read() == b"virtual %d\n" % i
        assert "v.txt" not in os.listdir(os.path.join(rel, component(3)))
