"""Checks on the scheduler and worker pods dask-gateway-server builds for a stack
(:func:`dask_platform.gateway_pods.build_pods`), each its own function returning
``["<pod>: <problem>", ...]``: Kubernetes schema, ServiceAccount (IRSA), placement and
capacity (NodePool selectors, taints, do-not-disrupt), resources, environment (no AWS key).
:func:`check_pods` renders, loads, builds and checks in one call.
"""

from __future__ import annotations

from typing import Any

from dask_platform import placement
from dask_platform.config.models import StackConfig
from dask_platform.credentials import FORBIDDEN_ENV_VARS
from dask_platform.gateway_pods import (
    BuiltPod,
    GatewayConfigError,
    build_pods,
    config_file_problems,
    render_gateway,
)
from dask_platform.iam import service_account_name


def _container(built: BuiltPod) -> dict[str, Any]:
    return dict(built.pod["spec"]["containers"][0])


def schema_problems(pods: list[BuiltPod], kubernetes_version: str) -> list[str]:
    """Each pod against the Kubernetes ``kubernetes_version`` Pod schema (strict)."""
    from dask_platform.kube_schema import validate_manifest

    return [f"{b.label}: {p}" for b in pods for p in validate_manifest(b.pod, kubernetes_version)]


def service_account_problems(pods: list[BuiltPod]) -> list[str]:
    """Each pod runs as its team's ServiceAccount (IRSA: the account decides the IAM role)."""
    problems = []
    for built in pods:
        expected = service_account_name(built.team)
        actual = built.pod["spec"].get("serviceAccountName")
        if actual != expected:
            problems.append(f"{built.label}: serviceAccountName is {actual!r}, not {expected!r}")
    return problems


def placement_problems(pods: list[BuiltPod]) -> list[str]:
    """nodeSelector and tolerations are the chart-configured ones (the options handler merges
    into them, never replaces them)."""
    problems = []
    for built in pods:
        spec = built.pod["spec"]
        for key, empty in (("nodeSelector", {}), ("tolerations", [])):
            configured = built.configured_pod_config.get(key, empty)
            actual = spec.get(key, empty)
            missing: Any = (
                {k: v for k, v in configured.items() if actual.get(k) != v}
                if key == "nodeSelector"
                else [t for t in configured if t not in actual]
            )
            if missing:
                problems.append(
                    f"{built.label}: {key} lost the chart-configured {missing!r} (pod has "
                    f"{actual!r}); the options handler must merge, not replace"
                )
    return problems


def _cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def resource_problems(pods: list[BuiltPod]) -> list[str]:
    """requests/limits equal the requested options (workers) or the chart's values
    (schedulers). Quantities as the controller writes them: cores, memory in bytes."""
    problems = []
    for built in pods:
        resources = _container(built).get("resources") or {}
        for kind, (cores, memory) in built.expected_resources.items():
            actual = resources.get(kind) or {}
            try:
                got = (_cpu(str(actual["cpu"])), int(actual["memory"]))
            except (KeyError, ValueError):
                problems.append(f"{built.label}: resources.{kind} is {actual!r}")
                continue
            if abs(got[0] - cores) > 1e-3 or got[1] != memory:
                problems.append(
                    f"{built.label}: resources.{kind} is {got[0]:g} cores, {got[1]} bytes; "
                    f"expected {cores:g} cores, {memory} bytes"
                )
    return problems


def environment_problems(pods: list[BuiltPod]) -> list[str]:
    """No AWS key or identity variable in a container's env (only the EKS webhook sets the
    identity variables, from the ServiceAccount)."""
    from dask_platform.object_stores import AWS_CONFIG_PATH

    # The one identity-related variable the platform itself sets: the AWS config file it
    # mounts (object-store profiles), at exactly that path. Users can never set it.
    platform_set = {("AWS_CONFIG_FILE", AWS_CONFIG_PATH)}
    problems = []
    for built in pods:
        env = [(e["name"], e.get("value")) for e in _container(built).get("env") or []]
        bad = sorted(
            n for n, v in env if n.upper() in FORBIDDEN_ENV_VARS and (n, v) not in platform_set
        )
        if bad:
            problems.append(f"{built.label}: env carries {', '.join(bad)}")
    return problems


def capacity_problems(pods: list[BuiltPod]) -> list[str]:
    """Schedulers select the on-demand "schedulers" NodePool, tolerate its taint and carry
    ``karpenter.sh/do-not-disrupt``; workers select the "workers" NodePool and tolerate its
    taint. A scheduler on spot capacity would lose its whole cluster on an interruption."""
    problems = []
    for built in pods:
        spec = built.pod["spec"]
        selector = spec.get("nodeSelector") or {}
        tolerations = spec.get("tolerations") or []
        if built.component == "scheduler":
            wanted_selector = {
                placement.NODE_ROLE_LABEL: placement.SCHEDULERS_ROLE,
                placement.CAPACITY_TYPE_LABEL: "on-demand",
            }
            taint = placement.SCHEDULER_TAINT_KEY
            annotations = built.pod["metadata"].get("annotations") or {}
            if annotations.get(placement.DO_NOT_DISRUPT_ANNOTATION) != "true":
                problems.append(
                    f'{built.label}: no {placement.DO_NOT_DISRUPT_ANNOTATION}: "true" annotation'
                )
            if any(t.get("key") == placement.WORKER_TAINT_KEY for t in tolerations):
                problems.append(f"{built.label}: tolerates the spot workers' taint")
        else:
            wanted_selector = {placement.NODE_ROLE_LABEL: placement.WORKERS_ROLE}
            taint = placement.WORKER_TAINT_KEY
        for key, value in wanted_selector.items():
            if selector.get(key) != value:
                problems.append(
                    f"{built.label}: nodeSelector {key} is {selector.get(key)!r}, not {value!r}"
                )
        if placement.toleration(taint) not in tolerations:
            problems.append(f"{built.label}: does not tolerate the {taint} taint")
    return problems


def check_built_pods(pods: list[BuiltPod], kubernetes_version: str) -> list[str]:
    """Every check over already-built pods (``[]`` when all pass)."""
    return [
        *schema_problems(pods, kubernetes_version),
        *service_account_problems(pods),
        *placement_problems(pods),
        *resource_problems(pods),
        *environment_problems(pods),
        *capacity_problems(pods),
    ]


def check_pods(config: StackConfig, values: dict[str, Any] | None = None) -> list[str]:
    """Render, load, build and check: every problem as one line (``[]`` when none).

    A config file that does not compile or load is reported as a problem, not raised.
    """
    rendered = render_gateway(config, values)
    problems = config_file_problems(rendered)
    if problems:
        return problems
    try:
        pods = build_pods(config, rendered=rendered)
    except GatewayConfigError as exc:
        return [str(exc)]
    if not pods:
        return ["no pods were built (the stack has no teams)"]
    return check_built_pods(pods, config.eks.kubernetes_version)
