"""The cost of keyless credentials: S3 latency and throughput, and STS calls over a long run.

Two local platforms run side by side, identical but for the lifetime of the credentials STS
hands a worker for its token: 3600 s (STS's default, what EKS workers get) and 900 s (STS's
minimum, "15-minute credentials").

* Latency and throughput: from alice's workers (team hydrology), PUT then GET objects of 1 KiB
  and 8 MiB with boto3, in three modes interleaved round by round - web identity (3600 s),
  web identity (900 s), and a static access key of an IAM user created in the 3600 s emulator
  for this benchmark with the team role's own policies (passed to the task as an argument, never
  through the environment) and deleted after it. Each round opens a new boto3 session, so the
  first PUT (credential resolution included) is reported apart.
* The emulator's peak of requests served at once (``Emulator.stats()["peak_in_flight"]``).
* STS calls per worker: on both platforms at once, every worker of two clusters - alice's with
  boto3, bob's (team climate) with s3fs - PUTs and GETs a 1 KiB object every second with one
  long-lived client, for 10 minutes (``--sts-seconds``); the emulator counts the
  AssumeRoleWithWebIdentity calls per role (``Emulator.stats()``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from bench.platforms import (
    by_value,
    gateway_for,
    local_platform,
    new_cluster,
    stop_cluster,
    wait_until,
)
from bench.platforms import worker_count as count_workers
from bench.report import Row, fmt_ratio
from bench.runner import Context
from bench.stats import ratio, summary

TITLE = "Keyless credentials: S3 from workers, web identity vs static keys"
KIB = 1024
MIB = 1024 * KIB
SIZES_FULL = {"1KiB": [KIB, 50], "8MiB": [8 * MIB, 8]}
SIZES_QUICK = {"1KiB": [KIB, 20], "8MiB": [8 * MIB, 3]}
WORKERS = 2
SESSIONS = {"long": 3600, "short": 900}
MODES = ("web-identity-3600", "web-identity-900", "static-key")
STATIC_USER = "dask-platform-bench-static-key"
LOAD_INTERVAL_S = 1.0
STEADY_SECONDS_FULL = 600
STEADY_SECONDS_QUICK = 60
LIBRARY_OF_USER = {"alice": "boto3", "bob": "s3fs"}
WEB_IDENTITY_METHOD = "assume-role-with-web-identity"


class CredentialsBenchError(RuntimeError):
    pass


class StaticKeyUser:
    """An emulator IAM user holding the team role's managed policies, and one access key."""

    def __init__(self, platform: Any, team: str) -> None:
        self.iam = platform.emulator().client("iam")
        self.role = platform.outputs()["team_role_arns"][team].rsplit("/", 1)[1]
        self.policies: list[str] = []
        self.key: dict[str, str] = {}

    def __enter__(self) -> StaticKeyUser:
        attached = self.iam.list_attached_role_policies(RoleName=self.role)["AttachedPolicies"]
        if self.iam.list_role_policies(RoleName=self.role)["PolicyNames"]:
            raise CredentialsBenchError(
                f"role {self.role} has inline policies; the static-key user would not match it"
            )
        self.iam.create_user(UserName=STATIC_USER)
        for policy in attached:
            self.iam.attach_user_policy(UserName=STATIC_USER, PolicyArn=policy["PolicyArn"])
            self.policies.append(policy["PolicyArn"])
        self.key = self.iam.create_access_key(UserName=STATIC_USER)["AccessKey"]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.key:
            self.iam.delete_access_key(UserName=STATIC_USER, AccessKeyId=self.key["AccessKeyId"])
        for arn in self.policies:
            self.iam.detach_user_policy(UserName=STATIC_USER, PolicyArn=arn)
        self.iam.delete_user(UserName=STATIC_USER)

    @property
    def pair(self) -> list[str]:
        return [self.key["AccessKeyId"], self.key["SecretAccessKey"]]


def _scaled_client(cluster: Any, workers: int) -> Any:
    client = cluster.get_client(set_as_default=False)
    cluster.scale(workers)
    wait_until(lambda: count_workers(client) >= workers, 180, 0.1, f"{workers} workers")
    return client


def _addresses(client: Any) -> list[str]:
    return sorted(client.scheduler_info(n_workers=-1)["workers"])


def _latency_round(
    client: Any,
    bucket: str,
    prefix: str,
    sizes: dict[str, list[int]],
    static_key: list[str] | None,
) -> list[dict[str, Any]]:
    from bench import worker_tasks

    futures = [
        client.submit(
            by_value(worker_tasks.s3_timings),
            bucket,
            f"{prefix}{index}/",
            sizes,
            static_key,
            workers=[address],
            pure=False,
        )
        for index, address in enumerate(_addresses(client))
    ]
    results: list[dict[str, Any]] = client.gather(futures)
    return results


def _latency_figures(samples: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "cold_first_put_s": summary([s["cold_first_put_s"] for s in samples]),
        "credential_methods": sorted({s["credential_method"] for s in samples}),
    }
    for label in samples[0]["sizes"]:
        size = samples[0]["sizes"][label]["bytes"]
        for op in ("put", "get"):
            values = [v for s in samples for v in s["sizes"][label][f"{op}_s"]]
            out[f"{label}_{op}"] = {
                "latency_s": summary(values, keep_samples=False),
                "mb_per_s": round(size * len(values) / sum(values) / 1e6, 2),
                "ops_per_s": round(len(values) / sum(values), 1),
            }
    return out


def _sts_by_role(platform: Any) -> dict[str, int]:
    stats = platform.emulator().stats()
    return {role: int(n) for role, n in stats["web_identity_by_role"].items()}


def run(context: Context) -> dict[str, Any]:
    import cloudpickle

    from bench import worker_tasks

    cloudpickle.register_pickle_by_value(worker_tasks)
    rounds = context.repetitions(full=5, quick=2)
    sizes = SIZES_QUICK if context.quick else SIZES_FULL
    steady_seconds = context.sts_seconds or (
        STEADY_SECONDS_QUICK if context.quick else STEADY_SECONDS_FULL
    )
    samples: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    steady: dict[str, Any] = {}
    emulator: dict[str, Any] = {}
    console = context.console
    with (
        local_platform(
            "credentials-3600", console, local={"web_identity_session_seconds": SESSIONS["long"]}
        ) as long_platform,
        local_platform(
            "credentials-900", console, local={"web_identity_session_seconds": SESSIONS["short"]}
        ) as short_platform,
    ):
        platforms = {"long": long_platform, "short": short_platform}
        gateways = {
            (kind, user): gateway_for(platform, user)
            for kind, platform in platforms.items()
            for user in LIBRARY_OF_USER
        }
        clusters: dict[tuple[str, str], Any] = {}
        clients: dict[tuple[str, str], Any] = {}
        try:
            with console.status("starting one cluster per user on each platform"):
                for which, gateway in gateways.items():
                    clusters[which] = new_cluster(gateway)
                    clients[which] = _scaled_client(clusters[which], WORKERS)
            outputs = long_platform.outputs()
            team = outputs["users"]["alice"][0]
            bucket = outputs["scratch_bucket"]
            with StaticKeyUser(long_platform, team) as user:
                modes: dict[str, tuple[Any, list[str] | None]] = {
                    "web-identity-3600": (clients[("long", "alice")], None),
                    "web-identity-900": (clients[("short", "alice")], None),
                    "static-key": (clients[("long", "alice")], user.pair),
                }
                with context.task("S3 latency rounds", total=rounds * len(MODES)) as step:
                    for index in range(rounds):
                        order = MODES[index % len(MODES) :] + MODES[: index % len(MODES)]
                        for mode in order:
                            client, static_key = modes[mode]
                            prefix = f"{team}/bench/{mode}/"
                            samples[mode] += _latency_round(
                                client, bucket, prefix, sizes, static_key
                            )
                            step(mode)
            steady = _steady_run(context, platforms, clients, steady_seconds)
            emulator = {
                kind: {"peak_in_flight": platform.emulator().stats()["peak_in_flight"]}
                for kind, platform in platforms.items()
            }
        finally:
            for which, cluster in clusters.items():
                stop_cluster(cluster, clients.get(which), platforms[which[0]])
            for gateway in gateways.values():
                gateway.close()

    latency = {mode: _latency_figures(samples[mode]) for mode in MODES}
    for mode in MODES:
        methods = latency[mode]["credential_methods"]
        expected = "explicit" if mode == "static-key" else WEB_IDENTITY_METHOD
        if methods != [expected]:
            raise CredentialsBenchError(
                f"{mode}: boto3 used {methods} credentials, not {expected}; the comparison "
                "would not measure what it claims"
            )
    ratios: dict[str, Any] = {}
    for mode in ("web-identity-3600", "web-identity-900"):
        for label in sizes:
            for op in ("put", "get"):
                figure = f"{label}_{op}"
                mine, static = latency[mode][figure], latency["static-key"][figure]
                ratios[f"{mode}/static:{figure}"] = {
                    "p50": ratio(mine["latency_s"]["median"], static["latency_s"]["median"]),
                    "p95": ratio(mine["latency_s"]["p95"], static["latency_s"]["p95"]),
                    "throughput": ratio(mine["mb_per_s"], static["mb_per_s"]),
                }
        ratios[f"{mode}/static:cold_first_put"] = ratio(
            latency[mode]["cold_first_put_s"]["median"],
            latency["static-key"]["cold_first_put_s"]["median"],
        )
    return {
        "parameters": {
            "rounds": rounds,
            "workers_per_cluster": WORKERS,
            "sizes": {
                label: {"bytes": s, "per_round_per_worker": n} for label, (s, n) in sizes.items()
            },
            "session_seconds": SESSIONS,
            "steady_seconds": steady_seconds,
            "steady_interval_s": LOAD_INTERVAL_S,
            "steady_library_by_user": LIBRARY_OF_USER,
            "service_account_token_seconds": 3600,
        },
        "figures": {"latency": latency, "ratios": ratios, "sts": steady, "emulator": emulator},
        "notes": [
            "The emulator is moto in one process on the same 2 cores as the workers, so absolute "
            "latencies are the emulator's, not S3's; the ratios compare the credential paths "
            "under identical conditions. It serves requests concurrently (before 2026-11-30 it "
            "served one at a time behind a lock; see 'Re-runs' above the tables).",
            "botocore refreshes temporary credentials when less than 15 minutes remain "
            "(advisory; 10 minutes mandatory), and its web-identity fetcher treats credentials "
            "within 15 minutes of expiry as expired - so 900 s credentials are refreshed with an "
            "STS call before nearly every request. ref: https://github.com/boto/botocore/blob/"
            "develop/botocore/credentials.py (_DEFAULT_ADVISORY_REFRESH_TIMEOUT, "
            "CachedCredentialFetcher.DEFAULT_EXPIRY_WINDOW_SECONDS)",
        ],
    }


def _steady_run(
    context: Context,
    platforms: Mapping[str, Any],
    clients: Mapping[tuple[str, str], Any],
    seconds: int,
) -> dict[str, Any]:
    from bench import worker_tasks

    before = {kind: _sts_by_role(p) for kind, p in platforms.items()}
    futures: dict[tuple[str, str], list[Any]] = {}
    for (kind, user), client in clients.items():
        outputs = platforms[kind].outputs()
        url = f"{outputs['scratch_urls'][outputs['users'][user][0]]}bench/steady/"
        futures[(kind, user)] = [
            client.submit(
                by_value(worker_tasks.s3_steady_load),
                url,
                seconds,
                LOAD_INTERVAL_S,
                LIBRARY_OF_USER[user],
                f"w{index}",
                workers=[address],
                pure=False,
            )
            for index, address in enumerate(_addresses(client))
        ]
    every = [f for fs in futures.values() for f in fs]
    started = time.monotonic()
    with context.task(f"{seconds} s of steady S3 load on {len(every)} workers", seconds) as step:
        elapsed = 0
        while not all(f.done() for f in every):
            time.sleep(1)
            now = int(time.monotonic() - started)
            if now > elapsed:
                step(f"{now}s", now - elapsed)
                elapsed = now
            if now > seconds + 300:
                raise CredentialsBenchError(f"the steady load did not finish in {seconds + 300}s")
    after = {kind: _sts_by_role(p) for kind, p in platforms.items()}
    result: dict[str, Any] = {}
    for (kind, user), fs in futures.items():
        outcomes = [f.result() for f in fs]
        outputs = platforms[kind].outputs()
        role = outputs["team_role_arns"][outputs["users"][user][0]]
        calls = after[kind].get(role, 0) - before[kind].get(role, 0)
        operations = sum(o["operations"] for o in outcomes)
        result[f"{kind}:{user}"] = {
            "session_seconds": SESSIONS[kind],
            "library": LIBRARY_OF_USER[user],
            "workers": len(outcomes),
            "sts_calls": calls,
            "sts_calls_per_worker": round(calls / len(outcomes), 1),
            "s3_operations_per_worker": round(operations / len(outcomes), 1),
            "sts_calls_per_s3_operation": ratio(calls, operations, 3),
            "errors": sum(o["errors"] for o in outcomes),
            "first_errors": [e for o in outcomes for e in o["first_errors"]][:3],
        }
    for user in LIBRARY_OF_USER:
        result[f"short_to_long:{user}"] = ratio(
            result[f"short:{user}"]["sts_calls_per_worker"],
            result[f"long:{user}"]["sts_calls_per_worker"],
            1,
        )
    return result


def _ms(summary_: Mapping[str, Any], key: str) -> str:
    return f"{summary_[key] * 1000:.1f}"


def rows(document: Mapping[str, Any]) -> list[Row]:
    figures = document["figures"]
    latency, ratios, sts = figures["latency"], figures["ratios"], figures["sts"]
    params = document["parameters"]
    result = []
    for label in params["sizes"]:
        for op in ("put", "get"):
            key = f"{label}_{op}"
            cells = []
            for mode in MODES:
                item = latency[mode][key]
                lat = item["latency_s"]
                cells.append(
                    f"{mode}: {_ms(lat, 'median')} / {_ms(lat, 'p95')} ms, "
                    + (f"{item['mb_per_s']} MB/s" if label != "1KiB" else f"{item['ops_per_s']}/s")
                )
            ratio_cells = []
            for mode in ("web-identity-3600", "web-identity-900"):
                r = ratios[f"{mode}/static:{key}"]
                ratio_cells.append(
                    f"{mode.removeprefix('web-identity-')} s: p50 **{fmt_ratio(r['p50'])}**, "
                    f"p95 {fmt_ratio(r['p95'])}, throughput {fmt_ratio(r['throughput'])}"
                )
            n = latency["static-key"][key]["latency_s"]["n"]
            result.append(
                Row(
                    f"S3 {op.upper()} {label}: p50 / p95, throughput (n={n} per mode)",
                    "<br>".join(cells),
                    "web identity / static key:<br>" + "<br>".join(ratio_cells),
                )
            )
    cold = "<br>".join(
        f"{mode}: {latency[mode]['cold_first_put_s']['median'] * 1000:.0f} ms" for mode in MODES
    )
    result.append(
        Row(
            "first PUT of a new boto3 session (credentials resolved), median",
            cold,
            ", ".join(
                f"{m.removeprefix('web-identity-')} s/static "
                f"**{fmt_ratio(ratios[f'{m}/static:cold_first_put'])}**"
                for m in ("web-identity-3600", "web-identity-900")
            ),
        )
    )
    peaks = figures.get("emulator") or {}
    if peaks:
        result.append(
            Row(
                "emulator: most requests inside moto at one moment (whole run)",
                ", ".join(
                    f"{SESSIONS[kind]} s platform: {peaks[kind]['peak_in_flight']}"
                    for kind in SESSIONS
                ),
                "",
            )
        )
    minutes = params["steady_seconds"] / 60
    for user, library in params["steady_library_by_user"].items():
        long, short = sts[f"long:{user}"], sts[f"short:{user}"]
        result.append(
            Row(
                f"STS calls per worker in {minutes:g} min of one PUT + GET per second ({library})",
                f"3600 s credentials: {long['sts_calls_per_worker']:g} "
                f"({long['s3_operations_per_worker']:g} S3 operations)<br>"
                f"900 s credentials: {short['sts_calls_per_worker']:g} "
                f"({short['s3_operations_per_worker']:g} S3 operations, "
                f"{short['sts_calls_per_s3_operation']} STS call per S3 operation)",
                f"900 s / 3600 s **{fmt_ratio(sts[f'short_to_long:{user}'])}**",
            )
        )
    return result
