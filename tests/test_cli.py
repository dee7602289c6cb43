"""The veneer command line: errors, background mode, umount, in-place mounts,
signals, the mount.fuse3 helper form and recovery from a dead daemon."""
import errno
import os
import signal
import subprocess
import time

import pytest

from conftest import NOBODY, TOP, VENEER, become, mounted_fstype, rd, wfile


def mounts_at(path):
    """How many mounts are stacked exactly at PATH."""
    path = os.path.realpath(path)
    n = 0
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4].encode().decode("unicode_escape") == path:
                n += 1
    return n


def super_options(path):
    path = os.path.realpath(path)
    opts = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[4] == path:
                sep = parts.index("-")
                opts = set(parts[3].split(",")) | set(parts[sep + 3].split(","))
    return opts


def processes_mentioning(text, exclude=()):
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid() or int(d) in exclude:
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if text.encode() in cmd:
            pids.append(int(d))
    return pids


def wait_until(pred, limit=15.0):
    """Polls PRED until it holds or LIMIT seconds pass; returns its last value."""
    deadline = time.monotonic() + limit
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


class Cli:
    """Runs veneer (and mount helpers) for one test; its teardown removes any
    mount or daemon the test left behind, and collects sanitizer reports of
    daemons started in the background."""

    def __init__(self, env):
        self.env = env
        self.prefix = env.path("bg-sanitizer")
        self.envvars = {
            "ASAN_OPTIONS": f"log_path={self.prefix}:detect_leaks=1:abort_on_error=0",
            "UBSAN_OPTIONS": f"log_path={self.prefix}:print_stacktrace=1:halt_on_error=0",
            "LSAN_OPTIONS": "suppressions=" + os.path.join(TOP, "tests", "lsan.supp"),
        }

    def run(self, *args, user=None, timeout=30, cwd=None):
        preexec = become(user) if user is not None else None
        e = dict(os.environ)
        e.update(self.envvars)
        try:
            return subprocess.run([VENEER] + [str(a) for a in args], capture_output=True,
                                  text=True, timeout=timeout, preexec_fn=preexec, env=e,
                                  cwd=cwd)
        except subprocess.TimeoutExpired:
            pytest.fail(f"veneer {' '.join(map(str, args))} did not return within {timeout}s "
                        "(a background daemon must not keep the caller's stdout/stderr open)")

    def own_pids(self):
        """The -f daemons of env.mount() and all their descendants."""
        own = {m.pid() for m in self.env.mounts if m.pid()}
        parent = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    pass
        changed = True
        while changed:
            changed = False
            for pid, pp in parent.items():
                if pp in own and pid not in own:
                    own.add(pid)
                    changed = True
        return own

    def daemons(self):
        return processes_mentioning(self.env.tmp, exclude=self.own_pids())

    def cleanup(self):
        own = {os.path.realpath(m.mnt) for m in self.env.mounts if m.proc is not None}
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        for p in reversed(points):
            if p.startswith(os.path.realpath(self.env.tmp)) and p not in own:
                subprocess.run(["umount", "-l", p], capture_output=True)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self.daemons()
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            if pids:
                wait_until(lambda: not self.daemons(), 10)

    def sanitizer_reports(self):
        d, base = os.path.dirname(self.prefix), os.path.basename(self.prefix)
        out = []
        for n in sorted(os.listdir(d)):
            if n.startswith(base + "."):
                with open(os.path.join(d, n), errors="replace") as f:
                    out.append(f.read())
        return out


@pytest.fixture
def cli(env):
    c = Cli(env)
    try:
        yield c
    finally:
        c.cleanup()
    reports = c.sanitizer_reports()
    assert not reports, "sanitizer reported (background daemon):\n" + "\n".join(reports)[:20000]


def assert_error(r, *names, first=True):
    """Non-zero exit, a first stderr line starting with 'veneer: ' that names
    each of NAMES.  With first=False the 'veneer: ' line may follow lines
    printed by a helper (fusermount3)."""
    assert r.returncode != 0, f"expected failure, got 0 (stdout {r.stdout!r})"
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines, "no error message on stderr"
    if not first:
        lines = [line for line in lines if line.startswith("veneer: ")] or lines
    assert lines[0].startswith("veneer: "), f"error does not start with 'veneer: ': {r.stderr!r}"
    for n in names:
        assert n in lines[0], f"error does not name {n!r}: {lines[0]!r}"


@pytest.fixture
def dirs(env):
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    wfile(os.path.join(lower, "hello"), b"hello from the real tree\n")
    os.mkdir(os.path.join(lower, "sub"))
    wfile(os.path.join(lower, "sub", "deep"), b"deep\n")
    return lower, mnt


# ------------------------------------------------------------ info

def test_version(cli):
    r = cli.run("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "veneer 0.2.0"


def test_help(cli):
    r = cli.run("--help")
    assert r.returncode == 0, r.stderr
    for word in ["mount", "umount", "--version"]:
        assert word in r.stdout, f"--help does not mention {word}"
    r = cli.run("mount", "--help")
    assert r.returncode == 0, r.stderr
    for word in ["--cache", "--threads", "--filter", "-f", "-o", "allow_other"]:
        assert word in r.stdout, f"mount --help does not mention {word}"


def test_no_arguments(cli):
    r = cli.run()
    assert r.returncode != 0
    assert r.stderr.strip(), "no usage hint on stderr"


# ------------------------------------------------------------ errors

@pytest.mark.parametrize("foreground", [False, True], ids=["background", "foreground"])
def test_missing_lower(cli, env, dirs, foreground):
    lower, mnt = dirs
    missing = env.path("no-such-lower")
    r = cli.run("mount", *(["-f"] if foreground else []), missing, mnt, timeout=20)
    assert_error(r, missing)
    assert mounted_fstype(mnt) is None


def test_missing_lower_in_place(cli, env):
    missing = env.path("no-such-dir")
    r = cli.run("mount", missing)
    assert_error(r, missing)


def test_lower_not_a_directory(cli, env, dirs):
    lower, mnt = dirs
    f = os.path.join(lower, "hello")
    r = cli.run("mount", f, mnt)
    assert_error(r, f)
    assert mounted_fstype(mnt) is None


def test_missing_mountpoint(cli, env, dirs):
    lower, mnt = dirs
    missing = env.path("no-such-mnt")
    r = cli.run("mount", lower, missing)
    assert_error(r, missing)
    assert not os.path.exists(missing)


def test_mountpoint_not_a_directory(cli, env, dirs):
    lower, mnt = dirs
    f = env.path("a-file")
    wfile(f, b"x")
    r = cli.run("mount", lower, f)
    assert_error(r, f)
    assert mounted_fstype(f) is None


@pytest.mark.parametrize("foreground", [False, True], ids=["background", "foreground"])
def test_already_mounted(cli, env, dirs, foreground):
    lower, mnt = dirs
    env.mount(lower, mnt)
    other = env.mkdir("other")
    r = cli.run("mount", *(["-f"] if foreground else []), other, mnt, timeout=20)
    assert_error(r, mnt)
    assert mounts_at(mnt) == 1, "a second mount was stacked on the first"
    assert rd(os.path.join(mnt, "hello")) == b"hello from the real tree\n"
    assert not cli.daemons(), "the refused mount left a process behind"


def test_already_mounted_in_place(cli, env, dirs):
    lower, mnt = dirs
    env.mount(lower)
    r = cli.run("mount", lower)
    assert_error(r, lower)
    assert mounts_at(lower) == 1
    assert rd(os.path.join(lower, "hello")) == b"hello from the real tree\n"


@pytest.mark.parametrize("args,named", [
    (["--bogus"], "--bogus"),
    (["--cache=sometimes"], "sometimes"),
    (["--cache"], "cache"),
    (["--threads", "many"], "many"),
    (["-o", "no_such_option_xyz"], "no_such_option_xyz"),
    (["-q"], "-q"),
])
def test_bad_option(cli, dirs, args, named):
    lower, mnt = dirs
    r = cli.run("mount", *args, lower, mnt, timeout=20)
    assert_error(r, named)
    assert mounted_fstype(mnt) is None
    assert wait_until(lambda: not cli.daemons(), 5), "the refused mount left a process behind"


def test_mount_without_lower(cli):
    r = cli.run("mount")
    assert_error(r)


def test_too_many_arguments(cli, env, dirs):
    lower, mnt = dirs
    r = cli.run("mount", lower, mnt, env.mkdir("third"))
    assert_error(r)
    assert mounted_fstype(mnt) is None


def test_not_permitted(cli, env, dirs):
    """An ordinary user may not mount over a directory it cannot write."""
    lower, mnt = dirs
    r = cli.run("mount", lower, mnt, user=NOBODY, timeout=20)
    assert_error(r, first=False)
    assert mounted_fstype(mnt) is None


def test_umount_not_mounted(cli, dirs):
    lower, mnt = dirs
    r = cli.run("umount", mnt)
    assert_error(r, mnt)


def test_umount_missing(cli, env):
    missing = env.path("nothing-here")
    r = cli.run("umount", missing)
    assert_error(r, missing)


def test_umount_other_filesystem(cli, env):
    """veneer umount refuses a mount that is not veneer's."""
    d = env.mkdir("tmpfs")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", d], check=True)
    try:
        r = cli.run("umount", d)
        assert_error(r, d)
        assert mounted_fstype(d) == "tmpfs"
    finally:
        subprocess.run(["umount", "-l", d])


# ------------------------------------------------------------ background mode

def test_background_mount(cli, env, dirs):
    lower, mnt = dirs
    r = cli.run("mount", lower, mnt)
    assert r.returncode == 0, r.stderr
    # usable the moment the command returns: no waiting
    assert mounted_fstype(mnt) == "fuse.veneer"
    assert os.stat(os.path.join(mnt, "hello")).st_size == 25
    assert rd(os.path.join(mnt, "sub", "deep")) == b"deep\n"
    wfile(os.path.join(mnt, "new"), b"through the mount")
    assert rd(os.path.join(lower, "new")) == b"through the mount"
    pids = cli.daemons()
    assert pids, "no background daemon found"
    r = cli.run("umount", mnt)
    assert r.returncode == 0, r.stderr
    assert mounted_fstype(mnt) is None
    assert os.listdir(mnt) == []
    assert wait_until(lambda: not cli.daemons()), f"daemon still running after umount: {pids}"


def test_background_mount_relative_paths(cli, env, dirs):
    r = cli.run("mount", "lower", "mnt", cwd=env.tmp)
    assert r.returncode == 0, r.stderr
    mnt = env.path("mnt")
    assert mounted_fstype(mnt) == "fuse.veneer"
    assert rd(os.path.join(mnt, "hello")) == b"hello from the real tree\n"
    r = cli.run("umount", "mnt", cwd=env.tmp)
    assert r.returncode == 0, r.stderr
    assert mounted_fstype(mnt) is None


def test_background_in_place(cli, env, dirs):
    lower, _ = dirs
    r = cli.run("mount", lower)
    assert r.returncode == 0, r.stderr
    assert mounted_fstype(lower) == "fuse.veneer"
    assert rd(os.path.join(lower, "hello")) == b"hello from the real tree\n"
    wfile(os.path.join(lower, "sub", "written"), b"in place")
    r = cli.run("umount", lower)
    assert r.returncode == 0, r.stderr
    assert mounted_fstype(lower) is None
    assert rd(os.path.join(lower, "sub", "written")) == b"in place"
    assert wait_until(lambda: not cli.daemons())


def test_umount_busy_and_lazy(cli, env, dirs):
    lower, mnt = dirs
    r = cli.run("mount", lower, mnt)
    assert r.returncode == 0, r.stderr
    fd = os.open(os.path.join(mnt, "hello"), os.O_RDONLY)
    try:
        r = cli.run("umount", mnt)
        assert_error(r)
        assert mounted_fstype(mnt) == "fuse.veneer", "plain umount must not be lazy"
        r = cli.run("umount", "-l", mnt)
        assert r.returncode == 0, r.stderr
        assert mounted_fstype(mnt) is None
        # the detached mount keeps serving the open file
        assert os.pread(fd, 5, 0) == b"hello"
    finally:
        os.close(fd)
    assert wait_until(lambda: not cli.daemons()), "daemon did not exit after the last close"


@pytest.mark.parametrize("cache", ["auto", "always", "never"])
def test_cache_modes(cli, env, dirs, cache):
    lower, mnt = dirs
    env.mount(lower, mnt, args=[f"--cache={cache}", "--threads", "2"])
    assert rd(os.path.join(mnt, "hello")) == b"hello from the real tree\n"
    wfile(os.path.join(mnt, "c"), cache.encode())
    assert rd(os.path.join(mnt, "c")) == cache.encode()
    assert rd(os.path.join(lower, "c")) == cache.encode()


def test_allow_other_implies_default_permissions(cli, env, dirs):
    lower, mnt = dirs
    env.mount(lower, mnt, args=["-o", "allow_other"])
    opts = super_options(mnt)
    assert "allow_other" in opts and "default_permissions" in opts, opts


def test_in_place_root_defaults(cli, env, dirs):
    lower, _ = dirs
    env.mount(lower)
    opts = super_options(lower)
    assert "allow_other" in opts and "default_permissions" in opts, opts


# ------------------------------------------------------------ in place

def test_in_place_mount(env, dirs):
    lower, _ = dirs
    before = sorted(os.listdir(lower))
    m = env.mount(lower)
    assert mounted_fstype(lower) == "fuse.veneer"
    assert sorted(os.listdir(lower)) == before
    assert rd(os.path.join(lower, "hello")) == b"hello from the real tree\n"
    with open(os.path.join(lower, "hello"), "ab") as f:
        f.write(b"appended through veneer\n")
    wfile(os.path.join(lower, "sub", "new"), b"new file")
    os.mkdir(os.path.join(lower, "newdir"))
    os.rename(os.path.join(lower, "sub", "deep"), os.path.join(lower, "newdir", "deep"))
    assert m.stop() == 0
    assert mounted_fstype(lower) is None
    assert rd(os.path.join(lower, "hello")) == \
        b"hello from the real tree\nappended through veneer\n"
    assert rd(os.path.join(lower, "sub", "new")) == b"new file"
    assert rd(os.path.join(lower, "newdir", "deep")) == b"deep\n"
    assert not os.path.exists(os.path.join(lower, "sub", "deep"))


# ------------------------------------------------------------ signals

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_unmounts(env, dirs, sig):
    lower, mnt = dirs
    m = env.mount(lower, mnt)
    assert rd(os.path.join(mnt, "hello"))
    m.proc.send_signal(sig)
    try:
        rc = m.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"daemon ignored {sig!r}")
    assert rc == 0, f"exit code {rc}: {m.log()}"
    assert mounted_fstype(mnt) is None
    assert os.listdir(mnt) == []


def test_sigterm_in_place_with_open_file(env, dirs):
    lower, _ = dirs
    m = env.mount(lower)
    fd = os.open(os.path.join(lower, "hello"), os.O_RDONLY)
    try:
        m.proc.send_signal(signal.SIGTERM)
        try:
            rc = m.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("daemon did not exit on SIGTERM while a file was open")
        assert rc == 0, m.log()
    finally:
        # with skipped opens the first close(2) still sends FLUSH, which the
        # gone daemon cannot answer (documented in docs/semantics.md)
        try:
            os.close(fd)
        except OSError as e:
            assert e.errno == errno.ENOTCONN
    assert mounted_fstype(lower) is None
    assert rd(os.path.join(lower, "hello")) == b"hello from the real tree\n"


# ------------------------------------------------------------ dead daemon

def test_dead_daemon_does_not_hide_directory(env, dirs):
    lower, _ = dirs
    m = env.mount(lower)
    os.kill(m.pid(), signal.SIGKILL)
    m.proc.wait()
    gone = wait_until(lambda: mounted_fstype(lower) is None, 15)
    assert gone, ("the mount of a killed daemon stayed for 15 s (no auto_unmount or watcher?); "
                  f"processes left: {processes_mentioning(env.tmp)}; daemon log: {m.log()}")
    assert rd(os.path.join(lower, "hello")) == b"hello from the real tree\n"


@pytest.mark.parametrize("in_place", [True, False], ids=["inplace", "separate"])
def test_remount_after_kill(cli, env, dirs, in_place):
    lower, mnt = dirs
    target = lower if in_place else mnt
    m = env.mount(lower, None if in_place else mnt)
    os.kill(m.pid(), signal.SIGKILL)
    m.proc.wait()
    # no waiting: the next mount must cope with whatever is left
    r = cli.run("mount", *([lower] if in_place else [lower, mnt]))
    assert r.returncode == 0, r.stderr
    assert mounted_fstype(target) == "fuse.veneer"
    assert mounts_at(target) == 1, "stale mount left underneath the new one"
    assert rd(os.path.join(target, "hello")) == b"hello from the real tree\n"
    r = cli.run("umount", target)
    assert r.returncode == 0, r.stderr
    assert mounted_fstype(target) is None
    assert mounts_at(target) == 0
    # the real directory is visible again
    assert rd(os.path.join(lower, "hello")) == b"hello from the real tree\n"


# ------------------------------------------------------------ mount(8) helper

def helper_env(env, cli):
    bindir = env.mkdir("bin")
    link = os.path.join(bindir, "veneer")
    if not os.path.islink(link):
        os.symlink(VENEER, link)
    e = dict(os.environ)
    e.update(cli.envvars)
    e["PATH"] = bindir + ":" + e.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    return e


def need_helper():
    if not (os.path.exists("/sbin/mount.fuse3") or os.path.exists("/usr/sbin/mount.fuse3")):
        pytest.skip("mount.fuse3 is not installed")


def run_helper(cmd, e):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{cmd} did not return (daemon kept the helper's output open?)")


NAMESPACE_SCRIPT = r"""
set -e
# mount(8) runs helpers without PATH, so /bin/sh finds 'veneer' only in the
# default PATH: put it there, in this private mount namespace only.
mount --bind "$BIN" /usr/local/bin
"$@"
echo "fstype=$(findmnt -n -o FSTYPE --mountpoint "$M")"
echo "options=$(findmnt -n -o OPTIONS --mountpoint "$M")"
echo "hello=$(cat "$M/hello")"
echo "deep=$(cat "$M/sub/deep")"
echo helper > "$M/via-helper"
umount "$M"
echo "after=$(findmnt -n -o FSTYPE --mountpoint "$M" || true)"
"""


def run_in_namespace(env, cli, mnt, *cmd):
    """Runs CMD (a mount(8) command line) and checks of its result in a
    private mount namespace; returns the script's key=value lines."""
    e = helper_env(env, cli)
    e["BIN"] = env.path("bin")
    e["M"] = mnt
    try:
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            NAMESPACE_SCRIPT, "sh", *cmd], capture_output=True, text=True,
                           env=e, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{cmd} did not return (daemon kept the helper's output open?)")
    assert r.returncode == 0, f"{cmd} failed:\n{r.stdout}{r.stderr}"
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


def test_mount_t_fuse_veneer(cli, env, dirs):
    need_helper()
    lower, mnt = dirs
    out = run_in_namespace(env, cli, mnt, "mount", "-t", "fuse.veneer", lower, mnt)
    assert out["fstype"] == "fuse.veneer"
    assert out["hello"] == "hello from the real tree"
    assert out["deep"] == "deep"
    assert out["after"] == ""
    assert rd(os.path.join(lower, "via-helper")) == b"helper\n"
    assert wait_until(lambda: not cli.daemons()), "daemon still running after umount"


def test_mount_fuse3_helper_with_options(cli, env, dirs):
    need_helper()
    lower, mnt = dirs
    helper = "/sbin/mount.fuse3" if os.path.exists("/sbin/mount.fuse3") else "/usr/sbin/mount.fuse3"
    r = run_helper([helper, lower, mnt, "-t", "fuse.veneer", "-o", "ro,cache=never"],
                   helper_env(env, cli))
    assert r.returncode == 0, r.stderr
    assert mounted_fstype(mnt) == "fuse.veneer"
    assert rd(os.path.join(mnt, "hello")) == b"hello from the real tree\n"
    assert os.statvfs(mnt).f_flag & os.ST_RDONLY
    with pytest.raises(OSError):
        wfile(os.path.join(mnt, "nope"), b"x")
    r = cli.run("umount", mnt)
    assert r.returncode == 0, r.stderr


def test_fstab_line(cli, env, dirs):
    need_helper()
    lower, mnt = dirs
    fstab = env.path("fstab")
    with open(fstab, "w") as f:
        f.write(f"{lower} {mnt} fuse.veneer defaults,allow_other 0 0\n")
    out = run_in_namespace(env, cli, mnt, "mount", "--fstab", fstab, mnt)
    assert out["fstype"] == "fuse.veneer"
    assert "allow_other" in out["options"].split(","), out["options"]
    assert out["deep"] == "deep"
    assert out["after"] == ""
    assert rd(os.path.join(lower, "via-helper")) == b"helper\n"
    assert wait_until(lambda: not cli.daemons()), "daemon still running after umount"
