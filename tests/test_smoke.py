"""The basic promise: a mount passes files through, in place and separately."""
import os

from conftest import mounted_fstype


def test_separate_mount_passes_through(env):
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    with open(os.path.join(lower, "a"), "w") as f:
        f.write("hello")
    env.mount(lower, mnt)
    assert mounted_fstype(mnt) == "fuse.veneer"
    with open(os.path.join(mnt, "a")) as f:
        assert f.read() == "hello"
    with open(os.path.join(mnt, "b"), "w") as f:
        f.write("new")
    with open(os.path.join(lower, "b")) as f:
        assert f.read() == "new"
    assert sorted(os.listdir(mnt)) == ["a", "b"]


def test_in_place_mount_reaches_covered_files(env):
    lower = env.mkdir("inplace")
    with open(os.path.join(lower, "old"), "w") as f:
        f.write("covered")
    m = env.mount(lower)
    assert mounted_fstype(lower) == "fuse.veneer"
    with open(os.path.join(lower, "old")) as f:
        assert f.read() == "covered"
    os.mkdir(os.path.join(lower, "sub"))
    os.rename(os.path.join(lower, "old"), os.path.join(lower, "sub", "moved"))
    m.stop()
    assert mounted_fstype(lower) is None
    with open(os.path.join(lower, "sub", "moved")) as f:
        assert f.read() == "covered"
