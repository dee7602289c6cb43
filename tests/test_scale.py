"""Scale: the daemon does not need a descriptor per inode the kernel remembers."""
import errno
import os
import resource
import stat

import pytest

FILES = int(os.environ.get("VENEER_SCALE_FILES", "100000"))


@pytest.mark.timeout(900)
def test_walk_stat_read_100k_files_within_descriptor_limit(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    per_dir = 1000
    for d in range(FILES // per_dir):
        sub = os.path.join(lower, f"d{d:03}")
        os.mkdir(sub)
        for i in range(per_dir):
            fd = os.open(os.path.join(sub, f"f{i}"), os.O_CREAT | os.O_WRONLY, 0o644)
            os.write(fd, b"%d/%d\n" % (d, i))
            os.close(fd)
    limit = min(20000, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    assert limit < FILES, "the test needs a descriptor limit below the file count"
    # long caching: the kernel keeps every inode, so the daemon sees them all at once
    env.mount(lower, mnt, ["--cache=always"], nofile=limit)
    seen = 0
    for root, dirs, files in os.walk(mnt):
        for name in files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            assert st.st_size > 0
            with open(p, "rb") as f:
                data = f.read()
            d, i = data.decode().strip().split("/")
            assert p.endswith(f"d{int(d):03}/f{i}")
            seen += 1
    assert seen == FILES
    # a second pass goes through the daemon again for the opens: still no EMFILE
    for d in range(0, FILES // per_dir, 7):
        with open(os.path.join(mnt, f"d{d:03}", "f0"), "rb") as f:
            assert f.read() == b"%d/0\n" % d


def test_getattr_without_descriptor_follows_lower_renames_and_replacements(env):
    """A node whose descriptor the budget dropped (or never kept) is stated by
    name from its parent: the answer is the node's, whatever the lower did to
    the name meanwhile."""
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    d = os.path.join(lower, "d")
    os.mkdir(d)
    for i in range(200):
        with open(os.path.join(d, f"f{i}"), "wb") as f:
            f.write(b"x" * (i + 1))
    for name, size in (("kept", 11), ("moved", 12), ("replaced", 13), ("linked", 14)):
        with open(os.path.join(d, name), "wb") as f:
            f.write(b"v" * size)
    # a budget of 32 descriptors for 204 nodes
    env.mount(lower, mnt, ["--cache=never"], nofile=64)
    fds = {name: os.open(os.path.join(mnt, "d", name), os.O_PATH | os.O_NOFOLLOW)
           for name in ("kept", "moved", "replaced", "linked")}
    try:
        ino = {name: os.fstat(fd).st_ino for name, fd in fds.items()}
        # push every descriptor out of the cache
        for i in range(200):
            with open(os.path.join(mnt, "d", f"f{i}"), "rb") as f:
                assert len(f.read()) == i + 1
        # a change made on the lower directly is seen: the attributes are fresh
        os.chmod(os.path.join(d, "kept"), 0o600)
        st = os.fstat(fds["kept"])
        assert (st.st_ino, st.st_size, stat.S_IMODE(st.st_mode)) == (ino["kept"], 11, 0o600)
        # renamed on the lower: the old name is gone; never another object's answer
        os.rename(os.path.join(d, "moved"), os.path.join(d, "moved2"))
        with open(os.path.join(d, "moved"), "wb") as f:
            f.write(b"n" * 99)
        try:
            st = os.fstat(fds["moved"])
            assert (st.st_ino, st.st_size) == (ino["moved"], 12)
        except OSError as e:
            assert e.errno == errno.ESTALE
        # replaced on the lower by another file renamed over the name (made
        # first: an inode number freed by unlink may be reused at once, and
        # (st_dev, st_ino) is all the identity a lower object has)
        with open(os.path.join(d, "replaced.new"), "wb") as f:
            f.write(b"n" * 98)
        os.rename(os.path.join(d, "replaced.new"), os.path.join(d, "replaced"))
        try:
            st = os.fstat(fds["replaced"])
            assert (st.st_ino, st.st_size) == (ino["replaced"], 13)
        except OSError as e:
            assert e.errno == errno.ESTALE
        # a hard link's other name: the node's name is gone, the object is not
        os.link(os.path.join(d, "linked"), os.path.join(d, "linked2"))
        os.unlink(os.path.join(d, "linked"))
        try:
            st = os.fstat(fds["linked"])
            assert (st.st_ino, st.st_size) == (ino["linked"], 14)
        except OSError as e:
            assert e.errno == errno.ESTALE
        # a fresh lookup of the replaced name finds the new object
        st = os.lstat(os.path.join(mnt, "d", "replaced"))
        assert st.st_size == 98 and st.st_ino != ino["replaced"]
    finally:
        for fd in fds.values():
            os.close(fd)
