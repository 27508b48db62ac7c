"""Resources for dask-cloudprovider's ECS, Fargate and EC2 cluster managers.

ref: https://cloudprovider.dask.org/en/latest/aws.html
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from dask_platform.config.errors import FieldProblems
from dask_platform.config.models.gateway import Image
from dask_platform.config.types import (
    Cidr,
    ConfigModel,
    InstanceType,
)

LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
"""The only retention periods CloudWatch Logs accepts."""


class EcsGpu(ConfigModel):
    """GPU workers for ``ECSCluster(worker_gpu=...)``: an auto-scaling group of ECS GPU-optimized
    instances behind a capacity provider (Fargate has no GPUs)."""

    enabled: bool = Field(default=False, description="Create the GPU capacity provider.")
    instance_types: list[InstanceType] = Field(
        default_factory=lambda: ["g4dn.xlarge"],
        min_length=1,
        description="GPU instance types, in order of preference (g4dn, g5, g6, p3, p4d, ...).",
    )
    min_size: int = Field(default=0, ge=0, le=1000)
    max_size: int = Field(default=4, ge=1, le=1000)
    gpus_per_worker: int = Field(default=1, ge=1, le=8, description="GPUs per Dask worker task.")
    disk_size_gib: int = Field(default=100, ge=30, le=2000)
    image: Image | None = Field(
        default=None,
        description="The GPU worker image (images/worker-gpu: CuPy + the CUDA runtime, same lock "
        "as the notebook, with a `dask-cuda-worker` shim for ECSCluster); "
        "required when enabled, unless images.bootstrap_stack supplies it.",
    )

    @model_validator(mode="after")
    def _check(self) -> EcsGpu:
        if self.min_size > self.max_size:
            raise FieldProblems(
                [("min_size", f"must not exceed max_size ({self.max_size}) (got {self.min_size})")]
            )
        return self

    @model_validator(mode="after")
    def _fits(self) -> EcsGpu:
        if not self.enabled:
            return self
        from dask_platform.instance_types import ecs_gpu_worker_size

        try:
            ecs_gpu_worker_size(self.instance_types, self.gpus_per_worker)
        except ValueError as exc:
            raise FieldProblems([("instance_types", str(exc))]) from None
        return self

    @field_validator("instance_types")
    @classmethod
    def _gpu_types(cls, value: list[str]) -> list[str]:
        cpu_only = [t for t in value if not t.startswith(("g", "p"))]
        if cpu_only:
            raise ValueError(f"{', '.join(cpu_only)} have no GPU; use g* or p* instance types")
        return value


class Ecs(ConfigModel):
    """Pre-provisioned resources for dask-cloudprovider's FargateCluster, ECSCluster and
    EC2Cluster, so that an analyst needs only a minimal policy and workers get the team role."""

    enabled: bool = Field(default=True, description="Create the ECS/EC2 resources.")
    log_retention_days: int = Field(
        default=30, description=f"CloudWatch retention; one of {set(LOG_RETENTION_DAYS)}."
    )
    fargate_spot: bool = Field(
        default=True, description="Fargate workers on FARGATE_SPOT (the scheduler stays on-demand)."
    )
    access_cidrs: list[Cidr] = Field(
        default_factory=list,
        description="CIDRs outside the VPC that may reach the scheduler (8786) and dashboard "
        "(8787). The VPC itself always may; 0.0.0.0/0 is only ever opened if listed here.",
    )
    analyst_policy: Literal["resources-supplied", "create-everything"] = Field(
        default="resources-supplied",
        description="Which minimal policy the per-team analyst groups get.",
    )
    imdsv2_account_default: bool = Field(
        default=True,
        description="Manage the region's account-level instance metadata defaults (IMDSv2 "
        "required). EC2Cluster cannot request IMDSv2 per instance; one stack per account and "
        "region may own this setting.",
    )
    gpu: EcsGpu = Field(default_factory=EcsGpu)

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            allowed = ", ".join(str(d) for d in LOG_RETENTION_DAYS)
            raise ValueError(f"{value} is not a CloudWatch retention period; one of {allowed}")
        return value
