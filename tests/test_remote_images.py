"""Remote images: a layer attached straight from an http:// or https:// URL,
fetched lazily in aligned chunks, each checked against the image's hash
tree, kept in an on-disk chunk cache shared by mounts, and failing with
EIO (and a log line naming the URL and the offset) when the server is
down, slow, erroring, resetting or serving changed content -- never wrong
data, never a hang.

The server is nginx (tests/nginx_server.py), started by the tests on a free
port of 127.0.0.1, over HTTPS with a test CA where TLS is tested; requests
and bytes are counted from its access log.  Its faults come from its
configuration: stopped, an error status, limit_rate (slow), and a served
file truncated or rewritten.  Two faults nginx cannot produce run on
tests/range_server.py (Python), and say so: a connection reset in the
middle of a body, and a fault for exactly one request (to see the fetch
tried again).  The request-count targets (attach, one cold 4 KiB file, the
bytes of a workload) are asserted from nginx's log on an image of tens of
MiB, and so is the fetch-ahead of a long sequential read.
"""
import errno
import json
import os
import re
import stat
import subprocess

import pytest

from conftest import errno_of, rd, wfile
from nginx_server import NginxServer, make_cert
from range_server import RangeServer
from test_trace import Watcher, settle
from test_verified_images import flip, make_tree as verified_tree

pytestmark = pytest.mark.timeout(120)

CHUNK = 64 * 1024
BLOCK = 4096


def make_tree(env, name="tree", big_files=0):
    """test_verified_images' tree, a script, and big_files of random bytes."""
    src = verified_tree(env, name)
    wfile(os.path.join(src, "hello.sh"), b"#!/bin/sh\necho hello from $0\n", mode=0o755)
    # incompressible files: an image much larger than what one lookup needs
    for i in range(big_files):
        wfile(os.path.join(src, f"blob{i:02d}"), os.urandom(256 * 1024))
    return src


def pack(env, src, name, *extra):
    img = env.path("www", name)
    os.makedirs(os.path.dirname(img), exist_ok=True)
    r = env.veneer("pack", *extra, src, "-o", img)
    assert r.returncode == 0, r.stderr
    m = re.search(r"digest: (sha256:[0-9a-f]{64})", r.stdout)
    return img, (m.group(1) if m else None)


class Remote:
    """A mount, a served directory and a chunk cache of the test's own."""

    def __init__(self, env, tls=False, python=False):
        self.env = env
        self.www = env.mkdir("www")
        self.cache = env.path("cache")
        ca = cert = key = None
        if tls:
            ca, cert, key = make_cert(env.mkdir("tls"), lambda cmd: subprocess.run(
                cmd, check=True, capture_output=True, timeout=60))
        self.cert = ca
        if python:          # faults nginx cannot produce
            self.server = RangeServer(self.www, cert, key)
        else:
            self.server = NginxServer(self.www, env.mkdir("nginx"), cert, key)
        self.lower = env.mkdir("lower")
        self.mnt = env.mkdir("mnt")
        self.m = env.mount(self.lower, self.mnt)

    def p(self, *parts):
        return os.path.join(self.mnt, *parts)

    def attach(self, name, at="/r", *extra, cache=True):
        opts = ["--cache-dir", self.cache] if cache else []
        return self.env.veneer("attach", *opts, *extra, self.mnt, self.server.url(name), at)

    def status(self):
        r = self.env.veneer("status", "--json", self.mnt)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def remote_layer(self):
        layers = [l for l in self.status()["layers"] if "remote" in l]
        assert len(layers) == 1, layers
        return layers[0]


def another_mount(env, remote, digest, name):
    """A second daemon with the image attached at /r, sharing the chunk cache;
    returns (its mount point, its Mount)."""
    mnt = env.mkdir(name)
    m = env.mount(env.mkdir(name + "-lower"), mnt)
    r = env.veneer("attach", "--cache-dir", remote.cache, "--digest", digest, mnt,
                   remote.server.url("img.sqfs"), "/r")
    assert r.returncode == 0, r.stderr
    return mnt, m


@pytest.fixture
def remote(env):
    r = Remote(env)
    try:
        yield r
    finally:
        r.server.stop()
    assert r.m.proc.poll() is None, "daemon died: " + r.m.log()


@pytest.fixture
def python_remote(env):
    """tests/range_server.py instead of nginx: for the faults nginx cannot
    produce (a reset in the middle of a body, a fault for one request)."""
    r = Remote(env, python=True)
    try:
        yield r
    finally:
        r.server.stop()
    assert r.m.proc.poll() is None, "daemon died: " + r.m.log()


def check_tree(src, root):
    for rel in ("small.txt", "big.txt", "dir/f00", "dir/f39", "hello.sh"):
        assert rd(os.path.join(root, rel)) == rd(os.path.join(src, rel)), rel
    assert os.readlink(os.path.join(root, "link")) == "small.txt"
    assert sorted(os.listdir(os.path.join(root, "dir"))) == [f"f{i:02d}" for i in range(40)]


# ---- attach, read, list, exec ----

def test_attach_read_list_exec_over_http(env, remote):
    src = make_tree(env)
    img, digest = pack(env, src, "img.sqfs")
    r = remote.attach("img.sqfs", "/r", "--digest", digest)
    assert r.returncode == 0, r.stderr
    check_tree(src, remote.p("r"))
    out = subprocess.run([remote.p("r", "hello.sh")], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("hello from"), out
    layer = remote.remote_layer()
    assert layer["integrity"] == "pinned" and layer["digest"] == digest
    fig = layer["remote"]
    assert fig["requests"] == remote.server.count()
    assert fig["bytes_fetched"] == remote.server.bytes_served()
    assert fig["cache_misses"] > 0 and fig["failures"] == 0
    assert 0 < fig["cache_bytes"] <= os.path.getsize(img) + CHUNK
    # every request asked for whole, aligned chunks
    size = os.path.getsize(img)
    for _, a, b in remote.server.requests:
        assert a % CHUNK == 0 and ((b + 1) % CHUNK == 0 or b == size - 1), (a, b)
    text = env.veneer("status", remote.mnt).stdout
    assert "remote " in text and "bytes fetched" in text, text
    prom = env.veneer("status", "--prometheus", remote.mnt).stdout
    for metric, value in (("fetch_requests_total", fig["requests"]),
                          ("fetch_bytes_total", fig["bytes_fetched"]),
                          ("fetch_failures_total", 0)):
        assert re.search(r'^veneer_layer_%s\{[^}]*id="1",path="/r"\} %d$' % (metric, value),
                         prom, re.M), prom


def test_https_needs_the_right_ca(env):
    r = Remote(env, tls=True)
    try:
        src = make_tree(env)
        _, digest = pack(env, src, "img.sqfs")
        bad = r.attach("img.sqfs", "/r", "--digest", digest)
        assert bad.returncode != 0
        assert "certificate" in bad.stderr.lower() and r.server.url("img.sqfs") in bad.stderr
        ok = r.attach("img.sqfs", "/r", "--digest", digest, "--cacert", r.cert)
        assert ok.returncode == 0, ok.stderr
        check_tree(src, r.p("r"))
    finally:
        r.server.stop()


def test_mount_options_reach_layers_at_urls(env):
    """--cacert, --cache-dir, --cache-size and --fetch-timeout given at mount
    apply to the --layer URLs: the https layer mounts with the test CA, and
    its chunks land in the cache directory named."""
    r = Remote(env, tls=True)
    try:
        src = make_tree(env)
        _, digest = pack(env, src, "img.sqfs")
        spec = f"{r.server.url('img.sqfs')}:/opt/r#{digest}"
        cache = env.path("mount-cache")
        mnt = env.mkdir("mnt-tls")
        env.mount(env.mkdir("lower-tls"), mnt,
                  args=[f"--layer={spec}", f"--cacert={r.cert}", f"--cache-dir={cache}",
                        "--cache-size=64M", "--fetch-timeout=20"])
        check_tree(src, os.path.join(mnt, "opt", "r"))
        assert any(files for _, _, files in os.walk(cache)), "no chunk in the cache named"
        bad = env.veneer("mount", "--layer=" + spec, env.mkdir("lower-bad"), env.mkdir("mnt-bad"))
        assert bad.returncode != 0 and "certificate" in bad.stderr.lower(), bad.stderr
    finally:
        r.server.stop()


def test_layer_option_takes_a_url(env, remote):
    src = make_tree(env)
    _, digest = pack(env, src, "img.sqfs")
    mnt = env.mkdir("mnt2")
    spec = f"{remote.server.url('img.sqfs')}:/opt/r#{digest}"
    env.mount(env.mkdir("lower2"), mnt, args=[f"--layer={spec}", f"--cache-dir={remote.cache}"])
    check_tree(src, os.path.join(mnt, "opt", "r"))


def test_unverified_image_over_http(env, remote):
    src = make_tree(env)
    pack(env, src, "plain.sqfs", "--no-tree")
    assert remote.attach("plain.sqfs").returncode == 0
    check_tree(src, remote.p("r"))
    assert remote.remote_layer()["integrity"] == "unverified"


def test_wrong_digest_and_missing_image_are_refused(env, remote):
    src = make_tree(env)
    _, digest = pack(env, src, "img.sqfs")
    wrong = "sha256:" + ("f" * 64 if digest[-1] != "f" else "e" * 64)
    r = remote.attach("img.sqfs", "/r", "--digest", wrong)
    assert r.returncode != 0 and digest in r.stderr and wrong in r.stderr, r.stderr
    r = remote.attach("nothere.sqfs")
    assert r.returncode != 0 and "404" in r.stderr, r.stderr
    assert remote.server.url("nothere.sqfs") in r.stderr


# ---- lazy: only what is needed ----

def test_only_the_needed_chunks_are_fetched(env, remote):
    src = make_tree(env, big_files=24)
    img, digest = pack(env, src, "big.sqfs")
    size = os.path.getsize(img)
    assert remote.attach("big.sqfs", "/r", "--digest", digest).returncode == 0
    assert remote.server.count() <= 3          # first chunk, tail (tree and footer), ...
    assert rd(remote.p("r", "small.txt")) == rd(os.path.join(src, "small.txt"))
    assert rd(remote.p("r", "blob05")) == rd(os.path.join(src, "blob05"))
    # one 256 KiB file plus metadata and tree: a small part of a 6 MiB image
    assert remote.server.bytes_served() < 1024 * 1024 < size / 4, remote.server.requests


# ---- the chunk cache ----

def test_cache_is_reused_by_a_second_mount_and_heals(env, remote):
    src = make_tree(env, big_files=2)
    img, digest = pack(env, src, "img.sqfs")
    assert remote.attach("img.sqfs", "/r", "--digest", digest).returncode == 0
    check_tree(src, remote.p("r"))
    for i in range(2):
        assert rd(remote.p("r", f"blob{i:02d}")) == rd(os.path.join(src, f"blob{i:02d}"))
    first = remote.server.count()
    assert first > 1

    # a second daemon with the same cache: only the request that opens the image
    remote.server.reset_counts()
    mnt, _ = another_mount(env, remote, digest, "mnt2")
    check_tree(src, os.path.join(mnt, "r"))
    assert remote.server.count() == 1, remote.server.requests

    # damage cached chunks: one flipped, one truncated; a third mount refetches them
    chunks = os.path.join(remote.cache, digest.split(":")[1])
    names = sorted(n for n in os.listdir(chunks) if not n.startswith("."))
    assert len(names) >= 3
    for n in names:
        path = os.path.join(chunks, n)
        data = bytearray(rd(path))
        data[len(data) // 2] ^= 0x40
        wfile(path, bytes(data))
    os.truncate(os.path.join(chunks, names[1]), 100)
    remote.server.reset_counts()
    mnt3, m3 = another_mount(env, remote, digest, "mnt3")
    check_tree(src, os.path.join(mnt3, "r"))
    for i in range(2):
        assert rd(os.path.join(mnt3, "r", f"blob{i:02d}")) == rd(os.path.join(src, f"blob{i:02d}"))
    assert remote.server.count() > 1
    assert "EIO" not in m3.log()


def test_cache_size_is_bounded(env, remote):
    src = make_tree(env, big_files=16)
    img, digest = pack(env, src, "img.sqfs")
    limit = 1024 * 1024
    r = remote.attach("img.sqfs", "/r", "--digest", digest, "--cache-size", "1M")
    assert r.returncode == 0, r.stderr
    for i in range(16):
        assert rd(remote.p("r", f"blob{i:02d}")) == rd(os.path.join(src, f"blob{i:02d}"))
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(remote.cache)
                for f in fs if f != "lock")
    assert total <= limit, total
    assert remote.remote_layer()["remote"]["cache_bytes"] <= limit


# ---- faults ----

def attached(env, remote, big_files=4, *extra):
    src = make_tree(env, big_files=big_files)
    img, digest = pack(env, src, "img.sqfs")
    r = remote.attach("img.sqfs", "/r", "--digest", digest, "--fetch-timeout", "1", *extra)
    assert r.returncode == 0, r.stderr
    return src, img, digest


def blob(remote, src, i):
    return rd(remote.p("r", f"blob{i:02d}")), rd(os.path.join(src, f"blob{i:02d}"))


def url_offset_logged(remote, what):
    log = remote.m.log()
    assert re.search(re.escape(remote.server.url("img.sqfs")) + r": offset \d+: .*" + what,
                     log), log


def test_server_down_then_back(env, remote):
    src, img, _ = attached(env, remote)
    got, want = blob(remote, src, 0)
    assert got == want
    remote.server.stop()
    # cached content is still served; uncached content fails
    got, want = blob(remote, src, 0)
    assert got == want
    assert errno_of(lambda: rd(remote.p("r", "blob01"))) == errno.EIO
    url_offset_logged(remote, "")
    remote.server.start()
    got, want = blob(remote, src, 1)
    assert got == want


FAULTS = {
    # fault: (NginxServer.fault's arguments, what the log line says)
    "error": (dict(status=500), "HTTP status 500"),
    "slow": (dict(rate="1k"), "[Tt]imeout|timed out"),      # the fetch timeout is 1 s
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_gives_eio_until_fixed(env, remote, fault):
    """nginx configured with an error status or limit_rate: EIO; then
    configured without: the read succeeds."""
    conf, said = FAULTS[fault]
    src, img, _ = attached(env, remote)
    remote.server.fault(**conf)
    remote.server.reset_counts()
    assert errno_of(lambda: rd(remote.p("r", "blob02"))) == errno.EIO
    url_offset_logged(remote, f"(?:{said})")
    if fault == "error":
        # each failed fetch was tried again twice before the read failed
        faulted = remote.server.statuses()
        assert faulted and set(faulted) == {500} and len(faulted) % 3 == 0, faulted
        assert "tried again, failed again" in remote.m.log()
    remote.server.fault()
    got, want = blob(remote, src, 2)
    assert got == want


def test_truncated_file_gives_eio_until_restored(env, remote):
    """The served image cut short (nginx answers 416 past its end, with a
    new ETag): EIO for what is gone; the file put back, mtime and all, reads
    again."""
    src, img, _ = attached(env, remote)
    data, st = rd(img), os.stat(img)
    off = data.find(rd(os.path.join(src, "blob03"))[:4096])
    assert off > 0
    os.truncate(img, off // CHUNK * CHUNK)
    assert errno_of(lambda: rd(remote.p("r", "blob03"))) == errno.EIO
    url_offset_logged(remote, "")
    wfile(img, data)
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns))
    got, want = blob(remote, src, 3)
    assert got == want


def test_reset_mid_body_gives_eio_until_fixed(env, python_remote):
    """On tests/range_server.py: nginx cannot reset a connection in the
    middle of a body."""
    remote = python_remote
    src, img, _ = attached(env, remote)
    remote.server.reset_after = 1000
    assert errno_of(lambda: rd(remote.p("r", "blob02"))) == errno.EIO
    url_offset_logged(remote, "(?:[Rr]eset|closed|does not match the range|[Rr]ecv failure)")
    assert remote.server.faulted and remote.server.faulted % 3 == 0, remote.server.faulted
    assert "tried again, failed again" in remote.m.log()
    remote.server.reset_after = None
    got, want = blob(remote, src, 2)
    assert got == want


@pytest.mark.parametrize("attr, value", [("status", 500), ("reset_after", 1000)])
def test_a_single_fault_is_tried_again(env, python_remote, attr, value):
    """On tests/range_server.py: nginx cannot fail exactly one request."""
    remote = python_remote
    src, img, _ = attached(env, remote)
    before = remote.remote_layer()["remote"]
    remote.server.faults = 1
    setattr(remote.server, attr, value)
    got, want = blob(remote, src, 2)
    assert got == want
    assert remote.server.faulted == 1
    after = remote.remote_layer()["remote"]
    assert after["failures"] == before["failures"] == 0, after
    assert after["requests"] > before["requests"] + 1, (before, after)


def test_presigned_url_query_is_not_shown(env, remote):
    src = make_tree(env, big_files=1)
    img, digest = pack(env, src, "img.sqfs")
    secret = "X-Amz-Signature=0123456789abcdef"
    url = remote.server.url("img.sqfs") + "?X-Amz-Expires=60&" + secret
    r = env.veneer("attach", "--cache-dir", remote.cache, "--digest", digest, "--fetch-timeout",
                   "1", remote.mnt, url, "/r")
    assert r.returncode == 0, r.stderr
    assert rd(remote.p("r", "small.txt")) == rd(os.path.join(src, "small.txt"))
    shown = remote.server.url("img.sqfs") + "?\u2026"
    assert shown in r.stdout and secret not in r.stdout, r.stdout
    assert any(l.get("source") == shown for l in remote.status()["layers"]), remote.status()
    remote.server.fault(status=500)
    assert errno_of(lambda: rd(remote.p("r", "blob00"))) == errno.EIO
    text = env.veneer("status", remote.mnt).stdout + remote.m.log()
    assert shown in text, text
    assert secret not in text and "X-Amz-Expires" not in text, text


@pytest.mark.parametrize("same_validator", [True, False])
def test_changed_image_on_the_server_never_gives_mixed_content(env, remote, same_validator):
    """A byte of the served file rewritten; nginx's ETag is its size and
    mtime: the same validator when the mtime is put back, a new one when
    not."""
    src, img, digest = attached(env, remote)
    data = rd(img)
    want = rd(os.path.join(src, "blob02"))
    off = data.find(want[:4096])
    assert off > 0            # stored uncompressed: its bytes are in the image
    st = os.stat(img)
    flip(img, off + 5000)
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + (0 if same_validator else 1_000_000_000)))
    assert errno_of(lambda: rd(remote.p("r", "blob02"))) == errno.EIO
    log = remote.m.log()
    if same_validator:
        assert re.search(re.escape(remote.server.url("img.sqfs")) +
                         r": corrupt image: data block at offset \d+ does not match", log), log
    else:
        url_offset_logged(remote, "the file changed on the server")


def test_prefetch_warms_the_cache_for_another_mount_and_an_outage(env, remote):
    src = make_tree(env, big_files=4)
    _, digest = pack(env, src, "img.sqfs")
    assert remote.attach("img.sqfs", "/r", "--digest", digest).returncode == 0
    r = env.veneer("prefetch", remote.mnt, "/r")
    assert r.returncode == 0, r.stderr
    files = sum(len(fs) for _, _, fs in os.walk(src)) - 1     # the symlink is not read
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(src) for f in fs
               if not os.path.islink(os.path.join(d, f)))
    assert r.stdout.strip() == f"prefetched {files} files, {size} bytes", r.stdout
    # a second mount with the same cache reads everything without the network
    remote.server.reset_counts()
    mnt, _ = another_mount(env, remote, digest, "mnt2")
    check_tree(src, os.path.join(mnt, "r"))
    for i in range(4):
        assert rd(os.path.join(mnt, "r", f"blob{i:02d}")) == rd(os.path.join(src, f"blob{i:02d}"))
    assert remote.server.count() == 1, remote.server.requests
    r = env.veneer("prefetch", remote.mnt, "/r/nothere")
    assert r.returncode == 1 and "nothere" in r.stderr

    # with the server down, a pinned image attaches from the cache alone
    remote.server.stop()
    mnt3, m3 = another_mount(env, remote, digest, "mnt3")
    check_tree(src, os.path.join(mnt3, "r"))
    for i in range(4):
        assert rd(os.path.join(mnt3, "r", f"blob{i:02d}")) == rd(os.path.join(src, f"blob{i:02d}"))
    assert "attaching from the chunk cache" in m3.log()
    # an unpinned one cannot be: nothing says which cached image it would be
    r = env.veneer("attach", "--cache-dir", remote.cache, mnt3, remote.server.url("img.sqfs"),
                   "/u")
    assert r.returncode != 0 and remote.server.url("img.sqfs") in r.stderr, r.stderr


def every_read(root, src):
    """{relative path: "ok" or "EIO"} for each file of SRC read under ROOT;
    anything else (wrong bytes, another error) fails."""
    out = {}
    for d, _, files in os.walk(src):
        for f in files:
            rel = os.path.relpath(os.path.join(d, f), src)
            if os.path.islink(os.path.join(src, rel)):
                continue
            try:
                got = rd(os.path.join(root, rel))
            except OSError as e:
                assert e.errno == errno.EIO, (rel, e)
                out[rel] = "EIO"
                continue
            assert got == rd(os.path.join(src, rel)), rel
            out[rel] = "ok"
    return out


@pytest.mark.parametrize("where", ["metadata", "tree"])
def test_flipped_metadata_or_tree_byte_on_the_server(env, remote, where):
    """A byte changed in the inode table or in the lowest level of the hash
    tree of a served image: the attach is refused, or reads give EIO or the
    right bytes, never others."""
    src = make_tree(env, big_files=4)
    img, digest = pack(env, src, "img.sqfs")
    with open(img, "rb") as f:
        sb = f.read(96)
    inode_start = int.from_bytes(sb[64:72], "little")
    with open(img, "rb") as f:
        f.seek(-64 + 32, os.SEEK_END)
        hash_offset = int.from_bytes(f.read(8), "little")
        tree_end = int.from_bytes(f.read(8), "little")
    # level 0 (the hashes of the data blocks) is the tree's last level; its
    # second block covers data blocks 128-255: file data, not the tables
    level0 = -(-hash_offset // BLOCK // 128)
    assert level0 >= 3
    flip(img, inode_start + 10 if where == "metadata" else tree_end - (level0 - 1) * BLOCK + 7)
    r = remote.attach("img.sqfs", "/r", "--digest", digest)
    if r.returncode != 0:       # the root inode's block: refused, and says why
        assert where == "metadata" and "corrupt" in r.stderr, r.stderr
        return
    results = every_read(remote.p("r"), src)
    assert "EIO" in results.values(), results
    assert re.search(re.escape(remote.server.url("img.sqfs")) + ": corrupt image: ",
                     remote.m.log())


# ---- the trace ----

def test_the_trace_shows_each_fetch(env, python_remote):
    """A fetch is a "fetch" record: the URL (query hidden), the range asked,
    the bytes received, the latency and the result; failed tries too.  On
    tests/range_server.py: one request fails, which nginx cannot do."""
    remote = python_remote
    src = make_tree(env, big_files=2)
    img, digest = pack(env, src, "img.sqfs")
    url = remote.server.url("img.sqfs")
    r = remote.attach("img.sqfs?sig=secret", "/r", "--digest", digest)
    assert r.returncode == 0, r.stderr
    watch = Watcher(remote.mnt, "--op", "fetch", "--json")
    text = Watcher(remote.mnt, "--op", "fetch")
    remote.server.reset_counts()
    remote.server.status, remote.server.faults = 500, 1
    got, want = blob(remote, src, 0)
    assert got == want
    settle()
    recs, _ = watch.records()
    lines, _ = text.stop()
    assert recs and all(x["op"] == "fetch" and x["url"] == url + "?\u2026" and
                        x["target"] == "remote" and x["latency_us"] >= 0 for x in recs), recs
    failed = [x for x in recs if x["result"] != "ok"]
    assert len(failed) == 1 and failed[0]["result"] == "EIO" and failed[0]["bytes"] == 0, recs
    ok = [(x["offset"], x["offset"] + x["size"] - 1) for x in recs if x["result"] == "ok"]
    assert sorted(ok) == sorted((a, b) for _, a, b in remote.server.requests), recs
    assert all(x["bytes"] == x["size"] for x in recs if x["result"] == "ok"), recs
    assert "secret" not in lines
    rows = [l for l in lines.splitlines() if " fetch " in l]
    assert len(rows) == len(recs), lines
    assert all("remote" in l and url + "?\u2026" in l and " off=" in l for l in rows), lines


# ---- verify ----

def test_verify_a_remote_image(env):
    """veneer verify URL fetches every block (the chunk cache is its own,
    under $TMPDIR, removed after) and says what it says of a local image."""
    r = Remote(env, tls=True)
    try:
        src = make_tree(env, big_files=2)
        img, digest = pack(env, src, "img.sqfs")
        url = r.server.url("img.sqfs")
        bad = env.veneer("verify", url)
        assert bad.returncode == 1 and "certificate" in bad.stderr.lower(), bad.stderr
        tmpdir = env.mkdir("verify-tmp")
        ok = env.veneer("verify", "--cacert", r.cert, "--digest", digest, url + "?sig=secret",
                        env={"TMPDIR": tmpdir})
        assert ok.returncode == 0, ok.stderr
        assert os.listdir(tmpdir) == []         # its chunk cache was there, and is gone
        gone = env.path("no-such-tmp")
        t = env.veneer("verify", "--cacert", r.cert, url, env={"TMPDIR": gone})
        assert t.returncode == 1 and f"'{gone}/veneer-verify." in t.stderr, t.stderr
        local = env.veneer("verify", img)
        assert ok.stdout == local.stdout.replace(img, url + "?\u2026"), (ok.stdout, local.stdout)
        assert "secret" not in ok.stdout + ok.stderr
        # every byte of the image was fetched, each once
        assert r.server.bytes_served() == os.path.getsize(img)
        wrong = "sha256:" + "f" * 64
        w = env.veneer("verify", "--cacert", r.cert, "--digest", wrong, url)
        assert w.returncode == 1 and wrong in w.stderr and digest in w.stderr, w.stderr

        off = rd(img).find(rd(os.path.join(src, "blob01"))[:4096])
        assert off > 0
        flip(img, off + 100)
        block = (off + 100) // BLOCK * BLOCK
        f = env.veneer("verify", "--cacert", r.cert, url)
        l = env.veneer("verify", img)
        assert f.returncode == l.returncode == 1
        assert f"data block at offset {block} does not match" in f.stderr, f.stderr
        assert "1 of " in f.stderr and "1 of " in l.stderr, (f.stderr, l.stderr)
    finally:
        r.server.stop()


# ---- the request-count targets, as nginx logs them ----

def counted_image(env):
    """An image of about 33 MiB: 128 incompressible 256 KiB blobs (stored
    uncompressed, so each is found in the image by its bytes), each followed
    by a text file of 4 KiB (in fragment blocks, written between the blobs'
    data as they fill).  Returns (src, image, digest, regions), regions
    giving where the squashfs metadata and the tree are."""
    src = make_tree(env, big_files=128)
    for i in range(128):
        wfile(os.path.join(src, f"blob{i:02d}.4k"),
              b"".join(b"4 KiB file %03d, line %03d\n" % (i, j) for j in range(4096 // 26))
              .ljust(4096, b"."))
    img, digest = pack(env, src, "img.sqfs")
    with open(img, "rb") as f:
        sb = f.read(96)
        f.seek(-64 + 32, os.SEEK_END)
        hash_offset = int.from_bytes(f.read(8), "little")
        tree_end = int.from_bytes(f.read(8), "little")
    level0 = -(-hash_offset // BLOCK // 128)
    regions = {
        "metadata": (int.from_bytes(sb[64:72], "little"), int.from_bytes(sb[40:48], "little")),
        "tree": (hash_offset, tree_end),
        "level0": tree_end - level0 * BLOCK,
        "size": os.path.getsize(img),
    }
    assert regions["size"] > 32 << 20
    return src, img, digest, regions


def chunks_of(a, b):
    """The chunks that bytes [a, b) touch."""
    return set(range(a // CHUNK, (b - 1) // CHUNK + 1)) if b > a else set()


def fetched_chunks(server):
    """{chunk: times fetched} from nginx's log; every range is whole chunks."""
    out = {}
    for _, a, b in server.requests:
        assert a % CHUNK == 0, (a, b)
        for c in chunks_of(a, b + 1):
            out[c] = out.get(c, 0) + 1
    return out


def region_of(regions, chunk):
    lo, hi = chunk * CHUNK, (chunk + 1) * CHUNK
    for name in ("metadata", "tree"):
        a, b = regions[name]
        if lo < b and a < hi:
            return name
    return "data"


def test_attach_costs_at_most_3_requests_before_the_first_lookup(env, remote):
    src, img, digest, _ = counted_image(env)
    remote.server.reset_counts()
    assert remote.attach("img.sqfs", "/r", "--digest", digest).returncode == 0
    assert os.stat(remote.p("r", "small.txt")).st_size == os.path.getsize(
        os.path.join(src, "small.txt"))
    log = remote.server.log()
    assert 1 <= remote.server.count() <= 3, log
    assert all(status in (200, 206) for _, _, _, status, _, _ in log), log


def test_attach_of_a_three_level_tree_costs_at_most_3_requests(env, remote):
    """Past 64 MiB the tree has three levels, each a block to read before
    the first lookup is answered: the superblock and the levels above
    level 0 come in one request (with the metadata that ends in front of
    them), the footer's chunk in another, besides the first chunk."""
    src = make_tree(env)
    for i in range(17):
        wfile(os.path.join(src, f"big{i:02d}"), os.urandom(4 << 20))
    img, digest = pack(env, src, "img.sqfs")
    with open(img, "rb") as f:
        f.seek(-64 + 32, os.SEEK_END)
        hash_offset = int.from_bytes(f.read(8), "little")
    assert hash_offset // BLOCK > 128 * 128         # three levels
    remote.server.reset_counts()
    assert remote.attach("img.sqfs", "/r", "--digest", digest).returncode == 0
    assert rd(remote.p("r", "small.txt")) == rd(os.path.join(src, "small.txt"))
    assert remote.server.count() <= 3, remote.server.log()


def test_a_cold_4k_file_fetches_one_data_chunk_and_its_path(env, remote):
    """Reading one 4 KiB file, cold, after the attach and a lookup: one
    chunk of data, and otherwise only chunks of the squashfs metadata and of
    the hash tree, at most one per tree level."""
    src, img, digest, regions = counted_image(env)
    assert remote.attach("img.sqfs", "/r", "--digest", digest).returncode == 0
    os.stat(remote.p("r", "small.txt"))
    remote.server.reset_counts()
    name = "blob64.4k"
    assert rd(remote.p("r", name)) == rd(os.path.join(src, name))
    got = fetched_chunks(remote.server)
    where = {c: region_of(regions, c) for c in got}
    data = [c for c in got if where[c] == "data"]
    tree = [c for c in got if where[c] == "tree"]
    levels = 1
    blocks = -(-regions["tree"][0] // BLOCK)
    while blocks > 128:
        blocks, levels = -(-blocks // 128), levels + 1
    assert len(data) == 1, where          # cold: its fragment block was not fetched
    assert len(tree) <= levels, (where, levels)
    assert all(n == 1 for n in got.values()), got
    assert remote.server.count() <= 1 + len(tree) + 2, remote.server.log()


def test_a_workload_fetches_at_most_1_1x_the_chunks_it_touches(env, remote):
    """40 of the 128 blobs read whole: the bytes nginx sent are at most 1.1x
    the chunks those reads touch -- the blobs' own chunks, the chunks of
    their level-0 hash blocks, and (an upper bound of what a lookup needs)
    every chunk of the metadata, of the tree's upper levels, the first chunk
    and the last."""
    src, img, digest, regions = counted_image(env)
    data = rd(img)
    remote.server.reset_counts()
    assert remote.attach("img.sqfs", "/r", "--digest", digest).returncode == 0
    touched = {0, (regions["size"] - 1) // CHUNK}
    touched |= chunks_of(*regions["metadata"])
    touched |= chunks_of(regions["tree"][0], regions["level0"])
    for i in range(0, 120, 3):
        want = rd(os.path.join(src, f"blob{i:02d}"))
        off = data.find(want[:4096])
        assert off > 0 and data[off:off + len(want)] == want
        assert rd(remote.p("r", f"blob{i:02d}")) == want
        touched |= chunks_of(off, off + len(want))
        for blk in range(off // BLOCK, (off + len(want) - 1) // BLOCK + 1):
            h = regions["level0"] + blk // 128 * BLOCK
            touched |= chunks_of(h, h + BLOCK)
    touched_bytes = sum(min(CHUNK, regions["size"] - c * CHUNK) for c in touched)
    served = remote.server.bytes_served()
    got = fetched_chunks(remote.server)
    assert served <= 1.1 * touched_bytes, (served, touched_bytes, sorted(set(got) - touched))
    assert all(n == 1 for n in got.values()), got


def test_a_long_sequential_read_fetches_ahead_in_larger_requests(env, remote):
    """A cold read of an 8 MiB file (128 chunks, stored uncompressed) read
    from start to end: once the stream passed 1 MiB the reader fetches the
    chunks behind each read with it, one for every 16 chunks read, so the
    file's data takes fewer requests than its reads (64 without read-ahead,
    each of at most 3 chunks; measured with it: 43, up to 7 chunks), each
    chunk once, and nothing past the end of the file beyond 1/16 of it
    (8 chunks)."""
    src = make_tree(env)
    want = os.urandom(8 << 20)
    wfile(os.path.join(src, "long"), want)
    img, digest = pack(env, src, "img.sqfs")
    data = rd(img)
    off = data.find(want[:4096])
    assert off > 0 and data[off:off + len(want)] == want
    file_chunks = chunks_of(off, off + len(want))
    assert remote.attach("img.sqfs", "/r", "--digest", digest).returncode == 0
    os.stat(remote.p("r", "long"))
    remote.server.reset_counts()
    assert rd(remote.p("r", "long")) == want
    got = fetched_chunks(remote.server)
    data_requests = [(a, b) for _, a, b in remote.server.requests
                     if chunks_of(a, b + 1) & file_chunks]
    assert len(data_requests) <= 48, data_requests
    assert any(b + 1 - a >= 6 * CHUNK for a, b in data_requests), data_requests
    assert all(n == 1 for n in got.values()), got
    past = {c for c in got if c > max(file_chunks)}
    assert len(past) <= 8, sorted(past)
