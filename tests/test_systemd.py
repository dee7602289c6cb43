"""The template unit for persistent mounts (systemd/veneer@.service.in).
systemd is not PID 1 here: the unit passes `systemd-analyze verify`, and
its ExecStart and ExecStop lines run directly, expanded as systemd would
(specifiers, the EnvironmentFile, $VAR split at whitespace)."""
import configparser
import json
import os
import shlex
import signal
import subprocess
import time

import pytest

from conftest import BUILD, TOP, VENEER, mounted_fstype, pack, rd, wfile

TEMPLATE = os.path.join(TOP, "systemd", "veneer@.service.in")


def unit_text():
    with open(TEMPLATE) as f:
        return f.read().replace("@bindir@", os.path.dirname(VENEER))


def service(text):
    p = configparser.ConfigParser(strict=False, interpolation=None)
    p.optionxform = str
    p.read_string(text)
    return p


def escape_path(path):
    return subprocess.run(["systemd-escape", "--path", path], capture_output=True, text=True,
                          check=True).stdout.strip()


def env_file(path):
    """KEY=VALUE lines, as systemd reads an EnvironmentFile (no quotes used here)."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                k, v = line.split("=", 1)
                out[k] = v
    return out


def expand(cmdline, instance, env):
    """A unit's command line as systemd runs it."""
    unescaped = "/" + subprocess.run(["systemd-escape", "--unescape", "--path", instance],
                                     capture_output=True, text=True,
                                     check=True).stdout.strip().lstrip("/")
    words = []
    for w in shlex.split(cmdline.replace("%f", unescaped).replace("%i", instance)):
        if w.startswith("$") and not w.startswith("${"):
            words += env.get(w[1:], "").split()
        else:
            words.append(w)
    return words


class Unit:
    """An instance of the unit whose /etc/veneer/INSTANCE.conf is CONF."""

    def __init__(self, env, mountpoint, conf):
        self.env = env
        self.mnt = mountpoint
        self.instance = escape_path(mountpoint)
        self.svc = service(unit_text())["Service"]
        assert self.svc["EnvironmentFile"] == "/etc/veneer/%i.conf"
        path = env.path(self.instance + ".conf")
        wfile(path, conf.encode())
        self.vars = env_file(path)
        self.asan = env.path("sanitizer")
        # what systemd gives a service: a fixed PATH, nothing of ours
        self.environ = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "ASAN_OPTIONS": f"log_path={self.asan}:detect_leaks=1",
                        "UBSAN_OPTIONS": f"log_path={self.asan}:print_stacktrace=1",
                        "LSAN_OPTIONS": "suppressions=" + os.path.join(TOP, "tests", "lsan.supp")}
        self.environ.update(self.vars)

    def run(self, key):
        return subprocess.run(expand(self.svc[key], self.instance, self.vars),
                              capture_output=True, text=True, timeout=60, env=self.environ)

    def daemon_pid(self):
        """The daemon: the `veneer mount` process of this mount point whose
        parent is not one (its child is the unmount watcher)."""
        st = json.loads(subprocess.run([VENEER, "status", "--json", self.mnt],
                                       capture_output=True, text=True, check=True).stdout)
        assert st["mountpoint"] == self.mnt
        found = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().decode(errors="replace").split("\0")[:-1]
                with open(f"/proc/{pid}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if argv[:2] == [VENEER, "mount"] and argv[-1] == self.mnt:
                found[int(pid)] = ppid
        main = [pid for pid, ppid in found.items() if ppid not in found]
        assert len(main) == 1, found
        return main[0]

    def cleanup(self):
        if mounted_fstype(self.mnt) == "fuse.veneer":
            subprocess.run([VENEER, "umount", "-l", self.mnt], capture_output=True, timeout=30)

    def sanitizer_reports(self):
        d, base = os.path.dirname(self.asan), os.path.basename(self.asan)
        return [n for n in os.listdir(d) if n.startswith(base + ".")]


def gone(pid, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        time.sleep(0.05)
    return False


def test_unit_verifies(env):
    """systemd-analyze verify, on an instance of the unit pointing at this build."""
    d = env.mkdir("units")
    wfile(os.path.join(d, "veneer@.service"), unit_text().encode())
    os.symlink("veneer@.service", os.path.join(d, "veneer@srv-data.service"))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no",
                        os.path.join(d, "veneer@srv-data.service")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    unit = service(unit_text())
    assert unit["Unit"]["RequiresMountsFor"] == "%f"
    assert unit["Service"]["Type"] == "forking"


def test_start_and_stop_separate(env):
    """LOWER, layers, a filter and options from the config file."""
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    wfile(os.path.join(lower, "hello"), b"real\n")
    img = pack(env, {"tool": b"from the layer\n"})
    flt = os.path.join(BUILD, "tests", "complete_filter.so")
    u = Unit(env, mnt, f"# a comment\nLOWER={lower}\n"
                       f"OPTIONS=--cache=never --layer={img}:/opt --filter={flt}\n")
    try:
        r = u.run("ExecStart")
        assert r.returncode == 0, r.stderr
        assert mounted_fstype(mnt) == "fuse.veneer"
        assert rd(os.path.join(mnt, "hello")) == b"real\n"
        assert rd(os.path.join(mnt, "opt", "tool")) == b"from the layer\n"
        assert os.getxattr(os.path.join(mnt, "hello"), "user.vn.complete") == \
            b"completed-by-filter"
        st = json.loads(env.veneer("status", "--json", mnt, check=True).stdout)
        assert st["cache"]["entry_timeout_s"] == 0
        pid = u.daemon_pid()

        # a busy mount: the stop is refused and names the holder
        holder = subprocess.Popen(["sleep", "60"], cwd=mnt)
        try:
            r = u.run("ExecStop")
            assert r.returncode == 1
            assert "busy" in r.stderr and f"{holder.pid} (sleep)" in r.stderr, r.stderr
            assert mounted_fstype(mnt) == "fuse.veneer"
        finally:
            holder.kill()
            holder.wait()
        r = u.run("ExecStop")
        assert r.returncode == 0, r.stderr
        assert mounted_fstype(mnt) is None
        assert gone(pid), "daemon still running after ExecStop"
    finally:
        u.cleanup()
    assert not u.sanitizer_reports(), "sanitizer reported (see " + u.asan + ".*)"


def test_in_place_and_sigterm(env):
    """No LOWER: in place.  When ExecStop fails on a busy mount, systemd
    sends SIGTERM, and the daemon detaches the mount lazily."""
    d = env.mkdir("data")
    wfile(os.path.join(d, "kept"), b"kept\n")
    u = Unit(env, d, "OPTIONS=\n")
    try:
        r = u.run("ExecStart")
        assert r.returncode == 0, r.stderr
        assert mounted_fstype(d) == "fuse.veneer"
        assert rd(os.path.join(d, "kept")) == b"kept\n"
        pid = u.daemon_pid()
        holder = subprocess.Popen(["sleep", "60"], cwd=d)
        try:
            assert u.run("ExecStop").returncode == 1
            os.kill(pid, signal.SIGTERM)
            assert gone(pid), "daemon ignored SIGTERM"
            assert mounted_fstype(d) is None
        finally:
            holder.kill()
            holder.wait()
    finally:
        u.cleanup()
    assert rd(os.path.join(d, "kept")) == b"kept\n"
    assert not u.sanitizer_reports(), "sanitizer reported (see " + u.asan + ".*)"


def test_config_file_is_required():
    """systemd refuses to start without the EnvironmentFile (not optional: no '-')."""
    assert not service(unit_text())["Service"]["EnvironmentFile"].startswith("-")
