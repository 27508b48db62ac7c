"""Fair share in the gateway: per-user and per-team limits on clusters, worker cores and worker
memory, for every backend.

:class:`PlatformLimits` is a mixin for a dask-gateway-server ``Backend``; the gateway config file
selects :class:`LimitedKubeBackend` (EKS) and the local overlay a local subclass. It hooks the
three places a cluster's size is decided:

* ``start_cluster`` (``new_cluster``): refused with :class:`LimitError` - the limit and the
  user's (or team's) clusters named - when the user or the team already holds as many clusters
  as allowed;
* ``forward_message_to_scheduler`` (``scale`` / ``adapt``): the requested number of workers is
  capped at what the cluster's own limits (``cluster_max_workers``/``_cores``/``_memory``,
  scheduler included) and the user's and team's remaining worker cores and memory allow, and the
  reply names the limit that bit with its numbers (the client shows it as a ``GatewayWarning``);
* ``on_cluster_heartbeat``: a scheduler asking for more workers than granted (adaptive, or a
  client talking to the scheduler directly) gets no more than its grant.

Accounting: a cluster counts from the moment it is requested until it is stopped; its workers
count as granted (the last ``scale`` count, or the ``adapt`` maximum), so an adaptive cluster
holds its maximum. Every decision and its reservation happen under one lock, so two concurrent
requests never both pass on the same headroom. The gateway runs as one process (the chart's
single API pod; the local gateway), which is where the lock holds.

ref: dask_gateway_server/routes.py (scale_cluster, adapt_cluster: their cap at
``cluster_max_workers`` and ``{"ok", "msg"}`` reply), backends/base.py (Backend,
ClusterConfig._worker_limit_from_resources), backends/db_base.py (on_cluster_heartbeat).
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from dask_gateway_server.backends.base import Backend, PublicException
from dask_gateway_server.backends.kubernetes import KubeBackend
from dask_gateway_server.models import User
from traitlets import Dict

from dask_platform.object_stores import TEAM_ENV  # the options handler sets it to the team

GIB = 2**30
SCALE_ROUTES = frozenset(
    {"/api/v1/clusters/{cluster_name}/scale", "/api/v1/clusters/{cluster_name}/adapt"}
)


class LimitError(PublicException):
    """A request refused by a limit; the message names the limit and what holds it."""


@dataclass
class _Request:
    """What the user asked for, before dask-gateway's own cap, and the platform's answer."""

    body: Mapping[str, Any]
    message: str | None = None


_REQUEST: contextvars.ContextVar[_Request | None] = contextvars.ContextVar(
    "dask_platform_scale_request", default=None
)


@web.middleware
async def limits_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Keep the original scale/adapt request for the backend (dask-gateway's handler caps it
    at ``cluster_max_workers`` first, with a message naming workers whatever the cause), and
    put the platform's message in the reply."""
    route = request.match_info.route.resource
    if request.method != "POST" or route is None or route.canonical not in SCALE_ROUTES:
        return await handler(request)
    try:
        body = await request.json()  # aiohttp keeps the body: the handler reads it again
    except ValueError:
        body = None
    state = _Request(body if isinstance(body, dict) else {})
    token = _REQUEST.set(state)
    try:
        response = await handler(request)
    finally:
        _REQUEST.reset(token)
    if state.message is not None and response.status == 200:
        return web.json_response({"ok": False, "msg": state.message})
    return response


@dataclass(frozen=True)
class ClusterSize:
    """One cluster as the limits see it."""

    name: str
    user: str
    team: str
    worker_cores: float
    worker_memory_gib: float
    workers: int  # granted

    @property
    def cores(self) -> float:
        return self.workers * self.worker_cores

    @property
    def memory_gib(self) -> float:
        return self.workers * self.worker_memory_gib


@dataclass(frozen=True)
class Cap:
    """A limit on a cluster's workers: how many it allows and why."""

    workers: int
    reason: str


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _per_cluster_caps(config: Mapping[str, Any], max_workers: int | None) -> list[Cap]:
    """dask-gateway's per-cluster limits, each on its own, scheduler included."""
    cores = float(config["worker_cores"])
    memory = float(config["worker_memory"]) / GIB
    scheduler_cores = float(config["scheduler_cores"])
    scheduler_memory = float(config["scheduler_memory"]) / GIB
    caps = []
    if max_workers is not None:
        caps.append(Cap(int(max_workers), f"cluster_max_workers is {max_workers}"))
    if config.get("cluster_max_cores") is not None:
        limit = float(config["cluster_max_cores"])
        n = max(0, math.floor((limit - scheduler_cores) / cores))
        caps.append(
            Cap(
                n,
                f"cluster_max_cores is {limit:g}: the scheduler's {scheduler_cores:g} + "
                f"{_plural(n, 'worker')} x {cores:g} cores = {scheduler_cores + n * cores:g}",
            )
        )
    if config.get("cluster_max_memory") is not None:
        limit = float(config["cluster_max_memory"]) / GIB
        n = max(0, math.floor((limit - scheduler_memory) / memory))
        caps.append(
            Cap(
                n,
                f"cluster_max_memory is {limit:g} GiB: the scheduler's {scheduler_memory:g} "
                f"GiB + {_plural(n, 'worker')} x {memory:g} GiB = "
                f"{scheduler_memory + n * memory:g} GiB",
            )
        )
    return caps


def _total_caps(
    this: ClusterSize, others: Iterable[ClusterSize], limits: Mapping[str, Any], whose: str
) -> list[Cap]:
    """Caps from a user's or a team's worker cores and memory, given their other clusters."""
    others = list(others)
    caps = []
    for resource, unit, per_worker in (
        ("worker_cores", " cores", this.worker_cores),
        ("worker_memory_gib", " GiB", this.worker_memory_gib),
    ):
        limit = float(limits[resource])
        held = sum(o.cores if resource == "worker_cores" else o.memory_gib for o in others)
        n = max(0, math.floor((limit - held) / per_worker + 1e-9))
        caps.append(
            Cap(
                n,
                f"{whose} {resource} limit is {limit:g}{unit}; other clusters hold "
                f"{held:g}{unit} ({len(others)} cluster(s)), leaving room for "
                f"{_plural(n, 'worker')} x {per_worker:g}{unit}",
            )
        )
    return caps


class PlatformLimits(Backend):  # type: ignore[misc]
    """Mixin: per-user and per-team limits (see the module docstring). Put it before the
    backend class: ``class X(PlatformLimits, SomeBackend)``."""

    limits = Dict(
        help="Per team: {'per_user': {clusters, worker_cores, worker_memory_gib}, 'per_team': "
        "{...}} (dask_platform.gateway_settings, from the stack config's `limits:`).",
        config=True,
    )

    _limits_lock: asyncio.Lock
    _granted: dict[str, int]
    _starting: dict[str, tuple[str, str]]

    def _limits_state(self) -> None:
        if not hasattr(self, "_granted"):
            self._limits_lock = asyncio.Lock()
            self._granted = {}
            self._starting = {}

    async def setup(self, app: web.Application) -> None:
        self._limits_state()
        # Before the app starts (setup runs before the runner freezes it).
        app.middlewares.append(limits_middleware)
        await super().setup(app)

    # ------------------------------------------------------------------ accounting

    def _team_limits(self, team: str) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        try:
            entry = self.limits[team]
        except KeyError:
            raise LimitError(f"team {team!r} has no limits configured") from None
        return entry["per_user"], entry["per_team"]

    def _size_of(self, cluster: Any) -> ClusterSize:
        config = cluster.config
        team = str((config.get("environment") or {}).get(TEAM_ENV, ""))
        return ClusterSize(
            name=cluster.name,
            user=cluster.username,
            team=team,
            worker_cores=float(config["worker_cores"]),
            worker_memory_gib=float(config["worker_memory"]) / GIB,
            workers=self._granted.get(cluster.name, 0),
        )

    async def _active(self) -> list[Any]:
        clusters = await self.list_clusters()  # pending or running
        known = {c.name for c in await self.list_clusters(statuses=_all_statuses())}
        for name in [n for n in self._starting if n in known]:
            del self._starting[name]  # the backend knows it now
        return clusters

    # ------------------------------------------------------------------ new_cluster

    async def start_cluster(self, user: User, cluster_options: Mapping[str, Any]) -> str:
        self._limits_state()
        _, config = await self.process_cluster_options(user, cluster_options)
        team = str(config.environment.get(TEAM_ENV, ""))
        per_user, per_team = self._team_limits(team)
        async with self._limits_lock:
            active = await self._active()
            mine = [c.name for c in active if c.username == user.name]
            mine += [n for n, (u, _) in self._starting.items() if u == user.name]
            ours = [c.name for c in active if self._size_of(c).team == team]
            ours += [n for n, (_, t) in self._starting.items() if t == team]
            if len(mine) >= int(per_user["clusters"]):
                raise LimitError(
                    f"cluster limit: {user.name} may run {per_user['clusters']} cluster(s) at "
                    f"once (per-user limit for team {team}) and runs {len(mine)}: "
                    f"{', '.join(sorted(mine))}. Close one (cluster.close() or "
                    "Gateway().stop_cluster(name)) first."
                )
            if len(ours) >= int(per_team["clusters"]):
                raise LimitError(
                    f"cluster limit: team {team} may run {per_team['clusters']} cluster(s) at "
                    f"once and runs {len(ours)} (yours: {', '.join(sorted(mine)) or 'none'})."
                )
            name = await super().start_cluster(user, cluster_options)
            self._starting[name] = (user.name, team)
            self._granted[name] = 0
        self.log.info("Limits: cluster %s of %s (team %s) admitted", name, user.name, team)
        return name

    # ------------------------------------------------------------------ scale / adapt

    async def _cap(self, cluster: Any, requested: int) -> tuple[int, str | None]:
        """Workers ``cluster`` may have when ``requested`` are asked for, and why fewer (None
        when all are granted). Called under the lock."""
        this = self._size_of(cluster)
        per_user, per_team = self._team_limits(this.team)
        others = [self._size_of(c) for c in await self._active() if c.name != cluster.name]
        caps = _per_cluster_caps(cluster.config, self._platform_max_workers(cluster))
        caps += _total_caps(
            this, [o for o in others if o.user == this.user], per_user, f"{this.user}'s"
        )
        caps += _total_caps(
            this, [o for o in others if o.team == this.team], per_team, f"team {this.team}'s"
        )
        binding = min(caps, key=lambda cap: cap.workers)
        if requested <= binding.workers:
            return requested, None
        return binding.workers, (
            f"Requested {_plural(requested, 'worker')} ({this.worker_cores:g} cores, "
            f"{this.worker_memory_gib:g} GiB each); granted {binding.workers}: "
            f"{binding.reason}."
        )

    def _platform_max_workers(self, cluster: Any) -> int | None:
        # The configured cluster_max_workers, before dask-gateway folds the cores and memory
        # limits into it (those are named separately).
        configured = self.config.get("ClusterConfig", {}).get("cluster_max_workers")
        if configured is None:
            value = cluster.config.get("cluster_max_workers")
            return None if value is None else int(value)
        return int(configured)

    async def forward_message_to_scheduler(self, cluster: Any, msg: dict[str, Any]) -> None:
        self._limits_state()
        state = _REQUEST.get()
        body = state.body if state is not None else msg
        op = msg.get("op")
        if op not in ("scale", "adapt"):
            return await super().forward_message_to_scheduler(cluster, msg)
        async with self._limits_lock:
            if op == "scale":
                requested = body.get("count")
                requested = requested if isinstance(requested, int) else msg["count"]
                granted, message = await self._cap(cluster, requested)
                msg = {**msg, "count": granted}
            else:
                requested = body.get("maximum")
                requested = requested if isinstance(requested, int) else msg["maximum"]
                granted, message = await self._cap(cluster, requested)
                msg = {**msg, "maximum": granted, "minimum": min(msg["minimum"], granted)}
                if message is not None:
                    message = f"adapt(maximum={requested}): {message}"
            previous = self._granted.get(cluster.name, 0)
            self._granted[cluster.name] = granted
        if state is not None:
            state.message = message
        if message is not None:
            self.log.info("Limits: cluster %s capped: %s", cluster.name, message)
        try:
            await super().forward_message_to_scheduler(cluster, msg)
        except BaseException:
            async with self._limits_lock:
                self._granted[cluster.name] = previous
            raise

    # ------------------------------------------------------------------ heartbeats

    async def on_cluster_heartbeat(self, cluster_name: str, msg: dict[str, Any]) -> None:
        self._limits_state()
        cluster = await self.get_cluster(cluster_name)
        if cluster is not None:
            async with self._limits_lock:
                granted = self._granted.get(cluster_name)
                count = int(msg.get("count", 0))
                if granted is None:
                    # Not seen since this gateway started: take what it asks, within limits.
                    granted, _ = await self._cap(cluster, count)
                    self._granted[cluster_name] = granted
                if count > granted:
                    self.log.info(
                        "Limits: cluster %s asked for %d workers, granted %d",
                        cluster_name,
                        count,
                        granted,
                    )
                    msg = {**msg, "count": granted}
        await super().on_cluster_heartbeat(cluster_name, msg)


def _all_statuses() -> list[Any]:
    from dask_gateway_server.models import ClusterStatus

    return list(ClusterStatus)


class LimitedKubeBackend(PlatformLimits, KubeBackend):  # type: ignore[misc]
    """dask-gateway's KubeBackend with the platform's limits (the gateway config selects it)."""


__all__ = [
    "LimitError",
    "LimitedKubeBackend",
    "PlatformLimits",
    "limits_middleware",
]
