"""Rules over EC2 instances, node groups and the EKS cluster: IMDSv2 with a hop limit of 1,
envelope-encrypted Kubernetes secrets, no invisible creator admin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dask_platform.guard.rules.policy_config import ReportViolation
from dask_platform.guard.rules.resource_types import (
    EKS_CLUSTER,
    EKS_NODE_GROUP,
    INSTANCE,
    LAUNCH_CONFIGURATION,
    LAUNCH_TEMPLATE,
    METADATA_DEFAULTS,
)
from dask_platform.guard.values import (
    as_list,
    first,
    get_path,
    is_mapping,
    number,
    truthy,
)

if TYPE_CHECKING:
    from pulumi_policy import ResourceValidationArgs

# --------------------------------------------------------------------------- EC2 / EKS


def _metadata_problems(options: Any) -> list[str]:
    options = first(options)
    if not is_mapping(options):
        return ["no metadataOptions: IMDSv1 stays enabled and the hop limit is the default"]
    if options.get("httpEndpoint") == "disabled":
        return []  # no metadata service at all: nothing to borrow
    problems = []
    if options.get("httpTokens") != "required":
        problems.append(
            f"metadataOptions.httpTokens is {options.get('httpTokens')!r}; must be 'required' "
            "(IMDSv2 only)"
        )
    hops = number(options.get("httpPutResponseHopLimit"))
    if hops != 1:
        shown = "unset" if hops is None else f"{hops:g}"
        problems.append(
            f"metadataOptions.httpPutResponseHopLimit is {shown}; must be 1 so containers "
            "cannot reach the node's credentials"
        )
    return problems


def imdsv2_hop_limit_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type in (LAUNCH_TEMPLATE, INSTANCE, LAUNCH_CONFIGURATION):
        for problem in _metadata_problems(args.props.get("metadataOptions")):
            report_violation(problem)
    elif args.resource_type == METADATA_DEFAULTS:
        # The account/region defaults carry the same fields at the top level; "no-preference"
        # leaves AWS's own default (IMDSv1 allowed, hop limit 1 or 2 by AMI) in place.
        for problem in _metadata_problems(args.props):
            report_violation(f"instance metadata defaults: {problem}")
    elif args.resource_type == EKS_NODE_GROUP and not args.props.get("launchTemplate"):
        report_violation(
            "node group has no launchTemplate: EKS's default template allows IMDSv1 and a hop "
            "limit of 2, so pods could use the node role"
        )


def eks_secrets_encryption_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type != EKS_CLUSTER:
        return
    configs = [c for c in as_list(args.props.get("encryptionConfig")) if is_mapping(c)]
    encrypted = [
        c
        for c in configs
        if "secrets" in as_list(c.get("resources")) and get_path(first(c.get("provider")), "keyArn")
    ]
    if not encrypted:
        report_violation(
            "encryptionConfig does not envelope-encrypt 'secrets' with a KMS key (keyArn)"
        )


def eks_no_creator_admin_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type != EKS_CLUSTER:
        return
    access = first(args.props.get("accessConfig"))
    access = access if is_mapping(access) else {}
    # AWS's defaults when unset: the creator becomes an invisible cluster admin.
    bootstrap = access.get("bootstrapClusterCreatorAdminPermissions")
    if bootstrap is None or truthy(bootstrap):
        shown = "unset (AWS default: true)" if bootstrap is None else "true"
        report_violation(
            f"accessConfig.bootstrapClusterCreatorAdminPermissions is {shown}: whoever ran the "
            "first `up` becomes a cluster admin that no access entry shows, and the cluster is "
            "locked once that identity is gone; set it false and list eks.access.admin_role_arns"
        )
    mode = access.get("authenticationMode")
    if mode not in ("API", "API_AND_CONFIG_MAP"):
        report_violation(
            f"accessConfig.authenticationMode is {mode or 'unset'}: access entries need API or "
            "API_AND_CONFIG_MAP (the aws-auth ConfigMap alone cannot be managed before the "
            "cluster is reachable)"
        )
