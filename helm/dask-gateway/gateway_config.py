"""dask-gateway-server configuration for dask-platform.

ONE file, one path: it is ``gateway.extraConfig`` of the upstream chart (the Pulumi program reads
this file verbatim), which pastes it into the chart's ``dask_gateway_config.py`` AFTER the chart's
own lines (KubeBackend, auth, the scheduler/worker pod settings from the values). The API pod
runs that rendered file; the embedded local platform runs the same rendered file with a short
overlay appended (local backend, and the part the EKS pod-identity webhook plays).

Because it is pasted mid-file, nothing here may need to be first in a file: no
``from __future__`` import, no module docstring tricks (``dask_platform.gateway_pods`` compiles
the rendered file for every stack).

Stack-specific values (teams, ranges, limits, image) arrive as JSON in the environment variable
``DASK_PLATFORM_GATEWAY_SETTINGS`` - rendered from the typed stack config by
``dask_platform.gateway_settings`` - so this file holds logic only and no per-stack literals.

The security property it enforces: the AUTHENTICATED user's groups decide the team, the team
decides the Kubernetes ServiceAccount, and the ServiceAccount decides the IAM role (IRSA). A user
can choose among their own teams only; nothing in a cluster request can name a ServiceAccount,
a role, or AWS key variables.
"""

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from dask_gateway_server.backends.kubernetes.utils import merge_json_objects
from dask_gateway_server.options import Mapping as MappingOption
from dask_gateway_server.options import Options

from dask_platform.credentials import checked_environment
from dask_platform.gateway_options import Float, Integer, Select, range_error
from dask_platform.no_client import scheduler_command
from dask_platform.object_store_deploy import platform_environment
from dask_platform.object_stores import TEAM_ENV
from dask_platform.placement import DO_NOT_DISRUPT_ANNOTATION

SETTINGS_ENV = "DASK_PLATFORM_GATEWAY_SETTINGS"
GIB = 2**30

# ref: https://gateway.dask.org/cluster-options.html - the handler's return keys are
# ClusterConfig / KubeClusterConfig trait names.
POD_CONFIG_KEYS = ("scheduler_extra_pod_config", "worker_extra_pod_config")


class NoTeamError(PermissionError):
    pass


def load_settings(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    raw = environ.get(SETTINGS_ENV)
    if not raw:
        raise RuntimeError(
            f"{SETTINGS_ENV} is not set: the gateway cannot map users to teams. The Pulumi "
            "program (gateway.env in the Helm values) or `dask-platform local up` sets it."
        )
    return json.loads(raw)


def teams_of(user: Any, settings: Mapping[str, Any]) -> list[str]:
    """The teams whose identity-provider groups include one of the user's groups (sorted)."""
    groups = set(getattr(user, "groups", ()) or ())
    return sorted(
        name for name, team in settings["teams"].items() if groups.intersection(team["groups"])
    )


def configured_pod_config(c: Any) -> dict[str, dict[str, Any]]:
    """The scheduler/worker pod settings the chart configured (``KubeClusterConfig``), read
    from the traitlets config ``c`` after the chart's lines ran: ``{trait name: pod spec}``."""
    section = c.KubeClusterConfig
    return {key: dict(section[key]) if key in section else {} for key in POD_CONFIG_KEYS}


PodConfig = Mapping[str, Mapping[str, Any]]


def make_options_handler(
    settings: Mapping[str, Any], pod_config: PodConfig | Callable[[], PodConfig] | None = None
) -> Callable[[Any, Any], dict[str, Any]]:
    """The options handler. ``pod_config`` is what the chart configured (see
    :func:`configured_pod_config`), or a function returning it at request time (so extra config
    run after this file is seen): dask-gateway builds ``KubeClusterConfig(parent=backend,
    **handler_result)``, where a returned key REPLACES the configured value, so the handler
    returns the configured pod settings merged with its own (the team's ServiceAccount) - the
    chart's nodeSelector and tolerations survive."""

    def configured_now() -> dict[str, dict[str, Any]]:
        current = pod_config() if callable(pod_config) else pod_config
        return {key: dict((current or {}).get(key) or {}) for key in POD_CONFIG_KEYS}

    cores = settings["worker_cores"]
    memory = settings["worker_memory_gib"]

    def options_handler(options: Any, user: Any) -> dict[str, Any]:
        teams = teams_of(user, settings)
        if not teams:
            raise NoTeamError(
                f"user {user.name!r} belongs to no team (their groups: "
                f"{', '.join(sorted(user.groups)) or 'none'}); a platform admin adds one of "
                "their identity-provider groups to a team in the stack config"
            )
        team = options.get("team") or teams[0]
        if team not in teams:
            # The per-user Select already refuses this; checked again because this function is
            # the security boundary and must not depend on how the options were built.
            raise NoTeamError(f"team: {team!r} is not one of your teams ({', '.join(teams)})")
        for field, spec, value in (
            ("worker_cores", cores, options.worker_cores),
            ("worker_memory", memory, options.worker_memory),
        ):
            if not spec["min"] <= value <= spec["max"]:
                raise ValueError(range_error(field, value, spec["min"], spec["max"]))
        environment = checked_environment(options.environment, field="environment")
        service_account = settings["teams"][team]["service_account"]
        memory_bytes = int(options.worker_memory * GIB)
        configured = configured_now()
        return {
            "worker_cores": int(options.worker_cores),
            "worker_cores_limit": int(options.worker_cores),
            "worker_memory": memory_bytes,
            "worker_memory_limit": memory_bytes,
            "image": options.image,
            # Platform defaults first so a user's own variable of the same name wins; neither
            # can carry AWS keys (both are checked).
            "environment": {
                **settings.get("default_environment", {}),
                **environment,
                TEAM_ENV: team,
                **platform_environment(settings, team, user.name, environment),  # object stores
            },
            **{
                key: merge_json_objects(configured[key], {"serviceAccountName": service_account})
                for key in POD_CONFIG_KEYS
            },
        }

    return options_handler


def make_cluster_options(
    settings: Mapping[str, Any], pod_config: PodConfig | Callable[[], PodConfig] | None = None
) -> Callable[[Any], Options]:
    """Per-user options: the ``team`` field only ever lists the caller's own teams."""
    handler = make_options_handler(settings, pod_config)
    cores = settings["worker_cores"]
    memory = settings["worker_memory_gib"]
    images = [settings["image"], *settings.get("extra_images", [])]

    def cluster_options(user: Any) -> Options:
        fields: list[Any] = [
            Integer(
                "worker_cores",
                default=int(cores["default"]),
                min=int(cores["min"]),
                max=int(cores["max"]),
                label="Worker cores",
            ),
            Float(
                "worker_memory",
                default=float(memory["default"]),
                min=float(memory["min"]),
                max=float(memory["max"]),
                label="Worker memory (GiB)",
            ),
            MappingOption("environment", default={}, label="Environment variables"),
            Select("image", images, default=images[0], label="Image"),
        ]
        teams = teams_of(user, settings)
        if teams:
            fields.append(Select("team", teams, default=teams[0], label="Team"))
        return Options(*fields, handler=handler)

    return cluster_options


LIMITED_KUBE_BACKEND = "dask_platform.gateway_limits.LimitedKubeBackend"


def configure(c: Any, settings: Mapping[str, Any]) -> None:
    """Apply the platform's gateway configuration to a traitlets config object ``c`` (after the
    chart's lines: the pod settings the chart configured are read from ``c``)."""
    # The chart selects KubeBackend; the platform's subclass adds the per-user and per-team
    # limits (the local overlay selects the local backends with the same limits).
    c.DaskGateway.backend_class = LIMITED_KUBE_BACKEND
    c.PlatformLimits.limits = dict(settings["limits"])
    c.Backend.cluster_options = make_cluster_options(settings, lambda: configured_pod_config(c))
    # Karpenter never voluntarily removes a scheduler's node (losing the scheduler loses the
    # cluster). The chart forwards no pod annotations from its values, so they are set here.
    # ref: https://karpenter.sh/docs/concepts/disruption/#pod-level-controls
    section = c.KubeClusterConfig
    key = "scheduler_extra_pod_annotations"
    configured = dict(section[key]) if key in section else {}
    section[key] = {**configured, DO_NOT_DISRUPT_ANNOTATION: "true"}
    # distributed >= 2026.6 removed the dask-scheduler / dask-worker entry points. A list: the
    # backends exec the command as argv (a plain string would be one program named "dask worker").
    # The no-client shutdown rides along as a scheduler preload (dask_platform.no_client).
    c.ClusterConfig.scheduler_cmd = scheduler_command(
        float(settings["no_client_timeout_minutes"]) * 60
    )
    c.ClusterConfig.worker_cmd = ["dask", "worker"]
    c.ClusterConfig.idle_timeout = float(settings["idle_timeout_minutes"]) * 60
    c.ClusterConfig.cluster_max_workers = int(settings["cluster_max_workers"])
    c.ClusterConfig.cluster_max_cores = float(settings["cluster_max_cores"])
    c.ClusterConfig.cluster_max_memory = int(float(settings["cluster_max_memory_gib"]) * GIB)


if "get_config" in globals():  # executed as a traitlets config file (chart or local gateway)
    configure(get_config(), load_settings())
