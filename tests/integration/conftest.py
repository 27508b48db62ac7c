"""Fixtures for the integration tests: real processes on 127.0.0.1, nothing mocked.

* ``emulator`` - a bare AWS emulator (moto server + IAM gate), for tests that provision their
  own resources (the ECS helper's analyst-policy tests reuse it).
* ``platform`` - one whole local platform for the session, in a temporary state directory,
  configured from the committed local/platform.yaml with the shortest lifetimes STS and the
  test allow (900 s credentials, 20 s tokens), so every test also runs across credential
  refreshes and token rotations.
* ``gateway_as`` - dask-gateway clients authenticated as a local user.
* ``image_platform`` / ``image_gateway_as`` - a second local platform whose schedulers and
  workers are podman containers of the worker image (built or reused like `make images`), one
  for the session, shared by the image-worker and container-mode keyless-path modules.

Every fixture stops what it started and checks that no process of it is left.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dask_platform.local.config import LocalConfig, load_local_config
from dask_platform.local.emulator import Emulator
from dask_platform.local.platform import LocalPlatform
from dask_platform.local.processes import marked_processes

# ref: https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html
# (DurationSeconds: minimum 900)
SHORT_CREDENTIALS_SECONDS = 900
SHORT_TOKEN_SECONDS = 20
# Session-scoped clusters (alice_cluster, bob_cluster) wait between tests with no client
# connected; the no-client shutdown (default 15 minutes) must not stop them in a long run.
# tests/integration/test_no_client.py sets its own short timeout.
SESSION_NO_CLIENT_SECONDS = 4 * 3600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def platform_config(**local: Any) -> LocalConfig:
    return load_local_config(
        overrides={
            "local": {
                "service_account_token_seconds": SHORT_TOKEN_SECONDS,
                "web_identity_session_seconds": SHORT_CREDENTIALS_SECONDS,
                "no_client_timeout_seconds": SESSION_NO_CLIENT_SECONDS,
                **local,
            }
        }
    )


OWNER_FILE = "pytest-owner.pid"


def _run_is_alive(run_dir: Path) -> bool:
    """Whether the pytest session that owns ``run_dir`` (its basetemp) is still running."""
    import psutil

    try:
        pid = int((run_dir / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return False  # a run from before owner files, or one that never got that far
    try:
        return psutil.Process(pid).is_running()
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="session", autouse=True)
def _stop_platforms_of_aborted_runs(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A test run killed before its teardown (SIGKILL, a CI timeout) leaves its platforms
    running: their processes live in their own sessions. They carry the marker with their
    state directory, so the next run stops those of earlier runs whose pytest process is gone -
    never its own, and never those of another session still running on the machine."""
    import psutil

    from dask_platform.local.processes import MARKER_ENV, terminate

    current = tmp_path_factory.getbasetemp().resolve()
    (current / OWNER_FILE).write_text(str(os.getpid()))
    runs_root = current.parent
    stale = []
    for proc in psutil.process_iter(["pid"]):
        try:
            marker = proc.environ().get(MARKER_ENV)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if not marker or not Path(marker).is_relative_to(runs_root):
            continue
        run_dir = runs_root / Path(marker).relative_to(runs_root).parts[0]
        if run_dir != current and not _run_is_alive(run_dir):
            stale.append(proc.pid)
    terminate(stale)


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    state = tmp_path_factory.mktemp("emulator")
    aws = Emulator(state).start()
    try:
        yield aws
    finally:
        aws.stop()
        assert not marked_processes(state), "the emulator left processes behind"


def _running_platform(state: Path, config: LocalConfig) -> Iterator[LocalPlatform]:
    platform = LocalPlatform(state, config)
    platform.up()
    try:
        yield platform
    finally:
        report = platform.down()
        assert report.leftovers == [], f"processes left after down: {report.leftovers}"
        assert marked_processes(platform.state_dir) == []


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    yield from _running_platform(tmp_path_factory.mktemp("platform"), platform_config())


@pytest.fixture(scope="session")
def outputs(platform: LocalPlatform) -> dict[str, Any]:
    return platform.outputs()


@pytest.fixture(scope="session")
def gateway_as(platform: LocalPlatform) -> Iterator[Callable[..., Any]]:
    yield from _gateway_factory(platform)


def _gateway_factory(platform: LocalPlatform) -> Iterator[Callable[..., Any]]:
    from dask_gateway import BasicAuth, Gateway

    opened: list[Any] = []
    # One client per user unless a test asks for a fresh one: each client runs its own IO-loop
    # thread, and on two cores a suite that makes dozens of them starves their start-up.
    by_user: dict[str, Any] = {}

    def gateway_as(user: str, fresh: bool = False) -> Any:
        if user in by_user and not fresh:
            return by_user[user]
        outputs = platform.outputs()
        gateway = Gateway(
            outputs["gateway_address"],
            proxy_address=outputs["gateway_proxy_address"],
            auth=BasicAuth(user, platform.passwords()[user]),
        )
        opened.append(gateway)
        by_user.setdefault(user, gateway)
        return gateway

    yield gateway_as
    for gateway in opened:
        # A test may have stopped the platform itself (`local down`): nothing left to stop.
        with contextlib.suppress(OSError, aiohttp.ClientError):
            for report in gateway.list_clusters():
                gateway.stop_cluster(report.name)
        gateway.close()


def new_cluster(gateway: Any, workers: int, **options: Any) -> Any:
    cluster_options = gateway.cluster_options()
    for key, value in options.items():
        setattr(cluster_options, key, value)
    cluster = gateway.new_cluster(cluster_options)
    cluster.scale(workers)
    client = cluster.get_client()
    client.wait_for_workers(workers, timeout=120)
    return cluster


def alice_cluster_of(gateway_as: Callable[[str], Any]) -> Iterator[Any]:
    """alice's (team hydrology) two-worker cluster, as `make demo` makes it."""
    cluster = new_cluster(
        gateway_as("alice"),
        2,
        worker_cores=1,
        worker_memory=1.0,
        environment={"MY_VARIABLE": "1"},
    )
    yield cluster
    cluster.shutdown()


def bob_cluster_of(gateway_as: Callable[[str], Any]) -> Iterator[Any]:
    """bob's (team climate) one-worker cluster."""
    cluster = new_cluster(gateway_as("bob"), 1)
    yield cluster
    cluster.shutdown()


@pytest.fixture(scope="session")
def alice_cluster(gateway_as: Callable[[str], Any]) -> Iterator[Any]:
    yield from alice_cluster_of(gateway_as)


@pytest.fixture(scope="session")
def bob_cluster(gateway_as: Callable[[str], Any]) -> Iterator[Any]:
    yield from bob_cluster_of(gateway_as)


@pytest.fixture(scope="session")
def worker_image() -> str:
    """The worker image of the current lock, built (or reused) by the code `make images` runs."""
    from dask_platform.images.build import BuildRequest, build_images, default_cache_dir
    from dask_platform.images.engine import connect
    from dask_platform.images.progress import Reporter

    with connect() as engine, Reporter() as reporter:
        built = build_images(
            engine.client,
            BuildRequest(images=("worker",), cache_dir=default_cache_dir()),
            reporter,
        )
    return built[0].reference


@pytest.fixture(scope="session")
def image_platform(
    tmp_path_factory: pytest.TempPathFactory, worker_image: str
) -> Iterator[LocalPlatform]:
    import subprocess

    from dask_platform.local.containers import STATE_LABEL

    state = tmp_path_factory.mktemp("image-platform")

    def containers() -> list[str]:
        listed = subprocess.run(
            ["podman", "ps", "--all", "--quiet", "--filter", f"label={STATE_LABEL}={state}"],
            capture_output=True,
            text=True,
            check=True,
        )
        return listed.stdout.split()

    platform = LocalPlatform(state, platform_config(), container_image=worker_image)
    platform.up()
    try:
        yield platform
    finally:
        platform.down()
        assert containers() == [], "containers left after local down"


@pytest.fixture(scope="session")
def image_gateway_as(image_platform: LocalPlatform) -> Iterator[Callable[..., Any]]:
    yield from _gateway_factory(image_platform)


def action_envelope(policy: dict[str, Any]) -> dict[str, Any]:
    """The policy as moto can evaluate it: its Allow statements, Resource '*', no Condition."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": s["Sid"], "Effect": "Allow", "Action": s["Action"], "Resource": "*"}
            for s in policy["Statement"]
            if s["Effect"] == "Allow"
        ],
    }
