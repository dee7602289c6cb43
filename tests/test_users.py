"""Credentials and permissions with a second user.

Root mounts with allow_other (separate mount point with -o allow_other, and
in place, where allow_other,default_permissions is the default): everything
uid 65534 does through the mount must match what it gets on a native
directory — ownership and modes of what it creates, EACCES/EPERM where the
kernel says so natively, sticky directories, setgid directories, setuid/setgid
bits cleared on write.  And an ordinary user mounting a directory it owns,
through fusermount3."""
import os
import socket
import stat
import subprocess

import pytest

import parity
from conftest import NOBODY, mounted_fstype, rd, wfile
from parity import Pair, as_user, nst

OTHER = 1000           # a third uid, no relation to NOBODY
GROUP = 4242           # a group NOBODY is not in (unless given as supplementary)


@pytest.fixture(params=["separate", "inplace"])
def pair(env, request):
    if request.param == "separate":
        return Pair(env, "separate", args=["-o", "allow_other"])
    return Pair(env, "inplace")


def users_tree(root):
    os.chmod(root, 0o755)
    def d(name, mode, owner=(0, 0)):
        p = os.path.join(root, name)
        os.mkdir(p)
        os.chown(p, *owner)
        os.chmod(p, mode)
        return p
    pub = d("pub", 0o777)
    wfile(os.path.join(root, "secret"), b"top secret", 0o600)
    wfile(os.path.join(root, "ro644"), b"readable", 0o644)
    wfile(os.path.join(root, "rw666"), b"writable", 0o666)
    wfile(os.path.join(root, "x744"), b"#!/bin/sh\necho hi\n", 0o744)
    wfile(os.path.join(root, "nobodyfile"), b"mine", 0o644, owner=(NOBODY, NOBODY))
    rootdir = d("rootdir", 0o755)
    wfile(os.path.join(rootdir, "file"), b"in rootdir", 0o644)
    private = d("private", 0o700)
    wfile(os.path.join(private, "x"), b"hidden", 0o644)
    sticky = d("sticky", 0o1777)
    wfile(os.path.join(sticky, "rootfile"), b"root's", 0o666)
    wfile(os.path.join(sticky, "nobodyfile"), b"nobody's", 0o644, owner=(NOBODY, NOBODY))
    wfile(os.path.join(sticky, "otherfile"), b"other's", 0o666, owner=(OTHER, OTHER))
    sd = os.path.join(sticky, "rootsub")
    os.mkdir(sd)
    d("sgid", 0o2777, owner=(0, GROUP))
    grp = d("grp", 0o770, owner=(0, GROUP))
    wfile(os.path.join(grp, "data"), b"group data", 0o640, owner=(0, GROUP))
    nb = d("nb", 0o755, owner=(NOBODY, NOBODY))
    for name, mode, owner in [("suid", 0o4755, (NOBODY, NOBODY)),
                              ("suid2", 0o4755, (NOBODY, NOBODY)),
                              ("suid3", 0o4777, (NOBODY, NOBODY)),
                              ("sgidx", 0o2775, (NOBODY, NOBODY)),
                              ("sgidnx", 0o2745, (NOBODY, NOBODY)),
                              ("suidchown", 0o6755, (NOBODY, NOBODY)),
                              ("foreigngrp", 0o755, (NOBODY, GROUP))]:
        wfile(os.path.join(nb, name), b"0123456789", mode, owner=owner)
    wfile(os.path.join(pub, "existing"), b"x", 0o666)


def opened(path, flags, mode=0o666):
    os.close(os.open(path, flags, mode))
    return "opened"


def as_nobody(r, step, fn, uid=NOBODY, gid=None, umask=0o022, groups=()):
    """Runs fn as another user in a child; logs its outcome."""
    res = as_user(fn, uid, gid, umask=umask, groups=groups)
    r.log.append((step, res))
    return res


# ------------------------------------------------------------ creation

@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_created_objects_belong_to_caller(pair, umask):
    def ops(r):
        def create():
            fd = os.open(r.p("pub", "file"), os.O_CREAT | os.O_WRONLY, 0o666)
            os.write(fd, b"by nobody")
            os.close(fd)
            os.mkdir(r.p("pub", "dir"), 0o777)
            os.mknod(r.p("pub", "fifo"), stat.S_IFIFO | 0o666)
            os.mknod(r.p("pub", "reg"), stat.S_IFREG | 0o666)
            os.symlink("file", r.p("pub", "sym"))
            os.link(r.p("pub", "file"), r.p("pub", "hard"))
            s = socket.socket(socket.AF_UNIX)
            s.bind(r.p("pub", "sock"))
            s.close()
            fd = os.open(r.p("pub", "dir", "inner"), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o640)
            os.close(fd)
            return sorted(os.listdir(r.p("pub")))
        as_nobody(r, "create as nobody", create, umask=umask)
        for n in ["file", "dir", "fifo", "reg", "sym", "hard", "sock", "dir/inner"]:
            r.stat("stat " + n, r.p("pub", n), follow=False, size=False)
        r("content", rd, r.p("pub", "file"))

        def create_other_gid():
            fd = os.open(r.p("pub", "gfile"), os.O_CREAT | os.O_WRONLY, 0o664)
            os.close(fd)
            os.mkdir(r.p("pub", "gdir"))
            return os.stat(r.p("pub", "gfile")).st_gid
        as_nobody(r, "create with gid 4242", create_other_gid, gid=GROUP, umask=umask)
        r.stat("stat gfile", r.p("pub", "gfile"))
        r.stat("stat gdir", r.p("pub", "gdir"))
        # the creator may then work on what it made
        as_nobody(r, "chmod own", lambda: os.chmod(r.p("pub", "file"), 0o600))
        as_nobody(r, "read own", lambda: rd(r.p("pub", "file")))
        as_nobody(r, "unlink own", lambda: os.unlink(r.p("pub", "hard")))
        as_nobody(r, "rmdir own nonempty", lambda: os.rmdir(r.p("pub", "dir")))
        r.stat("stat file", r.p("pub", "file"))
    pair.check(ops, users_tree)
    if pair.mode == "separate":
        s = os.lstat(os.path.join(pair.lower, "pub", "file"))
        assert (s.st_uid, s.st_gid) == (NOBODY, NOBODY), "real file not owned by the caller"


def test_supplementary_groups(pair):
    """Access granted only through a supplementary group works as natively
    (FUSE does not send supplementary groups; the daemon must find them)."""
    def ops(r):
        as_nobody(r, "read group file", lambda: rd(r.p("grp", "data")), groups=[GROUP])
        as_nobody(r, "list group dir", lambda: sorted(os.listdir(r.p("grp"))), groups=[GROUP])

        def create():
            fd = os.open(r.p("grp", "mine"), os.O_CREAT | os.O_WRONLY, 0o640)
            os.write(fd, b"x")
            os.close(fd)
            os.mkdir(r.p("grp", "mydir"))
            os.chown(r.p("grp", "mine"), -1, GROUP)
            return True
        as_nobody(r, "create in group dir", create, groups=[GROUP])
        r.stat("stat mine", r.p("grp", "mine"))
        r.stat("stat mydir", r.p("grp", "mydir"))
        as_nobody(r, "without the group", lambda: rd(r.p("grp", "data")))
        as_nobody(r, "chgrp to non-member group", lambda: os.chown(r.p("nb", "suid"), -1, GROUP))
    pair.check(ops, users_tree)


# ------------------------------------------------------------ denials

def test_permission_denials(pair):
    def ops(r):
        checks = [
            ("read secret", lambda: rd(r.p("secret"))),
            ("read ro644", lambda: rd(r.p("ro644"))),
            ("write ro644", lambda: opened(r.p("ro644"), os.O_WRONLY)),
            ("rdwr ro644", lambda: opened(r.p("ro644"), os.O_RDWR)),
            ("truncate ro644", lambda: os.truncate(r.p("ro644"), 0)),
            ("create in rootdir", lambda: opened(r.p("rootdir", "new"),
                                                 os.O_CREAT | os.O_WRONLY, 0o644)),
            ("mkdir in rootdir", lambda: os.mkdir(r.p("rootdir", "d"))),
            ("mknod in rootdir", lambda: os.mkfifo(r.p("rootdir", "p"))),
            ("symlink in rootdir", lambda: os.symlink("x", r.p("rootdir", "s"))),
            ("unlink in rootdir", lambda: os.unlink(r.p("rootdir", "file"))),
            ("rename in rootdir", lambda: os.rename(r.p("rootdir", "file"),
                                                    r.p("rootdir", "f2"))),
            ("rename out of rootdir", lambda: os.rename(r.p("rootdir", "file"),
                                                        r.p("pub", "stolen"))),
            ("list private", lambda: os.listdir(r.p("private"))),
            ("stat in private", lambda: nst(os.stat(r.p("private", "x")))),
            ("read in private", lambda: rd(r.p("private", "x"))),
            ("chmod root file", lambda: os.chmod(r.p("rw666"), 0o777)),
            ("chown own file to root", lambda: os.chown(r.p("nobodyfile"), 0, -1)),
            ("chgrp own file to foreign group", lambda: os.chown(r.p("nobodyfile"), -1, GROUP)),
            ("chgrp own file to own group", lambda: os.chown(r.p("nobodyfile"), -1, NOBODY)),
            ("chown root file", lambda: os.chown(r.p("rw666"), NOBODY, NOBODY)),
            ("utime explicit on root file", lambda: os.utime(r.p("rw666"), ns=(1, 1))),
            ("utime now on writable root file", lambda: os.utime(r.p("rw666"))),
            ("utime now on read-only root file", lambda: os.utime(r.p("ro644"))),
            ("utime explicit on own file", lambda: os.utime(r.p("nobodyfile"), ns=(5, 5))),
            ("write rw666", lambda: os.write(os.open(r.p("rw666"), os.O_WRONLY), b"W")),
            ("exec 744", lambda: subprocess.run([r.p("x744")], capture_output=True).returncode),
            ("user xattr set on ro644", lambda: os.setxattr(r.p("ro644"), "user.x", b"1")),
            ("user xattr get on secret", lambda: os.getxattr(r.p("secret"), "user.x")),
            ("user xattr set on own", lambda: os.setxattr(r.p("nobodyfile"), "user.x", b"1")),
            ("user xattr get on own", lambda: os.getxattr(r.p("nobodyfile"), "user.x")),
            ("trusted xattr", lambda: os.setxattr(r.p("nobodyfile"), "trusted.x", b"1")),
            ("list xattrs secret", lambda: os.listxattr(r.p("secret"))),
            ("access R secret", lambda: os.access(r.p("secret"), os.R_OK)),
            ("access W rw666", lambda: os.access(r.p("rw666"), os.W_OK)),
            ("access W ro644", lambda: os.access(r.p("ro644"), os.W_OK)),
            ("access X x744", lambda: os.access(r.p("x744"), os.X_OK)),
            ("access X private", lambda: os.access(r.p("private"), os.X_OK)),
            ("mknod char device", lambda: os.mknod(r.p("pub", "null"), stat.S_IFCHR | 0o666,
                                                   os.makedev(1, 3))),
            ("hard link to root file", lambda: os.link(r.p("ro644"), r.p("pub", "lnk"))),
            ("hard link to own file", lambda: os.link(r.p("nobodyfile"), r.p("pub", "lnk2"))),
            ("O_NOATIME on root file", lambda: opened(r.p("ro644"), os.O_RDONLY | os.O_NOATIME)),
            ("O_NOATIME on own file", lambda: opened(r.p("nobodyfile"),
                                                     os.O_RDONLY | os.O_NOATIME)),
            ("rmdir in rootdir", lambda: os.rmdir(r.p("rootdir"))),
            ("statvfs", lambda: os.statvfs(r.p("pub")).f_namemax),
        ]
        for step, fn in checks:
            as_nobody(r, step, fn)
        for n in ["rw666", "ro644", "nobodyfile", "rootdir/file", "pub"]:
            r.stat("stat " + n, r.p(n))
        r("rw666 content", rd, r.p("rw666"))
    pair.check(ops, users_tree)


def test_sticky_directory(pair):
    def ops(r):
        s = lambda *n: r.p("sticky", *n)  # noqa: E731
        as_nobody(r, "unlink root's file", lambda: os.unlink(s("rootfile")))
        as_nobody(r, "rename root's file", lambda: os.rename(s("rootfile"), s("mine")))
        as_nobody(r, "rename own over root's", lambda: os.rename(s("nobodyfile"), s("rootfile")))
        as_nobody(r, "rmdir root's dir", lambda: os.rmdir(s("rootsub")))
        as_nobody(r, "unlink other user's file", lambda: os.unlink(s("otherfile")))
        as_nobody(r, "write root's 0666 file", lambda: os.write(
            os.open(s("rootfile"), os.O_WRONLY | os.O_APPEND), b"+"))
        as_nobody(r, "create own", lambda: os.close(os.open(s("new"), os.O_CREAT | os.O_WRONLY)))
        as_nobody(r, "rename own", lambda: os.rename(s("new"), s("new2")))
        as_nobody(r, "unlink own", lambda: os.unlink(s("new2")))
        as_nobody(r, "other user deletes nobody's file",
                  lambda: os.unlink(s("nobodyfile")), uid=OTHER)
        as_nobody(r, "exchange with root's", lambda: parity.renameat2(
            s("nobodyfile"), s("rootfile"), parity.RENAME_EXCHANGE))
        r("root deletes nobody's file", os.unlink, s("nobodyfile"))
        r("listing", lambda: sorted(os.listdir(s())))
        r("rootfile content", rd, s("rootfile"))
    pair.check(ops, users_tree)


# ------------------------------------------------------------ setgid dirs

def test_setgid_directory(pair):
    def ops(r):
        g = lambda *n: r.p("sgid", *n)  # noqa: E731

        def create():
            os.close(os.open(g("file"), os.O_CREAT | os.O_WRONLY, 0o664))
            os.mkdir(g("dir"), 0o775)
            os.mkdir(g("dir", "nested"), 0o775)
            os.close(os.open(g("sgfile"), os.O_CREAT | os.O_WRONLY, 0o2775))
            os.mknod(g("fifo"), stat.S_IFIFO | 0o664)
            os.symlink("file", g("sym"))
            return True
        as_nobody(r, "create as nobody", create)
        for n in ["file", "dir", "dir/nested", "sgfile", "fifo", "sym"]:
            r.stat("stat " + n, g(n), follow=False)

        def member():
            os.close(os.open(g("mfile"), os.O_CREAT | os.O_WRONLY, 0o2775))
            return True
        as_nobody(r, "create as member", member, groups=[GROUP])
        r.stat("stat mfile", g("mfile"))
        r("root creates", lambda: os.close(os.open(g("rootfile"), os.O_CREAT | os.O_WRONLY,
                                                  0o2755)))
        r.stat("stat rootfile", g("rootfile"))
        r("root mkdir", os.mkdir, g("rootdir"), 0o755)
        r.stat("stat rootdir", g("rootdir"))
        # chmod g+s on one's own file of a group one is not in: the bit is dropped
        as_nobody(r, "chmod g+s foreign group", lambda: os.chmod(r.p("nb", "foreigngrp"), 0o2755))
        r.stat("stat foreigngrp", r.p("nb", "foreigngrp"))
        as_nobody(r, "chmod g+s own group", lambda: os.chmod(r.p("nb", "sgidnx"), 0o2775))
        r.stat("stat sgidnx", r.p("nb", "sgidnx"))
    pair.check(ops, users_tree)


# ------------------------------------------------------------ setuid clearing

def test_setuid_cleared_on_write(pair):
    def ops(r):
        n = lambda *x: r.p("nb", *x)  # noqa: E731

        def write(name, how="write"):
            def fn():
                if how == "write":
                    fd = os.open(n(name), os.O_WRONLY)
                    os.write(fd, b"x")
                    os.close(fd)
                elif how == "truncate":
                    os.truncate(n(name), 3)
                elif how == "otrunc":
                    os.close(os.open(n(name), os.O_WRONLY | os.O_TRUNC))
                elif how == "chown":
                    os.chown(n(name), -1, NOBODY)
                return oct(stat.S_IMODE(os.stat(n(name)).st_mode))
            return fn
        as_nobody(r, "owner writes setuid file", write("suid"))
        r.stat("stat suid", n("suid"))
        as_nobody(r, "owner truncates setuid file", write("suid2", "truncate"))
        r.stat("stat suid2", n("suid2"))
        as_nobody(r, "owner writes setgid g+x file", write("sgidx"))
        r.stat("stat sgidx", n("sgidx"))
        as_nobody(r, "owner writes setgid g-x file", write("sgidnx"))
        r.stat("stat sgidnx", n("sgidnx"))
        as_nobody(r, "owner chowns setuid file", write("suidchown", "chown"))
        r.stat("stat suidchown", n("suidchown"))
        as_nobody(r, "other user writes 4777 file", write("suid3"), uid=OTHER)
        r.stat("stat suid3", n("suid3"))
        r("chmod back", os.chmod, n("suid3"), 0o4777)
        as_nobody(r, "owner opens with O_TRUNC", write("suid3", "otrunc"))
        r.stat("stat suid3", n("suid3"))
        r("chmod for root", os.chmod, n("suid"), 0o4755)
        r("root writes setuid file", lambda: wfile(n("suid"), b"root"))
        r.stat("stat suid after root write", n("suid"))
        r("contents", lambda: [rd(n(x)) for x in ["suid", "suid2", "sgidx", "suid3"]])
    pair.check(ops, users_tree)


# ------------------------------------------------------------ user mounts

@pytest.fixture
def user_fuse(env):
    """An ordinary user can use /dev/fuse (Debian's udev rule makes it 0666;
    some containers leave it 0600).  The workspace becomes sticky-writable so
    the user's daemon can write sanitizer logs there."""
    st = os.stat("/dev/fuse")
    changed = False
    if stat.S_IMODE(st.st_mode) & 0o006 != 0o006:
        os.chmod("/dev/fuse", 0o666)
        changed = True
    os.chmod(env.tmp, 0o1777)
    run = env.mkdir("run-nobody", mode=0o700)
    os.chown(run, NOBODY, NOBODY)
    home = env.mkdir("home-nobody", mode=0o755)
    os.chown(home, NOBODY, NOBODY)
    try:
        yield {"XDG_RUNTIME_DIR": run, "HOME": home}
    finally:
        if changed:
            os.chmod("/dev/fuse", stat.S_IMODE(st.st_mode))


def nobody_dir(env, name):
    p = env.mkdir(name)
    os.chown(p, NOBODY, NOBODY)
    return p


@pytest.mark.parametrize("in_place", [False, True], ids=["separate", "inplace"])
def test_ordinary_user_mount(env, user_fuse, in_place):
    lower = nobody_dir(env, "ulower")
    mnt = lower if in_place else nobody_dir(env, "umnt")
    wfile(os.path.join(lower, "before"), b"existing", 0o644, owner=(NOBODY, NOBODY))
    m = env.mount(lower, None if in_place else mnt, user=NOBODY, env=user_fuse)
    assert mounted_fstype(mnt) == "fuse.veneer"

    def work():
        with open(os.path.join(mnt, "written"), "wb") as f:
            f.write(b"by the user")
        os.mkdir(os.path.join(mnt, "d"))
        os.rename(os.path.join(mnt, "written"), os.path.join(mnt, "d", "written"))
        s = os.stat(os.path.join(mnt, "d", "written"))
        return (rd(os.path.join(mnt, "before")), rd(os.path.join(mnt, "d", "written")),
                sorted(os.listdir(mnt)), s.st_uid, s.st_gid)
    res = as_user(work, NOBODY)
    assert res == ("ok", (b"existing", b"by the user", ["before", "d"], NOBODY, NOBODY)), res
    # without allow_other, nobody else (not even root) gets in
    with pytest.raises(PermissionError):
        os.stat(os.path.join(mnt, "before"))
    r = env.veneer("umount", mnt, user=NOBODY, env=user_fuse)
    assert r.returncode == 0, r.stderr
    assert mounted_fstype(mnt) is None
    assert m.proc.wait(timeout=20) == 0, m.log()
    s = os.stat(os.path.join(lower, "d", "written"))
    assert (s.st_uid, s.st_gid) == (NOBODY, NOBODY)
    assert rd(os.path.join(lower, "d", "written")) == b"by the user"


def test_user_cannot_umount_root_mount(env, user_fuse):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    env.mount(lower, mnt, args=["-o", "allow_other"])
    r = env.veneer("umount", mnt, user=NOBODY, env=user_fuse)
    assert r.returncode != 0
    assert "veneer:" in r.stderr
    assert mounted_fstype(mnt) == "fuse.veneer"


def test_ordinary_user_layers(env, user_fuse):
    """An ordinary user projects an image at mount and attaches another live,
    through a control socket in its own runtime directory."""
    lower = nobody_dir(env, "ulower")
    mnt = nobody_dir(env, "umnt")
    imgs = []
    for name, data in (("one", b"first"), ("two", b"second")):
        src = nobody_dir(env, name + "-src")
        wfile(os.path.join(src, name), data, 0o644, owner=(NOBODY, NOBODY))
        img = env.path(name + ".sqfs")
        subprocess.run(["mksquashfs", src, img, "-noappend", "-quiet", "-no-progress"],
                       check=True, capture_output=True)
        os.chmod(img, 0o644)
        imgs.append(img)
    env.mount(lower, mnt, args=["--layer", imgs[0] + ":/pkg"], user=NOBODY, env=user_fuse)
    r = env.veneer("attach", mnt, imgs[1], "/pkg", user=NOBODY, env=user_fuse)
    assert r.returncode == 0, r.stderr
    res = as_user(lambda: (rd(os.path.join(mnt, "pkg", "one")), rd(os.path.join(mnt, "pkg", "two")),
                           sorted(os.listdir(os.path.join(mnt, "pkg")))), NOBODY)
    assert res == ("ok", (b"first", b"second", ["one", "two"])), res
    r = env.veneer("status", mnt, user=NOBODY, env=user_fuse)
    assert r.returncode == 0 and imgs[1] in r.stdout and imgs[0] in r.stdout, r.stderr
    r = env.veneer("detach", mnt, "/pkg", user=NOBODY, env=user_fuse)
    assert r.returncode == 0, r.stderr
    res = as_user(lambda: sorted(os.listdir(os.path.join(mnt, "pkg"))), NOBODY)
    assert res == ("ok", ["one"]), res
