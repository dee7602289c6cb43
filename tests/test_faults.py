"""Faults from below: injected errors and delays (tests/filters/inject_filter.c),
a real full disk under the mount, the daemon killed with SIGKILL in the
middle of a write-heavy workload, and unmounting while files are open."""
import ctypes
import errno
import hashlib
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from conftest import BUILD, NOBODY, TEST_URING, become, mounted_fstype, rd, wfile
from parity import as_user

LIBC = ctypes.CDLL(None, use_errno=True)


def inject(rules):
    path = os.path.join(BUILD, "tests", "inject_filter.so")
    assert os.path.exists(path), f"test filter {path} was not built"
    return ["--filter", path + ":" + rules]


def raw(fn, *args):
    """Calls a libc function once: no retry on EINTR (Python's own calls
    retry it, PEP 475).  Returns the result, or -errno."""
    r = fn(*args)
    return -ctypes.get_errno() if r < 0 else r


def raw_read(path, size=4096):
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = ctypes.create_string_buffer(size)
        n = raw(LIBC.read, fd, buf, ctypes.c_size_t(size))
        return n if n < 0 else buf.raw[:n]
    finally:
        os.close(fd)


def raw_write(path, data, flags=os.O_WRONLY | os.O_CREAT):
    fd = os.open(path, flags, 0o644)
    try:
        return raw(LIBC.write, fd, data, ctypes.c_size_t(len(data)))
    finally:
        os.close(fd)


def err(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except OSError as e:
        return e.errno
    return 0


def alive_and_serving(m, mnt, name="alive-check"):
    """The daemon still runs and serves a full create/write/read/unlink cycle."""
    assert m.proc.poll() is None, m.log()
    p = os.path.join(mnt, name)
    for i in range(50):
        wfile(p, b"still here %d" % i)
        assert rd(p) == b"still here %d" % i
    os.unlink(p)


# ------------------------------------------------------------ error injection

RULES = ";".join([
    "op=read,path=/eio/*,errno=EIO",
    "op=write,path=/nospc/*,errno=ENOSPC",
    "op=write|fallocate,path=/dquot/*,errno=EDQUOT",
    "op=lookup|getattr,path=/nomem*,errno=ENOMEM",
    "op=read,path=/eintr/*,errno=EINTR",
    "op=read,path=/once/*,errno=EINTR,count=1",
    "op=create|mkdir,path=*/nocreate-*,errno=EIO",
    "op=getxattr,path=/x/*,errno=61",
    "op=unlink|rename,path=/keep/*,errno=EPERM",
])


def fault_tree(lower):
    for d in ("eio", "nospc", "dquot", "eintr", "once", "ok", "x", "keep", "nomem-dir"):
        os.mkdir(os.path.join(lower, d))
        wfile(os.path.join(lower, d, "f"), b"real data of " + d.encode())


@pytest.mark.parametrize("opens", ["send", "skip"])
def test_injected_errors_reach_the_application(env, opens):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    fault_tree(lower)
    perms = ["-o", "default_permissions"] if opens == "skip" else []
    m = env.mount(lower, mnt, ["--cache=never", "--opens=" + opens] + perms + inject(RULES))
    p = lambda *a: os.path.join(mnt, *a)  # noqa: E731

    # each chosen errno reaches the application unchanged
    assert err(rd, p("eio", "f")) == errno.EIO
    assert raw_write(p("nospc", "f"), b"more") == -errno.ENOSPC
    assert raw_write(p("nospc", "new"), b"more") == -errno.ENOSPC
    assert raw_write(p("dquot", "f"), b"more") == -errno.EDQUOT
    fd = os.open(p("dquot", "f"), os.O_WRONLY)
    assert err(os.posix_fallocate, fd, 0, 1 << 20) == errno.EDQUOT
    os.close(fd)
    assert err(os.stat, p("nomem-dir")) == errno.ENOMEM
    assert err(os.stat, p("nomem-other")) == errno.ENOMEM
    # EINTR from the daemon is passed to the caller as is (the kernel does
    # not restart the call): one raw read(2) sees it ...
    assert raw_read(p("eintr", "f")) == -errno.EINTR
    assert raw_read(p("eintr", "f")) == -errno.EINTR
    # ... and a caller that retries on EINTR (Python, PEP 475) gets the data
    # once the fault is gone (count=1)
    assert rd(p("once", "f")) == b"real data of once"
    assert err(os.mkdir, p("ok", "nocreate-d")) == errno.EIO
    assert err(wfile, p("ok", "nocreate-f"), b"x") == errno.EIO
    assert err(os.getxattr, p("x", "f"), "user.a") == errno.ENODATA
    assert err(os.unlink, p("keep", "f")) == errno.EPERM
    assert err(os.rename, p("keep", "f"), p("ok", "moved")) == errno.EPERM

    # nothing else is affected: other paths, and other operations on the same paths
    assert rd(p("ok", "f")) == b"real data of ok"
    assert rd(p("nospc", "f")) == b"real data of nospc"
    assert os.stat(p("eio", "f")).st_size == len(b"real data of eio")
    wfile(p("eio", "g"), b"written")
    assert rd(os.path.join(lower, "eio", "g")) == b"written"
    assert "nomem-dir" in os.listdir(mnt)   # readdir is not a chosen operation
    assert err(os.stat, p("ok", "missing")) == errno.ENOENT
    os.mkdir(p("ok", "d"))
    os.rename(p("ok", "f"), p("ok", "d", "f"))
    os.setxattr(p("ok", "d", "f"), "user.a", b"1")
    assert os.getxattr(p("ok", "d", "f"), "user.a") == b"1"
    # the refused writes changed nothing below
    for d in ("nospc", "dquot", "keep"):
        assert rd(os.path.join(lower, d, "f")) == b"real data of " + d.encode()
    assert not os.path.exists(os.path.join(lower, "nospc", "new")) or \
        os.path.getsize(os.path.join(lower, "nospc", "new")) == 0
    assert not os.path.exists(os.path.join(lower, "ok", "nocreate-d"))
    alive_and_serving(m, mnt)
    assert m.stop() == 0, m.log()


@pytest.mark.parametrize("args,message", [
    ("op=raed,errno=EIO", "unknown operation 'raed'"),
    ("op=read,errno=EFOO", "bad value 'EFOO' for 'errno'"),
    ("op=read,errno=0", "bad value '0' for 'errno'"),
    ("op=read,delay_ms=-5", "bad value '-5' for 'delay_ms'"),
    ("op=read,path=/x", "a rule needs errno= or delay_ms="),
    ("op=read,errno=EIO;bogus", "'bogus' is not KEY=VALUE"),
    ("op=read,color=red,errno=EIO", "unknown key 'color'"),
    ("", "no rules"),
])
def test_inject_bad_rules_refuse_the_mount(env, args, message):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    r = env.veneer("mount", *inject(args), lower, mnt)
    assert r.returncode != 0
    assert "veneer: inject: " + message in r.stderr, r.stderr
    assert "refused to attach: Invalid argument" in r.stderr, r.stderr
    assert mounted_fstype(mnt) is None


@pytest.mark.timeout(60)
def test_delays_do_not_block_other_operations(env):
    """Delayed operations are pended, so even a daemon with one worker thread
    serves other requests while they wait: delayed lookups in one directory
    and delayed getattrs of open files, while 200 stats elsewhere complete.

    (The kernel itself sends lookups in one directory one at a time here:
    a second delayed lookup in /slow waits for the first, see the report.)"""
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    for d in ("slow", "held", "fast"):
        os.mkdir(os.path.join(lower, d))
    for i in range(20):
        wfile(os.path.join(lower, "fast", f"f{i}"), b"x")
    for i in range(3):
        wfile(os.path.join(lower, "held", f"g{i}"), b"held")
    wfile(os.path.join(lower, "slow", "file"), b"slow")
    rules = ";".join(["op=lookup,path=/slow/*,delay_ms=3000",
                      "op=getattr,path=/held/g*,delay_ms=3000",
                      "op=mkdir,path=/late*,delay_ms=300,errno=EIO"])
    m = env.mount(lower, mnt, ["--cache=never", "--threads=1"] + inject(rules))
    fds = [os.open(os.path.join(mnt, "held", f"g{i}"), os.O_RDONLY) for i in range(3)]
    results = {}

    def slow_lookup():
        results["lookup"] = err(os.stat, os.path.join(mnt, "slow", "file"))

    def slow_getattr(i):
        results[i] = os.fstat(fds[i]).st_size
    threads = [threading.Thread(target=slow_lookup)]
    threads += [threading.Thread(target=slow_getattr, args=(i,)) for i in range(3)]
    t0 = time.monotonic()
    try:
        for t in threads:
            t.start()
        time.sleep(0.2)   # let the slow ones reach the daemon first
        for _ in range(10):
            for i in range(20):
                os.stat(os.path.join(mnt, "fast", f"f{i}"))
        assert rd(os.path.join(mnt, "fast", "f3")) == b"x"
        # the delayed operations still wait while 200 others completed
        assert all(t.is_alive() for t in threads), "delayed operations finished early"
        assert err(os.mkdir, os.path.join(mnt, "late-dir")) == errno.EIO
        for t in threads:
            t.join(30)   # generous: only detects a hang
            assert not t.is_alive(), "a delayed operation never completed"
    finally:
        for fd in fds:
            os.close(fd)
    waited = time.monotonic() - t0
    assert results == {"lookup": 0, 0: 4, 1: 4, 2: 4}
    print(f"\n200 stats served while 4 delayed operations waited; they took {waited:.1f}s")
    alive_and_serving(m, mnt)


# ------------------------------------------------------------ a real full disk

@pytest.fixture
def small_tmpfs(env):
    path = env.mkdir("tmpfs")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "veneer-test", path],
                   check=True)
    try:
        yield path
    finally:
        for m in env.mounts:
            m.stop()
        subprocess.run(["umount", path], capture_output=True)
        if mounted_fstype(path) == "tmpfs":
            subprocess.run(["umount", "-l", path], capture_output=True)


def write_until_full(path, size):
    """Writes SIZE bytes with write(2), fsync and close; returns (stage, errno)
    of the first failure or None."""
    data = hashlib.sha256(path.encode()).digest() * (size // 32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    stage = "write"
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        stage = "fsync"
        os.fsync(fd)
    except OSError as e:
        os.close(fd)
        return stage, e.errno
    try:
        os.close(fd)
    except OSError as e:
        return "close", e.errno
    return None


def deleted_holders():
    held = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.endswith("(deleted)"):
                    held.append((pid, open(f"/proc/{pid}/comm").read().strip(), target))
        except OSError:
            pass
    return held


def wait_free(path, nbytes):
    """Seconds until statfs shows NBYTES free (bounded: only detects a leak)."""
    t0 = time.monotonic()
    while True:
        st = os.statvfs(path)
        if st.f_bavail * st.f_frsize >= nbytes:
            return time.monotonic() - t0
        assert time.monotonic() - t0 < 20, \
            f"space of deleted files never came back: {st}; held by {deleted_holders()}"
        time.sleep(0.02)


@pytest.mark.parametrize("in_place", [False, True], ids=["separate", "inplace"])
def test_full_disk(env, small_tmpfs, in_place):
    lower = small_tmpfs
    mnt = lower if in_place else env.mkdir("mnt")
    m = env.mount(lower, None if in_place else mnt)
    st = os.statvfs(mnt)
    assert st.f_blocks * st.f_frsize == 4 << 20   # statfs is the tmpfs's
    size = 256 << 10
    written, failure = [], None
    for i in range(64):
        name = os.path.join(mnt, f"f{i:02d}")
        failure = write_until_full(name, size)
        if failure:
            break
        written.append(name)
    assert failure is not None, "a 4 MiB disk took 16 MiB"
    assert failure[1] == errno.ENOSPC, failure
    assert 8 <= len(written) <= 16, len(written)
    nfull = len(written)
    expected = lambda name: hashlib.sha256(name.encode()).digest() * (size // 32)  # noqa: E731
    for name in written:   # earlier files are intact, through the mount and below
        assert rd(name) == expected(name)
        assert rd(os.path.join(lower, os.path.basename(name))) == expected(name)
    # small metadata operations still work or fail cleanly; the daemon serves
    assert sorted(os.listdir(mnt))[: len(written)] == [os.path.basename(n) for n in written]
    # free space: writing works again
    os.unlink(written.pop())
    os.unlink(written.pop())
    os.unlink(os.path.join(mnt, f"f{len(written) + 2:02d}"))   # the partial one
    # In place the space comes back a moment after unlink(2) returns: the
    # daemon keeps a descriptor of the file until the kernel forgets it.
    freed_after = wait_free(mnt, 2 * size)
    for i in range(2):
        name = os.path.join(mnt, f"again{i}")
        assert write_until_full(name, size) is None
        assert rd(name) == expected(name)
        written.append(name)
    for name in written:
        assert rd(name) == expected(name)
    print(f"\n4 MiB tmpfs: {nfull} x 256 KiB files, then ENOSPC at {failure[0]}")
    # the two files above filled it again: free an older one (in place, the
    # space of a file created in this mount session may stay held, see
    # test_space_of_unlinked_created_file_returns_in_place)
    os.unlink(written.pop(0))
    wait_free(mnt, 64 << 10)
    print(f"space back {freed_after:.2f}s after unlink returned")
    alive_and_serving(m, mnt)
    assert m.stop() == 0, m.log()


def test_space_of_unlinked_created_file_returns_in_place(env, small_tmpfs):
    """Create, write and close a 1 MiB file, read it, unlink it: its space
    comes back.  In place (skipped opens) the kernel never releases a file it
    created, so the daemon must keep no descriptor of it (it once did, and
    every deleted file's space stayed taken until unmount)."""
    m = env.mount(small_tmpfs, None)
    for k in range(3):
        name = os.path.join(small_tmpfs, f"x{k}")
        assert write_until_full(name, 1 << 20) is None
        assert len(rd(name)) == 1 << 20
        os.unlink(name)
        t0 = time.monotonic()
        while os.statvfs(small_tmpfs).f_bavail * 4096 < 4 << 20:
            assert time.monotonic() - t0 < 5, f"file {k}: held by {deleted_holders()}"
            time.sleep(0.02)
    assert m.proc.poll() is None


# ------------------------------------------------------------ SIGKILL mid-write

WRITER = r'''
import hashlib, os, sys, threading
mnt, journal, nthreads = sys.argv[1], sys.argv[2], int(sys.argv[3])
jfd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
# names are opened in the mount's own root: once the daemon is dead and its
# watcher has detached an in-place mount, the path names the real directory
# again, and a writer whose files pass through (--opens=passthrough writes
# need no daemon) would go on writing there forever
root = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
lock = threading.Lock()

def note(kind, name, digest):
    with lock:
        os.write(jfd, f"{kind} {name} {digest}\n".encode())

def work(t):
    i = 0
    try:
        while True:
            name = f"t{t}-{i:05d}"
            size = 4096 * (1 + (i * 7 + t) % 48)
            data = hashlib.sha256(name.encode()).digest() * (size // 32)
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=root)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if i % 3 == 2:
                note("written", name, hashlib.sha256(data).hexdigest())  # write() returned, no fsync
                os.close(fd)
            else:
                os.fsync(fd)
                os.close(fd)
                note("synced", name, hashlib.sha256(data).hexdigest())
            i += 1
    except OSError as e:
        note("stopped", f"t{t}", e.errno)

threads = [threading.Thread(target=work, args=(t,)) for t in range(nthreads)]
for th in threads:
    th.start()
print("started", flush=True)
for th in threads:
    th.join()
'''


def children(pid):
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


def read_journal(path):
    entries, stops = {}, []
    with open(path) as f:
        for line in f:
            kind, name, value = line.split()
            if kind == "stopped":
                stops.append(int(value))
            else:
                entries[name] = (kind, value)
    return entries, stops


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["separate-umount", "inplace-mount", "inplace-watcher"])
def test_sigkill_mid_write(env, mode):
    in_place = mode.startswith("inplace")
    lower = env.mkdir("lower")
    mnt = lower if in_place else env.mkdir("mnt")
    wfile(os.path.join(lower, "before"), b"from before the mount")
    real = os.open(lower, os.O_PATH | os.O_DIRECTORY)   # the real tree, even while covered
    journal = env.path("journal")
    m = env.mount(lower, None if in_place else mnt)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, mnt, journal, "4"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if os.path.exists(journal) and sum(1 for _ in open(journal)) >= 150:
                break
        watcher = children(m.pid())
        if mode != "inplace-watcher":
            for pid in watcher:   # as if the whole process group were killed
                os.kill(pid, signal.SIGKILL)
        m.proc.send_signal(signal.SIGKILL)
        m.proc.wait(10)
        m.proc = None
        writer.wait(30)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    entries, stops = read_journal(journal)
    # every writer thread stopped on the dead connection, none hung (a
    # request the kernel had handed to a dead daemon's io_uring queue ends
    # with ECANCELED)
    dead = {errno.ENOTCONN, errno.ECONNABORTED} | ({errno.ECANCELED} if TEST_URING else set())
    assert len(stops) == 4 and set(stops) <= dead, stops
    synced = sum(1 for k, _ in entries.values() if k == "synced")
    assert synced >= 50, entries

    # every write that returned before the kill is in the real tree
    def check_real():
        for name, (kind, digest) in entries.items():
            fd = os.open(name, os.O_RDONLY, dir_fd=real)
            with os.fdopen(fd, "rb") as f:
                assert hashlib.sha256(f.read()).hexdigest() == digest, (name, kind)
    check_real()

    if mode == "inplace-watcher":
        # the daemon's watcher process detaches the dead mount by itself
        deadline = time.monotonic() + 10
        while mounted_fstype(mnt) == "fuse.veneer" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mounted_fstype(mnt) is None
        m2 = env.mount(lower, None)
    else:
        assert mounted_fstype(mnt) == "fuse.veneer"
        assert err(os.statvfs, mnt) == errno.ENOTCONN   # detected as dead
        if mode == "separate-umount":
            r = env.veneer("umount", mnt)
            assert r.returncode == 0, r.stderr
            assert f"veneer: cleared a dead veneer mount at '{mnt}'" in r.stderr, r.stderr
            assert mounted_fstype(mnt) is None
            m2 = env.mount(lower, mnt)
        else:
            m2 = env.mount(lower, None, start=False)
            m2.start()   # returns at once: the dead mount is a fuse.veneer mount too
            # the dead mount is cleared first (the real directory shows for
            # a moment), then the new one covers it
            under = os.stat(env.tmp).st_dev
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                assert m2.proc.poll() is None, m2.log()
                if "cleared" in m2.log() and not err(os.statvfs, mnt) and \
                        os.stat(mnt).st_dev != under:
                    break
                time.sleep(0.05)
            assert f"veneer: cleared a dead veneer mount at '{mnt}'" in m2.log(), m2.log()
            assert mounted_fstype(mnt) == "fuse.veneer" and os.stat(mnt).st_dev != under
    # the same place works again, and shows everything
    for name, (kind, digest) in entries.items():
        assert hashlib.sha256(rd(os.path.join(mnt, name))).hexdigest() == digest
    assert rd(os.path.join(mnt, "before")) == b"from before the mount"
    alive_and_serving(m2, mnt)
    os.close(real)
    nfiles = len(os.listdir(mnt))
    print(f"\n{mode}: {synced} fsynced + {len(entries) - synced} written-only files "
          f"journaled before SIGKILL, {nfiles} in the tree, all intact")
    assert m2.stop() == 0, m2.log()


# ------------------------------------------------------------ umount while busy

HOLD = r'''
import mmap, os, sys, time
kind, path = sys.argv[1], sys.argv[2]
if kind == "fd":
    keep = open(path, "rb")
elif kind == "mmap":
    with open(path, "rb") as f:
        keep = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)   # the descriptor is closed
elif kind == "cwd":
    os.chdir(path)
print("ready", flush=True)
sys.stdin.read()   # until the test closes our stdin
if kind == "fd":
    print(keep.read().decode(), flush=True)
elif kind == "mmap":
    print(keep[:].decode(), flush=True)
else:
    print(sorted(os.listdir(".")), flush=True)
'''


def start_holders(mnt, user=None):
    targets = {"fd": os.path.join(mnt, "f"), "mmap": os.path.join(mnt, "m"),
               "cwd": os.path.join(mnt, "d")}
    holders = {}
    for kind, path in targets.items():
        p = subprocess.Popen([sys.executable, "-c", HOLD, kind, path], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True,
                             preexec_fn=become(user) if user is not None else None)
        assert p.stdout.readline().strip() == "ready"
        holders[kind] = p
    return holders


def busy_tree(root, owner=None):
    wfile(os.path.join(root, "f"), b"open file", owner=owner)
    wfile(os.path.join(root, "m"), b"mapped file", owner=owner)
    os.mkdir(os.path.join(root, "d"))
    wfile(os.path.join(root, "d", "inside"), b"", owner=owner)
    if owner:
        os.chown(os.path.join(root, "d"), *owner)


def check_busy_then_lazy(env, m, mnt, holders, user=None, user_env=None):
    r = env.veneer("umount", mnt, user=user, env=user_env)
    assert r.returncode != 0
    line = r.stderr.strip()
    assert re.fullmatch(rf"veneer: umount: {re.escape(mnt)}: busy \(EBUSY\): held by "
                        r"\d+ \(\S+\)(, \d+ \(\S+\))*; 'veneer umount -l' detaches it lazily",
                        line), line
    listed = {int(pid): comm for pid, comm in re.findall(r"(\d+) \((\S+)\)", line)}
    # every holder, and nobody else (not the daemon, which holds LOWER)
    assert listed == {p.pid: "python3" for p in holders.values()}, (line, holders)
    assert mounted_fstype(mnt) == "fuse.veneer"
    # -l detaches at once; the holders keep working on what they hold
    r = env.veneer("umount", "-l", mnt, user=user, env=user_env)
    assert r.returncode == 0, r.stderr
    assert mounted_fstype(mnt) != "fuse.veneer"
    out = {k: p.communicate("", timeout=20)[0].strip() for k, p in holders.items()}
    assert out == {"fd": "open file", "mmap": "mapped file", "cwd": "['inside']"}, out
    # the daemon exits once the last holder is gone
    assert m.proc.wait(timeout=20) == 0, m.log()
    m.proc = None


@pytest.mark.parametrize("in_place", [False, True], ids=["separate", "inplace"])
def test_umount_busy_lists_holders(env, in_place):
    lower = env.mkdir("lower")
    mnt = lower if in_place else env.mkdir("mnt")
    busy_tree(lower)
    # a descriptor on the real directory from before the mount is not a holder
    before = os.open(lower, os.O_RDONLY | os.O_DIRECTORY)
    try:
        m = env.mount(lower, None if in_place else mnt)
        holders = start_holders(mnt)
        check_busy_then_lazy(env, m, mnt, holders)
    finally:
        os.close(before)


@pytest.fixture
def user_fuse(env):
    """As in test_users.py: /dev/fuse usable by nobody, a runtime directory."""
    st = os.stat("/dev/fuse")
    changed = stat.S_IMODE(st.st_mode) & 0o006 != 0o006
    if changed:
        os.chmod("/dev/fuse", 0o666)
    os.chmod(env.tmp, 0o1777)
    run = env.mkdir("run-nobody", mode=0o700)
    os.chown(run, NOBODY, NOBODY)
    try:
        yield {"XDG_RUNTIME_DIR": run, "HOME": run}
    finally:
        if changed:
            os.chmod("/dev/fuse", stat.S_IMODE(st.st_mode))


def test_umount_busy_ordinary_user(env, user_fuse):
    lower, mnt = env.mkdir("ulower"), env.mkdir("umnt")
    for p in (lower, mnt):
        os.chown(p, NOBODY, NOBODY)
    busy_tree(lower, owner=(NOBODY, NOBODY))
    m = env.mount(lower, mnt, user=NOBODY, env=user_fuse)
    assert as_user(lambda: rd(os.path.join(mnt, "f")), NOBODY) == ("ok", b"open file")
    holders = start_holders(mnt, user=NOBODY)
    check_busy_then_lazy(env, m, mnt, holders, user=NOBODY, user_env=user_fuse)


def test_umount_not_busy_and_not_yours(env, user_fuse):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    m = env.mount(lower, mnt)
    r = env.veneer("umount", mnt, user=NOBODY, env=user_fuse)
    assert r.returncode != 0
    assert r.stderr.strip() == f"veneer: cannot unmount '{mnt}': not your mount", r.stderr
    r = env.veneer("umount", mnt)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert m.proc.wait(timeout=20) == 0, m.log()
    m.proc = None
