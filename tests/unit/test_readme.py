"""The stack config reference (docs/reference/stack-config.md) lists every key of the model (so it
cannot fall behind)."""

from __future__ import annotations

import typing

from pydantic import BaseModel

from dask_platform.config.models import StackConfig
from dask_platform.config.sources import SECRET_KEYS

# Models documented as one row with their fields inline ({min, max, default}, {name, tag}, ...).
INLINE = {
    "Range",
    "IntRange",
    "Image",
    "Team",
    "DataBucket",
    "Oidc",
    "NodeGroup",
    "NodePoolCapacity",
    "SchedulerNodePoolCapacity",
    "EcsGpu",
}


def documented_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        nested = [
            c
            for c in (field.annotation, *typing.get_args(field.annotation))
            if isinstance(c, type) and issubclass(c, BaseModel)
        ]
        if nested and nested[0].__name__ not in INLINE:
            paths += documented_paths(nested[0], f"{prefix}{name}.")
        else:
            paths.append(prefix + name)
    return paths


def test_every_stack_config_key_is_in_the_reference(repo):
    section = (repo / "docs" / "reference" / "stack-config.md").read_text()
    missing = [
        path
        for path in [*documented_paths(StackConfig), *sorted(SECRET_KEYS)]
        if f"`{path}`" not in section
    ]
    assert missing == []
