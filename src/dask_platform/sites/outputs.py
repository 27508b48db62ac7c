"""A site's stack outputs: the ``site`` output's schema and :class:`Site`, read from them.

A *site* is one deployment of the platform - one Pulumi stack (a central site, an HPC bridge,
...) or one gateway of the local platform. Everything a client needs to reach it is in the
stack's outputs (``pulumi stack output --json``): ``gateway_address``,
``gateway_proxy_address`` and ``site`` (:func:`site_output`: the site's name, how its gateway
authenticates users, and adaptive-scaling defaults).

Imports neither dask nor dask-gateway (the Pulumi program uses :func:`site_output`).
ref: https://www.pulumi.com/docs/iac/cli/commands/pulumi_stack_output/
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dask_platform.config.errors import format_validation_error
from dask_platform.config.models import GatewayAuth, StackConfig

SITE_OUTPUTS = ("gateway_address", "gateway_proxy_address", "site")
"""The stack outputs a client needs to reach a site's gateway."""


def missing_site_outputs(outputs: Mapping[str, Any]) -> str | None:
    """``None`` when ``outputs`` has every one of :data:`SITE_OUTPUTS`; else the problem, e.g.
    ``not a site's stack outputs (missing site); use ...`` (callers prefix the file)."""
    missing = [key for key in SITE_OUTPUTS if not outputs.get(key)]
    if not missing:
        return None
    return (
        f"not a site's stack outputs (missing {', '.join(missing)}); use `pulumi stack output "
        "--json` of a stack of this project, or the local platform's outputs.json"
    )


class SiteError(ValueError):
    """A site-catalog problem, naming the site or file and the allowed values."""


class Adaptive(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    minimum: int = Field(ge=0, description="Workers kept when idle.")
    maximum: int = Field(ge=1, description="Workers at most (the site's per-cluster limit).")


class SiteInfo(BaseModel):
    """The ``site`` stack output."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")
    auth: GatewayAuth
    adaptive: Adaptive


def site_output(
    name: str, stack: StackConfig, auth: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``site`` output of a stack: its name, its gateway's user authentication (no
    secret: the OIDC issuer and public client id, or just the type) and adaptive defaults.

    ``auth`` (a mapping of :class:`GatewayAuth`'s shape) replaces the stack's gateway.auth.
    Raises :class:`SiteError` with one ``site.<key path>: <problem>`` line per problem of
    ``name`` or ``auth`` (:func:`~dask_platform.config.errors.format_validation_error`)."""
    try:
        info = SiteInfo.model_validate(
            {
                "name": name,
                "auth": stack.gateway.auth if auth is None else auth,
                # Idle clusters shrink to nothing; a computation may use the whole per-cluster
                # limit.
                "adaptive": {"minimum": 0, "maximum": stack.gateway.cluster_max_workers},
            }
        )
    except ValidationError as exc:
        problems = format_validation_error(exc, SiteInfo, prefix="site")
        raise SiteError("; ".join(problems)) from None
    return info.model_dump(mode="json", exclude_none=True)


@dataclass(frozen=True)
class Site:
    """One site: where its gateway is, how it authenticates, its stack outputs."""

    name: str
    address: str
    proxy_address: str
    auth: GatewayAuth
    adaptive: Adaptive
    outputs: Mapping[str, Any]
    source: str
    local_state_dir: Path | None = None

    @property
    def teams(self) -> list[str]:
        return list(self.outputs.get("teams") or [])


def site_from_outputs(outputs: Mapping[str, Any], source: str) -> Site:
    problem = missing_site_outputs(outputs)
    if problem is not None:
        raise SiteError(f"{source}: {problem}")
    try:
        info = SiteInfo.model_validate(outputs["site"])
    except ValidationError as exc:
        problems = "; ".join(format_validation_error(exc, SiteInfo, prefix="site"))
        raise SiteError(f"{source}: {problems}") from None
    state_dir = outputs.get("state_dir")
    return Site(
        name=info.name,
        address=str(outputs["gateway_address"]).rstrip("/"),
        proxy_address=str(outputs["gateway_proxy_address"]),
        auth=info.auth,
        adaptive=info.adaptive,
        outputs=dict(outputs),
        source=source,
        local_state_dir=Path(state_dir) if state_dir else None,
    )


class StackOutputsError(ValueError):
    """A stack-outputs file that cannot be used; the message names the file and the fix."""


def read_outputs(path: str | Path) -> dict[str, Any]:
    """A ``pulumi stack output --json`` file (or the local platform's ``outputs.json``) as a
    mapping of output name to value: the one reader every command and library uses.

    Raises :class:`StackOutputsError` when the file is missing or unreadable, is not JSON, or
    is not a JSON object. ref: https://www.pulumi.com/docs/iac/cli/commands/pulumi_stack_output/
    """
    source = Path(path)
    if not source.is_file():
        raise StackOutputsError(
            f"{source}: no such file (write it with `pulumi stack output --json > {source.name}`)"
        )
    try:
        data = json.loads(source.read_text())
    except OSError as exc:
        raise StackOutputsError(f"{source}: cannot be read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise StackOutputsError(
            f"{source}: not JSON ({exc}); expected `pulumi stack output --json`"
        ) from None
    if not isinstance(data, dict):
        raise StackOutputsError(
            f"{source}: must be a JSON object of stack outputs (`pulumi stack output --json`)"
        )
    return data
