"""Rules over the object stores' access keys: a store's key is readable by its own teams'
roles only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dask_platform.guard.rules.policy_config import ReportViolation
from dask_platform.guard.rules.resource_types import ROLE
from dask_platform.guard.values import (
    as_list,
    get_path,
    is_mapping,
    policy_document,
    statements,
)

if TYPE_CHECKING:
    from pulumi_policy import PolicyResource, StackValidationArgs

# --------------------------------------------------------------------------- object stores

SECRET = "aws:secretsmanager/secret:Secret"  # noqa: S105 (a resource type)
ROLE_POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
PRINCIPAL_POLICY_ATTACHMENTS = (
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
    "aws:iam/userPolicyAttachment:UserPolicyAttachment",
    "aws:iam/policyAttachment:PolicyAttachment",
)
TEAM_TAG = "dask-platform/team"
READ_SECRET_ACTION = "secretsmanager:getsecretvalue"  # noqa: S105 (an IAM action)


def _reads_secret(statement: Mapping[str, Any]) -> bool:
    import fnmatch

    return statement.get("Effect") == "Allow" and any(
        fnmatch.fnmatchcase(READ_SECRET_ACTION, str(a).lower())
        for a in as_list(statement.get("Action"))
    )


def _store_secrets(args: StackValidationArgs) -> dict[str, tuple[str, list[str]]]:
    """Secret ARN -> (store, allowed teams), from the tags the ObjectStores component sets."""
    from dask_platform.object_stores import OBJECT_STORE_TAG, TEAMS_TAG

    out = {}
    for secret in (r for r in args.resources if r.resource_type == SECRET):
        store = get_path(secret.props, "tags", OBJECT_STORE_TAG)
        if store and secret.props.get("arn"):
            teams = str(get_path(secret.props, "tags", TEAMS_TAG) or "").split()
            out[str(secret.props["arn"])] = (str(store), teams)
    return out


def _secrets_granted(document: Any, secrets: Mapping[str, Any]) -> list[str]:
    import fnmatch

    granted = []
    for statement in statements(document):
        if not _reads_secret(statement):
            continue
        for resource in as_list(statement.get("Resource")):
            granted += [a for a in secrets if fnmatch.fnmatchcase(a, str(resource))]
    return sorted(set(granted))


def object_store_key_per_team_validator(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    secrets = _store_secrets(args)
    if not secrets:
        return
    roles: dict[str, PolicyResource] = {}
    for each in (r for r in args.resources if r.resource_type == ROLE):
        for key in ("name", "id", "arn"):
            if each.props.get(key):
                roles[str(each.props[key])] = each
    # (where, document, holder): holder is the role, a team name (unattached policy) or None.
    grants: list[tuple[str, Any, Any]] = []
    policies = {}
    for resource in args.resources:
        if resource.resource_type == "aws:iam/policy:Policy" and resource.props.get("arn"):
            policies[str(resource.props["arn"])] = resource
        elif resource.resource_type == "aws:iam/rolePolicy:RolePolicy":
            holder = roles.get(str(resource.props.get("role")))
            grants.append((resource.name, policy_document(resource.props.get("policy")), holder))
        elif resource.resource_type == ROLE:
            for index, inline in enumerate(as_list(resource.props.get("inlinePolicies"))):
                document = policy_document(inline.get("policy") if is_mapping(inline) else None)
                grants.append((f"{resource.name}.inlinePolicies[{index}]", document, resource))
    attached: set[str] = set()
    for resource in args.resources:
        policy = policies.get(str(resource.props.get("policyArn")))
        if policy is None:
            continue
        document = policy_document(policy.props.get("policy"))
        if resource.resource_type == ROLE_POLICY_ATTACHMENT:
            attached.add(policy.name)
            holder = roles.get(str(resource.props.get("role")))
            grants.append((f"{policy.name} (attached by {resource.name})", document, holder))
        elif resource.resource_type in PRINCIPAL_POLICY_ATTACHMENTS:
            attached.add(policy.name)
            grants.append((f"{policy.name} (attached by {resource.name})", document, None))
    for policy in policies.values():
        if policy.name not in attached:
            # Not attached (yet): judged by the team it is tagged for.
            team = get_path(policy.props, "tags", TEAM_TAG)
            grants.append((policy.name, policy_document(policy.props.get("policy")), team))
    for where, document, holder in grants:
        if document is None:
            continue
        if isinstance(holder, str) or holder is None:
            team, who = holder, f"policy {where}"
        else:
            team = get_path(holder.props, "tags", TEAM_TAG)
            who = f"role {holder.props.get('name') or holder.name} via {where}"
        for arn in _secrets_granted(document, secrets):
            store, allowed = secrets[arn]
            if team is None or team not in allowed:
                report_violation(
                    f"{who} ({f'team {team}' if team else 'no team'}) can read the key of object "
                    f"store {store!r} ({arn}), which is granted to: {', '.join(allowed) or 'none'};"
                    " a store's key is readable by the roles of its own teams only"
                )
