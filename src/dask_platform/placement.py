"""Where Dask pods run: the node labels, taints and annotations the platform's NodePools and
the gateway's pod settings agree on. One source for both sides.

ref: https://karpenter.sh/docs/concepts/scheduling/ (labels, taints, capacity-type)
ref: https://karpenter.sh/docs/concepts/disruption/#pod-level-controls (do-not-disrupt)
"""

from __future__ import annotations

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
