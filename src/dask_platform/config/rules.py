"""Rules that span sections of the stack configuration, checked on the raw mapping so that they
are reported together with every field error (a model validator would only run once every field
of its model was valid), and the one entry point that applies model and rules together.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from dask_platform.config.errors import StackConfigError, format_validation_error
from dask_platform.config.models import (
    DEFAULT_PER_TEAM,
    DEFAULT_PER_USER,
    Capacity,
    Gateway,
    Limits,
    LimitValues,
    StackConfig,
    TeamLimits,
)
from dask_platform.config.types import REGION_PATTERN, ConfigModel


def _image_source_problems(
    images: Mapping[str, Any], gateway: Mapping[str, Any], ecs: Mapping[str, Any]
) -> list[str]:
    """The images come from exactly one place: the bootstrap stack, or the config."""
    gpu = ecs.get("gpu") if isinstance(ecs.get("gpu"), dict) else {}
    assert isinstance(gpu, dict)
    explicit = {
        "gateway.image": gateway.get("image"),
        "gateway.server_image": gateway.get("server_image"),
        "ecs.gpu.image": gpu.get("image"),
    }
    if images.get("bootstrap_stack") is not None:
        return [
            f"{key}: the images come from images.bootstrap_stack "
            f"({images['bootstrap_stack']}); remove this key"
            for key, value in explicit.items()
            if value is not None
        ]
    needed = ["gateway.image", "gateway.server_image"]
    if ecs.get("enabled", True) is not False and gpu.get("enabled") is True:
        needed.append("ecs.gpu.image")
    return [
        f"{key}: required without images.bootstrap_stack ({{name, tag}} of the image), or set "
        "images.bootstrap_stack"
        for key in needed
        if explicit[key] is None
    ]


def _cross_field_problems(data: Mapping[str, Any]) -> list[str]:
    """Rules that span sections, checked on the raw mapping so they are reported together with
    every field error (a model validator would only run once all fields were valid)."""

    def section(name: str) -> dict[str, Any]:
        value = data.get(name)
        return value if isinstance(value, dict) else {}

    problems: list[str] = []
    raw_teams = data.get("teams")
    teams: list[Any] = raw_teams if isinstance(raw_teams, list) else []
    names = [t.get("name") for t in teams if isinstance(t, dict)]
    repeated = sorted({str(n) for n in names if n is not None and names.count(n) > 1})
    if repeated:
        problems.append(f"teams: team names must be unique (repeated: {', '.join(repeated)})")
    region = data.get("region")
    zones = section("network").get("availability_zones")
    # Only against a valid region: a typo in the region is one problem, not one per zone.
    if isinstance(region, str) and re.fullmatch(REGION_PATTERN, region) and isinstance(zones, list):
        for i, zone in enumerate(zones):
            if isinstance(zone, str) and not zone.startswith(region):
                problems.append(
                    f"network.availability_zones[{i}]: {zone!r} is not a zone of region {region}"
                )
    scratch = section("scratch").get("bucket_name")
    raw_buckets = data.get("data_buckets")
    buckets: list[Any] = raw_buckets if isinstance(raw_buckets, list) else []
    for i, bucket in enumerate(buckets):
        if isinstance(bucket, dict) and scratch is not None and bucket.get("name") == scratch:
            problems.append(
                f"data_buckets[{i}].name: {scratch!r} is the scratch bucket; a bucket is either "
                "team scratch or shared read-only data, not both"
            )
    problems.extend(_image_source_problems(section("images"), section("gateway"), section("ecs")))
    problems.extend(_object_store_problems(data.get("object_stores"), names))
    problems.extend(_limits_problems(data, names))
    gateway = section("gateway")
    auth = gateway.get("auth")
    if data.get("production") is True and isinstance(auth, dict) and auth.get("type") == "simple":
        problems.append(
            "gateway.auth.type: 'simple' (one shared password) is not allowed in a production "
            "stack; use one of {custom, jupyterhub, kerberos}"
        )
    if (
        data.get("production") is True
        and gateway.get("service_type", "LoadBalancer") == "LoadBalancer"
        and not gateway.get("tls")
    ):
        problems.append(
            "gateway.tls: required in a production stack (users' bearer tokens cross the "
            "gateway's address): {certificate_arn: <ACM certificate ARN>, hostname: <its DNS "
            "name, a CNAME to the NLB>}"
        )
    return problems


def _capacity_problems(data: Mapping[str, Any]) -> list[str]:
    """Schedulability: the largest worker the gateway allows (and the scheduler) must fit an
    instance type its Karpenter NodePool allows. Checked whenever the sections it reads are
    valid on their own, so it is reported together with every other field error."""
    from dask_platform.capacity import fit_problems, scheduler_requests

    try:
        capacity = Capacity.model_validate(data.get("capacity"))
        gateway = Gateway.model_validate(data.get("gateway"))
    except ValidationError:
        return []  # the field errors say what is wrong
    region = data.get("region")
    valid_region = isinstance(region, str) and re.fullmatch(REGION_PATTERN, region)
    scheduler = None
    try:
        from dask_platform.gateway_settings import committed_values

        scheduler = scheduler_requests(committed_values(gateway.values_overlay))
    except (KeyError, ValueError, TypeError):
        pass  # a values problem is the gateway values' own error, raised where they render
    return fit_problems(gateway, capacity, region if valid_region else None, scheduler)


def _limits_problems(data: Mapping[str, Any], team_names: list[Any]) -> list[str]:
    """Limits name known teams; each team's per-user limits fit within its per-team limits and
    hold at least one smallest worker (else no user of the team could ever get one)."""
    raw = data.get("limits")
    raw = raw if isinstance(raw, dict) else {}

    def valid(model: type[ConfigModel], value: Any, default: Any) -> Any:
        # Each part on its own: a field error elsewhere must not hide these problems (the
        # field errors themselves are reported by the model).
        try:
            return model.model_validate(value) if value is not None else default
        except ValidationError:
            return default

    raw_teams = raw.get("teams") if isinstance(raw.get("teams"), dict) else {}
    limits = Limits(
        per_user=valid(LimitValues, raw.get("per_user"), DEFAULT_PER_USER),
        per_team=valid(LimitValues, raw.get("per_team"), DEFAULT_PER_TEAM),
        teams={
            str(name): valid(TeamLimits, value, TeamLimits())
            for name, value in (raw_teams or {}).items()
        },
    )
    try:
        gateway = Gateway.model_validate(data.get("gateway"))
    except ValidationError:
        gateway = None
    problems: list[str] = []
    known = sorted(str(n) for n in team_names if n is not None)
    for team in sorted(limits.teams):
        if team not in known:
            problems.append(
                f"limits.teams.{team}: not a team of this stack "
                f"(teams: {', '.join(known) or 'none'})"
            )
    for team in known:
        per_user, per_team = limits.for_team(team)
        where = f"limits.teams.{team}" if team in limits.teams else "limits"
        for field in ("clusters", "worker_cores", "worker_memory_gib"):
            if getattr(per_user, field) > getattr(per_team, field):
                problems.append(
                    f"{where}: per_user.{field} ({getattr(per_user, field):g}) exceeds "
                    f"per_team.{field} ({getattr(per_team, field):g}) for team {team}"
                )
        if gateway is not None:
            smallest = (
                ("worker_cores", gateway.worker_cores.min, "gateway.worker_cores.min"),
                (
                    "worker_memory_gib",
                    gateway.worker_memory_gib.min,
                    "gateway.worker_memory_gib.min",
                ),
            )
            for field, worker, name in smallest:
                if getattr(per_user, field) < worker:
                    problems.append(
                        f"{where}: per_user.{field} ({getattr(per_user, field):g}) is below "
                        f"{name} ({worker:g}): no user of team {team} could get a worker"
                    )
    return problems


def _object_store_problems(raw: Any, team_names: list[Any]) -> list[str]:
    """Store names are unique and every team a store names exists."""
    stores: list[Any] = raw if isinstance(raw, list) else []
    problems: list[str] = []
    names = [s.get("name") for s in stores if isinstance(s, dict)]
    repeated = sorted({str(n) for n in names if n is not None and names.count(n) > 1})
    if repeated:
        problems.append(
            f"object_stores: store names must be unique (they are profile names; repeated: "
            f"{', '.join(repeated)})"
        )
    known = sorted(str(n) for n in team_names if n is not None)
    for i, store in enumerate(stores):
        teams = store.get("teams") if isinstance(store, dict) else None
        for j, team in enumerate(teams if isinstance(teams, list) else []):
            if isinstance(team, str) and team not in known:
                problems.append(
                    f"object_stores[{i}].teams[{j}]: {team!r} is not a team of this stack "
                    f"(teams: {', '.join(known) or 'none'})"
                )
    return problems


def validate_stack_config(
    data: Mapping[str, Any],
    source: str = "stack config",
    extra_problems: list[str] | None = None,
) -> StackConfig:
    """Validate a plain mapping (keys without the namespace) into a StackConfig.

    Field errors and cross-section errors are reported together, each with its key path.
    """
    problems: list[str] = []
    config: StackConfig | None = None
    try:
        config = StackConfig.model_validate(dict(data))
    except ValidationError as exc:
        problems.extend(format_validation_error(exc, StackConfig))
    problems.extend(_cross_field_problems(data))
    problems.extend(_capacity_problems(data))
    problems.extend(extra_problems or [])
    if problems or config is None:
        raise StackConfigError(problems, source)
    return config


def regional_owner_problems(stacks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Account-wide, per-region settings (the EC2 instance metadata defaults) have exactly one
    owner: among the stacks (stack name -> config keys without namespace) that deploy ECS/EC2
    resources to one ``account_id`` and ``region``, exactly one sets
    ``ecs.imdsv2_account_default: true``. Two owners would fight over one setting (and the
    first ``destroy`` would remove it for the other); none would leave EC2Cluster on IMDSv1.

    ref: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-IMDS-new-instances.html
    """
    groups: dict[tuple[str, str], dict[str, bool]] = {}
    for stack, data in stacks.items():
        account, region = data.get("account_id"), data.get("region")
        ecs = data.get("ecs") if isinstance(data.get("ecs"), dict) else {}
        assert isinstance(ecs, dict)
        if not isinstance(account, str) or not isinstance(region, str):
            continue  # reported as a field error of that stack
        if ecs.get("enabled", True) is False:
            continue
        owns = ecs.get("imdsv2_account_default", True) is True
        groups.setdefault((account, region), {})[stack] = owns
    problems = []
    for (account, region), members in sorted(groups.items()):
        owners = sorted(s for s, owns in members.items() if owns)
        if len(owners) > 1:
            problems.append(
                f"ecs.imdsv2_account_default: stacks {', '.join(owners)} all own the instance "
                f"metadata defaults of account {account} in {region}; exactly one stack per "
                "account and region may (set it false in the others)"
            )
        elif not owners:
            problems.append(
                f"ecs.imdsv2_account_default: no stack of {', '.join(sorted(members))} owns the "
                f"instance metadata defaults of account {account} in {region}; set it true in "
                "exactly one"
            )
    return problems


def require_account(expected: str, actual: str) -> str:
    """The deploying credentials' account must be the one the stack config names (``account_id``);
    ValueError otherwise, which fails ``pulumi up`` before it creates anything."""
    if actual != expected:
        raise ValueError(
            f"account_id: this stack deploys to account {expected}, but the credentials are for "
            f"account {actual}; switch credentials (AWS_PROFILE) or fix account_id"
        )
    return actual
