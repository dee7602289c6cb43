"""Helpers for veneer's parity tests: run the same calls on a native directory
and through a veneer mount, and compare results and errno exactly.

A test populates both trees with one function (before mounting), then runs one
function of operations on each root through a Recorder, which logs every
call's outcome as ("ok", normalized value) or ("err", "ENAME").  The two logs
must be equal step by step.
"""
import ctypes
import ctypes.util
import errno
import os
import pickle
import shutil
import stat
import subprocess
import sys

from conftest import become, mounted_fstype, pack

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
F_OFD_GETLK = 36
F_OFD_SETLK = 37
F_OFD_SETLKW = 38
XATTR_CREATE = 1
XATTR_REPLACE = 2

libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
libc.getxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
libc.getxattr.restype = ctypes.c_ssize_t
libc.lgetxattr.argtypes = libc.getxattr.argtypes
libc.lgetxattr.restype = ctypes.c_ssize_t
libc.listxattr.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
libc.listxattr.restype = ctypes.c_ssize_t
libc.readlink.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
libc.readlink.restype = ctypes.c_ssize_t


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(Timespec), ctypes.c_int]


class Dirent(ctypes.Structure):
    _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64),
                ("d_reclen", ctypes.c_ushort), ("d_type", ctypes.c_ubyte),
                ("d_name", ctypes.c_char * 256)]


libc.opendir.argtypes = [ctypes.c_char_p]
libc.opendir.restype = ctypes.c_void_p
libc.readdir.argtypes = [ctypes.c_void_p]
libc.readdir.restype = ctypes.POINTER(Dirent)
libc.telldir.argtypes = [ctypes.c_void_p]
libc.telldir.restype = ctypes.c_long
libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
libc.seekdir.restype = None
libc.rewinddir.argtypes = [ctypes.c_void_p]
libc.rewinddir.restype = None
libc.closedir.argtypes = [ctypes.c_void_p]


def _check(res, what=""):
    if res < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), what)
    return res


def renameat2(old, new, flags):
    return _check(libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags),
                  old)


def utimensat(path, atime, mtime, follow=True):
    """atime/mtime: (sec, nsec) or UTIME_NOW / UTIME_OMIT."""
    def ts(v):
        if v in (UTIME_NOW, UTIME_OMIT):
            return Timespec(0, v)
        return Timespec(v[0], v[1])
    arr = (Timespec * 2)(ts(atime), ts(mtime))
    flags = 0 if follow else AT_SYMLINK_NOFOLLOW
    return _check(libc.utimensat(AT_FDCWD, os.fsencode(path), arr, flags), path)


def fallocate(fd, mode, offset, length):
    return _check(libc.fallocate(fd, mode, offset, length))


def getxattr_raw(path, name, size, follow=True):
    """getxattr(2) with an explicit buffer size: returns (length, bytes)."""
    buf = ctypes.create_string_buffer(max(size, 1))
    fn = libc.getxattr if follow else libc.lgetxattr
    n = _check(fn(os.fsencode(path), name.encode(), buf if size else None, size), path)
    return n, (buf.raw[:n] if size else b"")


def listxattr_raw(path, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    n = _check(libc.listxattr(os.fsencode(path), buf if size else None, size), path)
    return n, (sorted(buf.raw[:n].split(b"\0")[:-1]) if size else [])


def readlink_raw(path, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    n = _check(libc.readlink(os.fsencode(path), buf, size), path)
    return n, buf.raw[:n]


class Dir:
    """A libc DIR* for telldir/seekdir tests."""

    def __init__(self, path):
        self.d = libc.opendir(os.fsencode(path))
        if not self.d:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e), path)

    def read(self):
        ctypes.set_errno(0)
        p = libc.readdir(self.d)
        if not p:
            e = ctypes.get_errno()
            if e:
                raise OSError(e, os.strerror(e))
            return None
        return p.contents.d_name.decode("utf-8", "surrogateescape")

    def tell(self):
        return libc.telldir(self.d)

    def seek(self, pos):
        libc.seekdir(self.d, pos)

    def rewind(self):
        libc.rewinddir(self.d)

    def close(self):
        if self.d:
            libc.closedir(self.d)
            self.d = None


# ---------------------------------------------------------------- outcomes

def errname(e):
    return errno.errorcode.get(e, str(e))


def outcome(fn, *args, **kw):
    try:
        return ("ok", fn(*args, **kw))
    except OSError as e:
        return ("err", errname(e.errno))


def ftype(mode):
    for name, test in (("reg", stat.S_ISREG), ("dir", stat.S_ISDIR), ("lnk", stat.S_ISLNK),
                       ("fifo", stat.S_ISFIFO), ("sock", stat.S_ISSOCK), ("chr", stat.S_ISCHR),
                       ("blk", stat.S_ISBLK)):
        if test(mode):
            return name
    return "?"


def nst(s, size=True, times=False, blocks=False):
    """Normalized stat: what must be equal natively and through the mount."""
    d = {"type": ftype(s.st_mode), "mode": oct(stat.S_IMODE(s.st_mode)),
         "nlink": s.st_nlink, "uid": s.st_uid, "gid": s.st_gid}
    if size and not stat.S_ISDIR(s.st_mode):
        d["size"] = s.st_size
    if stat.S_ISCHR(s.st_mode) or stat.S_ISBLK(s.st_mode):
        d["rdev"] = (os.major(s.st_rdev), os.minor(s.st_rdev))
    if times:
        d["atime"] = s.st_atime_ns
        d["mtime"] = s.st_mtime_ns
    if blocks:
        d["blocks"] = s.st_blocks
    return d


class Recorder:
    """Runs calls under one root and logs their outcomes."""

    def __init__(self, root, label):
        self.root = root
        self.label = label
        self.log = []
        self.fds = []

    def p(self, *parts):
        return os.path.join(self.root, *parts)

    def __call__(self, step, fn, *args, norm=None, **kw):
        try:
            v = fn(*args, **kw)
        except OSError as e:
            self.log.append((step, ("err", errname(e.errno))))
            return None
        self.log.append((step, ("ok", norm(v) if norm else v)))
        return v

    def note(self, step, value):
        """Logs a value computed by the test itself."""
        self.log.append((step, ("ok", value)))
        return value

    def stat(self, step, path, follow=True, **kw):
        return self(step, os.stat if follow else os.lstat, path, norm=lambda s: nst(s, **kw))

    def open(self, step, path, flags, mode=0o666, dir_fd=None):
        fd = self(step, os.open, path, flags, mode, dir_fd=dir_fd, norm=lambda fd: "fd")
        if fd is not None:
            self.fds.append(fd)
        return fd

    def close(self, fd):
        if fd is None:
            return
        if fd in self.fds:
            self.fds.remove(fd)
        os.close(fd)

    def close_all(self):
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []


def compare(native, mounted):
    """Asserts two recorders' logs are equal; lists every differing step."""
    a, b = native.log, mounted.log
    diffs = []

    def short(v):
        t = repr(v)
        return t if len(t) <= 400 else t[:380] + f"... ({len(t)} chars)"

    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else None
        y = b[i] if i < len(b) else None
        if x != y:
            diffs.append(f"  step {i}: native {short(x)}\n          {mounted.label} {short(y)}")
    assert not diffs, (f"{len(diffs)} step(s) differ between native and {mounted.label}:\n"
                       + "\n".join(diffs[:40]))
    assert a, "no steps recorded"


# ---------------------------------------------------------------- trees

class Pair:
    """A native directory and a veneer mount over a separate copy of it
    (mode "separate": LOWER and MNT differ), over a directory in place
    (mode "inplace"), or in place over its parent with a layer attached at
    "/" (mode "layered": the mount root is a merged directory, the tested
    directory a real one whose own listing holds no virtual names, so only
    its ancestors are merged; the results must not change)."""

    LAYER = {"top.txt": b"virtual\n", "vdir/inner": b"inner\n", "vdir/sub/deep": b"deep\n"}

    def __init__(self, env, mode="separate", args=()):
        self.env = env
        self.mode = mode
        self.args = list(args)
        self.native = env.mkdir("native")
        if mode == "separate":
            self.lower = env.mkdir("lower")
            self.mnt = env.mkdir("mnt")
        elif mode == "layered":
            self.lower = env.mkdir("layered")
            self.mnt = env.mkdir("layered", "work")
            self.args += ["--layer", pack(env, self.LAYER, "parity.sqfs") + ":/"]
        else:
            self.lower = env.mkdir("inplace")
            self.mnt = self.lower
        self.mount = None

    LAYER_NAMES = ("top.txt", "vdir")

    @property
    def label(self):
        return "veneer-" + self.mode

    def start(self, setup=None):
        if setup is not None:
            setup(self.native)
            setup(self.mnt if self.mode == "layered" else self.lower)
        in_place = self.mode in ("inplace", "layered")
        self.mount = self.env.mount(self.lower, None if in_place else self.mnt, args=self.args)
        assert mounted_fstype(self.lower if in_place else self.mnt) == "fuse.veneer"
        if self.mode == "layered":
            # the layer is there, and merged into the mount root only
            assert "top.txt" in os.listdir(self.lower)
            assert not set(os.listdir(self.mnt)) & set(self.LAYER_NAMES)
        return self

    def stop(self):
        if self.mount is not None:
            self.mount.stop()

    def run(self, ops):
        """Runs ops(recorder) on the native root, then on the mount; compares."""
        assert self.mount is not None, "start() first"
        n = Recorder(self.native, "native")
        m = Recorder(self.mnt, self.label)
        try:
            ops(n)
        finally:
            n.close_all()
        try:
            ops(m)
        finally:
            m.close_all()
        compare(n, m)
        return n, m

    def check(self, ops, setup=None):
        if self.mount is None:
            self.start(setup)
        return self.run(ops)


# ---------------------------------------------------------------- users

def as_user(fn, uid, gid=None, umask=0o022, groups=()):
    """Runs fn() in a forked child with the given credentials; returns its
    result, or ("err", ENAME) for an OSError.  Exceptions other than OSError
    are re-raised in the parent."""
    gid = uid if gid is None else gid
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            try:
                os.setgroups(list(groups))
                os.setgid(gid)
                os.setuid(uid)
                os.umask(umask)
                res = ("ok", fn())
            except OSError as e:
                res = ("err", errname(e.errno))
            except BaseException as e:  # noqa: BLE001 - shipped to the parent
                res = ("exc", repr(e))
            data = pickle.dumps(res)
            with os.fdopen(w, "wb") as f:
                f.write(data)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    res = pickle.loads(data)
    if res[0] == "exc":
        raise AssertionError(f"child raised {res[1]}")
    return res


def run_py(code, *args, uid=None, timeout=60):
    """Runs a python snippet in a separate process; returns its stdout lines."""
    preexec = become(uid) if uid is not None else None
    r = subprocess.run([sys.executable, "-c", code] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout, preexec_fn=preexec)
    assert r.returncode == 0, f"helper process failed: {r.stderr}"
    return r.stdout.split()


def copytree(src, dst):
    shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
