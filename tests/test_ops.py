"""errno/result parity of every operation: the same calls on a native
directory and through a veneer mount (over a separate copy, and in place for
most operations, and again in place with a layer attached at "/" in a real
directory that holds no virtual names) must give the same results and the
same errno."""
import errno
import fcntl
import hashlib
import mmap
import os
import socket
import stat
import struct
import subprocess
import sys
import time

import pytest

import parity
from conftest import mounted_fstype, rd, wfile
from parity import Pair, nst

MiB = 1 << 20
GiB = 1 << 30


@pytest.fixture(params=["separate", "inplace", "layered"])
def both(env, request):
    return Pair(env, request.param)


@pytest.fixture
def sep(env):
    return Pair(env, "separate")


def sha(data):
    return hashlib.sha256(data).hexdigest()[:16]


def pread_all(fd, size, off=0):
    out = b""
    while len(out) < size:
        chunk = os.pread(fd, size - len(out), off + len(out))
        if not chunk:
            break
        out += chunk
    return out


def recent(lo):
    """Normalizes a stat's atime/mtime: values within the window become 'now'."""
    def norm(s):
        hi = time.time_ns() + 2 * 10**9
        f = (lambda v: "now" if lo <= v <= hi else v)
        return {"atime": f(s.st_atime_ns), "mtime": f(s.st_mtime_ns)}
    return norm


def basic_tree(root):
    wfile(os.path.join(root, "f"), b"hello world\n", 0o644)
    wfile(os.path.join(root, "g"), b"second file\n", 0o640)
    os.makedirs(os.path.join(root, "d", "sub"))
    wfile(os.path.join(root, "d", "inner"), b"inner\n")
    os.mkdir(os.path.join(root, "empty"))
    os.symlink("f", os.path.join(root, "l"))
    os.symlink("d", os.path.join(root, "ld"))
    os.symlink("missing-target", os.path.join(root, "dl"))
    os.symlink("loop2", os.path.join(root, "loop1"))
    os.symlink("loop1", os.path.join(root, "loop2"))
    os.mkfifo(os.path.join(root, "fifo"), 0o644)


# ------------------------------------------------------------ lookup / stat

def test_lookup_stat(both):
    def ops(r):
        r.stat("stat root", r.root)
        for name in ["f", "g", "d", "d/sub", "d/inner", "empty", "fifo", "l", "ld", "dl",
                     "loop1"]:
            r.stat("lstat " + name, r.p(name), follow=False)
            r.stat("stat " + name, r.p(name))
        r.stat("stat missing", r.p("missing"))
        r.stat("stat f/x", r.p("f", "x"))
        r.stat("stat f/", r.p("f") + "/")
        r.stat("stat l/", r.p("l") + "/")
        r.stat("stat ld/", r.p("ld") + "/")
        r.stat("stat d/../f", r.p("d", "..", "f"))
        r.stat("stat ld/sub", r.p("ld", "sub"))
        r.stat("stat d/sub/../../g", r.p("d/sub/../../g"))
        r("exists dl", os.path.exists, r.p("dl"))
        r("lexists dl", os.path.lexists, r.p("dl"))
        r("listdir root", lambda: sorted(os.listdir(r.root)))
        # a second lookup of everything after the first (served from cache or not)
        for name in ["f", "d/sub", "l"]:
            r.stat("again " + name, r.p(name), follow=False)
    both.check(ops, basic_tree)


def test_stat_via_fd(both):
    def ops(r):
        fd = r.open("open f", r.p("f"), os.O_RDONLY)
        r("fstat", os.fstat, fd, norm=nst)
        pfd = r.open("open O_PATH l", r.p("l"), os.O_PATH | os.O_NOFOLLOW)
        r("fstat O_PATH symlink", os.fstat, pfd, norm=nst)
        dfd = r.open("open d", r.p("d"), os.O_RDONLY | os.O_DIRECTORY)
        r("fstatat inner", os.stat, "inner", dir_fd=dfd, norm=nst)
        r("fstatat ..", os.stat, "..", dir_fd=dfd, norm=nst)
        r("fstatat missing", os.stat, "nope", dir_fd=dfd, norm=nst)
        r("fstatat empty path", os.stat, dfd, norm=nst)
    both.check(ops, basic_tree)


# ------------------------------------------------------------ setattr

def test_chmod(both):
    def ops(r):
        for mode in [0o4755, 0o2755, 0o1755, 0o7777, 0o000, 0o600, 0o644]:
            r(f"chmod f {mode:o}", os.chmod, r.p("f"), mode)
            r.stat(f"stat f {mode:o}", r.p("f"))
        r("chmod d 1777", os.chmod, r.p("d"), 0o1777)
        r.stat("stat d", r.p("d"))
        r("chmod d 2700", os.chmod, r.p("d"), 0o2700)
        r.stat("stat d", r.p("d"))
        r("chmod via symlink", os.chmod, r.p("l"), 0o711)
        r.stat("lstat l", r.p("l"), follow=False)
        r.stat("stat f", r.p("f"))
        r("chmod fifo", os.chmod, r.p("fifo"), 0o600)
        r.stat("stat fifo", r.p("fifo"), follow=False)
        r("chmod missing", os.chmod, r.p("missing"), 0o644)
        r("chmod dangling", os.chmod, r.p("dl"), 0o644)
        fd = r.open("open g ro", r.p("g"), os.O_RDONLY)
        r("fchmod g", os.fchmod, fd, 0o4604)
        r("fstat g", os.fstat, fd, norm=nst)
        pfd = r.open("open g O_PATH", r.p("g"), os.O_PATH)
        r("fchmod O_PATH", os.fchmod, pfd, 0o644)
        r.stat("stat g", r.p("g"))
    both.check(ops, basic_tree)


def test_chown(both):
    def ops(r):
        r("chown f nobody", os.chown, r.p("f"), 65534, 65534)
        r.stat("stat f", r.p("f"))
        r("chown f gid only", os.chown, r.p("f"), -1, 100)
        r.stat("stat f", r.p("f"))
        r("chown f uid only", os.chown, r.p("f"), 0, -1)
        r.stat("stat f", r.p("f"))
        r("lchown l", os.chown, r.p("l"), 1234, 4321, follow_symlinks=False)
        r.stat("lstat l", r.p("l"), follow=False)
        r.stat("stat f via l", r.p("l"))
        r("chown via symlink", os.chown, r.p("l"), 4321, 1234)
        r.stat("stat f", r.p("f"))
        r.stat("lstat l", r.p("l"), follow=False)
        # chown clears setuid, and setgid when group-executable, on files
        for mode in [0o6755, 0o2745, 0o4711, 0o6711]:
            r(f"chmod g {mode:o}", os.chmod, r.p("g"), mode)
            r(f"chown g after {mode:o}", os.chown, r.p("g"), 0, 0)
            r.stat(f"stat g after {mode:o}", r.p("g"))
        r("chmod d 6755", os.chmod, r.p("d"), 0o6755)
        r("chown d", os.chown, r.p("d"), 65534, 65534)
        r.stat("stat d", r.p("d"))
        fd = r.open("open g", r.p("g"), os.O_RDONLY)
        r("fchown g", os.fchown, fd, 77, 88)
        r("fstat g", os.fstat, fd, norm=nst)
        r("chown missing", os.chown, r.p("missing"), 0, 0)
        r("chown dangling", os.chown, r.p("dl"), 0, 0)
        r("lchown dangling", os.chown, r.p("dl"), 5, 5, follow_symlinks=False)
        r.stat("lstat dl", r.p("dl"), follow=False)
    both.check(ops, basic_tree)


def test_truncate(both):
    def ops(r):
        r("utime f", os.utime, r.p("f"), ns=(10**18, 10**18))
        r("truncate f 3", os.truncate, r.p("f"), 3)
        r.stat("stat f", r.p("f"))
        r("mtime changed", lambda: os.stat(r.p("f")).st_mtime_ns != 10**18)
        r("read f", rd, r.p("f"))
        r("truncate f 10000", os.truncate, r.p("f"), 10000)
        r("read f", lambda: sha(rd(r.p("f"))))
        r("truncate f 0", os.truncate, r.p("f"), 0)
        r.stat("stat f", r.p("f"))
        r("truncate d", os.truncate, r.p("d"), 0)
        r("truncate missing", os.truncate, r.p("missing"), 0)
        r("truncate negative", os.truncate, r.p("g"), -1)
        r("truncate via symlink", os.truncate, r.p("l"), 5)
        r.stat("stat f", r.p("f"))
        r("truncate fifo", os.truncate, r.p("fifo"), 0)
        fd = r.open("open g ro", r.p("g"), os.O_RDONLY)
        r("ftruncate ro fd", os.ftruncate, fd, 1)
        fd2 = r.open("open g rw", r.p("g"), os.O_RDWR)
        r("ftruncate rw fd", os.ftruncate, fd2, 4)
        r("fstat", os.fstat, fd2, norm=nst)
        r("pread", os.pread, fd2, 100, 0)
        r("ftruncate grow", os.ftruncate, fd2, 70000)
        r("pread end", os.pread, fd2, 100, 69990)
        r("fstat", os.fstat, fd2, norm=nst)
        r.stat("stat g", r.p("g"))
    both.check(ops, basic_tree)


def test_utimens(both):
    lo = time.time_ns() - 2 * 10**9
    T = parity

    def times(r, step, path, follow=True):
        r(step, os.stat if follow else os.lstat, path, norm=recent(lo))

    def ops(r):
        r("utime ns", os.utime, r.p("f"), ns=(1_000_000_123, 2_000_000_456))
        times(r, "after ns", r.p("f"))
        r("omit atime", T.utimensat, r.p("f"), T.UTIME_OMIT, (3, 789))
        times(r, "after omit atime", r.p("f"))
        r("now atime", T.utimensat, r.p("f"), T.UTIME_NOW, T.UTIME_OMIT)
        times(r, "after now atime", r.p("f"))
        r("set atime, now mtime", T.utimensat, r.p("f"), (5, 0), T.UTIME_NOW)
        times(r, "after now mtime", r.p("f"))
        r("omit both", T.utimensat, r.p("f"), T.UTIME_OMIT, T.UTIME_OMIT)
        times(r, "after omit both", r.p("f"))
        r("utime ns again", os.utime, r.p("f"), ns=(7, 8))
        r("utime None", os.utime, r.p("f"))
        times(r, "after utime None", r.p("f"))
        r("utime pre-1970", os.utime, r.p("g"), ns=(-86400 * 365 * 10**9 + 5, 17))
        times(r, "after pre-1970", r.p("g"))
        r("utime far future", os.utime, r.p("g"), ns=((1 << 33) * 10**9 + 999_999_999, 0))
        times(r, "after far future", r.p("g"))
        r("utime bad nsec", T.utimensat, r.p("g"), (1, 1_000_000_000), T.UTIME_OMIT)
        r("lutime l", os.utime, r.p("l"), ns=(11_000_000_001, 12_000_000_002),
          follow_symlinks=False)
        times(r, "lstat l", r.p("l"), follow=False)
        times(r, "stat f via l", r.p("l"))
        r("utime via symlink", os.utime, r.p("l"), ns=(13, 14))
        times(r, "stat f", r.p("f"))
        r("utime dir", os.utime, r.p("d"), ns=(21, 22))
        times(r, "stat d", r.p("d"))
        r("utime missing", os.utime, r.p("missing"), ns=(1, 1))
        r("utime dangling", os.utime, r.p("dl"), ns=(1, 1))
        fd = r.open("open g", r.p("g"), os.O_RDONLY)
        r("futimens", os.utime, fd, ns=(31, 32))
        times(r, "stat g", r.p("g"))
        # writing updates mtime
        r("utime f old", os.utime, r.p("f"), ns=(41, 42))
        fd = r.open("open f", r.p("f"), os.O_WRONLY)
        r("write", os.write, fd, b"x")
        r.close(fd)
        r("mtime after write", lambda: os.stat(r.p("f")).st_mtime_ns > 42)
    both.check(ops, basic_tree)


# ------------------------------------------------------------ links & nodes

def test_readlink(both):
    long_target = ("abcdefgh/" * 455)[:4095]

    def setup(root):
        basic_tree(root)
        os.symlink(long_target, os.path.join(root, "long"))

    def ops(r):
        r("readlink l", os.readlink, r.p("l"))
        r("readlink dl", os.readlink, r.p("dl"))
        r("readlink long", os.readlink, r.p("long"))
        r("readlink f", os.readlink, r.p("f"))
        r("readlink d", os.readlink, r.p("d"))
        r("readlink missing", os.readlink, r.p("missing"))
        r("readlink l/", os.readlink, r.p("l") + "/")
        r("readlink short buffer", parity.readlink_raw, r.p("long"), 10)
        r("readlink exact buffer", parity.readlink_raw, r.p("l"), 1)
        r.stat("lstat long", r.p("long"), follow=False)
        dfd = r.open("open d", r.p("ld"), os.O_RDONLY | os.O_DIRECTORY)
        r("readlinkat ../l", os.readlink, "../l", dir_fd=dfd)
    both.check(ops, setup)


def test_mknod(both):
    def ops(r):
        r("mknod reg", os.mknod, r.p("reg"), stat.S_IFREG | 0o640)
        r.stat("stat reg", r.p("reg"))
        r("mknod fifo", os.mknod, r.p("fifo2"), stat.S_IFIFO | 0o620)
        r.stat("stat fifo2", r.p("fifo2"), follow=False)
        r("mkfifo", os.mkfifo, r.p("fifo3"), 0o606)
        r.stat("stat fifo3", r.p("fifo3"), follow=False)
        r("mknod sock", os.mknod, r.p("sock"), stat.S_IFSOCK | 0o755)
        r.stat("stat sock", r.p("sock"), follow=False)
        r("mknod chr", os.mknod, r.p("null"), stat.S_IFCHR | 0o600, os.makedev(1, 3))
        r.stat("stat null", r.p("null"), follow=False)
        r("mknod default type", os.mknod, r.p("plain"), 0o600)
        r.stat("stat plain", r.p("plain"), follow=False)
        r("mknod existing", os.mknod, r.p("f"), stat.S_IFREG | 0o600)
        r("mknod over symlink", os.mknod, r.p("dl"), stat.S_IFIFO | 0o600)
        r("mknod missing dir", os.mknod, r.p("nodir", "x"), stat.S_IFREG | 0o600)
        r("mknod in file", os.mknod, r.p("f", "x"), stat.S_IFREG | 0o600)
        r("mknod S_IFDIR", os.mknod, r.p("dirnode"), stat.S_IFDIR | 0o700)
        r("listdir", lambda: sorted(os.listdir(r.root)))
        # a FIFO made through the mount carries data
        fd = r.open("open fifo2 rdwr", r.p("fifo2"), os.O_RDWR)
        r("write fifo", os.write, fd, b"through the pipe")
        r("read fifo", os.read, fd, 100)
        # a socket bound through the mount accepts connections through it
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            r("bind", srv.bind, r.p("sock2"))
            r("listen", srv.listen, 1)
            r.stat("stat sock2", r.p("sock2"), follow=False, size=False)
            r("connect", cli.connect, r.p("sock2"))
            conn = srv.accept()[0]
            cli.sendall(b"ping")
            r("recv", conn.recv, 10)
            conn.close()
            r("bind existing", socket.socket(socket.AF_UNIX).bind, r.p("sock2"))
        finally:
            srv.close()
            cli.close()
    both.check(ops, basic_tree)


def test_mkdir(both):
    def ops(r):
        r.stat("stat root", r.root)
        r("mkdir d2", os.mkdir, r.p("d2"), 0o755)
        r.stat("stat d2", r.p("d2"))
        r.stat("stat root nlink", r.root)
        r("mkdir 1777", os.mkdir, r.p("sticky"), 0o1777)
        r.stat("stat sticky", r.p("sticky"))
        r("mkdir 2777", os.mkdir, r.p("sgid"), 0o2777)
        r.stat("stat sgid", r.p("sgid"))
        r("mkdir 7777", os.mkdir, r.p("all"), 0o7777)
        r.stat("stat all", r.p("all"))
        r("mkdir 0", os.mkdir, r.p("none"), 0)
        r.stat("stat none", r.p("none"))
        r("mkdir in 0-dir as root", os.mkdir, r.p("none", "x"))
        r("mkdir existing", os.mkdir, r.p("d"))
        r("mkdir over file", os.mkdir, r.p("f"))
        r("mkdir over dangling symlink", os.mkdir, r.p("dl"))
        r("mkdir missing parent", os.mkdir, r.p("no", "such"))
        r("mkdir under file", os.mkdir, r.p("f", "x"))
        r("mkdir trailing slash", os.mkdir, r.p("d3") + "/")
        r.stat("stat d3", r.p("d3"))
        r("mkdir via symlinked dir", os.mkdir, r.p("ld", "viald"))
        r.stat("stat d/viald", r.p("d", "viald"))
        r.stat("stat d nlink", r.p("d"))
        dfd = r.open("open d", r.p("d"), os.O_RDONLY | os.O_DIRECTORY)
        r("mkdirat", os.mkdir, "at", 0o700, dir_fd=dfd)
        r.stat("stat d/at", r.p("d", "at"))
        r("listdir d", lambda: sorted(os.listdir(r.p("d"))))
    both.check(ops, basic_tree)


def test_unlink(both):
    def ops(r):
        r("unlink f", os.unlink, r.p("f"))
        r.stat("stat f", r.p("f"))
        r.stat("stat l (now dangling)", r.p("l"))
        r("unlink l", os.unlink, r.p("l"))
        r.stat("lstat l", r.p("l"), follow=False)
        r("unlink d", os.unlink, r.p("d"))
        r("unlink missing", os.unlink, r.p("missing"))
        r("unlink g/", os.unlink, r.p("g") + "/")
        r("unlink ld/", os.unlink, r.p("ld") + "/")
        r("unlink ld", os.unlink, r.p("ld"))
        r.stat("stat d still there", r.p("d"))
        r("unlink fifo", os.unlink, r.p("fifo"))
        # an open file stays readable and writable after its name is gone
        fd = r.open("open g", r.p("g"), os.O_RDWR)
        r("unlink open g", os.unlink, r.p("g"))
        r("write unlinked", os.pwrite, fd, b"XYZ", 2)
        r("read unlinked", os.pread, fd, 100, 0)
        r("fstat unlinked", os.fstat, fd, norm=nst)
        r("listdir", lambda: sorted(os.listdir(r.root)))
        r("open unlinked name", os.open, r.p("g"), os.O_RDONLY)
        # unlinking one hard link leaves the other
        r("link", os.link, r.p("d", "inner"), r.p("d", "inner2"))
        r("unlink first", os.unlink, r.p("d", "inner"))
        r.stat("stat other", r.p("d", "inner2"))
        r("read other", rd, r.p("d", "inner2"))
        dfd = r.open("open d", r.p("d"), os.O_RDONLY | os.O_DIRECTORY)
        r("unlinkat", os.unlink, "inner2", dir_fd=dfd)
        r("unlinkat dir", os.unlink, "sub", dir_fd=dfd)
        r("listdir d", lambda: sorted(os.listdir(r.p("d"))))
    both.check(ops, basic_tree)


def test_rmdir(both):
    def ops(r):
        r.stat("stat root", r.root)
        r("rmdir empty", os.rmdir, r.p("empty"))
        r.stat("stat empty", r.p("empty"))
        r.stat("root nlink", r.root)
        r("rmdir nonempty", os.rmdir, r.p("d"))
        r("rmdir file", os.rmdir, r.p("f"))
        r("rmdir missing", os.rmdir, r.p("missing"))
        r("rmdir symlink to dir", os.rmdir, r.p("ld"))
        r("rmdir d/.", os.rmdir, r.p("d", "."))
        r("rmdir d/sub/..", os.rmdir, r.p("d", "sub", ".."))
        r("rmdir sub", os.rmdir, r.p("d", "sub"))
        r.stat("d nlink", r.p("d"))
        r("rmdir still nonempty", os.rmdir, r.p("d"))
        r("unlink inner", os.unlink, r.p("d", "inner"))
        r("rmdir now empty", os.rmdir, r.p("d") + "/")
        r.stat("stat d", r.p("d"))
        r("listdir", lambda: sorted(os.listdir(r.root)))
        r("mkdir again", os.mkdir, r.p("d"))
        r.stat("stat new d", r.p("d"))
        r("listdir new d", os.listdir, r.p("d"))
    both.check(ops, basic_tree)


def test_symlink(both):
    def ops(r):
        r("symlink", os.symlink, "target", r.p("s1"))
        r.stat("lstat s1", r.p("s1"), follow=False)
        r("readlink s1", os.readlink, r.p("s1"))
        r("stat s1", os.stat, r.p("s1"))
        r("symlink existing", os.symlink, "x", r.p("f"))
        r("symlink over dir", os.symlink, "x", r.p("d"))
        r("symlink over symlink", os.symlink, "x", r.p("l"))
        r("symlink missing dir", os.symlink, "x", r.p("nodir", "s"))
        r("symlink empty target", os.symlink, "", r.p("s2"))
        r("symlink 4095", os.symlink, "t" * 4095, r.p("s3"))
        r.stat("lstat s3", r.p("s3"), follow=False)
        r("symlink 4096", os.symlink, "t" * 4096, r.p("s4"))
        r("symlink ../f", os.symlink, "../f", r.p("d", "up"))
        r("read through ../f", rd, r.p("d", "up"))
        r("symlink absolute", os.symlink, r.p("g"), r.p("abs"))
        r("read abs", rd, r.p("abs"))
        r("write through symlink", lambda: wfile(r.p("s1"), b"created via link"))
        r("read target", rd, r.p("target"))
        r("listdir", lambda: sorted(os.listdir(r.root)))
    both.check(ops, basic_tree)


def test_rename(both):
    T = parity

    def setup(root):
        basic_tree(root)
        wfile(os.path.join(root, "h"), b"h content")
        os.makedirs(os.path.join(root, "full", "child"))
        wfile(os.path.join(root, "full", "child", "leaf"), b"leaf")
        os.mkdir(os.path.join(root, "empty2"))
        os.link(os.path.join(root, "h"), os.path.join(root, "h2"))

    def ops(r):
        r("rename f new", os.rename, r.p("f"), r.p("f1"))
        r.stat("stat f", r.p("f"))
        r("read f1", rd, r.p("f1"))
        r("rename over file", os.rename, r.p("f1"), r.p("g"))
        r("read g", rd, r.p("g"))
        r.stat("stat g", r.p("g"))
        r("file over dir", os.rename, r.p("g"), r.p("empty"))
        r("dir over file", os.rename, r.p("empty"), r.p("g"))
        r("dir over nonempty dir", os.rename, r.p("empty"), r.p("full"))
        r("dir into own subdir", os.rename, r.p("full"), r.p("full", "child", "x"))
        r("missing source", os.rename, r.p("missing"), r.p("x"))
        r("into missing dir", os.rename, r.p("g"), r.p("nodir", "g"))
        r("same name", os.rename, r.p("g"), r.p("g"))
        r("hard link onto its twin", os.rename, r.p("h"), r.p("h2"))
        r("listdir after twin", lambda: sorted(os.listdir(r.root)))
        r.stat("stat h", r.p("h"))
        r("dir over empty dir", os.rename, r.p("empty"), r.p("empty2"))
        r.stat("stat empty", r.p("empty"))
        r.stat("stat empty2", r.p("empty2"))
        r("move dir with children", os.rename, r.p("full"), r.p("d", "moved"))
        r("read moved leaf", rd, r.p("d", "moved", "child", "leaf"))
        r.stat("d nlink", r.p("d"))
        r.stat("root nlink", r.root)
        r("rename symlink", os.rename, r.p("l"), r.p("d", "l"))
        r.stat("stat moved symlink (now dangling)", r.p("d", "l"))
        r("readlink", os.readlink, r.p("d", "l"))
        r("rename d/. ", os.rename, r.p("d", "."), r.p("x"))
        r("rename onto .", os.rename, r.p("g"), r.p("d", "."))
        # RENAME_NOREPLACE
        r("noreplace existing", T.renameat2, r.p("g"), r.p("h"), T.RENAME_NOREPLACE)
        r("read h", rd, r.p("h"))
        r("noreplace new", T.renameat2, r.p("g"), r.p("g2"), T.RENAME_NOREPLACE)
        r.stat("stat g2", r.p("g2"))
        r.stat("stat g", r.p("g"))
        r("noreplace onto dangling symlink", T.renameat2, r.p("g2"), r.p("dl"),
          T.RENAME_NOREPLACE)
        # RENAME_EXCHANGE
        r("exchange file and dir", T.renameat2, r.p("g2"), r.p("d"), T.RENAME_EXCHANGE)
        r.stat("stat g2 (dir now)", r.p("g2"))
        r.stat("stat d (file now)", r.p("d"))
        r("read d", rd, r.p("d"))
        r("read g2/inner", rd, r.p("g2", "inner"))
        r("exchange two files", T.renameat2, r.p("h"), r.p("d"), T.RENAME_EXCHANGE)
        r("read h", rd, r.p("h"))
        r("read d", rd, r.p("d"))
        r("exchange with missing", T.renameat2, r.p("h"), r.p("nothere"), T.RENAME_EXCHANGE)
        r("exchange|noreplace", T.renameat2, r.p("h"), r.p("d"),
          T.RENAME_EXCHANGE | T.RENAME_NOREPLACE)
        r("bad flags", T.renameat2, r.p("h"), r.p("zz"), 1 << 20)
        # an open file follows its rename
        fd = r.open("open h", r.p("h"), os.O_RDWR)
        r("rename open", os.rename, r.p("h"), r.p("g2", "h-moved"))
        r("write moved", os.pwrite, fd, b"!!", 0)
        r("read moved", rd, r.p("g2", "h-moved"))
        r("listdir root", lambda: sorted(os.listdir(r.root)))
        r("listdir g2", lambda: sorted(os.listdir(r.p("g2"))))
    both.check(ops, setup)


def test_rename_replaced_target_open(both):
    """Renaming over a file that is open keeps the old file readable through
    the open descriptor, and the name shows the new content."""
    def ops(r):
        fd = r.open("open g", r.p("g"), os.O_RDONLY)
        r("rename f over g", os.rename, r.p("f"), r.p("g"))
        r("read old through fd", os.pread, fd, 100, 0)
        r("fstat old", os.fstat, fd, norm=nst)
        r("read new by name", rd, r.p("g"))
        r.stat("stat g", r.p("g"))
    both.check(ops, basic_tree)


def test_link(both):
    def ops(r):
        r("link f f2", os.link, r.p("f"), r.p("f2"))
        r.stat("stat f", r.p("f"))
        r.stat("stat f2", r.p("f2"))
        r("same ino", lambda: os.stat(r.p("f")).st_ino == os.stat(r.p("f2")).st_ino)
        r("write via f2", lambda: wfile(r.p("f2"), b"changed through f2"))
        r("read via f", rd, r.p("f"))
        r("link into subdir", os.link, r.p("f"), r.p("d", "f3"))
        r.stat("nlink 3", r.p("f"))
        r("link dir", os.link, r.p("d"), r.p("d2"))
        r("link existing", os.link, r.p("f"), r.p("g"))
        r("link missing", os.link, r.p("missing"), r.p("m2"))
        r("link into missing dir", os.link, r.p("f"), r.p("nodir", "x"))
        r("link symlink itself", os.link, r.p("l"), r.p("l2"), follow_symlinks=False)
        r.stat("lstat l2", r.p("l2"), follow=False)
        r("l2 same ino as l",
          lambda: os.lstat(r.p("l")).st_ino == os.lstat(r.p("l2")).st_ino)
        r("link following symlink", os.link, r.p("l"), r.p("l3"), follow_symlinks=True)
        r.stat("lstat l3", r.p("l3"), follow=False)
        r("link dangling following", os.link, r.p("dl"), r.p("dl2"), follow_symlinks=True)
        r("link fifo", os.link, r.p("fifo"), r.p("fifo2"))
        r.stat("stat fifo2", r.p("fifo2"), follow=False)
        r("unlink f", os.unlink, r.p("f"))
        r.stat("stat f2 after unlink", r.p("f2"))
        r.stat("stat d/f3", r.p("d", "f3"))
        r("unlink f2", os.unlink, r.p("f2"))
        r.stat("stat d/f3 nlink 2 (l3)", r.p("d", "f3"))
        fd = r.open("open d/f3", r.p("d", "f3"), os.O_RDONLY)
        r("fstat", os.fstat, fd, norm=nst)
    both.check(ops, basic_tree)


# ------------------------------------------------------------ open & I/O

def test_open_flags(both):
    def ops(r):
        fd = r.open("creat excl new", r.p("new"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        r.close(fd)
        r.stat("stat new", r.p("new"))
        r.open("creat excl existing", r.p("f"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        r.open("creat excl dangling", r.p("dl"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        fd = r.open("creat via dangling", r.p("dl"), os.O_CREAT | os.O_WRONLY, 0o640)
        r.close(fd)
        r.stat("stat created target", r.p("missing-target"))
        fd = r.open("creat existing", r.p("g"), os.O_CREAT | os.O_RDONLY, 0o600)
        r("read existing", os.read, fd, 100)
        r.stat("mode unchanged", r.p("g"))
        fd = r.open("trunc", r.p("g"), os.O_WRONLY | os.O_TRUNC)
        r.stat("after trunc", r.p("g"))
        r("fstat after trunc", os.fstat, fd, norm=nst)
        r("write", os.write, fd, b"abc")
        r.close(fd)
        fd = r.open("rdonly trunc", r.p("g"), os.O_RDONLY | os.O_TRUNC)
        r.stat("after rdonly trunc", r.p("g"))
        r.close(fd)
        fd = r.open("append", r.p("f"), os.O_WRONLY | os.O_APPEND)
        r("append 1", os.write, fd, b"A")
        r("lseek 0", os.lseek, fd, 0, os.SEEK_SET)
        r("append 2", os.write, fd, b"B")
        r("pwrite on append", os.pwrite, fd, b"C", 0)
        r("offset", os.lseek, fd, 0, os.SEEK_CUR)
        r.close(fd)
        r("read f", rd, r.p("f"))
        fd = r.open("append rdwr", r.p("f"), os.O_RDWR | os.O_APPEND)
        r("read from start", os.read, fd, 5)
        r("write appends", os.write, fd, b"D")
        r("pread tail", os.pread, fd, 5, os.fstat(fd).st_size - 4 if fd else 0)
        r.close(fd)
        r.open("directory on file", r.p("f"), os.O_RDONLY | os.O_DIRECTORY)
        r.open("directory on symlink to dir", r.p("ld"), os.O_RDONLY | os.O_DIRECTORY)
        r.open("directory on dir", r.p("d"), os.O_RDONLY | os.O_DIRECTORY)
        r.open("nofollow symlink", r.p("l"), os.O_RDONLY | os.O_NOFOLLOW)
        r.open("nofollow file", r.p("f"), os.O_RDONLY | os.O_NOFOLLOW)
        fd = r.open("nofollow|path symlink", r.p("l"), os.O_PATH | os.O_NOFOLLOW)
        r("fstat O_PATH symlink", os.fstat, fd, norm=nst)
        r.open("wronly dir", r.p("d"), os.O_WRONLY)
        r.open("rdwr dir", r.p("d"), os.O_RDWR)
        r.open("creat on dir", r.p("d"), os.O_CREAT | os.O_RDONLY)
        r.open("creat|directory", r.p("cd"), os.O_CREAT | os.O_DIRECTORY | os.O_RDONLY)
        r.open("creat in missing dir", r.p("nodir", "x"), os.O_CREAT | os.O_WRONLY)
        r.open("missing", r.p("missing"), os.O_RDONLY)
        r.open("loop", r.p("loop1"), os.O_RDONLY)
        r.open("excl without creat", r.p("f"), os.O_RDONLY | os.O_EXCL)
        fd = r.open("wronly", r.p("f"), os.O_WRONLY)
        r("read wronly", os.read, fd, 1)
        fd = r.open("rdonly", r.p("f"), os.O_RDONLY)
        r("write rdonly", os.write, fd, b"x")
        fd = r.open("path", r.p("f"), os.O_PATH)
        r("read O_PATH", os.read, fd, 1)
        r("fstat O_PATH", os.fstat, fd, norm=nst)
        fd = r.open("noatime", r.p("f"), os.O_RDONLY | os.O_NOATIME)
        r("read noatime", os.read, fd, 3)
        fd = r.open("sync", r.p("s"), os.O_CREAT | os.O_WRONLY | os.O_SYNC, 0o644)
        r("write sync", os.write, fd, b"sync")
        fd = r.open("dsync", r.p("s"), os.O_WRONLY | os.O_DSYNC)
        r("write dsync", os.write, fd, b"ds")
        r("read s", rd, r.p("s"))
        fd = r.open("open fifo nonblock", r.p("fifo"), os.O_RDONLY | os.O_NONBLOCK)
        r("read empty fifo", os.read, fd, 10)
        r.open("fifo wronly nonblock without reader",
               r.p("fifo"), os.O_WRONLY | os.O_NONBLOCK)
        r("listdir", lambda: sorted(os.listdir(r.root)))
    both.check(ops, basic_tree)


def test_creat_existing_keeps_data_and_mode(both):
    def ops(r):
        fd = r.open("creat existing rdwr", r.p("g"), os.O_CREAT | os.O_RDWR, 0o777)
        r("read", os.read, fd, 100)
        r.stat("stat", r.p("g"))
        fd = r.open("creat trunc existing", r.p("g"), os.O_CREAT | os.O_TRUNC | os.O_WRONLY,
                    0o777)
        r.stat("stat after", r.p("g"))
    both.check(ops, basic_tree)


def test_o_direct(both):
    data = bytes(range(256)) * 32  # 8 KiB

    def ops(r):
        fd = r.open("open O_DIRECT", r.p("direct"),
                    os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o644)
        if fd is None:
            return
        wbuf = mmap.mmap(-1, len(data))
        wbuf[:] = data
        rbuf = mmap.mmap(-1, len(data))
        r("aligned write", os.pwritev, fd, [wbuf], 0)
        r("aligned write 2", os.pwritev, fd, [wbuf], 8192)
        r("aligned read", os.preadv, fd, [rbuf], 4096)
        r("buffer", lambda: bytes(rbuf) == data[4096:] + data[:4096])
        r("fstat", os.fstat, fd, norm=nst)
        r("content via buffered read", lambda: sha(rd(r.p("direct"))))
        r("fcntl flags has O_DIRECT",
          lambda: bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT))
        r.close(fd)
        fd = r.open("buffered", r.p("direct"), os.O_RDWR)
        r("clear O_DIRECT via fcntl", fcntl.fcntl, fd, fcntl.F_SETFL, 0)
        r("set O_DIRECT via fcntl", fcntl.fcntl, fd, fcntl.F_SETFL, os.O_DIRECT)
        r("read via fcntl O_DIRECT", os.preadv, fd, [rbuf], 0)
        r("buffer", lambda: bytes(rbuf) == data)
    both.check(ops, basic_tree)


def test_read_write(both):
    big = os.urandom(3 * MiB + 123)

    def ops(r):
        fd = r.open("create", r.p("rw"), os.O_CREAT | os.O_RDWR, 0o644)
        r("write", os.write, fd, b"0123456789")
        r("offset", os.lseek, fd, 0, os.SEEK_CUR)
        r("read at eof", os.read, fd, 10)
        r("pread 3", os.pread, fd, 4, 3)
        r("pread past eof", os.pread, fd, 4, 100)
        r("pwrite hole", os.pwrite, fd, b"end", 20)
        r("pread hole", os.pread, fd, 100, 0)
        r("fstat", os.fstat, fd, norm=nst)
        r("lseek end", os.lseek, fd, 0, os.SEEK_END)
        r("lseek end-5", os.lseek, fd, -5, os.SEEK_END)
        r("read 5", os.read, fd, 5)
        r("lseek negative", os.lseek, fd, -100, os.SEEK_SET)
        r("write empty", os.write, fd, b"")
        r("writev", os.writev, fd, [b"ab", b"", b"cdef"])
        r("readv", os.preadv, fd, [bytearray(3), bytearray(30)], 0)
        r("pwritev", os.pwritev, fd, [b"XY", b"Z"], 1)
        r("read all", lambda: rd(r.p("rw")))
        r("write big", lambda: os.pwrite(fd, big, 1000))
        r("read big", lambda: sha(pread_all(fd, len(big) + 2000)))
        r("read big by name", lambda: sha(rd(r.p("rw"))))
        r("fstat big", os.fstat, fd, norm=nst)
        # read through another descriptor while writing through the first
        fd2 = r.open("second fd", r.p("rw"), os.O_RDONLY)
        r("pwrite via first", os.pwrite, fd, b"visible", 500000)
        r("pread via second", os.pread, fd2, 7, 500000)
        r("read on wronly", os.read, r.open("wronly", r.p("f"), os.O_WRONLY) or -1, 1)
        r("write on rdonly", os.write, r.open("rdonly", r.p("f"), os.O_RDONLY) or -1, b"x")
        dfd = r.open("dir", r.p("d"), os.O_RDONLY | os.O_DIRECTORY)
        r("read dir fd", os.read, dfd, 10)
        r("pread negative", os.pread, fd, 1, -1)
        out = r.open("sendfile out", r.p("sf"), os.O_CREAT | os.O_WRONLY, 0o644)
        r("sendfile", os.sendfile, out, fd, 0, 200000)
        r("sendfile result", lambda: sha(rd(r.p("sf"))))
    both.check(ops, basic_tree)


def test_fsync(both):
    def ops(r):
        fd = r.open("open rw", r.p("f"), os.O_RDWR)
        r("write", os.write, fd, b"fsynced")
        r("fsync", os.fsync, fd)
        r("fdatasync", os.fdatasync, fd)
        fd = r.open("open ro", r.p("g"), os.O_RDONLY)
        r("fsync ro", os.fsync, fd)
        r("fdatasync ro", os.fdatasync, fd)
        dfd = r.open("open dir", r.p("d"), os.O_RDONLY | os.O_DIRECTORY)
        r("fsync dir", os.fsync, dfd)
        r("fdatasync dir", os.fdatasync, dfd)
        pfd = r.open("open O_PATH", r.p("f"), os.O_PATH)
        r("fsync O_PATH", os.fsync, pfd)
        r("read", rd, r.p("f"))
    both.check(ops, basic_tree)


# ------------------------------------------------------------ directories

def dir_tree(root):
    basic_tree(root)
    big = os.path.join(root, "big")
    os.mkdir(big)
    for i in range(400):
        name = f"entry-{i:04d}-" + "x" * (i % 97)
        if i % 10 == 0:
            os.mkdir(os.path.join(big, name))
        elif i % 10 == 1:
            os.symlink("target", os.path.join(big, name))
        else:
            wfile(os.path.join(big, name), b"")


def test_readdir(both):
    def ops(r):
        for d in ["", "d", "empty", "big", "ld"]:
            r(f"listdir {d}", lambda: sorted(os.listdir(r.p(d))))

            def scan(d=d):
                out = []
                with os.scandir(r.p(d)) as it:
                    for e in it:
                        out.append((e.name, e.is_dir(follow_symlinks=False),
                                    e.is_file(follow_symlinks=False), e.is_symlink(),
                                    e.inode() == os.lstat(e.path).st_ino))
                return sorted(out)
            r(f"scandir {d}", scan)
        r("listdir file", os.listdir, r.p("f"))
        r("listdir missing", os.listdir, r.p("missing"))
        r("listdir dangling", os.listdir, r.p("dl"))
        dfd = r.open("open big", r.p("big"), os.O_RDONLY | os.O_DIRECTORY)
        r("listdir by fd", lambda: sorted(os.listdir(dfd)))
        r("listdir by fd twice", lambda: sorted(os.listdir(dfd)))
        r("dot entries", lambda: sorted(n for n in _libc_names(r.p("empty"))))
        r("entry count with dots", lambda: len(_libc_names(r.p("big"))))
        # a listing reflects changes made through the mount
        r("create", lambda: wfile(r.p("big", "new-file")))
        r("unlink", os.unlink, r.p("big", "entry-0002-xx"))
        r("listdir after change", lambda: sorted(os.listdir(r.p("big"))))
    both.check(ops, dir_tree)


def _libc_names(path):
    d = parity.Dir(path)
    try:
        out = []
        while True:
            n = d.read()
            if n is None:
                return out
            out.append(n)
    finally:
        d.close()


def test_readdir_unlink_while_iterating(both):
    """rm -rf's pattern: every entry is seen exactly once while the entries
    already read are deleted, and the directory ends up empty."""
    def setup(root):
        os.mkdir(os.path.join(root, "many"))
        for i in range(1500):
            wfile(os.path.join(root, "many", f"file-{i:05d}-" + "y" * 40))

    def ops(r):
        def drain():
            seen = []
            with os.scandir(r.p("many")) as it:
                for e in it:
                    seen.append(e.name)
                    os.unlink(e.path)
            return len(seen), len(set(seen))
        r("drain", drain)
        r("left", os.listdir, r.p("many"))
        r("rmdir", os.rmdir, r.p("many"))
    both.check(ops, setup)


def test_telldir_seekdir(both):
    def ops(r):
        d = parity.Dir(r.p("big"))
        try:
            names, pos = [], []
            while True:
                p = d.tell()
                n = d.read()
                if n is None:
                    break
                pos.append(p)
                names.append(n)
            r("count", lambda: len(names))
            r("unique", lambda: len(set(names)) == len(names))
            for k in [0, 1, 2, 57, 200, len(names) // 2, len(names) - 1]:
                d.seek(pos[k])
                rest = []
                while True:
                    n = d.read()
                    if n is None:
                        break
                    rest.append(n)
                r(f"seekdir {k}", lambda rest=rest, k=k: rest == names[k:])
            d.seek(pos[100])
            r("read after seek", lambda: d.read() == names[100])
            r("tell after seek+read", lambda: d.tell() == pos[101])
            d.rewind()
            again = []
            while True:
                n = d.read()
                if n is None:
                    break
                again.append(n)
            r("rewind", lambda: again == names)
        finally:
            d.close()
    both.check(ops, dir_tree)


def test_statvfs(both):
    def ops(r):
        def sv(path):
            s = os.statvfs(path)
            return {"bsize": s.f_bsize, "frsize": s.f_frsize,
                    "bytes": s.f_blocks * s.f_frsize, "files": s.f_files,
                    "namemax": s.f_namemax, "some free": s.f_bavail > 0 and s.f_ffree > 0}
        r("statvfs root", sv, r.root)
        r("statvfs file", sv, r.p("f"))
        r("statvfs dir", sv, r.p("d", "sub"))
        r("statvfs missing", sv, r.p("missing"))
        fd = r.open("open", r.p("f"), os.O_RDONLY)
        r("fstatvfs", lambda: os.fstatvfs(fd).f_namemax)
    both.check(ops, basic_tree)


# ------------------------------------------------------------ xattrs

def test_xattr(both):
    T = parity

    def ops(r):
        f = r.p("f")
        r("set", os.setxattr, f, "user.a", b"1234567890")
        r("get", os.getxattr, f, "user.a")
        r("list", lambda: sorted(os.listxattr(f)))
        r("probe size 0", T.getxattr_raw, f, "user.a", 0)
        r("too small buffer", T.getxattr_raw, f, "user.a", 3)
        r("exact buffer", T.getxattr_raw, f, "user.a", 10)
        r("big buffer", T.getxattr_raw, f, "user.a", 100)
        r("set b", os.setxattr, f, "user.bb", b"")
        r("get empty", os.getxattr, f, "user.bb")
        r("probe empty", T.getxattr_raw, f, "user.bb", 0)
        r("list probe", T.listxattr_raw, f, 0)
        r("list too small", T.listxattr_raw, f, 5)
        r("list exact", lambda: T.listxattr_raw(f, T.listxattr_raw(f, 0)[0]))
        r("create existing", os.setxattr, f, "user.a", b"x", T.XATTR_CREATE)
        r("replace missing", os.setxattr, f, "user.zz", b"x", T.XATTR_REPLACE)
        r("replace existing", os.setxattr, f, "user.a", b"replaced", T.XATTR_REPLACE)
        r("get replaced", os.getxattr, f, "user.a")
        r("create new", os.setxattr, f, "user.c", b"c", T.XATTR_CREATE)
        r("get missing", os.getxattr, f, "user.missing")
        r("remove missing", os.removexattr, f, "user.missing")
        r("remove", os.removexattr, f, "user.c")
        r("list after remove", lambda: sorted(os.listxattr(f)))
        r("binary value", os.setxattr, f, "user.bin", bytes(range(256)) * 12)
        r("get binary", lambda: sha(os.getxattr(f, "user.bin")))
        r("name 255", os.setxattr, f, "user." + "n" * 250, b"v")
        r("get name 255", os.getxattr, f, "user." + "n" * 250)
        r("name 256", os.setxattr, f, "user." + "n" * 251, b"v")
        r("empty name", os.setxattr, f, "user.", b"v")
        r("bad namespace", os.setxattr, f, "foo.bar", b"v")
        r("get bad namespace", os.getxattr, f, "foo.bar")
        r("value 64k+1", os.setxattr, f, "user.huge", b"h" * 65537)
        r("trusted", os.setxattr, f, "trusted.t", b"root only")
        r("get trusted", os.getxattr, f, "trusted.t")
        r("list all", lambda: sorted(os.listxattr(f)))
        r("dir set", os.setxattr, r.p("d"), "user.dir", b"on a dir")
        r("dir get", os.getxattr, r.p("d"), "user.dir")
        r("via symlink", os.setxattr, r.p("l"), "user.vl", b"through link")
        r("get on target", os.getxattr, f, "user.vl")
        r("symlink itself", os.setxattr, r.p("l"), "user.s", b"x", follow_symlinks=False)
        r("symlink list", os.listxattr, r.p("l"), follow_symlinks=False)
        r("symlink get", os.getxattr, r.p("l"), "user.vl", follow_symlinks=False)
        r("fifo user", os.setxattr, r.p("fifo"), "user.x", b"x")
        r("fifo trusted", os.setxattr, r.p("fifo"), "trusted.x", b"x")
        r("missing file", os.getxattr, r.p("missing"), "user.a")
        r("missing set", os.setxattr, r.p("missing"), "user.a", b"1")
        fd = r.open("open ro", r.p("g"), os.O_RDONLY)
        r("fsetxattr", os.setxattr, fd, "user.fd", b"by fd")
        r("fgetxattr", os.getxattr, fd, "user.fd")
        r("flistxattr", lambda: sorted(os.listxattr(fd)))
        r("fremovexattr", os.removexattr, fd, "user.fd")
        r("flistxattr after", lambda: sorted(os.listxattr(fd)))
    both.check(ops, basic_tree)


# ------------------------------------------------------------ access

def test_access(both):
    libc = parity.libc

    def setup(root):
        basic_tree(root)
        for mode in [0o000, 0o100, 0o010, 0o001, 0o400, 0o644, 0o755]:
            wfile(os.path.join(root, f"m{mode:03o}"), b"x", mode)
        os.mkdir(os.path.join(root, "dnone"), 0)
        os.chmod(os.path.join(root, "dnone"), 0)

    def acc(path, mode):
        if libc.access(os.fsencode(path), mode) == 0:
            return "ok"
        import ctypes
        return parity.errname(ctypes.get_errno())

    def ops(r):
        names = [f"m{m:03o}" for m in [0o000, 0o100, 0o010, 0o001, 0o400, 0o644, 0o755]]
        names += ["d", "dnone", "l", "dl", "missing", "f/x", "fifo"]
        for n in names:
            for mode, ml in [(os.F_OK, "F"), (os.R_OK, "R"), (os.W_OK, "W"), (os.X_OK, "X"),
                             (os.R_OK | os.W_OK | os.X_OK, "RWX")]:
                r(f"access {n} {ml}", acc, r.p(n), mode)
        r("access effective", os.access, r.p("m644"), os.X_OK, effective_ids=True)
        r("access nofollow dl", os.access, r.p("dl"), os.F_OK, follow_symlinks=False)
    both.check(ops, setup)


# ------------------------------------------------------------ locks

LOCK_CHILD = r"""
import fcntl, os, struct, sys, errno
fd = os.open(sys.argv[1], os.O_RDWR)
def flk(t, start, ln):
    return struct.pack("hhqqi4x", t, 0, start, ln, 0)
for line in sys.stdin:
    cmd = line.split()
    try:
        if cmd[0] == "flock":
            fcntl.flock(fd, (fcntl.LOCK_EX if cmd[1] == "EX" else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            out = "ok"
        elif cmd[0] in ("posix", "ofd"):
            t = fcntl.F_WRLCK if cmd[1] == "W" else fcntl.F_RDLCK
            op = fcntl.F_SETLK if cmd[0] == "posix" else 37
            s, n = int(cmd[2]), int(cmd[3])
            fcntl.fcntl(fd, op, flk(t, s, n))
            fcntl.fcntl(fd, op, flk(fcntl.F_UNLCK, s, n))
            out = "ok"
        elif cmd[0] in ("getlk", "ofdgetlk"):
            op = fcntl.F_GETLK if cmd[0] == "getlk" else 36
            res = fcntl.fcntl(fd, op, flk(fcntl.F_WRLCK, int(cmd[1]), int(cmd[2])))
            t, w, s, n, pid = struct.unpack("hhqqi4x", res)
            out = f"type={t},start={s},len={n},pid={pid}"
        else:
            out = "bad command"
    except OSError as e:
        out = errno.errorcode[e.errno]
    print(out, flush=True)
"""


class LockChild:
    def __init__(self, path):
        self.p = subprocess.Popen([sys.executable, "-c", LOCK_CHILD, path], text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def ask(self, cmd):
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().strip()
        assert line, f"lock helper died on {cmd!r}"
        return line.replace(f"pid={os.getpid()},", "pid=PARENT,").replace(
            f"pid={os.getpid()}", "pid=PARENT")

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


def _ofd(fd, t, start, ln, op=parity.F_OFD_SETLK):
    return fcntl.fcntl(fd, op, struct.pack("hhqqi4x", t, 0, start, ln, 0))


def test_locks_seen_by_second_process(both):
    def ops(r):
        fd = r.open("open", r.p("f"), os.O_RDWR)
        child = LockChild(r.p("f"))
        try:
            r("flock EX", fcntl.flock, fd, fcntl.LOCK_EX)
            r("child flock EX", child.ask, "flock EX")
            r("child flock SH", child.ask, "flock SH")
            r("child posix while flocked", child.ask, "posix W 0 10")
            r("flock UN", fcntl.flock, fd, fcntl.LOCK_UN)
            r("child flock EX after", child.ask, "flock EX")
            r("flock SH", fcntl.flock, fd, fcntl.LOCK_SH)
            r("child flock SH shared", child.ask, "flock SH")
            r("child flock EX vs SH", child.ask, "flock EX")
            r("flock UN", fcntl.flock, fd, fcntl.LOCK_UN)
            # POSIX record locks
            r("lockf 0-9", fcntl.lockf, fd, fcntl.LOCK_EX, 10, 0)
            r("child posix overlap", child.ask, "posix W 5 10")
            r("child posix read overlap", child.ask, "posix R 0 1")
            r("child posix beside", child.ask, "posix W 10 10")
            r("child getlk", child.ask, "getlk 0 100")
            r("child getlk free range", child.ask, "getlk 50 10")
            r("child ofd vs posix", child.ask, "ofd W 0 10")
            r("child flock vs posix", child.ask, "flock EX")
            r("lockf un", fcntl.lockf, fd, fcntl.LOCK_UN, 10, 0)
            r("child posix after unlock", child.ask, "posix W 0 10")
            # a read lock lets another reader in
            r("lockf SH", fcntl.lockf, fd, fcntl.LOCK_SH, 0, 0)
            r("child read lock", child.ask, "posix R 100 1")
            r("child write lock", child.ask, "posix W 100 1")
            r("lockf un", fcntl.lockf, fd, fcntl.LOCK_UN, 0, 0)
            # OFD locks
            r("ofd W 0-99", _ofd, fd, fcntl.F_WRLCK, 0, 100, norm=lambda v: "ok")
            r("child ofd", child.ask, "ofd W 50 10")
            r("child ofd beside", child.ask, "ofd W 100 10")
            r("child ofdgetlk", child.ask, "ofdgetlk 0 0")
            r("child posix vs ofd", child.ask, "posix R 0 1")
            fd2 = r.open("second open", r.p("f"), os.O_RDWR)
            r("own second ofd", _ofd, fd2, fcntl.F_WRLCK, 0, 1, norm=lambda v: "ok")
            r("own posix vs own ofd", fcntl.lockf, fd2, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
            r("ofd un", _ofd, fd, fcntl.F_UNLCK, 0, 100, norm=lambda v: "ok")
            r("child ofd after", child.ask, "ofd W 50 10")
            # closing any descriptor drops this process's POSIX locks
            r("lockf again", fcntl.lockf, fd, fcntl.LOCK_EX, 0, 0)
            r.close(fd2)
            r("child posix after close", child.ask, "posix W 0 10")
        finally:
            child.close()
    both.check(ops, basic_tree)


def test_flock_two_descriptions_same_process(both):
    def ops(r):
        a = r.open("open a", r.p("f"), os.O_RDONLY)
        b = r.open("open b", r.p("f"), os.O_RDONLY)
        r("flock a EX", fcntl.flock, a, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r("flock b EX", fcntl.flock, b, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r("flock b SH", fcntl.flock, b, fcntl.LOCK_SH | fcntl.LOCK_NB)
        r.close(a)
        r("flock b after close a", fcntl.flock, b, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r("flock dir", fcntl.flock, r.open("dir", r.p("d"), os.O_RDONLY) or -1,
          fcntl.LOCK_EX | fcntl.LOCK_NB)
    both.check(ops, basic_tree)


# ------------------------------------------------------------ space

def test_fallocate(both):
    T = parity

    def ops(r):
        fd = r.open("create", r.p("fa"), os.O_CREAT | os.O_RDWR, 0o644)
        r("fallocate 1MiB", T.fallocate, fd, 0, 0, MiB)
        r("fstat", os.fstat, fd, norm=lambda s: nst(s, blocks=True))
        r("read zeros", lambda: os.pread(fd, MiB, 0) == bytes(MiB))
        r("keep size beyond eof", T.fallocate, fd, T.FALLOC_FL_KEEP_SIZE, MiB, MiB)
        r("fstat", os.fstat, fd, norm=lambda s: nst(s, blocks=True))
        r("stat by name", os.stat, r.p("fa"), norm=lambda s: nst(s, blocks=True))
        r("write data", os.pwrite, fd, b"d" * (3 * 65536), 0)
        r("fsync", os.fsync, fd)
        r("punch hole", T.fallocate, fd, T.FALLOC_FL_PUNCH_HOLE | T.FALLOC_FL_KEEP_SIZE,
          65536, 65536)
        r("fstat after punch", os.fstat, fd, norm=lambda s: nst(s, blocks=True))
        r("read punched", lambda: sha(os.pread(fd, 65536 + 2, 65535)))
        r("seek hole", os.lseek, fd, 0, os.SEEK_HOLE)
        r("seek data after hole", os.lseek, fd, 65536, os.SEEK_DATA)
        r("punch without keep size", T.fallocate, fd, T.FALLOC_FL_PUNCH_HOLE, 0, 4096)
        r("zero range", T.fallocate, fd, T.FALLOC_FL_ZERO_RANGE, 4096, 4096)
        r("read zeroed", lambda: sha(os.pread(fd, 4098, 4095)))
        r("extend", T.fallocate, fd, 0, 4 * MiB, 4096)
        r("fstat extended", os.fstat, fd, norm=lambda s: nst(s, blocks=True))
        r("len 0", T.fallocate, fd, 0, 0, 0)
        r("negative offset", T.fallocate, fd, 0, -1, 10)
        ro = r.open("open ro", r.p("fa"), os.O_RDONLY)
        r("on ro fd", T.fallocate, ro, 0, 0, 10)
        dfd = r.open("dir", r.p("d"), os.O_RDONLY | os.O_DIRECTORY)
        r("on dir", T.fallocate, dfd, 0, 0, 10)
        ap = r.open("append", r.p("fa"), os.O_WRONLY | os.O_APPEND)
        r("punch on append fd", T.fallocate, ap,
          T.FALLOC_FL_PUNCH_HOLE | T.FALLOC_FL_KEEP_SIZE, 0, 4096)
        r("content", lambda: sha(rd(r.p("fa"))))
    both.check(ops, basic_tree)


def test_copy_file_range(both):
    src_data = os.urandom(200 * 1024 + 17)

    def setup(root):
        basic_tree(root)
        wfile(os.path.join(root, "src"), src_data)

    def ops(r):
        s = r.open("open src", r.p("src"), os.O_RDONLY)
        d = r.open("open dst", r.p("dst"), os.O_CREAT | os.O_RDWR, 0o644)

        def copy_all():
            total = 0
            while True:
                n = os.copy_file_range(s, d, len(src_data), total, total)
                if n == 0:
                    return total
                total += n
        r("copy all", copy_all)
        r("dst content", lambda: sha(rd(r.p("dst"))) == sha(src_data))
        r("copy with offsets", os.copy_file_range, s, d, 3000, 1000, 300000)
        r("dst size", lambda: os.fstat(d).st_size)
        r("dst bytes", lambda: os.pread(d, 3000, 300000) == src_data[1000:4000])
        r("dst gap", lambda: os.pread(d, 10, 250000) == bytes(10))
        r("past eof", os.copy_file_range, s, d, 100, len(src_data) + 10, 0)
        r("short at eof", os.copy_file_range, s, d, 100, len(src_data) - 7, 0)
        r("file offsets", lambda: (os.lseek(s, 0, os.SEEK_CUR), os.lseek(d, 0, os.SEEK_CUR)))
        os.lseek(s, 0, os.SEEK_SET) if s is not None else None
        os.lseek(d, 0, os.SEEK_SET) if d is not None else None
        r("copy using file offsets", os.copy_file_range, s, d, 4096)
        r("offsets advanced", lambda: (os.lseek(s, 0, os.SEEK_CUR), os.lseek(d, 0, os.SEEK_CUR)))
        ro = r.open("dst ro", r.p("g"), os.O_RDONLY)
        r("to ro fd", os.copy_file_range, s, ro, 10, 0, 0)
        ap = r.open("dst append", r.p("g"), os.O_WRONLY | os.O_APPEND)
        r("to append fd", os.copy_file_range, s, ap, 10, 0, 0)
        dfd = r.open("dir", r.p("d"), os.O_RDONLY | os.O_DIRECTORY)
        r("from dir", os.copy_file_range, dfd, d, 10, 0, 0)
        r("same file overlap", os.copy_file_range, d, d, 1000, 0, 500)
        r("same file disjoint", os.copy_file_range, d, d, 1000, 0, 400000)
        r("final", lambda: sha(rd(r.p("dst"))))
    both.check(ops, setup)


def test_seek_data_hole(both):
    def ops(r):
        fd = r.open("create", r.p("sparse"), os.O_CREAT | os.O_RDWR, 0o644)
        r("write head", os.pwrite, fd, b"h" * 4096, 0)
        r("write middle", os.pwrite, fd, b"m" * 4096, MiB)
        r("truncate", os.ftruncate, fd, 4 * MiB)
        for phase in ["unsynced", "synced"]:
            for whence, wn in [(os.SEEK_DATA, "DATA"), (os.SEEK_HOLE, "HOLE")]:
                for off in [0, 100, 4096, 8192, MiB - 1, MiB + 10, MiB + 4096, 2 * MiB,
                            4 * MiB - 1, 4 * MiB, 5 * MiB]:
                    r(f"{phase} SEEK_{wn} {off}", os.lseek, fd, off, whence)
            r("fsync", os.fsync, fd)
        r("negative", os.lseek, fd, -1, os.SEEK_DATA)
        e = r.open("empty", r.p("emptyfile"), os.O_CREAT | os.O_RDWR, 0o644)
        r("empty DATA", os.lseek, e, 0, os.SEEK_DATA)
        r("empty HOLE", os.lseek, e, 0, os.SEEK_HOLE)
        full = r.open("full", r.p("f"), os.O_RDONLY)
        r("full DATA", os.lseek, full, 3, os.SEEK_DATA)
        r("full HOLE", os.lseek, full, 3, os.SEEK_HOLE)
        r("blocks", os.fstat, fd, norm=lambda s: nst(s, blocks=True))
    both.check(ops, basic_tree)


def test_file_over_4gib(both):
    def ops(r):
        fd = r.open("create", r.p("huge"), os.O_CREAT | os.O_RDWR, 0o644)
        r("pwrite at 5GiB", os.pwrite, fd, b"hello at five", 5 * GiB)
        r("fstat", os.fstat, fd, norm=nst)
        r("stat", os.stat, r.p("huge"), norm=nst)
        r("pread at 5GiB", os.pread, fd, 100, 5 * GiB)
        r("pread at 4GiB", os.pread, fd, 16, 4 * GiB + 10)
        r("pwrite across 4GiB", os.pwrite, fd, b"ABCD", 4 * GiB - 2)
        r("pread across 4GiB", os.pread, fd, 8, 4 * GiB - 4)
        r("pread at 1GiB (wrap check)", os.pread, fd, 8, GiB - 2)
        r("seek end", os.lseek, fd, 0, os.SEEK_END)
        r("seek data from 0", os.lseek, fd, 0, os.SEEK_DATA)
        r("read via new fd", lambda: (lambda f: (os.pread(f, 13, 5 * GiB), os.close(f))[0])(
            os.open(r.p("huge"), os.O_RDONLY)))
        r("truncate to 4GiB+1", os.ftruncate, fd, 4 * GiB + 1)
        r("fstat", os.fstat, fd, norm=nst)
        r("last bytes", os.pread, fd, 10, 4 * GiB - 4)
        r("truncate by name to 6GiB", os.truncate, r.p("huge"), 6 * GiB)
        r("stat", os.stat, r.p("huge"), norm=nst)
        r("unlink", os.unlink, r.p("huge"))
    both.check(ops, basic_tree)


# ------------------------------------------------------------ names & paths

def test_name_max(both):
    n255 = "n" * 255
    m255 = "m" * 255
    u255 = "\u00e9" * 127 + "x"   # 255 bytes of UTF-8
    n256 = "n" * 256

    def ops(r):
        fd = r.open("create 255", r.p(n255), os.O_CREAT | os.O_WRONLY, 0o644)
        r("write", os.write, fd, b"long name")
        r.close(fd)
        r.stat("stat 255", r.p(n255))
        r("read 255", rd, r.p(n255))
        r("in listdir", lambda: n255 in os.listdir(r.root))
        r("rename to 255", os.rename, r.p(n255), r.p(m255))
        r("link 255", os.link, r.p(m255), r.p("d", n255))
        r("mkdir 255", os.mkdir, r.p("D" * 255))
        r("file in 255 dir", lambda: wfile(r.p("D" * 255, n255), b"x"))
        r("symlink 255", os.symlink, "t" * 255, r.p("S" * 255))
        r("readlink 255", os.readlink, r.p("S" * 255))
        r("utf8 255", lambda: wfile(r.p(u255), b"utf8"))
        r.stat("stat utf8 255", r.p(u255))
        r("xattr on 255", os.setxattr, r.p(m255), "user.x", b"1")
        r("non-utf8 name", lambda: wfile(os.fsencode(r.root) + b"/\xff\xfe\x80name", b"raw"))
        r("listdir bytes", lambda: sorted(os.listdir(os.fsencode(r.root))))
        r("open 256 creat", os.open, r.p(n256), os.O_CREAT | os.O_WRONLY)
        r("stat 256", os.stat, r.p(n256))
        r("lstat 256", os.lstat, r.p(n256))
        r("mkdir 256", os.mkdir, r.p(n256))
        r("symlink 256", os.symlink, "x", r.p(n256))
        r("rename to 256", os.rename, r.p(m255), r.p(n256))
        r("link to 256", os.link, r.p(m255), r.p(n256))
        r("mknod 256", os.mknod, r.p(n256), stat.S_IFIFO | 0o600)
        r("unlink 256", os.unlink, r.p(n256))
        r("rmdir 256", os.rmdir, r.p(n256))
        r("unlink 255", os.unlink, r.p(m255))
        r("listdir", lambda: sorted(os.listdir(r.root)))
    both.check(ops, basic_tree)


def test_path_max(both):
    """A relative path of PATH_MAX-1 (4095) bytes works; 4096 is ENAMETOOLONG.
    Built with directory descriptors, as no absolute path that long exists."""
    comps = [f"{i:02d}" + "p" * 248 for i in range(16)]  # 16 x 250 bytes
    dirs = "/".join(comps)
    fname = "F" * (4095 - len(dirs) - 1)
    rel = dirs + "/" + fname
    assert len(rel) == 4095

    def ops(r):
        root = os.open(r.root, os.O_RDONLY | os.O_DIRECTORY)
        fds = [root]
        try:
            fd = root
            for c in comps:
                os.mkdir(c, 0o755, dir_fd=fd)
                fd = os.open(c, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
                fds.append(fd)
            r("built", lambda: True)
            f = r.open("create 4095", rel, os.O_CREAT | os.O_RDWR, 0o640, dir_fd=root)
            r("write", os.write, f, b"at the bottom")
            r.close(f)
            r("stat 4095", os.stat, rel, dir_fd=root, norm=nst)
            f = r.open("open 4095", rel, os.O_RDONLY, dir_fd=root)
            r("read", os.read, f, 100)
            r.close(f)
            r("open 4096", os.open, rel + "x", os.O_CREAT | os.O_RDWR, 0o640, dir_fd=root)
            r("stat 4096", os.stat, rel + "x", dir_fd=root)
            r("listdir deepest", lambda: os.listdir(fds[-1]))
            r("rename at 4095", os.rename, rel, dirs + "/" + "G" * len(fname),
              src_dir_fd=root, dst_dir_fd=root)
            r("symlink at 4095", os.symlink, "t" * 4095, rel, dir_fd=root)
            r("readlink at 4095", lambda: len(os.readlink(rel, dir_fd=root)))
            r("xattr at 4095", os.setxattr, f"/proc/self/fd/{fds[-1]}/" + "G" * len(fname),
              "user.deep", b"1")
            r("mkdir at 4095", os.mkdir, dirs + "/" + "E" * len(fname), dir_fd=root)
            r("stat by deepest fd", os.stat, "G" * len(fname), dir_fd=fds[-1], norm=nst)
            r("unlink at 4095", os.unlink, rel, dir_fd=root)
            r("walk up with ..", os.stat, "/".join([".."] * 16) + "/f", dir_fd=fds[-1],
              norm=nst)
        finally:
            for f in fds:
                os.close(f)
    both.check(ops, basic_tree)


# ------------------------------------------------------------ mmap

def test_mmap(both):
    def setup(root):
        basic_tree(root)
        wfile(os.path.join(root, "map"), b"a" * (3 * 4096 + 100))

    def ops(r):
        fd = r.open("open", r.p("map"), os.O_RDWR)
        m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        r("mapped read", lambda: m[:5] + m[-5:])
        m[100:103] = b"XYZ"
        m[5000:5004] = b"PQRS"
        m[-1:] = b"!"
        r("msync", m.flush)
        r("read by fd before unmap", lambda: os.pread(fd, 4, 5000))
        m.close()
        r.close(fd)
        r("read after close", lambda: sha(rd(r.p("map"))))
        r("bytes", lambda: rd(r.p("map"))[98:106])
        # private mapping: writes do not reach the file
        fd = r.open("open ro", r.p("map"), os.O_RDONLY)
        m = mmap.mmap(fd, 0, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)
        m[0:4] = b"priv"
        r("private view", lambda: m[0:6])
        m.close()
        r("file unchanged", lambda: rd(r.p("map"))[:6])
        # a mapping sees a write() made after it was created
        fd = r.open("open rw", r.p("map"), os.O_RDWR)
        m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ)
        r("pwrite", os.pwrite, fd, b"written", 8000)
        r("mapping sees write", lambda: m[8000:8007])
        m.close()
        # grow the file and write the new part through a shared mapping
        r("ftruncate", os.ftruncate, fd, 6 * 4096)
        m = mmap.mmap(fd, 6 * 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        m[5 * 4096:5 * 4096 + 4] = b"tail"
        m.flush()
        m.close()
        r.close(fd)
        r("grown content", lambda: rd(r.p("map"))[5 * 4096:5 * 4096 + 6])
        r("stat", os.stat, r.p("map"), norm=nst)
        wfd = r.open("open wronly", r.p("g"), os.O_WRONLY)
        r("mmap wronly", lambda: mmap.mmap(wfd, 0, mmap.MAP_SHARED, mmap.PROT_WRITE) and "mapped")
        fd = r.open("open ro 2", r.p("map"), os.O_RDONLY)
        r("shared writable map of ro fd", lambda: mmap.mmap(
            fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) and "mapped")
    n, m = both.check(ops, setup)
    if both.mode == "separate":
        # the real file holds what was written through the mapping
        assert rd(os.path.join(both.lower, "map")) == rd(os.path.join(both.mnt, "map"))
        assert rd(os.path.join(both.lower, "map"))[100:103] == b"XYZ"


def test_writes_land_in_lower(sep):
    sep.start(basic_tree)
    m = sep.mnt
    wfile(os.path.join(m, "new"), b"new through mount")
    with open(os.path.join(m, "f"), "r+b") as f:
        f.seek(6)
        f.write(b"WORLD")
    os.mkdir(os.path.join(m, "nd"))
    os.symlink("new", os.path.join(m, "nd", "ln"))
    os.rename(os.path.join(m, "g"), os.path.join(m, "nd", "g"))
    low = sep.lower
    assert rd(os.path.join(low, "new")) == b"new through mount"
    assert rd(os.path.join(low, "f")) == b"hello WORLD\n"
    assert os.readlink(os.path.join(low, "nd", "ln")) == "new"
    assert rd(os.path.join(low, "nd", "g")) == b"second file\n"
    assert not os.path.exists(os.path.join(low, "g"))


# ------------------------------------------------------------ credentials

@pytest.mark.parametrize("umask", [0o022, 0o077, 0o000])
def test_umask_and_owner(both, umask):
    def ops(r):
        old = os.umask(umask)
        try:
            fd = r.open("creat 666", r.p("c666"), os.O_CREAT | os.O_WRONLY, 0o666)
            r.close(fd)
            fd = r.open("creat 4777", r.p("c4777"), os.O_CREAT | os.O_WRONLY, 0o4777)
            r.close(fd)
            r("mkdir 777", os.mkdir, r.p("m777"), 0o777)
            r("mkdir 1777", os.mkdir, r.p("m1777"), 0o1777)
            r("mknod reg", os.mknod, r.p("nreg"), stat.S_IFREG | 0o666)
            r("mknod fifo", os.mknod, r.p("nfifo"), stat.S_IFIFO | 0o666)
            r("symlink", os.symlink, "c666", r.p("sl"))
            s = socket.socket(socket.AF_UNIX)
            try:
                r("bind", s.bind, r.p("sock"))
            finally:
                s.close()
            for n in ["c666", "c4777", "m777", "m1777", "nreg", "nfifo", "sl", "sock"]:
                r.stat("stat " + n, r.p(n), follow=False, size=False)
        finally:
            os.umask(old)
    both.check(ops, basic_tree)


# ------------------------------------------------------------ identity

def test_inode_numbers(both):
    def ops(r):
        objs = {}
        for dirpath, dirnames, filenames in os.walk(r.root):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                objs[os.path.relpath(p, r.root)] = os.lstat(p)
        inos = {}
        for rel, s in objs.items():
            inos.setdefault(s.st_ino, set()).add(rel)
        r("distinct objects", lambda: len(inos))
        r("shared numbers", lambda: sorted(sorted(v) for v in inos.values() if len(v) > 1))
        r("dev uniform", lambda: len({s.st_dev for s in objs.values()}))
        r("root differs", lambda: os.stat(r.root).st_ino not in inos)
        r("dotdot of d is root", lambda: os.stat(r.p("d", "..")).st_ino == os.stat(r.root).st_ino)

    def setup(root):
        dir_tree(root)
        os.link(os.path.join(root, "f"), os.path.join(root, "d", "hard"))
    both.check(ops, setup)


def test_real_inode_numbers_kept(sep):
    """DESIGN 3: real objects on the lower's own device keep their st_ino."""
    sep.start(dir_tree)
    for name in ["f", "d", "d/sub", "l", "fifo", "big/entry-0005-xxxxx"]:
        assert os.lstat(os.path.join(sep.mnt, name)).st_ino == \
            os.lstat(os.path.join(sep.lower, name)).st_ino, name
    assert len({os.lstat(os.path.join(sep.mnt, n)).st_dev for n in os.listdir(sep.mnt)}) == 1


def test_inode_numbers_unique_across_submounts(env):
    """Two tmpfs instances below LOWER number their files alike; through the
    mount (one st_dev) every object must still have its own number."""
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    subs = [os.path.join(lower, "t1"), os.path.join(lower, "t2")]
    mounted = []
    try:
        for s in subs:
            os.mkdir(s)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", s], check=True)
            mounted.append(s)
            for i in range(20):
                wfile(os.path.join(s, f"file{i}"), b"x")
            os.mkdir(os.path.join(s, "dir"))
        wfile(os.path.join(lower, "plain"), b"y")
        native = {}
        for s in subs:
            for n in os.listdir(s):
                native[os.path.join(s, n)] = os.lstat(os.path.join(s, n)).st_ino
        clashes = len(native) - len(set(native.values()))
        m = env.mount(lower, mnt)
        try:
            seen = {}
            for dirpath, dirnames, filenames in os.walk(mnt):
                for n in dirnames + filenames:
                    p = os.path.join(dirpath, n)
                    seen.setdefault(os.lstat(p).st_ino, []).append(os.path.relpath(p, mnt))
            dup = {k: v for k, v in seen.items() if len(v) > 1}
            assert not dup, (f"inode numbers shared by different objects through the mount "
                             f"({clashes} clashes natively across st_dev): {list(dup.values())[:5]}")
            assert sum(len(v) for v in seen.values()) == 2 * 21 + 3
            assert os.stat(os.path.join(mnt, "t1")).st_ino != os.stat(os.path.join(mnt, "t2")).st_ino
            assert rd(os.path.join(mnt, "t2", "file3")) == b"x"
        finally:
            m.stop()
    finally:
        for s in mounted:
            subprocess.run(["umount", "-l", s])


def test_forget_and_lookup_again(both):
    """After the kernel forgets inodes (drop_caches), every object is found
    again with the same number and content."""
    def setup(root):
        dir_tree(root)
        for i in range(200):
            wfile(os.path.join(root, "big", f"data{i}"), str(i).encode())

    both.start(setup)
    before = {}
    for n in os.listdir(os.path.join(both.mnt, "big")):
        before[n] = os.lstat(os.path.join(both.mnt, "big", n)).st_ino
    fd = os.open(os.path.join(both.mnt, "big", "data7"), os.O_RDONLY)
    try:
        for _ in range(2):
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("2")
        after = {n: os.lstat(os.path.join(both.mnt, "big", n)).st_ino for n in before}
        assert after == before
        for i in range(200):
            assert rd(os.path.join(both.mnt, "big", f"data{i}")) == str(i).encode()
        assert os.pread(fd, 10, 0) == b"7"
    finally:
        os.close(fd)


# ------------------------------------------------------------ misc

def test_exec(both):
    def setup(root):
        basic_tree(root)
        wfile(os.path.join(root, "script"), b"#!/bin/sh\necho ran \"$@\"\n", 0o755)

    def ops(r):
        def run(path, *a):
            p = subprocess.run([path] + list(a), capture_output=True)
            return p.returncode, p.stdout
        r("run script", run, r.p("script"), "x")
        r("write new script", lambda: wfile(r.p("s2"), b"#!/bin/sh\nexit 7\n", 0o755))
        r("run new script", run, r.p("s2"))
        r("exec non-executable", run, r.p("f"))
        r("exec dir", run, r.p("d"))
        r("copy binary", lambda: wfile(r.p("true"), rd("/bin/true"), 0o755))
        r("run binary", run, r.p("true"))
    both.check(ops, setup)


def test_read_only_mount(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    basic_tree(lower)
    env.mount(lower, mnt, args=["-o", "ro"])
    assert rd(os.path.join(mnt, "f")) == b"hello world\n"
    for fn in [lambda: os.open(os.path.join(mnt, "f"), os.O_WRONLY),
               lambda: os.open(os.path.join(mnt, "new"), os.O_CREAT | os.O_WRONLY),
               lambda: os.mkdir(os.path.join(mnt, "nd")),
               lambda: os.unlink(os.path.join(mnt, "g")),
               lambda: os.chmod(os.path.join(mnt, "f"), 0o600),
               lambda: os.setxattr(os.path.join(mnt, "f"), "user.x", b"1"),
               lambda: os.utime(os.path.join(mnt, "f"))]:
        with pytest.raises(OSError) as ei:
            fn()
        assert ei.value.errno == errno.EROFS
    assert not os.access(os.path.join(mnt, "f"), os.W_OK)
    assert os.statvfs(mnt).f_flag & os.ST_RDONLY
    assert os.listdir(lower) and not os.path.exists(os.path.join(lower, "new"))
    assert mounted_fstype(mnt) == "fuse.veneer"
