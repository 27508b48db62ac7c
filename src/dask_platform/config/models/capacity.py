"""Karpenter capacity: one NodePool for Dask workers, one for schedulers.

ref: https://karpenter.sh/docs/concepts/nodepools/
"""

from __future__ import annotations

from pydantic import Field, field_validator

from dask_platform.config.types import (
    AmiVersion,
    Architecture,
    CapacityType,
    ConfigModel,
    Duration,
    LabelValue,
)


class NodePoolCapacity(ConfigModel):
    """One Karpenter NodePool: what it may launch and what caps it.

    ref: https://karpenter.sh/docs/concepts/nodepools/ (requirements, limits, disruption)
    """

    capacity_types: list[CapacityType] = Field(
        min_length=1,
        description="karpenter.sh/capacity-type values allowed, each one of {spot, on-demand}. "
        "With both, Karpenter launches spot and falls back to on-demand when spot is short.",
    )
    instance_categories: list[LabelValue] = Field(
        min_length=1,
        description="karpenter.k8s.aws/instance-category values (c, m, r, ...).",
    )
    instance_families: list[LabelValue] = Field(
        default_factory=list,
        description="karpenter.k8s.aws/instance-family values (m6i, r7a, ...); empty = every "
        "family of the categories.",
    )
    instance_sizes: list[LabelValue] = Field(
        default_factory=list,
        description="karpenter.k8s.aws/instance-size values (xlarge, 2xlarge, ...); empty = any.",
    )
    instance_generation_min: int = Field(
        default=5,
        ge=1,
        le=20,
        description="Lowest karpenter.k8s.aws/instance-generation allowed (5 = Nitro-era types; "
        "older ones lack the ENA/NVMe drivers AL2023 expects).",
    )
    architectures: list[Architecture] = Field(
        default_factory=lambda: list[Architecture](["amd64"]),
        min_length=1,
        description="kubernetes.io/arch values, each one of {amd64, arm64}; the images' own.",
    )
    cpu_limit: int = Field(
        gt=0, le=100_000, description="NodePool limits.cpu: cores of all its nodes together."
    )
    memory_limit_gib: int = Field(
        gt=0, le=1_000_000, description="NodePool limits.memory in GiB, all its nodes together."
    )
    consolidate_after: Duration = Field(
        default="2m", description="How long a node stays empty before Karpenter removes it."
    )
    expire_after: Duration = Field(
        default="720h", description="Nodes older than this are replaced (patched AMIs)."
    )

    @field_validator("capacity_types", "instance_categories", "instance_families", "architectures")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        repeated = sorted({v for v in value if value.count(v) > 1})
        if repeated:
            raise ValueError(f"must not repeat a value (repeated: {', '.join(repeated)})")
        return value


class SchedulerNodePoolCapacity(NodePoolCapacity):
    capacity_types: list[CapacityType] = Field(
        default_factory=lambda: list[CapacityType](["on-demand"]),
        min_length=1,
        description="One of {[on-demand]}: losing a scheduler loses the whole Dask cluster.",
    )

    @field_validator("capacity_types")
    @classmethod
    def _on_demand_only(cls, value: list[str]) -> list[str]:
        if value != ["on-demand"]:
            raise ValueError(
                f"schedulers run on on-demand capacity only (got {value}); a spot interruption "
                "would lose the whole Dask cluster. Allowed: [on-demand]"
            )
        return value


class Capacity(ConfigModel):
    """Node capacity from Karpenter: one NodePool for Dask workers, one for schedulers."""

    workers: NodePoolCapacity = Field(description="The dask-workers NodePool.")
    schedulers: SchedulerNodePoolCapacity = Field(description="The dask-schedulers NodePool.")
    vm_memory_overhead_percent: float = Field(
        default=0.075,
        ge=0,
        lt=0.5,
        description="Karpenter's settings.vmMemoryOverheadPercent (a fraction): memory of each "
        "instance type assumed lost to the hypervisor and OS.",
    )
    daemonset_cpu: float = Field(
        default=0.25,
        ge=0,
        le=8,
        description="Cores requested on every node by DaemonSets (aws-node, kube-proxy, "
        "eks-pod-identity-agent, ...); a Dask pod must fit beside them.",
    )
    daemonset_memory_gib: float = Field(
        default=0.5,
        ge=0,
        le=32,
        description="Memory (GiB) requested on every node by DaemonSets.",
    )
    ami_version: AmiVersion = Field(
        default="latest",
        description="The EC2NodeClass AMI alias al2023@<ami_version>; pin a release to change "
        "node images only on purpose (a new one replaces nodes through drift).",
    )
    disk_size_gib: int = Field(
        default=100, ge=20, le=2000, description="Encrypted gp3 root volume of each node."
    )
