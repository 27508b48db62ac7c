"""Dask Gateway: its namespace, one ServiceAccount per team bound to the team's IAM role (IRSA),
the Secret its authenticator needs (if any), and the upstream dask-gateway Helm chart, pinned,
configured by helm/dask-gateway/."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from dask_platform.gateway_pods import GATEWAY_RELEASE
from dask_platform.gateway_settings import (
    JUPYTERHUB_TOKEN_KEY,
    JUPYTERHUB_TOKEN_SECRET,
    proxy_addresses,
)
from dask_platform.iam import service_account_name

CHART_REPOSITORY = "https://helm.dask.org"
RELEASE_NAME = GATEWAY_RELEASE
# The chart names the proxy Service traefik-<fullname>; fullname is the release name when it
# already contains the chart name.
PROXY_SERVICE = f"traefik-{RELEASE_NAME}"


@dataclass
class DaskGatewayArgs:
    namespace: str
    chart_version: str
    team_role_arns: Mapping[str, pulumi.Input[str]]
    values: pulumi.Input[dict[str, Any]]  # an Output when images come from the bootstrap stack
    hostname: str | None = None
    """The gateway's DNS name (gateway.tls.hostname): the exported addresses use it."""
    simple_password: pulumi.Input[str] | None = None
    jupyterhub_api_token: pulumi.Input[str] | None = None
    """The hub's token for its `dask-gateway` service (a Pulumi secret), with auth jupyterhub."""


class DaskGateway(pulumi.ComponentResource):
    """The gateway users call `Gateway().new_cluster()` against."""

    def __init__(
        self, name: str, args: DaskGatewayArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dask-platform:gateway:DaskGateway", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.namespace,
                labels={"pod-security.kubernetes.io/enforce": "baseline"},
            ),
            opts=child,
        )
        ns_name = self.namespace.metadata.name

        # The EKS pod-identity webhook reads this annotation and injects AWS_ROLE_ARN and a
        # projected token into every pod running as the ServiceAccount.
        # ref: https://docs.aws.amazon.com/eks/latest/userguide/associate-service-account-role.html
        self.service_accounts: dict[str, k8s.core.v1.ServiceAccount] = {}
        for team, role_arn in args.team_role_arns.items():
            self.service_accounts[team] = k8s.core.v1.ServiceAccount(
                f"{name}-sa-{team}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=service_account_name(team),
                    namespace=ns_name,
                    annotations={
                        "eks.amazonaws.com/role-arn": role_arn,
                        "eks.amazonaws.com/sts-regional-endpoints": "true",
                        "eks.amazonaws.com/token-expiration": "3600",
                    },
                    labels={"dask-platform/team": team},
                ),
                # Pods never need the Kubernetes API token of this account.
                automount_service_account_token=False,
                opts=child,
            )

        values: Any = args.values
        if args.simple_password is not None:
            # The shared password is a Pulumi secret: it reaches the release encrypted in state
            # and never appears in a committed values file.
            values = pulumi.Output.all(
                pulumi.Output.from_input(args.values), pulumi.Output.secret(args.simple_password)
            ).apply(lambda pair: _with_password(pair[0], pair[1]))

        # With JupyterHub auth the API pod reads the hub's service token from a Secret (the values
        # name it; they never carry the token). Nothing else creates one in this namespace.
        # ref: https://gateway.dask.org/install-kube.html#authenticating-with-jupyterhub
        self.auth_secret: k8s.core.v1.Secret | None = None
        if args.jupyterhub_api_token is not None:
            self.auth_secret = k8s.core.v1.Secret(
                f"{name}-jupyterhub-api-token",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=JUPYTERHUB_TOKEN_SECRET, namespace=ns_name
                ),
                type="Opaque",
                string_data={JUPYTERHUB_TOKEN_KEY: pulumi.Output.secret(args.jupyterhub_api_token)},
                opts=child,
            )
        release_depends: list[pulumi.Resource] = [*self.service_accounts.values()]
        if self.auth_secret is not None:
            release_depends.append(self.auth_secret)

        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=RELEASE_NAME,
            chart="dask-gateway",
            version=args.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPOSITORY),
            namespace=ns_name,
            values=values,
            atomic=True,
            cleanup_on_fail=True,
            timeout=600,
            opts=pulumi.ResourceOptions(parent=self, depends_on=release_depends),
        )

        self.proxy_service = k8s.core.v1.Service.get(
            f"{name}-proxy",
            pulumi.Output.concat(self.release.status.namespace, "/", PROXY_SERVICE),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]),
        )
        host = self.proxy_service.status.apply(_load_balancer_host)
        internal = pulumi.Output.concat(PROXY_SERVICE, ".", ns_name, ".svc.cluster.local")
        # Scheme and ports from the values that configure the proxy Service (TLS on the web
        # port with a certificate; the scheduler proxy on its own port).
        addresses = pulumi.Output.all(host, internal, args.values).apply(
            lambda h: proxy_addresses(h[2], args.hostname or h[0] or h[1])
        )
        self.address = addresses.apply(lambda a: a[0])
        self.proxy_address = addresses.apply(lambda a: a[1])
        self.register_outputs(
            {
                "address": self.address,
                "proxy_address": self.proxy_address,
                "namespace": ns_name,
            }
        )


def _load_balancer_host(status: Any) -> str | None:
    ingress = (getattr(status, "load_balancer", None) or {}) and status.load_balancer.ingress
    if not ingress:
        return None
    return ingress[0].hostname or ingress[0].ip


def _with_password(values: dict[str, Any], password: str) -> dict[str, Any]:
    gateway = dict(values.get("gateway", {}))
    auth = dict(gateway.get("auth", {}))
    auth["simple"] = {"password": password}
    gateway["auth"] = auth
    return {**values, "gateway": gateway}
