"""`dask-platform images drift` against real clusters and real images: no drift where the
environments agree, and a worker that reports another version must be caught."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from distributed import Client, LocalCluster
from typer.testing import CliRunner

from dask_platform.cli import app

runner = CliRunner()
DASK = str(Path(sys.executable).parent / "dask")


def drift(*args: str):
    return runner.invoke(app, ["images", "drift", *args], catch_exceptions=False)


@pytest.fixture
def scheduler_only():
    with LocalCluster(
        n_workers=0, host="127.0.0.1", dashboard_address=None, processes=True
    ) as cluster:
        yield cluster


def wait_for_workers(address: str, count: int, timeout: float = 60) -> None:
    with Client(address, timeout="20s") as client:
        client.wait_for_workers(count, timeout=timeout)


def started_worker(address: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [DASK, "worker", address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_a_cluster_of_this_environment_has_no_drift():
    with LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        result = drift("--scheduler", cluster.scheduler_address)
    assert result.exit_code == 0, result.output
    assert "no drift" in result.output
    assert "distributed" in result.output


# The drift table is the assertion; distributed's own warning about the same toolz is noise here.
@pytest.mark.filterwarnings("ignore::distributed.versions.VersionMismatchWarning")
def test_a_worker_reporting_another_version_is_drift(scheduler_only, tmp_path):
    """A real worker process whose environment reports toolz 0.0.1 (a distribution record
    earlier on its path, as a stray install would leave): drift names toolz, exit 1."""
    fake = tmp_path / "toolz-0.0.1.dist-info"
    fake.mkdir()
    (fake / "METADATA").write_text("Metadata-Version: 2.1\nName: toolz\nVersion: 0.0.1\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    worker = started_worker(scheduler_only.scheduler_address, env)
    try:
        wait_for_workers(scheduler_only.scheduler_address, 1)
        result = drift("--scheduler", scheduler_only.scheduler_address)
    finally:
        stop(worker)
    assert result.exit_code == 1, result.output
    assert "0.0.1" in result.output
    assert "drifted: toolz" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nothing to compare"),
        (("--scheduler", "tcp://127.0.0.1:1", "--gateway-cluster", "x"), "give one cluster"),
    ],
)
def test_bad_arguments_are_one_clear_error(args, message):
    result = drift(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_the_images_have_no_drift_from_the_client(engine, built):
    result = drift(
        "--image",
        "worker",
        "--image",
        "notebook",
        "--image",
        "gateway",
        "--docker-host",
        engine.base_url,
    )
    assert result.exit_code == 0, result.output
    assert "no drift" in result.output


# distributed's own check warns that the image's Python patch level (and this environment's lack
# of numpy) differ; the drift report is what this test asserts on.
@pytest.mark.filterwarnings("ignore::distributed.versions.VersionMismatchWarning")
def test_a_worker_from_the_image_joins_a_client_cluster_without_drift(
    engine, built, scheduler_only
):
    """The worker image's `dask worker`, on the host network, serving a scheduler that runs in
    this environment: it computes, and drift finds nothing."""
    container = engine.client.containers.run(
        built["worker"].build_reference,
        ["dask", "worker", scheduler_only.scheduler_address, "--nthreads", "1", "--no-dashboard"],
        detach=True,
        network_mode="host",
        name=f"dask-platform-test-drift-{int(time.time())}",
    )
    try:
        wait_for_workers(scheduler_only.scheduler_address, 1, timeout=120)
        with Client(scheduler_only.scheduler_address) as client:
            # Lambdas travel by value (cloudpickle): the image runs them with ITS numpy, which
            # this client environment does not even have.
            total = client.submit(lambda n: float(__import__("numpy").ones((n, n)).sum()), 1000)
            total = total.result(timeout=60)
            worker_python = client.run(lambda: tuple(__import__("sys").version_info[:2]))
        result = drift("--scheduler", scheduler_only.scheduler_address)
    finally:
        container.remove(force=True)
    assert total == 1_000_000
    assert list(worker_python.values()) == [tuple(sys.version_info[:2])]
    assert result.exit_code == 0, result.output
    assert "no drift" in result.output
