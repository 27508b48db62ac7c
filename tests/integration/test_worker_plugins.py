"""dask_platform.worker_plugins.PipInstall on a real distributed cluster: pip's error reaches
the client at registration, and a worker joining later whose install fails leaves instead of
taking tasks (distributed's own PipInstall only logs it there)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
from distributed import Client, LocalCluster
from distributed.core import Status
from distributed.protocol.pickle import dumps

from dask_platform.worker_plugins import PipInstall

from ..images.test_analyst_images import pure_wheel


def wait_until(condition, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.mark.timeout(180)
def test_a_worker_whose_install_fails_leaves_and_the_client_sees_pips_error(
    tmp_path: Path,
) -> None:
    filename, data = pure_wheel("analyst_extra_late", "late")
    wheel = tmp_path / filename
    wheel.write_bytes(data)
    target = tmp_path / "target"  # not the project's environment
    options = ["--no-index", "--disable-pip-version-check", "--target", str(target)]
    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(PipInstall([str(wheel)], options))
        assert (target / "analyst_extra_late" / "__init__.py").is_file()
        first = next(iter(cluster.workers.values()))
        # The index goes away; then a worker joins.
        wheel.unlink()
        cluster.scale(2)
        assert wait_until(lambda: len(cluster.workers) == 2)
        joined = next(w for w in cluster.workers.values() if w is not first)
        assert wait_until(lambda: joined.status in (Status.closed, Status.closing))
        assert first.status == Status.running
        assert wait_until(lambda: len(client.scheduler_info()["workers"]) == 1)
        # A new registration fails at the client with pip's own words.
        with pytest.raises(RuntimeError) as caught:
            client.register_plugin(PipInstall([str(wheel)], options))
        assert str(caught.value).startswith("pip install failed with '")
        assert str(wheel) in str(caught.value)


def test_the_plugin_travels_to_workers_without_dask_platform(tmp_path: Path) -> None:
    """Workers run the worker image, which has no dask_platform: the plugin is pickled by
    value, and loads in an interpreter where dask_platform cannot be imported."""
    pickled = tmp_path / "plugin.pickle"
    pickled.write_bytes(dumps(PipInstall(["xarray"], ["--no-index"])))
    script = (
        "import pickle, sys\n"
        "try:\n"
        "    import dask_platform.worker_plugins\n"
        "    sys.exit('dask_platform.worker_plugins is importable here')\n"
        "except ModuleNotFoundError:\n"
        "    pass\n"
        "plugin = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "print(type(plugin).__name__, plugin.packages, plugin.pip_options)\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        # The environment's packages without its .pth files (the editable dask_platform).
        "PYTHONPATH": sysconfig.get_paths()["purelib"],
    }
    done = subprocess.run(
        [sys.executable, "-S", "-c", script, str(pickled)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "PipInstall ['xarray'] ['--no-index']"
