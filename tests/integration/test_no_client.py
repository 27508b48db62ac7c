"""No-client shutdown on the real local gateway (issue 15): a notebook kernel killed with SIGKILL
leaves a cluster with no client, which is stopped after the no-client timeout - independent of
idle_timeout (30 minutes in this stack); a cluster created with ``shutdown_on_close=False`` is
kept, and so is one whose client is connected.

Its own platform with a 5-second no-client timeout. The waits are bounded polls, never timed
assertions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dask_platform.local.platform import LocalPlatform

from .conftest import _gateway_factory, _running_platform, platform_config

NO_CLIENT_SECONDS = 5
POLL_LIMIT_SECONDS = 120  # a bound on the polls below, not a claim about speed

KERNEL = """
import os, sys
from dask_gateway import BasicAuth, Gateway
gateway = Gateway(
    os.environ["GATEWAY_ADDRESS"],
    proxy_address=os.environ["GATEWAY_PROXY_ADDRESS"],
    auth=BasicAuth(os.environ["GATEWAY_USER"], os.environ["GATEWAY_PASSWORD"]),
)
cluster = gateway.new_cluster(shutdown_on_close=sys.argv[1] == "close")
client = cluster.get_client()
print(cluster.name, flush=True)
sys.stdin.read()  # a kernel waiting for its next cell, until it is killed
"""


@pytest.fixture(scope="module")
def quick_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    yield from _running_platform(
        tmp_path_factory.mktemp("no-client"),
        platform_config(no_client_timeout_seconds=NO_CLIENT_SECONDS),
    )


@pytest.fixture(scope="module")
def quick_as(quick_platform: LocalPlatform) -> Iterator[Callable[..., Any]]:
    yield from _gateway_factory(quick_platform)


def start_kernel(platform: LocalPlatform, user: str, shutdown_on_close: bool) -> tuple[Any, str]:
    """A separate Python process that creates a cluster and keeps a client connected, as a
    notebook kernel does; returns the process and its cluster's name."""
    outputs = platform.outputs()
    env = {
        **os.environ,
        "GATEWAY_ADDRESS": outputs["gateway_address"],
        "GATEWAY_PROXY_ADDRESS": outputs["gateway_proxy_address"],
        "GATEWAY_USER": user,
        "GATEWAY_PASSWORD": platform.passwords()[user],
    }
    process = subprocess.Popen(
        [sys.executable, "-c", KERNEL, "close" if shutdown_on_close else "keep"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert process.stdout is not None
    name = process.stdout.readline().strip()
    assert name, f"the kernel process printed no cluster name (exit code {process.poll()})"
    return process, name


def running(gateway: Any) -> set[str]:
    return {c.name for c in gateway.list_clusters()}


def wait_until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + POLL_LIMIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(1)
    return condition()


def test_a_killed_kernels_cluster_is_stopped(
    quick_platform: LocalPlatform, quick_as: Callable[..., Any]
) -> None:
    gateway = quick_as("alice")
    process, name = start_kernel(quick_platform, "alice", shutdown_on_close=True)
    try:
        # Its client is connected: the cluster outlives several no-client timeouts.
        time.sleep(3 * NO_CLIENT_SECONDS)
        assert name in running(gateway)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert wait_until(lambda: name not in running(gateway)), f"{name} still running"
    report = gateway.get_cluster(name)
    assert report.status.name == "STOPPED"


def test_a_cluster_meant_to_outlive_its_client_is_kept(
    quick_platform: LocalPlatform, quick_as: Callable[..., Any]
) -> None:
    gateway = quick_as("bob")
    process, name = start_kernel(quick_platform, "bob", shutdown_on_close=False)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    # Several no-client timeouts later it still runs, and a new client can reach it.
    time.sleep(3 * NO_CLIENT_SECONDS)
    assert name in running(gateway)
    cluster = gateway.connect(name)
    with cluster.get_client() as client:
        assert client.run_on_scheduler(lambda: 42) == 42
    cluster.shutdown()
    assert wait_until(lambda: name not in running(gateway))


def test_reap_stops_the_gateway_clusters_no_client_owns(
    quick_platform: LocalPlatform, quick_as: Callable[..., Any]
) -> None:
    """`clusters reap` on the gateway: a cluster kept without a client (shutdown_on_close=False)
    is listed, then stopped with --yes; one with a connected client is left alone."""
    from typer.testing import CliRunner

    from dask_platform.cli import app
    from dask_platform.runbooks.reap import find_gateway_leftovers

    gateway = quick_as("alice")
    kept = gateway.new_cluster(shutdown_on_close=False)
    kept_name = kept.name
    kept.close()  # the handle only: the cluster stays, with no client
    owned = gateway.new_cluster()
    client = owned.get_client()
    try:
        found = find_gateway_leftovers(gateway, "local", 0)
        assert [(f.name, f.status) for f in found] == [(kept_name, "RUNNING")]
        assert find_gateway_leftovers(gateway, "local", 24 * 3600) == [], "younger than 24 h"

        args = ["clusters", "reap", "--older-than", "0s", "--state-dir"]
        args += [str(quick_platform.state_dir), "--user", "alice"]
        listed = CliRunner().invoke(app, args, env={"COLUMNS": "250"})
        assert listed.exit_code == 1, listed.output
        assert kept_name in listed.output
        assert owned.name not in listed.output
        reaped = CliRunner().invoke(app, [*args, "--yes"], env={"COLUMNS": "250"})
        assert reaped.exit_code == 0, reaped.output
        assert "removed 1 leftover(s)" in reaped.output
        assert wait_until(lambda: kept_name not in running(gateway))
        assert owned.name in running(gateway)
    finally:
        client.close()
        owned.shutdown()
