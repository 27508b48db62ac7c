"""`clusters list | stop`: the caller's clusters on one or more sites, and how long each has
been idle.

*Idle* means what dask-gateway's own idle timeout means: no task processing, queued or waiting
for a worker, and no task transition for the duration. The gateway's cluster reports do not
carry activity, so each running cluster's scheduler is asked (:func:`remote.scheduler_activity`:
its transition log's last timestamp, on its own clock). A gateway only ever shows a user their
own clusters, so these commands cannot see or stop anyone else's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dask_platform.gateway_client import close_quietly
from dask_platform.runbooks import remote


@dataclass
class ClusterState:
    site: str
    name: str
    status: str
    started: datetime | None
    dashboard: str | None
    workers: int | None = None
    busy: bool | None = None
    idle_seconds: float | None = None
    error: str | None = None

    def idle_for_at_least(self, seconds: float) -> bool:
        return self.busy is False and self.idle_seconds is not None and self.idle_seconds >= seconds


@contextlib.contextmanager
def attached_client(gateway: Any, name: str) -> Iterator[Any]:
    """A ``distributed.Client`` of cluster ``name`` of ``gateway`` (a ``dask_gateway.Gateway``),
    attached without owning the cluster: on exit the client and the cluster handle close, the
    cluster keeps running.

    ref: https://gateway.dask.org/api-client.html (``Gateway.connect``, ``GatewayCluster.close``)
    """
    cluster = gateway.connect(name)
    try:
        client = cluster.get_client(set_as_default=False)
        try:
            yield client
        finally:
            client.close()
    finally:
        # connect() does not own the cluster: close the handle, never the cluster.
        close_quietly(cluster=cluster, shutdown=False)


def activity(gateway: Any, name: str) -> dict[str, Any]:
    """The scheduler's activity report for cluster ``name`` (connects without owning it)."""
    remote.by_value()
    with attached_client(gateway, name) as client:
        report: dict[str, Any] = client.run_on_scheduler(remote.scheduler_activity)
    return report


def survey(gateway: Any, site: str, with_activity: bool = True) -> list[ClusterState]:
    states = []
    for report in gateway.list_clusters():
        status = getattr(report.status, "name", str(report.status))
        state = ClusterState(
            site=site,
            name=report.name,
            status=status,
            started=report.start_time,
            dashboard=report.dashboard_link,
        )
        if with_activity and status == "RUNNING":
            try:
                found = activity(gateway, report.name)
            except Exception as exc:
                state.error = f"scheduler unreachable: {type(exc).__name__}: {exc}"
            else:
                state.workers = int(found["workers"])
                state.busy = bool(found["processing"] or found["queued"] or found["unrunnable"])
                state.idle_seconds = 0.0 if state.busy else found["now"] - found["last_activity"]
        states.append(state)
    return states


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
