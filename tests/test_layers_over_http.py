"""The tests of tests/test_layers.py and tests/test_layer_renames.py that
use an image run again here, with each image they pack served
over HTTP by nginx (tests/nginx_server.py, on a free port of 127.0.0.1) and
named by its URL instead of its path:
the same views, errno and invalidations from a remote image.  Mounts and
attaches get a chunk cache of the test's own (--cache-dir).
"""
import inspect
import os
import re
import shutil

import pytest

import conftest
import test_layer_renames
import test_layers
from nginx_server import NginxServer

MODULES = (test_layers, test_layer_renames)

# The tests that pack an image, directly or through a helper (the others
# have nothing to serve).
for _module in MODULES:
    for _name, _fn in vars(_module).items():
        if _name.startswith("test_") and re.search(r"\b(pack|layered|mounted)\(",
                                                     inspect.getsource(_fn)):
            assert _name not in globals(), _name
            globals()[_name] = _fn


@pytest.fixture
def kind():
    """test_layer_renames' sources: only images go over HTTP."""
    return "image"


@pytest.fixture(autouse=True)
def images_over_http(env, monkeypatch):
    www = env.mkdir("www")
    server = NginxServer(www, env.mkdir("nginx"))
    cache = env.path("chunk-cache")
    local_pack = test_layers.pack
    packed = []

    def pack_served(env_, tree, name="img.sqfs", comp="gzip"):
        img = local_pack(env_, tree, name, comp)
        packed.append(name)
        shutil.copy(img, os.path.join(www, name))
        return server.url(name)

    mount, veneer = conftest.Env.mount, conftest.Env.veneer

    def mount_cached(self, lower, mnt=None, args=(), *a, **kw):
        return mount(self, lower, mnt, [f"--cache-dir={cache}"] + list(args), *a, **kw)

    def veneer_cached(self, *args, **kw):
        if args and args[0] == "attach":
            args = ("attach", "--cache-dir", cache) + args[1:]
        return veneer(self, *args, **kw)

    for module in MODULES:
        monkeypatch.setattr(module, "pack", pack_served)
    monkeypatch.setattr(conftest.Env, "mount", mount_cached)
    monkeypatch.setattr(conftest.Env, "veneer", veneer_cached)
    try:
        yield
    finally:
        server.stop()
    assert server.count() > 0 or not packed, "no image was read over HTTP"
