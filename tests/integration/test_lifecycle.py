"""`local up | down | status`: clear messages for the wrong moves, nothing left behind.

These tests run their own platform (the session one must stay up): its clusters have a
5-second idle timeout, and the module ends by crashing a component and running `local down`.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner

from dask_platform.cli import app
from dask_platform.local.platform import LocalPlatform
from dask_platform.local.processes import ComponentError, marked_processes

from .conftest import _gateway_factory, _running_platform, platform_config

IDLE_SECONDS = 5
runner = CliRunner()


@pytest.fixture(scope="module")
def small_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    yield from _running_platform(
        tmp_path_factory.mktemp("lifecycle"), platform_config(idle_timeout_seconds=IDLE_SECONDS)
    )


@pytest.fixture(scope="module")
def small_gateway_as(small_platform: LocalPlatform) -> Iterator[Callable[[str], Any]]:
    yield from _gateway_factory(small_platform)


def test_status_shows_every_component(small_platform: LocalPlatform) -> None:
    result = runner.invoke(app, ["local", "status", "--state-dir", str(small_platform.state_dir)])
    assert result.exit_code == 0, result.output
    for component in ("emulator", "issuer", "gateway"):
        assert component in result.output
    assert "running" in result.output


def test_the_gateway_runs_the_charts_rendered_config(
    small_platform: LocalPlatform, small_gateway_as: Callable[[str], Any]
) -> None:
    """One config path: the running gateway serves the cluster options of the config file the
    chart renders for the API pod (loaded here with traitlets' loader, as the pod loads it), on
    dask-gateway's local backend with the platform's limits."""
    import asyncio
    import tempfile

    from dask_gateway_server.backends.local import UnsafeLocalBackend
    from dask_gateway_server.models import User

    from dask_platform.gateway_limits import PlatformLimits
    from dask_platform.gateway_pods import kube_backend_class, load_config_file, render_gateway
    from dask_platform.local.limited import LimitedLocalBackend

    rendered = render_gateway(small_platform.config.stack)
    with tempfile.TemporaryDirectory() as directory:
        chart_config = load_config_file(
            rendered.gateway_files, rendered.gateway_env, Path(directory)
        )
        backend = kube_backend_class(chart_config.DaskGateway.backend_class)(config=chart_config)
        alice = User("alice", groups=small_platform.config.local.users["alice"].groups)
        # A private loop: asyncio.run() would leave the main thread without a current loop.
        loop = asyncio.new_event_loop()
        try:
            chart_options = loop.run_until_complete(backend.get_cluster_options(alice))
        finally:
            loop.close()
    served = small_gateway_as("alice").cluster_options()
    assert dict(served) == {f.field: f.get_default() for f in chart_options.fields}
    assert len(served) > 1, "the platform's options, not dask-gateway's empty default"

    log = small_platform.log("gateway").read_text()
    assert "dask_platform.local.limited.LimitedLocalBackend" in log
    assert issubclass(LimitedLocalBackend, UnsafeLocalBackend)
    assert issubclass(LimitedLocalBackend, PlatformLimits)


def test_an_idle_cluster_is_shut_down(small_gateway_as: Callable[[str], Any]) -> None:
    gateway = small_gateway_as("alice")
    cluster = gateway.new_cluster()
    name = cluster.name
    deadline = time.monotonic() + IDLE_SECONDS + 60
    while time.monotonic() < deadline and name in {c.name for c in gateway.list_clusters()}:
        time.sleep(1)
    assert name not in {c.name for c in gateway.list_clusters()}
    cluster.close()


def test_up_twice_is_refused_with_a_clear_message(small_platform: LocalPlatform) -> None:
    result = runner.invoke(app, ["local", "up", "--state-dir", str(small_platform.state_dir)])
    assert result.exit_code == 1
    assert "already running" in result.output
    assert "local down" in result.output
    assert all(c.alive for c in small_platform.status())


def test_a_port_in_use_is_named_and_nothing_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        platform = LocalPlatform(tmp_path, platform_config(), gateway_port=port)
        with pytest.raises(ComponentError, match=f"port {port} on 127.0.0.1 is already in use"):
            platform.up()
    assert platform.state() is None
    assert marked_processes(platform.state_dir) == []


def test_a_crashed_component_is_reported(small_platform: LocalPlatform) -> None:
    issuer_pid = small_platform.state()["components"]["issuer"]["pid"]
    os.kill(issuer_pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(issuer_pid)], timeout=10)

    result = runner.invoke(app, ["local", "status", "--state-dir", str(small_platform.state_dir)])

    assert result.exit_code == 1
    assert "issuer" in result.output
    assert "exited" in result.output


def test_down_leaves_no_process_behind(
    small_platform: LocalPlatform, small_gateway_as: Callable[[str], Any]
) -> None:
    cluster = small_gateway_as("bob").new_cluster()
    cluster.scale(1)
    cluster.get_client().wait_for_workers(1, timeout=60)
    before = marked_processes(small_platform.state_dir)
    assert len(before) >= 4  # emulator, gateway (+ its proxy), scheduler, worker

    result = runner.invoke(app, ["local", "down", "--state-dir", str(small_platform.state_dir)])

    assert result.exit_code == 0, result.output
    assert "no local-platform process is running" in result.output
    assert marked_processes(small_platform.state_dir) == []
    assert not any(psutil.pid_exists(p.pid) and p.is_running() for p in before)
    cluster.close()
