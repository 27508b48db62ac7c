"""The local gateway's overlay: what the EKS pod-identity webhook and the chart do on EKS.

The local gateway runs the chart's rendered ``dask_gateway_config.py`` (the API pod's file:
the chart's lines, then ``helm/dask-gateway/gateway_config.py`` as ``gateway.extraConfig``, the
ONE options handler, unchanged) with a short overlay appended that calls
:func:`configure_local_gateway`, which

* plays the EKS pod-identity webhook: the handler names a ServiceAccount
  (``scheduler_extra_pod_config.serviceAccountName``); on EKS the webhook reads that account's
  ``eks.amazonaws.com/role-arn`` annotation and injects ``AWS_ROLE_ARN`` and
  ``AWS_WEB_IDENTITY_TOKEN_FILE`` into the pod. Here the same mapping (ServiceAccount -> role
  ARN, projected token file) comes from provisioning, plus the emulator's endpoint and region -
  and nothing else AWS-related;
* strips the Kubernetes-only keys the local backend has no trait for (pod config, limits, image);
* gives the local clusters the chart's scheduler (and worker default) sizes from
  ``KubeClusterConfig`` (:data:`CHART_CLUSTER_SIZES`), so the limits count the same scheduler;
* runs the clusters as local processes (UnsafeLocalBackend) with a SQLite state file, password
  auth from the local users file or OIDC bearer tokens from the local identity provider
  (``local.gateway_auth``), and an environment allow-list that lets nothing of the gateway's
  own environment through but PATH and the locale.

ref: https://docs.aws.amazon.com/eks/latest/userguide/pod-configuration.html
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dask_platform.credentials import check_environment
from dask_platform.local.processes import MARKER_ENV

KUBERNETES_ONLY_KEYS = frozenset(
    {
        "scheduler_extra_pod_config",
        "worker_extra_pod_config",
        "worker_cores_limit",
        "worker_memory_limit",
        "scheduler_cores_limit",
        "scheduler_memory_limit",
        "image",
    }
)
INHERITED_ENVIRONMENT = ["PATH", "LANG", "LC_ALL"]
CHART_CLUSTER_SIZES = (
    "scheduler_cores",
    "scheduler_memory",
    "worker_cores",
    "worker_memory",
    "worker_threads",
)
"""The chart's ``KubeClusterConfig`` sizes the local clusters get too (where the chart sets
them): the limits and the validator count the chart's scheduler, so the local one must match."""


class PodIdentityError(RuntimeError):
    pass


def pod_identity_environment(service_account: str, overlay: Mapping[str, Any]) -> dict[str, str]:
    """What the webhook injects for ``service_account`` (raises for an unknown account)."""
    accounts = overlay["service_accounts"]
    if service_account not in accounts:
        raise PodIdentityError(
            f"ServiceAccount {service_account!r} has no role annotation; annotated accounts: "
            f"{', '.join(sorted(accounts))}"
        )
    account = accounts[service_account]
    environment = {
        "AWS_ROLE_ARN": account["role_arn"],
        "AWS_WEB_IDENTITY_TOKEN_FILE": account["token_file"],
        # On EKS these point at the regional AWS endpoints; here at the emulator.
        "AWS_ENDPOINT_URL": overlay["aws_endpoint_url"],
        "AWS_REGION": overlay["region"],
        "AWS_DEFAULT_REGION": overlay["region"],
        MARKER_ENV: overlay["state_dir"],
    }
    if overlay.get("aws_config_file"):
        # The platform AWS config (what EKS mounts) carries the emulator as the default
        # profile's endpoint_url instead: an AWS_ENDPOINT_URL variable would override every
        # object store profile's endpoint_url (environment beats config file in the SDKs).
        del environment["AWS_ENDPOINT_URL"]
        environment["AWS_CONFIG_FILE"] = overlay["aws_config_file"]
    return environment


def apply_pod_identity(config: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Turn the options handler's (Kubernetes) result into the local backend's config."""
    out = {k: v for k, v in config.items() if k not in KUBERNETES_ONLY_KEYS}
    accounts = {
        (config.get(key) or {}).get("serviceAccountName")
        for key in ("scheduler_extra_pod_config", "worker_extra_pod_config")
    }
    if len(accounts) != 1 or None in accounts:
        raise PodIdentityError(
            "the options handler must name one ServiceAccount for scheduler and workers "
            f"(got {sorted(str(a) for a in accounts)})"
        )
    environment = dict(out.get("environment") or {})
    # The platform's own AWS config path (the options handler sets it; users cannot): on EKS
    # the file is mounted there, here it is the state directory's copy (set below).
    environment.pop("AWS_CONFIG_FILE", None)
    # The handler already refused these; checked again because the webhook's variables must
    # be the only AWS identity a worker gets.
    check_environment(environment, field="environment")
    environment.update(pod_identity_environment(accounts.pop() or "", overlay))
    out["environment"] = environment
    return out


def wrap_cluster_options(
    cluster_options: Callable[[Any], Any], overlay: Mapping[str, Any]
) -> Callable[[Any], Any]:
    from dask_gateway_server.options import Options

    def local_cluster_options(user: Any) -> Any:
        options = cluster_options(user)
        handler = options.handler

        def handler_with_pod_identity(opts: Any, user: Any) -> dict[str, Any]:
            return apply_pod_identity(handler(opts, user), overlay)

        return Options(*options.fields, handler=handler_with_pod_identity)

    return local_cluster_options


def configure_local_gateway(c: Any, overlay_path: str) -> None:
    """Apply the local overlay to the traitlets config ``c`` (after the shared config file)."""
    overlay = json.loads(Path(overlay_path).read_text())
    gateway_dir = Path(overlay["gateway_dir"])
    # The platform's limits (dask_platform.gateway_limits) on the local backends too.
    c.DaskGateway.backend_class = "dask_platform.local.limited.LimitedLocalBackend"
    if overlay.get("container_image"):
        # Schedulers and workers as containers of the worker image (dask_platform.local.
        # containers); the UnsafeLocalBackend settings below apply to it as its base class.
        c.DaskGateway.backend_class = "dask_platform.local.limited.LimitedContainerBackend"
        c.ContainerBackend.image = overlay["container_image"]
        c.ContainerBackend.state_dir = overlay["state_dir"]
    c.DaskGateway.address = f"127.0.0.1:{overlay['api_port']}"
    c.Proxy.address = f"127.0.0.1:{overlay['proxy_port']}"
    c.Proxy.tcp_address = f"127.0.0.1:{overlay['proxy_port']}"
    if overlay.get("auth") == "oidc":
        # The authenticator the Helm values name for `auth.type: custom`, with the same keys.
        c.DaskGateway.authenticator_class = "dask_platform.oidc.gateway.OIDCAuthenticator"
        c.OIDCAuthenticator.issuer = overlay["oidc"]["issuer"]
        c.OIDCAuthenticator.audience = overlay["oidc"]["audience"]
        c.OIDCAuthenticator.groups_claim = overlay["oidc"]["groups_claim"]
        c.OIDCAuthenticator.jwks_refetch_seconds = float(overlay["oidc"]["jwks_refetch_seconds"])
    else:
        c.DaskGateway.authenticator_class = "dask_platform.local.auth.LocalPasswordAuthenticator"
        c.LocalPasswordAuthenticator.users_file = overlay["users_file"]
    c.UnsafeLocalBackend.db_url = f"sqlite:///{gateway_dir / 'gateway.sqlite'}"
    # Clusters keep running while the gateway restarts; `local down` stops what is left.
    c.UnsafeLocalBackend.stop_clusters_on_shutdown = False
    c.UnsafeLocalBackend.clusters_directory = str(gateway_dir / "clusters")
    c.UnsafeLocalBackend.inherited_environment = list(INHERITED_ENVIRONMENT)
    # The chart's scheduler (and worker default) sizes, on the local backend's cluster config
    # (dask_platform.local.limited: fractional cores, like KubeClusterConfig). Without this the
    # local scheduler counts dask-gateway's default 1 core against cluster_max_cores.
    for trait in CHART_CLUSTER_SIZES:
        if trait in c.KubeClusterConfig:
            setattr(c.ClusterConfig, trait, c.KubeClusterConfig[trait])
    c.Backend.cluster_options = wrap_cluster_options(c.Backend.cluster_options, overlay)
    if overlay.get("idle_timeout_seconds") is not None:
        c.ClusterConfig.idle_timeout = float(overlay["idle_timeout_seconds"])
    if overlay.get("no_client_timeout_seconds") is not None:
        from dask_platform.no_client import scheduler_command

        c.ClusterConfig.scheduler_cmd = scheduler_command(
            float(overlay["no_client_timeout_seconds"])
        )
    # Local processes start in about a second; fail fast instead of the 10-minute default
    # (dask_platform.local.settings.LocalTimeouts).
    c.UnsafeLocalBackend.cluster_start_timeout = float(overlay["cluster_start_seconds"])
    c.UnsafeLocalBackend.worker_start_timeout = float(overlay["worker_start_seconds"])
