"""Rules over Karpenter: NodePool limits, the spot interruption queue, and where the Dask
schedulers can land (on-demand only, annotated do-not-disrupt).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dask_platform.guard.rules.gateway import _helm_values, _is_dask_gateway_chart
from dask_platform.guard.rules.policy_config import ReportViolation
from dask_platform.guard.rules.resource_types import HELM_RELEASE_TYPES
from dask_platform.guard.values import (
    as_list,
    get_path,
    is_mapping,
)

if TYPE_CHECKING:
    from pulumi_policy import PolicyResource, ResourceValidationArgs, StackValidationArgs

# --------------------------------------------------------------------------- Karpenter

NODE_POOL_TYPES = ("kubernetes:karpenter.sh/v1:NodePool",)
KARPENTER_CHART = "karpenter"
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
# Karpenter's default when a NodePool does not constrain karpenter.sh/capacity-type.
# ref: https://karpenter.sh/docs/concepts/nodepools/ (spec.template.spec.requirements)
DEFAULT_CAPACITY_TYPES = ("on-demand",)
ALL_CAPACITY_TYPES = ("spot", "on-demand", "reserved")


def _chart_name(props: Mapping[str, Any]) -> str:
    chart = props.get("chart")
    return chart.rstrip("/").rsplit("/", 1)[-1] if isinstance(chart, str) else ""


def _pool_name(pool: PolicyResource) -> str:
    return str(get_path(pool.props, "metadata", "name") or pool.name)


def _pool_capacity_types(spec: Any) -> set[str]:
    """The capacity types a NodePool's requirements allow (Karpenter's defaults when unset)."""
    allowed = set(DEFAULT_CAPACITY_TYPES)
    for requirement in as_list(get_path(spec, "template", "spec", "requirements")):
        if not is_mapping(requirement) or requirement.get("key") != CAPACITY_TYPE_LABEL:
            continue
        values = {str(v) for v in as_list(requirement.get("values"))}
        operator = requirement.get("operator")
        if operator == "In":
            allowed = values
        elif operator == "NotIn":
            allowed = set(ALL_CAPACITY_TYPES) - values
        elif operator == "Exists":
            allowed = set(ALL_CAPACITY_TYPES)
    return allowed


def _node_pools(args: StackValidationArgs) -> list[PolicyResource]:
    return [r for r in args.resources if r.resource_type in NODE_POOL_TYPES]


def karpenter_nodepool_limits_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type not in NODE_POOL_TYPES:
        return
    limits = get_path(args.props, "spec", "limits")
    missing = [k for k in ("cpu", "memory") if not is_mapping(limits) or not limits.get(k)]
    if missing:
        report_violation(
            f"NodePool {get_path(args.props, 'metadata', 'name') or args.name} has no "
            f"spec.limits.{' and spec.limits.'.join(missing)}: nothing caps how many nodes it "
            "launches (a runaway cluster.scale() buys instances until the account quota)"
        )


def karpenter_spot_interruption_queue_validator(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    spot_pools = [
        p for p in _node_pools(args) if "spot" in _pool_capacity_types(p.props.get("spec"))
    ]
    if not spot_pools:
        return
    releases = [
        r
        for r in args.resources
        if r.resource_type in HELM_RELEASE_TYPES and _chart_name(r.props) == KARPENTER_CHART
    ]
    queues = [get_path(_helm_values(r.props), "settings", "interruptionQueue") for r in releases]
    if not any(queues):
        names = ", ".join(sorted(_pool_name(p) for p in spot_pools))
        report_violation(
            f"NodePool(s) {names} allow spot capacity but no karpenter release sets "
            "settings.interruptionQueue: without the SQS queue Karpenter never hears the "
            "two-minute spot notice, so workers die mid-task instead of draining",
            spot_pools[0].urn,
        )


def _scheduler_pod(props: Mapping[str, Any]) -> tuple[dict[str, str], list[Any]]:
    """(nodeSelector, tolerations) the dask-gateway chart gives scheduler pods."""
    pod = get_path(_helm_values(props), "gateway", "backend", "scheduler", "extraPodConfig")
    selector = get_path(pod, "nodeSelector")
    selector = {str(k): str(selector[k]) for k in selector} if is_mapping(selector) else {}
    return selector, [t for t in as_list(get_path(pod, "tolerations")) if is_mapping(t)]


def _tolerates(tolerations: list[Any], taint: Any) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") not in (None, "", taint.get("effect")):
            continue
        operator = toleration.get("operator") or "Equal"
        if operator == "Exists" and toleration.get("key") in (None, "", taint.get("key")):
            return True
        if (
            operator == "Equal"
            and toleration.get("key") == taint.get("key")
            and str(toleration.get("value") or "") == str(taint.get("value") or "")
        ):
            return True
    return False


def _pools_for(
    pools: list[PolicyResource], selector: dict[str, str], tolerations: list[Any]
) -> list[tuple[PolicyResource, set[str]]]:
    """The NodePools a pod with this nodeSelector and these tolerations can get a node from,
    each with the capacity types it could get there."""
    out = []
    for pool in pools:
        spec = pool.props.get("spec")
        labels = get_path(spec, "template", "metadata", "labels")
        labels = {str(k): str(labels[k]) for k in labels} if is_mapping(labels) else {}
        taints = [t for t in as_list(get_path(spec, "template", "spec", "taints")) if is_mapping(t)]
        if not all(_tolerates(tolerations, t) for t in taints):
            continue
        capacity = _pool_capacity_types(spec)
        if CAPACITY_TYPE_LABEL in selector:
            capacity &= {selector[CAPACITY_TYPE_LABEL]}
        other = {k: v for k, v in selector.items() if k != CAPACITY_TYPE_LABEL}
        if capacity and all(labels.get(k) == v for k, v in other.items()):
            out.append((pool, capacity))
    return out


def _gateway_releases(args: StackValidationArgs) -> list[PolicyResource]:
    return [
        r
        for r in args.resources
        if r.resource_type in HELM_RELEASE_TYPES and _is_dask_gateway_chart(r.props)
    ]


def schedulers_on_demand_only_validator(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    pools = _node_pools(args)
    for release in _gateway_releases(args):
        selector, tolerations = _scheduler_pod(release.props)
        for pool, capacity in _pools_for(pools, selector, tolerations):
            if "spot" in capacity:
                report_violation(
                    f"Dask schedulers (nodeSelector {selector or 'none'}) can get a spot node "
                    f"from NodePool {_pool_name(pool)}: a spot interruption loses the scheduler "
                    "and with it the whole Dask cluster; select karpenter.sh/capacity-type: "
                    "on-demand or a pool that allows only on-demand",
                    release.urn,
                )


def _sets_do_not_disrupt(source: str) -> bool:
    """Whether gateway config source builds a mapping that carries karpenter.sh/do-not-disrupt:
    "true" (the key as the literal or as the name DO_NOT_DISRUPT_ANNOTATION of
    dask_platform.placement) and names ``scheduler_extra_pod_annotations``.

    A static screen for the policy pack, which cannot run dask-gateway-server; `plan` proves the
    annotation on the scheduler pods the upstream controller builds
    (dask_platform.gateway_pod_checks.capacity_problems)."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    if "scheduler_extra_pod_annotations" not in source:
        return False
    for node in ast.walk(tree):
        if not isinstance(node, ast.Dict):
            continue
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:  # a ``**mapping`` entry
                continue
            names_annotation = (isinstance(key, ast.Constant) and key.value == DO_NOT_DISRUPT) or (
                isinstance(key, ast.Name | ast.Attribute)
                and (getattr(key, "id", None) or getattr(key, "attr", None))
                == "DO_NOT_DISRUPT_ANNOTATION"
            )
            if names_annotation and isinstance(value, ast.Constant) and value.value == "true":
                return True
    return False


def scheduler_do_not_disrupt_validator(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    pools = _node_pools(args)
    for release in _gateway_releases(args):
        selector, tolerations = _scheduler_pod(release.props)
        reachable = _pools_for(pools, selector, tolerations)
        if not reachable:
            continue  # schedulers never run on nodes Karpenter manages
        extra = get_path(_helm_values(release.props), "gateway", "extraConfig")
        sources = [str(extra[k]) for k in extra] if is_mapping(extra) else [str(extra or "")]
        if not any(_sets_do_not_disrupt(source) for source in sources):
            names = ", ".join(sorted(_pool_name(p) for p, _ in reachable))
            report_violation(
                f"Dask schedulers run on Karpenter NodePool(s) {names} but the gateway config "
                f'(gateway.extraConfig) does not annotate them {DO_NOT_DISRUPT}: "true"; '
                "consolidation or expiry would remove the node and lose the whole Dask cluster",
                release.urn,
            )
