"""A fix for dask-gateway 2026.3.0's client: a refused cluster request never hangs the next one.

The defect (dask-gateway 2026.3.0 with distributed >= 2024, measured with 2026.8.0):

1. ``GatewayCluster(...)`` / ``Gateway.new_cluster(...)`` whose request the gateway refuses
   (HTTP 422: AWS keys in ``environment``, no team, an option out of range) raises from
   ``GatewayCluster._init_internal``. The cluster's status is then ``closed``, so its
   ``close()`` returns early and never closes the cluster's own ``Gateway``: that client's
   IO-loop thread keeps running, and the half-built cluster (held by the exception's
   traceback, a reference cycle) is freed only by the cyclic garbage collector.
2. The collector runs in whatever thread allocates next - typically the IO-loop thread that
   the user's NEXT ``Gateway()`` is starting. It calls ``Gateway.__del__`` -> ``close()`` ->
   ``distributed.utils.LoopRunner.stop()``, which takes ``LoopRunner._lock``: a class-wide,
   non-reentrant lock that the main thread holds while it waits for that very thread to start
   (``LoopRunner._start_unlocked``). The new loop never starts: the main thread fails after
   10 s with a bare ``AssertionError`` (``assert loop is not None``) or, when the collector
   runs while the lock is held in the same thread, waits forever.

The fix (the first two halves each enough for the refused-request case):

* a cluster whose start fails closes its own ``Gateway`` (stops its IO-loop thread) before
  the error reaches the user - nothing is left for the collector;
* ``Gateway.__del__`` never blocks: it hands ``close()`` to a short-lived daemon thread, so a
  collection in any thread, at any point, cannot wait on a lock or a loop that thread owns.
  (distributed made the same change for ``Future.__del__``, dask/distributed#1229.)
* ``Gateway.__del__`` of a closed client does nothing. Upstream's calls ``close()`` a second
  time, whose ``self.loop`` raises "Accessing the loop property while the loop is not running
  is not supported" since distributed made that property strict (dask/distributed#7940); the
  guards dask-gateway put in ``__del__`` (dask/dask-gateway#162) cover interpreter shutdown,
  not a stopped loop. Every closed client, and every cluster's own client, is then collected
  silently: nobody needs to keep closed clients referenced to dodge the message.
* a cluster created with ``shutdown_on_close=False`` is marked on its scheduler as meant to
  outlive its client, which exempts it from the no-client shutdown (:mod:`dask_platform.no_client`);
* and, while it is patched: a wrong gateway or proxy address fails within seconds naming the
  address and what answered there (:mod:`dask_platform.gateway_probe`), checked once per
  client before its first request and once per cluster before connecting through the proxy.

No upstream dask-gateway issue describes the hang; the upstream ``__del__`` fixes
(dask/dask-gateway#162) predate distributed's class-wide lock and its strict ``loop`` property.
:func:`close_quietly` is the one helper that closes a client, cluster and gateway where a
failure to close (a site already gone) is not itself an error.

It is active wherever the ``dask_platform`` wheel is installed - the client environment
(``uv sync``) and the notebook image: the wheel ships ``dask_platform_gateway_client.pth``,
which registers :func:`install_on_import`; :func:`install` patches ``dask_gateway.client``
when (and only when) it is imported. Calling :func:`install` again is harmless.

ref: dask_gateway/client.py (``Gateway.__del__``, ``GatewayCluster._init_internal``) and
distributed/utils.py (``LoopRunner``) in the pinned versions;
https://github.com/dask/distributed/issues/7940 (the strict ``loop`` property),
https://github.com/dask/dask-gateway/pull/162 (upstream's ``__del__`` guards),
https://github.com/dask/distributed/issues/1229 (a non-blocking ``__del__``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

PATCHED_MODULE = "dask_gateway.client"
_MARK = "_dask_platform_fixed"


def _close_in_background(gateway: Any) -> None:
    def close() -> None:
        # A finalizer has no caller to report to (upstream's __del__ raised into the void).
        with contextlib.suppress(Exception):
            gateway.close()

    threading.Thread(target=close, name="dask-gateway client close", daemon=True).start()


def close_quietly(
    client: Any = None, cluster: Any = None, gateway: Any = None, *, shutdown: bool = True
) -> None:
    """Close a ``distributed.Client``, a ``GatewayCluster`` and a ``Gateway``, in that order
    (each may be None); an error from one (its site is already gone) does not stop the others
    and is not raised. The cluster is shut down, unless ``shutdown=False``: a handle from
    ``Gateway.connect`` that the caller does not own is closed and the cluster keeps running.

    ref: https://gateway.dask.org/api-client.html (``GatewayCluster.close``, ``Gateway.close``)
    """
    closers = [
        getattr(client, "close", None),
        (
            functools.partial(cluster.close, shutdown=shutdown)
            if cluster is not None and hasattr(cluster, "close")
            else None
        ),
        getattr(gateway, "close", None),
    ]
    for closing in closers:
        if closing is None:
            continue
        # A site already gone has nothing left to close.
        with contextlib.suppress(Exception):
            closing()


def install(module: ModuleType | None = None) -> bool:
    """Patch ``dask_gateway.client`` (imported if not given); False if it was already patched."""
    if module is None:
        import dask_gateway.client

        module = dask_gateway.client
    gateway_class: Any = module.Gateway
    cluster_class: Any = module.GatewayCluster
    if getattr(gateway_class, _MARK, False):
        return False

    def gateway_del(self: Any) -> None:
        if (
            getattr(self, "asynchronous", True)
            or not hasattr(self, "_loop_runner")
            or sys.is_finalizing()
        ):
            return
        # Closed already (close() stopped the runner): upstream would call close() again and
        # raise from the stopped loop (dask/distributed#7940).
        if self._loop_runner.is_started():
            _close_in_background(self)

    upstream_init_internal = cluster_class._init_internal

    def init_internal(self: Any, *args: Any, **kwargs: Any) -> None:
        # Created here (not connected to by name): see init_internals.
        self._dask_platform_created = kwargs.get("name") is None
        try:
            upstream_init_internal(self, *args, **kwargs)
        except BaseException:
            gateway = getattr(self, "gateway", None)
            if gateway is not None and not gateway.asynchronous:
                gateway.close()
            raise

    upstream_request = gateway_class._request

    async def request(self: Any, method: str, url: str, json: Any = None) -> Any:
        # Once per client, before its first request: a wrong address fails in seconds, naming
        # the address and what answered (upstream waits up to aiohttp's 5 minutes, or says
        # "404: Not Found").
        if not getattr(self, "_dask_platform_checked", False):
            from dask_platform.gateway_probe import PROBE_TIMEOUT_SECONDS as PROBE_TIMEOUT
            from dask_platform.gateway_probe import check_gateway

            proxy = (getattr(self, "_request_kwargs", None) or {}).get("proxy")
            await asyncio.get_running_loop().run_in_executor(
                None, check_gateway, self.address, PROBE_TIMEOUT, str(proxy) if proxy else None
            )
            self._dask_platform_checked = True
        return await upstream_request(self, method, url, json=json)

    upstream_init_internals = cluster_class._init_internals

    async def init_internals(self: Any) -> None:
        # Before connecting through the proxy: a wrong proxy address fails in seconds (upstream:
        # "Timed out trying to connect to gateway://..." after 61 s).
        from dask_platform.gateway_probe import check_proxy

        proxy = self.scheduler_address.rsplit("/", 1)[0]
        await asyncio.get_running_loop().run_in_executor(None, check_proxy, proxy)
        await upstream_init_internals(self)
        if getattr(self, "_dask_platform_created", False) and not self.shutdown_on_close:
            # Meant to outlive this client: exempt from the no-client shutdown
            # (dask_platform.no_client); idle_timeout still applies.
            from dask_platform.no_client import KEEP_WITHOUT_CLIENT

            await self.scheduler_comm.set_metadata(keys=KEEP_WITHOUT_CLIENT, value=True)

    gateway_class.__del__ = gateway_del
    gateway_class._request = request
    cluster_class._init_internal = init_internal
    cluster_class._init_internals = init_internals
    setattr(gateway_class, _MARK, True)
    return True


class _PatchOnImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``dask_gateway.client`` with the normal machinery, then patches it once loaded."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != PATCHED_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        self._loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)  # type: ignore[attr-defined]
        install(module)


def install_on_import() -> None:
    """Patch ``dask_gateway.client`` when it is imported (now, if it already is)."""
    if PATCHED_MODULE in sys.modules:
        install(sys.modules[PATCHED_MODULE])
    elif not any(isinstance(finder, _PatchOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
