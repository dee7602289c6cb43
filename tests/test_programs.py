"""Real programs on a veneer mount, mounted in place and at a separate mount
point: cp -a, tar, find, grep -r, git, sqlite3 (WAL, two processes), rsync -aH."""
import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys

import pytest

from conftest import rd, wfile


def run(cmd, cwd=None, env=None, ok=True):
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if ok:
        assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def make_src(root):
    """A tree with the things copy tools care about."""
    os.makedirs(os.path.join(root, "a", "b", "c"))
    os.mkdir(os.path.join(root, "empty-dir"))
    wfile(os.path.join(root, "top.txt"), b"needle in the top file\n")
    wfile(os.path.join(root, "a", "one.txt"), b"one\n" * 1000)
    wfile(os.path.join(root, "a", "b", "two.txt"), b"two, with a needle\n", 0o600)
    wfile(os.path.join(root, "a", "b", "c", "bin.dat"), os.urandom(300000))
    wfile(os.path.join(root, "a", "empty"), b"")
    wfile(os.path.join(root, "run.sh"), b"#!/bin/sh\necho needle\n", 0o755)
    wfile(os.path.join(root, "setuid"), b"s", 0o4755)
    with open(os.path.join(root, "sparse"), "wb") as f:
        f.seek(5 * 1024 * 1024)
        f.write(b"end of sparse")
    os.symlink("top.txt", os.path.join(root, "link-rel"))
    os.symlink("../../top.txt", os.path.join(root, "a", "b", "link-up"))
    os.symlink("/nonexistent/target", os.path.join(root, "link-dangling"))
    os.link(os.path.join(root, "a", "one.txt"), os.path.join(root, "a", "b", "hard-one"))
    os.link(os.path.join(root, "a", "one.txt"), os.path.join(root, "hard-two"))
    os.mkfifo(os.path.join(root, "pipe"), 0o640)
    wfile(os.path.join(root, "owned"), b"owned by nobody\n")
    os.chown(os.path.join(root, "owned"), 65534, 65534)
    os.chown(os.path.join(root, "a", "b"), 1234, 4321)
    os.chown(os.path.join(root, "link-rel"), 4321, 1234, follow_symlinks=False)
    long = "L" * 255
    wfile(os.path.join(root, "a", long), b"long name")
    wfile(os.path.join(root, "a", "\u00fcn\u00efc\u00f8d\u00e9 name.txt"), b"unicode")
    os.setxattr(os.path.join(root, "top.txt"), "user.comment", b"an xattr")
    os.setxattr(os.path.join(root, "a"), "user.dir", b"dir xattr")
    for i in range(50):
        wfile(os.path.join(root, "a", "b", "c", f"small{i:02d}"), f"small {i}\n".encode())
    os.utime(os.path.join(root, "top.txt"), ns=(1_500_000_000_123_456_789,
                                                1_400_000_000_987_654_321))
    os.utime(os.path.join(root, "a", "b"), ns=(1_300_000_000_000_000_001,
                                               1_300_000_000_000_000_002))


def manifest(root, times="all", xattrs=True):
    """Everything a faithful copy keeps: types, modes, owners, sizes,
    contents, link targets, mtimes, user xattrs and hard-link groups.
    times: "all", "files" (regular files only) or None."""
    out = {}
    inodes = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            s = os.lstat(p)
            e = {"mode": oct(s.st_mode), "uid": s.st_uid, "gid": s.st_gid}
            if stat.S_ISREG(s.st_mode):
                e["size"] = s.st_size
                e["sha"] = hashlib.sha256(rd(p)).hexdigest()[:16]
                e["nlink"] = s.st_nlink
                inodes.setdefault(s.st_ino, []).append(rel)
            if stat.S_ISLNK(s.st_mode):
                e["target"] = os.readlink(p)
            elif times == "all" or (times == "files" and stat.S_ISREG(s.st_mode)):
                e["mtime"] = s.st_mtime_ns
            if xattrs and (stat.S_ISREG(s.st_mode) or stat.S_ISDIR(s.st_mode)):
                e["xattrs"] = sorted((k, os.getxattr(p, k)) for k in os.listxattr(p)
                                     if k.startswith("user."))
            out[rel] = e
    links = sorted(sorted(v) for v in inodes.values() if len(v) > 1)
    return out, links


def assert_same_tree(a, b, **kw):
    ma, la = manifest(a, **kw)
    mb, lb = manifest(b, **kw)
    missing = sorted(set(ma) - set(mb))
    extra = sorted(set(mb) - set(ma))
    diff = [f"{k}: {ma[k]} != {mb[k]}" for k in sorted(set(ma) & set(mb)) if ma[k] != mb[k]]
    assert not (missing or extra or diff), (
        f"trees differ: {a} vs {b}\n missing {missing}\n extra {extra}\n" + "\n".join(diff[:30]))
    assert la == lb, f"hard-link groups differ: {la} vs {lb}"


def diff_r(a, b):
    r = run(["diff", "-r", "--no-dereference", "-x", "pipe", a, b], ok=False)
    assert r.returncode == 0, f"diff -r {a} {b}:\n{r.stdout}{r.stderr}"


class Where:
    def __init__(self, env, mode):
        self.env = env
        self.mode = mode
        self.src = env.mkdir("src")
        make_src(self.src)
        self.out = env.mkdir("out")
        if mode == "separate":
            self.lower = env.mkdir("lower")
            self.work = env.mkdir("mnt")
            env.mount(self.lower, self.work)
        else:
            self.lower = env.mkdir("inplace")
            self.work = self.lower
            env.mount(self.lower)

    def w(self, *parts):
        return os.path.join(self.work, *parts)


@pytest.fixture(params=["separate", "inplace"])
def where(env, request):
    return Where(env, request.param)


def test_cp_a_roundtrip(where):
    copy = where.w("copy")
    run(["cp", "-a", where.src, copy])
    diff_r(where.src, copy)
    assert_same_tree(where.src, copy)
    back = os.path.join(where.out, "back")
    run(["cp", "-a", copy, back])
    diff_r(where.src, back)
    assert_same_tree(where.src, back)
    # a second cp -a over the existing copy (files exist: open O_TRUNC path)
    run(["cp", "-a", where.src + "/.", copy])
    assert_same_tree(where.src, copy)
    if where.mode == "separate":
        assert_same_tree(where.src, os.path.join(where.lower, "copy"))


def test_tar(where):
    tarball = where.w("a.tar")
    run(["tar", "--xattrs", "--xattrs-include=user.*", "-C", where.src, "-cf", tarball, "."])
    x = where.w("x")
    os.mkdir(x)
    run(["tar", "--xattrs", "--xattrs-include=user.*", "-C", x, "-xpf", tarball])
    diff_r(where.src, x)
    assert_same_tree(where.src, x)
    # create an archive of the tree on the mount, extract it natively
    tb2 = os.path.join(where.out, "b.tar")
    r = run(["tar", "--xattrs", "--xattrs-include=user.*", "-C", x, "-cf", tb2, "."])
    assert "changed as we read it" not in r.stderr
    y = os.path.join(where.out, "y")
    os.mkdir(y)
    run(["tar", "--xattrs", "--xattrs-include=user.*", "-C", y, "-xpf", tb2])
    assert_same_tree(where.src, y)
    r = run(["tar", "-tf", tarball])
    assert len(r.stdout.splitlines()) == sum(
        len(d) + len(f) for _, d, f in os.walk(where.src)) + 1


def test_find(where):
    copy = where.w("copy")
    run(["cp", "-a", where.src, copy])
    fmt = "%P|%y|%m|%n|%s|%u|%g|%l\n"
    for args in [[], ["-type", "f"], ["-type", "l", "-xtype", "l"], ["-empty"],
                 ["-name", "small1*"], ["-size", "+100k"], ["-perm", "-4000"],
                 ["-samefile", "a/one.txt"], ["-links", "3"], ["-user", "nobody"],
                 ["-newer", "top.txt"], ["-maxdepth", "1"]]:
        a = run(["find", ".", *args, "-printf", fmt], cwd=where.src).stdout
        b = run(["find", ".", *args, "-printf", fmt], cwd=copy).stdout

        def norm(out):
            # directory sizes depend on the directory's history; leave them out
            rows = []
            for line in out.splitlines():
                f = line.split("|")
                if f[1] == "d":
                    f[4] = "-"
                rows.append("|".join(f))
            return sorted(rows)
        assert norm(a) == norm(b), f"find {args} differs"
        assert a, f"find {args} found nothing"
    # find -delete walks and removes through the mount
    run(["find", copy, "-name", "small*", "-delete"])
    assert not [n for n in os.listdir(os.path.join(copy, "a", "b", "c")) if n.startswith("small")]


def test_grep_r(where):
    copy = where.w("copy")
    run(["cp", "-a", where.src, copy])
    for args in [["-rl", "needle"], ["-rc", "one"], ["-rn", "--include=*.txt", "needle"],
                 ["-rLZ", "needle"], ["-rI", "-l", "e"]]:
        a = run(["grep", *args, "."], cwd=where.src, ok=False)
        b = run(["grep", *args, "."], cwd=copy, ok=False)
        assert a.returncode == b.returncode == 0, (args, a.stderr, b.stderr)
        assert sorted(a.stdout.split("\n" if "Z" not in args[0] else "\0")) == \
            sorted(b.stdout.split("\n" if "Z" not in args[0] else "\0")), args


def test_git(where, env):
    repo = where.w("repo")
    e = dict(os.environ)
    e.update({"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.org",
              "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "t@example.org",
              "HOME": env.path(), "GIT_CONFIG_NOSYSTEM": "1"})
    run(["git", "init", "-q", repo], env=e)
    run(["cp", "-a", where.src + "/.", repo])
    os.unlink(os.path.join(repo, "pipe"))
    run(["git", "add", "-A"], cwd=repo, env=e)
    run(["git", "commit", "-q", "-m", "first"], cwd=repo, env=e)
    assert run(["git", "status", "--porcelain"], cwd=repo, env=e).stdout == ""
    with open(os.path.join(repo, "top.txt"), "ab") as f:
        f.write(b"more\n")
    wfile(os.path.join(repo, "new.txt"), b"new\n")
    os.unlink(os.path.join(repo, "a", "empty"))
    st = run(["git", "status", "--porcelain"], cwd=repo, env=e).stdout
    assert sorted(st.splitlines()) == [" D a/empty", " M top.txt", "?? new.txt"], st
    run(["git", "add", "-A"], cwd=repo, env=e)
    run(["git", "commit", "-q", "-m", "second"], cwd=repo, env=e)
    run(["git", "mv", "a/one.txt", "a/uno.txt"], cwd=repo, env=e)
    run(["git", "commit", "-q", "-m", "rename"], cwd=repo, env=e)
    log = run(["git", "log", "--oneline"], cwd=repo, env=e).stdout.splitlines()
    assert len(log) == 3
    run(["git", "gc", "-q"], cwd=repo, env=e)
    run(["git", "fsck", "--strict", "--no-progress"], cwd=repo, env=e)
    assert run(["git", "status", "--porcelain"], cwd=repo, env=e).stdout == ""
    clone = os.path.join(where.out, "clone")
    run(["git", "clone", "-q", repo, clone], env=e)
    assert rd(os.path.join(clone, "top.txt")) == b"needle in the top file\nmore\n"
    assert rd(os.path.join(clone, "a", "uno.txt")) == b"one\n" * 1000
    run(["git", "checkout", "-q", "HEAD~2"], cwd=repo, env=e)
    assert rd(os.path.join(repo, "top.txt")) == b"needle in the top file\n"
    assert os.path.exists(os.path.join(repo, "a", "empty"))


SQLITE_CHILD = r"""
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
for i in range(int(sys.argv[2])):
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO t(who, n) VALUES ('child', ?)", (i,))
    db.execute("COMMIT")
print(db.execute("SELECT count(*) FROM t").fetchone()[0])
db.close()
"""


def test_sqlite_wal_two_processes(where):
    path = where.w("db.sqlite")
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        assert db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, who TEXT, n INTEGER)")
        db.execute("INSERT INTO t(who, n) VALUES ('parent', -1)")
        assert os.path.exists(path + "-wal") and os.path.exists(path + "-shm")
        n = 300
        child = subprocess.Popen([sys.executable, "-c", SQLITE_CHILD, path, str(n)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(n):
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t(who, n) VALUES ('parent', ?)", (i,))
            db.execute("COMMIT")
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert int(out.strip()) >= n + 1
        assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 2 * n + 1
        assert db.execute("SELECT count(*) FROM t WHERE who='child'").fetchone()[0] == n
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # a reader in another process sees the data before any checkpoint
        r = run(["sqlite3", path, "SELECT count(*) FROM t; PRAGMA journal_mode;"])
        assert r.stdout.split() == [str(2 * n + 1), "wal"]
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 2 * n + 1
    finally:
        db.close()


# rsync 3.x with -H does not reliably restore the mtimes of directories and
# FIFOs even natively (checked on this machine), so only file mtimes count.
RSYNC_TIMES = "files"


def test_rsync_aH(where):
    dst = where.w("r")
    run(["rsync", "-aHX", where.src + "/", dst + "/"])
    diff_r(where.src, dst)
    assert_same_tree(where.src, dst, times=RSYNC_TIMES)
    # nothing left to transfer: sizes and mtimes were kept
    r = run(["rsync", "-aHXi", where.src + "/", dst + "/"])
    assert r.stdout.strip() == "", f"second rsync transferred:\n{r.stdout}"
    # change one file and sync again: exactly that file is updated
    wfile(os.path.join(where.src, "a", "b", "two.txt"), b"changed\n", 0o600)
    r = run(["rsync", "-aHXi", where.src + "/", dst + "/"])
    assert [line.split()[-1] for line in r.stdout.splitlines()] == ["a/b/two.txt"], r.stdout
    assert rd(os.path.join(dst, "a", "b", "two.txt")) == b"changed\n"
    back = os.path.join(where.out, "back")
    run(["rsync", "-aHX", dst + "/", back + "/"])
    assert_same_tree(where.src, back, times=RSYNC_TIMES)
    # --delete through the mount
    shutil.rmtree(os.path.join(where.src, "a", "b", "c"))
    run(["rsync", "-aHX", "--delete", where.src + "/", dst + "/"])
    assert not os.path.exists(os.path.join(dst, "a", "b", "c"))
    assert_same_tree(where.src, dst, times=RSYNC_TIMES)
