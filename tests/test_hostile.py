"""Hostile input (issue 5): what a layer image, the real tree and the control
socket can throw at the daemon, and what must hold.

- Symlinks in images point anywhere: the daemon returns their text as data and
  never follows them; opening one through the mount is resolved by the kernel,
  in the view, with the caller's rights.
- setuid/setgid bits and device nodes of virtual entries have no effect, while
  real entries keep the flags of the mount that holds LOWER (DESIGN section 3,
  Mount flags).
- The daemon never follows a symlink of the real tree while resolving a path of
  its own: directories swapped for symlinks to outside LOWER during operations
  (watched with inotify), attach sources and trace files reached through
  symlinks under the mount point.
- The control socket: malformed frames get an error reply or a closed
  connection, never a crash, and the daemon keeps serving; other users are
  refused (filesystem permissions first, SO_PEERCRED behind them).

(Crafted names '..', 'x/', NUL and long names are in test_layer_input.py; the
0600-file-of-root check with allow_other is in test_users.py,
test_permission_denials "read secret".)
"""
import ctypes
import errno
import json
import os
import random
import socket
import stat
import struct
import subprocess
import threading
import time

import pytest

from conftest import NOBODY, become, mksquashfs, rd, wfile
from parity import as_user

pytestmark = pytest.mark.timeout(180)

libc = ctypes.CDLL(None, use_errno=True)
SYS_openat2 = 437
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08


class OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


libc.syscall.restype = ctypes.c_long


def openat2(dirfd, path, flags, resolve=RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH, mode=0o644):
    """openat2(2) from DIRFD that refuses any symlink: the kernel never follows one."""
    how = OpenHow(flags | os.O_CLOEXEC, mode if flags & os.O_CREAT else 0, resolve)
    fd = libc.syscall(ctypes.c_long(SYS_openat2), ctypes.c_int(dirfd),
                      ctypes.c_char_p(os.fsencode(path)), ctypes.byref(how),
                      ctypes.c_size_t(ctypes.sizeof(how)))
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    return fd


def err(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except OSError as e:
        return e.errno
    return 0


def snapshot(root):
    """Everything about a tree that a write, create, unlink or chmod would change."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in sorted(dirs + files):
            p = os.path.join(d, n)
            st = os.lstat(p)
            key = os.path.relpath(p, root)
            if stat.S_ISLNK(st.st_mode):
                out[key] = ("l", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[key] = ("d", st.st_mode, st.st_uid, st.st_mtime_ns, st.st_ctime_ns)
            else:
                out[key] = ("f", st.st_mode, st.st_uid, st.st_size, st.st_mtime_ns,
                            st.st_ctime_ns, rd(p))
    st = os.lstat(root)
    out["."] = ("d", st.st_mode, st.st_mtime_ns, st.st_ctime_ns)
    return out




CANARY = b"CANARY: nobody may read this through veneer\n"


def canary_dir(env, name="outside"):
    """A directory outside every LOWER, with files named like the ones under test."""
    out = env.mkdir(name)
    for n in ["canary", "f0", "f1", "f2", "f3", "victim"]:
        wfile(os.path.join(out, n), CANARY, mode=0o600)
    os.makedirs(os.path.join(out, "sub"))
    wfile(os.path.join(out, "sub", "deep"), CANARY, mode=0o600)
    return out


# ------------------------------------------------------------ inotify

IN_ALL_EVENTS = 0xfff
IN_NONBLOCK = 0o4000
libc.inotify_init1.argtypes = [ctypes.c_int]
libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
IN_NAMES = {0x1: "ACCESS", 0x2: "MODIFY", 0x4: "ATTRIB", 0x8: "CLOSE_WRITE",
            0x10: "CLOSE_NOWRITE", 0x20: "OPEN", 0x40: "MOVED_FROM", 0x80: "MOVED_TO",
            0x100: "CREATE", 0x200: "DELETE", 0x400: "DELETE_SELF", 0x800: "MOVE_SELF"}


class Watch:
    """Every open, read, write, create, delete or attribute change in DIRS."""

    def __init__(self, dirs):
        self.fd = libc.inotify_init1(IN_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0
        self.wds = {}
        for d in dirs:
            wd = libc.inotify_add_watch(self.fd, os.fsencode(d), IN_ALL_EVENTS)
            assert wd >= 0, os.strerror(ctypes.get_errno())
            self.wds[wd] = d

    def events(self):
        out = []
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            pos = 0
            while pos < len(buf):
                wd, mask, _cookie, ln = struct.unpack_from("iIII", buf, pos)
                name = buf[pos + 16:pos + 16 + ln].rstrip(b"\0").decode(errors="replace")
                what = "|".join(v for k, v in IN_NAMES.items() if mask & k) or hex(mask)
                out.append("%s %s/%s" % (what, self.wds.get(wd, "?"), name))
                pos += 16 + ln

    def close(self):
        os.close(self.fd)


# ------------------------------------------------------------ symlinks in images

def test_image_symlinks_are_returned_as_data(env):
    """Symlinks pointing anywhere: readlink gives their text; following them is the
    kernel's work, done in the view with the caller's rights, never the daemon's."""
    out = canary_dir(env)
    secret = os.path.join(out, "canary")           # 0600 root: nobody may read it
    src = env.mkdir("imgsrc")
    os.makedirs(os.path.join(src, "d", "e"))
    wfile(os.path.join(src, "d", "e", "plain"), b"plain\n")
    long_target = "/" + "/".join(["x" * 200] * 20)  # 4020 bytes
    links = {
        "shadow": "/etc/shadow",
        "abs_canary": secret,
        "d/e/up": "../../../../../..",
        "d/e/rel_canary": "../../../../outside/canary",   # from mnt/l/d/e: the tmp dir
        "d/e/to_plain": "plain",
        "self": "self",
        "dangling": "/nonexistent/veneer/target",
        "long": long_target,
        "dotdot": "..",
        "empty_dir_link": "d/",
    }
    for rel, target in links.items():
        os.symlink(target, os.path.join(src, rel))
    img = mksquashfs(src, env.path("links.sqfs"))
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    wfile(os.path.join(lower, "real"), b"real\n")
    env.mount(lower, mnt, args=["--layer", f"{img}:/l", "-o", "allow_other"])
    before = snapshot(out)
    watch = Watch([out, os.path.join(out, "sub")])
    try:
        base = os.path.join(mnt, "l")
        for rel, target in links.items():
            p = os.path.join(base, rel)
            st = os.lstat(p)
            assert stat.S_ISLNK(st.st_mode), rel
            assert st.st_size == len(target.encode()), rel
            assert os.readlink(p) == target, rel
            # no O_PATH|O_NOFOLLOW surprises: the link itself is reachable
            fd = os.open(p, os.O_PATH | os.O_NOFOLLOW)
            assert stat.S_ISLNK(os.fstat(fd).st_mode)
            os.close(fd)
        listing = sorted(os.listdir(base))
        assert listing == sorted(["d", "shadow", "abs_canary", "self", "dangling", "long",
                                  "dotdot", "empty_dir_link"])
        assert err(os.stat, os.path.join(base, "self")) == errno.ELOOP
        assert err(os.stat, os.path.join(base, "dangling")) == errno.ENOENT
        assert err(os.stat, os.path.join(base, "long")) == errno.ENOENT
        assert rd(os.path.join(base, "d", "e", "to_plain")) == b"plain\n"
        assert os.path.samestat(os.stat(os.path.join(base, "empty_dir_link")),
                                os.stat(os.path.join(base, "d")))
        # ".." in a symlink is resolved by the kernel in the view: the mount's parent
        assert os.path.samestat(os.stat(os.path.join(base, "dotdot")), os.stat(mnt))
        up = os.path.join(base, "d", "e", "up")
        assert os.path.samestat(os.stat(up), os.stat("/"))
        # with O_NOFOLLOW the kernel does not follow it either
        for rel in links:
            assert err(os.open, os.path.join(base, rel), os.O_RDONLY | os.O_NOFOLLOW) \
                == errno.ELOOP, rel
        # openat2 beneath the mount refuses to leave it: ELOOP/EXDEV, never the canary
        mfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for rel in ["l/abs_canary", "l/d/e/rel_canary", "l/shadow"]:
                assert err(openat2, mfd, rel, os.O_RDONLY) == errno.ELOOP, rel
                assert err(openat2, mfd, rel, os.O_RDONLY, resolve=RESOLVE_BENEATH) \
                    == errno.EXDEV, rel
        finally:
            os.close(mfd)
        assert not watch.events(), "the canary directory was touched before any follow"

        # the caller follows them (kernel side), with its own credentials: nobody is
        # refused what root may read, so no daemon (running as root) read it for them
        def follow_as_nobody():
            res = {}
            for rel in ["abs_canary", "d/e/rel_canary", "shadow"]:
                res[rel] = err(rd, os.path.join(base, rel))
            return res
        got = as_user(follow_as_nobody, NOBODY)
        assert got == ("ok", {"abs_canary": errno.EACCES, "d/e/rel_canary": errno.EACCES,
                              "shadow": errno.EACCES}), got
        # as root, the kernel resolves the relative link in the view (mnt/l/d/e/../../../..
        # is the test directory) and reads the real outside file, as natively
        assert rd(os.path.join(base, "d", "e", "rel_canary")) == CANARY
        assert rd(os.path.join(base, "abs_canary")) == CANARY
        ev = watch.events()
        # exactly the two opens this process made, nothing else
        opens = [e for e in ev if e.startswith("OPEN")]
        assert len(opens) == 2 and all(e.endswith("/canary") for e in opens), ev
    finally:
        watch.close()
    assert snapshot(out) == before
    assert rd(os.path.join(mnt, "real")) == b"real\n"


def test_image_symlink_targets_are_not_interpreted_by_the_daemon(env):
    """readlink is pure data even for targets naming the mount itself or /proc."""
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    src = env.mkdir("imgsrc")
    targets = {"to_mnt": mnt, "to_proc": "/proc/self/root", "to_fd": "/proc/self/fd/0",
               "to_lower": lower, "spaces": " a b \t", "newline": "a\nb"}
    for n, t in targets.items():
        os.symlink(t, os.path.join(src, n))
    img = mksquashfs(src, env.path("t.sqfs"))
    env.mount(lower, mnt, args=["--layer", img])
    for n, t in targets.items():
        assert os.readlink(os.path.join(mnt, n)) == t
    # a symlink to the mount point followed by the kernel: the mount itself, no deadlock
    assert sorted(os.listdir(os.path.join(mnt, "to_mnt"))) == sorted(targets)
    assert os.readlink(os.path.join(mnt, "to_mnt", "to_mnt")) == mnt


# ------------------------------------------------------------ setuid, setgid, devices

PRINT_IDS = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) { printf("%u %u\n", (unsigned)geteuid(), (unsigned)getegid()); return 0; }
"""


def compile_print_ids(env):
    c = env.path("ids.c")
    with open(c, "w") as f:
        f.write(PRINT_IDS)
    exe = env.path("ids")
    r = subprocess.run(["cc", "-O1", "-o", exe, c], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("no C compiler: " + r.stderr)
    return exe


def tmpfs(env, name, opts):
    d = env.mkdir(name)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m," + opts, "tmpfs", d],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs: " + r.stderr)
    return d


def mount_opts(path):
    path = os.path.realpath(path)
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[4] == path:
                found = set(parts[5].split(","))
    return found


def run_ids(path):
    try:
        r = subprocess.run([path], capture_output=True, text=True, preexec_fn=become(NOBODY))
    except PermissionError as e:       # noexec: execve itself fails
        return -errno.EACCES, "", str(e)
    return r.returncode, r.stdout.strip(), r.stderr


@pytest.mark.parametrize("fs_flags", ["suid,dev,exec", "nosuid,nodev,noexec"])
def test_mount_flags_follow_lower_and_never_apply_to_virtual_entries(env, fs_flags):
    """In place, as root: real entries keep the flags of the mount holding LOWER;
    setuid/setgid bits of virtual entries never count and their devices never open."""
    exe = compile_print_ids(env)
    fs = tmpfs(env, "fs", fs_flags)
    try:
        lower = os.path.join(fs, "lower")
        os.makedirs(lower)
        os.chmod(lower, 0o755)
        real = os.path.join(lower, "real_suid")
        with open(exe, "rb") as f, open(real, "wb") as o:
            o.write(f.read())
        os.chmod(real, 0o6755)
        os.mknod(os.path.join(lower, "real_null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
        src = env.mkdir("imgsrc")
        os.makedirs(os.path.join(src, "sgid_dir"))
        os.chmod(os.path.join(src, "sgid_dir"), 0o2775)
        v = os.path.join(src, "virt_suid")
        with open(exe, "rb") as f, open(v, "wb") as o:
            o.write(f.read())
        os.chmod(v, 0o6755)
        img = mksquashfs(src, env.path("suid.sqfs"),
                         extra=["-p", "vnull c 666 0 0 1 3", "-p", "vblk b 666 0 0 7 0"])
        m = env.mount(lower, args=["--layer", f"{img}:/v"])
        opts = mount_opts(lower)
        want = set(fs_flags.split(",")) - {"suid", "dev", "exec"}
        assert want <= opts, (fs_flags, opts)
        flags = fs_flags.split(",")
        if "suid" in flags:
            assert "nosuid" not in opts and "nodev" not in opts, opts

        # virtual entries: no setuid/setgid bits shown, none honoured, no device opened
        vs = os.stat(os.path.join(lower, "v", "virt_suid"))
        assert vs.st_mode & 0o7000 == 0, oct(vs.st_mode)
        assert os.stat(os.path.join(lower, "v", "sgid_dir")).st_mode & 0o7000 == 0
        rc, out, errtxt = run_ids(os.path.join(lower, "v", "virt_suid"))
        if "noexec" in flags:
            assert rc != 0
        else:
            assert (rc, out) == (0, f"{NOBODY} {NOBODY}"), errtxt
        for dev, kind in [("vnull", stat.S_ISCHR), ("vblk", stat.S_ISBLK)]:
            p = os.path.join(lower, "v", dev)
            assert kind(os.stat(p).st_mode)
            assert err(os.open, p, os.O_RDONLY) in (errno.ENXIO, errno.EACCES, errno.ENODEV,
                                                     errno.EPERM), dev
            assert err(os.open, p, os.O_WRONLY) in (errno.ENXIO, errno.EACCES, errno.ENODEV,
                                                     errno.EPERM, errno.EROFS), dev

        # real entries: as the mount that holds LOWER says
        rs = os.stat(real)
        assert rs.st_mode & 0o7777 == 0o6755
        rc, out, errtxt = run_ids(real)
        rnull = os.path.join(lower, "real_null")
        if "noexec" in flags:
            assert rc != 0
            assert err(os.open, rnull, os.O_RDONLY) == errno.EACCES
        else:
            assert (rc, out) == (0, "0 0"), errtxt
            fd = os.open(rnull, os.O_RDWR)
            assert os.write(fd, b"into the void") == 13 and os.read(fd, 10) == b""
            os.close(fd)
        m.stop()
    finally:
        for mm in env.mounts:
            mm.stop()
        subprocess.run(["umount", "-l", fs], capture_output=True)


# ------------------------------------------------------------ symlink swaps in the real tree

SWAP_OK = {errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ESTALE, errno.EEXIST,
           errno.ENOTEMPTY, errno.EXDEV, errno.EISDIR}


def _swap_workload(env, mnt, lower, out, swap_through_mount, seconds):
    """Swappers replace LOWER/a (and LOWER/a/b) by symlinks to OUT and back, again
    and again, while workers operate under MNT/a from held directory descriptors
    and through openat2 walks that refuse symlinks on the kernel side."""
    swap_root = mnt if swap_through_mount else lower
    stop = threading.Event()
    problems, counts, errnos = [], {"ops": 0, "swaps": 0, "canary": 0}, {}
    lock = threading.Lock()

    def note(e, what="open of the directory"):
        name = errno.errorcode.get(e, str(e))
        with lock:
            errnos[name] = errnos.get(name, 0) + 1
        if e not in SWAP_OK:
            problems.append("unexpected %s from %s" % (name, what))

    def swapper(plan):
        k = 0
        while not stop.is_set():
            rel, target = plan[k % len(plan)]
            k += 1
            p = os.path.join(swap_root, rel)
            away = p + ".away"
            try:
                os.rename(p, away)
                os.symlink(target, p)
                time.sleep(0.001)
                os.unlink(p)
                os.rename(away, p)
                with lock:
                    counts["swaps"] += 1
            except OSError as e:
                problems.append("swapper %s: %s" % (rel, e))
                return
            time.sleep(0.002)

    def check_data(data, what):
        if CANARY in data:
            counts["canary"] += 1
            problems.append("canary content read through %s" % what)

    def worker(k):
        rng = random.Random(k)
        mine = "w%d" % k
        while not stop.is_set():
            # a descriptor of MNT/a (or MNT/a/b), held across the swaps
            sub = rng.choice(["a", "a/b"])
            try:
                # never through a symlink on the kernel side (that would be this
                # process reaching OUT, legitimately): what OUT sees is the daemon's
                mfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    dfd = openat2(mfd, sub, os.O_RDONLY | os.O_DIRECTORY)
                finally:
                    os.close(mfd)
            except OSError as e:
                note(e.errno)
                continue
            try:
                for _ in range(20):
                    op = rng.randrange(7)
                    name = rng.choice(["f0", "f1", "f2", "f3", "canary", "victim", mine])
                    counts["ops"] += 1
                    try:
                        if op == 0:
                            fd = os.open(name, os.O_RDONLY, dir_fd=dfd)
                            try:
                                check_data(os.read(fd, 4096), "a held directory")
                            finally:
                                os.close(fd)
                        elif op == 1:
                            os.stat(name, dir_fd=dfd, follow_symlinks=False)
                        elif op == 2:
                            names = os.listdir(dfd)
                            if "canary" in names or "victim" in names:
                                problems.append("canary directory listed: %s" % names)
                        elif op == 3:
                            fd = os.open(mine, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644,
                                         dir_fd=dfd)
                            os.write(fd, b"written by %s\n" % mine.encode())
                            os.close(fd)
                        elif op == 4:
                            os.unlink(rng.choice([mine, "victim", "f3"]), dir_fd=dfd)
                        elif op == 5:
                            os.mkdir("dir-" + mine, dir_fd=dfd)
                            os.rmdir("dir-" + mine, dir_fd=dfd)
                        else:
                            # a walk from the mount root the kernel refuses to take
                            # through a symlink: what it reaches is the daemon's doing
                            mfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
                            try:
                                fd = openat2(mfd, sub + "/" + name, os.O_RDONLY)
                                try:
                                    check_data(os.read(fd, 4096), "an openat2 walk")
                                finally:
                                    os.close(fd)
                            finally:
                                os.close(mfd)
                    except OSError as e:
                        if e.errno == errno.EIO and op == 3 and not swap_through_mount:
                            # a create in a directory renamed away behind the daemon's
                            # back between its creation and the lookup of the new
                            # name (seen about once in 50,000 creates under ASan): the
                            # daemon cannot tell what it made, EIO; nothing outside
                            note(errno.ENOENT)
                            counts["create EIO"] = counts.get("create EIO", 0) + 1
                            continue
                        note(e.errno, "op %d on %s" % (op, sub))
            finally:
                os.close(dfd)

    # one swapper: a/b is swapped only while a is a directory (through the mount a
    # symlink would be followed by the kernel for the swapper itself)
    threads = [threading.Thread(target=swapper, args=(
        [("a", out), ("a/b", os.path.relpath(out, os.path.join(lower, "a")))],))]
    threads += [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(60)
    return problems, counts, errnos


def _swap_setup(env):
    out = canary_dir(env)
    lower = env.mkdir("lower")
    for d in ["a", "a/b"]:
        os.makedirs(os.path.join(lower, d), exist_ok=True)
        for n in ["f0", "f1", "f2", "f3"]:
            wfile(os.path.join(lower, d, n), b"real %s/%s\n" % (d.encode(), n.encode()))
    return out, lower


@pytest.mark.stress
@pytest.mark.parametrize("mode", ["behind", "through"])
def test_directory_swapped_for_symlink_never_leads_outside(env, mode):
    """'behind': LOWER/a is swapped directly in the real tree behind the daemon's back
    (separate mount point); 'through': the swaps are made through the mount (in place)."""
    out, lower = _swap_setup(env)
    if mode == "behind":
        mnt = env.mkdir("mnt")
        m = env.mount(lower, mnt)
    else:
        mnt = lower
        m = env.mount(lower)
    before = snapshot(out)
    watch = Watch([out, os.path.join(out, "sub")])
    try:
        problems, counts, errnos = _swap_workload(env, mnt, lower, out, mode == "through",
                                                  float(os.environ.get("VENEER_SWAP_SECONDS",
                                                                       "6")))
        events = watch.events()
    finally:
        watch.close()
    print("swap %s: %s errnos %s" % (mode, counts, errnos))
    assert m.proc.poll() is None, "daemon died: " + m.log()
    assert not events, "the daemon touched the outside directory:\n" + "\n".join(events[:30])
    assert snapshot(out) == before
    assert not problems, problems[:20]
    assert counts["swaps"] >= 20 and counts["ops"] >= 200, counts
    # the real tree is whole again and served right (once the 1 s entry timeout of
    # cache=auto let the kernel forget entries changed behind the daemon's back)
    time.sleep(1.5)
    for d in ["a", "a/b"]:
        for n in ["f0", "f1", "f2"]:
            assert rd(os.path.join(mnt, d, n)) == b"real %s/%s\n" % (d.encode(), n.encode())
    assert not os.path.islink(os.path.join(lower, "a"))
    m.stop()
    assert not any(n.endswith(".away") for n in os.listdir(lower))


# ------------------------------------------------------------ the daemon's own paths

def control_socket_path(mnt, runtime_dir=None):
    """The socket path rule of src/control/control_path.c (short paths only)."""
    s = mnt.lstrip("/")
    esc = []
    for i, ch in enumerate(s.encode()):
        c = chr(ch)
        if c == "/":
            esc.append("-")
        elif c.isascii() and (c.isalnum() or c in "_:" or (c == "." and i > 0)):
            esc.append(c)
        else:
            esc.append("\\x%02x" % ch)
    d = os.path.join(runtime_dir or "/run", "veneer")
    p = os.path.join(d, "".join(esc) + ".sock")
    assert len(p) <= 107, "the test needs a short mount point path"
    return p


def frame(*fields):
    body = b"".join(f + b"\0" for f in fields)
    return struct.pack("<I", len(body)) + body


def port_frame(port, *fields):
    """A request to the virtualization filter's port: its fields each ended by a NUL, in hex."""
    msg = b"".join(f + b"\0" for f in fields)
    return frame(b"port", b"virtualize", port, msg.hex().encode())


def recv_reply(s, timeout=20):
    """('closed',) or the reply's fields (bytes)."""
    s.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
        if len(data) >= 4 and len(data) >= 4 + struct.unpack("<I", data[:4])[0]:
            break
    if len(data) < 4:
        return ("closed",)
    n = struct.unpack("<I", data[:4])[0]
    body = data[4:4 + n]
    assert len(body) == n, "short reply %r" % data
    assert body.endswith(b"\0"), body
    return tuple(body[:-1].split(b"\0"))


def raw(path, payload, shut=True, timeout=20):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        try:
            s.sendall(payload)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return recv_reply(s, timeout)
    finally:
        s.close()


def is_err(reply, *errnos):
    if reply == ("closed",):
        return True
    if reply[0] != b"err" or len(reply) != 3:
        return False
    return not errnos or int(reply[1]) in errnos


def test_attach_through_symlink_under_the_mount_point(env):
    """An image path under the mount point is resolved beneath LOWER without
    following any symlink: one that would lead outside is refused."""
    out = canary_dir(env)
    imgsrc = env.mkdir("imgsrc")
    wfile(os.path.join(imgsrc, "outside_file"), b"from the outside image\n")
    outside_img = mksquashfs(imgsrc, os.path.join(out, "img.sqfs"))
    lower = env.mkdir("lower")
    os.makedirs(os.path.join(lower, "realdir"))
    mksquashfs(imgsrc, os.path.join(lower, "realdir", "in.sqfs"))
    os.symlink(out, os.path.join(lower, "dirlink"))                 # a directory symlink
    os.symlink(outside_img, os.path.join(lower, "imglink"))        # a file symlink
    os.symlink("realdir", os.path.join(lower, "reldirlink"))        # stays inside
    os.symlink("../" + os.path.basename(out) + "/img.sqfs", os.path.join(lower, "rellink"))
    rt = env.mkdir("rt")
    e = {"VENEER_RUNTIME_DIR": rt}
    m = env.mount(lower, env=e)  # in place: the daemon must not go through its own mount
    sock = control_socket_path(lower, rt)
    before = snapshot(out)
    watch = Watch([out])
    try:
        for rel in ["dirlink/img.sqfs", "imglink", "rellink", "reldirlink/in.sqfs",
                    "dirlink/../" + os.path.basename(lower) + "/realdir/in.sqfs"]:
            path = os.path.join(lower, rel)
            r = raw(sock, port_frame(b"attach", path.encode(), b"/x"))
            assert r != ("closed",) and r[0] == b"err", (rel, r)
            assert int(r[1]) in (errno.ELOOP, errno.EXDEV, errno.ENOENT, errno.EINVAL), (rel, r)
            assert not os.path.exists(os.path.join(lower, "x"))
        events = watch.events()
    finally:
        watch.close()
    assert not events, events
    assert snapshot(out) == before
    # the inside image by its plain path works (read through the lower, not the mount)
    r = raw(sock, port_frame(b"attach", os.path.join(lower, "realdir", "in.sqfs").encode(), b"/x"))
    assert r[0] == b"ok", r
    assert rd(os.path.join(lower, "x", "outside_file")) == b"from the outside image\n"
    assert m.proc.poll() is None


def test_trace_file_that_is_a_symlink_is_not_followed(env):
    """--trace=LOWER/t.log, where t.log is a symlink to a file outside LOWER, in place:
    the daemon opens it beneath LOWER without following the symlink."""
    out = canary_dir(env)
    lower = env.mkdir("lower")
    wfile(os.path.join(lower, "r"), b"r\n")
    os.symlink(os.path.join(out, "victim"), os.path.join(lower, "t.log"))
    before = snapshot(out)
    m = env.mount(lower, args=["--trace", os.path.join(lower, "t.log")], start=False)
    try:
        m.start(timeout=30)
        started = True
    except AssertionError:
        started = False
    if started:
        rd(os.path.join(lower, "r"))
        m.stop()
    else:
        assert "t.log" in m.log() and "symbolic link" in m.log().lower() or \
            "too many levels" in m.log().lower(), m.log()
    assert snapshot(out) == before
    assert os.path.islink(os.path.join(lower, "t.log"))


# ------------------------------------------------------------ the control socket

def _control_mount(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    wfile(os.path.join(lower, "real"), b"real\n")
    src = env.mkdir("imgsrc")
    wfile(os.path.join(src, "v"), b"virtual\n")
    img = mksquashfs(src, env.path("c.sqfs"))
    rt = env.mkdir("rt")
    os.makedirs(os.path.join(rt, "veneer"), mode=0o755)
    os.chmod(os.path.join(rt, "veneer"), 0o755)
    e = {"VENEER_RUNTIME_DIR": rt}
    m = env.mount(lower, mnt, args=["-o", "allow_other"], env=e)
    return m, mnt, img, control_socket_path(mnt, rt), e


def _serving(env, m, mnt, e):
    assert m.proc.poll() is None, "daemon died: " + m.log()
    r = env.veneer("status", "--json", mnt, env=e)
    assert r.returncode == 0, r.stderr
    assert rd(os.path.join(mnt, "real")) == b"real\n"
    return json.loads(r.stdout)


def test_control_socket_malformed_frames(env):
    m, mnt, img, sock, e = _control_mount(env)
    assert os.path.exists(sock), sock
    assert stat.S_IMODE(os.stat(sock).st_mode) & 0o077 == 0
    cases = {
        "too large": struct.pack("<I", (1 << 20) + 1),
        "huge": struct.pack("<I", 0xffffffff) + b"x" * 100,
        "zero length": struct.pack("<I", 0),
        "no final NUL": struct.pack("<I", 6) + b"status",
        "empty verb": frame(b""),
        "unknown verb": frame(b"frobnicate", b"a"),
        "17 fields": frame(*[b"status"] + [b"x"] * 16),
        "16 fields": frame(*[b"status"] + [b"x"] * 15),
        "status no args": frame(b"status"),
        "status 2 args": frame(b"status", b"json", b"json"),
        "attach no args": port_frame(b"attach"),
        "attach 1 arg": port_frame(b"attach", img.encode()),
        "attach relative source": port_frame(b"attach", b"c.sqfs", b"/x"),
        "attach relative view": port_frame(b"attach", img.encode(), b"x"),
        "attach view with ..": port_frame(b"attach", img.encode(), b"/x/../../y"),
        "attach empty source": port_frame(b"attach", b"", b"/x"),
        "attach NUL-only fields": port_frame(b"attach", b"", b""),
        "attach long view": port_frame(b"attach", img.encode(), b"/" + b"a" * 5000),
        "attach long source": port_frame(b"attach", b"/" + b"b" * 5000, b"/x"),
        "attach non-utf8": port_frame(b"attach", b"/\xff\xfe/img", b"/\xff"),
        "attach /dev/zero": port_frame(b"attach", b"/dev/zero", b"/x"),
        "attach 9 fields": port_frame(b"attach", *[b"/x"] * 9),
        "attach no final NUL": frame(b"port", b"virtualize", b"attach", b"/x".hex().encode()),
        "detach garbage id": port_frame(b"detach", b"99999999999999999999999"),
        "detach negative id": port_frame(b"detach", b"-1"),
        "detach empty": port_frame(b"detach", b""),
        "detach relative": port_frame(b"detach", b"x/y"),
        "detach root": port_frame(b"detach", b"/"),
        "trace garbage": frame(b"trace", b"--bogus=\xff", b"x" * 1000),
        "stream no args": frame(b"stream"),
        "stream bad hex": frame(b"stream", b"trace", b"watch", b"zz"),
        "stream odd hex": frame(b"stream", b"trace", b"watch", b"6"),
        "stream bad query": frame(b"stream", b"trace", b"watch", b"--bogus=\xff".hex().encode()),
        "stream no filter": frame(b"stream", b"nope", b"watch", b""),
        "stream answering port": frame(b"stream", b"virtualize", b"attach", b""),
        "stream huge request": frame(b"stream", b"trace", b"watch", b"61" * 70000),
        "listen stream port": frame(b"listen", b"trace", b"watch"),
        "one byte header": b"\x05",
        "three byte header": b"\x05\x00\x00",
        "short body": struct.pack("<I", 100) + b"status\0",
        "megabyte of NULs": struct.pack("<I", 1 << 20) + b"\0" * (1 << 20),
        "megabyte one field": struct.pack("<I", 1 << 20) + b"a" * ((1 << 20) - 1) + b"\0",
    }
    results = {}
    for name, payload in cases.items():
        r = raw(sock, payload)
        results[name] = r
        if name == "status no args" or name == "16 fields":
            assert r[0] in (b"ok", b"err"), (name, r)
        elif name == "trace garbage":
            assert r == ("closed",) or r[0] in (b"ok", b"err"), (name, r)
        else:
            assert is_err(r), (name, r)
        assert m.proc.poll() is None, "daemon died on %s: %s" % (name, m.log())
    for name in ["too large", "huge", "zero length", "no final NUL", "empty verb",
                 "unknown verb", "17 fields", "megabyte of NULs", "megabyte one field"]:
        assert results[name] != ("closed",), name
        assert results[name][2], "an err reply says what is wrong: %s" % name
    assert int(results["too large"][1]) == errno.EMSGSIZE
    assert int(results["zero length"][1]) == errno.EINVAL
    assert int(results["no final NUL"][1]) == errno.EINVAL
    assert int(results["17 fields"][1]) == errno.EINVAL
    assert results["attach 9 fields"][2] == b"unknown request 'attach' with 9 arguments"
    assert results["attach no final NUL"][2] == \
        b"attach: the message is not fields each ended by a NUL"
    st = _serving(env, m, mnt, e)
    assert st["layers"] == [], st
    assert os.listdir(mnt) == ["real"]

    # random frames, seeded: each gets an err reply or a closed connection
    rng = random.Random(5)
    verbs = [b"attach", b"detach", b"status", b"trace", b"stream", b"", b"ok", b"err"]
    for i in range(300):
        kind = i % 3
        if kind == 0:
            payload = rng.randbytes(rng.randrange(1, 64))
        elif kind == 1:
            fields = [rng.choice(verbs)] + [rng.randbytes(rng.randrange(0, 40)).replace(b"\0", b"")
                                            for _ in range(rng.randrange(0, 20))]
            payload = frame(*fields)
            if rng.random() < 0.3:
                payload = payload[:rng.randrange(1, len(payload))]
        else:
            body = rng.randbytes(rng.randrange(0, 200))
            payload = struct.pack("<I", len(body) + rng.choice([0, 0, 1, -1 if body else 0])) + body
        r = raw(sock, payload, timeout=20)
        ok_verb = payload[4:].split(b"\0")[0] in (b"status", b"trace", b"detach", b"attach")
        assert r == ("closed",) or r[0] == b"err" or (ok_verb and r[0] == b"ok"), (i, payload, r)
        if i % 50 == 0:
            assert m.proc.poll() is None, "daemon died at random frame %d: %s" % (i, m.log())
    st = _serving(env, m, mnt, e)
    # a random detach could only have matched no layer: there was none
    assert st["layers"] == [], st
    r = env.veneer("attach", mnt, img, "/ok", env=e)
    assert r.returncode == 0, r.stderr
    assert rd(os.path.join(mnt, "ok", "v")) == b"virtual\n"


def test_control_socket_silent_client_does_not_wedge_the_daemon(env):
    """A client that connects and says nothing (or half a frame) is dropped after the
    server's deadline; the filesystem keeps serving meanwhile, the socket afterwards."""
    m, mnt, img, sock, e = _control_mount(env)
    silent = socket.socket(socket.AF_UNIX)
    silent.connect(sock)
    half = socket.socket(socket.AF_UNIX)
    half.connect(sock)
    half.sendall(struct.pack("<I", 50) + b"stat")
    try:
        t0 = time.monotonic()
        for i in range(50):
            assert rd(os.path.join(mnt, "real")) == b"real\n"
        assert time.monotonic() - t0 < 5, "file operations waited for the control socket"
        r = env.veneer("status", mnt, env=e, timeout=60)
        took = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        assert took < 30, took
        print("status behind two silent clients took %.1f s" % took)
        # the silent ones were answered (err) or closed, not kept forever
        for s in (silent, half):
            got = recv_reply(s, timeout=30)
            assert is_err(got), got
    finally:
        silent.close()
        half.close()
    _serving(env, m, mnt, e)


def test_control_socket_refuses_other_users(env):
    m, mnt, img, sock, e = _control_mount(env)
    # as the daemon leaves it: 0600, so nobody cannot even connect
    def connect_as_nobody():
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(sock)
            s.sendall(frame(b"status", b"json"))
            s.shutdown(socket.SHUT_WR)
            return recv_reply(s)
        finally:
            s.close()
    assert as_user(connect_as_nobody, NOBODY) == ("err", "EACCES")
    # with the file opened up, the SO_PEERCRED check itself must refuse every verb
    os.chmod(sock, 0o666)

    def verbs_as_nobody():
        out = {}
        for name, payload in [("status", frame(b"status", b"json")),
                              ("attach", port_frame(b"attach", img.encode(), b"/evil")),
                              ("detach", port_frame(b"detach", b"/")),
                              ("trace", frame(b"trace")),
                              ("stream", frame(b"stream", b"trace", b"watch", b"")),
                              ("garbage", struct.pack("<I", 3) + b"ab\0"),
                              ("too large", struct.pack("<I", 1 << 30))]:
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(sock)
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                out[name] = recv_reply(s)
            finally:
                s.close()
        return out
    res = as_user(verbs_as_nobody, NOBODY)
    assert res[0] == "ok", res
    for name, reply in res[1].items():
        assert reply[0] == b"err" and int(reply[1]) == errno.EACCES, (name, reply)
        assert b"permission denied" in reply[2], (name, reply)
    # through the CLI too, with the same runtime directory
    r = env.veneer("attach", mnt, img, "/evil", user=NOBODY, env=e)
    assert r.returncode != 0 and "permission denied" in r.stderr.lower(), r.stderr
    st = _serving(env, m, mnt, e)
    assert st["layers"] == []
    assert not os.path.exists(os.path.join(mnt, "evil"))
    # root still may
    r = env.veneer("attach", mnt, img, "/good", env=e)
    assert r.returncode == 0, r.stderr
