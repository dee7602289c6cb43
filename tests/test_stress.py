"""Concurrency stress through one veneer mount (also run under ThreadSanitizer: -m stress).

test_stress_shared_dirs: threads of this process and several worker processes
(each with threads of its own) create, write, rename (also across directories and
with RENAME_NOREPLACE/RENAME_EXCHANGE), hard-link, read (read and mmap), list,
append to shared logs, rewrite files under flock, set xattrs and delete, in shared
directories, for a bounded time (VENEER_STRESS_SECONDS, default 16 split over the
two mount modes).  Races give ENOENT/EEXIST/ENOTEMPTY/ENODATA; any other errno, or a
file whose contents do not verify, fails the test.  Afterwards the mount must still
work, the daemon must be alive, every file must verify, and the tree seen through
the mount must equal the lower directory after unmount.

test_open_files_survive_unlink_and_rename: processes hold hundreds of files open
while threads unlink them, rename them across directories and over each other and
create new files under the old names; every open descriptor must keep reading
its own file's bytes (unlinked-but-open files included), writes to orphaned files
must read back, and nothing hidden (.fuse_hidden*) may remain in the lower.

Run a worker by hand: python3 tests/test_stress.py worker ROOT ID SECONDS SEED
"""
import collections
import ctypes
import errno
import fcntl
import hashlib
import json
import mmap
import os
import random
import select
import stat
import struct
import subprocess
import sys
import threading
import time

import pytest

TOTAL_SECONDS = float(os.environ.get("VENEER_STRESS_SECONDS", "16"))
N_THREADS = 4            # in the test process
N_PROCS = 3              # worker processes ...
THREADS_PER_PROC = 2     # ... with this many threads each

SDIRS = ["s0", "s1", "s2", "s3"]
DDIRS = ["d0", "d1", "d2"]
FNAMES = ["f%d" % i for i in range(12)]
HNAMES = ["h%d" % i for i in range(6)]
LNAMES = ["l%d" % i for i in range(4)]
LOGS = ["log0", "log1"]
MFILES = ["m0", "m1", "m2"]
RECORD = 64
MAGIC = b"VNR1"

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                            ctypes.c_uint]


def renameat2(old, new, flags):
    if _libc.renameat2(-100, os.fsencode(old), -100, os.fsencode(new), flags) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), old)


# ------------------------------------------------------------ self-verifying contents

def make_content(rng, size=None):
    if size is None:
        size = rng.choice([0, rng.randint(1, 100), rng.randint(100, 5000),
                           rng.randint(5000, 70000), rng.randint(70000, 300000)])
    payload = rng.randbytes(size)
    return MAGIC + struct.pack("<Q", size) + hashlib.sha1(payload).digest() + payload


def verify_content(data):
    """None if DATA is a complete file made by make_content, else what is wrong."""
    if len(data) < 32 or data[:4] != MAGIC:
        return "bad header %r (length %d)" % (data[:16], len(data))
    size = struct.unpack("<Q", data[4:12])[0]
    if len(data) != 32 + size:
        return "length %d, header says %d" % (len(data), 32 + size)
    if hashlib.sha1(data[32:]).digest() != data[12:32]:
        return "payload checksum mismatch (length %d)" % len(data)
    return None


def make_record(wid, seq):
    body = b"%s:%d:%d:" % (MAGIC, wid, seq)
    body = body.ljust(RECORD - 9, b".")
    return body + b"%08x\n" % (hashlib.sha1(body).digest()[0] << 24 | seq & 0xffffff)


def verify_log(data):
    if len(data) % RECORD:
        return "log length %d is not a multiple of %d" % (len(data), RECORD)
    for i in range(0, len(data), RECORD):
        rec = data[i:i + RECORD]
        body = rec[:RECORD - 9]
        parts = body.split(b":")
        try:
            seq = int(parts[2])
        except (IndexError, ValueError):
            return "garbled record at %d: %r" % (i, rec)
        if rec != body + b"%08x\n" % (hashlib.sha1(body).digest()[0] << 24 | seq & 0xffffff):
            return "garbled record at %d: %r" % (i, rec)
    return None


def make_mfile(b, n):
    return b"M%c%08d" % (b, n) + bytes([b]) * n


def verify_mfile(data):
    if not data:
        return None           # just created, not written yet
    if len(data) < 10 or data[:1] != b"M":
        return "bad m-file header %r" % data[:16]
    b, n = data[1], int(data[2:10])
    if data != make_mfile(b, n):
        return "m-file torn: header (%d x %d), length %d" % (b, n, len(data))
    return None


# ------------------------------------------------------------ the worker

EXPECTED = {errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY}


class Worker:
    """One thread's random loop; records counts, unexpected errnos and bad data."""

    def __init__(self, root, wid, deadline, seed):
        self.root = root
        self.wid = wid
        self.deadline = deadline
        self.rng = random.Random(seed)
        self.counts = collections.Counter()
        self.errnos = collections.Counter()
        self.problems = []
        self.tmpseq = 0
        self.logseq = 0

    # paths
    def dir(self):
        s = self.rng.choice(SDIRS)
        if self.rng.random() < 0.4:
            return s + "/" + self.rng.choice(DDIRS)
        return s

    def fpath(self, names=FNAMES):
        return self.dir() + "/" + self.rng.choice(names)

    def p(self, rel):
        return os.path.join(self.root, rel)

    def problem(self, msg):
        if len(self.problems) < 50:
            self.problems.append("worker %s: %s" % (self.wid, msg))

    def call(self, what, fn, *args, ok=()):
        """Runs fn(*args); returns (True, value) or (False, errno) and records the errno."""
        try:
            return True, fn(*args)
        except OSError as e:
            self.errnos[errno.errorcode.get(e.errno, str(e.errno))] += 1
            if e.errno not in EXPECTED and e.errno not in ok:
                self.problem("%s: unexpected %s (%s)"
                             % (what, errno.errorcode.get(e.errno, e.errno), e))
            return False, e.errno

    # operations
    def op_publish(self):
        """write a temp file completely, then rename it onto a shared name."""
        self.tmpseq += 1
        tmp = "%s/t.%s.%d" % (self.dir(), self.wid, self.tmpseq)
        data = make_content(self.rng)
        ok, fd = self.call("create " + tmp, os.open, self.p(tmp),
                           os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        if not ok:
            return
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view[:self.rng.choice([4096, 65536, 1 << 20])])
                view = view[n:]
            if self.rng.random() < 0.2:
                os.fsync(fd)
        except OSError as e:
            self.problem("write %s: %s" % (tmp, e))
        finally:
            os.close(fd)
        dst = self.fpath()
        flags = 0 if self.rng.random() < 0.8 else RENAME_NOREPLACE
        ok, _ = self.call("rename %s -> %s" % (tmp, dst), renameat2, self.p(tmp), self.p(dst),
                          flags)
        if not ok:
            self.call("unlink " + tmp, os.unlink, self.p(tmp))

    def op_read(self):
        rel = self.fpath(FNAMES + HNAMES)
        ok, fd = self.call("open " + rel, os.open, self.p(rel), os.O_RDONLY)
        if not ok:
            return
        try:
            size = os.fstat(fd).st_size
            if self.rng.random() < 0.3 and size:
                m = mmap.mmap(fd, size, prot=mmap.PROT_READ)
                try:
                    data = m[:]
                finally:
                    m.close()
            else:
                chunks = []
                while True:
                    b = os.read(fd, self.rng.choice([4096, 65536, 1 << 20]))
                    if not b:
                        break
                    chunks.append(b)
                data = b"".join(chunks)
            bad = verify_content(data)
            if bad:
                self.problem("read %s: %s" % (rel, bad))
        except OSError as e:
            self.problem("read %s: %s" % (rel, e))
        finally:
            os.close(fd)

    def op_rename(self):
        a, b = self.fpath(), self.fpath(FNAMES + HNAMES)
        r = self.rng.random()
        flags = 0 if r < 0.6 else RENAME_NOREPLACE if r < 0.8 else RENAME_EXCHANGE
        self.call("rename(%s, %s, %d)" % (a, b, flags), renameat2, self.p(a), self.p(b), flags)

    def op_link(self):
        a, b = self.fpath(), self.fpath(HNAMES)
        self.call("link %s %s" % (a, b), os.link, self.p(a), self.p(b))

    def op_unlink(self):
        if self.rng.random() < 0.1:
            # temp files stranded by a directory rename (or still being written)
            d = self.dir()
            ok, names = self.call("listdir " + d, os.listdir, self.p(d))
            tmps = [n for n in names if n.startswith("t.")] if ok else []
            if tmps:
                rel = d + "/" + self.rng.choice(tmps)
                self.call("unlink " + rel, os.unlink, self.p(rel))
            return
        rel = self.fpath(FNAMES + HNAMES + LNAMES)
        self.call("unlink " + rel, os.unlink, self.p(rel))

    def op_dirs(self):
        s = self.rng.choice(SDIRS)
        d = s + "/" + self.rng.choice(DDIRS)
        r = self.rng.random()
        if r < 0.4:
            self.call("mkdir " + d, os.mkdir, self.p(d), 0o755)
        elif r < 0.7:
            self.call("rmdir " + d, os.rmdir, self.p(d))
        else:
            d2 = self.rng.choice(SDIRS) + "/" + self.rng.choice(DDIRS)
            flags = 0 if r < 0.9 else RENAME_EXCHANGE
            self.call("rename dir %s %s" % (d, d2), renameat2, self.p(d), self.p(d2), flags)

    def op_list(self):
        rel = self.dir() if self.rng.random() < 0.8 else ""
        ok, names = self.call("listdir " + rel, os.listdir, self.p(rel))
        if not ok:
            return
        for n in names:
            if not (n in SDIRS or n in DDIRS or n in FNAMES or n in HNAMES or n in LNAMES
                    or n in LOGS or n in MFILES or n.startswith("t.")):
                self.problem("listdir %s: unexpected name %r" % (rel, n))
        for n in self.rng.sample(names, min(len(names), 4)):
            ok, st = self.call("lstat", os.lstat, self.p(os.path.join(rel, n)))
            if ok and n in FNAMES + HNAMES and not stat.S_ISREG(st.st_mode):
                self.problem("%s/%s is not a regular file: %o" % (rel, n, st.st_mode))

    def op_log(self):
        self.logseq += 1
        rel = self.rng.choice(LOGS)
        ok, fd = self.call("open log", os.open, self.p(rel),
                           os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if not ok:
            return
        try:
            n = os.write(fd, make_record(hash(self.wid) & 0xffff, self.logseq))
            if n != RECORD:
                self.problem("short append to %s: %d" % (rel, n))
        except OSError as e:
            self.problem("append %s: %s" % (rel, e))
        finally:
            os.close(fd)

    def op_mfile(self):
        """Rewrite or read a shared file under flock: readers must never see a torn file."""
        rel = self.rng.choice(MFILES)
        ok, fd = self.call("open " + rel, os.open, self.p(rel), os.O_RDWR | os.O_CREAT, 0o644)
        if not ok:
            return
        try:
            if self.rng.random() < 0.5:
                fcntl.flock(fd, fcntl.LOCK_EX)
                data = make_mfile(self.rng.randrange(256), self.rng.choice(
                    [0, 1, 100, 4095, 4096, 10000, 100000]))
                os.ftruncate(fd, 0)
                os.pwrite(fd, data, 0)
                if self.rng.random() < 0.2:
                    os.fdatasync(fd)
            else:
                fcntl.flock(fd, fcntl.LOCK_SH)
                size = os.fstat(fd).st_size
                data = os.pread(fd, size + 10, 0)
                bad = verify_mfile(data)
                if bad:
                    self.problem("%s under LOCK_SH: %s" % (rel, bad))
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as e:
            self.problem("%s: %s" % (rel, e))
        finally:
            os.close(fd)

    def op_xattr(self):
        rel = self.fpath()
        if self.rng.random() < 0.5:
            v = make_content(self.rng, self.rng.randint(0, 200))
            self.call("setxattr " + rel, os.setxattr, self.p(rel), "user.v", v)
        else:
            ok, v = self.call("getxattr " + rel, os.getxattr, self.p(rel), "user.v",
                              ok=(errno.ENODATA,))
            if ok and verify_content(v):
                self.problem("getxattr %s: %s" % (rel, verify_content(v)))

    def op_symlink(self):
        rel = self.fpath(LNAMES)
        if self.rng.random() < 0.5:
            self.call("symlink " + rel, os.symlink, self.rng.choice(FNAMES), self.p(rel))
        else:
            ok, t = self.call("readlink " + rel, os.readlink, self.p(rel))
            if ok and t not in FNAMES:
                self.problem("readlink %s: %r" % (rel, t))

    def op_stat(self):
        rel = self.fpath(FNAMES + HNAMES + LNAMES)
        ok, st = self.call("stat " + rel, os.stat, self.p(rel))
        if ok and not stat.S_ISREG(st.st_mode):
            self.problem("stat %s: mode %o" % (rel, st.st_mode))

    def op_chmod(self):
        rel = self.fpath()
        self.call("chmod " + rel, os.chmod, self.p(rel), self.rng.choice([0o644, 0o600, 0o640]))

    def run(self):
        ops = [(10, self.op_publish), (10, self.op_read), (6, self.op_rename),
               (2, self.op_link), (4, self.op_unlink), (3, self.op_dirs), (5, self.op_list),
               (3, self.op_log), (3, self.op_mfile), (2, self.op_xattr), (2, self.op_symlink),
               (4, self.op_stat), (1, self.op_chmod)]
        weights = [w for w, _ in ops]
        while time.monotonic() < self.deadline:
            fn = self.rng.choices(ops, weights)[0][1]
            self.counts[fn.__name__] += 1
            try:
                fn()
            except OSError as e:
                self.problem("%s: uncaught %s" % (fn.__name__, e))
            except Exception as e:  # noqa: BLE001 - report, keep going
                self.problem("%s: %s: %s" % (fn.__name__, type(e).__name__, e))
        return self.result()

    def result(self):
        return {"counts": dict(self.counts), "errnos": dict(self.errnos),
                "problems": self.problems}


def run_workers(root, wid, seconds, seed, nthreads):
    deadline = time.monotonic() + seconds
    workers = [Worker(root, "%s.%d" % (wid, i), deadline, seed * 100 + i)
               for i in range(nthreads)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [w.result() for w in workers]


def merge(results):
    counts, errnos, problems = collections.Counter(), collections.Counter(), []
    for r in results:
        counts.update(r["counts"])
        errnos.update(r["errnos"])
        problems += r["problems"]
    return counts, errnos, problems


# ------------------------------------------------------------ tree checks

def snapshot(root):
    """{rel: (type, mode, size, nlink, uid, gid, content-hash/target, xattrs)}"""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for n in sorted(dirnames + filenames):
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            xattrs = sorted((x, os.getxattr(p, x, follow_symlinks=False))
                            for x in os.listxattr(p, follow_symlinks=False))
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    extra = hashlib.sha1(f.read()).hexdigest()
                size = st.st_size
            elif stat.S_ISLNK(st.st_mode):
                extra, size = os.readlink(p), st.st_size
            else:
                extra, size = None, None          # directory sizes are ext4's business
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), size, st.st_nlink,
                        st.st_uid, st.st_gid, extra, xattrs)
    return out


def diff_snapshots(a, b):
    out = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            out.append("%s: mount %s / lower %s" % (k, str(a.get(k))[:200], str(b.get(k))[:200]))
    return out


def verify_tree(root):
    """Every shared file through ROOT verifies; returns a list of problems."""
    problems = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                continue
            with open(p, "rb") as f:
                data = f.read()
            if n in FNAMES or n in HNAMES:
                bad = verify_content(data)
            elif n in LOGS:
                bad = verify_log(data)
            elif n in MFILES:
                bad = verify_mfile(data)
            else:
                bad = None      # t.* temp files may be partial if their rename lost
            if bad:
                problems.append("%s: %s" % (rel, bad))
    return problems


# ------------------------------------------------------------ tests

def _daemon_alive(m):
    return m.proc is not None and m.proc.poll() is None


@pytest.mark.stress
@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["separate", "inplace"])
def test_stress_shared_dirs(env, mode):
    seconds = TOTAL_SECONDS / 2
    lower = env.mkdir("lower")
    mnt = lower if mode == "inplace" else env.mkdir("mnt")
    m = env.mount(lower, None if mode == "inplace" else mnt)
    for s in SDIRS:
        os.mkdir(os.path.join(mnt, s))
    seed = int.from_bytes(os.urandom(4), "little")
    print("stress: mode=%s seconds=%.1f seed=%d" % (mode, seconds, seed))

    procs = []
    for i in range(N_PROCS):
        procs.append(subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "worker", mnt, "p%d" % i,
             str(seconds), str(seed + 1000 * (i + 1)), str(THREADS_PER_PROC)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    local = run_workers(mnt, "t", seconds, seed, N_THREADS)

    results, failures = list(local), []
    for i, pr in enumerate(procs):
        try:
            out, err = pr.communicate(timeout=seconds + 200)
        except subprocess.TimeoutExpired:
            pr.kill()
            out, err = pr.communicate()
            failures.append("worker process p%d did not finish (hang?): %s" % (i, err[-2000:]))
            continue
        if pr.returncode != 0:
            failures.append("worker process p%d exited %d: %s" % (i, pr.returncode, err[-2000:]))
            continue
        results += json.loads(out)
    counts, errnos, problems = merge(results)
    print("stress: ops %s" % dict(counts))
    print("stress: errnos %s" % dict(errnos))
    assert not failures, "\n".join(failures)
    assert not problems, "seed %d: %d problems:\n%s" % (seed, len(problems),
                                                        "\n".join(problems[:40]))
    assert sum(counts.values()) > 0

    # the mount still works and the daemon is alive
    assert _daemon_alive(m), "veneer died: %s" % m.log()
    probe = os.path.join(mnt, "probe")
    with open(probe, "wb") as f:
        f.write(b"still here")
    with open(probe, "rb") as f:
        assert f.read() == b"still here"
    os.unlink(probe)
    names = os.listdir(mnt)
    assert len(names) == len(set(names)), "duplicate names in a listing: %s" % sorted(names)

    bad = verify_tree(mnt)
    assert not bad, "seed %d: files through the mount do not verify:\n%s" % (seed, "\n".join(bad))
    seen = snapshot(mnt)
    assert _daemon_alive(m), "veneer died: %s" % m.log()
    rc = m.stop()
    # (a sanitizer's exit code is left to the fixture, which shows the report itself)
    assert rc == 0 or m.sanitizer_reports(), "veneer exited with %s after unmount: %s" % (
        rc, m.log())
    real = snapshot(lower)
    d = diff_snapshots(seen, real)
    assert not d, ("seed %d: the tree seen through the mount differs from the lower after "
                   "unmount:\n%s" % (seed, "\n".join(d[:40])))


def _hold_content(i, generation=0):
    rng = random.Random("hold-%d-%d" % (i, generation))
    return rng.randbytes(rng.choice([0, 1, 4096, 5000, 65536, 150000, rng.randint(1, 40000)]))


def _marker(i, h):
    return b"<orphan write %d by holder %d>" % (i, h)


def holder_main(root, h, n, nholders):
    """Opens all N files, keeps reading them until told to stop, then verifies and writes."""
    fds = {}
    errors = []
    for i in range(n):
        flags = os.O_RDWR if i % 5 == 0 else os.O_RDONLY
        fds[i] = os.open(os.path.join(root, "hold", "f%d" % i), flags)
    print("ready", flush=True)

    def check_all(tag):
        for i, fd in fds.items():
            want = _hold_content(i)
            try:
                got = os.pread(fd, len(want) + 100, 0)
            except OSError as e:
                errors.append("%s: pread f%d: %s" % (tag, i, e))
                continue
            if got != want:
                errors.append("%s: f%d: read %d bytes, want %d (%s)"
                              % (tag, i, len(got), len(want),
                                 "prefix equal" if want.startswith(got) or got.startswith(want)
                                 else "different bytes"))
    passes = 0
    while True:
        r, _, _ = select.select([sys.stdin], [], [], 0)
        if r:
            line = sys.stdin.readline().strip()
            if line == "stop":
                break
        check_all("while mutating")
        passes += 1
        if len(errors) > 20:
            break
    check_all("after mutations")
    nlinks = {}
    for i, fd in fds.items():
        try:
            nlinks[i] = os.fstat(fd).st_nlink
        except OSError as e:
            errors.append("fstat f%d: %s" % (i, e))
    print(json.dumps({"phase": "verified", "passes": passes, "nlink": nlinks,
                      "errors": errors[:40]}), flush=True)
    if sys.stdin.readline().strip() != "write":
        return
    # writes to our share of the read-write descriptors (orphans included) must read back
    for i, fd in fds.items():
        if i % 5 == 0 and i % nholders == h:
            want = _hold_content(i) + _marker(i, h)
            try:
                os.pwrite(fd, _marker(i, h), len(_hold_content(i)))
                got = os.pread(fd, len(want) + 100, 0)
                if got != want:
                    errors.append("f%d: after writing to the open file read %d bytes, want %d"
                                  % (i, len(got), len(want)))
            except OSError as e:
                errors.append("write f%d: %s" % (i, e))
    for fd in fds.values():
        os.close(fd)
    print(json.dumps({"phase": "done", "errors": errors[:40]}), flush=True)


@pytest.mark.stress
@pytest.mark.timeout(300)
def test_open_files_survive_unlink_and_rename(env):
    n, nholders = 300, 3
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    m = env.mount(lower, mnt)
    hold = os.path.join(mnt, "hold")
    moved = os.path.join(mnt, "moved")
    os.mkdir(hold)
    os.mkdir(moved)
    for i in range(n):
        with open(os.path.join(hold, "f%d" % i), "wb") as f:
            f.write(_hold_content(i))

    holders = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "hold", mnt,
                                 str(h), str(n), str(nholders)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
               for h in range(nholders)]
    failures = []

    def expect_line(pr, h, what):
        line = pr.stdout.readline()
        if not line:
            failures.append("holder %d ended before %s: %s" % (h, what, pr.stderr.read()[-3000:]))
        return line

    try:
        for h, pr in enumerate(holders):
            assert expect_line(pr, h, "ready").strip() == "ready", failures

        # classes: 0 unlink (+ new file under the old name), 1 rename to another
        # directory, 2 rename over the next file, 3 replaced by that rename (orphan)
        errors = []

        def mutate(indices):
            try:
                for i in indices:
                    f = os.path.join(hold, "f%d" % i)
                    if i % 4 == 0:
                        os.unlink(f)
                        with open(f, "wb") as out:
                            out.write(_hold_content(i, 1))
                    elif i % 4 == 1:
                        os.rename(f, os.path.join(moved, "f%d" % i))
                    elif i % 4 == 2 and i + 1 < n:
                        os.rename(f, os.path.join(hold, "f%d" % (i + 1)))
            except OSError as e:
                errors.append("mutating: %s" % e)
        groups = [[i for i in range(n) if (i // 4) % 2 == g] for g in range(2)]
        threads = [threading.Thread(target=mutate, args=(g,)) for g in groups]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        time.sleep(0.2)     # let the holders read at least once more after the changes

        def expected_nlink(i):
            if i % 4 == 0 or (i % 4 == 3 and i - 1 >= 0):
                return 0
            return 1
        for h, pr in enumerate(holders):
            pr.stdin.write("stop\n")
            pr.stdin.flush()
        for h, pr in enumerate(holders):
            line = expect_line(pr, h, "verification")
            if not line:
                continue
            rep = json.loads(line)
            print("holder %d: %d verification passes while mutating" % (h, rep["passes"]))
            failures += ["holder %d: %s" % (h, e) for e in rep["errors"]]
            for i, nl in rep["nlink"].items():
                i = int(i)
                if nl != expected_nlink(i):
                    failures.append("holder %d: fstat of open f%d says st_nlink %d, want %d"
                                    % (h, i, nl, expected_nlink(i)))
        assert _daemon_alive(m), "veneer died: %s" % m.log()
        for h, pr in enumerate(holders):
            pr.stdin.write("write\n")
            pr.stdin.flush()
        for h, pr in enumerate(holders):
            line = expect_line(pr, h, "writes")
            if line:
                failures += ["holder %d: %s" % (h, e) for e in json.loads(line)["errors"]]
        for pr in holders:
            pr.wait(timeout=120)
    finally:
        for pr in holders:
            if pr.poll() is None:
                pr.kill()
                pr.wait()
    assert not failures, "\n".join(failures[:60])
    assert _daemon_alive(m), "veneer died: %s" % m.log()

    # what the names hold now, through the mount and in the lower after unmount
    want_hold, want_moved = {}, {}
    for i in range(n):
        c = _hold_content(i)
        if i % 5 == 0:
            c += _marker(i, i % nholders)
        if i % 4 == 0:
            want_hold["f%d" % i] = _hold_content(i, 1)
        elif i % 4 == 1:
            want_moved["f%d" % i] = c
        elif i % 4 == 2:
            want_hold["f%d" % (i + 1)] = c
    if (n - 1) % 4 == 2:     # last file had nothing to rename over
        want_hold["f%d" % (n - 1)] = _hold_content(n - 1)

    def check(root, label):
        out = []
        for d, want in (("hold", want_hold), ("moved", want_moved)):
            names = sorted(os.listdir(os.path.join(root, d)))
            if names != sorted(want):
                extra = sorted(set(names) - set(want))
                missing = sorted(set(want) - set(names))
                out.append("%s %s/: extra %s, missing %s" % (label, d, extra[:10], missing[:10]))
            for name, content in want.items():
                try:
                    with open(os.path.join(root, d, name), "rb") as f:
                        got = f.read()
                except OSError as e:
                    out.append("%s %s/%s: %s" % (label, d, name, e))
                    continue
                if got != content:
                    out.append("%s %s/%s: %d bytes, want %d" % (label, d, name, len(got),
                                                                 len(content)))
        return out
    bad = check(mnt, "mount")
    rc = m.stop()
    bad += check(lower, "lower")
    assert not bad, "\n".join(bad[:40])
    assert rc == 0 or m.sanitizer_reports(), "veneer exited with %s after unmount: %s" % (
        rc, m.log())
    leftovers = [n for n in os.listdir(lower) if n not in ("hold", "moved")]
    assert not leftovers, "unexpected entries in the lower: %s" % leftovers


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "worker":
        root, wid, seconds, seed = sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
        nthreads = int(sys.argv[6]) if len(sys.argv) > 6 else THREADS_PER_PROC
        print(json.dumps(run_workers(root, wid, seconds, seed, nthreads)))
    elif len(sys.argv) >= 2 and sys.argv[1] == "hold":
        holder_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(__doc__)
