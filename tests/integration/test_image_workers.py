"""Local schedulers and workers as containers of the worker image (podman): an Earth-science
computation runs on them as uid 1000 with the team role, and code on one team's worker can read
neither another team's token, nor the platform's state (the emulator's admin key), nor the
host's home (issue 16, items 6 and 9)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import cloudpickle
import pytest

from dask_platform.local.containers import STATE_LABEL
from dask_platform.local.platform import LocalPlatform

from .conftest import new_cluster

# The image workers cannot import this test module: its functions travel by value, as a
# notebook's do.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def alice_image_cluster(image_gateway_as: Callable[[str], Any]) -> Iterator[Any]:
    cluster = new_cluster(image_gateway_as("alice"), 1)
    yield cluster
    cluster.shutdown()


def xarray_on_the_worker() -> dict[str, Any]:
    import numpy as np
    import xarray as xr

    data = xr.DataArray(np.arange(24.0).reshape(4, 6), dims=("time", "station"), name="discharge")
    return {"mean_by_station": data.mean("time").values.tolist(), "uid": os.getuid()}


def what_a_worker_can_reach(paths: dict[str, str]) -> dict[str, Any]:
    import boto3

    def readable(path: str) -> bool:
        try:
            with open(path, "rb") as handle:
                handle.read(1)
            return True
        except OSError:
            return False

    return {
        "uid": os.getuid(),
        "executable": __import__("sys").executable,
        "caller": boto3.client("sts").get_caller_identity()["Arn"],
        "token_file": os.environ["AWS_WEB_IDENTITY_TOKEN_FILE"],
        "own_token": readable(os.environ["AWS_WEB_IDENTITY_TOKEN_FILE"]),
        "readable": {name: readable(path) for name, path in paths.items()},
        "exists": {name: os.path.exists(path) for name, path in paths.items()},
        "home": sorted(os.listdir(os.path.expanduser("~"))),
    }


def test_an_xarray_computation_runs_on_image_workers(alice_image_cluster: Any) -> None:
    with alice_image_cluster.get_client() as client:
        results = client.run(xarray_on_the_worker)
    assert list(results.values()) == [
        {"mean_by_station": [9.0, 10.0, 11.0, 12.0, 13.0, 14.0], "uid": 1000}
    ]


def test_a_worker_sees_only_its_own_team_token_and_nothing_of_the_host(
    alice_image_cluster: Any, image_platform: LocalPlatform, tmp_path: Any
) -> None:
    outputs = image_platform.outputs()
    host_file = tmp_path / "on-the-host.txt"
    host_file.write_text("the host's file system")
    host_file.chmod(0o644)
    paths = {
        "other_team_token": outputs["service_account_token_files"]["climate"],
        "own_team_token_on_the_host": outputs["service_account_token_files"]["hydrology"],
        "emulator_admin_key": str(image_platform.state_dir / "emulator.json"),
        "passwords": str(image_platform.state_dir / "passwords.json"),
        "host_home_aws": os.path.expanduser("~/.aws"),
        "host_file": str(host_file),
    }
    with alice_image_cluster.get_client() as client:
        reports = client.run(what_a_worker_can_reach, paths)
    assert len(reports) == 1
    report = next(iter(reports.values()))
    role = outputs["team_role_arns"]["hydrology"].split("/")[-1]
    assert report["uid"] == 1000
    assert report["executable"] == "/opt/venv/bin/python"
    assert f":assumed-role/{role}/" in report["caller"]
    assert report["token_file"] == "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
    assert report["own_token"] is True
    assert report["readable"] == dict.fromkeys(paths, False)
    assert report["exists"] == dict.fromkeys(paths, False)
    assert report["home"] == [".bash_logout", ".bashrc", ".profile"]


def test_the_scheduler_runs_in_the_image_too(alice_image_cluster: Any) -> None:
    with alice_image_cluster.get_client() as client:
        facts = client.run_on_scheduler(lambda: (os.getuid(), __import__("sys").executable))
    assert list(facts) == [1000, "/opt/venv/bin/python"]


def test_processes_of_the_image_platform_are_its_containers(
    image_platform: LocalPlatform, alice_image_cluster: Any
) -> None:
    import subprocess

    listed = subprocess.run(
        [
            "podman",
            "ps",
            "--filter",
            f"label={STATE_LABEL}={image_platform.state_dir}",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    containers = json.loads(listed.stdout or "[]")
    # Every container of the platform is of the worker image (other modules' clusters share
    # the platform); the module's cluster is one scheduler and one worker.
    assert {c["Image"] for c in containers} == {image_platform.container_image}
    names = sorted(
        name
        for c in containers
        for name in c["Names"]
        if name.startswith(f"dask-{alice_image_cluster.name}-")
    )
    assert len(names) == 2, names


def _install_target_is_writable() -> tuple[str, bool, bool]:
    import os as _os
    import sys as _sys

    target = _os.environ["PIP_TARGET"]
    return target, _os.access(target, _os.W_OK), target in _sys.path


def test_the_run_time_install_target_is_writable_under_a_read_only_root(
    alice_image_cluster: Any,
) -> None:
    """Found by a reviewer: with --read-only, PipInstall failed with 'Read-only file system'
    on /opt/runtime-packages; it is a tmpfs owned by the worker's uid, on sys.path."""
    with alice_image_cluster.get_client() as client:
        workers = client.run(_install_target_is_writable)
        scheduler = client.run_on_scheduler(_install_target_is_writable)
    assert set(workers.values()) == {("/opt/runtime-packages", True, True)}
    assert tuple(scheduler) == ("/opt/runtime-packages", True, True)
