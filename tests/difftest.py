#!/usr/bin/env python3
"""Differential random tester for veneer.

A seeded random sequence of system calls is applied step by step to a native
directory (side A) and to a directory seen through a veneer mount (side B)
that starts as an identical copy.  Every step's outcome -- return value or
errno name, bytes read, the stat fields that are filesystem semantics -- must be
equal on both sides; at the end (and every --check-every steps) the two trees
are compared: names, types, contents, modes, sizes, link counts, hard-link
structure, xattrs and symlink targets.

Not compared, because they are not semantics of the view: inode numbers
(only which names share one), st_dev, st_blocks/st_blksize, directory sizes
(ext4 sizes them by its own history), and times -- except right after the step
that set them explicitly.

Usage (the two directories must hold identical trees when it starts):

    python3 tests/difftest.py --seed N --ops M NATIVE_DIR MOUNTED_DIR

or let it build everything itself (temporary directories, deterministic
initial tree, `veneer mount -f`, unmount at the end):

    python3 tests/difftest.py --seed N --ops M --veneer build/veneer [--inplace | --layered]

The first mismatch stops the run with the seed, the step number, the operation
and both results, plus the steps that led to it.
"""
import argparse
import collections
import ctypes
import errno
import hashlib
import mmap
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
import time

NAMES = ["a", "b", "c", "d", "e", "f", "g"]
LONG_NAME = "L" * 255          # longest valid name
TOO_LONG = "T" * 256           # ENAMETOOLONG
XATTR_NAMES = ["user.a", "user.b", "user.c", "user." + "x" * 200]
MAX_FDS = 12
GiB = 1 << 30

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2
XATTR_CREATE = 1
XATTR_REPLACE = 2
SEEK_DATA = getattr(os, "SEEK_DATA", 3)
SEEK_HOLE = getattr(os, "SEEK_HOLE", 4)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                            ctypes.c_uint]
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_Timespec),
                            ctypes.c_int]
for _fn in ("getxattr", "lgetxattr"):
    getattr(_libc, _fn).argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p,
                                    ctypes.c_size_t]
    getattr(_libc, _fn).restype = ctypes.c_ssize_t
for _fn in ("listxattr", "llistxattr"):
    getattr(_libc, _fn).argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
    getattr(_libc, _fn).restype = ctypes.c_ssize_t


def _check(rc):
    if rc < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return rc


def renameat2(old, new, flags):
    return _check(_libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags))


def fallocate(fd, mode, off, length):
    return _check(_libc.fallocate(fd, mode, off, length))


def utimensat(path, atime, mtime, follow):
    """atime/mtime: nanoseconds, or 'now' / 'omit'."""
    ts = (_Timespec * 2)()
    for i, t in enumerate((atime, mtime)):
        if t == "now":
            ts[i].tv_sec, ts[i].tv_nsec = 0, UTIME_NOW
        elif t == "omit":
            ts[i].tv_sec, ts[i].tv_nsec = 0, UTIME_OMIT
        else:
            ts[i].tv_sec, ts[i].tv_nsec = divmod(t, 10**9)
    flags = 0 if follow else AT_SYMLINK_NOFOLLOW
    return _check(_libc.utimensat(AT_FDCWD, os.fsencode(path), ts, flags))


def xattr_probe(path, name, size, follow):
    """getxattr with an explicit buffer size: returns the size (and bytes) or raises."""
    buf = ctypes.create_string_buffer(max(size, 1))
    fn = _libc.getxattr if follow else _libc.lgetxattr
    n = _check(fn(os.fsencode(path), name.encode(), buf if size else None, size))
    return n, (buf.raw[:n] if size else None)


def listxattr_probe(path, size, follow):
    buf = ctypes.create_string_buffer(max(size, 1))
    fn = _libc.listxattr if follow else _libc.llistxattr
    n = _check(fn(os.fsencode(path), buf if size else None, size))
    if not size:
        return n, None
    return n, sorted(buf.raw[:n].split(b"\0")[:-1])


def ename(e):
    return errno.errorcode.get(e, str(e))


def outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except OSError as e:
        return ("err", ename(e.errno))
    except (ValueError, OverflowError) as e:   # same Python-level refusal on both sides
        return ("exc", type(e).__name__, str(e))


TYPE_NAMES = {stat.S_IFREG: "reg", stat.S_IFDIR: "dir", stat.S_IFLNK: "lnk",
              stat.S_IFIFO: "fifo", stat.S_IFSOCK: "sock", stat.S_IFCHR: "chr",
              stat.S_IFBLK: "blk"}


def stat_summary(st):
    """The stat fields that are semantics of the view (no ino, dev, blocks, times)."""
    fmt = stat.S_IFMT(st.st_mode)
    return (TYPE_NAMES.get(fmt, fmt), "%o" % stat.S_IMODE(st.st_mode),
            None if fmt == stat.S_IFDIR else st.st_size,
            st.st_nlink, st.st_uid, st.st_gid)


def digest(data):
    if len(data) <= 64:
        return data
    return (len(data), hashlib.sha1(data).hexdigest())


def short(v, limit=300):
    s = repr(v)
    return s if len(s) <= limit else s[:limit] + "..."


class Mismatch(AssertionError):
    pass


# ---------------------------------------------------------------- tree compare

def data_segments(fd, size):
    """[(start, end)] ranges that may hold data (SEEK_DATA/SEEK_HOLE), whole file if unsupported."""
    segs = []
    off = 0
    try:
        while off < size:
            try:
                start = os.lseek(fd, off, SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    break
                raise
            end = os.lseek(fd, start, SEEK_HOLE)
            segs.append((start, min(end, size)))
            off = end
    except OSError:
        return [(0, size)]
    return segs


def _merge(segs):
    out = []
    for s, e in sorted(segs):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def compare_contents(pa, pb, size):
    """None if the regular files PA and PB hold the same SIZE bytes, else a description."""
    fa = os.open(pa, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        fb = os.open(pb, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            if size <= (8 << 20):
                segs = [(0, size)]
            else:       # big sparse file: read what either side calls data; holes are zeros
                segs = _merge(data_segments(fa, size) + data_segments(fb, size))
            chunk = 1 << 20
            for s, e in segs:
                off = s
                while off < e:
                    n = min(chunk, e - off)
                    da = os.pread(fa, n, off)
                    db = os.pread(fb, n, off)
                    if da != db:
                        for i in range(min(len(da), len(db))):
                            if da[i] != db[i]:
                                break
                        else:
                            i = min(len(da), len(db))
                        return ("contents differ at offset %d (native %s, mounted %s)"
                                % (off + i, short(da[i:i + 16]), short(db[i:i + 16])))
                    if not da:
                        break
                    off += n
        finally:
            os.close(fb)
    finally:
        os.close(fa)
    return None


def _xattrs(path):
    try:
        names = sorted(os.listxattr(path, follow_symlinks=False))
    except OSError as e:
        return ("listxattr", ename(e.errno))
    out = []
    for n in names:
        try:
            out.append((n, os.getxattr(path, n, follow_symlinks=False)))
        except OSError as e:
            out.append((n, ename(e.errno)))
    return out


def snapshot(root):
    """{relpath: metadata} of everything under ROOT (root itself as ''), no symlink following."""
    meta = {}
    inodes = collections.defaultdict(list)
    stack = [""]
    while stack:
        rel = stack.pop()
        p = os.path.join(root, rel) if rel else root
        st = os.lstat(p) if rel else os.stat(p)
        m = {"stat": stat_summary(st), "xattrs": _xattrs(p)}
        if stat.S_ISLNK(st.st_mode):
            m["target"] = os.readlink(p)
        if stat.S_ISDIR(st.st_mode):
            names = sorted(os.listdir(p))
            m["names"] = names
            stack.extend(os.path.join(rel, n) for n in names)
        else:
            inodes[st.st_ino].append(rel)
        meta[rel] = m
    links = sorted(sorted(v) for v in inodes.values() if len(v) > 1)
    return meta, links


def compare_trees(a, b, label="mounted"):
    """List of differences between the trees at A (native) and B."""
    ma, la = snapshot(a)
    mb, lb = snapshot(b)
    diffs = []
    for rel in sorted(set(ma) | set(mb)):
        shown = "/" + rel
        if rel not in mb:
            diffs.append("%s: only in native" % shown)
            continue
        if rel not in ma:
            diffs.append("%s: only in %s" % (shown, label))
            continue
        x, y = ma[rel], mb[rel]
        for k in ("stat", "target", "xattrs", "names"):
            if x.get(k) != y.get(k):
                diffs.append("%s: %s differs: native %s, %s %s"
                             % (shown, k, short(x.get(k)), label, short(y.get(k))))
        if x["stat"] == y["stat"] and x["stat"][0] == "reg":
            d = compare_contents(os.path.join(a, rel), os.path.join(b, rel), x["stat"][2])
            if d:
                diffs.append("%s: %s" % (shown, d))
    if la != lb:
        diffs.append("hard-link groups differ: native %s, %s %s" % (short(la), label, short(lb)))
    return diffs


# ---------------------------------------------------------------- initial tree

def populate(root, seed=0):
    """A small deterministic starting tree: dirs, files (one sparse), hard link, symlinks,
    xattrs, a fifo, odd modes."""
    rng = random.Random("populate-%s" % seed)
    old = os.umask(0o022)
    try:
        for d in ("a", "b", "a/c", "b/d"):
            os.mkdir(os.path.join(root, d))
        for rel in ("c", "a/b", "a/c/d", "b/e", "e"):
            with open(os.path.join(root, rel), "wb") as f:
                f.write(rng.randbytes(rng.choice([0, 10, 4096, 5000, 70000])))
        with open(os.path.join(root, "b/f"), "wb") as f:
            f.seek(3 << 20)
            f.write(b"tail")
        os.link(os.path.join(root, "c"), os.path.join(root, "a/g"))
        os.symlink("a/c", os.path.join(root, "f"))
        os.symlink("nowhere", os.path.join(root, "b/g"))
        os.setxattr(os.path.join(root, "e"), "user.a", b"hello")
        os.setxattr(os.path.join(root, "a"), "user.b", rng.randbytes(100))
        os.mkfifo(os.path.join(root, "g"), 0o640)
        os.chmod(os.path.join(root, "b/e"), 0o4755)
        os.chmod(os.path.join(root, "b/d"), 0o2775)
    finally:
        os.umask(old)


def copy_tree(src, dst):
    """cp -a SRC/. DST (keeps modes, owners, xattrs, hard links, fifos)."""
    subprocess.run(["cp", "-a", "--", src + "/.", dst], check=True)


# ---------------------------------------------------------------- the tester

class FdPair:
    __slots__ = ("fds", "path", "flags", "kind", "serial")

    def __init__(self, fds, path, flags, kind, serial):
        self.fds, self.path, self.flags, self.kind, self.serial = fds, path, flags, kind, serial

    def __repr__(self):
        return "fd#%d(%s)" % (self.serial, self.path)


class DiffTest:
    def __init__(self, native, mounted, seed, ops=10000, check_every=1000, verbose=False,
                 replay_hint=None, out=sys.stdout):
        self.roots = (os.path.abspath(native), os.path.abspath(mounted))
        self.seed = seed
        self.nops = ops
        self.check_every = check_every
        self.verbose = verbose
        self.replay_hint = replay_hint
        self.out = out
        self.rng = random.Random(seed)
        self.fds = []
        self.fd_serial = 0
        self._entries = None
        self.history = collections.deque(maxlen=30)
        self.step = 0
        self.counts = collections.Counter()
        self.errs = collections.Counter()
        self.ops = [
            (8, self.op_create), (9, self.op_open), (7, self.op_close),
            (14, self.op_write), (10, self.op_read), (4, self.op_truncate),
            (3, self.op_ftruncate), (8, self.op_rename), (3, self.op_link),
            (5, self.op_unlink), (4, self.op_mkdir), (3, self.op_rmdir),
            (3, self.op_symlink), (2, self.op_readlink), (4, self.op_setxattr),
            (3, self.op_getxattr), (2, self.op_listxattr), (2, self.op_removexattr),
            (1, self.op_xattr_sizes), (3, self.op_chmod), (2, self.op_chown),
            (2, self.op_utime), (8, self.op_stat), (4, self.op_fstat),
            (4, self.op_listdir), (2, self.op_access), (3, self.op_mmap_read),
            (3, self.op_mmap_write), (2, self.op_fsync), (2, self.op_lseek),
            (1, self.op_fallocate), (1, self.op_copy_file_range), (1, self.op_mknod),
            (1, self.op_umask), (3, self.op_cat), (2, self.op_write_file),
            (1, self.op_rmtree), (2, self.op_direct_io), (2, self.op_vector_io),
            (3, self.op_at),
        ]
        self.weights = [w for w, _ in self.ops]

    # ------------------------------------------------------------ helpers

    def log(self, msg):
        print(msg, file=self.out, flush=True)

    def p(self, side, rel):
        r = self.roots[side]
        return r + "/" + rel if rel else r

    def entries(self):
        """[(rel, type)] under the native root (not the root itself), sorted; cached until
        the next mutating step."""
        if self._entries is None:
            out = []
            stack = [""]
            while stack:
                rel = stack.pop()
                try:
                    it = sorted(os.listdir(self.p(0, rel)))
                except OSError:
                    continue
                for n in it:
                    r = rel + "/" + n if rel else n
                    try:
                        st = os.lstat(self.p(0, r))
                    except OSError:
                        continue
                    t = TYPE_NAMES.get(stat.S_IFMT(st.st_mode), "?")
                    out.append((r, t))
                    if t == "dir":
                        stack.append(r)
            out.sort()
            self._entries = out
        return self._entries

    def name(self):
        r = self.rng.random()
        if r < 0.003:
            return TOO_LONG
        if r < 0.012:
            return LONG_NAME
        return self.rng.choice(NAMES)

    def new_path(self):
        """A path whose parent exists most of the time; the name may or may not exist."""
        dirs = [""] + [r for r, t in self.entries() if t == "dir" and r.count("/") < 3]
        if self.rng.random() < 0.1:
            dirs += [r for r, t in self.entries() if t == "lnk"]   # through a symlink
        parent = self.rng.choice(dirs)
        if self.rng.random() < 0.04:       # parent that may not exist / not be a dir
            parent = self.rng.choice(NAMES)
        n = self.name()
        return parent + "/" + n if parent else n

    def existing(self, kinds=None):
        ents = self.entries()
        if kinds:
            ents = [e for e in ents if e[1] in kinds]
        if not ents:
            return None
        return self.rng.choice(ents)[0]

    def path(self, p_exist=0.75, kinds=None, slash=0.02):
        rel = None
        if self.rng.random() < p_exist:
            rel = self.existing(kinds)
        if rel is None:
            rel = self.new_path()
        if self.rng.random() < slash:
            rel += "/"
        return rel

    def pick_fd(self, kinds=("reg",)):
        c = [f for f in self.fds if f.kind in kinds]
        return self.rng.choice(c) if c else None

    def length(self):
        r = self.rng.random()
        if r < 0.05:
            return 0
        if r < 0.5:
            return self.rng.randint(1, 64)
        if r < 0.85:
            return self.rng.randint(65, 8192)
        if r < 0.98:
            return self.rng.randint(8193, 70000)
        return self.rng.randint(70001, 300000)

    def offset(self, size):
        r = self.rng.random()
        if r < 0.4:
            return self.rng.randint(0, max(size, 0))
        if r < 0.6:
            return max(size - self.rng.randint(0, 100), 0)
        if r < 0.75:
            return self.rng.randint(0, 16384)
        if r < 0.97:
            return size + self.rng.randint(1, 3 << 20)     # leaves a hole
        if r < 0.985:
            return 4 * GiB + self.rng.randint(-8192, 8192)  # files over 4 GiB
        return 5 * GiB + self.rng.randint(0, 1 << 20)

    def native_size(self, fdpair):
        try:
            return os.fstat(fdpair.fds[0]).st_size
        except OSError:
            return 0

    def mode(self, choices):
        return self.rng.choice(choices)

    def fail(self, desc, ra, rb, extra=""):
        lines = ["difftest mismatch: seed=%d step=%d op=%s" % (self.seed, self.step, desc),
                 "  native : %s" % short(ra, 2000),
                 "  mounted: %s" % short(rb, 2000)]
        if extra:
            lines.append(extra)
        if self.replay_hint:
            lines.append("replay: " + self.replay_hint(self.seed, self.step + 1))
        lines.append("last steps (native results):")
        lines.extend("  " + h for h in self.history)
        raise Mismatch("\n".join(lines))

    def both(self, desc, fn, mutates=True):
        """Runs FN(side) on the native side then on the mounted side; results must be equal."""
        ra = outcome(fn, 0)
        rb = outcome(fn, 1)
        if mutates:
            self._entries = None
        self.history.append("%d %s -> %s" % (self.step, desc, short(ra, 120)))
        if ra[0] == "err":
            self.errs[ra[1]] += 1
        if ra != rb:
            self.fail(desc, ra, rb)
        return ra

    def both_fd(self, desc, opener, kind_hint=None, keep=True):
        """Opens on both sides; keeps the pair in the pool or closes it."""
        ra = outcome(opener, 0)
        rb = outcome(opener, 1)
        self._entries = None
        fa = ra[1] if ra[0] == "ok" else None
        fb = rb[1] if rb[0] == "ok" else None
        sa = outcome(lambda fd: stat_summary(os.fstat(fd)), fa) if fa is not None else ra
        sb = outcome(lambda fd: stat_summary(os.fstat(fd)), fb) if fb is not None else rb
        self.history.append("%d %s -> %s" % (self.step, desc, short(sa, 120)))
        if ra[0] == "err":
            self.errs[ra[1]] += 1
        if (fa is None) != (fb is None) or sa != sb:
            for fd in (fa, fb):
                if fd is not None:
                    os.close(fd)
            self.fail(desc, sa, sb)
        if fa is None:
            return None
        kind = sa[1][0] if sa[0] == "ok" else "?"
        if keep and len(self.fds) < MAX_FDS:
            self.fd_serial += 1
            pair = FdPair((fa, fb), desc, 0, kind, self.fd_serial)
            self.fds.append(pair)
            return pair
        self.both("close(new)", lambda s: os.close((fa, fb)[s]), mutates=False)
        return None

    # ------------------------------------------------------------ operations

    def _open_flags(self, acc):
        return {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}[acc]

    def _nonblock_if_fifo(self, rel, flags):
        try:
            if stat.S_ISFIFO(os.stat(self.p(0, rel)).st_mode):
                return flags | os.O_NONBLOCK
        except OSError:
            pass
        return flags

    def op_create(self):
        rel = self.path(p_exist=0.25)
        acc = self.rng.choice(["w", "rw", "rw", "r"])
        flags = os.O_CREAT | self._open_flags(acc)
        names = ["O_CREAT", acc]
        for flag, fname, pr in ((os.O_EXCL, "O_EXCL", 0.4), (os.O_TRUNC, "O_TRUNC", 0.2),
                                (os.O_APPEND, "O_APPEND", 0.15), (os.O_DIRECT, "O_DIRECT", 0.05)):
            if self.rng.random() < pr:
                flags |= flag
                names.append(fname)
        mode = self.mode([0o644, 0o600, 0o755, 0o777, 0o666, 0o4755, 0o2755, 0o444, 0o000])
        flags = self._nonblock_if_fifo(rel, flags)
        desc = "open(%r, %s, %o)" % (rel, "|".join(names), mode)
        pair = self.both_fd(desc, lambda s: os.open(self.p(s, rel), flags, mode),
                            keep=self.rng.random() < 0.7)
        if pair:
            pair.flags = flags
            if flags & os.O_DIRECT and pair.kind == "reg":
                # only aligned I/O on these (misaligned O_DIRECT is a documented FUSE
                # difference): op_direct_io, not the buffered ops
                pair.kind = "direct"

    def op_open(self):
        rel = self.path(p_exist=0.85, slash=0.03)
        acc = self.rng.choice(["r", "r", "w", "rw", "rw"])
        flags = self._open_flags(acc)
        names = [acc]
        for flag, fname, pr in ((os.O_TRUNC, "O_TRUNC", 0.12), (os.O_APPEND, "O_APPEND", 0.15),
                                (os.O_NOFOLLOW, "O_NOFOLLOW", 0.05),
                                (os.O_DIRECTORY, "O_DIRECTORY", 0.05),
                                (os.O_CREAT, "O_CREAT", 0.05), (os.O_DIRECT, "O_DIRECT", 0.05)):
            if self.rng.random() < pr:
                flags |= flag
                names.append(fname)
        flags = self._nonblock_if_fifo(rel, flags)
        desc = "open(%r, %s)" % (rel, "|".join(names))
        if self._sticky_symlink_create(rel, flags):
            return self._pin_sticky_symlink_create(desc, rel, flags)
        pair = self.both_fd(desc, lambda s: os.open(self.p(s, rel), flags, 0o640),
                            keep=self.rng.random() < 0.8)
        if pair:
            pair.flags = flags
            if flags & os.O_DIRECT and pair.kind == "reg":
                # only aligned I/O on these (misaligned O_DIRECT is a documented FUSE
                # difference): op_direct_io, not the buffered ops
                pair.kind = "direct"

    def _sticky_symlink_create(self, rel, flags):
        """O_CREAT on an existing symlink, in a sticky world-writable directory,
        owned by neither the directory's owner nor us, with O_NOFOLLOW: the
        kernel's own FUSE difference (docs/semantics.md): natively EACCES (the
        sticky-directory check), through any FUSE mount ELOOP."""
        if not flags & os.O_CREAT or not flags & os.O_NOFOLLOW:
            return False
        try:
            st = os.lstat(self.p(0, rel))
            dst = os.stat(os.path.dirname(self.p(0, rel)) or ".")
        except OSError:
            return False
        return (stat.S_ISLNK(st.st_mode) and dst.st_mode & stat.S_ISVTX
                and dst.st_mode & stat.S_IWOTH and st.st_uid not in (dst.st_uid, os.geteuid()))

    def _pin_sticky_symlink_create(self, desc, rel, flags):
        """Pins the documented difference instead of comparing: native EACCES;
        through the mount ELOOP with O_NOFOLLOW (nothing reaches the daemon)."""
        ra = outcome(lambda s: os.open(self.p(s, rel), flags, 0o640), 0)
        self.history.append("%d %s -> %s (known FUSE difference)" % (self.step, desc, short(ra, 120)))
        if ra != ("err", "EACCES"):
            self.fail(desc + " [native side of the known difference]", ra, ("err", "EACCES"))
        rb = outcome(lambda s: os.open(self.p(s, rel), flags, 0o640), 1)
        if rb[0] == "ok":
            os.close(rb[1])
        if rb != ("err", "ELOOP"):
            self.fail(desc + " [mounted side of the known difference]", ("err", "ELOOP"), rb)

    def op_close(self):
        if not self.fds:
            return self.op_open()
        pair = self.fds.pop(self.rng.randrange(len(self.fds)))
        self.both("close(%r)" % pair, lambda s: os.close(pair.fds[s]), mutates=False)

    def op_write(self):
        pair = self.pick_fd(("reg", "fifo"))
        if not pair:
            return self.op_create()
        data = self.rng.randbytes(self.length())
        if self.rng.random() < 0.5:
            desc = "write(%r, %d bytes)" % (pair, len(data))
            self.both(desc, lambda s: os.write(pair.fds[s], data), mutates=False)
        else:
            off = self.offset(self.native_size(pair))
            desc = "pwrite(%r, %d bytes, %d)" % (pair, len(data), off)
            self.both(desc, lambda s: os.pwrite(pair.fds[s], data, off), mutates=False)

    def op_read(self):
        pair = self.pick_fd(("reg", "fifo", "dir"))
        if not pair:
            return self.op_open()
        n = self.length()
        if self.rng.random() < 0.5:
            self.both("read(%r, %d)" % (pair, n),
                      lambda s: digest(os.read(pair.fds[s], n)), mutates=False)
        else:
            off = self.offset(self.native_size(pair))
            self.both("pread(%r, %d, %d)" % (pair, n, off),
                      lambda s: digest(os.pread(pair.fds[s], n, off)), mutates=False)

    def _size(self, cur):
        r = self.rng.random()
        if r < 0.2:
            return 0
        if r < 0.6:
            return self.rng.randint(0, max(cur, 1) * 2)
        if r < 0.95:
            return self.rng.randint(0, 4 << 20)
        if r < 0.98:
            return 4 * GiB + self.rng.randint(-4096, 4096)
        if r < 0.99:
            return -1
        return 6 * GiB

    def op_truncate(self):
        rel = self.path(p_exist=0.85, slash=0.02)
        try:
            cur = os.stat(self.p(0, rel)).st_size
        except OSError:
            cur = 0
        size = self._size(cur)
        self.both("truncate(%r, %d)" % (rel, size), lambda s: os.truncate(self.p(s, rel), size))

    def op_ftruncate(self):
        pair = self.pick_fd(("reg", "fifo", "dir"))
        if not pair:
            return self.op_truncate()
        size = self._size(self.native_size(pair))
        self.both("ftruncate(%r, %d)" % (pair, size),
                  lambda s: os.ftruncate(pair.fds[s], size), mutates=False)

    def op_rename(self):
        src = self.path(p_exist=0.85, slash=0.02)
        dst = self.path(p_exist=0.5, slash=0.02)
        r = self.rng.random()
        if r < 0.5:
            self.both("rename(%r, %r)" % (src, dst),
                      lambda s: os.rename(self.p(s, src), self.p(s, dst)))
            return
        flags = 0 if r < 0.6 else RENAME_NOREPLACE if r < 0.8 else RENAME_EXCHANGE
        fname = {0: "0", RENAME_NOREPLACE: "RENAME_NOREPLACE",
                 RENAME_EXCHANGE: "RENAME_EXCHANGE"}[flags]
        self.both("renameat2(%r, %r, %s)" % (src, dst, fname),
                  lambda s: renameat2(self.p(s, src), self.p(s, dst), flags))

    def op_link(self):
        src = self.path(p_exist=0.9, kinds=("reg", "reg", "lnk", "fifo", "dir"))
        dst = self.path(p_exist=0.2)
        follow = self.rng.random() < 0.3
        self.both("link(%r, %r, follow=%s)" % (src, dst, follow),
                  lambda s: os.link(self.p(s, src), self.p(s, dst), follow_symlinks=follow))

    def op_unlink(self):
        rel = self.path(p_exist=0.85, slash=0.02)
        self.both("unlink(%r)" % rel, lambda s: os.unlink(self.p(s, rel)))

    def op_mkdir(self):
        rel = self.path(p_exist=0.2, slash=0.05)
        mode = self.mode([0o755, 0o700, 0o777, 0o1777, 0o2755, 0o500, 0o750])
        self.both("mkdir(%r, %o)" % (rel, mode), lambda s: os.mkdir(self.p(s, rel), mode))

    def op_rmdir(self):
        rel = self.path(p_exist=0.85, kinds=("dir", "dir", "dir", "reg", "lnk"), slash=0.05)
        self.both("rmdir(%r)" % rel, lambda s: os.rmdir(self.p(s, rel)))

    def _target(self):
        r = self.rng.random()
        if r < 0.6:
            return "/".join(self.rng.choice(NAMES) for _ in range(self.rng.randint(1, 3)))
        if r < 0.8:
            ex = self.existing()
            return ex if ex else "a"
        if r < 0.9:
            return "/nonexistent-veneer-difftest/x"
        if r < 0.97:
            return self.rng.choice(NAMES) + "/" * self.rng.randint(1, 2)
        return "x" * self.rng.choice([255, 1000, 4095])

    def op_symlink(self):
        target = self._target()
        rel = self.path(p_exist=0.2, slash=0.01)
        self.both("symlink(%r, %r)" % (short(target, 40), rel),
                  lambda s: os.symlink(target, self.p(s, rel)))

    def op_readlink(self):
        rel = self.path(p_exist=0.9, kinds=("lnk", "lnk", "lnk", "reg", "dir"))
        self.both("readlink(%r)" % rel, lambda s: os.readlink(self.p(s, rel)), mutates=False)

    def _xname(self):
        r = self.rng.random()
        if r < 0.01:
            return "bogus.namespace"
        if r < 0.02:
            return "user." + "n" * 300          # name too long: ERANGE
        return self.rng.choice(XATTR_NAMES)

    def _xtarget(self):
        """(description, fn(side) -> path-or-fd, follow)"""
        if self.rng.random() < 0.2:
            pair = self.pick_fd(("reg", "dir", "fifo"))
            if pair:
                return repr(pair), (lambda s: pair.fds[s]), True
        rel = self.path(p_exist=0.9)
        follow = self.rng.random() < 0.6
        return repr(rel), (lambda s: self.p(s, rel)), follow

    def op_setxattr(self):
        d, tgt, follow = self._xtarget()
        name = self._xname()
        r = self.rng.random()
        size = self.rng.randint(0, 300) if r < 0.95 else self.rng.randint(1000, 5000)
        value = self.rng.randbytes(size)
        flags = self.rng.choice([0, 0, XATTR_CREATE, XATTR_REPLACE])
        self.both("setxattr(%s, %s, %d bytes, flags=%d, follow=%s)"
                  % (d, short(name, 30), size, flags, follow),
                  lambda s: os.setxattr(tgt(s), name, value, flags, follow_symlinks=follow),
                  mutates=False)

    def op_getxattr(self):
        d, tgt, follow = self._xtarget()
        name = self._xname()
        self.both("getxattr(%s, %s, follow=%s)" % (d, short(name, 30), follow),
                  lambda s: digest(os.getxattr(tgt(s), name, follow_symlinks=follow)),
                  mutates=False)

    def op_listxattr(self):
        d, tgt, follow = self._xtarget()
        self.both("listxattr(%s, follow=%s)" % (d, follow),
                  lambda s: sorted(os.listxattr(tgt(s), follow_symlinks=follow)), mutates=False)

    def op_removexattr(self):
        d, tgt, follow = self._xtarget()
        name = self._xname()
        self.both("removexattr(%s, %s, follow=%s)" % (d, short(name, 30), follow),
                  lambda s: os.removexattr(tgt(s), name, follow_symlinks=follow), mutates=False)

    def op_xattr_sizes(self):
        rel = self.path(p_exist=0.9)
        follow = self.rng.random() < 0.6
        if self.rng.random() < 0.5:
            name = self._xname()
            try:
                cur = len(os.getxattr(self.p(0, rel), name, follow_symlinks=follow))
            except OSError:
                cur = 3
            size = self.rng.choice([0, max(cur - 1, 0), cur, cur + 10])
            self.both("getxattr(%r, %s, size=%d, follow=%s)" % (rel, short(name, 30), size, follow),
                      lambda s: xattr_probe(self.p(s, rel), name, size, follow), mutates=False)
        else:
            try:
                cur = len(b"".join(n.encode() + b"\0" for n in
                                   os.listxattr(self.p(0, rel), follow_symlinks=follow)))
            except OSError:
                cur = 3
            size = self.rng.choice([0, max(cur - 1, 0), cur, cur + 10])
            self.both("listxattr(%r, size=%d, follow=%s)" % (rel, size, follow),
                      lambda s: listxattr_probe(self.p(s, rel), size, follow), mutates=False)

    def op_chmod(self):
        mode = self.mode([0o644, 0o600, 0o755, 0o700, 0o777, 0o000, 0o4755, 0o2755, 0o6711,
                          0o1777, 0o2775, 0o444, 0o620])
        pair = self.pick_fd(("reg", "dir", "fifo")) if self.rng.random() < 0.2 else None
        if pair:
            self.both("fchmod(%r, %o)" % (pair, mode), lambda s: os.fchmod(pair.fds[s], mode),
                      mutates=False)
        else:
            rel = self.path(p_exist=0.9, slash=0.01)
            self.both("chmod(%r, %o)" % (rel, mode), lambda s: os.chmod(self.p(s, rel), mode),
                      mutates=False)

    def op_chown(self):
        uid = self.rng.choice([-1, -1, 0, 1000, 65534])
        gid = self.rng.choice([-1, -1, 0, 1000, 65534])
        pair = self.pick_fd(("reg", "dir", "fifo")) if self.rng.random() < 0.2 else None
        if pair:
            self.both("fchown(%r, %d, %d)" % (pair, uid, gid),
                      lambda s: os.fchown(pair.fds[s], uid, gid), mutates=False)
            return
        rel = self.path(p_exist=0.9)
        follow = self.rng.random() < 0.6
        self.both("chown(%r, %d, %d, follow=%s)" % (rel, uid, gid, follow),
                  lambda s: os.chown(self.p(s, rel), uid, gid, follow_symlinks=follow),
                  mutates=False)

    def _time(self):
        r = self.rng.random()
        if r < 0.1:
            return "now"
        if r < 0.2:
            return "omit"
        ns = self.rng.choice([0, self.rng.randint(0, 10**9 - 1)])
        return self.rng.randint(0, 2**31) * 10**9 + ns

    def op_utime(self):
        at, mt = self._time(), self._time()
        pair = self.pick_fd(("reg", "dir")) if self.rng.random() < 0.15 else None
        if pair:
            if at in ("now", "omit") or mt in ("now", "omit"):
                at, mt = self.rng.randint(0, 2**31) * 10**9, self.rng.randint(0, 2**31) * 10**9

            def fut(s):
                os.utime(pair.fds[s], ns=(at, mt))
                st = os.fstat(pair.fds[s])
                return st.st_atime_ns, st.st_mtime_ns
            self.both("futimens(%r, %d, %d)" % (pair, at, mt), fut, mutates=False)
            return
        rel = self.path(p_exist=0.9)
        follow = self.rng.random() < 0.6

        def ut(s):
            p = self.p(s, rel)
            utimensat(p, at, mt, follow)
            st = os.stat(p, follow_symlinks=follow)
            # only what was set explicitly is comparable
            return (st.st_atime_ns if isinstance(at, int) else None,
                    st.st_mtime_ns if isinstance(mt, int) else None)
        self.both("utimensat(%r, %s, %s, follow=%s)" % (rel, at, mt, follow), ut, mutates=False)

    def op_stat(self):
        rel = self.path(p_exist=0.85, slash=0.03)
        if self.rng.random() < 0.03:
            rel = ""
        follow = self.rng.random() < 0.5
        self.both("%s(%r)" % ("stat" if follow else "lstat", rel),
                  lambda s: stat_summary(os.stat(self.p(s, rel), follow_symlinks=follow)),
                  mutates=False)

    def op_fstat(self):
        pair = self.pick_fd(("reg", "dir", "fifo", "direct"))
        if not pair:
            return self.op_stat()
        self.both("fstat(%r)" % pair, lambda s: stat_summary(os.fstat(pair.fds[s])),
                  mutates=False)

    def op_listdir(self):
        pair = self.pick_fd(("dir",)) if self.rng.random() < 0.3 else None
        if pair:
            self.both("listdir(%r)" % pair, lambda s: sorted(os.listdir(pair.fds[s])),
                      mutates=False)
            return
        rel = self.path(p_exist=0.9, kinds=("dir", "dir", "dir", "lnk", "reg"))
        if self.rng.random() < 0.1:
            rel = ""
        self.both("listdir(%r)" % rel, lambda s: sorted(os.listdir(self.p(s, rel))),
                  mutates=False)

    def op_access(self):
        rel = self.path(p_exist=0.85)
        mode = self.rng.choice([os.F_OK, os.R_OK, os.W_OK, os.X_OK, os.R_OK | os.W_OK,
                                os.R_OK | os.X_OK])
        self.both("access(%r, %d)" % (rel, mode),
                  lambda s: os.access(self.p(s, rel), mode), mutates=False)

    def _mmap_range(self, pair):
        size = self.native_size(pair)
        if size <= 0:
            return None
        gran = mmap.ALLOCATIONGRANULARITY
        off = self.rng.randint(0, (size - 1) // gran) * gran
        if size - off > 200000:
            off = self.rng.randint(0, min(size - 1, 8 << 20) // gran) * gran
        length = self.rng.randint(1, min(size - off, 200000))
        return off, length

    def op_mmap_read(self):
        pair = self.pick_fd(("reg",))
        if not pair:
            return self.op_open()
        rng_ = self._mmap_range(pair)
        if not rng_:
            return self.op_fstat()
        off, length = rng_
        a = self.rng.randint(0, length - 1)
        b = self.rng.randint(a, length)

        def run(s):
            fd = pair.fds[s]
            size = os.fstat(fd).st_size
            if size < off + length:
                return ("file shorter than mapping", size)
            m = mmap.mmap(fd, length, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ, offset=off)
            try:
                return digest(m[a:b])
            finally:
                m.close()
        self.both("mmap_read(%r, off=%d, len=%d)[%d:%d]" % (pair, off, length, a, b), run,
                  mutates=False)

    def op_mmap_write(self):
        pair = self.pick_fd(("reg",))
        if not pair:
            return self.op_open()
        rng_ = self._mmap_range(pair)
        if not rng_:
            return self.op_fstat()
        off, length = rng_
        a = self.rng.randint(0, length - 1)
        data = self.rng.randbytes(self.rng.randint(1, min(length - a, 20000)))
        sync = self.rng.random() < 0.3

        def run(s):
            fd = pair.fds[s]
            m = mmap.mmap(fd, length, flags=mmap.MAP_SHARED,
                          prot=mmap.PROT_READ | mmap.PROT_WRITE, offset=off)
            try:
                m[a:a + len(data)] = data
                if sync:
                    m.flush()
            finally:
                m.close()
        self.both("mmap_write(%r, off=%d, len=%d)[%d:+%d] msync=%s"
                  % (pair, off, length, a, len(data), sync), run, mutates=False)

    def op_fsync(self):
        pair = self.pick_fd(("reg", "dir", "fifo", "direct"))
        if not pair:
            return self.op_open()
        fn = self.rng.choice([os.fsync, os.fdatasync])
        self.both("%s(%r)" % (fn.__name__, pair), lambda s: fn(pair.fds[s]), mutates=False)

    def op_lseek(self):
        pair = self.pick_fd(("reg",))
        if not pair:
            return self.op_open()
        whence = self.rng.choice([os.SEEK_SET, os.SEEK_CUR, os.SEEK_END, SEEK_DATA, SEEK_HOLE])
        size = self.native_size(pair)
        off = self.rng.choice([0, self.rng.randint(0, size + 10), self.rng.randint(-100, 100)])
        if whence in (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END):
            if whence == os.SEEK_SET:
                off = abs(off)
            self.both("lseek(%r, %d, %d)" % (pair, off, whence),
                      lambda s: os.lseek(pair.fds[s], off, whence), mutates=False)
            return
        off = abs(off)
        # Where ext4 puts data and holes is not a function of the operations alone:
        # buffered writes into holes allocate unwritten extents that are converted (and
        # neighbours zeroed out) depending on the writeback pattern, which differs between
        # the native file and the lower file written by the daemon; inside unwritten
        # extents ext4 answers from the page cache.  So both sides must give a *valid*
        # answer for their own file (POSIX: a hole reads as zeros, EOF is a hole), the
        # same errno, and ENXIO exactly at/after EOF.  fsync first: the kernel does not
        # write back dirty pages before it sends LSEEK to a FUSE daemon.
        name = "SEEK_DATA" if whence == SEEK_DATA else "SEEK_HOLE"

        def zeros(fd, start, end):
            """Samples [start, end) (at most 3 x 64 KiB) and says whether it reads as zeros."""
            if start >= end:
                return True
            rfd = os.open("/proc/self/fd/%d" % fd, os.O_RDONLY)   # fd may be write-only
            try:
                spots = {start, max(start, end - 65536), start + (end - start) // 2}
                for at in sorted(spots):
                    n = min(65536, end - at)
                    if n > 0 and os.pread(rfd, n, at).count(0) != n:
                        return False
                return True
            finally:
                os.close(rfd)

        def run(s):
            fd = pair.fds[s]
            os.fsync(fd)
            cur = os.lseek(fd, 0, os.SEEK_CUR)
            try:
                pos = os.lseek(fd, off, whence)
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
                pos = None
            finally:
                os.lseek(fd, cur, os.SEEK_SET)     # the new position is not comparable
            size = os.fstat(fd).st_size
            if off >= size:
                return ("at/after EOF", "ENXIO" if pos is None else pos)
            if whence == SEEK_DATA:
                if pos is None:
                    return "valid" if zeros(fd, off, size) else (
                        "ENXIO but data follows", size)
                if not off <= pos <= size:
                    return ("outside [offset, size]", pos, size)
                return "valid" if zeros(fd, off, pos) else ("skipped data", pos)
            if pos is None or not off <= pos <= size:
                return ("bad hole", pos, size)
            return "valid" if zeros(fd, pos, min(pos + 512, size)) else ("hole not zero", pos)
        self.both("fsync+lseek(%r, %d, %s)" % (pair, off, name), run, mutates=False)

    def op_fallocate(self):
        pair = self.pick_fd(("reg",))
        if not pair:
            return self.op_open()
        size = self.native_size(pair)
        off = self.rng.randint(0, size + 65536)
        length = self.rng.randint(1, 300000)
        mode = self.rng.choice([0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE])
        self.both("fallocate(%r, mode=%d, %d, %d)" % (pair, mode, off, length),
                  lambda s: fallocate(pair.fds[s], mode, off, length), mutates=False)

    def op_copy_file_range(self):
        src = self.pick_fd(("reg",))
        dst = self.pick_fd(("reg",))
        if not src or not dst:
            return self.op_open()
        ssize = self.native_size(src)
        soff = self.rng.randint(0, ssize + 100)
        doff = self.offset(self.native_size(dst))
        if doff > 8 << 20:
            doff = self.rng.randint(0, 8 << 20)
        count = self.rng.randint(0, 100000)
        self.both("copy_file_range(%r, %d, %r, %d, %d)" % (src, soff, dst, doff, count),
                  lambda s: os.copy_file_range(src.fds[s], dst.fds[s], count, soff, doff),
                  mutates=False)

    def op_direct_io(self):
        """Aligned reads and writes on O_DIRECT descriptors, interleaved with buffered I/O
        on other descriptors of the same files (the caches must stay coherent)."""
        pair = self.pick_fd(("direct",))
        if not pair:
            return self.op_open()
        size = self.native_size(pair)
        blk = 4096
        off = blk * self.rng.choice([0, self.rng.randint(0, size // blk + 2),
                                     self.rng.randint(0, 64)])
        length = blk * self.rng.randint(1, 16)
        # with O_APPEND the write goes to EOF: misaligned unless the size is aligned
        misaligned = pair.flags & os.O_APPEND and size % blk
        if self.rng.random() < 0.5 or misaligned:
            def rd(s):
                buf = mmap.mmap(-1, length)         # page-aligned buffer
                try:
                    n = os.preadv(pair.fds[s], [buf], off)
                    return digest(buf[:n])
                finally:
                    buf.close()
            self.both("O_DIRECT pread(%r, %d, %d)" % (pair, length, off), rd, mutates=False)
        else:
            data = self.rng.randbytes(length)

            def wr(s):
                buf = mmap.mmap(-1, length)
                try:
                    buf[:] = data
                    return os.pwritev(pair.fds[s], [buf], off)
                finally:
                    buf.close()
            self.both("O_DIRECT pwrite(%r, %d, %d)" % (pair, length, off), wr, mutates=False)

    def op_vector_io(self):
        """readv/writev with several buffers, and sendfile (splice) between files."""
        pair = self.pick_fd(("reg",))
        if not pair:
            return self.op_open()
        r = self.rng.random()
        if r < 0.4:
            bufs = [self.rng.randbytes(self.rng.randint(0, 5000))
                    for _ in range(self.rng.randint(1, 4))]
            self.both("writev(%r, %s)" % (pair, [len(b) for b in bufs]),
                      lambda s: os.writev(pair.fds[s], bufs), mutates=False)
        elif r < 0.8:
            sizes = [self.rng.randint(0, 5000) for _ in range(self.rng.randint(1, 4))]

            def rv(s):
                bufs = [bytearray(n) for n in sizes]
                n = os.readv(pair.fds[s], bufs)
                return n, digest(b"".join(bytes(b) for b in bufs))
            self.both("readv(%r, %s)" % (pair, sizes), rv, mutates=False)
        else:
            src = self.pick_fd(("reg",))
            off = self.rng.randint(0, self.native_size(src) + 10)
            count = self.rng.randint(0, 100000)
            self.both("sendfile(%r <- %r, %d, %d)" % (pair, src, off, count),
                      lambda s: os.sendfile(pair.fds[s], src.fds[s], off, count), mutates=False)

    def op_at(self):
        """*at() calls relative to an open directory (which may have been moved or removed)."""
        pair = self.pick_fd(("dir",))
        if not pair:
            return self.op_open()
        n = self.name()
        n2 = self.name()
        r = self.rng.random()
        if r < 0.25:
            follow = self.rng.random() < 0.5
            self.both("fstatat(%r, %r, follow=%s)" % (pair, n, follow),
                      lambda s: stat_summary(os.stat(n, dir_fd=pair.fds[s],
                                                     follow_symlinks=follow)), mutates=False)
        elif r < 0.45:
            def cr(s):
                fd = os.open(n, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK, 0o640,
                             dir_fd=pair.fds[s])
                try:
                    return os.write(fd, b"at")
                finally:
                    os.close(fd)
            self.both("openat(%r, %r, O_CREAT)" % (pair, n), cr)
        elif r < 0.55:
            self.both("mkdirat(%r, %r)" % (pair, n),
                      lambda s: os.mkdir(n, 0o755, dir_fd=pair.fds[s]))
        elif r < 0.7:
            self.both("unlinkat(%r, %r)" % (pair, n),
                      lambda s: os.unlink(n, dir_fd=pair.fds[s]))
        elif r < 0.75:
            self.both("unlinkat(%r, %r, AT_REMOVEDIR)" % (pair, n),
                      lambda s: os.rmdir(n, dir_fd=pair.fds[s]))
        elif r < 0.85:
            other = self.pick_fd(("dir",))
            self.both("renameat(%r, %r, %r, %r)" % (pair, n, other, n2),
                      lambda s: os.rename(n, n2, src_dir_fd=pair.fds[s],
                                          dst_dir_fd=other.fds[s]))
        elif r < 0.92:
            t = self._target()
            self.both("symlinkat(%r, %r, %r)" % (short(t, 40), pair, n),
                      lambda s: os.symlink(t, n, dir_fd=pair.fds[s]))
        else:
            self.both("readlinkat(%r, %r)" % (pair, n),
                      lambda s: os.readlink(n, dir_fd=pair.fds[s]), mutates=False)

    def op_mknod(self):
        rel = self.path(p_exist=0.2)
        mode = self.mode([0o644, 0o600, 0o666, 0o755])
        if self.rng.random() < 0.6:
            self.both("mkfifo(%r, %o)" % (rel, mode), lambda s: os.mkfifo(self.p(s, rel), mode))
        else:
            self.both("mknod(%r, S_IFSOCK|%o)" % (rel, mode),
                      lambda s: os.mknod(self.p(s, rel), stat.S_IFSOCK | mode))

    def op_umask(self):
        m = self.rng.choice([0o022, 0o022, 0o002, 0o077, 0o000, 0o027])
        os.umask(m)
        self.history.append("%d umask(%o)" % (self.step, m))

    def op_cat(self):
        """open, read everything (up to 1 MiB), close."""
        rel = self.path(p_exist=0.9, kinds=("reg", "reg", "reg", "lnk"))

        def run(s):
            fd = os.open(self.p(s, rel), self._nonblock_if_fifo(rel, os.O_RDONLY))
            try:
                chunks = []
                total = 0
                while total < (1 << 20):
                    b = os.read(fd, 65536)
                    if not b:
                        break
                    chunks.append(b)
                    total += len(b)
                return digest(b"".join(chunks))
            finally:
                os.close(fd)
        self.both("cat(%r)" % rel, run, mutates=False)

    def op_write_file(self):
        """open(O_WRONLY|O_CREAT|O_TRUNC), write, close: what most programs do."""
        rel = self.path(p_exist=0.6, kinds=("reg",))
        data = self.rng.randbytes(self.length())
        flags = self._nonblock_if_fifo(rel, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)

        def run(s):
            fd = os.open(self.p(s, rel), flags, 0o644)
            try:
                return os.write(fd, data)
            finally:
                os.close(fd)
        self.both("write_file(%r, %d bytes)" % (rel, len(data)), run)

    def op_rmtree(self):
        if len(self.entries()) < 25 and self.rng.random() < 0.7:
            return self.op_unlink()
        rel = self.existing(("dir",))
        if not rel:
            return self.op_unlink()
        order = []
        stack = [rel]
        while stack:
            r = stack.pop()
            order.append((r, True))
            for n in sorted(os.listdir(self.p(0, r))):
                c = r + "/" + n
                if stat.S_ISDIR(os.lstat(self.p(0, c)).st_mode):
                    stack.append(c)
                else:
                    order.append((c, False))
        # children before parents
        dirs = [r for r, d in order if d]
        files = [r for r, d in order if not d]
        for f in files:
            self.both("rmtree:unlink(%r)" % f, lambda s: os.unlink(self.p(s, f)))
        for d in reversed(dirs):
            self.both("rmtree:rmdir(%r)" % d, lambda s: os.rmdir(self.p(s, d)))

    # ------------------------------------------------------------ driver

    def check_state(self, what):
        for pair in self.fds:
            self.both("fstat(%r)" % pair, lambda s: stat_summary(os.fstat(pair.fds[s])),
                      mutates=False)
            if pair.kind == "reg":
                self.both("lseek(%r, 0, SEEK_CUR)" % pair,
                          lambda s: os.lseek(pair.fds[s], 0, os.SEEK_CUR), mutates=False)
        diffs = compare_trees(*self.roots)
        if diffs:
            self.fail("tree comparison (%s)" % what, "", "",
                      extra="tree differences:\n  " + "\n  ".join(diffs[:40]))

    def close_all(self):
        while self.fds:
            pair = self.fds.pop()
            for fd in pair.fds:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def run(self):
        self.log("difftest: seed=%d ops=%d native=%s mounted=%s"
                 % (self.seed, self.nops, self.roots[0], self.roots[1]))
        old_umask = os.umask(0o022)
        t0 = time.monotonic()
        try:
            diffs = compare_trees(*self.roots)
            if diffs:
                raise Mismatch("difftest: the trees differ before the first step (seed=%d):\n  %s"
                               % (self.seed, "\n  ".join(diffs[:40])))
            for self.step in range(self.nops):
                _, fn = self.rng.choices(self.ops, self.weights)[0]
                self.counts[fn.__name__] += 1
                fn()
                if self.verbose:
                    self.log(self.history[-1] if self.history else "")
                if self.check_every and (self.step + 1) % self.check_every == 0:
                    self.check_state("after step %d" % self.step)
            self.step = self.nops
            self.check_state("end, fds open")
            self.both("close all", lambda s: [os.close(p.fds[s]) for p in self.fds],
                      mutates=False)
            self.fds = []
            self.check_state("end, all closed")
        finally:
            self.close_all()
            os.umask(old_umask)
        self.log("difftest: seed=%d passed %d ops in %.1fs; errors seen: %s"
                 % (self.seed, self.nops, time.monotonic() - t0,
                    ", ".join("%s=%d" % kv for kv in self.errs.most_common())))
        return self


# ---------------------------------------------------------------- standalone

def _mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[4] == path:
                return parts[parts.index("-") + 1]
    return None


def _unmount(mnt, proc):
    """Unmounts MNT (lazily if it is busy) and reaps the daemon; returns its exit code."""
    if _mounted(mnt) == "fuse.veneer":
        subprocess.run(["umount", mnt], check=False)
        if _mounted(mnt) == "fuse.veneer":
            subprocess.run(["fusermount3", "-uz", mnt], check=False)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


# The layer of a --layered run: names beside the tested directory, none in it.
LAYER_TREE = {"top.txt": b"virtual\n", "vdir/inner": b"inner\n", "vdir/sub/deep": b"deep\n"}


def build_layer(tmp):
    """Packs LAYER_TREE into an image in TMP; returns its path."""
    src, img = os.path.join(tmp, "layer-src"), os.path.join(tmp, "layer.sqfs")
    for rel, data in LAYER_TREE.items():
        os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
        with open(os.path.join(src, rel), "wb") as f:
            f.write(data)
    subprocess.run(["mksquashfs", src, img, "-noappend", "-quiet", "-no-progress"],
                   check=True, capture_output=True)
    return img


def layered_dirs(tmp):
    """For a --layered run: the in-place mount root and the real directory tested
    in it (its own listing holds no virtual names: only its ancestor is merged)."""
    root = os.path.join(tmp, "layered")
    return root, os.path.join(root, "work")


def run_with_veneer(veneer, seed, ops, inplace=False, check_every=1000, verbose=False,
                    extra_args=(), layered=False):
    """Builds native + copy, mounts veneer over the copy, runs, unmounts, compares the
    lower with native; returns the exit status (0 passed, 1 mismatch, 2 no mount).
    LAYERED: in place over the copy's parent, with a layer attached at "/"."""
    tmp = tempfile.mkdtemp(prefix="veneer-difftest-")
    native, lower = os.path.join(tmp, "native"), os.path.join(tmp, "lower")
    mnt = lower if inplace else os.path.join(tmp, "mnt")
    tested = mnt            # where the calls go, through the mount
    real = lower            # the same directory on the real tree, compared at the end
    extra_args = list(extra_args)
    user_args = list(extra_args)
    if layered:
        lower, tested = layered_dirs(tmp)
        mnt, real, inplace = lower, tested, True
        extra_args += ["--layer", build_layer(tmp) + ":/"]
    for d in (native, lower, mnt, real):
        os.makedirs(d, exist_ok=True)
    populate(native, seed)
    copy_tree(native, real)
    cmd = [veneer, "mount", "-f"] + extra_args + [lower] + ([] if inplace else [mnt])
    proc = subprocess.Popen(cmd)
    try:
        deadline = time.monotonic() + 20
        while _mounted(mnt) != "fuse.veneer":
            if proc.poll() is not None or time.monotonic() > deadline:
                print("difftest: veneer did not mount (%s)" % cmd, file=sys.stderr)
                return 2
            time.sleep(0.02)
        hint = "python3 %s --seed %%d --ops %%d --veneer %s%s%s" % (
            sys.argv[0], veneer, " --layered" if layered else " --inplace" if inplace else "",
            "".join(" --mount-arg=" + a for a in user_args))
        t = DiffTest(native, tested, seed, ops, check_every, verbose,
                     replay_hint=lambda s, n: hint % (s, n))
        try:
            t.run()
        except Mismatch as e:
            print(str(e), file=sys.stderr)
            return 1
        rc = _unmount(mnt, proc)
        if rc != 0:
            print("difftest: veneer exited with %s after unmount" % rc, file=sys.stderr)
            return 1
        diffs = compare_trees(native, real, "lower")
        if diffs:
            print("difftest: seed=%d: after unmount the lower differs from native:\n  %s"
                  % (seed, "\n  ".join(diffs[:40])), file=sys.stderr)
            return 1
        return 0
    finally:
        _unmount(mnt, proc)
        if _mounted(mnt) is None:
            subprocess.run(["chmod", "-R", "u+rwX", tmp], capture_output=True)
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--ops", type=int, default=10000)
    ap.add_argument("--check-every", type=int, default=1000)
    ap.add_argument("--verbose", "-v", action="store_true")
    ap.add_argument("--veneer", help="mount this veneer binary over a fresh copy and run")
    ap.add_argument("--inplace", action="store_true", help="with --veneer: mount in place")
    ap.add_argument("--layered", action="store_true",
                    help="with --veneer: mount in place over the copy's parent with a layer "
                    "attached at / (the tested directory holds no virtual names)")
    ap.add_argument("--mount-arg", action="append", default=[], metavar="ARG",
                    help="with --veneer: extra argument for veneer mount (repeatable), "
                    "e.g. --mount-arg=--cache=never")
    ap.add_argument("--populate", action="store_true",
                    help="fill NATIVE_DIR and MOUNTED_DIR (both empty) with the initial tree first")
    ap.add_argument("dirs", nargs="*", metavar="DIR")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    if args.veneer:
        return run_with_veneer(args.veneer, seed, args.ops, args.inplace, args.check_every,
                               args.verbose, args.mount_arg, args.layered)
    if len(args.dirs) != 2:
        ap.error("need NATIVE_DIR MOUNTED_DIR (or --veneer PATH)")
    native, mounted = args.dirs
    if args.populate:
        populate(native, seed)
        populate(mounted, seed)
    t = DiffTest(native, mounted, seed, args.ops, args.check_every, args.verbose,
                 replay_hint=lambda s, n: "python3 %s --seed %d --ops %d %s %s"
                 % (sys.argv[0], s, n, native, mounted))
    try:
        t.run()
    except Mismatch as e:
        print(str(e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
