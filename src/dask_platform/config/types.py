"""The constrained value types of the stack configuration and the base of every config model.

Each type is ``Annotated[str, AfterValidator(...)]`` (or a ``Literal``) whose error names the
allowed form and echoes the bad value, e.g. ``must be a 12-digit AWS account id (got '12')``;
:func:`dask_platform.config.errors.format_validation_error` puts the key path in front.

ref: https://docs.pydantic.dev/latest/concepts/types/#composing-types-via-annotated
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict


class ConfigModel(BaseModel):
    """The base of every config model: unknown keys are errors (a typo is never a silent
    default), values are immutable, strings are stripped."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def matching(pattern: str, what: str) -> Callable[[str], str]:
    """A validator: the whole value must match ``pattern``; else ``must be <what> (got ...)``."""
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
        matching(
            r"[a-z][a-z0-9-]{0,18}[a-z0-9]",
            "2-20 characters of a-z, 0-9 and '-', starting with a letter and not ending in '-' "
            "(it becomes an S3 prefix, an IAM role name and a Kubernetes ServiceAccount name)",
        )
    ),
]
BucketName = Annotated[
    str,
    AfterValidator(
        matching(
            r"(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
            "a valid S3 bucket name: 3-63 characters of a-z, 0-9, '.' and '-', starting and "
            "ending with a letter or digit",
        )
    ),
]
Region = Annotated[
    str,
    AfterValidator(
        matching(
            REGION_PATTERN,
            "an AWS commercial-partition region such as us-west-2 or eu-central-1",
        )
    ),
]
InstanceType = Annotated[
    str,
    AfterValidator(
        matching(r"[a-z][a-z0-9-]*\.[a-z0-9]+", "an EC2 instance type such as m6i.xlarge")
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
        matching(r"\d{4}\.\d{1,2}\.\d+", "a pinned CalVer chart version such as 2026.3.0")
    ),
]
ImageTag = Annotated[
    str,
    AfterValidator(
        matching(
            r"(?!latest$)[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}",
            "a pinned image tag (not 'latest'): letters, digits, '_', '.', '-'",
        )
    ),
]
ImageName = Annotated[
    str,
    AfterValidator(
        matching(
            r"[a-z0-9]+([._-][a-z0-9]+)*(:\d+)?(/[a-z0-9]+([._/-][a-z0-9]+)*)*",
            "an image repository such as ghcr.io/org/dask-worker (no tag)",
        )
    ),
]


CapacityType = Literal["spot", "on-demand"]
Architecture = Literal["amd64", "arm64"]
Duration = Annotated[
    str,
    AfterValidator(
        matching(
            r"([0-9]+(s|m|h))+",
            "a duration of whole seconds, minutes or hours such as 30s, 5m or 720h "
            "(Karpenter's format)",
        )
    ),
]
LabelValue = Annotated[
    str,
    AfterValidator(matching(r"[a-z0-9][a-z0-9-]{0,30}", "an instance-type label value (m, m6i)")),
]


IamRoleArn = Annotated[
    str,
    AfterValidator(
        matching(
            r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]{1,512}",
            "an IAM role ARN such as arn:aws:iam::111122223333:role/platform-admins",
        )
    ),
]
AccountId = Annotated[str, AfterValidator(matching(r"\d{12}", "a 12-digit AWS account id"))]
AddonVersion = Annotated[
    str,
    AfterValidator(
        matching(
            r"v\d+\.\d+\.\d+-eksbuild\.\d+", "an EKS add-on version such as v1.19.2-eksbuild.1"
        )
    ),
]


LogType = Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]
ALL_LOG_TYPES: tuple[LogType, ...] = (
    "api",
    "audit",
    "authenticator",
    "controllerManager",
    "scheduler",
)


AuthType = Literal["simple", "kerberos", "jupyterhub", "custom"]

RepositoryPrefix = Annotated[
    str,
    AfterValidator(
        matching(
            r"[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*",
            "an ECR repository namespace such as dask-platform or earth/dask: lowercase "
            "letters, digits, '.', '_', '-', segments separated by '/'",
        )
    ),
]


BOOTSTRAP_STACK_PATTERN = r"[A-Za-z0-9_.-]+/dask-platform-bootstrap/[A-Za-z0-9_.-]+"
BootstrapStackName = Annotated[
    str,
    AfterValidator(
        matching(
            BOOTSTRAP_STACK_PATTERN,
            "a Pulumi stack name <organization>/dask-platform-bootstrap/<stack>",
        )
    ),
]
AmiVersion = Annotated[
    str,
    AfterValidator(
        matching(r"latest|v\d{8}", "'latest' or an AL2023 EKS AMI release such as v20251120")
    ),
]
DnsLabel = Annotated[str, AfterValidator(matching(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", "a DNS label"))]

# Object stores (dask_platform.object_stores): S3-compatible stores outside AWS S3.

AddressingStyle = Literal["auto", "virtual", "path"]


def _endpoint_url(value: str) -> str:
    """An http(s) URL with a host and nothing a client would not send as an endpoint."""
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
        matching(
            r"(?!default$)[a-z][a-z0-9-]{0,38}[a-z0-9]",  # [profile default] is every client's
            "2-40 characters of a-z, 0-9 and '-', starting with a letter, not 'default' "
            "(the profile name users pass, e.g. osn-renci; part of the Secrets Manager name)",
        )
    ),
]
StoreRegion = Annotated[
    str,
    AfterValidator(
        matching(
            r"[a-z0-9][a-z0-9-]{0,31}",
            "a signing region such as us-east-1 (Ceph/OSN often accept any; 1-32 of a-z0-9-)",
        )
    ),
]
EndpointUrl = Annotated[str, AfterValidator(_endpoint_url)]
