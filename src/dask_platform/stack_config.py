"""The typed stack configuration: one pydantic model for everything in ``Pulumi.<stack>.yaml``.

Every key of the ``dask-platform:`` namespace is validated at once, before any resource is
declared; a typo is an error naming the key path and the allowed keys, never a silent default.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dask_platform.credentials import FORBIDDEN_ENV_VARS

NAMESPACE = "dask-platform"
"""The Pulumi config namespace (the project name in Pulumi.yaml)."""

SUPPORTED_CHART_VERSION = "2026.3.0"
"""The dask-gateway Helm chart version this repository's values and gateway config are tested
against (and the dask-gateway client version locked for the images)."""


class StackConfigError(ValueError):
    """Every problem in a stack configuration, one line each, with its key path."""

    def __init__(self, problems: list[str], source: str = "stack config") -> None:
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s):\n{lines}")


# --------------------------------------------------------------------------- constrained types


def _matches(pattern: str, what: str):
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"must be {what} (got {value!r})")
        return value

    return check


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.IPv4Network(value, strict=True))
    except ValueError as exc:
        raise ValueError(
            f"must be an IPv4 CIDR block such as 10.0.0.0/16 with no host bits set "
            f"(got {value!r}: {exc})"
        ) from None


REGION_PATTERN = r"(af|ap|ca|eu|il|me|mx|sa|us)-[a-z]+-\d"

TeamName = Annotated[
    str,
    AfterValidator(
        _matches(
            r"[a-z][a-z0-9-]{0,18}[a-z0-9]",
            "2-20 characters of a-z, 0-9 and '-', starting with a letter and not ending in '-' "
            "(it becomes an S3 prefix, an IAM role name and a Kubernetes ServiceAccount name)",
        )
    ),
]
BucketName = Annotated[
    str,
    AfterValidator(
        _matches(
            r"(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
            "a valid S3 bucket name: 3-63 characters of a-z, 0-9, '.' and '-', starting and "
            "ending with a letter or digit",
        )
    ),
]
Region = Annotated[
    str,
    AfterValidator(
        _matches(
            REGION_PATTERN,
            "an AWS commercial-partition region such as us-west-2 or eu-central-1",
        )
    ),
]
InstanceType = Annotated[
    str,
    AfterValidator(
        _matches(r"[a-z][a-z0-9-]*\.[a-z0-9]+", "an EC2 instance type such as m6i.xlarge")
    ),
]
Cidr = Annotated[str, AfterValidator(_cidr)]
# ref: https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html#kubernetes-release-calendar
# Checked 2026-11-30. Version -> end of EKS standard support (after it: extended support at extra
# cost, then a forced upgrade). Add a version here when EKS releases it; drop it once its standard
# support has ended. 1.33 ended 2026-07-29; 1.32 on 2026-03-23; 1.28 on 2024-11-26.
EKS_STANDARD_SUPPORT: dict[str, str] = {
    "1.34": "2026-12-02",
    "1.35": "2027-03-27",
}
"""The Kubernetes minor versions a stack may run: those in EKS standard support (the one list;
``eks.kubernetes_version`` and the docs read it)."""


def _supported_kubernetes_version(value: str) -> str:
    if value not in EKS_STANDARD_SUPPORT:
        allowed = ", ".join(
            f"{v} (standard support until {end})" for v, end in EKS_STANDARD_SUPPORT.items()
        )
        raise ValueError(
            f"must be an EKS Kubernetes minor version in standard support, one of {allowed} "
            f"(got {value!r})"
        )
    return value


KubernetesVersion = Annotated[str, AfterValidator(_supported_kubernetes_version)]
ChartVersion = Annotated[
    str,
    AfterValidator(
        _matches(r"\d{4}\.\d{1,2}\.\d+", "a pinned CalVer chart version such as 2026.3.0")
    ),
]
ImageTag = Annotated[
    str,
    AfterValidator(
        _matches(
            r"(?!latest$)[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}",
            "a pinned image tag (not 'latest'): letters, digits, '_', '.', '-'",
        )
    ),
]
ImageName = Annotated[
    str,
    AfterValidator(
        _matches(
            r"[a-z0-9]+([._-][a-z0-9]+)*(:\d+)?(/[a-z0-9]+([._/-][a-z0-9]+)*)*",
            "an image repository such as ghcr.io/org/dask-worker (no tag)",
        )
    ),
]
Hostname = Annotated[
    str,
    AfterValidator(
        _matches(
            r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:\d+)?(/[A-Za-z0-9._~-]+)*",
            "an issuer host and path without scheme",
        )
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


# --------------------------------------------------------------------------- sections


class Network(_Model):
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
        prefix = ipaddress.IPv4Network(self.vpc_cidr).prefixlen
        if not 16 <= prefix <= 24:
            raise ValueError(f"vpc_cidr: prefix length must be /16 to /24 (got /{prefix})")
        if len(set(self.availability_zones)) != len(self.availability_zones):
            raise ValueError("availability_zones: must not repeat a zone")
        return self


class NodeGroup(_Model):
    instance_types: list[InstanceType] = Field(min_length=1)
    min_size: int = Field(ge=0, le=1000)
    max_size: int = Field(ge=1, le=1000)
    desired_size: int | None = Field(default=None, ge=0, le=1000)
    disk_size_gib: int = Field(default=50, ge=20, le=2000)

    @model_validator(mode="after")
    def _check(self) -> NodeGroup:
        if self.min_size > self.max_size:
            raise ValueError(
                f"min_size ({self.min_size}) must not exceed max_size ({self.max_size})"
            )
        if self.desired_size is not None and not (
            self.min_size <= self.desired_size <= self.max_size
        ):
            raise ValueError(
                f"desired_size ({self.desired_size}) must lie between min_size "
                f"({self.min_size}) and max_size ({self.max_size})"
            )
        return self


class NodeGroups(_Model):
    core: NodeGroup = Field(
        description="On-demand managed nodes for the gateway, its controller and proxy, and "
        "Karpenter itself. Dask schedulers and workers run on Karpenter's NodePools (capacity)."
    )


CapacityType = Literal["spot", "on-demand"]
Architecture = Literal["amd64", "arm64"]
Duration = Annotated[
    str,
    AfterValidator(
        _matches(
            r"([0-9]+(s|m|h))+",
            "a duration of whole seconds, minutes or hours such as 30s, 5m or 720h "
            "(Karpenter's format)",
        )
    ),
]
LabelValue = Annotated[
    str,
    AfterValidator(_matches(r"[a-z0-9][a-z0-9-]{0,30}", "an instance-type label value (m, m6i)")),
]


class NodePoolCapacity(_Model):
    """One Karpenter NodePool: what it may launch and what caps it.

    ref: https://karpenter.sh/docs/concepts/nodepools/ (requirements, limits, disruption)
    """

    capacity_types: list[CapacityType] = Field(
        min_length=1,
        description="karpenter.sh/capacity-type values allowed, each one of {spot, on-demand}. "
        "With both, Karpenter launches spot and falls back to on-demand when spot is short.",
    )
    instance_categories: list[LabelValue] = Field(
        min_length=1,
        description="karpenter.k8s.aws/instance-category values (c, m, r, ...).",
    )
    instance_families: list[LabelValue] = Field(
        default_factory=list,
        description="karpenter.k8s.aws/instance-family values (m6i, r7a, ...); empty = every "
        "family of the categories.",
    )
    instance_sizes: list[LabelValue] = Field(
        default_factory=list,
        description="karpenter.k8s.aws/instance-size values (xlarge, 2xlarge, ...); empty = any.",
    )
    instance_generation_min: int = Field(
        default=5,
        ge=1,
        le=20,
        description="Lowest karpenter.k8s.aws/instance-generation allowed (5 = Nitro-era types; "
        "older ones lack the ENA/NVMe drivers AL2023 expects).",
    )
    architectures: list[Architecture] = Field(
        default_factory=lambda: list[Architecture](["amd64"]),
        min_length=1,
        description="kubernetes.io/arch values, each one of {amd64, arm64}; the images' own.",
    )
    cpu_limit: int = Field(
        gt=0, le=100_000, description="NodePool limits.cpu: cores of all its nodes together."
    )
    memory_limit_gib: int = Field(
        gt=0, le=1_000_000, description="NodePool limits.memory in GiB, all its nodes together."
    )
    consolidate_after: Duration = Field(
        default="2m", description="How long a node stays empty before Karpenter removes it."
    )
    expire_after: Duration = Field(
        default="720h", description="Nodes older than this are replaced (patched AMIs)."
    )

    @field_validator("capacity_types", "instance_categories", "instance_families", "architectures")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        repeated = sorted({v for v in value if value.count(v) > 1})
        if repeated:
            raise ValueError(f"must not repeat a value (repeated: {', '.join(repeated)})")
        return value


class SchedulerNodePoolCapacity(NodePoolCapacity):
    capacity_types: list[CapacityType] = Field(
        default_factory=lambda: list[CapacityType](["on-demand"]),
        min_length=1,
        description="One of {[on-demand]}: losing a scheduler loses the whole Dask cluster.",
    )

    @field_validator("capacity_types")
    @classmethod
    def _on_demand_only(cls, value: list[str]) -> list[str]:
        if value != ["on-demand"]:
            raise ValueError(
                f"schedulers run on on-demand capacity only (got {value}); a spot interruption "
                "would lose the whole Dask cluster. Allowed: [on-demand]"
            )
        return value


class Capacity(_Model):
    """Node capacity from Karpenter: one NodePool for Dask workers, one for schedulers."""

    workers: NodePoolCapacity = Field(description="The dask-workers NodePool.")
    schedulers: SchedulerNodePoolCapacity = Field(description="The dask-schedulers NodePool.")
    vm_memory_overhead_percent: float = Field(
        default=0.075,
        ge=0,
        lt=0.5,
        description="Karpenter's settings.vmMemoryOverheadPercent (a fraction): memory of each "
        "instance type assumed lost to the hypervisor and OS.",
    )
    daemonset_cpu: float = Field(
        default=0.25,
        ge=0,
        le=8,
        description="Cores requested on every node by DaemonSets (aws-node, kube-proxy, "
        "eks-pod-identity-agent, ...); a Dask pod must fit beside them.",
    )
    daemonset_memory_gib: float = Field(
        default=0.5,
        ge=0,
        le=32,
        description="Memory (GiB) requested on every node by DaemonSets.",
    )
    ami_version: Annotated[
        str,
        AfterValidator(
            _matches(r"latest|v\d{8}", "'latest' or an AL2023 EKS AMI release such as v20251120")
        ),
    ] = Field(
        default="latest",
        description="The EC2NodeClass AMI alias al2023@<ami_version>; pin a release to change "
        "node images only on purpose (a new one replaces nodes through drift).",
    )
    disk_size_gib: int = Field(
        default=100, ge=20, le=2000, description="Encrypted gp3 root volume of each node."
    )


# --------------------------------------------------------------------------- EKS access

# ref: https://www.rfc-editor.org/rfc/rfc5737 (TEST-NET-1/2/3: never routed, documentation only)
DOCUMENTATION_RANGES = tuple(
    ipaddress.IPv4Network(c) for c in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
)

IamRoleArn = Annotated[
    str,
    AfterValidator(
        _matches(
            r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]{1,512}",
            "an IAM role ARN such as arn:aws:iam::111122223333:role/platform-admins",
        )
    ),
]
AccountId = Annotated[str, AfterValidator(_matches(r"\d{12}", "a 12-digit AWS account id"))]
AddonVersion = Annotated[
    str,
    AfterValidator(
        _matches(
            r"v\d+\.\d+\.\d+-eksbuild\.\d+", "an EKS add-on version such as v1.19.2-eksbuild.1"
        )
    ),
]


def _operator_cidr_problems(field: str, cidrs: list[str]) -> list[str]:
    problems = []
    for cidr in cidrs:
        network = ipaddress.IPv4Network(cidr)
        if network.prefixlen == 0:
            problems.append(
                f"{field}: {cidr} would open the Kubernetes API to the internet; list the "
                "operator networks instead"
            )
        elif any(network.overlaps(doc) for doc in DOCUMENTATION_RANGES):
            problems.append(
                f"{field}: {cidr} is a documentation range (192.0.2.0/24, 198.51.100.0/24, "
                "203.0.113.0/24) that no operator ever connects from; put your operators' real "
                "network here"
            )
    return problems


class EksEndpoint(_Model):
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
                "public_access_cidrs: required when public_access is true (the operators' "
                "public networks; AWS would otherwise open the endpoint to 0.0.0.0/0)"
            )
        if not self.public_access and self.public_access_cidrs:
            problems.append("public_access_cidrs: only used when public_access is true")
        if not self.public_access and not self.private_access_cidrs:
            problems.append(
                "private_access_cidrs: required when public_access is false: the networks "
                "(VPN, CI runners) routed into the VPC from which operators and Pulumi reach the "
                "private endpoint; without one nothing outside the VPC can deploy"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class EksAccess(_Model):
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
        both = sorted(set(self.admin_role_arns) & set(self.view_role_arns))
        if both:
            raise ValueError(f"view_role_arns: {', '.join(both)} already in admin_role_arns")
        for name in ("admin_role_arns", "view_role_arns"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"{name}: must not repeat a role")
        return self


class EksAddons(_Model):
    """Versions of the EKS managed add-ons; unset = the newest version EKS offers for the
    cluster's Kubernetes version, resolved at `pulumi up` (aws.eks.get_addon_version).

    ref: https://docs.aws.amazon.com/eks/latest/userguide/workloads-add-ons-available-eks.html
    """

    vpc_cni: AddonVersion | None = None
    kube_proxy: AddonVersion | None = None
    coredns: AddonVersion | None = None


LogType = Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]
ALL_LOG_TYPES: tuple[LogType, ...] = (
    "api",
    "audit",
    "authenticator",
    "controllerManager",
    "scheduler",
)


class Eks(_Model):
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


class Team(_Model):
    name: TeamName
    groups: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        min_length=1, description="Identity-provider groups whose members belong to the team."
    )


class Scratch(_Model):
    bucket_name: BucketName
    retention_days: int = Field(default=7, ge=1, le=365)


class DataBucket(_Model):
    name: BucketName
    requester_pays: bool = False
    managed: bool = Field(
        default=False,
        description="true: this stack creates the bucket (protected, versioned); "
        "false: an existing bucket that teams may read.",
    )


class Range(_Model):
    min: float = Field(gt=0)
    max: float = Field(gt=0)
    default: float = Field(gt=0)

    @model_validator(mode="after")
    def _check(self) -> Range:
        if not self.min <= self.default <= self.max:
            raise ValueError(
                f"must satisfy min <= default <= max (got min={self.min:g}, "
                f"default={self.default:g}, max={self.max:g})"
            )
        return self


class IntRange(Range):
    min: int = Field(gt=0)  # type: ignore[assignment]
    max: int = Field(gt=0)  # type: ignore[assignment]
    default: int = Field(gt=0)  # type: ignore[assignment]


class Oidc(_Model):
    issuer: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] = Field(
        description="The identity provider's issuer URL (Keycloak realm, Cognito, ...)."
    )
    audience: Annotated[str, Field(min_length=1)]
    client_id: Annotated[str, Field(min_length=1)]
    groups_claim: Annotated[str, Field(min_length=1)] = "groups"


AuthType = Literal["simple", "kerberos", "jupyterhub", "custom"]


class GatewayAuth(_Model):
    type: AuthType = Field(description="One of {simple, kerberos, jupyterhub, custom}.")
    oidc: Oidc | None = Field(
        default=None, description="Required with type 'custom' (the platform's OIDC authenticator)."
    )
    jupyterhub_api_url: str | None = None

    @model_validator(mode="after")
    def _check(self) -> GatewayAuth:
        if self.type == "custom" and self.oidc is None:
            raise ValueError("oidc: required when type is 'custom' (issuer, audience, client_id)")
        if self.type != "custom" and self.oidc is not None:
            raise ValueError(f"oidc: only used with type 'custom' (type is {self.type!r})")
        return self


class Image(_Model):
    name: ImageName
    tag: ImageTag

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.tag}"


class GatewayTls(_Model):
    certificate_arn: Annotated[
        str, Field(pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+$")
    ] = Field(description="ACM certificate covering hostname (arn:aws:acm:...:certificate/...).")
    hostname: Annotated[
        str,
        Field(max_length=253, pattern=r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"),
    ] = Field(
        description="The gateway's DNS name (a CNAME to the NLB, made by the operator); the "
        "exported addresses use it so clients verify the certificate."
    )


class Gateway(_Model):
    chart_version: ChartVersion = SUPPORTED_CHART_VERSION
    namespace: Annotated[
        str, AfterValidator(_matches(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", "a DNS label"))
    ] = "dask-gateway"
    auth: GatewayAuth
    worker_cores: IntRange = IntRange(min=1, max=10, default=2)
    worker_memory_gib: Range = Range(min=1, max=32, default=4)
    idle_timeout_minutes: int = Field(default=30, ge=1, le=7 * 24 * 60)
    cluster_max_workers: int = Field(ge=1, le=10_000)
    cluster_max_cores: float = Field(gt=0)
    cluster_max_memory_gib: float = Field(gt=0)
    image: Image | None = Field(
        default=None,
        description="Scheduler and worker image (images/worker, tagged lock-<hash> of the lock "
        "the notebook image is built from); only without images.bootstrap_stack.",
    )
    server_image: Image | None = Field(
        default=None,
        description="The gateway API server and controller image (images/gateway: "
        "dask-gateway-server plus this platform's gateway-side code, which gateway_config.py "
        "imports; the upstream image lacks it); only without images.bootstrap_stack.",
    )
    service_type: Literal["ClusterIP", "LoadBalancer"] = Field(
        default="LoadBalancer",
        description="LoadBalancer: an internal NLB reachable from ingress_cidrs; "
        "ClusterIP: in-cluster only.",
    )
    tls: GatewayTls | None = Field(
        default=None,
        description="TLS for the gateway API: the NLB terminates it on the web port with an "
        "ACM certificate (users' bearer tokens and passwords cross it). Required in a "
        "production stack with service_type LoadBalancer.",
    )
    values_overlay: Annotated[str, Field(pattern=r"^[a-z0-9-]+$")] | None = Field(
        default=None,
        description="Name of helm/dask-gateway/values.<name>.yaml layered over values.yaml.",
    )
    default_environment: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables every scheduler and worker gets (never AWS keys).",
    )

    def scheduler_size(self) -> tuple[float, float]:
        """``(cores, memory GiB)`` the gateway counts for a scheduler against the cluster
        limits: the chart values' ``gateway.backend.scheduler.{cores,memory}.request``, parsed
        as dask-gateway parses them ("1G" is 1 GiB). Raises ValueError for a missing overlay."""
        from dask_gateway_server.traitlets import MemoryLimit

        from dask_platform.gateway_settings import committed_values

        scheduler = committed_values(self.values_overlay)["gateway"]["backend"]["scheduler"]
        memory = MemoryLimit().validate(None, scheduler["memory"]["request"])
        return float(scheduler["cores"]["request"]), memory / 2**30

    @model_validator(mode="after")
    def _check(self) -> Gateway:
        # dask-gateway counts the scheduler against cluster_max_cores/_memory: (max - scheduler)
        # // worker is the number of workers a cluster can have, and 0 means never a worker.
        # ref: dask_gateway_server/backends/base.py ClusterConfig._worker_limit_from_resources
        scheduler_cores, scheduler_memory_gib = self.scheduler_size()
        for field, worker, scheduler, limit_field, limit, unit in (
            (
                "worker_cores.max",
                self.worker_cores.max,
                scheduler_cores,
                "cluster_max_cores",
                self.cluster_max_cores,
                " cores",
            ),
            (
                "worker_memory_gib.max",
                self.worker_memory_gib.max,
                scheduler_memory_gib,
                "cluster_max_memory_gib",
                self.cluster_max_memory_gib,
                " GiB",
            ),
        ):
            if scheduler + worker > limit:
                raise ValueError(
                    f"the scheduler ({scheduler:g}{unit}) plus one maximal worker ({field} "
                    f"{worker:g}) need {scheduler + worker:g}{unit}, above {limit_field} "
                    f"({limit:g}): a cluster of maximal workers could never get one"
                )
        if self.tls is not None and self.service_type != "LoadBalancer":
            raise ValueError(
                "tls: only used with service_type LoadBalancer (the NLB terminates TLS); "
                f"service_type is {self.service_type!r}"
            )
        bad = sorted(k for k in self.default_environment if k.upper() in FORBIDDEN_ENV_VARS)
        if bad:
            raise ValueError(
                f"default_environment: {', '.join(bad)} must not be set; workers get S3 access "
                "from their team role (IRSA), never from key variables"
            )
        return self


class LimitValues(_Model):
    """One set of fair-share limits; every field is a total over the clusters counted."""

    clusters: int = Field(ge=1, le=1000, description="Clusters running or starting at once.")
    worker_cores: float = Field(
        gt=0, description="Cores of the workers the clusters may have (schedulers excluded)."
    )
    worker_memory_gib: float = Field(
        gt=0, description="Memory (GiB) of the workers the clusters may have."
    )


class LimitOverrides(_Model):
    """Some fields of :class:`LimitValues`; the rest come from the defaults."""

    clusters: int | None = Field(default=None, ge=1, le=1000)
    worker_cores: float | None = Field(default=None, gt=0)
    worker_memory_gib: float | None = Field(default=None, gt=0)


class TeamLimits(_Model):
    per_user: LimitOverrides = Field(default_factory=LimitOverrides)
    per_team: LimitOverrides = Field(default_factory=LimitOverrides)


DEFAULT_PER_USER = LimitValues(clusters=3, worker_cores=64, worker_memory_gib=256)
DEFAULT_PER_TEAM = LimitValues(clusters=20, worker_cores=512, worker_memory_gib=2048)


class Limits(_Model):
    """Fair share, enforced by the gateway (dask_platform.gateway_limits): what one user may hold
    and what all users of one team together may hold, over the clusters running or starting.
    A cluster counts against the team it was started for (its ``team`` option)."""

    per_user: LimitValues = Field(
        default=DEFAULT_PER_USER, description="Each user's limits, in every team."
    )
    per_team: LimitValues = Field(
        default=DEFAULT_PER_TEAM, description="Each team's limits (all its users together)."
    )
    teams: dict[str, TeamLimits] = Field(
        default_factory=dict,
        description="Per-team overrides of per_user (for that team's clusters) and per_team.",
    )
    no_client_timeout_minutes: float = Field(
        default=15,
        gt=0,
        le=7 * 24 * 60,
        description="A cluster with no connected Dask client this long is stopped "
        "(dask_platform.no_client); clusters created with shutdown_on_close=False are exempt "
        "but still obey gateway.idle_timeout_minutes.",
    )

    def for_team(self, team: str) -> tuple[LimitValues, LimitValues]:
        """``(per_user, per_team)`` in effect for clusters of ``team``."""
        override = self.teams.get(team, TeamLimits())
        return (
            self.per_user.model_copy(update=override.per_user.model_dump(exclude_none=True)),
            self.per_team.model_copy(update=override.per_team.model_dump(exclude_none=True)),
        )


# ref: https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
"""The only retention periods CloudWatch Logs accepts."""


class EcsGpu(_Model):
    """GPU workers for ``ECSCluster(worker_gpu=...)``: an auto-scaling group of ECS GPU-optimized
    instances behind a capacity provider (Fargate has no GPUs)."""

    enabled: bool = Field(default=False, description="Create the GPU capacity provider.")
    instance_types: list[InstanceType] = Field(
        default_factory=lambda: ["g4dn.xlarge"],
        min_length=1,
        description="GPU instance types, in order of preference (g4dn, g5, g6, p3, p4d, ...).",
    )
    min_size: int = Field(default=0, ge=0, le=1000)
    max_size: int = Field(default=4, ge=1, le=1000)
    gpus_per_worker: int = Field(default=1, ge=1, le=8, description="GPUs per Dask worker task.")
    disk_size_gib: int = Field(default=100, ge=30, le=2000)
    image: Image | None = Field(
        default=None,
        description="The GPU worker image (images/worker-gpu: CuPy + the CUDA runtime, same lock "
        "as the notebook, with a `dask-cuda-worker` shim for ECSCluster); "
        "required when enabled, unless images.bootstrap_stack supplies it.",
    )

    @model_validator(mode="after")
    def _check(self) -> EcsGpu:
        if self.min_size > self.max_size:
            raise ValueError(
                f"min_size ({self.min_size}) must not exceed max_size ({self.max_size})"
            )
        return self

    @model_validator(mode="after")
    def _fits(self) -> EcsGpu:
        if not self.enabled:
            return self
        from dask_platform.instance_types import ecs_gpu_worker_size

        try:
            ecs_gpu_worker_size(self.instance_types, self.gpus_per_worker)
        except ValueError as exc:
            raise ValueError(f"instance_types: {exc}") from None
        return self

    @field_validator("instance_types")
    @classmethod
    def _gpu_types(cls, value: list[str]) -> list[str]:
        cpu_only = [t for t in value if not t.startswith(("g", "p"))]
        if cpu_only:
            raise ValueError(f"{', '.join(cpu_only)} have no GPU; use g* or p* instance types")
        return value


class Ecs(_Model):
    """Pre-provisioned resources for dask-cloudprovider's FargateCluster, ECSCluster and
    EC2Cluster, so that an analyst needs only a minimal policy and workers get the team role."""

    enabled: bool = Field(default=True, description="Create the ECS/EC2 resources.")
    log_retention_days: int = Field(
        default=30, description=f"CloudWatch retention; one of {set(LOG_RETENTION_DAYS)}."
    )
    fargate_spot: bool = Field(
        default=True, description="Fargate workers on FARGATE_SPOT (the scheduler stays on-demand)."
    )
    access_cidrs: list[Cidr] = Field(
        default_factory=list,
        description="CIDRs outside the VPC that may reach the scheduler (8786) and dashboard "
        "(8787). The VPC itself always may; 0.0.0.0/0 is only ever opened if listed here.",
    )
    analyst_policy: Literal["resources-supplied", "create-everything"] = Field(
        default="resources-supplied",
        description="Which minimal policy the per-team analyst groups get.",
    )
    imdsv2_account_default: bool = Field(
        default=True,
        description="Manage the region's account-level instance metadata defaults (IMDSv2 "
        "required). EC2Cluster cannot request IMDSv2 per instance; one stack per account and "
        "region may own this setting.",
    )
    gpu: EcsGpu = Field(default_factory=EcsGpu)

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            allowed = ", ".join(str(d) for d in LOG_RETENTION_DAYS)
            raise ValueError(f"{value} is not a CloudWatch retention period; one of {allowed}")
        return value


RepositoryPrefix = Annotated[
    str,
    AfterValidator(
        _matches(
            r"[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*",
            "an ECR repository namespace such as dask-platform or earth/dask: lowercase "
            "letters, digits, '.', '_', '-', segments separated by '/'",
        )
    ),
]


class Registry(_Model):
    """ECR repositories for the platform's images (images/): one per image, named
    ``<repository_prefix>/<image>``; scanned on push, immutable tags, encrypted, protected."""

    enabled: bool = Field(
        default=False,
        description="Create the repositories. Images are built once and run everywhere, so one "
        "stack per account and region owns them; the others pull from them.",
    )
    repository_prefix: RepositoryPrefix = Field(
        default="dask-platform", max_length=200, description="Repositories: <prefix>/<image>."
    )
    keep_images: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="Tagged images kept per repository; older ones expire (a running cluster's "
        "image must be among them).",
    )
    untagged_expiry_days: int = Field(
        default=7, ge=1, le=365, description="Untagged images (superseded pushes) expire after."
    )


BOOTSTRAP_STACK_PATTERN = r"[A-Za-z0-9_.-]+/dask-platform-bootstrap/[A-Za-z0-9_.-]+"


class Images(_Model):
    """Where the stack's image references come from."""

    bootstrap_stack: (
        Annotated[
            str,
            AfterValidator(
                _matches(
                    BOOTSTRAP_STACK_PATTERN,
                    "a Pulumi stack name <organization>/dask-platform-bootstrap/<stack>",
                )
            ),
        ]
        | None
    ) = Field(
        default=None,
        description="The bootstrap stack (infra/bootstrap) whose `images` output names every "
        "image (its ECR repository and tag); read with a stack reference. Without it, "
        "gateway.image, gateway.server_image and ecs.gpu.image name the images.",
    )


class ImageRefs(_Model):
    """The image references one stack runs (``<repository>:<tag>``)."""

    worker: str
    gateway: str
    worker_gpu: str | None = None

    @staticmethod
    def split(reference: str) -> dict[str, str]:
        """``repo:tag`` -> the chart's ``{name, tag}``."""
        name, _, tag = reference.rpartition(":")
        return {"name": name, "tag": tag}


# --------------------------------------------------------------------------- object stores
# Other S3-compatible stores (OSN, Ceph, Wasabi): reached by profile name through the platform's
# AWS config file; the key pair is a Pulumi secret (``object_store_keys``) kept in Secrets
# Manager. See dask_platform.object_stores.

AddressingStyle = Literal["auto", "virtual", "path"]
ADDRESSING_STYLES: tuple[AddressingStyle, ...] = ("auto", "virtual", "path")


def _endpoint_url(value: str) -> str:
    """An http(s) URL with a host and nothing a client would not send as an endpoint."""
    from urllib.parse import urlsplit

    problem = None
    try:
        parts = urlsplit(value)
        port = parts.port  # raises for a non-numeric port
    except ValueError as exc:
        parts, port, problem = None, None, str(exc)
    if parts is not None and problem is None:
        if parts.scheme not in {"http", "https"}:
            problem = "the scheme must be https (or http)"
        elif not parts.hostname:
            problem = "it has no host"
        elif parts.username or parts.password:
            problem = "it must not carry credentials (the key pair is a Pulumi secret)"
        elif not value.isprintable() or " " in value:  # a line break would add INI keys
            problem = "it must not contain spaces, tabs or line breaks"
        elif parts.query or parts.fragment:
            problem = "it must not have a query or fragment"
        elif port == 0:
            problem = "port 0 is not a port"
    if problem:
        raise ValueError(
            f"must be an http(s) endpoint URL such as https://renc.osn.xsede.org "
            f"({problem}; got {value!r})"
        )
    return value.rstrip("/")


ObjectStoreName = Annotated[
    str,
    AfterValidator(
        _matches(
            r"(?!default$)[a-z][a-z0-9-]{0,38}[a-z0-9]",  # [profile default] is every client's
            "2-40 characters of a-z, 0-9 and '-', starting with a letter, not 'default' "
            "(the profile name users pass, e.g. osn-renci; part of the Secrets Manager name)",
        )
    ),
]
StoreRegion = Annotated[
    str,
    AfterValidator(
        _matches(
            r"[a-z0-9][a-z0-9-]{0,31}",
            "a signing region such as us-east-1 (Ceph/OSN often accept any; 1-32 of a-z0-9-)",
        )
    ),
]


class ObjectStore(_Model):
    """One S3-compatible store outside AWS S3, known to users by its profile name."""

    name: ObjectStoreName = Field(
        description="The AWS profile name users already use (e.g. osn-renci)."
    )
    endpoint_url: Annotated[str, AfterValidator(_endpoint_url)] = Field(
        description="The store's S3 endpoint, e.g. https://renc.osn.xsede.org."
    )
    region: StoreRegion | None = Field(
        default=None, description="Signing region the store expects; unset = the SDK default."
    )
    addressing_style: AddressingStyle | None = Field(
        default=None,
        description="One of {auto, virtual, path}; most on-premises stores need path.",
    )
    teams: list[TeamName] = Field(
        min_length=1, description="Teams whose roles may read the store's key pair."
    )


class StackConfig(_Model):
    """Everything a stack needs; loaded from ``Pulumi.<stack>.yaml`` (``dask-platform:`` keys)."""

    production: bool = Field(description="Marks a production stack (stricter policy rules).")
    account_id: AccountId = Field(
        description="The AWS account the stack deploys to (checked against the caller at `up`)."
    )
    region: Region
    network: Network
    eks: Eks
    teams: list[Team] = Field(min_length=1)
    scratch: Scratch
    data_buckets: list[DataBucket] = Field(default_factory=list)
    gateway: Gateway
    ecs: Ecs = Field(default_factory=Ecs)
    images: Images = Field(default_factory=Images)
    capacity: Capacity
    limits: Limits = Field(
        default_factory=Limits, description="Per-user and per-team limits (the gateway's)."
    )
    object_stores: list[ObjectStore] = Field(
        default_factory=list,
        description="Other S3-compatible stores (OSN, Ceph); keys in object_store_keys.",
    )
    tags: dict[str, str] = Field(default_factory=dict)

    def explicit_images(self) -> ImageRefs | None:
        """The images named in this config (None when they come from the bootstrap stack)."""
        if self.gateway.image is None or self.gateway.server_image is None:
            return None
        gpu = self.ecs.gpu.image
        return ImageRefs(
            worker=self.gateway.image.reference,
            gateway=self.gateway.server_image.reference,
            worker_gpu=gpu.reference if gpu else None,
        )

    def team(self, name: str) -> Team:
        for team in self.teams:
            if team.name == name:
                return team
        raise KeyError(f"unknown team {name!r}; teams: {', '.join(t.name for t in self.teams)}")

    @property
    def team_names(self) -> list[str]:
        return [t.name for t in self.teams]


# --------------------------------------------------------------------------- loading


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """Walk the model along an error location to list the keys allowed at its parent."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return None
        annotation = field.annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                current = candidate
                break
            for inner in getattr(candidate, "__args__", ()):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    current = inner
                    break
    fields = getattr(current, "model_fields", None)
    return sorted(fields) if fields else None


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def format_validation_error(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = _format_loc(loc)
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc)
            msg = "unknown key" + (f"; allowed keys: {', '.join(allowed)}" if allowed else "")
        elif err["type"] == "missing":
            msg = "required key is missing"
        problems.append(f"{path}: {msg}")
    return problems


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

    def valid(model: type[_Model], value: Any, default: Any) -> Any:
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


def decode_config_value(value: Any) -> Any:
    """A config value as the engine hands it (a string; objects as JSON) back to its YAML type.
    A bare number stays a string: no top-level key is numeric, and an account id such as
    "111122223333" must not become an int."""
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return (
            value if isinstance(decoded, int | float) and not isinstance(decoded, bool) else decoded
        )
    return value


_decode = decode_config_value


SECRET_KEYS = frozenset(
    {"gateway_simple_password", "gateway_jupyterhub_api_token", "object_store_keys"}
)
"""Keys that may only be set with ``pulumi config set --secret`` and are not part of the model
(the program reads them with ``require_secret``)."""


def split_namespace(raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Keep the ``dask-platform:`` keys (namespace stripped, secret keys dropped); other
    namespaces (aws:, kubernetes:, ...) pass untouched."""
    data: dict[str, Any] = {}
    for key, value in raw.items():
        namespace, _, name = key.partition(":")
        if not name:
            raise StackConfigError(
                [f"{key}: config keys must be namespaced, e.g. {NAMESPACE}:{key}"], source
            )
        if namespace == NAMESPACE and name not in SECRET_KEYS:
            data[name] = _decode(value)
    return data


def secret_problems(raw: Mapping[str, Any], is_secret: Callable[[str], bool]) -> list[str]:
    """Secret keys must be encrypted, and present exactly when the config needs them."""
    problems = []
    for name in sorted(SECRET_KEYS):
        key = f"{NAMESPACE}:{name}"
        if key in raw and not is_secret(key):
            problems.append(
                f"{name}: stored in plain text; remove it and run "
                f"`pulumi config set --secret {name}` so it is encrypted"
            )
    gateway = _decode(raw.get(f"{NAMESPACE}:gateway"))
    auth = gateway.get("auth") if isinstance(gateway, dict) else None
    auth_type = auth.get("type") if isinstance(auth, dict) else None
    for name, needed_by in (
        ("gateway_simple_password", "simple"),
        # The JupyterHub API token of the hub's `dask-gateway` service; the program puts it in
        # a Secret the API pod reads (nothing else creates one in the gateway namespace).
        ("gateway_jupyterhub_api_token", "jupyterhub"),
    ):
        present = f"{NAMESPACE}:{name}" in raw
        if auth_type == needed_by and not present:
            problems.append(
                f"{name}: required when gateway.auth.type is {needed_by!r}; set it with "
                f"`pulumi config set --secret {name}`"
            )
        if present and auth_type != needed_by:
            problems.append(f"{name}: only used when gateway.auth.type is {needed_by!r}; remove it")
    stores = _decode(raw.get(f"{NAMESPACE}:object_stores"))
    has_keys = f"{NAMESPACE}:object_store_keys" in raw
    if isinstance(stores, list) and stores and not has_keys:
        problems.append(
            "object_store_keys: required when object_stores is set; set the key pairs with "
            "`pulumi config set --secret object_store_keys "
            '\'{"<store>": {"access_key_id": "...", "secret_access_key": "..."}}\'`'
        )
    if has_keys and not (isinstance(stores, list) and stores):
        problems.append("object_store_keys: only used when object_stores is set; remove it")
    return problems


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


def sibling_problems(project_dir: Path, stack: str, data: Mapping[str, Any]) -> list[str]:
    """Cross-stack rules: ``data`` (this stack's keys) against the other committed stacks of
    ``project_dir``, read from their files."""
    stacks: dict[str, Mapping[str, Any]] = {}
    for other in list_stacks(project_dir):
        if other == stack:
            continue
        try:
            stacks[other] = split_namespace(read_stack_file(project_dir, other), other)
        except StackConfigError:
            continue  # that stack's own load reports it
    stacks[stack] = data
    return [p for p in regional_owner_problems(stacks) if stack in p]


def require_account(expected: str, actual: str) -> str:
    """The deploying credentials' account must be the one the stack config names (``account_id``);
    ValueError otherwise, which fails ``pulumi up`` before it creates anything."""
    if actual != expected:
        raise ValueError(
            f"account_id: this stack deploys to account {expected}, but the credentials are for "
            f"account {actual}; switch credentials (AWS_PROFILE) or fix account_id"
        )
    return actual


def stack_file(project_dir: Path, stack: str) -> Path:
    return project_dir / f"Pulumi.{stack}.yaml"


def list_stacks(project_dir: Path) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))


def read_stack_file(project_dir: Path, stack: str) -> dict[str, Any]:
    """The raw ``config:`` mapping of a committed stack file (namespaced keys)."""
    path = stack_file(project_dir, stack)
    if not path.is_file():
        known = ", ".join(list_stacks(project_dir)) or "none"
        raise StackConfigError([f"stack {stack!r}: no {path.name} (committed stacks: {known})"])
    return read_stack_path(path)


def read_stack_path(path: Path) -> dict[str, Any]:
    """The raw ``config:`` mapping of a stack-format YAML file at ``path``."""
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise StackConfigError([f"(file): not valid YAML: {exc}"], path.name) from None
    if not isinstance(document, dict):
        raise StackConfigError(["(top level): must be a mapping with a 'config:' key"], path.name)
    allowed = {"config", "secretsprovider", "encryptedkey", "encryptionsalt"}
    unknown = sorted(set(document) - allowed)
    if unknown:
        raise StackConfigError(
            [f"{k}: unknown top-level key; allowed: {', '.join(sorted(allowed))}" for k in unknown],
            path.name,
        )
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise StackConfigError(["config: must be a mapping of namespaced keys"], path.name)
    return config


def _file_value_is_secret(raw: Mapping[str, Any]) -> Callable[[str], bool]:
    def is_secret(key: str) -> bool:
        value = raw.get(key)
        return isinstance(value, dict) and set(value) == {"secure"}

    return is_secret


def load_stack_path(path: Path) -> StackConfig:
    """Validate a stack-format file without the Pulumi engine (secrets stay encrypted)."""
    raw = read_stack_path(path)
    return validate_stack_config(
        split_namespace(raw, path.name),
        path.name,
        extra_problems=secret_problems(raw, _file_value_is_secret(raw)),
    )


def load_stack_file(project_dir: Path, stack: str) -> StackConfig:
    """Validate the committed ``Pulumi.<stack>.yaml`` of ``project_dir`` (with the rules that
    span its sibling stacks)."""
    raw = read_stack_file(project_dir, stack)  # a clear error for an unknown stack name
    path = stack_file(project_dir, stack)
    data = split_namespace(raw, path.name)
    return validate_stack_config(
        data,
        path.name,
        extra_problems=secret_problems(raw, _file_value_is_secret(raw))
        + sibling_problems(project_dir, stack, data),
    )


def load_from_pulumi() -> StackConfig:
    """Load the running Pulumi program's config (engine or mocks) into a StackConfig.

    Reads every configured key, so an unknown ``dask-platform:`` key is reported rather than
    ignored (``pulumi.Config.get`` only ever sees the keys it is asked for).
    """
    import pulumi
    from pulumi.runtime import config as runtime_config

    raw: dict[str, Any] = dict(runtime_config.get_config_env())
    raw.update(runtime_config.CONFIG.get())
    source = f"Pulumi.{pulumi.get_stack()}.yaml"
    secret_keys = set(runtime_config.get_config_secret_keys_env())

    def is_secret(key: str) -> bool:
        return key in secret_keys or runtime_config.is_config_secret(key)

    from dask_platform.project import project_root

    data = split_namespace(raw, source)
    return validate_stack_config(
        data,
        source,
        extra_problems=secret_problems(raw, is_secret)
        + sibling_problems(project_root(), pulumi.get_stack(), data),
    )
