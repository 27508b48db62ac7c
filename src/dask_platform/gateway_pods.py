"""The dask-gateway release as EKS runs it: the chart rendered, its config loaded as the API pod
and the controller load it, and the scheduler and worker pods built by the upstream controller.

Nothing here is a model of dask-gateway: Helm's library renders the pinned chart
(:func:`dask_platform.charts.render`), traitlets' ``PyFileConfigLoader`` loads the rendered
ConfigMap files (written to a directory as the chart mounts them at ``/etc/dask-gateway/``)
with the release's ``gateway.env`` in the environment, and dask-gateway-server's own
``KubeBackend.process_cluster_options`` -> ``make_cluster_object`` -> ``KubeController.make_pod``
build the pods, offline (no cluster, no API server).

:func:`build_pods` returns every team's scheduler and worker pod for the min, default and max of
every option range; :mod:`dask_platform.gateway_pod_checks` checks them. The local
platform runs the same rendered file (:func:`render_gateway`, :func:`write_config_files`).

ref: https://github.com/dask/dask-gateway/tree/2026.3.0/resources/helm/dask-gateway/templates
ref: https://github.com/dask/dask-gateway/blob/2026.3.0/dask-gateway-server/dask_gateway_server/backends/kubernetes/controller.py
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from dask_platform.config.models import StackConfig

GATEWAY_RELEASE = "dask-gateway"
"""The Helm release name the Pulumi program installs the chart as."""
CONFIG_FILE = "dask_gateway_config.py"
"""The file both ConfigMaps hold and both Deployments run (``--config /etc/dask-gateway/...``)."""
CHART = "dask-gateway"
GIB = 2**30

Component = Literal["scheduler", "worker"]


class GatewayConfigError(RuntimeError):
    """The rendered release cannot be loaded as its pods would load it (message says why)."""


@dataclass(frozen=True)
class RenderedGateway:
    """The rendered dask-gateway release: every manifest, and what its two pods run."""

    namespace: str
    manifests: list[dict[str, Any]]
    gateway_files: dict[str, str]
    """The API pod's ConfigMap data (``{file name: text}``), mounted at /etc/dask-gateway/."""
    controller_files: dict[str, str]
    """The controller's ConfigMap data."""
    gateway_env: dict[str, str]
    """The API container's literal ``env`` (``valueFrom`` entries are Secrets: left out)."""


def render_gateway(
    config: StackConfig, values: dict[str, Any] | None = None, *, release: str = GATEWAY_RELEASE
) -> RenderedGateway:
    """Render the pinned chart with ``values`` (default: ``render_values(config)``, what the
    Pulumi program passes). Raises ChartError (chart cache) or helm_python.HelmError."""
    from dask_platform.charts import manifests, render
    from dask_platform.gateway_settings import render_values

    namespace = config.gateway.namespace
    rendered = render(
        CHART,
        values if values is not None else render_values(config),
        release=release,
        namespace=namespace,
        version=config.gateway.chart_version,
    )
    objects = manifests(rendered)

    def template(path: str) -> dict[str, Any]:
        # By template path, as `helm template --show-only` names them.
        document = yaml.safe_load(rendered.get(f"{CHART}/templates/{path}", "") or "null")
        return document if isinstance(document, dict) else {}

    deployment = template("gateway/deployment.yaml")
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
    container: dict[str, Any] = next((c for c in containers or [] if c["name"] == "gateway"), {})
    env = {e["name"]: str(e["value"]) for e in container.get("env") or [] if "value" in e}
    return RenderedGateway(
        namespace=namespace,
        manifests=objects,
        gateway_files=dict(template("gateway/configmap.yaml").get("data") or {}),
        controller_files=dict(template("controller/configmap.yaml").get("data") or {}),
        gateway_env=env,
    )


def write_config_files(files: Mapping[str, str], directory: Path) -> Path:
    """Write a ConfigMap's files into ``directory`` as the pod's volume mount shows them;
    returns the path of the config file the pod runs."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory / CONFIG_FILE


def config_file_problems(rendered: RenderedGateway) -> list[str]:
    """Python files of both ConfigMaps that do not compile where the chart put them (a
    ``from __future__`` import in ``gateway.extraConfig``, which the chart pastes after its
    own lines, is the classic case). ``["<ConfigMap> <file>: line N: message", ...]``."""
    problems = []
    for where, files in (
        ("gateway", rendered.gateway_files),
        ("controller", rendered.controller_files),
    ):
        if CONFIG_FILE not in files:
            problems.append(f"{where} ConfigMap: no {CONFIG_FILE} rendered")
        for name, text in sorted(files.items()):
            if not name.endswith(".py"):
                continue
            try:
                compile(text, f"/etc/dask-gateway/{name}", "exec")
            except SyntaxError as exc:
                line = (exc.text or "").strip()
                problems.append(
                    f"{where} ConfigMap {name}: line {exc.lineno}: {exc.msg} ({line!r}); "
                    "gateway.extraConfig is pasted after the chart's own lines, so it must be "
                    "valid there"
                )
    return problems


@contextlib.contextmanager
def _pod_environment(env: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` and ``sys.path`` as in the pod for the duration of a config load (the
    chart's file puts its own directory on sys.path), restored afterwards."""
    saved_env = dict(os.environ)
    saved_path = list(sys.path)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path


def load_config_file(files: Mapping[str, str], env: Mapping[str, str], directory: Path) -> Any:
    """Load a ConfigMap's ``dask_gateway_config.py`` with traitlets' ``PyFileConfigLoader``, as
    ``dask-gateway-server --config`` does, with ``env`` applied. Returns the traitlets Config;
    GatewayConfigError naming the file if it does not load."""
    from traitlets.config import PyFileConfigLoader

    path = write_config_files(files, directory)
    with _pod_environment(env):
        try:
            return PyFileConfigLoader(path.name, path=str(directory)).load_config()
        except Exception as exc:  # the pod crash-loops on any of these
            raise GatewayConfigError(f"{path}: {type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class BuiltPod:
    """One pod as the controller would create it, and what it was built from."""

    team: str
    component: Component
    case: str
    """Which option values: ``"default"``, or ``"<option>=<min|max>"``."""
    request: dict[str, Any]
    """The cluster options the user sent (``Gateway.new_cluster(**request)``)."""
    namespace: str
    pod: dict[str, Any]
    """``KubeController.make_pod``'s result: a v1 Pod manifest."""
    expected_resources: dict[str, tuple[float, int]]
    """``{"requests"|"limits": (cores, memory bytes)}`` the options or the chart ask for."""
    configured_pod_config: dict[str, Any] = field(default_factory=dict)
    """The chart-configured ``<component>_extra_pod_config`` (before the options handler)."""

    @property
    def label(self) -> str:
        return f"{self.team} {self.component} ({self.case})"


def _option_cases(config: StackConfig) -> list[tuple[str, dict[str, Any]]]:
    gw = config.gateway
    cases: list[tuple[str, dict[str, Any]]] = [("default", {})]
    for option, spec in (
        ("worker_cores", gw.worker_cores),
        ("worker_memory", gw.worker_memory_gib),
    ):
        for bound in ("min", "max"):
            cases.append((f"{option}={bound}", {option: getattr(spec, bound)}))
    # The largest worker a user can ask for: every range at its max at once.
    cases.append(
        (
            "all=max",
            {"worker_cores": gw.worker_cores.max, "worker_memory": gw.worker_memory_gib.max},
        )
    )
    return cases


def _user_of(config: StackConfig, team: str) -> Any:
    from dask_gateway_server.models import User

    groups = config.team(team).groups
    return User(f"analyst-{team}", groups=[groups[0]])


def kube_backend_class(name: Any) -> type[Any]:
    """The backend class a rendered gateway config selects (its ``DaskGateway.backend_class``,
    a dotted name or a class), which must be dask-gateway's KubeBackend or a subclass of it
    (the platform's :class:`dask_platform.gateway_limits.LimitedKubeBackend`). Raises
    GatewayConfigError otherwise."""
    from dask_gateway_server.backends.kubernetes import KubeBackend
    from traitlets.utils.importstring import import_item

    try:
        cls = import_item(name) if isinstance(name, str) else name
    except (ImportError, AttributeError, ValueError) as exc:
        raise GatewayConfigError(
            f"the rendered gateway config selects backend {name!r}, which does not import: {exc}"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, KubeBackend)):
        raise GatewayConfigError(
            f"the rendered gateway config selects backend {name!r}, not KubeBackend or a "
            "subclass of it"
        )
    return cls


async def _build(
    config: StackConfig, gateway_config: Any, controller_config: Any, backend_class: type[Any]
) -> list[BuiltPod]:
    from dask_gateway_server.backends.kubernetes.controller import KubeController
    from dask_gateway_server.utils import FrozenAttrDict

    backend = backend_class(config=gateway_config)
    controller = KubeController(config=controller_config)
    configured = backend.cluster_config_class(parent=backend)
    pods: list[BuiltPod] = []
    for team in config.team_names:
        user = _user_of(config, team)
        for case, options in _option_cases(config):
            request = {**options, "team": team}
            requested, cluster_config = await backend.process_cluster_options(user, request)
            obj = backend.make_cluster_object(user.name, requested, cluster_config)
            # Through JSON, as the DaskCluster object travels through the API server.
            obj = json.loads(json.dumps(obj))
            namespace = cluster_config.namespace
            name = obj["metadata"]["name"]
            frozen = FrozenAttrDict(obj["spec"]["config"])
            spec = obj["spec"]["config"]
            for component in ("scheduler", "worker"):
                pod = controller.make_pod(namespace, name, frozen, is_worker=component == "worker")
                resources = {
                    "requests": (spec[f"{component}_cores"], int(spec[f"{component}_memory"])),
                    "limits": (
                        spec[f"{component}_cores_limit"],
                        int(spec[f"{component}_memory_limit"]),
                    ),
                }
                if component == "worker":
                    # What the user asked for (the handler sets request = limit).
                    cores = float(requested["worker_cores"])
                    memory = int(float(requested["worker_memory"]) * GIB)
                    resources = {"requests": (cores, memory), "limits": (cores, memory)}
                pods.append(
                    BuiltPod(
                        team=team,
                        component=component,  # type: ignore[arg-type]
                        case=case,
                        request=request,
                        namespace=namespace,
                        pod=pod,
                        expected_resources=resources,
                        configured_pod_config=copy.deepcopy(
                            dict(getattr(configured, f"{component}_extra_pod_config"))
                        ),
                    )
                )
    return pods


def build_pods(
    config: StackConfig,
    values: dict[str, Any] | None = None,
    rendered: RenderedGateway | None = None,
) -> list[BuiltPod]:
    """Every team's scheduler and worker pod, for the default options and the min and max of
    each option range, built by dask-gateway-server from the rendered release.

    ``values`` defaults to what the Pulumi program passes. Raises GatewayConfigError when a
    rendered config file does not compile or load (as the pod would crash), ChartError when the
    chart cache lacks the pinned chart.
    """
    rendered = rendered or render_gateway(config, values)
    problems = config_file_problems(rendered)
    if problems:
        raise GatewayConfigError("; ".join(problems))
    with tempfile.TemporaryDirectory(prefix="dask-gateway-config-") as tmp:
        gateway_config = load_config_file(
            rendered.gateway_files, rendered.gateway_env, Path(tmp) / "gateway"
        )
        controller_config = load_config_file(
            rendered.controller_files, {}, Path(tmp) / "controller"
        )
        backend_class = kube_backend_class(gateway_config.DaskGateway.get("backend_class"))
        authenticator_problem = _authenticator_problem(gateway_config)
        if authenticator_problem:
            raise GatewayConfigError(authenticator_problem)
        # A private loop: asyncio.run() would leave the thread without a current event loop,
        # which the Pulumi runtime (run later in the same process by plan) still asks for.
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(
                _build(config, gateway_config, controller_config, backend_class)
            )
        finally:
            loop.close()


def _authenticator_problem(gateway_config: Any) -> str | None:
    """Why the API pod could not create its authenticator, or None: the configured class must
    import (the gateway image has it when it imports here) and be an Authenticator, and every
    key configured for it must be one of its configurable traits (traitlets only warns about
    an unknown key, so a typo would silently leave the default in force)."""
    from dask_gateway_server.auth import Authenticator
    from traitlets.utils.importstring import import_item

    name = gateway_config.DaskGateway.get("authenticator_class")
    if name is None:
        return None  # dask-gateway's default (simple)
    try:
        cls = import_item(str(name))
    except (ImportError, AttributeError) as exc:
        return f"gateway.auth: authenticator class {name} does not import ({exc})"
    if not (isinstance(cls, type) and issubclass(cls, Authenticator)):
        return f"gateway.auth: {name} is not a dask_gateway_server.auth.Authenticator"
    known = set(cls.class_trait_names(config=True))  # type: ignore[attr-defined]
    configured = set(gateway_config.get(cls.__name__, {}))
    unknown = sorted(configured - known)
    if unknown:
        return (
            f"gateway.auth: {', '.join(unknown)} configured for {name} but not among its "
            f"settings ({', '.join(sorted(known))})"
        )
    return None
