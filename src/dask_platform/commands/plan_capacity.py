"""The capacity section of `dask-platform plan`: the NodePools the program declares and the fit
table (worker option set -> instance types of the worker NodePool a worker pod fits on)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.table import Table

from dask_platform import capacity as cap

if TYPE_CHECKING:
    from rich.console import Console

    from dask_platform.config.models import StackConfig
    from dask_platform.pulumi_mocks import Evaluation

NODE_POOL_TYPE = "kubernetes:karpenter.sh/v1:NodePool"
SHOWN_TYPES = 6


@dataclass(frozen=True)
class CapacityPlan:
    """What the section shows: the declared NodePools (manifests), the worker option fits and
    the scheduler's fit."""

    node_pools: list[dict[str, Any]]
    allowed: dict[str, int]  # NodePool name -> instance types it allows in the region
    worker_fits: list[cap.OptionFit]
    scheduler: cap.OptionFit | None


def capacity_plan(config: StackConfig, evaluation: Evaluation) -> CapacityPlan:
    """The NodePools ``evaluation`` declares and where the stack's pods fit."""
    from dask_platform.gateway_settings import committed_values
    from dask_platform.karpenter import SCHEDULERS_POOL, WORKERS_POOL

    pools = [r.inputs for r in evaluation.of_type(NODE_POOL_TYPE)]
    region = config.region
    pool_config = {WORKERS_POOL: "workers", SCHEDULERS_POOL: "schedulers"}
    allowed = {
        name: len(cap.pool_instance_types(config.capacity, pool, region))
        for name, pool in pool_config.items()
    }
    scheduler = None
    values = committed_values(config.gateway.values_overlay)
    try:
        requests = cap.scheduler_requests(values)
    except KeyError:
        requests = None
    if requests is not None:
        types = cap.pool_instance_types(config.capacity, "schedulers", region)
        overhead = cap.daemonset_overhead(config.capacity)
        scheduler = cap.OptionFit("scheduler", requests, cap.fitting(requests, types, overhead))
    return CapacityPlan(
        node_pools=pools,
        allowed=allowed,
        worker_fits=cap.worker_option_fits(config.gateway, config.capacity, region),
        scheduler=scheduler,
    )


def _requirements(pool: dict[str, Any]) -> str:
    lines = []
    for requirement in pool["spec"]["template"]["spec"].get("requirements", []):
        key = requirement["key"].rsplit("/", 1)[-1]
        lines.append(f"{key} {requirement['operator']} {','.join(requirement.get('values', []))}")
    return "\n".join(lines)


def _types(fit: cap.OptionFit) -> str:
    # Smallest first: those are the nodes Karpenter picks for one pod (cheapest that fits).
    names = [t.instance_type for t in fit.fits[:SHOWN_TYPES]]
    more = len(fit.fits) - len(names)
    return ", ".join(names) + (f" (+{more} more)" if more > 0 else "") or "[red]none[/red]"


def print_capacity(console: Console, config: StackConfig, evaluation: Evaluation) -> None:
    """Print the NodePools table and the fit table for a stack."""
    plan = capacity_plan(config, evaluation)
    pools = Table(title="Karpenter NodePools", show_lines=True)
    for column in ("NodePool", "node label / taint", "requirements", "limits", "disruption"):
        pools.add_column(column)
    pools.add_column("types", justify="right")
    for pool in plan.node_pools:
        spec = pool["spec"]
        template = spec["template"]
        labels = ", ".join(
            f"{k}={v}" for k, v in (template.get("metadata") or {}).get("labels", {}).items()
        )
        taints = ", ".join(
            f"{t['key']}={t['value']}:{t['effect']}" for t in template["spec"].get("taints", [])
        )
        limits = spec.get("limits", {})
        disruption = spec["disruption"]
        pools.add_row(
            pool["metadata"]["name"],
            f"{labels}\n{taints}",
            _requirements(pool),
            f"cpu {limits.get('cpu', '-')}\nmemory {limits.get('memory', '-')}",
            f"{disruption['consolidationPolicy']} after {disruption['consolidateAfter']}\n"
            f"expire after {template['spec'].get('expireAfter', '-')}",
            str(plan.allowed.get(pool["metadata"]["name"], 0)),
        )
    console.print(pools)

    overhead = cap.daemonset_overhead(config.capacity)
    fits = Table(
        title=f"Fit in {config.region}: option set -> instance types a pod fits on "
        f"(allocatable as Karpenter computes it, less {overhead} of DaemonSets)"
    )
    for column in ("option set", "pod requests", "fits", "instance types (smallest first)"):
        fits.add_column(column)
    rows = [(f"worker {f.option_set}", f) for f in plan.worker_fits]
    if plan.scheduler is not None:
        rows.append(("scheduler", plan.scheduler))
    for label, fit in rows:
        fits.add_row(label, str(fit.requests), str(len(fit.fits)), _types(fit))
    console.print(fits)
