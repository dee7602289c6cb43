"""Renames of real ancestors of an attach point, with the kernel's caches warm.

A layer sits at its view path (DESIGN section 3).  Renaming a real
directory on the way to an attach point moves the real tree, never the
layer: below the new name the layer is gone, and at the old name it shows
again (synthesized).  A real directory moved onto the way to an attach
point (RENAME_EXCHANGE swaps two real directories, one of them merged)
merges with the layer there.  The kernel keeps the moved dentries, so the
daemon must invalidate what they cached.  It does so right after the
rename's reply, through the invalidation thread; the checks below allow
that thread a few seconds to catch up, and fail if any stale entry stays.
"""
import ctypes
import errno
import os
import stat
import threading
import time

import pytest

from conftest import pack, rd, wfile

pytestmark = pytest.mark.timeout(120)

RENAME_EXCHANGE = 2
AT_FDCWD = -100


def exchange(a, b):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), RENAME_EXCHANGE) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def view(root, rel):
    """What the mount shows at REL: its listing, a file's bytes, or an errno name."""
    p = os.path.join(root, rel)
    try:
        if os.path.isdir(p):
            return sorted(os.listdir(p))
        return rd(p)
    except OSError as e:
        return errno.errorcode[e.errno]


def settled(root, want, limit=5.0):
    """The view at each path of WANT, once it matches or LIMIT seconds passed."""
    deadline = time.monotonic() + limit
    while True:
        got = {rel: view(root, rel) for rel in want}
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def warm(root, rels):
    """Fills the kernel's caches: entries, negative entries, attributes, listings."""
    for rel in rels:
        view(root, rel)
        try:
            os.stat(os.path.join(root, rel))
        except OSError:
            pass


LAYER = {"v": b"V", "vd/w": b"W"}


@pytest.fixture(params=["image", "directory"])
def kind(request):
    return request.param


def mounted(env, kind="image"):
    lower = env.mkdir("lower")
    os.makedirs(os.path.join(lower, "x", "y"))
    os.makedirs(os.path.join(lower, "p", "y"))
    wfile(os.path.join(lower, "x", "y", "r"), b"R")
    wfile(os.path.join(lower, "p", "y", "r2"), b"R2")
    img = pack(env, LAYER)
    src = img if kind == "image" else img + ".src"     # pack() keeps the tree it packed
    env.mount(lower, args=["--layer", src + ":/x/y"])  # in place: long caching
    return lower


BEFORE = {
    "x": ["y"], "x/y": ["r", "v", "vd"], "x/y/v": b"V", "x/y/vd": ["w"], "x/y/vd/w": b"W",
    "x/y/r": b"R", "p/y": ["r2"], "p/y/v": "ENOENT", "p/y/vd": "ENOENT",
}


def test_rename_real_ancestor_away_from_attach_point(env, kind):
    root = mounted(env, kind)
    assert settled(root, BEFORE, 0) == BEFORE
    warm(root, list(BEFORE) + ["moved", "moved/y/v"])
    os.rename(os.path.join(root, "x"), os.path.join(root, "moved"))
    want = {
        # the real tree moved without the layer
        "moved": ["y"], "moved/y": ["r"], "moved/y/r": b"R",
        "moved/y/v": "ENOENT", "moved/y/vd": "ENOENT", "moved/y/vd/w": "ENOENT",
        # the layer stays at /x/y: synthesized on the way, its files at the attach point
        "x": ["y"], "x/y": ["v", "vd"], "x/y/v": b"V", "x/y/vd/w": b"W", "x/y/r": "ENOENT",
    }
    assert settled(root, want) == want
    # and back: the real directory merges with the layer again
    assert os.stat(os.path.join(root, "x")).st_mode & 0o777 == 0o555
    with pytest.raises(OSError) as e:
        os.rename(os.path.join(root, "moved"), os.path.join(root, "x"))
    assert e.value.errno == errno.EROFS  # /x is a synthesized directory now


def test_exchange_moves_real_directories_onto_and_off_an_attach_point(env, kind):
    root = mounted(env, kind)
    assert settled(root, BEFORE, 0) == BEFORE
    warm(root, list(BEFORE))
    exchange(os.path.join(root, "x"), os.path.join(root, "p"))
    want = {
        # the old /p is now on the way to the attach point: merged there
        "x": ["y"], "x/y": ["r2", "v", "vd"], "x/y/v": b"V", "x/y/vd/w": b"W",
        "x/y/r2": b"R2", "x/y/r": "ENOENT",
        # the old /x left it: only its real files
        "p": ["y"], "p/y": ["r"], "p/y/r": b"R", "p/y/v": "ENOENT", "p/y/vd": "ENOENT",
    }
    assert settled(root, want) == want
    exchange(os.path.join(root, "x"), os.path.join(root, "p"))
    assert settled(root, BEFORE) == BEFORE


def test_rename_inside_uncovered_directory_keeps_layers(env):
    """A rename where no layer covers either parent changes no stack."""
    root = mounted(env)
    os.makedirs(os.path.join(root, "p", "q"))
    warm(root, list(BEFORE))
    os.rename(os.path.join(root, "p", "q"), os.path.join(root, "p", "q2"))
    os.rename(os.path.join(root, "p", "y"), os.path.join(root, "p", "y2"))
    assert view(root, "p") == ["q2", "y2"]
    assert settled(root, {"x/y": ["r", "v", "vd"]}, 0) == {"x/y": ["r", "v", "vd"]}


def test_rename_over_directory_showing_layer_entries(env, kind):
    """rmdir of a real, empty directory that shows a layer's entries says
    ENOTEMPTY; a directory renamed over it gets the same answer (a file,
    EISDIR, as natively), while an exchange, which replaces nothing, goes
    through.  The layer's entries stay where they were."""
    lower = env.mkdir("lower")
    os.makedirs(os.path.join(lower, "e", "f"))
    os.makedirs(os.path.join(lower, "src"))
    wfile(os.path.join(lower, "src", "s"), b"S")
    wfile(os.path.join(lower, "file"), b"F")
    img = pack(env, LAYER)
    env.mount(lower, args=["--layer", (img if kind == "image" else img + ".src") + ":/e/f"])
    root = lower
    f = os.path.join(root, "e", "f")
    assert sorted(os.listdir(f)) == ["v", "vd"]
    with pytest.raises(OSError) as e:
        os.rmdir(f)
    assert e.value.errno == errno.ENOTEMPTY
    with pytest.raises(OSError) as e:
        os.rename(os.path.join(root, "src"), f)
    assert e.value.errno == errno.ENOTEMPTY
    with pytest.raises(OSError) as e:
        os.rename(os.path.join(root, "file"), f)
    assert e.value.errno == errno.EISDIR
    assert sorted(os.listdir(f)) == ["v", "vd"] and rd(os.path.join(f, "v")) == b"V"
    assert os.listdir(os.path.join(root, "src")) == ["s"]
    # an exchange replaces nothing: the real directories swap, the layer stays at e/f
    exchange(os.path.join(root, "src"), f)
    assert settled(root, {"e/f": ["s", "v", "vd"], "src": []}) == {"e/f": ["s", "v", "vd"], "src": []}


@pytest.mark.stress
@pytest.mark.timeout(180)
def test_renames_lookups_and_attach_race(env):
    """Layer stacks under concurrency: readers look names up and list the
    directories below two real directories while one thread swaps them (one
    is a real ancestor of an attach point) and another attaches and
    detaches a second layer, so stacks are rebuilt, registries walked and
    invalidations queued all the time.  Nothing but the errors a moving
    tree gives (ENOENT, ENOTDIR, ESTALE) may come back, and the view ends
    as the rule says.

    The listings are READDIRPLUS replies racing the exchanges: before
    directories the kernel already knew were left out of them, the kernel
    forgot one such entry twice, and about one run in three under ASan the
    daemon then used a node it had freed (fuse_readdir.c says why)."""
    root = mounted(env)
    two = pack(env, {"x/y/two": b"2", "p/y/two": b"2"}, "two.sqfs")
    NAMES = ("x", "p", "x/y", "p/y", "x/y/v", "p/y/v", "x/y/vd", "x/y/vd/w", "p/y/vd/w",
             "x/y/r", "p/y/r", "x/y/r2", "p/y/r2", "x/y/two", "p/y/two")
    stop = threading.Event()
    errors = []

    def reader():
        while not stop.is_set():
            for d in NAMES:
                try:
                    if stat.S_ISDIR(os.lstat(os.path.join(root, d)).st_mode):
                        os.listdir(os.path.join(root, d))
                except OSError as e:
                    # ESTALE: the node table reopened a real directory by a name
                    # the exchange had just given to the other one (its
                    # reopen_by_name check); the previous main answers it here
                    # too.  Not the layer stacks, which this test is about.
                    if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ESTALE):
                        errors.append(f"{d}: {e}")

    def swapper():
        while not stop.is_set():
            try:
                exchange(os.path.join(root, "x"), os.path.join(root, "p"))
            except OSError as e:
                errors.append(f"exchange: {e}")

    def attacher():
        while not stop.is_set():
            r = env.veneer("attach", root, two, "/")
            if r.returncode != 0:
                errors.append("attach: " + r.stderr)
                return
            r = env.veneer("detach", root, "/")
            if r.returncode != 0:
                errors.append("detach: " + r.stderr)
                return

    threads = [threading.Thread(target=f) for f in (reader, reader, reader, swapper, attacher)]
    for t in threads:
        t.start()
    time.sleep(8)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[:10]
    # settle on the layout BEFORE describes (an even number of swaps, or one more)
    if view(root, "x/y/r") != b"R":
        exchange(os.path.join(root, "x"), os.path.join(root, "p"))
    assert settled(root, BEFORE) == BEFORE
