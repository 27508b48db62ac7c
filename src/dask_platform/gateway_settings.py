"""What the gateway needs to know about a stack, and the Helm values that carry it.

``gateway_settings`` is the JSON the gateway config file (helm/dask-gateway/gateway_config.py)
reads from ``DASK_PLATFORM_GATEWAY_SETTINGS``; ``render_values`` layers the committed values
files with the stack's settings; ``validate_values`` checks the result against the upstream
chart's schema. The Pulumi program and the local platform both call these.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from dask_platform.credentials import check_environment
from dask_platform.iam import service_account_name
from dask_platform.object_stores import gateway_object_store_settings, object_store_helm_values
from dask_platform.stack_config import SUPPORTED_CHART_VERSION, StackConfig

REPO_DIR = Path(__file__).resolve().parents[2]
HELM_DIR = REPO_DIR / "helm" / "dask-gateway"
GATEWAY_CONFIG_FILE = HELM_DIR / "gateway_config.py"
SETTINGS_ENV = "DASK_PLATFORM_GATEWAY_SETTINGS"
OIDC_AUTHENTICATOR = "dask_platform.oidc.gateway.OIDCAuthenticator"


def gateway_settings(config: StackConfig) -> dict[str, Any]:
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
        "image": gw.image.reference,
        "default_environment": dict(gw.default_environment),
        # scratch_bucket, object_stores, aws_config_file: see dask_platform.object_stores
        **gateway_object_store_settings(config.scratch.bucket_name, config.object_stores),
    }


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: must be a mapping")
    return data


def committed_values(overlay: str | None) -> dict[str, Any]:
    values = _load_yaml(HELM_DIR / "values.yaml")
    if overlay:
        path = HELM_DIR / f"values.{overlay}.yaml"
        if not path.is_file():
            known = sorted(p.name for p in HELM_DIR.glob("values.*.yaml"))
            raise ValueError(
                f"gateway.values_overlay: no {path.name} in helm/dask-gateway "
                f"(available: {', '.join(known) or 'none'})"
            )
        values = _merge(values, _load_yaml(path))
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
        values: dict[str, Any] = {"type": "jupyterhub"}
        if auth.jupyterhub_api_url:
            values["jupyterhub"] = {"apiUrl": auth.jupyterhub_api_url}
        return values
    # simple: the password is a Pulumi secret injected by the program, never in a values file.
    return {"type": auth.type}


def render_values(config: StackConfig) -> dict[str, Any]:
    """The complete Helm values for a stack (without secrets: those are added by the program)."""
    gw = config.gateway
    values = committed_values(gw.values_overlay)
    generated: dict[str, Any] = {
        "gateway": {
            "auth": _auth_values(config),
            "env": [
                {
                    "name": SETTINGS_ENV,
                    "value": json.dumps(gateway_settings(config), sort_keys=True),
                }
            ],
            "extraConfig": {"50-dask-platform": GATEWAY_CONFIG_FILE.read_text()},
            "backend": {
                "image": {"name": gw.image.name, "tag": gw.image.tag},
                "namespace": gw.namespace,
            },
        },
        "traefik": {"service": {"type": gw.service_type}},
    }
    # The API server and the controller both run dask-gateway-server, and both load this
    # platform's code (the options handler imports dask_platform).
    server = {"name": gw.server_image.name, "tag": gw.server_image.tag}
    generated["gateway"]["image"] = server
    generated["controller"] = {"image": server}
    if gw.service_type == "LoadBalancer":
        # Internal NLB; reachable only from the VPC and the CIDRs the stack opens.
        # ref: https://kubernetes-sigs.github.io/aws-load-balancer-controller/latest/guide/service/annotations/
        generated["traefik"]["service"]["annotations"] = {
            "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
            "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
        }
        if config.network.ingress_cidrs:
            generated["traefik"]["service"]["spec"] = {
                "loadBalancerSourceRanges": list(config.network.ingress_cidrs)
            }
    # The platform AWS config mounted into scheduler and worker pods (object stores).
    generated = _merge(generated, object_store_helm_values(config.object_stores))
    return _merge(values, generated)


def upstream_chart_dir() -> Path:
    """Where the pinned upstream chart's values.yaml and values.schema.yaml are kept.

    DASK_GATEWAY_CHART_DIR if set; else the workspace's shared/upstream/dask-gateway-chart
    beside this checkout (../shared, or /work/shared for a clone made elsewhere). The files are
    the upstream project's, read for validation and deliberately not vendored here.
    """
    override = os.environ.get("DASK_GATEWAY_CHART_DIR")
    if override:
        return Path(override)
    candidates = [
        REPO_DIR.parent / "shared" / "upstream" / "dask-gateway-chart",
        Path("/work/shared/upstream/dask-gateway-chart"),
    ]
    for candidate in candidates:
        if (candidate / "values.schema.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        "the upstream dask-gateway chart (values.yaml, values.schema.yaml at tag "
        f"{SUPPORTED_CHART_VERSION}) was not found in {', '.join(map(str, candidates))}; "
        "set DASK_GATEWAY_CHART_DIR to its directory"
    )


def chart_schema() -> dict[str, Any]:
    """The upstream chart's values schema (YAML, as the chart repository keeps it)."""
    return _load_yaml(upstream_chart_dir() / "values.schema.yaml")


def chart_defaults() -> dict[str, Any]:
    """The chart's own values.yaml: Helm merges user values over it before validating."""
    return _load_yaml(upstream_chart_dir() / "values.yaml")


def validate_values(values: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Every schema violation, as ``path: message`` lines (empty when valid)."""
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(values), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        problems.append(f"{path}: {error.message}")
    return problems
