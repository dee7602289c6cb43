"""Shared fixtures for veneer's integration tests.

Every test gets a private directory, a watchdog and a teardown that always
unmounts and kills the daemon, even on failure.  A test that hangs past its
limit gets the daemon's stacks dumped and its FUSE connection aborted, which
turns the hang into a failure instead of blocking the run.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENEER = os.environ.get("VENEER", os.path.join(TOP, "build", "veneer"))
BUILD = os.environ.get("VENEER_BUILD", os.path.dirname(VENEER))
SANITIZER = os.environ.get("VENEER_SANITIZER", "plain")
DEFAULT_TIMEOUT = int(os.environ.get("VENEER_TEST_TIMEOUT", "240"))
NOBODY = 65534
# VENEER_TEST_OPENS=MODE runs every mount that does not choose its own
# --opens with --opens=MODE (scripts/check.sh: the passthrough matrix).
TEST_OPENS = os.environ.get("VENEER_TEST_OPENS") or None
# VENEER_TEST_URING=1 adds --uring to every mount (scripts/check.sh: the
# io_uring matrix); the session switches the host's enable_uring on for it
# and puts the old value back.
TEST_URING = os.environ.get("VENEER_TEST_URING") == "1"
URING_PARAM = "/sys/module/fuse/parameters/enable_uring"


@pytest.fixture(scope="session", autouse=True)
def uring_matrix():
    if not TEST_URING:
        yield
        return
    if not os.path.exists(URING_PARAM):
        pytest.skip("VENEER_TEST_URING: this kernel has no FUSE over io_uring")
    with open(URING_PARAM) as f:
        old = f.read().strip()
    with open(URING_PARAM, "w") as f:
        f.write("1")
    try:
        yield
    finally:
        with open(URING_PARAM, "w") as f:
            f.write(old)


def opens_skipped(in_place):
    """Whether a mount made without --opens skips opens: in place as root,
    unless VENEER_TEST_OPENS chose another mode."""
    return in_place and TEST_OPENS in (None, "skip")


def pytest_configure(config):
    config.addinivalue_line("markers", "stress: concurrency stress tests (also run under TSan)")
    config.addinivalue_line("markers", "timeout(seconds): per-test watchdog limit")


def become(uid, gid=None):
    """A preexec_fn that drops a child process to UID (and GID, default UID), no groups."""
    gid = uid if gid is None else gid

    def preexec():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    return preexec


def wfile(path, data=b"", mode=None, owner=None):
    with open(path, "wb") as f:
        f.write(data)
    if owner is not None:
        os.chown(path, *owner)
    if mode is not None:
        os.chmod(path, mode)


def rd(path):
    with open(path, "rb") as f:
        return f.read()


def errno_of(fn):
    """The errno fn() fails with, or 0."""
    try:
        fn()
    except OSError as e:
        return e.errno
    return 0


def mksquashfs(src, img, comp="gzip", extra=()):
    """Packs directory SRC into the squashfs image IMG; returns IMG."""
    r = subprocess.run(["mksquashfs", src, img, "-noappend", "-comp", comp, "-quiet",
                        "-no-progress"] + list(extra), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return img


def pack(env, tree, name="img.sqfs", comp="gzip"):
    """Builds the image NAME in the test's directory from TREE
    ({relpath: bytes, or None for a directory}); returns its path."""
    src = env.path(name + ".src")
    os.makedirs(src, exist_ok=True)
    for rel, data in tree.items():
        p = os.path.join(src, rel)
        if data is None:
            os.makedirs(p, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(p), exist_ok=True)
            wfile(p, data)
    return mksquashfs(src, env.path(name), comp)


def snapshot(root):
    """Every path under ROOT with its type, mode, and size and content (files)
    or target (symlinks): to show that a tree did not change."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = ("l", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("d", st.st_mode & 0o7777)
            else:
                out[rel] = ("f", st.st_mode & 0o7777, st.st_size, rd(p))
    return out


def require_fuse():
    if os.path.exists("/dev/fuse"):
        return
    if os.environ.get("CI") == "true":
        pytest.fail("/dev/fuse is missing under CI")
    pytest.skip("/dev/fuse is missing")


def mounted_fstype(path):
    """fstype of the mount whose mount point is exactly PATH, or None."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        found = None
        for line in f:
            parts = line.split()
            mp = parts[4].encode().decode("unicode_escape")
            if mp == path:
                sep = parts.index("-")
                found = parts[sep + 1]
        return found


def fuse_connections_dir():
    """/sys/fs/fuse/connections, with the fusectl filesystem mounted there:
    some machines do not mount it, and without it a hung daemon cannot be
    aborted and the test would block instead of failing."""
    d = "/sys/fs/fuse/connections"
    if os.geteuid() == 0 and os.path.isdir(d) and not os.path.ismount(d):
        subprocess.run(["mount", "-t", "fusectl", "fusectl", d], capture_output=True)
    return d


def fuse_connection_abort(path):
    """Aborts the FUSE connection of the mount at PATH (unblocks hung callers).
    PATH is made absolute without a system call: resolving it would stat
    the mount itself, and block on the daemon this is to cut off."""
    path = os.path.normpath(os.path.abspath(path))
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[4] == path and parts[parts.index("-") + 1].startswith("fuse"):
                minor = parts[2].split(":")[1]
                try:
                    with open(f"{fuse_connections_dir()}/{minor}/abort", "w") as a:
                        a.write("1")
                except OSError:
                    pass


def dump_stacks(pid):
    try:
        out = subprocess.run(
            ["gdb", "-p", str(pid), "-batch", "-nx", "-ex", "thread apply all bt"],
            capture_output=True, text=True, timeout=60)
        return out.stdout[-20000:]
    except Exception as e:  # noqa: BLE001 - diagnostics only
        return f"(no stack dump: {e})"


class Mount:
    """One veneer daemon, run in the foreground (-f) as a child of the test."""

    def __init__(self, workdir, lower, mnt=None, args=(), user=None, env=None, nofile=None):
        self.nofile = nofile
        self.workdir = workdir
        self.lower = lower
        self.mnt = mnt or lower
        self.args = list(args)
        self.user = user
        self.proc = None
        self.asan_prefix = os.path.join(workdir, "sanitizer")
        self.log_path = os.path.join(workdir, f"daemon-{id(self)}.log")
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.env["ASAN_OPTIONS"] = f"log_path={self.asan_prefix}:detect_leaks=1:abort_on_error=0"
        self.env["UBSAN_OPTIONS"] = f"log_path={self.asan_prefix}:print_stacktrace=1:halt_on_error=0"
        self.env["TSAN_OPTIONS"] = f"log_path={self.asan_prefix}:halt_on_error=0:second_deadlock_stack=1"
        self.env["LSAN_OPTIONS"] = "suppressions=" + os.path.join(TOP, "tests", "lsan.supp")

    def command(self):
        args = self.args
        if TEST_OPENS and not any("opens=" in str(a) for a in args):
            args = ["--opens=" + TEST_OPENS] + args
        if TEST_URING and "--uring" not in args:
            args = ["--uring"] + list(args)
        cmd = [VENEER, "mount", "-f"] + args + [self.lower]
        if self.mnt != self.lower:
            cmd.append(self.mnt)
        return cmd

    def start(self, timeout=20):
        uid, nofile = self.user, self.nofile

        def preexec():
            if nofile is not None:
                import resource
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            if uid is not None:
                become(uid)()
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                     env=self.env, preexec_fn=preexec)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if mounted_fstype(self.mnt) == "fuse.veneer":
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"veneer exited with {self.proc.returncode}: {self.log()}")
            time.sleep(0.02)
        raise AssertionError(f"mount did not appear within {timeout}s: {self.log()}")

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()[-8000:]
        except OSError:
            return ""

    def pid(self):
        return self.proc.pid if self.proc else None

    def stop(self):
        """Unmounts and waits for the daemon; returns its exit code."""
        if self.proc is None:
            return None
        if mounted_fstype(self.mnt) == "fuse.veneer":
            subprocess.run(["umount", self.mnt], capture_output=True)
            if mounted_fstype(self.mnt) == "fuse.veneer":
                subprocess.run(["fusermount3", "-uz", self.mnt], capture_output=True)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        if mounted_fstype(self.mnt) is not None and mounted_fstype(self.mnt).startswith("fuse"):
            subprocess.run(["fusermount3", "-uz", self.mnt], capture_output=True)
            subprocess.run(["umount", "-l", self.mnt], capture_output=True)

    def sanitizer_reports(self):
        d = os.path.dirname(self.asan_prefix)
        base = os.path.basename(self.asan_prefix)
        reports = []
        for name in sorted(os.listdir(d)):
            if name.startswith(base + "."):
                with open(os.path.join(d, name), errors="replace") as f:
                    reports.append(f.read())
        return reports


class Env:
    """Per-test workspace: a private directory and the mounts made in it."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.mounts = []

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def mkdir(self, *parts, mode=0o755):
        p = self.path(*parts)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode)
        return p

    def mount(self, lower, mnt=None, args=(), user=None, env=None, start=True, nofile=None):
        m = Mount(self.tmp, lower, mnt, args, user, env, nofile)
        self.mounts.append(m)
        if start:
            m.start()
        return m

    def veneer(self, *args, user=None, check=False, timeout=60, env=None):
        preexec = become(user) if user is not None else None
        e = dict(os.environ)
        e.update(env or {})
        e.setdefault("ASAN_OPTIONS", "detect_leaks=0")
        r = subprocess.run([VENEER] + list(args), capture_output=True, text=True,
                           timeout=timeout, preexec_fn=preexec, env=e)
        if check:
            assert r.returncode == 0, f"veneer {args} failed: {r.stderr}"
        return r


def installed_pkg_config(env, package, *flags):
    """`pkg-config FLAGS PACKAGE` against this build installed into the test's
    directory (meson install --destdir): what building against the installed
    package alone gives."""
    dest = env.path("dest")
    if not os.path.isdir(dest):
        subprocess.run(["meson", "install", "-C", BUILD, "--destdir", dest, "--no-rebuild",
                        "--quiet"], check=True, capture_output=True)
    pcdirs = [os.path.join(r, d) for r, ds, _ in os.walk(dest) for d in ds if d == "pkgconfig"]
    assert pcdirs, "no pkg-config file installed"
    penv = dict(os.environ, PKG_CONFIG_PATH=":".join(pcdirs), PKG_CONFIG_SYSROOT_DIR=dest)
    return subprocess.run(["pkg-config"] + list(flags) + [package], env=penv, check=True,
                          capture_output=True, text=True).stdout.split()


@pytest.fixture
def env(request):
    require_fuse()
    tmp = tempfile.mkdtemp(prefix="veneer-test-")
    os.chmod(tmp, 0o755)
    e = Env(tmp)
    marker = request.node.get_closest_marker("timeout")
    limit = marker.args[0] if marker else DEFAULT_TIMEOUT
    fired = threading.Event()

    def watchdog():
        fired.set()
        sys.stderr.write(f"\n*** test exceeded {limit}s: dumping daemon stacks\n")
        for m in e.mounts:
            if m.pid():
                sys.stderr.write(dump_stacks(m.pid()))
        import faulthandler
        faulthandler.dump_traceback(file=sys.stderr)
        for m in e.mounts:
            fuse_connection_abort(m.mnt)

    timer = threading.Timer(limit, watchdog)
    timer.daemon = True
    timer.start()
    try:
        yield e
    finally:
        timer.cancel()
        reports = []
        for m in reversed(e.mounts):
            m.stop()
            reports += m.sanitizer_reports()
        if reports or fired.is_set():
            sys.stderr.write(f"\n*** kept for inspection: {tmp}\n")
        else:
            subprocess.run(["chmod", "-R", "u+rwX", tmp], capture_output=True)
            shutil.rmtree(tmp, ignore_errors=True)
    assert not fired.is_set(), f"test hung for more than {limit}s (stacks above)"
    assert not reports, "sanitizer reported:\n" + "\n".join(reports)[:20000]
