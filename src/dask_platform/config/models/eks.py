"""The network and the EKS cluster: VPC, managed core nodes, API endpoint, access, add-ons.

ref: https://docs.aws.amazon.com/eks/latest/userguide/ (cluster endpoint, access entries, add-ons)
"""

from __future__ import annotations

import ipaddress

from pydantic import Field, model_validator

from dask_platform.config.errors import FieldProblems
from dask_platform.config.types import (
    ALL_LOG_TYPES,
    AddonVersion,
    Cidr,
    ConfigModel,
    IamRoleArn,
    InstanceType,
    KubernetesVersion,
    LogType,
)


class Network(ConfigModel):
    """The VPC every compute resource lives in."""

    vpc_cidr: Cidr = Field(description="The VPC's IPv4 block; /16 to /24.")
    availability_zones: list[str] = Field(
        min_length=2, max_length=6, description="AZs in the stack's region (at least two)."
    )
    ingress_cidrs: list[Cidr] = Field(
        default_factory=list,
        description="CIDRs allowed to reach the gateway and scheduler/dashboard ports from "
        "outside the VPC. 0.0.0.0/0 is only ever opened if it is listed here.",
    )
    single_nat_gateway: bool = Field(
        default=False, description="One NAT gateway for all AZs (cheaper, not zone-redundant)."
    )

    @model_validator(mode="after")
    def _check(self) -> Network:
        problems = []
        prefix = ipaddress.IPv4Network(self.vpc_cidr).prefixlen
        if not 16 <= prefix <= 24:
            problems.append(("vpc_cidr", f"prefix length must be /16 to /24 (got /{prefix})"))
        if len(set(self.availability_zones)) != len(self.availability_zones):
            problems.append(("availability_zones", "must not repeat a zone"))
        if problems:
            raise FieldProblems(problems)
        return self


class NodeGroup(ConfigModel):
    instance_types: list[InstanceType] = Field(min_length=1)
    min_size: int = Field(ge=0, le=1000)
    max_size: int = Field(ge=1, le=1000)
    desired_size: int | None = Field(default=None, ge=0, le=1000)
    disk_size_gib: int = Field(default=50, ge=20, le=2000)

    @model_validator(mode="after")
    def _check(self) -> NodeGroup:
        if self.min_size > self.max_size:
            raise FieldProblems(
                [("min_size", f"must not exceed max_size ({self.max_size}) (got {self.min_size})")]
            )
        if self.desired_size is not None and not (
            self.min_size <= self.desired_size <= self.max_size
        ):
            raise FieldProblems(
                [
                    (
                        "desired_size",
                        f"must lie between min_size ({self.min_size}) and max_size "
                        f"({self.max_size}) (got {self.desired_size})",
                    )
                ]
            )
        return self


class NodeGroups(ConfigModel):
    core: NodeGroup = Field(
        description="On-demand managed nodes for the gateway, its controller and proxy, and "
        "Karpenter itself. Dask schedulers and workers run on Karpenter's NodePools (capacity)."
    )


# ref: https://www.rfc-editor.org/rfc/rfc5737 (TEST-NET-1/2/3: never routed, documentation only)
DOCUMENTATION_RANGES = tuple(
    ipaddress.IPv4Network(c) for c in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
)


def _operator_cidr_problems(field: str, cidrs: list[str]) -> list[tuple[str, str]]:
    problems = []
    for i, cidr in enumerate(cidrs):
        network = ipaddress.IPv4Network(cidr)
        if network.prefixlen == 0:
            problems.append(
                (
                    f"{field}[{i}]",
                    f"{cidr} would open the Kubernetes API to the internet; list the operator "
                    "networks instead",
                )
            )
        elif any(network.overlaps(doc) for doc in DOCUMENTATION_RANGES):
            problems.append(
                (
                    f"{field}[{i}]",
                    f"{cidr} is a documentation range (192.0.2.0/24, 198.51.100.0/24, "
                    "203.0.113.0/24) that no operator ever connects from; put your operators' "
                    "real network here",
                )
            )
    return problems


class EksEndpoint(ConfigModel):
    """The Kubernetes API endpoint: private (reached over the operators' VPN, admitted by the
    control-plane security group) or also public to listed operator networks.

    ref: https://docs.aws.amazon.com/eks/latest/userguide/cluster-endpoint.html
    """

    public_access: bool = Field(
        default=False,
        description="Turn the public endpoint on (only for public_access_cidrs).",
    )
    public_access_cidrs: list[Cidr] = Field(
        default_factory=list,
        description="The operators' and CI's public egress networks; required when "
        "public_access is true.",
    )
    private_access_cidrs: list[Cidr] = Field(
        default_factory=list,
        description="Networks routed into the VPC (the operators' VPN, a CI runner subnet) that "
        "the control-plane security group admits on 443; required when public_access is false.",
    )

    @model_validator(mode="after")
    def _check(self) -> EksEndpoint:
        problems = _operator_cidr_problems("public_access_cidrs", self.public_access_cidrs)
        problems += _operator_cidr_problems("private_access_cidrs", self.private_access_cidrs)
        if self.public_access and not self.public_access_cidrs:
            problems.append(
                (
                    "public_access_cidrs",
                    "required when public_access is true (the operators' public networks; AWS "
                    "would otherwise open the endpoint to 0.0.0.0/0)",
                )
            )
        if not self.public_access and self.public_access_cidrs:
            problems.append(("public_access_cidrs", "only used when public_access is true"))
        if not self.public_access and not self.private_access_cidrs:
            problems.append(
                (
                    "private_access_cidrs",
                    "required when public_access is false: the networks (VPN, CI runners) "
                    "routed into the VPC from which operators and Pulumi reach the private "
                    "endpoint; without one nothing outside the VPC can deploy",
                )
            )
        if problems:
            raise FieldProblems(problems)
        return self


class EksAccess(ConfigModel):
    """Access entries (authentication mode API). The cluster creator gets no implicit admin: the
    roles listed here are the only way into the cluster.

    ref: https://docs.aws.amazon.com/eks/latest/userguide/access-entries.html
    """

    admin_role_arns: list[IamRoleArn] = Field(
        min_length=1,
        description="Roles with AmazonEKSClusterAdminPolicy (operators, the CI role that runs "
        "`pulumi up`).",
    )
    view_role_arns: list[IamRoleArn] = Field(
        default_factory=list, description="Roles with AmazonEKSViewPolicy (read-only)."
    )

    @model_validator(mode="after")
    def _check(self) -> EksAccess:
        problems = []
        both = sorted(set(self.admin_role_arns) & set(self.view_role_arns))
        if both:
            problems.append(("view_role_arns", f"{', '.join(both)} already in admin_role_arns"))
        for name in ("admin_role_arns", "view_role_arns"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                problems.append((name, "must not repeat a role"))
        if problems:
            raise FieldProblems(problems)
        return self


class EksAddons(ConfigModel):
    """Versions of the EKS managed add-ons; unset = the newest version EKS offers for the
    cluster's Kubernetes version, resolved at `pulumi up` (aws.eks.get_addon_version).

    ref: https://docs.aws.amazon.com/eks/latest/userguide/workloads-add-ons-available-eks.html
    """

    vpc_cni: AddonVersion | None = None
    kube_proxy: AddonVersion | None = None
    coredns: AddonVersion | None = None


class Eks(ConfigModel):
    kubernetes_version: KubernetesVersion
    endpoint: EksEndpoint = Field(
        description="How operators and CI reach the Kubernetes API (public CIDRs or the VPN)."
    )
    access: EksAccess = Field(description="IAM roles that may use the Kubernetes API.")
    addons: EksAddons = Field(default_factory=lambda: EksAddons())
    control_plane_log_types: list[LogType] = Field(
        default_factory=lambda: list(ALL_LOG_TYPES), min_length=1
    )
    node_groups: NodeGroups
