"""No-client shutdown: a cluster with no connected Dask client for a while is stopped.

A notebook kernel that dies (SIGKILL, an OOM kill, a culled server) never runs the
``shutdown_on_close`` of its ``GatewayCluster``: its cluster runs, and bills, until
``idle_timeout``. The scheduler knows its clients, so it decides: :func:`preload_source` is the
text of a scheduler preload (distributed runs a ``--preload`` value containing spaces as a
script) that stops the cluster through dask-gateway's own scheduler service once no client has
been connected for the configured time. It is passed as text because schedulers run the worker
image, which carries the compute stack and not this package.

* A client is a ``distributed.Client`` connected to the scheduler (``Scheduler.clients`` minus
  the scheduler's own ``fire-and-forget`` entry). The clock starts when the scheduler starts,
  so a cluster no client ever connects to is stopped too.
* A cluster created with ``shutdown_on_close=False`` is meant to outlive its client: the
  platform's client (:mod:`dask_platform.gateway_client`) sets the scheduler metadata
  :data:`KEEP_WITHOUT_CLIENT` on it, and the rule skips it (``idle_timeout`` still applies:
  that is dask-gateway's own preload).

ref: dask_gateway/scheduler_preload.py (GatewaySchedulerService, GatewayClient.shutdown),
distributed/preloading.py (``_import_module``: text of a script), distributed/scheduler.py
(``Scheduler.clients``, ``get_metadata``/``set_metadata``).
"""

from __future__ import annotations

KEEP_WITHOUT_CLIENT = ["dask-platform", "keep-without-client"]
"""Scheduler metadata keys; True: the no-client rule skips this cluster."""

_PRELOAD = """
# dask-platform no-client shutdown (dask_platform.no_client); generated, do not edit.
import asyncio
import logging
import time

NO_CLIENT_SECONDS = {seconds!r}
KEEP_WITHOUT_CLIENT = {keep!r}
logger = logging.getLogger("dask_platform.no_client")


def dask_setup(scheduler):
    async def watch():
        last_client = time.monotonic()
        period = max(0.5, min(30.0, NO_CLIENT_SECONDS / 4))
        while True:
            await asyncio.sleep(period)
            clients = [c for c in scheduler.clients if c != "fire-and-forget"]
            keep = scheduler.get_metadata(keys=KEEP_WITHOUT_CLIENT, default=False)
            if clients or keep:
                last_client = time.monotonic()
                continue
            if time.monotonic() - last_client < NO_CLIENT_SECONDS:
                continue
            logger.warning(
                "No client connected for %.0f seconds (no-client timeout), shutting down",
                NO_CLIENT_SECONDS,
            )
            service = scheduler.services.get("gateway")
            if service is None:
                continue  # not started by dask-gateway: nothing to stop through
            try:
                await service.gateway.shutdown()
                return
            except Exception:
                logger.warning("Stopping the cluster failed; retrying", exc_info=True)

    scheduler._dask_platform_no_client = asyncio.ensure_future(watch())
"""


def preload_source(seconds: float) -> str:
    """The scheduler preload's text for a no-client timeout of ``seconds`` (> 0)."""
    if not seconds > 0:
        raise ValueError(f"no-client timeout must be > 0 seconds (got {seconds!r})")
    return _PRELOAD.format(seconds=float(seconds), keep=KEEP_WITHOUT_CLIENT)


def scheduler_command(seconds: float) -> list[str]:
    """``ClusterConfig.scheduler_cmd``: ``dask scheduler`` with the no-client preload (the
    backends append dask-gateway's own preload and its options after it)."""
    return ["dask", "scheduler", "--preload", preload_source(seconds)]
