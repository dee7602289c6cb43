"""The Debian packages (debian/, `make deb`): built once, installed on this
machine with apt-get, used (mount, unmount, the fstab form, the unit, the
completion, a filter and a client program built through pkg-config against
the installed headers and library), then purged, leaving nothing behind."""
import errno
import os
import subprocess

import pytest

from conftest import SANITIZER, TOP, rd, wfile

PACKAGES = ("veneer", "veneer-dev", "libveneer-client0", "libveneer-client-dev")
pytestmark = pytest.mark.timeout(600)


def run(*cmd, timeout=120, **kw):
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, f"{cmd}:\n{r.stdout}{r.stderr}"
    return r.stdout


def installed(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True,
                       text=True)
    return r.returncode == 0 and "installed" in r.stdout.split()[-1:]


def apt_get(*args):
    return run("apt-get", "-o", "DPkg::Lock::Timeout=300", "-y", "-q", *args, timeout=600,
               env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """Builds the packages, installs them, yields their files; purges them after."""
    if SANITIZER != "plain":
        pytest.skip("the packages are built and installed in the plain run only")
    if os.geteuid() != 0:
        pytest.skip("installing packages needs root")
    held = [p for p in PACKAGES if installed(p)]
    if held:
        pytest.skip(f"{', '.join(held)} already installed on this machine: this test "
                    "installs and purges its own build, so it leaves such a machine alone")
    out = str(tmp_path_factory.mktemp("debs"))
    run(os.path.join(TOP, "scripts", "make-deb.sh"), out, timeout=600)
    debs = {p: os.path.join(out, n) for n in os.listdir(out) for p in PACKAGES
            if n.startswith(p + "_") and n.endswith(".deb")}
    assert set(debs) == set(PACKAGES), os.listdir(out)
    own_dirs = [d for d in ["/etc/veneer", "/usr/include/veneer"]
                + [f"/usr/share/doc/{p}" for p in PACKAGES] if not os.path.exists(d)]
    files = {}
    try:
        apt_get("install", "--no-install-recommends", *debs.values())
        files = {p: run("dpkg", "-L", p).split("\n") for p in PACKAGES}
        yield files
    finally:
        apt_get("purge", *PACKAGES)
    assert not any(installed(p) for p in PACKAGES)
    left = [f for fs in files.values() for f in fs
            if f and os.path.lexists(f) and not os.path.isdir(f)]
    assert not left, f"files left after purge: {left}"
    assert not [d for d in own_dirs if os.path.exists(d)], "directories left after purge"


def test_contents(packages):
    assert "/usr/bin/veneer" in packages["veneer"]
    for f in ("/usr/share/man/man1/veneer.1.gz",
              "/usr/share/bash-completion/completions/veneer",
              "/lib/systemd/system/veneer@.service"):
        assert f in packages["veneer"]
    assert "/usr/include/veneer/filter.h" in packages["veneer-dev"]
    assert "/usr/share/pkgconfig/veneer-filter.pc" in packages["veneer-dev"]
    assert run("/usr/bin/veneer", "--version").startswith("veneer ")
    lib = [f for f in packages["libveneer-client0"] if "/libveneer-client.so" in f]
    assert sorted(os.path.basename(f) for f in lib) == ["libveneer-client.so.0",
                                                         "libveneer-client.so.0.2.0"]
    dev = packages["libveneer-client-dev"]
    assert "/usr/include/veneer/client.h" in dev
    assert [os.path.basename(f) for f in dev if f.endswith(".so")] == ["libveneer-client.so"]
    assert [f for f in dev if f.endswith("/pkgconfig/veneer-client.pc")]
    # the library's exports are pinned by its symbols file (dpkg-shlibdeps reads it)
    symbols = run("dpkg-query", "--control-show", "libveneer-client0", "symbols")
    assert " vn_client_send@VENEER_CLIENT_1 " in symbols


def test_mount_and_filter_built_with_pkg_config(packages, env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    os.mkdir(os.path.join(lower, "protected"))
    wfile(os.path.join(lower, "hello"), b"real\n")
    cflags = run("pkg-config", "--cflags", "veneer-filter").split()
    assert all(not f.startswith("-I") or f == "-I/usr/include" for f in cflags), cflags
    so = env.path("deny_writes.so")
    run("cc", "-shared", "-fPIC", "-Wall", "-Werror", "-o", so,
        os.path.join(TOP, "examples", "deny_writes.c"), *cflags)
    run("/usr/bin/veneer", "mount", "--filter", so + ":/protected", lower, mnt)
    try:
        assert rd(os.path.join(mnt, "hello")) == b"real\n"
        with pytest.raises(OSError) as e:
            wfile(os.path.join(mnt, "protected", "new"), b"x")
        assert e.value.errno == errno.EACCES
    finally:
        run("/usr/bin/veneer", "umount", mnt)
    assert not os.path.ismount(mnt)


def test_client_built_with_pkg_config(packages, env):
    """A filter with ports and examples/port_client.c, both built against the
    installed packages only, talk through a mount of the installed program."""
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    so, prog = env.path("port_filter.so"), env.path("port_client")
    run("cc", "-shared", "-fPIC", "-Wall", "-Werror", "-o", so,
        os.path.join(TOP, "tests", "filters", "port_filter.c"),
        *run("pkg-config", "--cflags", "veneer-filter").split())
    flags = run("pkg-config", "--cflags", "--libs", "veneer-client").split()
    assert "-lveneer-client" in flags and all(
        not f.startswith(("-I", "-L")) or f in ("-I/usr/include", "-L/usr/lib") or
        f.startswith("-L/usr/lib/") for f in flags), flags
    run("cc", "-Wall", "-Werror", "-o", prog,
        os.path.join(TOP, "examples", "port_client.c"), *flags)
    # the library the program loads is the package's (not one of a build tree)
    loaded = [line.split(" => ")[1].split(" (")[0] for line in run("ldd", prog).split("\n")
              if "libveneer-client.so.0 => " in line]
    packaged = [f for f in packages["libveneer-client0"] if f.endswith("/libveneer-client.so.0")]
    assert [os.path.realpath(f) for f in loaded] == [os.path.realpath(f) for f in packaged]
    run("/usr/bin/veneer", "mount", "--filter", so, lower, mnt)
    try:
        assert run(prog, mnt, "test-ports", "echo", "from the package") == \
            "echo:from the package"
        r = subprocess.run([prog, mnt, "test-ports", "nope", "x"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 1 and "no port 'nope'" in r.stderr, r.stderr
    finally:
        run("/usr/bin/veneer", "umount", mnt)


def test_fstab_line(packages, env):
    """mount -T on a private fstab: mount(8) finds the installed program
    through mount.fuse3, with no PATH of ours."""
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    wfile(os.path.join(lower, "hello"), b"from fstab\n")
    fstab = env.path("fstab")
    wfile(fstab, f"{lower} {mnt} fuse.veneer defaults,cache=never 0 0\n".encode())
    out = run("unshare", "-m", "--propagation", "private", "sh", "-c",
              'mount -T "$1" "$2" && cat "$2/hello" && umount "$2"', "sh", fstab, mnt,
              env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert out == "from fstab\n"


def test_unit_verifies(packages, env):
    d = env.mkdir("units")
    os.symlink("/lib/systemd/system/veneer@.service", os.path.join(d, "veneer@srv-data.service"))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no",
                        os.path.join(d, "veneer@srv-data.service")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_completion_installed(packages):
    prog = ('source /usr/share/bash-completion/completions/veneer; '
            'COMP_WORDS=(veneer st); COMP_CWORD=1; _veneer; echo "${COMPREPLY[@]}"')
    assert run("bash", "-c", prog).strip() == "status"
