"""Fair share on the real local gateway (issue 15): per-user and per-team limits on clusters,
worker cores and worker memory, enforced by the platform's backend (dask_platform.
gateway_limits) under the chart-rendered gateway config.

Its own platform: three users of team hydrology with small limits - each user one cluster and
2 worker cores, the team 2 clusters and 3 worker cores. Local workers are processes, so the
sizes are bookkeeping only and the test stays light on two cores.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dask_platform.local.config import load_local_config
from dask_platform.local.platform import LocalPlatform

from .conftest import (
    SHORT_CREDENTIALS_SECONDS,
    SHORT_TOKEN_SECONDS,
    _gateway_factory,
    _running_platform,
)

LIMITS = {
    "per_user": {"clusters": 1, "worker_cores": 2, "worker_memory_gib": 8},
    "per_team": {"clusters": 2, "worker_cores": 3, "worker_memory_gib": 16},
}


@pytest.fixture(scope="module")
def limited_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    config = load_local_config(
        overrides={
            "stack": {"limits": LIMITS},
            "local": {
                "service_account_token_seconds": SHORT_TOKEN_SECONDS,
                "web_identity_session_seconds": SHORT_CREDENTIALS_SECONDS,
                "users": {
                    "dave": {"groups": ["dask-hydrology"]},
                    "erin": {"groups": ["dask-hydrology"]},
                },
            },
        }
    )
    yield from _running_platform(tmp_path_factory.mktemp("limits"), config)


@pytest.fixture(scope="module")
def limited_as(limited_platform: LocalPlatform) -> Iterator[Callable[..., Any]]:
    yield from _gateway_factory(limited_platform)


def requested_workers(cluster: Any) -> int:
    """The number of workers the cluster's scheduler was told to have (dask-gateway's scheduler
    service keeps it as ``count``)."""
    client = cluster.get_client()
    return int(
        client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.services["gateway"].count)
    )


def scale_warning(cluster: Any, n: int) -> str | None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cluster.scale(n)
    messages = [str(w.message) for w in caught if type(w.message).__name__ == "GatewayWarning"]
    assert len(messages) <= 1, messages
    return messages[0] if messages else None


def test_limits_per_user_and_per_team(limited_as: Callable[..., Any]) -> None:
    from dask_gateway import GatewayClusterError

    alice = limited_as("alice")
    options = alice.cluster_options()
    options.worker_cores = 1
    options.worker_memory = 1.0
    first = alice.new_cluster(options)

    # A second cluster of alice's: refused, naming the limit and her running cluster.
    with pytest.raises((GatewayClusterError, ValueError)) as caught:
        alice.new_cluster(options)
    message = str(caught.value)
    assert "cluster limit: alice may run 1 cluster(s) at once" in message
    assert first.name in message
    assert [c.name for c in alice.list_clusters()] == [first.name], "nothing was started"

    # Within the limit: granted as asked, no warning.
    assert scale_warning(first, 1) is None
    assert requested_workers(first) == 1

    # Past her 2 worker cores: capped at 2 workers, and told which limit and why.
    message = scale_warning(first, 5)
    assert message == (
        "Requested 5 workers (1 cores, 1 GiB each); granted 2: alice's worker_cores limit is "
        "2 cores; other clusters hold 0 cores (0 cluster(s)), leaving room for 2 workers x 1 "
        "cores."
    )
    assert requested_workers(first) == 2

    # dave, same team: the team's 3 cores, 2 of them held by alice, leave him one worker.
    dave = limited_as("dave")
    second = dave.new_cluster(options)
    message = scale_warning(second, 2)
    assert message is not None
    assert (
        "granted 1: team hydrology's worker_cores limit is 3 cores; other clusters hold "
        "2 cores (1 cluster(s))" in message
    )
    assert requested_workers(second) == 1

    # adapt: the maximum is capped the same way.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        second.adapt(minimum=0, maximum=4)
    (adapt_message,) = [str(w.message) for w in caught]
    assert adapt_message.startswith("adapt(maximum=4): Requested 4 workers")
    assert "granted 1: team hydrology's worker_cores limit is 3 cores" in adapt_message

    # The team's cluster limit (2): alice and dave hold two, so erin's first is refused.
    with pytest.raises((GatewayClusterError, ValueError)) as caught:
        limited_as("erin").new_cluster(options)
    assert "cluster limit: team hydrology may run 2 cluster(s) at once and runs 2" in str(
        caught.value
    )
    first.shutdown()
    second.shutdown()


def test_cluster_limit_holds_under_concurrent_requests(limited_as: Callable[..., Any]) -> None:
    """Two new_cluster requests of one user at the same moment: exactly one passes."""
    from dask_gateway import Gateway

    gateway = limited_as("alice", fresh=True)

    async def both() -> list[Any]:
        async with Gateway(
            gateway.address,
            proxy_address=gateway.proxy_address,
            auth=gateway.auth,
            asynchronous=True,
        ) as g:
            return await asyncio.gather(
                g.submit(worker_cores=1, worker_memory=1.0),
                g.submit(worker_cores=1, worker_memory=1.0),
                return_exceptions=True,
            )

    # A private loop: asyncio.run() would leave the main thread without a current event loop,
    # which Pulumi's runtime (unit tests later in the same session) still asks for.
    loop = asyncio.new_event_loop()
    try:
        results = loop.run_until_complete(both())
    finally:
        loop.close()
    started = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(started) == 1, results
    assert len(refused) == 1
    assert "cluster limit: alice may run 1" in str(refused[0])
    gateway.stop_cluster(started[0])


def test_scale_names_the_cores_limit_with_the_scheduler(limited_as: Callable[..., Any]) -> None:
    """The issue's case: 2-core workers under cluster_max_cores 4 (the local stack; the local
    backend counts the chart's 0.5-core scheduler, as on EKS). dask-gateway said "exceed
    resource limit of 1 workers"; the platform names the cores limit and counts the scheduler."""
    bob = limited_as("bob")
    options = bob.cluster_options()
    options.worker_cores = 2
    options.worker_memory = 1.0
    cluster = bob.new_cluster(options)
    message = scale_warning(cluster, 2)
    assert message == (
        "Requested 2 workers (2 cores, 1 GiB each); granted 1: cluster_max_cores is 4: the "
        "scheduler's 0.5 + 1 worker x 2 cores = 2.5."
    )
    assert requested_workers(cluster) == 1
    cluster.shutdown()
