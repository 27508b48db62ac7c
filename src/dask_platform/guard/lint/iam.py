"""IAM documents through parliament (community auditors on) and cloudsplaining's Python APIs.

* parliament: every finding fails, except the few listed in
  :data:`ACCEPTED_PARLIAMENT_FINDINGS`, each narrowed to the document kind and detail it is about
  and carrying the reason a reviewer accepted it.
* cloudsplaining: on identity policies, any privilege escalation, data exfiltration, resource
  exposure (permissions management without constraints), credentials exposure or service
  wildcard fails. (Its CLI exits 0 on findings, hence the API.)

ref: https://github.com/duo-labs/parliament
ref: https://github.com/salesforce/cloudsplaining
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dask_platform.guard.documents import IamDocument
from dask_platform.guard.iam_actions import expand
from dask_platform.guard.lint.findings import LintFinding
from dask_platform.guard.values import as_list, statements

# --------------------------------------------------------------------------- parliament


@dataclass(frozen=True)
class AcceptedFinding:
    """A finding a reviewer accepted: which linter issue, on which kind of document, under what
    condition (on the finding's detail and the document itself), and why."""

    issue: str
    kinds: frozenset[str]
    applies: Callable[[str, dict[str, Any]], bool]
    reason: str


_OIDC_PROVIDER_ARN = re.compile(r"^arn:aws[-a-z]*:iam::\d{12}:oidc-provider/.+$")
_ROLE_ARN = re.compile(r"^arn:aws[-a-z]*:iam::\d{12}:role/.+$")


def _granting(document: dict[str, Any], action: str) -> list[dict[str, Any]]:
    """The Allow statements that grant ``action`` (wildcards in the document expanded)."""
    out = []
    for statement in statements(document):
        if statement.get("Effect") != "Allow":
            continue
        granted = {a for pattern in as_list(statement.get("Action")) for a in expand(str(pattern))}
        if action in granted:
            out.append(statement)
    return out


def _constrained_role_grant(statement: dict[str, Any], action: str) -> bool:
    """Named role ARNs only (a "*" inside a role name is a naming convention, not "any role"),
    and a condition; passing a role also pins the service it may be passed to."""
    resources = [str(r) for r in as_list(statement.get("Resource"))]
    if not resources or not all(_ROLE_ARN.match(r) for r in resources):
        return False
    conditions = statement.get("Condition")
    if not isinstance(conditions, dict) or not conditions:
        return False
    if action == "iam:passrole":
        return any(
            isinstance(block, dict) and "iam:PassedToService" in block
            for block in conditions.values()
        )
    return True


def _role_grants_constrained(actions: list[str], document: dict[str, Any]) -> bool:
    iam_actions = [a for a in actions if a.startswith("iam:")]
    return bool(iam_actions) and all(
        _granting(document, a)
        and all(_constrained_role_grant(s, a) for s in _granting(document, a))
        for a in iam_actions
    )


_INSTANCE_PROFILE_ARN = re.compile(r"^arn:aws[-a-z]*:iam::\d{12}:instance-profile/.+$")
_CLUSTER_TAG_KEYS = (
    "aws:ResourceTag/kubernetes.io/cluster/",
    "aws:RequestTag/kubernetes.io/cluster/",
)


def _cluster_owned_profile_grant(statement: dict[str, Any]) -> bool:
    """Instance-profile ARNs only, under a StringEquals that the profile (or the request) is
    tagged as owned by one named cluster - how Karpenter's reference scopes the profiles it
    creates for its EC2NodeClasses."""
    resources = [str(r) for r in as_list(statement.get("Resource"))]
    if not resources or not all(_INSTANCE_PROFILE_ARN.match(r) for r in resources):
        return False
    equals = (statement.get("Condition") or {}).get("StringEquals")
    return isinstance(equals, dict) and any(
        key.startswith(_CLUSTER_TAG_KEYS) and value == "owned" for key, value in equals.items()
    )


def _iam_grants_scoped(actions: list[str], document: dict[str, Any]) -> bool:
    """Every iam: action is either PassRole/role management on named roles (see
    :func:`_constrained_role_grant`) or instance-profile management scoped to a cluster tag."""
    for action in actions:
        granting = _granting(document, action)
        if not action.startswith("iam:") or not granting:
            return False
        if "instanceprofile" in action:
            if not all(_cluster_owned_profile_grant(s) for s in granting):
                return False
        elif not all(_constrained_role_grant(s, action) for s in granting):
            return False
    return True


def _resource_type_of(arn_format: str) -> str | None:
    """``arn:*:ec2:*:*:instance/*`` -> ``instance``; None when the type itself is a wildcard."""
    parts = arn_format.split(":", 5)
    if len(parts) < 6:
        return None
    kind = parts[5].split("/", 1)[0]
    return None if not kind or "*" in kind else kind


def _mismatch_covered(detail: str, document: dict[str, Any]) -> bool:
    """parliament checks each statement on its own: a RESOURCE_MISMATCH is only an artefact
    when, for every (action, required ARN format) it lists, another Allow statement of the same
    document grants that action on a resource of that type (Karpenter's reference splits
    RunInstances/CreateFleet over statements with different tag conditions), or the resource
    is AWS-owned with an empty account field (public AMIs, snapshots, SSM parameters)."""
    import ast

    try:
        items = ast.literal_eval(detail)
    except (ValueError, SyntaxError):
        return False
    if not isinstance(items, list) or not items:
        return False
    for item in items:
        if not isinstance(item, dict):
            return False
        kind = _resource_type_of(str(item.get("required_format", "")))
        action = str(item.get("action", "")).lower()
        if kind is None or not action:
            return False
        service = action.split(":", 1)[0]
        resources = [
            str(r) for s in _granting(document, action) for r in as_list(s.get("Resource"))
        ]
        if not any(
            r.split(":", 5)[2:3] == [service] and r.split(":", 5)[-1].startswith(f"{kind}/")
            for r in resources
            if r.count(":") >= 5
        ):
            return False
    return True


def _actions_of(detail: str) -> list[str]:
    return [a.strip(" '\"") for a in detail.strip("[]").split(",") if a.strip()]


def _ecr_only(document: dict[str, Any]) -> bool:
    actions: list[str] = []
    for statement in document.get("Statement", []):
        value = statement.get("Action", [])
        actions += [value] if isinstance(value, str) else list(value)
    return bool(actions) and all(a.startswith("ecr:") for a in actions)


ACCEPTED_PARLIAMENT_FINDINGS: tuple[AcceptedFinding, ...] = (
    AcceptedFinding(
        "MALFORMED",
        frozenset({"resource"}),
        lambda detail, doc: (
            detail == "Statement contains neither Resource nor NotResource" and _ecr_only(doc)
        ),
        "an ECR repository policy is attached to its repository and names no Resource (AWS's "
        "own examples have none); parliament reads it as an identity policy. ref: "
        "https://docs.aws.amazon.com/AmazonECR/latest/userguide/repository-policy-examples.html",
    ),
    AcceptedFinding(
        "MALFORMED",
        frozenset({"trust"}),
        lambda detail, _doc: detail == "Statement contains neither Resource nor NotResource",
        "parliament reads every document as an identity policy; a role trust policy has no "
        "Resource element by definition",
    ),
    AcceptedFinding(
        "UNKNOWN_FEDERATION_SOURCE",
        frozenset({"trust"}),
        lambda detail, _doc: bool(_OIDC_PROVIDER_ARN.match(detail)),
        "parliament knows SAML providers and a few web identity providers but not IAM OIDC "
        "providers, which is what IRSA trusts; the subject and audience are checked by the "
        "oidc-trust-exact-subject rule",
    ),
    AcceptedFinding(
        "PERMISSIONS_MANAGEMENT_ACTIONS",
        frozenset({"identity"}),
        lambda detail, doc: (
            all(a.startswith("iam:") for a in _actions_of(detail))
            and _role_grants_constrained(_actions_of(detail), doc)
        ),
        "dask-cloudprovider must pass (and, creating everything, manage) the team's ECS roles; "
        "accepted only where every grant names role ARNs, carries a condition (team tag), and "
        "iam:PassRole pins iam:PassedToService",
    ),
    AcceptedFinding(
        "PRIVILEGE_ESCALATION",
        frozenset({"identity"}),
        lambda detail, doc: (
            "iam:passrole" in _actions_of(detail)
            and _role_grants_constrained(["iam:passrole"], doc)
        ),
        "launching an instance or task with a role is escalation only if any role can be "
        "passed; accepted only where iam:PassRole names the team's role ARNs and pins "
        "iam:PassedToService",
    ),
    AcceptedFinding(
        "PERMISSIONS_MANAGEMENT_ACTIONS",
        frozenset({"identity"}),
        lambda detail, doc: (
            any("instanceprofile" in a for a in _actions_of(detail))
            and _iam_grants_scoped(_actions_of(detail), doc)
        ),
        "Karpenter creates one instance profile per EC2NodeClass and passes its node role to "
        "EC2; accepted only where the profile actions are limited to instance profiles tagged "
        "as owned by the cluster and iam:PassRole names the node role and pins "
        "iam:PassedToService (Karpenter's reference IAM)",
    ),
    AcceptedFinding(
        "RESOURCE_MISMATCH",
        frozenset({"identity"}),
        _mismatch_covered,
        "parliament matches resource formats per statement; accepted only where every required "
        "resource type is granted for that action by a statement of the same document",
    ),
    AcceptedFinding(
        "RESOURCE_STAR",
        frozenset({"identity"}),
        lambda detail, doc: (
            [a.lower() for a in _actions_of(detail)] == ["arc-zonal-shift:getmanagedresource"]
            and all(
                "arc-zonal-shift:ResourceIdentifier"
                in ((s.get("Condition") or {}).get("StringEquals") or {})
                for s in _granting(doc, "arc-zonal-shift:getmanagedresource")
            )
        ),
        "zonal-shift resources are load balancers only; Karpenter reads its EKS cluster's "
        "zonal-shift status, scoped by the arc-zonal-shift:ResourceIdentifier condition",
    ),
    AcceptedFinding(
        "CREDENTIALS_EXPOSURE",
        frozenset({"identity"}),
        lambda detail, _doc: _actions_of(detail) == ["ecr:getauthorizationtoken"],
        "the ECS execution role logs in to ECR to pull the worker image; the token is a registry "
        "login (which repositories it can pull is decided by the pull actions, scoped to ARNs), "
        'and AWS accepts no resource but "*" for it',
    ),
)


def _accepted(kind: str, issue: str, detail: str, document: dict[str, Any]) -> bool:
    return any(
        a.issue == issue and kind in a.kinds and a.applies(detail, document)
        for a in ACCEPTED_PARLIAMENT_FINDINGS
    )


def parliament_findings(document: IamDocument) -> list[LintFinding]:
    with warnings.catch_warnings():
        # parliament imports pkg_resources (deprecated; setuptools is pinned <82 for it) and
        # compiles regexes with invalid escapes: warnings about parliament, not about policies.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import parliament

    policy = parliament.analyze_policy_string(
        json.dumps(document.document), include_community_auditors=True
    )
    out = []
    for finding in policy.findings:
        detail = str(finding.detail) if finding.detail else ""  # a str, or a list of dicts
        if not detail and isinstance(finding.location, dict) and "actions" in finding.location:
            detail = str(sorted(finding.location["actions"]))
        if _accepted(document.kind, finding.issue, detail, document.document):
            continue
        out.append(LintFinding("parliament", document.source, finding.issue, detail))
    return out


# --------------------------------------------------------------------------- cloudsplaining

# (check label, the exact findings) -> why it is accepted.
ACCEPTED_CLOUDSPLAINING_FINDINGS: dict[tuple[str, tuple[str, ...]], str] = {
    ("credentials exposure", ("ecr:getauthorizationtoken",)): (
        "the ECS execution role's ECR login; see the matching parliament exception"
    ),
}

CLOUDSPLAINING_CHECKS = (
    ("privilege escalation", "allows_privilege_escalation"),
    ("data exfiltration", "allows_data_exfiltration_actions"),
    ("resource exposure", "permissions_management_without_constraints"),
    ("credentials exposure", "credentials_exposure"),
    ("service wildcard", "service_wildcard"),
)


def cloudsplaining_findings(document: IamDocument) -> list[LintFinding]:
    """Identity policies only: cloudsplaining models what a principal may do."""
    if document.kind != "identity":
        return []
    from cloudsplaining.scan.policy_document import PolicyDocument

    analysed = PolicyDocument(document.document)
    out = []
    for label, attribute in CLOUDSPLAINING_CHECKS:
        found = getattr(analysed, attribute)
        key = (label, tuple(sorted(str(f).lower() for f in found)))
        if found and key not in ACCEPTED_CLOUDSPLAINING_FINDINGS:
            out.append(LintFinding("cloudsplaining", document.source, label, str(found)))
    return out


def lint_documents(documents: Iterable[IamDocument]) -> list[LintFinding]:
    out: list[LintFinding] = []
    for document in documents:
        out += parliament_findings(document)
        out += cloudsplaining_findings(document)
    return out
