"""The whole stack configuration: one model for every ``dask-platform:`` key of
``Pulumi.<stack>.yaml``, plus the teams and buckets it names.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from dask_platform.config.models.capacity import Capacity
from dask_platform.config.models.ecs import Ecs
from dask_platform.config.models.eks import Eks, Network
from dask_platform.config.models.gateway import Gateway
from dask_platform.config.models.images import ImageRefs, Images
from dask_platform.config.models.limits import Limits
from dask_platform.config.models.object_stores import ObjectStore
from dask_platform.config.types import (
    AccountId,
    BucketName,
    ConfigModel,
    Region,
    TeamName,
)


class Team(ConfigModel):
    name: TeamName
    groups: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        min_length=1, description="Identity-provider groups whose members belong to the team."
    )


class Scratch(ConfigModel):
    bucket_name: BucketName
    retention_days: int = Field(default=7, ge=1, le=365)


class DataBucket(ConfigModel):
    name: BucketName
    requester_pays: bool = False
    managed: bool = Field(
        default=False,
        description="true: this stack creates the bucket (protected, versioned); "
        "false: an existing bucket that teams may read.",
    )


class StackConfig(ConfigModel):
    """Everything a stack needs; loaded from ``Pulumi.<stack>.yaml`` (``dask-platform:`` keys)."""

    production: bool = Field(description="Marks a production stack (stricter policy rules).")
    account_id: AccountId = Field(
        description="The AWS account the stack deploys to (checked against the caller at `up`)."
    )
    region: Region
    network: Network
    eks: Eks
    teams: list[Team] = Field(min_length=1)
    scratch: Scratch
    data_buckets: list[DataBucket] = Field(default_factory=list)
    gateway: Gateway
    ecs: Ecs = Field(default_factory=Ecs)
    images: Images = Field(default_factory=Images)
    capacity: Capacity
    limits: Limits = Field(
        default_factory=Limits, description="Per-user and per-team limits (the gateway's)."
    )
    object_stores: list[ObjectStore] = Field(
        default_factory=list,
        description="Other S3-compatible stores (OSN, Ceph); keys in object_store_keys.",
    )
    tags: dict[str, str] = Field(default_factory=dict)

    def explicit_images(self) -> ImageRefs | None:
        """The images named in this config (None when they come from the bootstrap stack)."""
        if self.gateway.image is None or self.gateway.server_image is None:
            return None
        gpu = self.ecs.gpu.image
        return ImageRefs(
            worker=self.gateway.image.reference,
            gateway=self.gateway.server_image.reference,
            worker_gpu=gpu.reference if gpu else None,
        )

    def team(self, name: str) -> Team:
        for team in self.teams:
            if team.name == name:
                return team
        raise KeyError(f"unknown team {name!r}; teams: {', '.join(t.name for t in self.teams)}")

    @property
    def team_names(self) -> list[str]:
        return [t.name for t in self.teams]
