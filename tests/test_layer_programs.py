"""Real programs on virtual files: execve, dlopen, python imports, gcc -I,
cp -a / tar / find over a merged tree, mmap, and stable inode numbers.

Every test builds what it needs, packs it into a squashfs image in its own
directory and projects it with --layer (or veneer attach).
"""
import collections
import errno
import json
import mmap
import os
import shutil
import subprocess

import pytest

from conftest import mksquashfs, opens_skipped, rd, snapshot, wfile

pytestmark = pytest.mark.timeout(120)


# ---- helpers ----



def gcc(args, cwd=None):
    r = subprocess.run(["gcc"] + list(args), capture_output=True, text=True, cwd=cwd,
                       timeout=60)
    assert r.returncode == 0, f"gcc {args}: {r.stderr}"


def layer_mount(env, img, at="/", inplace=False, name="m"):
    """Mounts a fresh real tree with IMG at AT; returns (lower, mnt, mount)."""
    lower = env.mkdir(name + "-lower")
    wfile(os.path.join(lower, "real.txt"), b"real\n")
    mnt = lower if inplace else env.mkdir(name + "-mnt")
    spec = img if at == "/" else f"{img}:{at}"
    m = env.mount(lower, mnt, args=["--layer", spec])
    return lower, mnt, m


def status(env, mnt):
    r = env.veneer("status", "--json", mnt)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def layer_id(env, mnt, path):
    ids = [l["id"] for l in status(env, mnt)["layers"] if l["path"] == path]
    assert len(ids) == 1, status(env, mnt)
    return ids[0]




MODES = pytest.mark.parametrize("inplace", [False, True], ids=["separate", "inplace"])


# ---- execve ----

@MODES
def test_execve_binary_and_script(env, inplace):
    src = env.mkdir("src", "bin")
    wfile(env.path("hello.c"),
          b'#include <stdio.h>\nint main(int c, char **v)'
          b'{ printf("hello from %s %d\\n", v[0], c); return 7; }\n')
    gcc([env.path("hello.c"), "-o", os.path.join(src, "hello")])
    os.chmod(os.path.join(src, "hello"), 0o755)
    wfile(os.path.join(src, "run.sh"), b'#!/bin/sh\necho "script $1 $(basename "$0")"\nexit 3\n',
          mode=0o755)
    img = mksquashfs(env.path("src"), env.path("bin.img"))
    lower, mnt, _ = layer_mount(env, img, "/opt", inplace)

    exe = os.path.join(mnt, "opt", "bin", "hello")
    st = os.stat(exe)
    assert st.st_mode & 0o777 == 0o755
    r = subprocess.run([exe, "x"], capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stdout) == (7, f"hello from {exe} 2\n"), r.stderr
    assert os.access(exe, os.X_OK)

    sh = os.path.join(mnt, "opt", "bin", "run.sh")
    r = subprocess.run([sh, "arg"], capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stdout) == (3, "script arg run.sh\n"), r.stderr
    # through PATH lookup too
    r = subprocess.run(["hello"], capture_output=True, text=True, timeout=30,
                       env={"PATH": os.path.join(mnt, "opt", "bin")})
    assert r.returncode == 7 and r.stdout.startswith("hello from hello"), r.stderr
    # the real file beside it is untouched and the lower holds no /opt
    assert rd(os.path.join(mnt, "real.txt")) == b"real\n"
    if not inplace:
        assert not os.path.exists(os.path.join(lower, "opt"))


# ---- dlopen survives detach ----

DRIVER = rb"""
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static unsigned long sum(int fd)
{
	unsigned char buf[65536];
	unsigned long s = 0, off = 0;
	ssize_t n;
	while ((n = pread(fd, buf, sizeof(buf), (off_t)off)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			s = s * 31 + buf[i];
		off += (unsigned long)n;
	}
	if (n < 0)
		return 0;
	return s ^ off;
}

int main(int argc, char **argv)
{
	void *h = dlopen(argv[1], RTLD_NOW);
	if (!h) {
		printf("dlopen failed: %s\n", dlerror());
		return 1;
	}
	int (*f)(void) = (int (*)(void))dlsym(h, "f");
	int fd = open(argv[1], O_RDONLY);
	if (!f || fd < 0) {
		printf("dlsym/open failed\n");
		return 1;
	}
	printf("first %d %lx\nready\n", f(), sum(fd));
	fflush(stdout);
	char line[64];
	if (!fgets(line, sizeof(line), stdin))
		return 2;
	printf("second %d %lx\n", f(), sum(fd));
	fflush(stdout);
	return 0;
}
"""


@MODES
def test_dlopen_keeps_working_after_detach(env, inplace):
    src = env.mkdir("src", "lib")
    wfile(env.path("lib.c"), b"int f(void){return 42;}\n"
          b"char pad[200000] = {1};\n")  # a few pages of data, read again after detach
    gcc(["-shared", "-fPIC", "-o", os.path.join(src, "libf.so"), env.path("lib.c")])
    wfile(env.path("driver.c"), DRIVER)
    gcc(["-o", env.path("driver"), env.path("driver.c"), "-ldl"])
    img = mksquashfs(env.path("src"), env.path("lib.img"))
    lower, mnt, _ = layer_mount(env, img, "/opt", inplace)
    so = os.path.join(mnt, "opt", "lib", "libf.so")

    p = subprocess.Popen([env.path("driver"), so], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = p.stdout.readline()
        ready = p.stdout.readline()
        assert first.startswith("first 42 "), (first, p.stderr.read() if p.poll() else "")
        assert ready == "ready\n"
        if not inplace:
            # in place as root, opens are skipped (documented): the daemon
            # sees no open, so only the separate mount counts it
            assert status(env, mnt)["layers"][0]["open_files"] >= 1
        lid = layer_id(env, mnt, "/opt")
        r = env.veneer("detach", mnt, str(lid))
        assert r.returncode == 0, r.stderr
        assert not os.path.exists(so)
        assert not os.path.exists(os.path.join(mnt, "opt"))
        assert status(env, mnt)["layers"] == []
        # make the kernel read again what is not mapped: through the daemon
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1")
        out, err = p.communicate("go\n", timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    # same function result and same bytes from the still-open descriptor
    assert out == "second 42 " + first.split()[2] + "\n"
    assert rd(os.path.join(mnt, "real.txt")) == b"real\n"


# ---- python imports ----

@MODES
def test_python_imports_from_layer(env, inplace):
    pylib = env.mkdir("src", "pylib")
    wfile(os.path.join(pylib, "vmod.py"), b"X = 31337\n")
    os.makedirs(os.path.join(pylib, "vpkg"))
    wfile(os.path.join(pylib, "vpkg", "__init__.py"), b"from .inner import Y\n")
    wfile(os.path.join(pylib, "vpkg", "inner.py"), b"Y = 'inner-' + str(6 * 7)\n")
    img = mksquashfs(env.path("src"), env.path("py.img"))
    lower, mnt, _ = layer_mount(env, img, "/", inplace)
    e = dict(os.environ, PYTHONPATH=os.path.join(mnt, "pylib"))
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    r = subprocess.run(["/usr/bin/python3", "-c",
                        "import vmod, vpkg; print(vmod.X, vpkg.Y, vmod.__file__)"],
                       capture_output=True, text=True, env=e, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"31337 inner-42 {os.path.join(mnt, 'pylib', 'vmod.py')}\n"
    # writing __pycache__ failed quietly (EROFS) and left nothing behind
    assert not os.path.exists(os.path.join(mnt, "pylib", "__pycache__"))
    real = os.listdir(lower) if not inplace else None
    if real is not None:
        assert sorted(real) == ["real.txt"]


# ---- gcc -I ----

@MODES
def test_gcc_includes_header_from_layer(env, inplace):
    inc = env.mkdir("src", "include", "vz")
    wfile(os.path.join(inc, "magic.h"),
          b"#pragma once\n#include \"vz/more.h\"\n#define MAGIC (MORE * 3)\n"
          b"static inline int twice(int x) { return 2 * x; }\n")
    wfile(os.path.join(inc, "more.h"), b"#define MORE 259\n")
    img = mksquashfs(env.path("src"), env.path("inc.img"))
    lower, mnt, _ = layer_mount(env, img, "/usr/local", inplace)
    prog = env.path("prog.c")
    wfile(prog, b'#include <stdio.h>\n#include <vz/magic.h>\n'
          b'int main(void){ printf("%d\\n", twice(MAGIC)); return 0; }\n')
    out = env.path("prog")
    dep = env.path("prog.d")
    gcc(["-I", os.path.join(mnt, "usr", "local", "include"), "-MD", "-MF", dep, "-o", out, prog])
    r = subprocess.run([out], capture_output=True, text=True, timeout=30)
    assert r.stdout == f"{2 * 259 * 3}\n"
    deps = rd(dep).decode()
    assert os.path.join(mnt, "usr", "local", "include", "vz", "more.h") in deps


# ---- cp -a, tar, find over a merged tree; inode numbers ----

def build_merged(env):
    """A real tree/ merged with two images' tree/; returns (lower, mnt, links)."""
    a = env.mkdir("srcA", "tree", "v")
    wfile(os.path.join(a, "h1"), b"hard link data\n" * 100)
    os.link(os.path.join(a, "h1"), os.path.join(a, "h2"))
    os.makedirs(os.path.join(a, "deep"))
    os.link(os.path.join(a, "h1"), os.path.join(a, "deep", "h3"))
    for i in range(20):
        wfile(os.path.join(a, f"fa{i}"), f"A file {i}\n".encode() * (i + 1))
    wfile(os.path.join(a, "empty1"), b"")
    wfile(os.path.join(a, "empty2"), b"")
    os.symlink("fa1", os.path.join(a, "lnk"))
    wfile(env.path("srcA", "tree", "top-virtual"), b"top\n")
    b = env.mkdir("srcB", "tree", "w")
    wfile(os.path.join(b, "g1"), b"other image link\n")
    os.link(os.path.join(b, "g1"), os.path.join(b, "g2"))
    for i in range(20):
        wfile(os.path.join(b, f"fb{i}"), f"B file {i}\n".encode())
    wfile(os.path.join(b, "empty1"), b"")
    imga = mksquashfs(env.path("srcA"), env.path("a.img"))
    imgb = mksquashfs(env.path("srcB"), env.path("b.img"), comp="xz")
    lower = env.mkdir("lower")
    rt = os.path.join(lower, "tree")
    os.makedirs(os.path.join(rt, "realdir"))
    for i in range(10):
        wfile(os.path.join(rt, "realdir", f"r{i}"), f"real {i}\n".encode())
    wfile(os.path.join(rt, "real1"), b"real one\n")
    os.link(os.path.join(rt, "real1"), os.path.join(rt, "real1-link"))
    mnt = env.mkdir("mnt")
    env.mount(lower, mnt, args=["--layer", imga, "--layer", f"{imgb}:/tree/imgb"])
    links = {
        frozenset(["tree/v/h1", "tree/v/h2", "tree/v/deep/h3"]),
        frozenset(["tree/imgb/tree/w/g1", "tree/imgb/tree/w/g2"]),
        frozenset(["tree/real1", "tree/real1-link"]),
    }
    return lower, mnt, links


def inode_groups(root):
    groups = collections.defaultdict(set)
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            groups[(st.st_dev, st.st_ino)].add(os.path.relpath(p, root))
    return groups


def test_merged_tree_inode_numbers_distinct(env):
    lower, mnt, links = build_merged(env)
    groups = inode_groups(mnt)
    shared = {frozenset(v) for v in groups.values() if len(v) > 1}
    assert shared == links
    # the view shows everything: real, image A, image B
    names = set().union(*groups.values())
    for p in ["tree/realdir/r3", "tree/v/fa19", "tree/top-virtual", "tree/imgb/tree/w/fb7",
              "tree/v/lnk", "tree/v/empty1", "tree/imgb/tree/w/empty1"]:
        assert p in names
    # st_nlink of the image links is what the image says
    assert os.lstat(os.path.join(mnt, "tree/v/h2")).st_nlink == 3
    assert os.lstat(os.path.join(mnt, "tree/v/fa0")).st_nlink == 1


def test_find_samefile(env):
    lower, mnt, links = build_merged(env)
    for target, want in [("tree/v/h2", {"tree/v/h1", "tree/v/h2", "tree/v/deep/h3"}),
                         ("tree/imgb/tree/w/g1", {"tree/imgb/tree/w/g1", "tree/imgb/tree/w/g2"}),
                         ("tree/v/fa3", {"tree/v/fa3"}),
                         ("tree/v/empty1", {"tree/v/empty1"}),
                         ("tree/realdir/r1", {"tree/realdir/r1"})]:
        r = subprocess.run(["find", mnt, "-samefile", os.path.join(mnt, target)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        got = {os.path.relpath(p, mnt) for p in r.stdout.split()}
        assert got == want, target


def test_cp_a_of_merged_tree(env):
    lower, mnt, links = build_merged(env)
    before = snapshot(lower)
    dest = env.path("copy")
    r = subprocess.run(["cp", "-a", os.path.join(mnt, "tree"), dest], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert snapshot(dest) == snapshot(os.path.join(mnt, "tree"))
    # cp -a preserved exactly the genuine links and made no others
    shared = {frozenset("tree/" + p for p in v)
              for v in inode_groups(dest).values() if len(v) > 1}
    assert shared == links
    assert snapshot(lower) == before


def test_tar_of_merged_tree(env):
    lower, mnt, links = build_merged(env)
    before = snapshot(lower)
    tarball = env.path("t.tar")
    r = subprocess.run(["tar", "-cf", tarball, "-C", mnt, "tree"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "changed as we read" not in r.stderr
    r = subprocess.run(["tar", "-tvf", tarball], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    linked = set()
    for line in r.stdout.splitlines():
        if " link to " in line:
            name, target = line.split(" link to ")
            linked.add(frozenset([name.split()[-1], target]))
    # one "link to" per extra name, pointing at a genuine partner
    expect = set()
    for group in links:
        for p in group:
            expect.add(p)
    got_names = set().union(*linked) if linked else set()
    assert got_names <= expect
    assert sum(len(g) - 1 for g in links) == sum(
        1 for line in r.stdout.splitlines() if " link to " in line)
    for pair in linked:
        assert any(pair <= g for g in links), pair
    out = env.mkdir("untar")
    r = subprocess.run(["tar", "-xf", tarball, "-C", out], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert snapshot(os.path.join(out, "tree")) == snapshot(os.path.join(mnt, "tree"))
    assert snapshot(lower) == before


# ---- mmap ----

@MODES
def test_mmap_virtual_file(env, inplace):
    data = os.urandom(300 * 1024 + 123)
    wfile(env.mkdir("src") + "/blob", data)
    img = mksquashfs(env.path("src"), env.path("m.img"))
    lower, mnt, _ = layer_mount(env, img, "/data", inplace)
    p = os.path.join(mnt, "data", "blob")
    fd = os.open(p, os.O_RDONLY)
    try:
        with mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ) as m:
            assert m[:] == data
        with mmap.mmap(fd, 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ) as m:
            assert m[4096:8192] == data[4096:8192]
            assert m[-100:] == data[-100:]
        with mmap.mmap(fd, 0, flags=mmap.MAP_SHARED,
                       prot=mmap.PROT_READ | mmap.PROT_EXEC) as m:
            assert m[100000:100100] == data[100000:100100]
        # private copy-on-write: writable, never reaches the file
        with mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE,
                       prot=mmap.PROT_READ | mmap.PROT_WRITE) as m:
            m[0:5] = b"XXXXX"
            assert m[0:5] == b"XXXXX"
        with pytest.raises(PermissionError) as ei:
            mmap.mmap(fd, 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        assert ei.value.errno == errno.EACCES
    finally:
        os.close(fd)
    assert rd(p) == data
    if not opens_skipped(inplace):
        with pytest.raises(OSError) as ei:
            os.open(p, os.O_RDWR)
        assert ei.value.errno == errno.EROFS
    else:
        # opens are skipped in place as root (documented): the open
        # succeeds and the first write fails
        fd = os.open(p, os.O_RDWR)
        try:
            with pytest.raises(OSError) as ei:
                os.pwrite(fd, b"x", 0)
            assert ei.value.errno == errno.EROFS
        finally:
            os.close(fd)
    assert rd(p) == data


# ---- stable inode numbers ----

def test_inode_numbers_stable_across_detach_and_remount(env):
    s = env.mkdir("src", "d")
    wfile(os.path.join(s, "f"), b"x\n")
    os.link(os.path.join(s, "f"), os.path.join(s, "g"))
    wfile(os.path.join(s, "other"), b"y\n")
    img = mksquashfs(env.path("src"), env.path("s.img"))
    lower, mnt, m = layer_mount(env, img, "/a/b")
    names = ["a/b", "a/b/d", "a/b/d/f", "a/b/d/g", "a/b/d/other"]

    def inos():
        return {n: os.lstat(os.path.join(mnt, n)).st_ino for n in names}
    first = inos()
    assert first["a/b/d/f"] == first["a/b/d/g"]
    assert len(set(first.values())) == len(names) - 1

    r = env.veneer("detach", mnt, "/a/b")
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(mnt, "a/b/d/f"))
    r = env.veneer("attach", mnt, img, "/a/b")
    assert r.returncode == 0, r.stderr
    assert inos() == first

    # the kernel may have cached the numbers: ask a second, fresh mount too
    assert m.stop() == 0
    mnt2 = env.mkdir("mnt2")
    env.mount(lower, mnt2, args=["--layer", f"{img}:/a/b"])
    assert {n: os.lstat(os.path.join(mnt2, n)).st_ino for n in names} == first
    # the same image, and a byte-identical copy of it, attached at other
    # paths are other objects: other numbers
    shutil.copy2(img, env.path("copy.img"))
    for src, at in [(img, "/same"), (env.path("copy.img"), "/copy")]:
        r = env.veneer("attach", mnt2, src, at)
        assert r.returncode == 0, r.stderr
        other = [os.lstat(os.path.join(mnt2, at[1:], "d", n)).st_ino
                 for n in ("f", "g", "other")] + [os.lstat(os.path.join(mnt2, at[1:])).st_ino]
        assert not set(other) & set(first.values()), at
    names2 = ["a/b/d/f", "a/b/d/other", "same/d/f", "same/d/other", "copy/d/f", "copy/d/other"]
    assert len({os.lstat(os.path.join(mnt2, n)).st_ino for n in names2}) == len(names2)
    # a different image must not share numbers either
    s2 = env.mkdir("src2", "d")
    wfile(os.path.join(s2, "f"), b"different\n")
    img2 = mksquashfs(env.path("src2"), env.path("s2.img"))
    r = env.veneer("attach", mnt2, img2, "/c")
    assert r.returncode == 0, r.stderr
    assert os.lstat(os.path.join(mnt2, "c/d/f")).st_ino not in first.values()
    assert os.lstat(os.path.join(mnt2, "c/d")).st_ino not in first.values()
