"""The filter platform on a live mount: `veneer filter list`, messages to
filters' ports (`veneer filter send`, libveneer-client), the API versions
the loader accepts, live load and unload, and questions from a filter to a
policy program (vn_port_ask, vn_client_listen)."""
import errno
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import BUILD, NOBODY, SANITIZER, TOP, installed_pkg_config
from test_hostile import control_socket_path


def module(name):
    path = os.path.join(BUILD, "tests", name + "_filter.so")
    assert os.path.exists(path), f"test filter {path} was not built"
    return path


def mount_with_ports(env, extra=()):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    env.mount(lower, mnt, ["--filter", module("port")] + list(extra))
    return lower, mnt


def filters_json(env, mnt):
    r = env.veneer("filter", "list", "--json", mnt, check=True)
    return {f["name"]: f for f in json.loads(r.stdout)["filters"]}


def test_list_shows_the_stack(env):
    _, mnt = mount_with_ports(env)
    fs = filters_json(env, mnt)
    names = list(fs)
    # highest altitude first: trace, virtualize (1000), the test filter (500)
    assert names == ["trace", "virtualize", "test-ports"]
    p = fs["test-ports"]
    assert p["altitude"] == 500
    assert p["flags"] == ["opens-skippable", "data-skippable"]
    assert p["operations"] == ["unlink"]
    assert p["ports"] == ["echo", "deny", "fill"]
    assert p["state"] == "attached"
    assert p["origin"] == module("port")
    assert fs["trace"]["origin"] == "built-in"
    # the trace filter's watchers connect to its stream port
    assert "read" in fs["trace"]["operations"] and fs["trace"]["ports"] == ["watch"]
    # the virtualization filter serves veneer attach and detach on ports that only answer
    assert fs["virtualize"]["ports"] == ["attach", "detach"]
    assert "ports-answer-only" in fs["virtualize"]["flags"]
    text = env.veneer("filter", "list", mnt, check=True).stdout.splitlines()
    assert len(text) == 3
    assert text[2].startswith("test-ports altitude=500 ")
    assert "ops=unlink" in text[2] and "ports=echo,deny,fill" in text[2]
    assert " ops=all " in text[0] and "ports=watch " in text[0]


def test_list_without_trace(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    env.mount(lower, mnt, ["--no-trace"])
    assert list(filters_json(env, mnt)) == ["virtualize"]


def test_send_gets_the_reply(env):
    _, mnt = mount_with_ports(env)
    r = env.veneer("filter", "send", mnt, "test-ports/echo", "hello", "ports", check=True)
    assert r.stdout == "echo:hello ports\n"
    # without /PORT: the first port the filter opened (echo)
    r = env.veneer("filter", "send", mnt, "test-ports", "first", check=True)
    assert r.stdout == "echo:first\n"


def test_send_configures_the_filter(env):
    lower, mnt = mount_with_ports(env)
    for name in ("keep", "drop"):
        open(os.path.join(lower, name), "w").close()
    r = env.veneer("filter", "send", mnt, "test-ports/deny", "keep", check=True)
    assert r.stdout == "denying keep\n"
    with pytest.raises(PermissionError):
        os.unlink(os.path.join(mnt, "keep"))
    os.unlink(os.path.join(mnt, "drop"))
    assert os.path.exists(os.path.join(lower, "keep"))
    assert not os.path.exists(os.path.join(lower, "drop"))


def test_reply_at_the_bound(env):
    _, mnt = mount_with_ports(env)
    r = env.veneer("filter", "send", mnt, "test-ports/fill", str(64 * 1024), check=True)
    assert r.stdout == "x" * (64 * 1024) + "\n"
    r = env.veneer("filter", "send", mnt, "test-ports/fill", str(64 * 1024 + 1))
    assert r.returncode == 1
    assert "reply over 65536 bytes" in r.stderr


def test_send_refusals(env):
    _, mnt = mount_with_ports(env)
    r = env.veneer("filter", "send", mnt, "no-such-filter", "x")
    assert r.returncode == 1 and "no filter 'no-such-filter'" in r.stderr
    r = env.veneer("filter", "send", mnt, "test-ports/nope", "x")
    assert r.returncode == 1 and "filter 'test-ports' has no port 'nope'" in r.stderr
    r = env.veneer("filter", "send", mnt, "virtualize/nope", "x")
    assert r.returncode == 1 and "filter 'virtualize' has no port 'nope'" in r.stderr
    r = env.veneer("filter", "send", mnt, "trace", "x")
    assert r.returncode == 1 and "port 'watch' of filter 'trace' streams" in r.stderr
    # the filter's own refusal comes back with its reason, or else its errno
    r = env.veneer("filter", "send", mnt, "test-ports/fill", "many")
    assert r.returncode == 1
    assert "filter 'test-ports' port 'fill': 'many' is not a number" in r.stderr
    r = env.veneer("filter", "send", mnt, "test-ports/fill", "999999999")
    assert r.returncode == 1
    assert "port 'fill': " + os.strerror(errno.EINVAL) in r.stderr
    # a built-in's reason alone
    r = env.veneer("filter", "send", mnt, "virtualize/attach", "x")
    assert r.returncode == 1
    assert "veneer: filter: attach: the message is not fields each ended by a NUL\n" == r.stderr
    r = env.veneer("filter", "send", mnt, "test-ports/echo", "y" * (64 * 1024 + 1))
    assert r.returncode == 1 and "over the limit of 65536" in r.stderr
    # a message at the bound goes through; its echo (5 bytes longer) would not
    r = env.veneer("filter", "send", mnt, "test-ports/echo", "y" * (64 * 1024))
    assert r.returncode == 1 and "gave a reply over 65536 bytes" in r.stderr
    r = env.veneer("filter", "send", mnt, "test-ports/echo", "y" * (64 * 1024 - 5))
    assert r.returncode == 0 and r.stdout == "echo:" + "y" * (64 * 1024 - 5) + "\n"
    r = env.veneer("filter", "send", mnt, "test-ports/echo")
    assert r.returncode == 2 and r.stderr.startswith("usage:")


def test_other_users_are_refused(env):
    _, mnt = mount_with_ports(env)
    for args in (("list", mnt), ("send", mnt, "test-ports/deny", "x")):
        r = env.veneer("filter", *args, user=NOBODY)
        assert r.returncode == 1
        assert "permission" in r.stderr.lower() or "no veneer mount" in r.stderr
    # nothing was configured by the refused sender
    r = env.veneer("filter", "send", mnt, "test-ports/echo", "still", check=True)
    assert r.stdout == "echo:still\n"


def test_list_of_a_path_that_is_no_mount(env):
    d = env.mkdir("plain")
    r = env.veneer("filter", "list", d)
    assert r.returncode == 1 and "no veneer mount" in r.stderr


@pytest.mark.parametrize("version", [2, 3])
def test_older_version_filter_is_served(env, version):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    env.mount(lower, mnt, ["--filter", module(f"v{version}")])
    with pytest.raises(PermissionError):
        os.mkdir(os.path.join(mnt, f"v{version}-refused"))
    os.mkdir(os.path.join(mnt, "fine"))
    assert os.path.isdir(os.path.join(lower, "fine"))
    name = f"test-v{version}"
    assert filters_json(env, mnt)[name]["ports"] == []
    if version == 3:
        # its teardown (a version 3 field) is read: it refuses unless forced
        r = env.veneer("filter", "unload", mnt, name)
        assert r.returncode == 1 and "refused to unload" in r.stderr
    env.veneer("filter", "unload", mnt, name, "--force", check=True)
    assert name not in filters_json(env, mnt)


def test_export_list_is_the_filter_api():
    """src/filter_api.list names exactly the functions filter.h declares VN_PUBLIC."""
    with open(os.path.join(TOP, "include", "veneer", "filter.h")) as f:
        declared = set(re.findall(r"^VN_PUBLIC [^(]*?\b(vn_\w+)\(", f.read(), re.M))
    with open(os.path.join(TOP, "src", "filter_api.list")) as f:
        exported = set(re.findall(r"^\s*(vn_\w+);", f.read(), re.M))
    assert len(declared) > 20 and declared == exported


# ---- live load and unload ----

def test_load_and_unload_live(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    open(os.path.join(lower, "keep"), "w").close()
    env.mount(lower, mnt)
    r = env.veneer("filter", "load", mnt, module("port"), check=True)
    assert r.stdout == f"loaded filter test-ports from {module('port')}\n"
    p = filters_json(env, mnt)["test-ports"]
    assert p["loaded"] == "live" and p["ports"] == ["echo", "deny", "fill"]
    assert filters_json(env, mnt)["trace"]["loaded"] == "mount"
    # it sees operations that start after the load
    env.veneer("filter", "send", mnt, "test-ports/deny", "keep", check=True)
    with pytest.raises(PermissionError):
        os.unlink(os.path.join(mnt, "keep"))
    # its teardown refuses while a name is denied; the refusal leaves it in place
    r = env.veneer("filter", "unload", mnt, "test-ports")
    assert r.returncode == 1
    assert "refused to unload: " + os.strerror(errno.EBUSY) in r.stderr and "--force" in r.stderr
    assert "test-ports" in filters_json(env, mnt)
    with pytest.raises(PermissionError):
        os.unlink(os.path.join(mnt, "keep"))
    r = env.veneer("filter", "unload", mnt, "test-ports", "--force", check=True)
    assert r.stdout == "unloaded filter test-ports\n"
    assert "test-ports" not in filters_json(env, mnt)
    os.unlink(os.path.join(mnt, "keep"))
    assert not os.path.exists(os.path.join(lower, "keep"))
    # loaded again: fresh state, and a plain unload now goes through
    env.veneer("filter", "load", mnt, module("port"), check=True)
    r = env.veneer("filter", "send", mnt, "test-ports/echo", "again", check=True)
    assert r.stdout == "echo:again\n"
    env.veneer("filter", "unload", mnt, "test-ports", check=True)
    r = env.veneer("filter", "send", mnt, "test-ports/echo", "gone")
    assert r.returncode == 1 and "no filter 'test-ports'" in r.stderr


def read_counts(path):
    with open(path) as f:
        return {k: int(v) for k, v in (kv.split("=") for kv in f.read().split())}


def test_unload_frees_contexts_of_nodes_and_open_files(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    for i in range(20):
        with open(os.path.join(lower, f"f{i}"), "w") as f:
            f.write("x")
    env.mount(lower, mnt, ["--opens=send"])
    report = env.path("contexts.txt")
    env.veneer("filter", "load", mnt, module("context") + ":" + report, check=True)
    for i in range(20):
        with open(os.path.join(mnt, f"f{i}")) as f:
            f.read()
    held = open(os.path.join(mnt, "f0"))
    c = read_counts(report)
    assert c["node_allocs"] >= 20 and c["file_allocs"] >= 21
    env.veneer("filter", "unload", mnt, "test-contexts", check=True)
    c = read_counts(report)
    # every context went: the nodes the kernel still knows and the file still open
    assert c["node_frees"] == c["node_allocs"] and c["file_frees"] == c["file_allocs"]
    assert held.read() == "x"
    held.close()
    assert os.listdir(mnt)


def test_load_refusals(env):
    mnt = env.mkdir("lower")
    env.mount(mnt, args=["--opens=skip"])   # in place, where skipping is allowed
    r = env.veneer("filter", "load", mnt, env.path("nope.so"))
    assert r.returncode == 1 and "nope.so" in r.stderr
    r = env.veneer("filter", "load", mnt, module("bad_version"))
    assert r.returncode == 1 and "built for filter API 103" in r.stderr
    assert "loads 2 to 5" in r.stderr and "update veneer" in r.stderr
    r = env.veneer("filter", "load", mnt, module("bad_size"))
    assert r.returncode == 1 and "struct vn_filter_ops of 0 bytes" in r.stderr
    assert ".size = sizeof(struct vn_filter_ops)" in r.stderr
    # the daemon exports only the filter API: its internals stay out of reach
    r = env.veneer("filter", "load", mnt, module("internal"))
    assert r.returncode == 1 and "undefined symbol: fm_find" in r.stderr
    r = env.veneer("filter", "load", mnt, module("no_entry"))
    assert r.returncode == 1 and "vn_filter_entry" in r.stderr
    # a filter that needs every open cannot be added where the kernel skips them
    r = env.veneer("filter", "load", mnt, module("context") + ":" + env.path("c.txt"))
    assert r.returncode == 1
    assert "handles opens" in r.stderr and "--opens=send" in r.stderr
    r = env.veneer("filter", "load", mnt, module("port"), user=NOBODY)
    assert r.returncode == 1
    assert "permission" in r.stderr.lower() or "no veneer mount" in r.stderr
    env.veneer("filter", "load", mnt, module("port"), check=True)
    r = env.veneer("filter", "load", mnt, module("port"))
    assert r.returncode == 1 and "already loaded" in r.stderr
    assert list(filters_json(env, mnt)) == ["trace", "virtualize", "test-ports"]


def test_unload_refusals(env):
    _, mnt = mount_with_ports(env)
    r = env.veneer("filter", "unload", mnt, "no-such")
    assert r.returncode == 1 and "no filter 'no-such'" in r.stderr
    r = env.veneer("filter", "unload", mnt, "trace")
    assert r.returncode == 1 and "built in" in r.stderr
    r = env.veneer("filter", "unload", mnt, "test-ports", user=NOBODY)
    assert r.returncode == 1
    assert "test-ports" in filters_json(env, mnt)
    r = env.veneer("filter", "unload", mnt)
    assert r.returncode == 2 and r.stderr.startswith("usage:")
    # a filter loaded at mount may be unloaded too
    env.veneer("filter", "unload", mnt, "test-ports", check=True)
    assert "test-ports" not in filters_json(env, mnt)


def test_unload_drains_pended_operations(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    env.mount(lower, mnt)
    env.veneer("filter", "load", mnt, module("pending"), check=True)
    errors = []

    def make(i):
        try:
            os.mkdir(os.path.join(mnt, f"d{i}"))
        except OSError as e:
            errors.append(e)
    threads = [threading.Thread(target=make, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    env.veneer("filter", "unload", mnt, "test-pending", check=True)
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert sorted(os.listdir(lower)) == sorted(f"d{i}" for i in range(30))


# ---- load and unload over the control socket itself: no process per call ----

def control_socket(mnt):
    """The mount's control socket, where the daemon's runtime directory is."""
    base = os.environ.get("VENEER_RUNTIME_DIR") or (
        "/run" if os.geteuid() == 0 else os.environ["XDG_RUNTIME_DIR"])
    p = control_socket_path(mnt, base)
    assert os.path.exists(p), p
    return p


def control(sock, *fields):
    """One request on a connection of its own; (ok, text or message)."""
    body = b"".join(f.encode() + b"\0" for f in fields)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(60)
        s.connect(sock)
        s.sendall(struct.pack("<I", len(body)) + body)
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack("<I", data[:4])[0]:
            chunk = s.recv(65536)
            assert chunk, "the daemon closed the connection without a reply"
            data += chunk
    reply = data[4:4 + struct.unpack("<I", data[:4])[0]].rstrip(b"\0").split(b"\0")
    return reply[0] == b"ok", reply[-1].decode()


# Load/unload cycles of the stress test below: VENEER_FILTER_CYCLES (the
# issue's 10,000 under ASan and TSan, see the docstring), else what fits the
# time make check gives it.
FILTER_CYCLES = int(os.environ.get("VENEER_FILTER_CYCLES", "2000"))


@pytest.mark.stress
@pytest.mark.timeout(max(180, FILTER_CYCLES // 10))
def test_load_unload_cycles_under_load(env):
    """FILTER_CYCLES loads and unloads (each cycle one of four filters: one
    that pends, one with contexts, one with ports, one with a stream port)
    over the control socket, while four threads work in the mount and one
    keeps opening streams on the stream port: no operation fails or hangs,
    every stream that opened ends when its filter goes (closed before the
    filter's detach), no context leaks, and the stack ends as it began.
    10,000 cycles were run with VENEER_FILTER_CYCLES=10000: under ASan+UBSan
    in 25 s (38,708 rounds of work, 1,331 streams) and under TSan in 111 s
    (157,607 rounds, 1,890 streams), without a report (docs/filter-api.md,
    "Live load and unload")."""
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    for i in range(8):
        with open(os.path.join(lower, f"f{i}"), "w") as f:
            f.write(str(i))
    m = env.mount(lower, mnt, ["--opens=send"])
    sock = control_socket(mnt)
    stop = threading.Event()
    errors, done, streams = [], [0], [0, 0]   # streams: opened, refused

    def work(n):
        i = 0
        while not stop.is_set():
            d = os.path.join(mnt, f"w{n}-{i}")
            try:
                os.mkdir(d)
                with open(os.path.join(mnt, f"f{i % 8}")) as f:
                    assert f.read() == str(i % 8)
                os.stat(d)
                os.rmdir(d)
                done[0] += 1
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
                return
            i += 1
    def stream_client():
        body = b"stream\0test-stream\0ops\0\0"
        while not stop.is_set():
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(30)   # a stream its filter's unload did not end: an error
                    s.connect(sock)
                    s.sendall(struct.pack("<I", len(body)) + body)
                    first = s.recv(4096)
                    if first[4:].startswith(b"err\0"):
                        streams[1] += 1
                        time.sleep(0.001)   # not loaded now: no busy loop
                        continue
                    assert first[4:].startswith(b"ok\0"), first
                    streams[0] += 1
                    while s.recv(65536):   # until the daemon ends it
                        pass
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append("stream: " + repr(e))
                return
    workers = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    workers.append(threading.Thread(target=stream_client))
    for t in workers:
        t.start()
    report = env.path("contexts.txt")
    filters = (("test-pending", module("pending")),
               ("test-contexts", module("context") + ":" + report),
               ("test-ports", module("port")),
               ("test-stream", module("stream")))
    try:
        for cycle in range(FILTER_CYCLES):
            name, spec = filters[cycle % 4]
            ok, text = control(sock, "load", spec)
            assert ok and text == name, (cycle, text)
            ok, text = control(sock, "unload", name, "wait")
            assert ok, (cycle, text)
            assert not errors, (cycle, errors[:3])
    finally:
        stop.set()
        for t in workers:
            t.join(timeout=30)
    assert not any(t.is_alive() for t in workers), "an operation hung"
    assert not errors, errors[:3]
    assert done[0] > 0 and streams[1] > 0
    assert list(filters_json(env, mnt)) == ["trace", "virtualize"]
    with open(m.log_path) as f:
        detached = re.findall(r"stream-filter: detached with (\d+) streams open", f.read())
    assert len(detached) == FILTER_CYCLES // 4 and set(detached) <= {"0"}, detached[:5]
    print(f"{FILTER_CYCLES} cycles, {done[0]} rounds of work, {streams[0]} streams opened")
    c = read_counts(report)
    assert c["node_frees"] == c["node_allocs"] and c["file_frees"] == c["file_allocs"]
    assert sorted(os.listdir(lower)) == sorted(f"f{i}" for i in range(8))


def test_client_program_built_against_the_installed_package(env):
    """examples/port_client.c built only against the installed header, .pc file and library."""
    flags = installed_pkg_config(env, "veneer-client", "--cflags", "--libs")
    libdirs = [f[2:] for f in flags if f.startswith("-L")]
    assert libdirs and os.path.exists(os.path.join(libdirs[0], "libveneer-client.so"))
    # a library built with a sanitizer needs its runtime in the program too
    san = {"asan": ["-fsanitize=address,undefined"], "tsan": ["-fsanitize=thread"]}
    prog = env.path("port_client")
    subprocess.run(["cc", "-Wall", "-Werror", "-o", prog,
                    os.path.join(TOP, "examples", "port_client.c")] + flags
                   + san.get(SANITIZER, []), check=True)
    _, mnt = mount_with_ports(env)
    cenv = dict(os.environ, LD_LIBRARY_PATH=libdirs[0], ASAN_OPTIONS="detect_leaks=0")
    r = subprocess.run([prog, mnt, "test-ports", "echo", "from a program"], env=cenv,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "echo:from a program"
    r = subprocess.run([prog, mnt, "test-ports", "nope", "x"], env=cenv, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "no port 'nope'" in r.stderr
    # only vn_client_* leaves the library: its internals do not link
    internal = env.path("internal.c")
    with open(internal, "w") as f:
        f.write("int control_call(void);\nint main(void) { return control_call(); }\n")
    r = subprocess.run(["cc", "-o", env.path("internal"), internal] + flags
                       + san.get(SANITIZER, []), capture_output=True, text=True)
    assert r.returncode != 0 and "control_call" in r.stderr


# ---- filter -> client: questions from pended operations ----

def policy(env, mnt, *args):
    """Starts examples/policy.c as the client of scanner's port and waits until it is."""
    prog = os.path.join(BUILD, "tests", "policy_example")
    assert os.path.exists(prog), f"{prog} was not built"
    out = open(env.path("policy.out"), "w")
    p = subprocess.Popen([prog] + list(args[:-1]) + [mnt, "scanner", "policy"] + list(args[-1]),
                         stdout=out, stderr=subprocess.STDOUT,
                         env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        clients = filters_json(env, mnt)["scanner"]["clients"]
        if clients == [f"policy:{p.pid}"]:
            return p
        assert p.poll() is None, open(env.path("policy.out")).read()
        time.sleep(0.02)
    raise AssertionError("the policy program did not connect")


def stats(env, mnt):
    r = env.veneer("filter", "send", mnt, "scanner/stats", "x", check=True)
    return {k: int(v) for k, v in (kv.split("=") for kv in r.stdout.split())}


def stop_policy(p):
    p.terminate()
    assert p.wait(timeout=10) == 0


def test_pended_open_asks_the_policy_program(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    for name in ("plain", "x.secret"):
        with open(os.path.join(lower, name), "w") as f:
            f.write(name)
    with open(os.path.join(lower, "looks-fine"), "w") as f:
        f.write("EVIL payload")
    env.mount(lower, mnt, ["--opens=send", "--filter", module("scanner") + ":deny,5000"])
    # no client: the port's default (deny)
    with pytest.raises(PermissionError):
        open(os.path.join(mnt, "plain")).close()
    assert stats(env, mnt)["unconnected"] == 1
    p = policy(env, mnt, "--peek", ["*.secret", "head:EVIL*"])
    try:
        with open(os.path.join(mnt, "plain")) as f:
            assert f.read() == "plain"
        with pytest.raises(PermissionError):
            open(os.path.join(mnt, "x.secret")).close()
        # judged by its content: the scanner read it below the stack, from its pre
        with pytest.raises(PermissionError):
            open(os.path.join(mnt, "looks-fine")).close()
        s = stats(env, mnt)
        assert s["asked"] == 3 and s["answered"] == 3
        # the program read each file through the mount while deciding: not asked
        assert s["excluded"] == 3
        # one client per port
        r = subprocess.run([os.path.join(BUILD, "tests", "policy_example"), mnt, "scanner",
                            "policy"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "already has a client" in r.stderr
    finally:
        stop_policy(p)
    with open(env.path("policy.out")) as f:
        assert f.read() == "allow open /plain\ndeny open /x.secret\ndeny open /looks-fine\n"
    # the client left: the default again
    with pytest.raises(PermissionError):
        open(os.path.join(mnt, "plain")).close()
    assert stats(env, mnt)["unconnected"] == 2


def test_unanswered_question_times_out_to_the_default(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    with open(os.path.join(lower, "f"), "w") as f:
        f.write("data")
    env.mount(lower, mnt, ["--opens=send", "--threads", "1",
                           "--filter", module("scanner") + ":allow,300"])
    p = policy(env, mnt, "--slow", "3000", ["*"])
    try:
        results = []

        def opener():
            with open(os.path.join(mnt, "f")) as f:
                results.append(f.read())
        t = threading.Thread(target=opener)
        t.start()
        # the one worker is not held while the open waits for its answer
        assert os.stat(os.path.join(mnt, "f")).st_size == 4
        t.join(timeout=30)
        # the program would have said deny, too late: the default (allow) decided
        assert results == ["data"]
        s = stats(env, mnt)
        assert s["asked"] == 1 and s["timed_out"] == 1 and s["answered"] == 0
    finally:
        stop_policy(p)


def test_unload_fails_pending_questions(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    with open(os.path.join(lower, "f"), "w") as f:
        f.write("data")
    env.mount(lower, mnt, ["--opens=send"])
    env.veneer("filter", "load", mnt, module("scanner") + ":deny,60000", check=True)
    p = policy(env, mnt, "--slow", "60000", ["nothing"])
    try:
        errors = []

        def opener():
            try:
                open(os.path.join(mnt, "f")).close()
            except OSError as e:
                errors.append(e.errno)
        t = threading.Thread(target=opener)
        t.start()
        deadline = time.monotonic() + 20
        while stats(env, mnt)["asked"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        # the question is cancelled (the default: deny), so the unload need not wait a minute
        env.veneer("filter", "unload", mnt, "scanner", check=True, timeout=30)
        t.join(timeout=30)
        assert errors == [errno.EACCES]
    finally:
        stop_policy(p)
    with open(os.path.join(mnt, "f")) as f:
        assert f.read() == "data"
    # an idle client's stream ends with the filter: the program returns by itself
    env.veneer("filter", "load", mnt, module("scanner") + ":deny,60000", check=True)
    p = policy(env, mnt, [])
    env.veneer("filter", "unload", mnt, "scanner", check=True)
    assert p.wait(timeout=10) == 0


# ---- cancellation: FUSE INTERRUPT reaches the filter that pends ----

# Runs one system call in a child, where a signal with a handler interrupts
# it; the child prints the call's errno (0: it succeeded).
INTERRUPTIBLE_CALL = r"""
import ctypes, os, signal, sys
signal.signal(signal.SIGUSR1, lambda *_: None)
libc = ctypes.CDLL(None, use_errno=True)
call, path = sys.argv[1], sys.argv[2].encode()
print("ready", flush=True)
r = libc.mkdir(path, 0o755) if call == "mkdir" else libc.open(path, os.O_RDONLY)
print(ctypes.get_errno() if r < 0 else 0, flush=True)
"""


def interrupted_call(call, path):
    """The errno of CALL on PATH, interrupted by SIGUSR1 until it returns."""
    p = subprocess.Popen(["/usr/bin/python3", "-c", INTERRUPTIBLE_CALL, call, path],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "ready\n"   # the handler is in place
        deadline = time.monotonic() + 20
        # the signal may come before the request reaches the daemon: repeat it
        while p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
            p.send_signal(signal.SIGUSR1)
    finally:
        if p.poll() is None:
            p.kill()
        out = p.stdout.read()
        p.wait()
    assert p.returncode == 0, "the interrupted call did not return"
    return int(out)


def test_interrupt_reaches_the_filter_that_pends(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    env.mount(lower, mnt, ["--filter", module("pending")])
    # held until cancelled: only the cancel callback can end it, with EINTR
    assert interrupted_call("mkdir", os.path.join(mnt, "hold-1")) == errno.EINTR
    assert not os.path.exists(os.path.join(lower, "hold-1"))
    # the mount goes on: other pended operations still complete
    os.mkdir(os.path.join(mnt, "fine"))
    assert os.path.isdir(os.path.join(lower, "fine"))


def test_interrupt_withdraws_the_question(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    with open(os.path.join(lower, "f"), "w") as f:
        f.write("data")
    env.mount(lower, mnt, ["--opens=send", "--filter", module("scanner") + ":allow,600000"])
    # the program would answer in ten minutes: the application gives up first
    p = policy(env, mnt, "--slow", "600000", ["nothing"])
    try:
        assert interrupted_call("open", os.path.join(mnt, "f")) == errno.EINTR
        s = stats(env, mnt)
        assert s["asked"] >= 1 and s["interrupted"] == s["asked"] and s["answered"] == 0
    finally:
        stop_policy(p)
    with open(os.path.join(mnt, "f")) as f:
        assert f.read() == "data"


def test_exec_is_told_from_open(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    for name in ("tool", "denied-tool"):
        shutil.copy("/bin/true", os.path.join(lower, name))
    env.mount(lower, mnt, ["--opens=send", "--filter", module("scanner") + ":deny,5000"])
    p = policy(env, mnt, ["exec:/denied-*"])
    try:
        subprocess.run([os.path.join(mnt, "tool")], check=True, timeout=30)
        # the same file read, not executed: an open, which the exec-only rule lets through
        with open(os.path.join(mnt, "denied-tool"), "rb") as f:
            assert f.read(4) == b"\x7fELF"
        with pytest.raises(PermissionError):
            subprocess.run([os.path.join(mnt, "denied-tool")], timeout=30)
    finally:
        stop_policy(p)
    with open(env.path("policy.out")) as f:
        lines = f.read().splitlines()
    assert "allow exec /tool" in lines and "deny exec /denied-tool" in lines
    assert "allow open /denied-tool" in lines


# ---- stream ports (vn_port_open_stream, vn_client_stream, veneer filter stream) ----

def start_stream(env, mnt, target, *request):
    """`veneer filter stream` in the background, its frames into a file."""
    out = env.path(f"stream-{time.monotonic_ns()}.out")
    f = open(out, "wb")
    p = subprocess.Popen([env_veneer(), "filter", "stream", mnt, target] + list(request),
                         stdout=f, stderr=subprocess.PIPE)
    f.close()
    return p, out


def env_veneer():
    from conftest import VENEER
    return VENEER


def wait_for(pred, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def stop_stream(p):
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=15)
    return p.returncode, err.decode()


@pytest.mark.stress
def test_stream_port_frames_to_many_clients(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    env.mount(lower, mnt, ["--filter", module("stream")])
    assert filters_json(env, mnt)["test-stream"]["ports"] == ["ops"]
    # two text clients and a binary one, at once
    a, a_out = start_stream(env, mnt, "test-stream/ops")
    b, b_out = start_stream(env, mnt, "test-stream")   # the first port
    c, c_out = start_stream(env, mnt, "test-stream/ops", "binary")
    try:
        def all_connected():
            os.mkdir(os.path.join(mnt, f"probe-{time.monotonic_ns()}"))
            return all(b"mkdir /probe-" in read_bytes(o) for o in (a_out, b_out, c_out))
        wait_for(all_connected, what="three streams")
        os.mkdir(os.path.join(mnt, "seen-by-all"))
        wait_for(lambda: all(b"mkdir /seen-by-all" in read_bytes(o)
                             for o in (a_out, b_out, c_out)), what="the record")
    finally:
        results = [stop_stream(p) for p in (a, b, c)]
    assert all(rc == 0 for rc, _ in results), results
    # binary frames keep their NULs: each record comes as its own frame
    assert b"\0op\0mkdir /seen-by-all\n" in read_bytes(c_out)
    assert b"\0" not in read_bytes(a_out)


def test_trace_watchers_are_clients_of_the_trace_port(env):
    """`veneer trace` is one client of the trace filter's stream port; the
    shell form (words split at spaces) gets the same records."""
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    env.mount(lower, mnt)
    p, out = start_stream(env, mnt, "trace/watch", "json", "errors")
    try:
        def seen():
            try:
                os.stat(os.path.join(mnt, "nope"))
            except FileNotFoundError:
                pass
            return b'"path":"/nope"' in read_bytes(out)
        wait_for(seen, what="the failed lookup")
        os.mkdir(os.path.join(mnt, "fine"))
    finally:
        rc, err = stop_stream(p)
    assert rc == 0, err
    lines = [json.loads(line) for line in read_bytes(out).decode().splitlines()]
    assert lines and all(rec.get("result", "").startswith("E") or "dropped" in rec
                         for rec in lines), lines[:3]
    # the mkdir succeeded: not an error (its name's lookup before it failed, and is there)
    assert not any(rec.get("op") == "mkdir" for rec in lines)
    r = env.veneer("filter", "stream", mnt, "trace/watch", "json", "bogus=1", timeout=20)
    assert r.returncode == 1 and "bogus" in r.stderr


def test_stream_port_refusals(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    env.mount(lower, mnt, ["--filter", module("stream") + "", "--filter", module("port")])
    r = env.veneer("filter", "stream", mnt, "test-stream/ops", "refuse", timeout=20)
    assert r.returncode == 1 and "filter 'test-stream' port 'ops': refused as asked" in r.stderr
    r = env.veneer("filter", "stream", mnt, "test-stream/nope", timeout=20)
    assert r.returncode == 1 and "no port 'nope' of a filter 'test-stream'" in r.stderr
    r = env.veneer("filter", "stream", mnt, "test-ports/echo", timeout=20)
    assert r.returncode == 1 and "port 'echo' of filter 'test-ports' does not stream" in r.stderr
    r = env.veneer("filter", "send", mnt, "test-stream/ops", "x")
    assert r.returncode == 1 and "streams: it takes no messages" in r.stderr


@pytest.mark.stress
def test_slow_stream_client_never_holds_up_requests(env):
    """A client that stops reading: the filter's ring fills and drops, the
    requests go on, and the client hears how many it lost."""
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    env.mount(lower, mnt, ["--filter", module("stream")])
    r_fd, w_fd = os.pipe()
    p = subprocess.Popen([env_veneer(), "filter", "stream", mnt, "test-stream/ops"],
                         stdout=w_fd, stderr=subprocess.PIPE)
    os.close(w_fd)
    os.set_blocking(r_fd, False)

    def drain():
        try:
            return os.read(r_fd, 1 << 20)
        except BlockingIOError:
            return b""
    try:
        wait_for(lambda: (os.mkdir(os.path.join(mnt, f"p{time.monotonic_ns()}")) or True)
                 and drain(), what="the first frame")
        # nobody reads the pipe now: far more records than pipe + socket + ring hold
        start = time.monotonic()
        for i in range(3000):
            try:
                os.stat(os.path.join(mnt, f"missing-{i}-" + "x" * 150))
            except FileNotFoundError:
                pass
        assert time.monotonic() - start < 60, "requests waited for the stream's client"
        # reading again: what was queued comes, then the drop notice, then new records
        got = b""
        deadline = time.monotonic() + 30
        i = 0
        while b"mkdir /last-" not in got and time.monotonic() < deadline:
            chunk = drain()
            if not chunk:
                os.mkdir(os.path.join(mnt, f"last-{i}"))
                i += 1
                time.sleep(0.05)
            got += chunk
        assert b"mkdir /last-" in got
        dropped = sum(int(m) for m in re.findall(rb"# (\d+) dropped\n", got))
        assert dropped > 0
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=15)
        os.close(r_fd)


@pytest.mark.stress
def test_unload_ends_streams_before_detach(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    m = env.mount(lower, mnt)
    env.veneer("filter", "load", mnt, module("stream"), check=True)
    a, a_out = start_stream(env, mnt, "test-stream/ops")
    b, b_out = start_stream(env, mnt, "test-stream/ops", "binary")
    wait_for(lambda: (os.mkdir(os.path.join(mnt, f"p{time.monotonic_ns()}")) or True)
             and all(read_bytes(o) for o in (a_out, b_out)), what="both streams")
    env.veneer("filter", "unload", mnt, "test-stream", check=True)
    # the daemon ended both streams: the clients return on their own, no signal
    for p in (a, b):
        _, err = p.communicate(timeout=15)
        assert p.returncode == 0, err
    assert "stream-filter: detached with 0 streams open" in m.log()
    os.mkdir(os.path.join(mnt, "after"))
    assert os.path.isdir(os.path.join(lower, "after"))


# ---- the real tree below the stack (vn_real_open, vn_real_openat) ----

def test_filter_reads_the_real_file_from_its_pre(env):
    """From inside its pre (OPEN, LOOKUP) the filter reads the real file:
    no recursion into itself, no deadlock, even with one worker."""
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    with open(os.path.join(lower, "peek-a"), "w") as f:
        f.write("real bytes of a")
    with open(os.path.join(lower, "real.txt"), "w") as f:
        f.write("the root's real.txt")
    m = env.mount(lower, mnt, ["--opens=send", "--threads", "1", "--filter", module("stream")])
    p, out = start_stream(env, mnt, "test-stream/ops")
    try:
        wait_for(lambda: (os.stat(mnt) or True) and read_bytes(out), what="the stream")
        with open(os.path.join(mnt, "peek-a")) as f:
            assert f.read() == "real bytes of a"
        assert not os.path.exists(os.path.join(mnt, "peek-root"))
        wait_for(lambda: "real /real.txt: the root's real.txt" in m.log(), what="the log")
        assert "stream-filter: real peek-a: real bytes of a" in m.log()
    finally:
        stop_stream(p)
    text = read_bytes(out).decode()
    # the filter's own reads of the real files ran no operation through the stack
    assert text.count("open /peek-a") == 1
    assert "/real.txt" not in text
