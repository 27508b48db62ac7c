"""Importing any module of the package starts nothing: no process, no thread, no listening
socket (DESIGN: "Importing any module creates no resource and starts no process")."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import importlib, json, pkgutil, threading
import psutil
import dask_platform
names = sorted(m.name for m in pkgutil.walk_packages(dask_platform.__path__, "dask_platform."))
for name in names:
    importlib.import_module(name)
me = psutil.Process()
print(json.dumps({
    "modules": len(names),
    "children": [p.pid for p in me.children(recursive=True)],
    "threads": sorted(t.name for t in threading.enumerate() if t is not threading.main_thread()),
    "listening": [c.laddr.port for c in me.net_connections() if c.status == psutil.CONN_LISTEN],
}))
"""


def test_importing_every_module_starts_nothing():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=300
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["modules"] > 40
    assert report["children"] == []
    assert report["listening"] == []
    assert report["threads"] == []
