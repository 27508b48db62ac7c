"""`dask_platform.connect(profile)` starting real clusters: a LocalCluster, and a dask-gateway
site of the federated local platform (federation.py) logged in with OIDC."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

import dask_platform
from dask_platform.local.platform import LocalPlatform
from dask_platform.sites import SiteError

pytest_plugins = ("tests.integration.federation",)


@pytest.fixture(scope="module")
def profiles_file(tmp_path_factory: pytest.TempPathFactory, federation: LocalPlatform) -> Path:
    path = tmp_path_factory.mktemp("profiles") / "profiles.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "profiles": {
                    "laptop": {"kind": "local", "n_workers": 1, "threads_per_worker": 1},
                    "hpc-gateway": {
                        "kind": "gateway",
                        "site": "hpc",
                        "state_dir": str(federation.state_dir),
                        "username": "alice",
                        "workers": 1,
                        "options": {"worker_memory": 1.0},
                    },
                    "mars": {
                        "kind": "gateway",
                        "site": "mars",
                        "state_dir": str(federation.state_dir),
                    },
                }
            }
        )
    )
    return path


def test_the_local_profile_runs_a_task(profiles_file: Path) -> None:
    from distributed import LocalCluster

    cluster, client = dask_platform.connect("laptop", path=profiles_file)
    try:
        assert isinstance(cluster, LocalCluster)
        assert len(cluster.workers) == 1
        assert client.submit(lambda x: x * 2, 21).result(timeout=60) == 42
        assert client.submit(os.getpid).result(timeout=60) != os.getpid(), "a worker process"
    finally:
        client.close()
        cluster.close()


def test_the_gateway_profile_logs_in_once_and_runs_a_task(
    profiles_file: Path, passwords: dict[str, str], site_outputs: dict[str, Any]
) -> None:
    password = passwords["alice"]
    cluster, client = dask_platform.connect("hpc-gateway", path=profiles_file, password=password)
    try:
        assert cluster.dashboard_link.startswith(site_outputs["hpc"]["gateway_address"])
        client.wait_for_workers(1, timeout=120)
        team = client.submit(lambda: os.environ["DASK_PLATFORM_TEAM"], pure=False).result(60)
        assert team == "hydrology"
        auth = cluster.gateway.auth
        assert (auth.username, auth.flow) == ("alice", "password")
        assert auth.token is not None, "logged in with the password given"
        assert password not in repr(vars(auth)) + json.dumps(dict(os.environ))
    finally:
        client.close()
        cluster.shutdown()


def test_a_gateway_profile_for_an_unknown_site_names_the_known_ones(profiles_file: Path) -> None:
    with pytest.raises(SiteError, match="'mars' is not a known site; known sites: central, hpc"):
        dask_platform.connect("mars", path=profiles_file)


def test_profiles_come_from_the_environment_variable(profiles_file: Path, tmp_path: Path) -> None:
    """DASK_PLATFORM_PROFILES names the file when no path is given (a subprocess, so this
    process's environment is left alone)."""
    import subprocess
    import sys

    probe = "from dask_platform.profiles import get_profile\nprint(get_profile('laptop').kind)\n"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "DASK_PLATFORM_PROFILES": str(profiles_file), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "local"
