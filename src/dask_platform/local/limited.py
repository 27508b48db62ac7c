"""The local gateway's backends with the platform's limits (dask_platform.gateway_limits): the
same mixin the EKS gateway's KubeBackend carries, on the local process and container backends.

Their cluster config takes fractional cores, as ``KubeClusterConfig`` does: the chart gives the
scheduler 0.5 cores, and the local gateway must count the same scheduler the limits and the
validator count (dask-gateway's base ``ClusterConfig`` only allows whole cores, at least 1).
"""

from __future__ import annotations

from dask_gateway_server.backends.local import LocalClusterConfig, UnsafeLocalBackend
from traitlets import Float, Type

from dask_platform.gateway_limits import PlatformLimits
from dask_platform.local.containers import ContainerBackend


class FractionalCoresClusterConfig(LocalClusterConfig):  # type: ignore[misc]
    """``LocalClusterConfig`` with ``KubeClusterConfig``'s core traits (floats, min 0).

    ref: dask_gateway_server/backends/kubernetes/backend.py (KubeClusterConfig)"""

    worker_cores = Float(1, min=0, help="Cores of a dask worker.", config=True)
    scheduler_cores = Float(1, min=0, help="Cores of a dask scheduler.", config=True)


_CONFIG_CLASS_HELP = "The cluster config: fractional cores, as on Kubernetes."


class LimitedLocalBackend(PlatformLimits, UnsafeLocalBackend):  # type: ignore[misc]
    """Schedulers and workers as local processes, within the platform's limits."""

    cluster_config_class = Type(
        FractionalCoresClusterConfig, klass=LocalClusterConfig, help=_CONFIG_CLASS_HELP
    ).tag(config=True)


class LimitedContainerBackend(PlatformLimits, ContainerBackend):  # type: ignore[misc]
    """Schedulers and workers as containers of the worker image, within the platform's
    limits (ContainerBackend's settings apply: it is a base class)."""

    cluster_config_class = Type(
        FractionalCoresClusterConfig, klass=LocalClusterConfig, help=_CONFIG_CLASS_HELP
    ).tag(config=True)
