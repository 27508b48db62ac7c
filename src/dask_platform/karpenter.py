"""Karpenter's objects as this platform declares them: the controller's Helm values, the one
EC2NodeClass and the two NodePools (``dask-workers``, ``dask-schedulers``), built from the stack
config as plain Kubernetes manifests. The Pulumi program declares exactly these; the tests
validate them against the CRDs of the pinned ``karpenter-crd`` chart and render the pinned
``karpenter`` chart with these values.

ref: https://karpenter.sh/docs/concepts/nodepools/
ref: https://karpenter.sh/docs/concepts/nodeclasses/
ref: https://github.com/aws/karpenter-provider-aws/tree/v1.14.1/charts/karpenter (values.yaml)
"""

from __future__ import annotations

from typing import Any

from dask_platform import placement
from dask_platform.config.models import Capacity, NodePoolCapacity

CHART = "karpenter"
CRD_CHART = "karpenter-crd"
NAMESPACE = "kube-system"
"""Where the controller runs (Karpenter's getting-started default)."""
SERVICE_ACCOUNT = "karpenter"
RELEASE = "karpenter"
CRD_RELEASE = "karpenter-crd"

NODE_POOL_API = "karpenter.sh/v1"
NODE_CLASS_API = "karpenter.k8s.aws/v1"
NODE_CLASS_NAME = "dask-platform"
WORKERS_POOL = "dask-workers"
SCHEDULERS_POOL = "dask-schedulers"
POOL_ROLES = {WORKERS_POOL: placement.WORKERS_ROLE, SCHEDULERS_POOL: placement.SCHEDULERS_ROLE}
POOL_TAINTS = {
    WORKERS_POOL: placement.WORKER_TAINT_KEY,
    SCHEDULERS_POOL: placement.SCHEDULER_TAINT_KEY,
}

DISCOVERY_TAG = "karpenter.sh/discovery"
"""Subnets and security groups carrying ``karpenter.sh/discovery: <cluster>`` are where
Karpenter launches nodes."""

ROOT_DEVICE = "/dev/xvda"  # AL2023's root device

# Well-known labels Karpenter schedules on.
# ref: https://karpenter.sh/docs/concepts/scheduling/#well-known-labels
INSTANCE_CATEGORY_LABEL = "karpenter.k8s.aws/instance-category"
INSTANCE_FAMILY_LABEL = "karpenter.k8s.aws/instance-family"
INSTANCE_SIZE_LABEL = "karpenter.k8s.aws/instance-size"
INSTANCE_GENERATION_LABEL = "karpenter.k8s.aws/instance-generation"
ARCH_LABEL = "kubernetes.io/arch"
OS_LABEL = "kubernetes.io/os"

CONTROLLER_RESOURCES = {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}
"""The controller's requests: it lives on the small core nodes beside the gateway."""


def controller_values(
    *, cluster_name: str, interruption_queue: str, role_arn: str, capacity: Capacity
) -> dict[str, Any]:
    """Helm values of the ``karpenter`` chart: the controller on the on-demand core nodes, its
    IAM role through IRSA, the interruption queue, and the VM overhead the fit check assumes."""
    return {
        "serviceAccount": {
            "name": SERVICE_ACCOUNT,
            "annotations": {"eks.amazonaws.com/role-arn": role_arn},
        },
        # Never on a node it manages itself: the chart's affinity already refuses nodes with a
        # karpenter.sh/nodepool label; this pins it to the core managed node group.
        "nodeSelector": {OS_LABEL: "linux", placement.NODE_ROLE_LABEL: placement.CORE_ROLE},
        "controller": {"resources": CONTROLLER_RESOURCES},
        "settings": {
            "clusterName": cluster_name,
            "interruptionQueue": interruption_queue,
            "vmMemoryOverheadPercent": capacity.vm_memory_overhead_percent,
        },
    }


def ec2_node_class(
    *, cluster_name: str, node_role: str, capacity: Capacity, tags: dict[str, str]
) -> dict[str, Any]:
    """The EC2NodeClass every NodePool uses: AL2023, IMDSv2 only with hop limit 1 (pods cannot
    borrow the node role), an encrypted gp3 root volume, the stack's cost tags."""
    return {
        "apiVersion": NODE_CLASS_API,
        "kind": "EC2NodeClass",
        "metadata": {"name": NODE_CLASS_NAME},
        "spec": {
            "role": node_role,
            "amiSelectorTerms": [{"alias": f"al2023@{capacity.ami_version}"}],
            "subnetSelectorTerms": [{"tags": {DISCOVERY_TAG: cluster_name}}],
            "securityGroupSelectorTerms": [{"tags": {DISCOVERY_TAG: cluster_name}}],
            "metadataOptions": {
                "httpEndpoint": "enabled",
                "httpProtocolIPv6": "disabled",
                "httpPutResponseHopLimit": 1,
                "httpTokens": "required",
            },
            "blockDeviceMappings": [
                {
                    "deviceName": ROOT_DEVICE,
                    "rootVolume": True,
                    "ebs": {
                        "volumeSize": f"{capacity.disk_size_gib}Gi",
                        "volumeType": "gp3",
                        "encrypted": True,
                        "deleteOnTermination": True,
                    },
                }
            ],
            "tags": dict(tags),
        },
    }


def _requirement(key: str, values: list[str]) -> dict[str, Any]:
    return {"key": key, "operator": "In", "values": list(values)}


def node_pool(name: str, pool: NodePoolCapacity) -> dict[str, Any]:
    """A NodePool (``dask-workers`` or ``dask-schedulers``): the role's label and taint, the
    instance requirements and caps of ``pool``, consolidation when empty, node expiry."""
    requirements = [
        _requirement(placement.CAPACITY_TYPE_LABEL, list(pool.capacity_types)),
        _requirement(INSTANCE_CATEGORY_LABEL, list(pool.instance_categories)),
    ]
    if pool.instance_families:
        requirements.append(_requirement(INSTANCE_FAMILY_LABEL, list(pool.instance_families)))
    if pool.instance_sizes:
        requirements.append(_requirement(INSTANCE_SIZE_LABEL, list(pool.instance_sizes)))
    requirements += [
        {
            "key": INSTANCE_GENERATION_LABEL,
            "operator": "Gt",
            "values": [str(pool.instance_generation_min - 1)],
        },
        _requirement(ARCH_LABEL, list(pool.architectures)),
        _requirement(OS_LABEL, ["linux"]),
    ]
    return {
        "apiVersion": NODE_POOL_API,
        "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {"labels": {placement.NODE_ROLE_LABEL: POOL_ROLES[name]}},
                "spec": {
                    "nodeClassRef": {
                        "group": NODE_CLASS_API.split("/")[0],
                        "kind": "EC2NodeClass",
                        "name": NODE_CLASS_NAME,
                    },
                    "taints": [
                        {
                            "key": POOL_TAINTS[name],
                            "value": placement.TAINT_VALUE,
                            "effect": placement.TAINT_EFFECT,
                        }
                    ],
                    "requirements": requirements,
                    "expireAfter": pool.expire_after,
                },
            },
            "limits": {"cpu": str(pool.cpu_limit), "memory": f"{pool.memory_limit_gib}Gi"},
            "disruption": {
                "consolidationPolicy": "WhenEmpty",
                "consolidateAfter": pool.consolidate_after,
                # A new AMI (al2023@latest) drifts every node; replacing a busy Dask node would
                # evict running workers and lose their in-memory results. Drifted nodes are
                # replaced once empty (consolidation), never while they hold Dask pods.
                # ref: https://karpenter.sh/docs/concepts/disruption/#disruption-budgets
                "budgets": [{"nodes": "0", "reasons": ["Drifted"]}],
            },
        },
    }


def node_pools(capacity: Capacity) -> list[dict[str, Any]]:
    """Both NodePools of a stack, workers first."""
    return [
        node_pool(WORKERS_POOL, capacity.workers),
        node_pool(SCHEDULERS_POOL, capacity.schedulers),
    ]
