"""`veneer status --json` (its schema member) and `veneer status --prometheus`,
read back with the Prometheus client's own parser of the text format."""
import json
import os

import pytest

from conftest import BUILD, pack, rd, wfile

parser = pytest.importorskip("prometheus_client.parser",
                             reason="python3-prometheus-client is not installed")


def families(text):
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def sample(fams, family, name, **labels):
    """The value of the one sample NAME of FAMILY whose labels include LABELS."""
    found = [s.value for s in fams[family].samples
             if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (family, name, labels, found)
    return found[0]


def busy_mount(env):
    lower = env.mkdir("lower")
    mnt = env.mkdir("mnt")
    img = pack(env, {"v.txt": b"virtual bytes"})
    env.mount(lower, mnt, args=["--cache=never", "--layer", img + ":/pkg"])
    wfile(os.path.join(mnt, "f"), b"12345")
    assert rd(os.path.join(mnt, "f")) == b"12345"
    assert rd(os.path.join(mnt, "pkg", "v.txt")) == b"virtual bytes"
    for _ in range(3):
        assert not os.path.exists(os.path.join(mnt, "nothing"))
    return mnt


def test_json_schema(env):
    mnt = busy_mount(env)
    st = json.loads(env.veneer("status", "--json", mnt, check=True).stdout)
    assert st["schema"] == 1
    assert set(st) == {"schema", "mountpoint", "layers", "opens", "cache", "operations",
                       "errors", "bytes"}
    assert st["cache"]["entry_timeout_s"] == 0 and st["cache"]["keep_pages"] is False
    assert isinstance(st["cache"]["descriptors"], int)


def test_prometheus(env):
    mnt = busy_mount(env)
    text = env.veneer("status", "--prometheus", mnt, check=True).stdout
    fams = families(text)
    st = json.loads(env.veneer("status", "--json", mnt, check=True).stdout)
    assert sample(fams, "veneer_status_schema", "veneer_status_schema") == 1
    # every sample names its mount, so several mounts can be scraped together
    for f in fams.values():
        for s in f.samples:
            assert s.labels["mountpoint"] == mnt, s
    ops = fams["veneer_operations"]
    assert ops.type == "counter"
    assert sample(fams, "veneer_operations", "veneer_operations_total", op="write") >= 1
    assert sample(fams, "veneer_operation_errors", "veneer_operation_errors_total",
                  op="lookup") >= 3
    assert sample(fams, "veneer_operations_virtual", "veneer_operations_virtual_total",
                  op="read") >= 1
    assert sample(fams, "veneer_errors", "veneer_errors_total", errno="ENOENT") >= 3
    assert sample(fams, "veneer_written_bytes", "veneer_written_bytes_total") == 5
    assert sample(fams, "veneer_read_bytes", "veneer_read_bytes_total",
                  source="virtual") == len(b"virtual bytes")
    assert sample(fams, "veneer_layers", "veneer_layers") == 1
    assert sample(fams, "veneer_layer_info", "veneer_layer_info", path="/pkg",
                  kind="squashfs") == 1
    assert sample(fams, "veneer_layer_entries", "veneer_layer_entries",
                  path="/pkg") == st["layers"][0]["entries"]
    assert sample(fams, "veneer_cache_timeout_seconds", "veneer_cache_timeout_seconds",
                  kind="entry") == 0
    assert sample(fams, "veneer_opens_info", "veneer_opens_info", mode=st["opens"]["mode"]) == 1

    hist = fams["veneer_operation_latency_seconds"]
    assert hist.type == "histogram"
    lookups = [s for s in hist.samples if s.labels["op"] == "lookup"]
    buckets = [s for s in lookups if s.name.endswith("_bucket")]
    bounds = [float(s.labels["le"]) for s in buckets]
    counts = [s.value for s in buckets]
    assert bounds == sorted(bounds) and bounds[-1] == float("inf")
    assert counts == sorted(counts), "buckets must be cumulative"
    count = sample(fams, "veneer_operation_latency_seconds",
                   "veneer_operation_latency_seconds_count", op="lookup")
    assert counts[-1] == count >= 3
    total = sample(fams, "veneer_operation_latency_seconds",
                   "veneer_operation_latency_seconds_sum", op="lookup")
    assert 0 < total <= count * st["operations"]["lookup"]["max_us"] / 1e6 + 1e-9


def test_prometheus_integrity_and_filters(env):
    """Each layer's integrity (and digest) on veneer_layer_info, as status
    --json reports them; the filter stack as veneer_filter_info."""
    lower, mnt, src = env.mkdir("lower"), env.mkdir("mnt"), env.mkdir("src")
    wfile(os.path.join(src, "f"), b"data")
    plain = pack(env, {"f": b"plain"})       # mksquashfs alone: no hash tree
    tree = env.path("tree.sqfs")
    out = env.veneer("pack", src, "-o", tree, check=True).stdout
    digest = out.strip().split("\n")[-1].split("digest: ")[1]
    port = os.path.join(BUILD, "tests", "port_filter.so")
    env.mount(lower, mnt, args=["--layer", plain + ":/plain", "--layer", tree + ":/footer",
                                "--layer", f"{tree}:/pinned#{digest}", "--layer", src + ":/dir",
                                "--filter", port])
    fams = families(env.veneer("status", "--prometheus", mnt, check=True).stdout)
    info = {s.labels["path"]: s.labels for s in fams["veneer_layer_info"].samples}
    st = json.loads(env.veneer("status", "--json", mnt, check=True).stdout)
    assert {p: info[p].get("integrity") for p in info} == {
        "/plain": "unverified", "/footer": "verified", "/pinned": "pinned", "/dir": None}
    for layer in st["layers"]:
        assert info[layer["path"]].get("integrity") == layer.get("integrity")
        assert info[layer["path"]].get("digest") == layer.get("digest")
    assert info["/pinned"]["digest"] == info["/footer"]["digest"] == digest
    assert "digest" not in info["/plain"]

    assert sample(fams, "veneer_filters", "veneer_filters") == 3
    filters = {s.labels["name"]: s.labels for s in fams["veneer_filter_info"].samples}
    assert list(filters) == ["trace", "virtualize", "test-ports"]
    assert filters["test-ports"] == dict(mountpoint=mnt, name="test-ports", altitude="500",
                                         state="attached", loaded="mount", origin=port)
    assert filters["trace"]["origin"] == "built-in"
    env.veneer("filter", "unload", mnt, "test-ports", check=True)
    fams = families(env.veneer("status", "--prometheus", mnt, check=True).stdout)
    assert sample(fams, "veneer_filters", "veneer_filters") == 2
    assert [s.labels["name"] for s in fams["veneer_filter_info"].samples] == [
        "trace", "virtualize"]


def test_prometheus_label_escaping(env):
    lower = env.mkdir("lower")
    mnt = env.mkdir('m "quoted" \\ dir')
    env.mount(lower, mnt)
    fams = families(env.veneer("status", "--prometheus", mnt, check=True).stdout)
    assert sample(fams, "veneer_layers", "veneer_layers", mountpoint=mnt) == 0


def test_prometheus_usage(env):
    lower = env.mkdir("lower")
    for extra in (["--json"], ["--watch"]):
        r = env.veneer("status", "--prometheus", *extra, lower)
        assert r.returncode == 2 and "--prometheus" in r.stderr
