"""The bootstrap stack's configuration (``infra/bootstrap/Pulumi.<stack>.yaml``).

The bootstrap project owns what must exist, and be filled, before the platform stack's first
``pulumi up``: the ECR repositories of the platform's images and the tags the stacks run. It is
applied first, the images are pushed to it (``scripts/build-images --push``), and the platform
stacks read the image references from its outputs (``pulumi.StackReference``), in any account
that its repository policy lets pull.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from dask_platform.config.errors import StackConfigError, format_validation_error
from dask_platform.config.models import Registry
from dask_platform.config.sources import decode_config_value, read_stack_path
from dask_platform.config.types import AccountId, ConfigModel, ImageTag, Region
from dask_platform.images import all_images

BOOTSTRAP_NAMESPACE = "dask-platform-bootstrap"
"""The bootstrap project's name (infra/bootstrap/Pulumi.yaml), its config namespace."""

STACK_NAME_PATTERN = r"[A-Za-z0-9_.-]+/" + BOOTSTRAP_NAMESPACE + r"/[A-Za-z0-9_.-]+"
"""``<organization>/dask-platform-bootstrap/<stack>``: how a platform stack names it."""


IMAGE_OUTPUT = "images"
"""The bootstrap output the platform reads: image name -> ``<repository url>:<tag>``."""


class BootstrapConfig(ConfigModel):
    """Everything the bootstrap stack needs (``dask-platform-bootstrap:`` keys)."""

    account_id: AccountId = Field(description="The account that owns the registry.")
    region: Region
    registry: Registry = Field(
        description="Repository prefix and expiry (the `enabled` flag is unused here: this "
        "stack always creates them)."
    )
    image_tags: dict[str, ImageTag] = Field(
        description="The tag every stack runs, per image of images/ (lock-<hash> for the "
        "worker, notebook and worker-gpu images; build-<key> for the gateway image)."
    )
    pull_account_ids: list[AccountId] = Field(
        default_factory=list,
        description="Other accounts whose stacks pull these images (their node, task-execution "
        "and EC2 instance roles still need their own ECR read grant).",
    )

    @field_validator("image_tags")
    @classmethod
    def _every_image(cls, value: dict[str, str]) -> dict[str, str]:
        expected = set(all_images())
        missing, unknown = sorted(expected - set(value)), sorted(set(value) - expected)
        if missing or unknown:
            raise ValueError(
                f"must name exactly the images {', '.join(sorted(expected))} "
                f"(missing: {', '.join(missing) or 'none'}; "
                f"unknown: {', '.join(unknown) or 'none'})"
            )
        return value


def validate_bootstrap_config(data: dict[str, Any], source: str) -> BootstrapConfig:
    try:
        config = BootstrapConfig.model_validate(data)
    except ValidationError as exc:
        raise StackConfigError(format_validation_error(exc, BootstrapConfig), source) from None
    if config.account_id in config.pull_account_ids:
        raise StackConfigError(
            ["pull_account_ids: the owning account pulls without a repository policy"], source
        )
    return config


def _strip(raw: dict[str, Any], source: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in raw.items():
        namespace, _, name = key.partition(":")
        if namespace == BOOTSTRAP_NAMESPACE:
            data[name] = decode_config_value(value)
        elif namespace != "aws":
            raise StackConfigError(
                [f"{key}: unknown namespace; use {BOOTSTRAP_NAMESPACE}:"], source
            )
    return data


def load_bootstrap_path(path: Path) -> BootstrapConfig:
    """Validate a committed ``infra/bootstrap/Pulumi.<stack>.yaml``."""
    return validate_bootstrap_config(_strip(read_stack_path(path), path.name), path.name)


def load_bootstrap_from_pulumi() -> BootstrapConfig:
    """The running bootstrap program's config (engine or mocks), every key read."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    raw: dict[str, Any] = dict(runtime_config.get_config_env())
    raw.update(runtime_config.CONFIG.get())
    source = f"Pulumi.{pulumi.get_stack()}.yaml"
    return validate_bootstrap_config(_strip(raw, source), source)


def split_stack_name(name: str) -> tuple[str, str, str]:
    """``org/project/stack`` -> its three parts (ValueError naming the expected form)."""
    if not re.fullmatch(STACK_NAME_PATTERN, name):
        raise ValueError(f"{name!r} is not <organization>/{BOOTSTRAP_NAMESPACE}/<stack>")
    org, project, stack = name.split("/")
    return org, project, stack
