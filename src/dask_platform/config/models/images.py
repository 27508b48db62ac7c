"""Where the images come from: the ECR registry, the bootstrap stack or explicit references."""

from __future__ import annotations

from pydantic import Field

from dask_platform.config.types import (
    BootstrapStackName,
    ConfigModel,
    RepositoryPrefix,
)


class Registry(ConfigModel):
    """ECR repositories for the platform's images (images/): one per image, named
    ``<repository_prefix>/<image>``; scanned on push, immutable tags, encrypted, protected."""

    enabled: bool = Field(
        default=False,
        description="Create the repositories. Images are built once and run everywhere, so one "
        "stack per account and region owns them; the others pull from them.",
    )
    repository_prefix: RepositoryPrefix = Field(
        default="dask-platform", max_length=200, description="Repositories: <prefix>/<image>."
    )
    keep_images: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="Tagged images kept per repository; older ones expire (a running cluster's "
        "image must be among them).",
    )
    untagged_expiry_days: int = Field(
        default=7, ge=1, le=365, description="Untagged images (superseded pushes) expire after."
    )


class Images(ConfigModel):
    """Where the stack's image references come from."""

    bootstrap_stack: BootstrapStackName | None = Field(
        default=None,
        description="The bootstrap stack (infra/bootstrap) whose `images` output names every "
        "image (its ECR repository and tag); read with a stack reference. Without it, "
        "gateway.image, gateway.server_image and ecs.gpu.image name the images.",
    )


class ImageRefs(ConfigModel):
    """The image references one stack runs (``<repository>:<tag>``)."""

    worker: str
    gateway: str
    worker_gpu: str | None = None

    @staticmethod
    def split(reference: str) -> dict[str, str]:
        """``repo:tag`` -> the chart's ``{name, tag}``."""
        name, _, tag = reference.rpartition(":")
        return {"name": name, "tag": tag}
