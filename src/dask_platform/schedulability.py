"""Can the pods dask-gateway's controller builds get a node? Proven offline from the NodePools
the program declares (their manifests, not the stack config they came from) and the instance
types' allocatable capacity as Karpenter computes it (:mod:`dask_platform.capacity`).

For each built pod: the NodePools whose taints it tolerates and whose node labels its
nodeSelector matches, and, per pool, the instance types the pool's requirements allow on which
the pod's requests fit beside the DaemonSets. A worker needs one such pool and type; a scheduler
too, and every pool it can reach must be on-demand only (a spot interruption would lose the
whole Dask cluster).

ref: https://karpenter.sh/docs/concepts/nodepools/ (requirements, taints, limits)
ref: https://karpenter.sh/docs/concepts/scheduling/ (how a pod's constraints pick a NodePool)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dask_platform import capacity as cap
from dask_platform import placement
from dask_platform.karpenter import (
    ARCH_LABEL,
    INSTANCE_CATEGORY_LABEL,
    INSTANCE_FAMILY_LABEL,
    INSTANCE_GENERATION_LABEL,
    INSTANCE_SIZE_LABEL,
)


@dataclass(frozen=True)
class PodPlacement:
    """Where one built pod can run: ``{NodePool name: instance types it fits on}``."""

    label: str
    """The built pod, e.g. ``"hydrology worker (worker_cores=max)"``."""
    component: str
    requests: cap.Resources
    pools: dict[str, list[str]] = field(default_factory=dict)


def requirements_of_node_pool(node_pool: Mapping[str, Any]) -> cap.InstanceRequirements:
    """A NodePool manifest's instance requirements (``In`` on category, family, size,
    architecture, capacity type; ``Gt`` on generation), as :func:`capacity.allowed_instance_types`
    reads them. A key the pool does not constrain allows any value."""
    found: dict[str, list[str]] = {}
    generation_min = 1
    for requirement in node_pool["spec"]["template"]["spec"].get("requirements", []):
        key, operator = requirement["key"], requirement.get("operator")
        values = [str(v) for v in requirement.get("values", [])]
        if operator == "In":
            found[key] = values
        elif operator == "Gt" and key == INSTANCE_GENERATION_LABEL:
            generation_min = int(values[0]) + 1
    return cap.InstanceRequirements(
        categories=tuple(found.get(INSTANCE_CATEGORY_LABEL, ())),
        families=tuple(found.get(INSTANCE_FAMILY_LABEL, ())),
        sizes=tuple(found.get(INSTANCE_SIZE_LABEL, ())),
        generation_min=generation_min,
        architectures=tuple(found.get(ARCH_LABEL, ())),
        capacity_types=tuple(found.get(placement.CAPACITY_TYPE_LABEL, ("spot", "on-demand"))),
    )


def _name(node_pool: Mapping[str, Any]) -> str:
    return str(node_pool["metadata"]["name"])


def place_pods(
    pods: Sequence[Any],
    node_pools: Sequence[Mapping[str, Any]],
    *,
    region: str | None,
    vm_memory_overhead_percent: float,
    daemonset_overhead: cap.Resources,
) -> tuple[list[PodPlacement], list[str]]:
    """``(placements, problems)`` for ``pods`` (:class:`dask_platform.gateway_pods.BuiltPod`)
    against ``node_pools`` (NodePool manifests). Problems name the pod, the pools it could not
    use and why, and, when nothing fits, the largest allocatable of the pools it can reach."""
    allowed = {
        _name(pool): cap.allowed_instance_types(
            requirements_of_node_pool(pool), region, vm_memory_overhead_percent
        )
        for pool in node_pools
    }
    placements: list[PodPlacement] = []
    problems: list[str] = []
    for built in pods:
        requests = cap.requests_of_pod(built.pod)
        result = PodPlacement(built.label, built.component, requests)
        why_not: list[str] = []
        for pool in node_pools:
            refused = placement.pod_placement_problems(built.pod, pool)
            if refused:
                why_not += refused
                continue
            fits = cap.fitting(requests, allowed[_name(pool)], daemonset_overhead)
            result.pools[_name(pool)] = [t.instance_type for t in fits]
            if built.component == "scheduler":
                types = requirements_of_node_pool(pool).capacity_types
                if set(types) != {"on-demand"}:
                    problems.append(
                        f"{built.label}: can land on NodePool {_name(pool)}, which allows "
                        f"{', '.join(types)} capacity; schedulers must run on on-demand capacity "
                        "only (a spot interruption loses the whole Dask cluster)"
                    )
        placements.append(result)
        if not result.pools:
            problems.append(
                f"{built.label}: no NodePool can take it ({'; '.join(why_not) or 'none declared'})"
            )
        elif not any(result.pools.values()):
            largest = cap.largest_allocatable([t for name in result.pools for t in allowed[name]])
            problems.append(
                f"{built.label}: requests {requests}, which fit no instance type of NodePool "
                f"{', '.join(result.pools)} (largest allocatable {largest}, before DaemonSets "
                f"of {daemonset_overhead})"
            )
    return placements, problems
