"""The filter platform on a live mount: `veneer filter list`, messages to
filters' ports (`veneer filter send`, libveneer-client), and the API
versions the loader accepts."""
import errno
import json
import os

from conftest import BUILD, NOBODY


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
    assert "read" in fs["trace"]["operations"] and fs["trace"]["ports"] == []
    text = env.veneer("filter", "list", mnt, check=True).stdout.splitlines()
    assert len(text) == 3
    assert text[2].startswith("test-ports altitude=500 ")
    assert "ops=unlink" in text[2] and "ports=echo,deny,fill" in text[2]
    assert " ops=all " in text[0] and "ports=-" in text[0]


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
    try:
        os.unlink(os.path.join(mnt, "keep"))
        raise AssertionError("unlink of a denied name went through")
    except PermissionError:
        pass
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
    r = env.veneer("filter", "send", mnt, "trace", "x")
    assert r.returncode == 1 and "filter 'trace' has no port" in r.stderr
    # the filter's own refusal comes back with its errno
    r = env.veneer("filter", "send", mnt, "test-ports/fill", "many")
    assert r.returncode == 1
    assert "port 'fill': " + os.strerror(errno.EINVAL) in r.stderr
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


def test_version_2_filter_is_served(env):
    lower, mnt = env.mkdir("lower"), env.mkdir("mnt")
    env.mount(lower, mnt, ["--filter", module("v2")])
    try:
        os.mkdir(os.path.join(mnt, "v2-refused"))
        raise AssertionError("the version 2 filter did not run")
    except PermissionError:
        pass
    os.mkdir(os.path.join(mnt, "fine"))
    assert os.path.isdir(os.path.join(lower, "fine"))
    assert filters_json(env, mnt)["test-v2"]["ports"] == []
