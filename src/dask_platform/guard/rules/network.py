"""Rules over who can reach the platform: security-group ingress CIDRs and the EKS public API
endpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dask_platform.guard.rules.policy_config import ReportViolation, _config
from dask_platform.guard.rules.resource_types import (
    EKS_CLUSTER,
    SECURITY_GROUP_RULE,
    SECURITY_GROUP_TYPES,
    VPC_INGRESS_RULE,
)
from dask_platform.guard.values import (
    as_list,
    first,
    is_mapping,
    is_open_cidr,
    normalise_cidr,
    truthy,
)

if TYPE_CHECKING:
    from pulumi_policy import ResourceValidationArgs


def eks_endpoint_restricted_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type != EKS_CLUSTER:
        return
    vpc = first(args.props.get("vpcConfig"))
    vpc = vpc if is_mapping(vpc) else {}
    # AWS's defaults: public endpoint on, open to 0.0.0.0/0.
    public = vpc.get("endpointPublicAccess")
    if public is not None and not truthy(public):
        return
    cidrs = [str(c) for c in as_list(vpc.get("publicAccessCidrs"))]
    if not cidrs:
        report_violation(
            "the public API endpoint is on with no publicAccessCidrs, which AWS opens to "
            "0.0.0.0/0; turn endpointPublicAccess off or list the operator networks"
        )
    for cidr in cidrs:
        if is_open_cidr(cidr):
            report_violation(f"publicAccessCidrs includes {cidr}: the Kubernetes API is open")


def _ingress_cidrs(args: ResourceValidationArgs) -> list[tuple[str, str]]:
    """(where, cidr) for every ingress source CIDR a resource opens."""
    props, out = args.props, []
    if args.resource_type in SECURITY_GROUP_TYPES:
        for index, rule in enumerate(as_list(props.get("ingress"))):
            if not is_mapping(rule):
                continue
            for key in ("cidrBlocks", "ipv6CidrBlocks"):
                out += [(f"ingress[{index}]", str(c)) for c in as_list(rule.get(key))]
    elif args.resource_type == SECURITY_GROUP_RULE and props.get("type") == "ingress":
        for key in ("cidrBlocks", "ipv6CidrBlocks"):
            out += [(key, str(c)) for c in as_list(props.get(key))]
    elif args.resource_type == VPC_INGRESS_RULE:
        for key in ("cidrIpv4", "cidrIpv6"):
            if props.get(key):
                out.append((key, str(props.get(key))))
    return out


def no_open_ingress_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    allowed = {normalise_cidr(str(c)) for c in as_list(_config(args, "ingress_cidrs"))}
    for where, cidr in _ingress_cidrs(args):
        if is_open_cidr(cidr) and normalise_cidr(cidr) not in allowed:
            listed = ", ".join(sorted(allowed)) or "none"
            report_violation(
                f"{where} allows ingress from {cidr}; the stack config (network.ingress_cidrs, "
                f"ecs.access_cidrs) does not list it (allowed: {listed})"
            )
