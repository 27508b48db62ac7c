"""IAM documents: the reviewable JSON under ``policies/iam/`` and the ONE function that renders it.

Every consumer - the Pulumi program, the local platform's emulator provisioning, the policy
gate, the linters, the docs - calls :func:`render_policy`. There is no second copy of any
policy. Placeholders are ``{{name}}``; a string that is exactly ``{{name}}`` may take a list
(spliced into an enclosing list). Missing or unused values are errors, so a renamed
placeholder cannot silently render to a broader document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from dask_platform.project import project_root

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")

PACKAGE_DATA = "_iam"
"""Where the wheel carries policies/iam (pyproject's force-include): the product renders these
documents at run time (the analyst policy, the emulator's provisioning), installed or not."""

TEAM_ROLE_MAX_SESSION_SECONDS = 3600
"""MaxSessionDuration of every team role (IRSA, ECS task, EC2 instance): STS's default; the SDKs
refresh web-identity and task-role sessions before they end.
ref: https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html (MaxSessionDuration)"""


class PolicyRenderError(ValueError):
    pass


def policy_dir() -> Path:
    """Where the JSON lives: inside the installed wheel (``dask_platform/_iam``), else - a
    source checkout, where the package has no copy - the project's ``policies/iam``.

    ref: https://docs.python.org/3/library/importlib.resources.html
    """
    packaged = resources.files("dask_platform") / PACKAGE_DATA
    if packaged.is_dir():
        return Path(str(packaged))
    return project_root() / "policies" / "iam"


def policy_names() -> list[str]:
    return sorted(p.stem for p in policy_dir().glob("*.json"))


@cache
def _template(name: str) -> Any:
    path = policy_dir() / f"{name}.json"
    if not path.is_file():
        raise PolicyRenderError(f"unknown policy {name!r}; known: {', '.join(policy_names())}")
    return json.loads(path.read_text())


def placeholders(name: str) -> set[str]:
    """The placeholder names a template expects."""
    return set(PLACEHOLDER.findall(json.dumps(_template(name))))


def _substitute(node: Any, values: Mapping[str, Any], used: set[str]) -> Any:
    if isinstance(node, str):
        whole = PLACEHOLDER.fullmatch(node)
        if whole:
            used.add(whole.group(1))
            return values[whole.group(1)]

        def one(match: re.Match[str]) -> str:
            key = match.group(1)
            used.add(key)
            value = values[key]
            if not isinstance(value, str):
                raise PolicyRenderError(
                    f"placeholder {{{{{key}}}}} is inside a longer string and needs a string value"
                )
            return value

        return PLACEHOLDER.sub(one, node)
    if isinstance(node, list):
        out: list[Any] = []
        for item in node:
            rendered = _substitute(item, values, used)
            if isinstance(item, str) and PLACEHOLDER.fullmatch(item) and isinstance(rendered, list):
                out.extend(rendered)
            else:
                out.append(rendered)
        return out
    if isinstance(node, dict):
        return {_substitute(k, values, used): _substitute(v, values, used) for k, v in node.items()}
    return node


def render_policy(name: str, **values: Any) -> dict[str, Any]:
    """Render ``policies/iam/<name>.json`` with ``values`` for its ``{{placeholders}}``."""
    template = _template(name)
    expected = placeholders(name)
    missing = sorted(expected - set(values))
    unused = sorted(set(values) - expected)
    if missing or unused:
        parts = []
        if missing:
            parts.append(f"missing values for {', '.join(missing)}")
        if unused:
            parts.append(f"unexpected values {', '.join(unused)}")
        raise PolicyRenderError(f"policy {name!r}: {'; '.join(parts)}")
    for key, value in values.items():
        if isinstance(value, list) and not value:
            raise PolicyRenderError(f"policy {name!r}: {key} must not be an empty list")
        if isinstance(value, str) and not value:
            raise PolicyRenderError(f"policy {name!r}: {key} must not be empty")
    return _substitute(template, values, set())


# --------------------------------------------------------------------------- team documents
# The per-team documents every backend (EKS IRSA, ECS task role, EC2 instance profile, the local
# emulator) attaches. One function each, so the scope cannot differ between backends.


def issuer_host(issuer_url: str) -> str:
    """IAM condition keys use the issuer without its scheme."""
    return issuer_url.removeprefix("https://").removeprefix("http://").rstrip("/")


def team_scratch_policy(bucket: str, team: str) -> dict[str, Any]:
    return render_policy("team-scratch", bucket=bucket, team=team)


def shared_data_policy(data_buckets: list[str]) -> dict[str, Any] | None:
    """Read-only on the shared data buckets, or None when the stack has none."""
    if not data_buckets:
        return None
    return render_policy(
        "shared-data-read",
        bucket_arns=[f"arn:aws:s3:::{b}" for b in data_buckets],
        object_arns=[f"arn:aws:s3:::{b}/*" for b in data_buckets],
    )


def irsa_trust_policy(
    oidc_provider_arn: str, issuer_url: str, namespace: str, team: str
) -> dict[str, Any]:
    return render_policy(
        "irsa-trust",
        oidc_provider_arn=oidc_provider_arn,
        oidc_issuer=issuer_host(issuer_url),
        namespace=namespace,
        team=team,
    )


def service_account_name(team: str) -> str:
    """The Kubernetes ServiceAccount bound to a team's role (the IRSA ``sub``)."""
    return f"dask-{team}"


# --------------------------------------------------------------------------- object stores


def object_store_key_read_policy(
    secret_arns: list[str], key_arn: str, region: str
) -> dict[str, Any]:
    """GetSecretValue on exactly these store secrets (literal ARNs) and kms:Decrypt of their
    key only through Secrets Manager, only for these secrets. One document per team.

    ref: https://docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html
    """
    return render_policy(
        "object-store-key-read", secret_arns=sorted(secret_arns), key_arn=key_arn, region=region
    )
