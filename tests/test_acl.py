"""POSIX ACLs: with default_permissions the kernel checks them as the real filesystem does."""
import os
import struct
import subprocess

from conftest import NOBODY, become

USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
UNDEFINED = 0xFFFFFFFF


def acl(*entries):
    """Linux xattr form of an ACL: version 2, then (tag, perm, id) per entry."""
    return struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", tag, perm, UNDEFINED if ident is None else ident)
        for tag, perm, ident in entries)


def as_nobody(code):
    """Runs python CODE as uid/gid 65534; returns (exit code, output)."""
    r = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True,
                       preexec_fn=become(NOBODY))
    return r.returncode, (r.stdout + r.stderr).strip()


def make_tree(root):
    os.chmod(root, 0o755)
    secret = os.path.join(root, "granted")
    with open(secret, "w") as f:
        f.write("shared by acl")
    os.chmod(secret, 0o600)
    os.setxattr(secret, "system.posix_acl_access",
                acl((USER_OBJ, 6, None), (USER, 4, NOBODY), (GROUP_OBJ, 0, None),
                    (MASK, 4, None), (OTHER, 0, None)))
    denied = os.path.join(root, "denied")
    with open(denied, "w") as f:
        f.write("world readable but not for nobody")
    os.chmod(denied, 0o644)
    os.setxattr(denied, "system.posix_acl_access",
                acl((USER_OBJ, 6, None), (USER, 0, NOBODY), (GROUP_OBJ, 4, None),
                    (MASK, 4, None), (OTHER, 4, None)))
    inherit = os.path.join(root, "inherit")
    os.mkdir(inherit)
    os.chmod(inherit, 0o777)
    os.setxattr(inherit, "system.posix_acl_default",
                acl((USER_OBJ, 7, None), (GROUP_OBJ, 7, None), (OTHER, 5, None)))


def observe(root):
    out = {}
    for name in ("granted", "denied"):
        out[name] = as_nobody(f"print(open({os.path.join(root, name)!r}).read())")[0]
    # umask 077 is ignored under a default ACL: the new file gets 0664 from the ACL
    code = (f"import os; os.umask(0o077); "
            f"fd = os.open({os.path.join(root, 'inherit', 'new')!r}, os.O_CREAT | os.O_WRONLY, 0o666); "
            f"os.mkdir({os.path.join(root, 'inherit', 'newdir')!r}, 0o777); "
            f"print(oct(os.fstat(fd).st_mode & 0o777), "
            f"oct(os.stat({os.path.join(root, 'inherit', 'newdir')!r}).st_mode & 0o777))")
    out["inherit"] = as_nobody(code)
    # outside a default ACL the umask applies
    code = (f"import os; os.umask(0o027); "
            f"fd = os.open({os.path.join(root, 'inherit', 'newdir', 'plain')!r}, "
            f"os.O_CREAT | os.O_WRONLY, 0o666); print(oct(os.fstat(fd).st_mode & 0o777))")
    out["plain"] = as_nobody(code)
    return out


def test_acls_checked_as_native(env):
    native, lower, mnt = env.mkdir("native"), env.mkdir("lower"), env.mkdir("mnt")
    make_tree(native)
    make_tree(lower)
    want = observe(native)
    assert want["granted"] == 0 and want["denied"] != 0, want
    env.mount(lower, mnt, ["-o", "allow_other"])
    assert observe(mnt) == want


def test_umask_applies_in_place_as_root(env):
    lower = env.mkdir("inplace")
    env.mount(lower)
    old = os.umask(0o027)
    try:
        fd = os.open(os.path.join(lower, "f"), os.O_CREAT | os.O_WRONLY, 0o666)
        os.mkdir(os.path.join(lower, "d"), 0o777)
    finally:
        os.umask(old)
    assert os.fstat(fd).st_mode & 0o777 == 0o640
    os.close(fd)
    assert os.stat(os.path.join(lower, "d")).st_mode & 0o777 == 0o750
