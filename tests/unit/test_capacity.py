"""Allocatable capacity as Karpenter computes it, from moto's instance-type table, and the fit of
every committed stack's worker options and scheduler into its NodePools."""

from __future__ import annotations

import re

import pytest

from dask_platform.capacity import (
    MIB,
    InstanceRequirements,
    Resources,
    allowed_instance_types,
    fit_problems,
    fitting,
    instance_capacity,
    parse_quantity,
    pool_instance_types,
    scheduler_requests,
    worker_option_fits,
    worker_requests,
)
from dask_platform.config.models import Capacity
from dask_platform.gateway_settings import committed_values


# Karpenter's own generated instance-type reference (AL2023, ENI-limited pods, 7.5% VM overhead):
# ref: https://github.com/aws/karpenter-provider-aws/blob/main/website/content/en/docs/reference/instance-types.md
@pytest.mark.parametrize(
    ("instance_type", "cpu_millis", "memory_mib", "pods"),
    [
        ("c5a.large", 1930, 3114, 29),
        ("c5a.xlarge", 3920, 6584, 58),
        ("c5.2xlarge", 7910, 14162, 58),
        ("c5.4xlarge", 15890, 27381, 234),
        ("c5.18xlarge", 71750, 127934, 737),
        ("c5.24xlarge", 95690, 173400, 737),
    ],
)
def test_allocatable_matches_karpenters_reference(instance_type, cpu_millis, memory_mib, pods):
    capacity = instance_capacity(instance_type)
    assert capacity.max_pods == pods
    assert capacity.allocatable.cpu_millis == cpu_millis
    assert capacity.allocatable.memory_bytes == memory_mib * MIB


def test_labels_as_karpenter_derives_them():
    capacity = instance_capacity("m6i.4xlarge")
    assert (capacity.category, capacity.family, capacity.generation, capacity.size) == (
        "m",
        "m6i",
        6,
        "4xlarge",
    )
    assert capacity.architecture == "amd64"
    assert capacity.capacity_types == {"spot", "on-demand"}
    assert instance_capacity("m7g.large").architecture == "arm64"


def test_unknown_instance_type():
    with pytest.raises(KeyError, match=r"m9z\.huge"):
        instance_capacity("m9z.huge")


def test_requirements_select_instance_types():
    allowed = allowed_instance_types(
        InstanceRequirements(
            categories=("r",), families=("r6i", "r5"), sizes=("xlarge", "2xlarge")
        ),
        region="us-west-2",
    )
    assert sorted(i.instance_type for i in allowed) == [
        "r5.2xlarge",
        "r5.xlarge",
        "r6i.2xlarge",
        "r6i.xlarge",
    ]
    arm = allowed_instance_types(
        InstanceRequirements(categories=("m",), families=("m6i",), architectures=("arm64",))
    )
    assert arm == []


def test_a_pod_fits_beside_the_daemonsets_only():
    c5_2xlarge = instance_capacity("c5.2xlarge")  # 7910m, 14162 MiB allocatable
    overhead = Resources(250, 512 * MIB)
    assert fitting(Resources(7660, 13650 * MIB), [c5_2xlarge], overhead) == [c5_2xlarge]
    assert fitting(Resources(7661, 100 * MIB), [c5_2xlarge], overhead) == []
    assert fitting(Resources(100, 13651 * MIB), [c5_2xlarge], overhead) == []


@pytest.mark.parametrize(
    ("text", "value"), [("500m", 0.5), ("1G", 1e9), ("2Gi", 2 * 2**30), ("1.5", 1.5), (2, 2.0)]
)
def test_kubernetes_quantities(text, value):
    assert parse_quantity(text) == value


def test_a_bad_quantity_is_named():
    with pytest.raises(ValueError, match="'1 GB' is not a Kubernetes quantity"):
        parse_quantity("1 GB")


def test_every_committed_stack_fits(config):
    """For the min, default and max worker option: at least one allowed instance type fits; the
    scheduler the dask-gateway values request fits a scheduler instance type; no scheduler
    instance type is sold as spot only."""
    fits = worker_option_fits(config.gateway, config.capacity, config.region)
    assert [f.option_set for f in fits] == ["min", "default", "max"]
    for fit in fits:
        assert fit.fits, fit.option_set
    assert fits[-1].requests == worker_requests(
        config.gateway.worker_cores.max, config.gateway.worker_memory_gib.max
    )
    scheduler = scheduler_requests(committed_values(config.gateway.values_overlay))
    schedulers = pool_instance_types(config.capacity, "schedulers", config.region)
    assert fitting(scheduler, schedulers, Resources(0, 0))
    assert all("on-demand" in t.capacity_types for t in schedulers)
    assert fit_problems(config.gateway, config.capacity, config.region, scheduler) == []


def test_a_worker_larger_than_every_instance_type_is_named(config):
    small = Capacity.model_validate(
        {
            **config.capacity.model_dump(),
            "workers": {
                **config.capacity.workers.model_dump(),
                "instance_families": [],
                "instance_sizes": ["large"],
            },
        }
    )
    (problem,) = fit_problems(config.gateway, small, config.region, None)
    assert problem.startswith("gateway.worker_cores.max and gateway.worker_memory_gib.max: ")
    assert f"a worker of {config.gateway.worker_cores.max:g} cores" in problem
    assert "the largest allocatable is 1.93 cores" in problem
    # The largest allowed types come first: 2-vCPU, 16 GiB r-family "large" types.
    assert re.search(r"NodePool allows \(r[0-9a-z]+\.large, ", problem), problem


def test_a_scheduler_that_fits_no_scheduler_type_is_named(config):
    (problem,) = fit_problems(
        config.gateway, config.capacity, config.region, Resources(64_000, 2**30)
    )
    assert problem.startswith("capacity.schedulers: a scheduler requesting 64 cores")


def test_plan_prints_the_node_pools_and_the_fit_table(evaluation, config):
    from rich.console import Console

    from dask_platform.commands.plan_capacity import capacity_plan, print_capacity

    plan = capacity_plan(config, evaluation)
    assert [p["metadata"]["name"] for p in plan.node_pools] == ["dask-workers", "dask-schedulers"]
    workers = pool_instance_types(config.capacity, "workers", config.region)
    assert plan.allowed["dask-workers"] == len(workers)
    maximum = plan.worker_fits[-1]
    overhead = Resources(250, 2**29)  # the committed stacks' DaemonSet defaults
    assert {t.instance_type for t in maximum.fits} == {
        t.instance_type for t in workers if (maximum.requests + overhead).fits_in(t.allocatable)
    }
    assert len(maximum.fits) < len(workers), "the largest worker does not fit every type"
    assert plan.scheduler is not None
    assert plan.scheduler.fits

    console = Console(record=True, width=240)
    print_capacity(console, config, evaluation)
    text = console.export_text()
    assert "Karpenter NodePools" in text
    assert "dask-platform/workers=true:NoSchedule" in text
    assert f"cpu {config.capacity.workers.cpu_limit}" in text
    smallest = maximum.fits[0].instance_type
    row = next(line for line in text.splitlines() if "worker max" in line)
    assert f"{config.gateway.worker_cores.max} cores x" in row
    assert smallest in row
    assert f"| {len(maximum.fits)} " in row.replace("│", "|")


def test_a_pod_manifest_is_placed_against_a_node_pool(config):
    from dask_platform.capacity import fitting, requests_of_pod
    from dask_platform.karpenter import node_pools
    from dask_platform.placement import pod_placement_problems

    workers, schedulers = node_pools(config.capacity)
    worker_pod = {
        "spec": {
            "nodeSelector": {"dask-platform/node-role": "workers"},
            "tolerations": [
                {
                    "key": "dask-platform/workers",
                    "operator": "Equal",
                    "value": "true",
                    "effect": "NoSchedule",
                }
            ],
            "containers": [
                {"name": "dask-worker", "resources": {"requests": {"cpu": "2", "memory": "4Gi"}}}
            ],
            "initContainers": [{"name": "init", "resources": {"requests": {"cpu": "100m"}}}],
        }
    }
    assert requests_of_pod(worker_pod) == Resources(2000, 4 * 2**30)
    types = pool_instance_types(config.capacity, "workers", config.region)
    # As dask_platform.schedulability places each pod the controller builds.
    assert pod_placement_problems(worker_pod, workers) == []
    assert fitting(requests_of_pod(worker_pod), types, Resources(250, 2**29))
    # The same pod cannot use the scheduler pool (taint, label) ...
    assert pod_placement_problems(worker_pod, schedulers) == [
        "NodePool dask-schedulers: taint dask-platform/schedulers=true:NoSchedule is not tolerated",
        "NodePool dask-schedulers: nodeSelector dask-platform/node-role=workers is not among "
        "its nodes' labels (dask-platform/node-role: schedulers)",
    ]
    # ... and a worker pinned to a capacity type the pool does not sell cannot use it.
    worker_pod["spec"]["nodeSelector"]["karpenter.sh/capacity-type"] = "reserved"
    assert pod_placement_problems(worker_pod, workers) == [
        "NodePool dask-workers: nodeSelector karpenter.sh/capacity-type=reserved is not among "
        "its nodes' labels (karpenter.sh/capacity-type: "
        + ", ".join(config.capacity.workers.capacity_types)
        + ")"
    ]


def test_the_table_is_motos_own():
    """The files are read directly (importing moto costs seconds); what moto loads is the same."""
    from moto.ec2.models.instance_types import INSTANCE_TYPE_OFFERINGS, INSTANCE_TYPES

    from dask_platform.capacity import instance_type_table, offered_in

    assert dict(instance_type_table()) == INSTANCE_TYPES
    for region in ("us-west-2", "eu-central-1"):
        assert offered_in(region) == {
            o["InstanceType"] for o in INSTANCE_TYPE_OFFERINGS["region"][region]
        }
    assert offered_in("xx-nowhere-1") == frozenset()
