"""What the gateway needs to know about a stack, and the Helm values that carry it.

``gateway_settings`` is the JSON the gateway config file (helm/dask-gateway/gateway_config.py)
reads from ``DASK_PLATFORM_GATEWAY_SETTINGS``; ``render_values`` layers the committed values
files with the stack's settings (`plan` checks them against the upstream chart's schema:
:func:`dask_platform.charts.values_schema_problems`). The Pulumi program and the local
platform both call these.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from dask_platform import placement
from dask_platform.charts import merge_values
from dask_platform.config.models import ImageRefs, StackConfig
from dask_platform.credentials import check_environment
from dask_platform.iam import service_account_name
from dask_platform.object_store_deploy import (
    gateway_object_store_settings,
    object_store_helm_values,
)
from dask_platform.project import project_root


def helm_dir() -> Path:
    """``helm/dask-gateway/`` of the checkout: the values files and the gateway config file."""
    return project_root() / "helm" / "dask-gateway"


def gateway_config_file() -> Path:
    """The gateway config file that becomes ``gateway.extraConfig`` (helm/dask-gateway/)."""
    return helm_dir() / "gateway_config.py"


SETTINGS_ENV = "DASK_PLATFORM_GATEWAY_SETTINGS"
OIDC_AUTHENTICATOR = "dask_platform.oidc.gateway.OIDCAuthenticator"
JUPYTERHUB_TOKEN_SECRET = "dask-gateway-jupyterhub-api-token"  # noqa: S105 (a Secret's name)
"""The Secret (in the gateway namespace) the Pulumi program creates from the Pulumi secret
``gateway_jupyterhub_api_token``; the chart mounts its key into the API pod."""
JUPYTERHUB_TOKEN_KEY = "jupyterhub-api-token"  # noqa: S105 (a key name, not a token)
TLS_NEGOTIATION_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
"""TLS 1.3 and 1.2 only on the NLB's TLS listener.
ref: https://docs.aws.amazon.com/elasticloadbalancing/latest/network/describe-ssl-policies.html"""
HTTPS_PORT = 443


def stack_images(config: StackConfig, images: ImageRefs | None = None) -> ImageRefs:
    """The images a stack runs: ``images`` (read from the bootstrap stack by the program) or the
    ones its config names. ValueError when neither is there."""
    found = images or config.explicit_images()
    if found is None:
        raise ValueError(
            f"images come from the bootstrap stack {config.images.bootstrap_stack}: pass its "
            "`images` output (ImageRefs)"
        )
    return found


def gateway_settings(config: StackConfig, images: ImageRefs | None = None) -> dict[str, Any]:
    gw = config.gateway
    check_environment(gw.default_environment, field="gateway.default_environment")
    return {
        "teams": {
            team.name: {
                "groups": list(team.groups),
                "service_account": service_account_name(team.name),
            }
            for team in config.teams
        },
        "worker_cores": gw.worker_cores.model_dump(),
        "worker_memory_gib": gw.worker_memory_gib.model_dump(),
        "idle_timeout_minutes": gw.idle_timeout_minutes,
        "cluster_max_workers": gw.cluster_max_workers,
        "cluster_max_cores": gw.cluster_max_cores,
        "cluster_max_memory_gib": gw.cluster_max_memory_gib,
        "image": stack_images(config, images).worker,
        # Fair share (dask_platform.gateway_limits), resolved per team:
        # {team: {"per_user": {clusters, worker_cores, worker_memory_gib}, "per_team": {...}}}
        "no_client_timeout_minutes": config.limits.no_client_timeout_minutes,
        "limits": {
            team: {
                "per_user": per_user.model_dump(),
                "per_team": per_team.model_dump(),
            }
            for team in config.team_names
            for per_user, per_team in [config.limits.for_team(team)]
        },
        "default_environment": dict(gw.default_environment),
        # scratch_bucket, object_stores, aws_config_file: see dask_platform.object_stores
        **gateway_object_store_settings(config.scratch.bucket_name, config.object_stores),
    }


def _load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: must be a mapping")
    return data


def committed_values(overlay: str | None) -> dict[str, Any]:
    directory = helm_dir()
    values = _load_yaml(directory / "values.yaml")
    if overlay:
        path = directory / f"values.{overlay}.yaml"
        if not path.is_file():
            known = sorted(p.name for p in directory.glob("values.*.yaml"))
            raise ValueError(
                f"gateway.values_overlay: no {path.name} in helm/dask-gateway "
                f"(available: {', '.join(known) or 'none'})"
            )
        values = merge_values(values, _load_yaml(path))
    return values


def _auth_values(config: StackConfig) -> dict[str, Any]:
    auth = config.gateway.auth
    if auth.type == "custom":
        assert auth.oidc is not None
        return {
            "type": "custom",
            "custom": {
                "class": OIDC_AUTHENTICATOR,
                "config": {
                    "issuer": auth.oidc.issuer,
                    "audience": auth.oidc.audience,
                    "groups_claim": auth.oidc.groups_claim,
                },
            },
        }
    if auth.type == "jupyterhub":
        # The API token comes from a Secret the program creates from a Pulumi secret; only the
        # Secret's name reaches the values (the chart puts it in a secretKeyRef).
        jupyterhub: dict[str, Any] = {
            "apiTokenFromSecretName": JUPYTERHUB_TOKEN_SECRET,
            "apiTokenFromSecretKey": JUPYTERHUB_TOKEN_KEY,
        }
        if auth.jupyterhub_api_url:
            jupyterhub["apiUrl"] = auth.jupyterhub_api_url
        return {"type": "jupyterhub", "jupyterhub": jupyterhub}
    # simple: the password is a Pulumi secret injected by the program, never in a values file.
    return {"type": auth.type}


def backend_placement() -> dict[str, Any]:
    """``gateway.backend`` pod placement from :mod:`dask_platform.placement`: schedulers on the
    on-demand "schedulers" NodePool, workers on the spot "workers" NodePool.

    ref: https://karpenter.sh/docs/concepts/scheduling/
    """
    return {
        "scheduler": {
            "extraPodConfig": {
                "nodeSelector": {
                    placement.NODE_ROLE_LABEL: placement.SCHEDULERS_ROLE,
                    # Never spot: losing the scheduler loses the whole Dask cluster.
                    placement.CAPACITY_TYPE_LABEL: "on-demand",
                },
                "tolerations": [placement.toleration(placement.SCHEDULER_TAINT_KEY)],
            }
        },
        "worker": {
            "extraPodConfig": {
                "nodeSelector": {placement.NODE_ROLE_LABEL: placement.WORKERS_ROLE},
                "tolerations": [placement.toleration(placement.WORKER_TAINT_KEY)],
            }
        },
    }


def proxy_service_values(config: StackConfig) -> dict[str, Any]:
    """``traefik.service``: type, internal NLB annotations, TLS on the web port.

    The in-tree AWS load balancer controller (EKS's cloud provider) reads these annotations:
    ``aws-load-balancer-type: nlb`` + ``aws-load-balancer-internal`` give an internal NLB; with
    a certificate, ``aws-load-balancer-ssl-cert`` + ``-ssl-ports: web`` make the web port a TLS
    listener (ACM certificate, the key never enters the cluster) while the scheduler port stays
    TCP, so clients' TLS to their scheduler passes through to Traefik's SNI routing.

    ref: https://kubernetes.io/docs/reference/labels-annotations-taints/#service-beta-kubernetes-io-aws-load-balancer-internal
    ref: https://github.com/kubernetes/cloud-provider-aws/blob/master/pkg/providers/v1/aws.go
    (EnsureLoadBalancer: certificate + ssl-ports -> TLS listener on an NLB)
    """
    gw = config.gateway
    service: dict[str, Any] = {"type": gw.service_type}
    if gw.service_type == "LoadBalancer":
        annotations = {
            "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
            "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
        }
        if gw.tls is not None:
            annotations.update(
                {
                    "service.beta.kubernetes.io/aws-load-balancer-ssl-cert": (
                        gw.tls.certificate_arn
                    ),
                    "service.beta.kubernetes.io/aws-load-balancer-ssl-ports": "web",
                    "service.beta.kubernetes.io/aws-load-balancer-ssl-negotiation-policy": (
                        TLS_NEGOTIATION_POLICY
                    ),
                }
            )
            service["ports"] = {"web": {"port": HTTPS_PORT}}
        service["annotations"] = annotations
        # Only nodes running a proxy pod are NLB targets (health-checked on the Service's
        # healthCheckNodePort). With the default "Cluster" policy every node is a target,
        # Karpenter's spot and short-lived worker nodes included, and client-to-scheduler
        # connections routed through one die when it is consolidated or interrupted.
        # ref: https://kubernetes.io/docs/tasks/access-application-cluster/create-external-load-balancer/#preserving-the-client-source-ip
        spec: dict[str, Any] = {"externalTrafficPolicy": "Local"}
        if config.network.ingress_cidrs:
            spec["loadBalancerSourceRanges"] = list(config.network.ingress_cidrs)
        service["spec"] = spec
    return service


def render_values(config: StackConfig, images: ImageRefs | None = None) -> dict[str, Any]:
    """The complete Helm values for a stack (without secrets: those are added by the program).
    ``images``: the bootstrap stack's image references, when the config names none."""
    gw = config.gateway
    refs = stack_images(config, images)
    values = committed_values(gw.values_overlay)
    generated: dict[str, Any] = {
        "gateway": {
            "auth": _auth_values(config),
            "env": [
                {
                    "name": SETTINGS_ENV,
                    "value": json.dumps(gateway_settings(config, refs), sort_keys=True),
                }
            ],
            "extraConfig": {"50-dask-platform": gateway_config_file().read_text()},
            "backend": {
                "image": ImageRefs.split(refs.worker),
                "namespace": gw.namespace,
                **backend_placement(),
            },
        },
        "traefik": {"service": proxy_service_values(config)},
    }
    # The API server and the controller both run dask-gateway-server, and both load this
    # platform's code (the options handler imports dask_platform).
    server = ImageRefs.split(refs.gateway)
    generated["gateway"]["image"] = server
    generated["controller"] = {"image": server}
    # The platform AWS config mounted into scheduler and worker pods (object stores).
    generated = merge_values(generated, object_store_helm_values(config.object_stores))
    return merge_values(values, generated)


def proxy_addresses(values: dict[str, Any], host: str) -> tuple[str, str]:
    """``(gateway_address, gateway_proxy_address)`` of the proxy Service at ``host`` (with TLS:
    ``gateway.tls.hostname``, the name the certificate covers), from the values that configure
    it: ``https://`` when the web port has a TLS listener, and the scheduler proxy's own port
    as ``gateway://host:port``."""
    service = values["traefik"]["service"]
    ports = service["ports"]
    annotations = service.get("annotations") or {}
    tls = "service.beta.kubernetes.io/aws-load-balancer-ssl-cert" in annotations
    scheme, default_port = ("https", HTTPS_PORT) if tls else ("http", 80)
    web = int(ports["web"]["port"])
    address = f"{scheme}://{host}" if web == default_port else f"{scheme}://{host}:{web}"
    return address, f"gateway://{host}:{int(ports['tcp']['port'])}"
