"""The dask-gateway deployment: chart, authentication, images, per-cluster options and limits.

ref: https://gateway.dask.org/install-kube.html (the Helm chart this configures)
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from dask_platform.config.errors import FieldProblems
from dask_platform.config.types import (
    AuthType,
    ChartVersion,
    ConfigModel,
    DnsLabel,
    ImageName,
    ImageTag,
)
from dask_platform.credentials import FORBIDDEN_ENV_VARS

SUPPORTED_CHART_VERSION = "2026.3.0"
"""The dask-gateway Helm chart version this repository's values and gateway config are tested
against (and the dask-gateway client version locked for the images)."""


class Range(ConfigModel):
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


class Oidc(ConfigModel):
    issuer: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] = Field(
        description="The identity provider's issuer URL (Keycloak realm, Cognito, ...)."
    )
    audience: Annotated[str, Field(min_length=1)]
    client_id: Annotated[str, Field(min_length=1)]
    groups_claim: Annotated[str, Field(min_length=1)] = "groups"


class GatewayAuth(ConfigModel):
    type: AuthType = Field(description="One of {simple, kerberos, jupyterhub, custom}.")
    oidc: Oidc | None = Field(
        default=None, description="Required with type 'custom' (the platform's OIDC authenticator)."
    )
    jupyterhub_api_url: str | None = None

    @model_validator(mode="after")
    def _check(self) -> GatewayAuth:
        if self.type == "custom" and self.oidc is None:
            raise FieldProblems(
                [("oidc", "required when type is 'custom' (issuer, audience, client_id)")]
            )
        if self.type != "custom" and self.oidc is not None:
            raise FieldProblems([("oidc", f"only used with type 'custom' (type is {self.type!r})")])
        return self


class Image(ConfigModel):
    name: ImageName
    tag: ImageTag

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.tag}"


class GatewayTls(ConfigModel):
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


class Gateway(ConfigModel):
    chart_version: ChartVersion = SUPPORTED_CHART_VERSION
    namespace: DnsLabel = "dask-gateway"
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
        problems = []
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
                problems.append(
                    (
                        field,
                        f"the scheduler ({scheduler:g}{unit}) plus one maximal worker "
                        f"({worker:g}{unit}) need {scheduler + worker:g}{unit}, above "
                        f"{limit_field} ({limit:g}): a cluster of maximal workers could never "
                        "get one",
                    )
                )
        if self.tls is not None and self.service_type != "LoadBalancer":
            problems.append(
                (
                    "tls",
                    "only used with service_type LoadBalancer (the NLB terminates TLS); "
                    f"service_type is {self.service_type!r}",
                )
            )
        bad = sorted(k for k in self.default_environment if k.upper() in FORBIDDEN_ENV_VARS)
        problems.extend(
            (
                f"default_environment.{key}",
                "must not be set; workers get S3 access from their team role (IRSA), never "
                "from key variables",
            )
            for key in bad
        )
        if problems:
            raise FieldProblems(problems)
        return self
