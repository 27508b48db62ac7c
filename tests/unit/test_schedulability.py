"""Every pod dask-gateway's controller builds for a committed stack can get a node from the
NodePools the program declares (Karpenter's scheduling rules, Karpenter's allocatable), no
scheduler can reach spot capacity, and each way of breaking that is caught."""

from __future__ import annotations

import copy
import functools
from typing import Any

import pytest

from dask_platform import capacity as cap
from dask_platform.config.models import StackConfig
from dask_platform.config.sources import load_stack_file
from dask_platform.gateway_pods import BuiltPod, build_pods
from dask_platform.gateway_settings import render_values
from dask_platform.guard.pods import NODE_POOL_TYPE, check_release_pods
from dask_platform.karpenter import SCHEDULERS_POOL, WORKERS_POOL
from dask_platform.pulumi_eval import stack_images
from dask_platform.schedulability import place_pods, requirements_of_node_pool
from tests.unit.conftest import REPO, STACKS, evaluated


@functools.cache
def pods_of(stack: str) -> list[BuiltPod]:
    config = load_stack_file(REPO, stack)
    # The values the program passes: images from the bootstrap stack the config references.
    return build_pods(config, render_values(config, stack_images(stack)))


def node_pools_of(stack: str) -> list[dict[str, Any]]:
    return copy.deepcopy([r.inputs for r in evaluated(stack).of_type(NODE_POOL_TYPE)])


def place(config: StackConfig, pods: list[BuiltPod], pools: list[dict[str, Any]]):
    return place_pods(
        pods,
        pools,
        region=config.region,
        vm_memory_overhead_percent=config.capacity.vm_memory_overhead_percent,
        daemonset_overhead=cap.daemonset_overhead(config.capacity),
    )


@pytest.mark.parametrize("stack", STACKS)
def test_every_built_pod_of_every_team_has_a_node(stack: str) -> None:
    config = load_stack_file(REPO, stack)
    report = check_release_pods(config, evaluated(stack))
    assert report.problems == []
    teams = set(config.team_names)
    assert report.pods_built == len(teams) * 2 * 6  # scheduler + worker, 6 option cases
    for placement in report.placements:
        if placement.component == "worker":
            assert list(placement.pools) == [WORKERS_POOL], placement.label
        else:
            assert list(placement.pools) == [SCHEDULERS_POOL], placement.label
        (types,) = placement.pools.values()
        assert types, placement.label
    workers_max = [p for p in report.placements if p.label.endswith("worker (all=max)")]
    assert len(workers_max) == len(teams)
    gw = config.gateway
    assert workers_max[0].requests == cap.worker_requests(
        gw.worker_cores.max, gw.worker_memory_gib.max
    )


def test_the_scheduler_pool_is_on_demand_only_and_the_worker_pool_allows_spot() -> None:
    pools = {p["metadata"]["name"]: p for p in node_pools_of("prod")}
    assert requirements_of_node_pool(pools[SCHEDULERS_POOL]).capacity_types == ("on-demand",)
    assert "spot" in requirements_of_node_pool(pools[WORKERS_POOL]).capacity_types


def test_a_worker_larger_than_every_instance_type_is_caught() -> None:
    """The worker pool shrunk to sizes too small for the stack's largest worker."""
    config = load_stack_file(REPO, "prod")
    pools = node_pools_of("prod")
    for pool in pools:
        if pool["metadata"]["name"] == WORKERS_POOL:
            for requirement in pool["spec"]["template"]["spec"]["requirements"]:
                if requirement["key"] == "karpenter.k8s.aws/instance-size":
                    requirement["values"] = ["large"]
    _, problems = place(config, pods_of("prod"), pools)
    too_big = [p for p in problems if "worker (all=max)" in p]
    assert len(too_big) == len(config.team_names)
    assert "fit no instance type of NodePool dask-workers (largest allocatable" in too_big[0]
    assert "10 cores x 32.00 GiB" in too_big[0]


def test_a_scheduler_that_can_reach_spot_capacity_is_caught() -> None:
    config = load_stack_file(REPO, "prod")
    pools = node_pools_of("prod")
    for pool in pools:
        if pool["metadata"]["name"] == SCHEDULERS_POOL:
            for requirement in pool["spec"]["template"]["spec"]["requirements"]:
                if requirement["key"] == "karpenter.sh/capacity-type":
                    requirement["values"] = ["spot", "on-demand"]
    _, problems = place(config, pods_of("prod"), pools)
    spot = [p for p in problems if "schedulers must run on on-demand capacity only" in p]
    assert len(spot) == len(config.team_names) * 6
    assert spot[0].startswith("hydrology scheduler (default): can land on NodePool dask-schedulers")


def test_a_pod_no_node_pool_accepts_is_caught() -> None:
    """Without the scheduler pool (or with its taint untolerated) schedulers stay Pending."""
    config = load_stack_file(REPO, "prod")
    pools = [p for p in node_pools_of("prod") if p["metadata"]["name"] == WORKERS_POOL]
    _, problems = place(config, pods_of("prod"), pools)
    pending = [p for p in problems if "no NodePool can take it" in p]
    assert len(pending) == len(config.team_names) * 6
    assert "taint dask-platform/workers=true:NoSchedule is not tolerated" in pending[0]


def test_a_stack_that_declares_no_node_pool_is_caught() -> None:
    evaluation = copy.copy(evaluated("prod"))
    evaluation.resources = [r for r in evaluation.resources if r.type != NODE_POOL_TYPE]
    report = check_release_pods(load_stack_file(REPO, "prod"), evaluation)
    assert report.problems == ["no Karpenter NodePool is declared: nothing would add nodes"]


def test_a_stack_without_the_gateway_release_is_caught() -> None:
    evaluation = copy.copy(evaluated("prod"))
    evaluation.resources = [
        r
        for r in evaluation.resources
        if not (r.type == "kubernetes:helm.sh/v3:Release" and r.inputs["name"] == "dask-gateway")
    ]
    report = check_release_pods(load_stack_file(REPO, "prod"), evaluation)
    assert report.problems == [
        "no Helm release named 'dask-gateway' is declared: the gateway's pods cannot be built "
        "and checked"
    ]
