"""The local gateway's backends with the platform's limits (dask_platform.gateway_limits): the
same mixin the EKS gateway's KubeBackend carries, on the local process and container backends."""

from __future__ import annotations

from dask_gateway_server.backends.local import UnsafeLocalBackend

from dask_platform.gateway_limits import PlatformLimits
from dask_platform.local.containers import ContainerBackend


class LimitedLocalBackend(PlatformLimits, UnsafeLocalBackend):  # type: ignore[misc]
    """Schedulers and workers as local processes, within the platform's limits."""


class LimitedContainerBackend(PlatformLimits, ContainerBackend):  # type: ignore[misc]
    """Schedulers and workers as containers of the worker image, within the platform's
    limits (ContainerBackend's settings apply: it is a base class)."""
