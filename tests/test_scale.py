"""Scale: the daemon does not need a descriptor per inode the kernel remembers."""
import os
import resource

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
