"""Fair share under load (issue 15): 20 users on one local platform at once, each creating and
scaling clusters past their limits, while a probe measures the gateway's response time.

Limits for the run: each user 1 cluster and 1 worker core, each team (10 users each) 4 worker
cores, one-core workers. Every user, in its own thread, at once: ``new_cluster`` (in limit),
a second ``new_cluster`` (over the per-user cluster limit: must be refused naming the limit),
``scale(1)`` (in the user's limit; the team's 4 cores go to the first 4 of its 10 users and the
rest must be capped to 0 with the team limit named), ``scale(3)`` (over the user's limit: must
be capped, with the limit named), then close. Afterwards no cluster may be left. Loopback only,
bounded: one round, 20 users, 4 requests each.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from bench.platforms import gateway_for, local_platform
from bench.report import Row
from bench.runner import Context
from bench.stats import summary

TITLE = "Limits under load: 20 users past their limits at once"
USERS = [f"user{i:02d}" for i in range(20)]
TEAMS = {"hydrology": "dask-hydrology", "climate": "dask-climate"}
TEAM_WORKER_CORES = 4
LIMITS = {
    "per_user": {"clusters": 1, "worker_cores": 1, "worker_memory_gib": 8},
    "per_team": {"clusters": 20, "worker_cores": TEAM_WORKER_CORES, "worker_memory_gib": 64},
}
PROBE_PERIOD_S = 0.5


def _team_of(index: int) -> str:
    return list(TEAMS)[index % 2]


def _scale(gateway: Any, cluster_name: str, n: int) -> str | None:
    """``scale(n)`` through the client's own request path; the reply's message (the one the
    client shows as a GatewayWarning). Read from the reply, not caught as a warning:
    ``warnings.catch_warnings`` is process-wide and 20 threads would read each other's."""

    async def request() -> dict[str, Any]:
        url = f"{gateway.address}/api/v1/clusters/{cluster_name}/scale"
        response = await gateway._request("POST", url, json={"count": n})
        reply: dict[str, Any] = await response.json()
        return reply

    reply = gateway.sync(request)
    return None if reply["ok"] else str(reply["msg"])


def _granted(cluster: Any) -> int:
    client = cluster.get_client()
    return int(
        client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.services["gateway"].count)
    )


def _user_run(platform: Any, user: str, start: threading.Barrier, out: dict[str, Any]) -> None:
    from dask_gateway import GatewayClusterError

    record: dict[str, Any] = {"user": user, "timings": {}}
    out[user] = record
    gateway = gateway_for(platform, user)
    options = gateway.cluster_options()
    options.worker_cores = 1
    options.worker_memory = 1.0
    start.wait()
    began = time.monotonic()
    cluster = gateway.new_cluster(options)
    record["timings"]["new_cluster_s"] = time.monotonic() - began
    try:
        began = time.monotonic()
        try:
            gateway.new_cluster(options)
            record["second_cluster"] = "served"
        except (GatewayClusterError, ValueError) as exc:
            record["second_cluster"] = str(exc)
        record["timings"]["refused_s"] = time.monotonic() - began
        for n in (1, 3):
            began = time.monotonic()
            message = _scale(gateway, cluster.name, n)
            record["timings"][f"scale_{n}_s"] = time.monotonic() - began
            record[f"scale_{n}"] = {"message": message, "granted": _granted(cluster)}
            if record[f"scale_{n}"]["granted"] and "held_from" not in record:
                record["held_from"] = time.monotonic()
    finally:
        # The gateway holds the worker until it stops the cluster, i.e. from before the reply
        # above to after this moment: [held_from, held_until] lies inside what it held.
        record["held_until"] = time.monotonic()
        cluster.shutdown()
        gateway.close()


def _probe(platform: Any, stop: threading.Event, samples: list[float]) -> None:
    gateway = gateway_for(platform, USERS[0])
    try:
        while not stop.is_set():
            began = time.monotonic()
            gateway.list_clusters()
            samples.append(time.monotonic() - began)
            stop.wait(PROBE_PERIOD_S)
    finally:
        gateway.close()


def _check(records: Mapping[str, Any]) -> dict[str, Any]:
    """The run's invariants; every violation is listed (the result records them)."""
    problems: list[str] = []
    per_team: dict[str, int] = {team: 0 for team in TEAMS}
    at_once: dict[str, int] = {}
    served_in_limit = capped = refused = 0
    for index, user in enumerate(USERS):
        record = records.get(user)
        if record is None or "scale_3" not in record:
            problems.append(f"{user}: did not finish")
            continue
        team = _team_of(index)
        if "cluster limit: " + user + " may run 1 cluster(s)" in record["second_cluster"]:
            refused += 1
        else:
            problems.append(f"{user}: second cluster not refused: {record['second_cluster']}")
        one, three = record["scale_1"], record["scale_3"]
        per_team[team] += one["granted"]
        if one["granted"] == 1 and one["message"] is None:
            served_in_limit += 1
        elif one["granted"] == 0 and one["message"] and f"team {team}'s" in one["message"]:
            capped += 1
        else:
            problems.append(f"{user}: scale(1) -> {one}")
        if three["granted"] > 1 or not three["message"] or "limit is" not in three["message"]:
            problems.append(f"{user}: scale(3) -> {three}")
        else:
            capped += 1
    for team in TEAMS:
        # Users finish at different times and their workers return to the team: the limit
        # holds at every moment, checked as the most workers held at once.
        held = [
            (r["held_from"], r["held_until"])
            for i, u in enumerate(USERS)
            if _team_of(i) == team and "held_from" in (r := records.get(u) or {})
        ]
        events = sorted([(a, 1) for a, _ in held] + [(b, -1) for _, b in held])
        now = most = 0
        for _, step in events:
            now += step
            most = max(most, now)
        at_once[team] = most
        if most > TEAM_WORKER_CORES:
            problems.append(f"team {team}: {most} workers held at once, limit {TEAM_WORKER_CORES}")
    return {
        "problems": problems,
        "refused_second_cluster": refused,
        "served_in_limit": served_in_limit,
        "capped_with_message": capped,
        "granted_per_team_over_the_run": per_team,
        "most_held_at_once_per_team": at_once,
    }


def run(context: Context) -> dict[str, Any]:
    local = {"users": {u: {"groups": [TEAMS[_team_of(i)]]} for i, u in enumerate(USERS)}}
    records: dict[str, Any] = {}
    probe_samples: list[float] = []
    with local_platform("limits", context.console, local=local, stack={"limits": LIMITS}) as p:
        start = threading.Barrier(len(USERS))
        stop = threading.Event()
        probe = threading.Thread(target=_probe, args=(p, stop, probe_samples), daemon=True)
        probe.start()
        threads = [
            threading.Thread(target=_user_run, args=(p, u, start, records), daemon=True)
            for u in USERS
        ]
        began = time.monotonic()
        with context.task("20 users", total=len(threads)) as step:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=900)
                step()
        wall_s = time.monotonic() - began
        stop.set()
        probe.join(timeout=30)
        leftover = [c.name for u in USERS for c in gateway_for(p, u).list_clusters()]
    checks = _check(records)
    if leftover:
        checks["problems"].append(f"clusters left after the users closed: {leftover}")
    timings: dict[str, list[float]] = {}
    for record in records.values():
        for key, value in record["timings"].items():
            timings.setdefault(key, []).append(value)
    return {
        "parameters": {"users": len(USERS), "limits": LIMITS, "probe_period_s": PROBE_PERIOD_S},
        "figures": {
            "wall_s": round(wall_s, 2),
            "requests": {key: summary(values) for key, values in sorted(timings.items())},
            "probe_list_clusters_s": summary(probe_samples),
            "probe_samples": len(probe_samples),
            **checks,
        },
        "notes": [
            "Each figure: seconds from the client's call to its return, all 20 users at once "
            "on one local platform (schedulers and workers are local processes on 2 cores).",
            "A probe lists clusters every 0.5 s throughout: the gateway's responsiveness.",
        ],
    }


def _cell(entry: Mapping[str, Any]) -> str:
    return f"{entry['median']:.2f} s [{entry['min']:.2f}-{entry['max']:.2f}]"


def rows(document: Mapping[str, Any]) -> list[Row]:
    figures = document["figures"]
    requests = figures["requests"]
    names = {
        "new_cluster_s": "new_cluster (in limit)",
        "refused_s": "second new_cluster (refused: per-user cluster limit)",
        "scale_1_s": "scale(1) (served, or capped at the team's cores)",
        "scale_3_s": "scale(3) (capped: per-user cores)",
    }
    out = [Row(label, _cell(requests[key])) for key, label in names.items() if key in requests]
    out.append(
        Row(
            f"gateway list_clusters during the run ({figures['probe_samples']} probes)",
            _cell(figures["probe_list_clusters_s"]),
        )
    )
    out.append(
        Row(
            "outcomes",
            f"{figures['refused_second_cluster']}/20 refused, {figures['served_in_limit']} "
            f"served in limit, {figures['capped_with_message']} capped with the limit named; "
            f"most workers held at once per team: {figures['most_held_at_once_per_team']} "
            f"(limit {TEAM_WORKER_CORES}); problems: {len(figures['problems'])}",
        )
    )
    return out
