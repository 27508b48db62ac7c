"""Where Dask pods run: the node labels, taints and annotations the platform's NodePools and
the gateway's pod settings agree on (one source for both sides), and whether a pod's
tolerations and nodeSelector let it onto a NodePool's nodes.

ref: https://karpenter.sh/docs/concepts/scheduling/ (labels, taints, capacity-type)
ref: https://karpenter.sh/docs/concepts/disruption/#pod-level-controls (do-not-disrupt)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

NODE_ROLE_LABEL = "dask-platform/node-role"
"""Node label naming the node's role: one of {core, schedulers, workers}."""

CORE_ROLE = "core"
SCHEDULERS_ROLE = "schedulers"
WORKERS_ROLE = "workers"

WORKER_TAINT_KEY = "dask-platform/workers"
SCHEDULER_TAINT_KEY = "dask-platform/schedulers"
TAINT_VALUE = "true"
TAINT_EFFECT = "NoSchedule"

CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
"""Well-known Karpenter label: one of {spot, on-demand, reserved}."""

DO_NOT_DISRUPT_ANNOTATION = "karpenter.sh/do-not-disrupt"
"""Pod annotation: Karpenter never voluntarily removes the node under it (schedulers: losing
one loses the whole Dask cluster)."""


def toleration(taint_key: str) -> dict[str, str]:
    """The toleration of one of the platform's taints, as a pod spec entry."""
    return {"key": taint_key, "operator": "Equal", "value": TAINT_VALUE, "effect": TAINT_EFFECT}


# --------------------------------------------------------------------------- a pod on a NodePool


def _tolerated(taint: Mapping[str, Any], tolerations: Sequence[Mapping[str, Any]]) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") not in (None, "", taint.get("effect")):
            continue
        if toleration.get("operator") == "Exists":
            if toleration.get("key") in (None, "", taint.get("key")):
                return True
        elif toleration.get("key") == taint.get("key") and str(toleration.get("value", "")) == str(
            taint.get("value", "")
        ):
            return True
    return False


def node_pool_labels(node_pool: Mapping[str, Any]) -> dict[str, list[str]]:
    """The label values a NodePool's nodes can carry: its template labels, and its ``In``
    requirements (``{label: allowed values}``)."""
    template = node_pool["spec"]["template"]
    labels = {k: [str(v)] for k, v in (template.get("metadata") or {}).get("labels", {}).items()}
    for requirement in template["spec"].get("requirements", []):
        if requirement.get("operator") == "In":
            labels[requirement["key"]] = [str(v) for v in requirement.get("values", [])]
    return labels


def pod_placement_problems(pod: Mapping[str, Any], node_pool: Mapping[str, Any]) -> list[str]:
    """Why a pod (manifest or spec) could not get a node from ``node_pool``: a taint it does not
    tolerate, a nodeSelector label the pool's nodes cannot carry. Empty when it can."""
    spec = pod.get("spec", pod)
    name = node_pool["metadata"]["name"]
    tolerations = spec.get("tolerations") or []
    problems = [
        f"NodePool {name}: taint {t['key']}={t.get('value', '')}:{t['effect']} is not tolerated"
        for t in node_pool["spec"]["template"]["spec"].get("taints", [])
        if not _tolerated(t, tolerations)
    ]
    labels = node_pool_labels(node_pool)
    for key, value in (spec.get("nodeSelector") or {}).items():
        if str(value) not in labels.get(key, []):
            problems.append(
                f"NodePool {name}: nodeSelector {key}={value} is not among its nodes' labels "
                f"({key}: {', '.join(labels.get(key, [])) or 'unset'})"
            )
    return problems
