"""Local platforms for the benchmarks: each in its own temporary state directory.

The same :class:`dask_platform.local.platform.LocalPlatform` that ``make demo`` and the
integration tests start, configured from the committed ``local/platform.yaml`` with ``local:``
overrides (credential lifetimes), stopped and checked for leftover processes on exit. A running
``dask-platform local up`` is neither used nor disturbed.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

# dask-gateway 2026.3.0's Gateway.__del__ calls close() again after close() stopped its loop and
# prints an error; clients kept referenced are collected at exit, when __del__ skips that call.
_CLOSED_CLIENTS: list[Any] = []


class BenchPlatformError(RuntimeError):
    pass


@contextlib.contextmanager
def local_platform(
    label: str,
    console: Console,
    local: dict[str, Any] | None = None,
    stack: dict[str, Any] | None = None,
) -> Iterator[Any]:
    """A started LocalPlatform; ``local`` and ``stack`` override keys of the config's sections
    (validated like the committed file)."""
    from dask_platform.local.config import load_local_config
    from dask_platform.local.platform import LocalPlatform

    config = load_local_config(overrides={"local": local or {}, "stack": stack or {}})
    state = Path(tempfile.mkdtemp(prefix=f"dask-platform-bench-{label}-"))
    platform = LocalPlatform(state, config)
    with console.status(f"starting a local platform ({label})"):
        platform.up()
    failed = False
    try:
        yield platform
    except BaseException:
        failed = True
        raise
    finally:
        report = platform.down()
        shutil.rmtree(state, ignore_errors=True)
        if report.leftovers and not failed:
            raise BenchPlatformError(
                f"processes left after stopping the {label} platform: {report.leftovers}"
            )


def gateway_for(platform: Any, user: str) -> Any:
    from dask_gateway import BasicAuth, Gateway

    outputs = platform.outputs()
    gateway = Gateway(
        outputs["gateway_address"],
        proxy_address=outputs["gateway_proxy_address"],
        auth=BasicAuth(user, platform.passwords()[user]),
    )
    _CLOSED_CLIENTS.append(gateway)
    return gateway


def new_cluster(gateway: Any, environment: dict[str, str] | None = None) -> Any:
    """A cluster with one-core, 1 GiB workers (the local config's defaults)."""
    options = gateway.cluster_options()
    options.worker_cores = 1
    options.worker_memory = 1.0
    if environment:
        options.environment = environment
    cluster = gateway.new_cluster(options)
    _CLOSED_CLIENTS.append(cluster)
    return cluster


def stop_cluster(cluster: Any, client: Any | None, platform: Any, timeout: float = 60) -> None:
    """Shut the cluster down and wait until its scheduler and workers have exited, so the next
    measurement does not share the CPU with them."""
    if client is not None:
        client.close()
        _CLOSED_CLIENTS.append(client)
    name = cluster.name
    cluster.shutdown()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not cluster_processes(platform, name):
            return
        time.sleep(0.1)
    raise BenchPlatformError(f"cluster {name}: processes still running after {timeout}s")


def cluster_processes(platform: Any, cluster_name: str) -> list[Any]:
    """The live scheduler and worker processes of one gateway cluster (the backend names the
    cluster in their environment)."""
    import psutil

    from dask_platform.local.processes import marked_processes

    found = []
    for proc in marked_processes(platform.state_dir):
        try:
            if proc.environ().get("DASK_GATEWAY_CLUSTER_NAME") == cluster_name:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def by_value(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` wrapped so distributed ships it by value (cloudpickle) inside a task graph.

    Workers and schedulers cannot import ``bench``. ``cloudpickle.register_pickle_by_value``
    covers functions sent on their own (``client.run``), but a task graph is pickled whole and
    plain pickle would store a reference; a local function cannot be pickled by reference, so
    distributed falls back to cloudpickle for the graph, which then honours the registration.
    """

    def call(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    call.__name__ = getattr(function, "__name__", "call")
    return call


def worker_count(client: Any) -> int:
    return len(client.scheduler_info(n_workers=-1)["workers"])


def wait_until(predicate: Any, timeout: float, interval: float = 0.05, what: str = "") -> float:
    """Poll ``predicate`` until true; return the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(interval)
    raise BenchPlatformError(f"timed out after {timeout}s waiting for {what or predicate}")
