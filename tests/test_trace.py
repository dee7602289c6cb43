"""The trace filter: records of every operation (trace file and live watchers),
and the statistics of `veneer status`."""
import errno
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import VENEER, pack, rd, wfile




def records(path):
    with open(path) as f:
        lines = f.read().splitlines()
    return [json.loads(line) for line in lines]  # every line is valid JSON


def find(recs, **want):
    return [r for r in recs if all(r.get(k) == v for k, v in want.items())]


def scripted(mnt):
    """A fixed sequence of operations, with failures; returns what it expects to see."""
    p = os.path.join(mnt, "work")
    os.mkdir(p)
    wfile(os.path.join(p, "a"), b"hello trace")
    assert rd(os.path.join(p, "a")) == b"hello trace"
    os.rename(os.path.join(p, "a"), os.path.join(p, "b"))
    try:
        os.open(os.path.join(p, "missing"), os.O_RDONLY)
    except FileNotFoundError:
        pass
    try:
        os.rmdir(p)
    except OSError as e:
        assert e.errno == errno.ENOTEMPTY
    os.unlink(os.path.join(p, "b"))
    assert rd(os.path.join(mnt, "pkg", "v.txt")) == b"virtual bytes"
    try:
        os.unlink(os.path.join(mnt, "pkg", "v.txt"))
    except OSError as e:
        assert e.errno == errno.EROFS


def test_trace_file_records_a_scripted_sequence(env):
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    img = pack(env, {"v.txt": b"virtual bytes"})
    tfile = env.path("trace.jsonl")
    m = env.mount(lower, mnt, args=["--trace", tfile, "--layer", img + ":/pkg"])
    scripted(mnt)
    m.stop()
    recs = records(tfile)
    me = os.getpid()
    for r in recs:
        for key in ("time", "pid", "comm", "uid", "op", "path", "result", "target",
                    "latency_us"):
            assert key in r, (key, r)
    mine = [r for r in recs if r["pid"] == me]
    assert mine and all(r["comm"].startswith("python") for r in mine)
    assert all(r["uid"] == os.getuid() for r in mine)
    assert find(recs, op="mkdir", path="/work", result="ok", target="real")
    assert find(recs, op="rmdir", path="/work", result="ENOTEMPTY")
    assert find(recs, op="create", path="/work/a", result="ok")
    w = find(recs, op="write", path="/work/a")
    assert w and w[0]["bytes"] == 11 and w[0]["offset"] == 0 and w[0]["size"] == 11
    rd_ = find(recs, op="read", path="/work/a")
    assert rd_ and rd_[0]["bytes"] == 11
    assert find(recs, op="rename", path="/work/a", newpath="/work/b", result="ok")
    assert find(recs, op="lookup", path="/work/missing", result="ENOENT")
    assert find(recs, op="unlink", path="/work/b", result="ok")
    v = find(recs, op="read", path="/pkg/v.txt")
    assert v and v[0]["target"] == "virtual" and v[0]["origin"] == "layer 1"
    assert v[0]["bytes"] == len(b"virtual bytes")
    assert find(recs, op="lookup", path="/pkg/v.txt", target="virtual", origin="layer 1")
    assert find(recs, op="unlink", path="/pkg/v.txt", result="EROFS")
    # records come in completion order, with wall times that never go far back
    assert all(isinstance(r["latency_us"], int) and r["latency_us"] >= 0 for r in recs)


def test_trace_file_inside_the_mount_goes_through_the_lower(env):
    lower = env.mkdir("lower")
    os.makedirs(os.path.join(lower, "logs"))
    tfile = os.path.join(lower, "logs", "trace.jsonl")
    m = env.mount(lower, args=["--trace", tfile])
    wfile(os.path.join(lower, "x"), b"x")
    assert rd(os.path.join(lower, "x")) == b"x"
    m.stop()
    recs = records(tfile)
    assert find(recs, op="create", path="/x")
    # writing the trace file itself never went through the mount
    assert not [r for r in recs if r["path"].startswith("/logs/trace")]


def test_trace_file_errors(env):
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    r = env.veneer("mount", "--trace", env.path("no", "such", "dir", "t.jsonl"), lower, mnt)
    assert r.returncode != 0 and "t.jsonl" in r.stderr and r.stderr.startswith("veneer:")
    r = env.veneer("mount", "--trace", lower + "/", lower, mnt)
    assert r.returncode != 0 and "trace" in r.stderr


def test_status_statistics(env):
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    img = pack(env, {"v.txt": b"virtual bytes"})
    env.mount(lower, mnt, args=["--cache=never", "--layer", img + ":/pkg"])
    wfile(os.path.join(mnt, "f"), b"12345")
    for _ in range(3):
        assert rd(os.path.join(mnt, "f")) == b"12345"
    assert rd(os.path.join(mnt, "pkg", "v.txt")) == b"virtual bytes"
    for _ in range(4):
        assert not os.path.exists(os.path.join(mnt, "nothing"))
    st = json.loads(env.veneer("status", "--json", mnt, check=True).stdout)
    ops = st["operations"]
    assert ops["write"]["count"] >= 1 and ops["write"]["errors"] == 0
    assert ops["read"]["count"] >= 2 and ops["read"]["virtual"] >= 1
    assert ops["lookup"]["errors"] >= 4
    assert st["errors"]["ENOENT"] >= 4
    assert st["bytes"]["written"] == 5
    assert st["bytes"]["read_virtual"] == len(b"virtual bytes")
    assert st["bytes"]["read_real"] >= 5
    for o in ops.values():
        assert 0 <= o["p50_us"] <= o["p99_us"] <= o["max_us"]
        assert o["real"] + o["virtual"] == o["count"]
    assert st["layers"][0]["path"] == "/pkg"
    text = env.veneer("status", mnt, check=True).stdout
    assert "lookup" in text and "ENOENT" in text and "P99" in text


# ---- live watchers ----

class Watcher:
    def __init__(self, mnt, *args):
        self.proc = subprocess.Popen([VENEER, "trace", mnt] + list(args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
        time.sleep(0.3)  # the subscription is live once the daemon answered
        assert self.proc.poll() is None, self.proc.stderr.read()

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=20)
        assert self.proc.returncode == 0, err
        return out, err

    def records(self):
        out, err = self.stop()
        return [json.loads(line) for line in out.splitlines() if line.strip()], err


def settle():
    time.sleep(0.5)  # records reach the watcher's ring before it is stopped


def test_watchers_select_exactly_what_they_ask(env):
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    env.mount(lower, mnt, args=["--cache=never"])
    all_w = Watcher(mnt, "--json")
    reads = Watcher(mnt, "--json", "--op", "read,write", "--path", "/sel/*")
    errs = Watcher(mnt, "--json", "--errors")
    slow = Watcher(mnt, "--json", "--slow", "100000000")
    some = Watcher(mnt, "--json", "--slow", "2")
    text = Watcher(mnt)
    os.mkdir(os.path.join(mnt, "sel"))
    wfile(os.path.join(mnt, "sel", "one"), b"1")
    wfile(os.path.join(mnt, "other"), b"2")
    assert rd(os.path.join(mnt, "sel", "one")) == b"1"
    assert rd(os.path.join(mnt, "other")) == b"2"
    assert not os.path.exists(os.path.join(mnt, "sel", "nope"))
    child = subprocess.Popen(["cat", os.path.join(mnt, "sel", "one")], stdout=subprocess.PIPE)
    assert child.communicate()[0] == b"1"
    pid_w_pid = child.pid
    settle()
    recs, _ = all_w.records()
    assert find(recs, op="write", path="/other")
    assert find(recs, op="read", path="/sel/one", pid=pid_w_pid, comm="cat")
    sel, _ = reads.records()
    assert sel and all(r["op"] in ("read", "write") and r["path"].startswith("/sel/")
                       for r in sel)
    assert find(sel, op="write", path="/sel/one") and find(sel, op="read", path="/sel/one")
    e, _ = errs.records()
    assert e and all(r["result"] != "ok" for r in e)
    assert find(e, op="lookup", path="/sel/nope", result="ENOENT")
    s, _ = slow.records()
    assert s == []  # nothing takes 100 s
    s, _ = some.records()
    assert s and all(r["latency_us"] >= 2 for r in s)
    out, _ = text.stop()
    lines = out.splitlines()
    assert lines[0].startswith("TIME") and "PATH" in lines[0]
    assert any(" write " in line and "/sel/one" in line for line in lines[1:])


def test_pid_filter(env):
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    wfile(os.path.join(lower, "f"), b"data")
    env.mount(lower, mnt, args=["--cache=never"])
    a = subprocess.Popen(["sleep", "1000"])
    try:
        w = Watcher(mnt, "--json", "--pid", str(a.pid))
        # the watched pid does nothing; others work
        assert rd(os.path.join(mnt, "f")) == b"data"
        settle()
        recs, _ = w.records()
        assert recs == []
        w = Watcher(mnt, "--json", "--pid", str(os.getpid()))
        assert rd(os.path.join(mnt, "f")) == b"data"
        subprocess.run(["cat", os.path.join(mnt, "f")], capture_output=True, check=True)
        settle()
        recs, _ = w.records()
        assert recs and all(r["pid"] == os.getpid() for r in recs)
    finally:
        a.kill()
        a.wait()


def test_slow_watcher_loses_records_and_counts_them(env):
    """A watcher that stops reading never blocks the mount; what it missed is counted."""
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    wfile(os.path.join(lower, "f"), b"x")
    env.mount(lower, mnt, args=["--cache=never"])
    w = Watcher(mnt, "--json", "--op", "getattr", "--path", "/f")
    w.proc.send_signal(signal.SIGSTOP)
    n = 30000
    for _ in range(n):
        os.stat(os.path.join(mnt, "f"))
    w.proc.send_signal(signal.SIGCONT)
    settle()
    time.sleep(1)
    lines, err = w.records()
    got = [r for r in lines if "op" in r]
    dropped = sum(r["dropped"] for r in lines if "dropped" in r)
    assert dropped > 0, "nothing was dropped: the ring should have overflowed"
    assert f"{dropped} records dropped" in err
    assert len(got) + dropped == n, (len(got), dropped)
    assert all(r["op"] == "getattr" for r in got)


def test_trace_cli_errors(env):
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    env.mount(lower, mnt)
    for args, word in ((["--op", "nosuchop"], "nosuchop"), (["--pid", "abc"], "abc"),
                       (["--slow", "-5"], "-5")):
        r = env.veneer("trace", mnt, *args)
        assert r.returncode != 0 and word in r.stderr and r.stderr.startswith("veneer:"), r.stderr
    r = env.veneer("trace", env.path("lower"))
    assert r.returncode != 0 and "no veneer mount" in r.stderr


@pytest.mark.stress
@pytest.mark.timeout(180)
def test_tracing_under_concurrent_load(env):
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    img = pack(env, {f"v{i}": b"v" * 10000 for i in range(4)})
    tfile = env.path("t.jsonl")
    m = env.mount(lower, mnt, args=["--trace", tfile, "--layer", img + ":/pkg"])
    w = Watcher(mnt, "--json", "--errors")
    stop = threading.Event()
    problems = []

    def worker(k):
        i = 0
        while not stop.is_set():
            p = os.path.join(mnt, f"t{k}-{i % 5}")
            try:
                wfile(p, b"a" * 1000)
                rd(p)
                rd(os.path.join(mnt, "pkg", f"v{k % 4}"))
                os.listdir(mnt)
                os.unlink(p)
                os.path.exists(p + "missing")
            except OSError as e:
                problems.append(str(e))
            i += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(5)
    stop.set()
    for t in threads:
        t.join(60)
    assert not problems, problems[:3]
    recs, _ = w.records()
    assert recs and all(r.get("result", "x") != "ok" for r in recs if "op" in r)
    m.stop()
    assert len(records(tfile)) > 100


def test_no_trace_mount(env):
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    env.mount(lower, mnt, args=["--no-trace"])
    wfile(os.path.join(mnt, "f"), b"x")
    r = env.veneer("trace", mnt)
    assert r.returncode != 0 and "without the trace filter" in r.stderr
    st = json.loads(env.veneer("status", "--json", mnt, check=True).stdout)
    assert st["operations"] == {}
    r = env.veneer("mount", "--no-trace", "--trace", env.path("t.jsonl"), lower, env.mkdir("m2"))
    assert r.returncode != 0 and "--no-trace" in r.stderr
