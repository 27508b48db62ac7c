"""The local gateway's clusters have the chart's scheduler size (KubeClusterConfig), so a stack
the validator accepts (it counts the chart's 0.5-core scheduler) gets its workers locally too -
not dask-gateway's default 1-core scheduler, which would leave no room for them.

Its own platform: cluster_max_cores 2.5, the least the validator accepts for 2-core workers
(0.5 + 2). With a 1-core scheduler the local gateway would allow (2.5 - 1) // 2 = 0 workers.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dask_gateway_server.backends.kubernetes.backend import KubeClusterConfig

from dask_platform.gateway_pods import load_config_file, render_gateway
from dask_platform.local.config import load_local_config
from dask_platform.local.platform import LocalPlatform

from .conftest import (
    SHORT_CREDENTIALS_SECONDS,
    SHORT_TOKEN_SECONDS,
    _gateway_factory,
    _running_platform,
    new_cluster,
)

TIGHT_MAX_CORES = 2.5


@pytest.fixture(scope="module")
def tight_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    config = load_local_config(
        overrides={
            "stack": {"gateway": {"cluster_max_cores": TIGHT_MAX_CORES}},
            "local": {
                "service_account_token_seconds": SHORT_TOKEN_SECONDS,
                "web_identity_session_seconds": SHORT_CREDENTIALS_SECONDS,
            },
        }
    )
    yield from _running_platform(tmp_path_factory.mktemp("tight"), config)


@pytest.fixture(scope="module")
def tight_as(tight_platform: LocalPlatform) -> Iterator[Callable[..., Any]]:
    yield from _gateway_factory(tight_platform)


def chart_cluster_config(platform: LocalPlatform, directory: Path) -> Any:
    """What the EKS API pod's KubeBackend builds from the rendered chart (dask-gateway's own
    KubeClusterConfig on the loaded config file)."""
    rendered = render_gateway(platform.config.stack)
    loaded = load_config_file(rendered.gateway_files, rendered.gateway_env, directory)
    return KubeClusterConfig(config=loaded)


def stored_cluster_configs(platform: LocalPlatform, user: str) -> list[dict[str, Any]]:
    """The cluster configs the running local gateway stored (its SQLite state)."""
    database = platform.site_dir(platform.sites[0]) / "gateway.sqlite"
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT config FROM clusters WHERE username = ?", (user,)
        ).fetchall()
    return [json.loads(row[0]) for row in rows]


def test_a_validated_cluster_gets_its_worker_with_the_charts_scheduler_size(
    tight_platform: LocalPlatform, tight_as: Callable[..., Any], tmp_path: Path
) -> None:
    chart = chart_cluster_config(tight_platform, tmp_path)
    assert chart.scheduler_cores == 0.5  # helm/dask-gateway/values.yaml: the size at issue
    # One 2-core worker: the validator's arithmetic (0.5 + 2 = 2.5 cores) says it fits.
    cluster = new_cluster(tight_as("alice"), 1, worker_cores=2, worker_memory=1.0)
    try:
        assert len(cluster.get_client().scheduler_info()["workers"]) == 1
        (config,) = stored_cluster_configs(tight_platform, "alice")
        assert config["scheduler_cores"] == chart.scheduler_cores
        assert config["scheduler_memory"] == chart.scheduler_memory
        assert config["cluster_max_cores"] == TIGHT_MAX_CORES
    finally:
        cluster.shutdown()
