"""Rules over IAM documents: OIDC (IRSA) trust pinned to one subject and audience, and no
wildcard grants in identity, resource, trust or KMS key policies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dask_platform.guard import iam_actions
from dask_platform.guard.rules.policy_config import ReportViolation
from dask_platform.guard.rules.resource_types import (
    IDENTITY_POLICY_TYPES,
    KMS_KEY_POLICY_TYPES,
    RESOURCE_POLICY_TYPES,
    ROLE,
)
from dask_platform.guard.values import (
    as_list,
    is_mapping,
    policy_document,
    statements,
)

if TYPE_CHECKING:
    from pulumi_policy import ResourceValidationArgs

STS_AUDIENCE = "sts.amazonaws.com"


# --------------------------------------------------------------------------- IAM documents


def _principal_values(statement: Mapping[str, Any], kind: str) -> list[str]:
    principal = statement.get("Principal")
    if principal == "*":
        return ["*"]
    if isinstance(principal, dict):
        return [str(v) for v in as_list(principal.get(kind))]
    return []


def _oidc_statements(document: Mapping[str, Any]) -> list[tuple[dict[str, Any], str]]:
    out = []
    for statement in statements(document):
        if statement.get("Effect") != "Allow":
            continue
        for federated in _principal_values(statement, "Federated"):
            if ":oidc-provider/" in federated:
                out.append((statement, federated.split(":oidc-provider/", 1)[1]))
    return out


def _is_eks_issuer(host: str) -> bool:
    return host.startswith("oidc.eks.") and ".amazonaws.com/id/" in host


def _has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


def _check_oidc_trust(statement: dict[str, Any], host: str) -> list[str]:
    problems = []
    conditions = statement.get("Condition")
    conditions = conditions if isinstance(conditions, dict) else {}
    string_equals = conditions.get("StringEquals")
    string_equals = string_equals if isinstance(string_equals, dict) else {}
    sub_key, aud_key = f"{host}:sub", f"{host}:aud"

    for operator, block in conditions.items():
        if operator != "StringEquals" and isinstance(block, dict) and sub_key in block:
            problems.append(
                f"{sub_key} is matched with {operator}; only StringEquals pins one identity"
            )

    subs = as_list(string_equals.get(sub_key))
    if not subs:
        problems.append(
            f"no StringEquals on {sub_key}: any identity the issuer signs could assume it"
        )
    elif len(subs) > 1:
        problems.append(
            f"StringEquals {sub_key} lists {len(subs)} subjects; a role belongs to exactly one "
            "service account"
        )
    else:
        sub = str(subs[0])
        if _has_wildcard(sub):
            problems.append(f"{sub_key} {sub!r} contains a wildcard")
        elif _is_eks_issuer(host) and not (
            sub.startswith("system:serviceaccount:") and len(sub.split(":")) == 4
        ):
            problems.append(
                f"{sub_key} {sub!r} is not one service account "
                "(system:serviceaccount:<namespace>:<name>)"
            )

    auds = [str(a) for a in as_list(string_equals.get(aud_key))]
    if not auds:
        problems.append(f"no StringEquals on {aud_key}: tokens minted for other audiences work")
    elif _is_eks_issuer(host) and auds != [STS_AUDIENCE]:
        problems.append(f"{aud_key} must be exactly {STS_AUDIENCE!r} (got {auds})")
    elif any(_has_wildcard(a) for a in auds):
        problems.append(f"{aud_key} {auds} contains a wildcard")
    return problems


def oidc_trust_exact_subject_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type != ROLE:
        return
    document = policy_document(args.props.get("assumeRolePolicy"))
    if document is None:
        return
    for statement, host in _oidc_statements(document):
        sid = statement.get("Sid") or "(no Sid)"
        for problem in _check_oidc_trust(statement, host):
            report_violation(f"trust statement {sid}: {problem}")


def _documents(args: ResourceValidationArgs) -> list[tuple[str, str, dict[str, Any]]]:
    """(where, kind, document) for every IAM document a resource carries."""
    props = args.props
    out: list[tuple[str, str, dict[str, Any]]] = []

    def add(where: str, kind: str, value: Any) -> None:
        document = policy_document(value)
        if document is not None:
            out.append((where, kind, document))

    if args.resource_type == ROLE:
        add("assumeRolePolicy", "trust", props.get("assumeRolePolicy"))
        for index, inline in enumerate(as_list(props.get("inlinePolicies"))):
            if is_mapping(inline):
                add(f"inlinePolicies[{index}].policy", "identity", inline.get("policy"))
    elif args.resource_type in IDENTITY_POLICY_TYPES:
        add("policy", "identity", props.get("policy"))
    elif args.resource_type in RESOURCE_POLICY_TYPES:
        add("policy", "resource", props.get("policy"))
    elif args.resource_type in KMS_KEY_POLICY_TYPES:
        add("policy", "kms-key", props.get("policy"))
    return out


def _wildcard_problems(kind: str, statement: dict[str, Any]) -> list[str]:
    if statement.get("Effect") != "Allow":
        return []
    problems = []
    actions = [str(a) for a in as_list(statement.get("Action"))]
    if "*" in actions:
        problems.append('grants Action "*" (every action of every service)')
    if "NotAction" in statement:
        problems.append("uses NotAction with Allow (grants everything not listed)")
    if kind in {"resource", "trust"} and any(p == "*" for p in _principal_values(statement, "AWS")):
        problems.append('allows Principal "*" (anyone)')
    if kind == "kms-key":
        # In a key policy "Resource": "*" means "this key": it is the only correct spelling.
        return problems
    resources = [str(r) for r in as_list(statement.get("Resource"))]
    if "NotResource" in statement:
        problems.append("uses NotResource with Allow (grants every resource not listed)")
    if "*" in resources and "*" not in actions:
        scopable = iam_actions.scopable_actions(actions)
        if scopable:
            shown = ", ".join(scopable[:6]) + (" ..." if len(scopable) > 6 else "")
            problems.append(
                f'grants Resource "*" for {len(scopable)} action(s) that can be scoped to ARNs: '
                f"{shown}"
            )
    return problems


def iam_no_wildcards_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    for where, kind, document in _documents(args):
        for index, statement in enumerate(statements(document)):
            sid = statement.get("Sid") or f"Statement[{index}]"
            for problem in _wildcard_problems(kind, statement):
                report_violation(f"{where} {sid}: {problem}")
