"""`dask-platform demo` (`make demo`): keyless S3 from real Dask workers, end to end.

Starts the local platform (unless one is already running, which is then left running), and as
alice (team hydrology): creates a cluster with options, scales to two workers, prints the
report of :func:`dask_platform.runbooks.verify.verify` (what ``verify-workers`` prints: each
worker's AWS identity, no key variable, its team's prefix written and read, team climate's
prefix denied, object stores as granted, versions), writes and reads a dataset under her team's
scratch prefix FROM THE WORKERS with s3fs, writes and reads the stand-in OSN store by its
profile name (team climate's role is denied the store's key by IAM), shows PANGEO_SCRATCH is her
own prefix, shuts the cluster down and stops the platform. Exits 0 only if every check held.

``--worker-image`` (``make demo-images``) runs the schedulers and workers as podman containers
of the worker image instead of processes of this virtualenv, and adds an xarray computation.
The worker image has no dask_platform package: every function the demo runs on workers travels
by value (cloudpickle), as a notebook's own functions do.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from dask_platform.commands.progress import step_progress

DEMO_USER = "alice"
OTHER_TEAM_USER = "bob"
WORKERS = 2
RECORDS = 400
PARTITIONS = 4


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


def _records() -> list[dict[str, Any]]:
    # A small daily river-gauge table: 4 stations x 100 days, values derived, not random, so the
    # read-back can be compared exactly.
    return [
        {"station": f"gauge-{i % 4}", "day": i // 4, "discharge_m3s": round(10 + (i % 17) * 0.5, 2)}
        for i in range(RECORDS)
    ]


def send_probes_by_value() -> None:
    """Pickle the modules whose functions run on workers by value, so a worker needs nothing
    of dask_platform (the worker image does not install it); each of them imports only the
    standard library at module level.
    ref: https://github.com/cloudpipe/cloudpickle#overriding-pickles-serialization-mechanism-for-importable-constructs
    """
    import cloudpickle

    from dask_platform import credentials, object_stores
    from dask_platform.local import object_stores as local_object_stores
    from dask_platform.local import probes

    for module in (probes, credentials, object_stores, local_object_stores, sys.modules[__name__]):
        cloudpickle.register_pickle_by_value(module)


def my_variable() -> str | None:
    """Run ON a worker: the MY_VARIABLE the demo sets through the cluster options."""
    import os

    return os.environ.get("MY_VARIABLE")


def xarray_mean(url: str) -> dict[str, Any]:
    """Run ON a worker: a small xarray computation (a gridded temperature field, its monthly
    climatology) written to ``url`` (``s3://.../x.zarr``) with the worker's own role and read
    back. Returns ``{"ok": bool, "error": str | None, "climatology": [12 floats]}``."""
    import numpy as np
    import pandas as pd
    import xarray as xr

    time_index = pd.date_range("2000-01-01", periods=730, freq="D")
    days = np.arange(time_index.size)
    field = 15 + 10 * np.sin(2 * np.pi * days / 365.25)[:, None, None] * np.ones((1, 4, 8))
    data = xr.Dataset(
        {"tas": (("time", "lat", "lon"), field)},
        coords={"time": time_index, "lat": np.linspace(-45, 45, 4), "lon": np.arange(8) * 45.0},
    )
    try:
        data.to_zarr(url, mode="w", consolidated=True)
        back = xr.open_zarr(url, consolidated=True).load()
        climatology = back["tas"].groupby("time.month").mean(("time", "lat", "lon"))
        expected = data["tas"].groupby("time.month").mean(("time", "lat", "lon"))
    except Exception as exc:  # reported, not raised: the demo shows what a user would see
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "climatology": []}
    values = [round(float(v), 6) for v in climatology.values]
    return {
        "ok": values == [round(float(v), 6) for v in expected.values],
        "error": None,
        "climatology": values,
    }


def _xarray_check(client: Any, team_url: str) -> Check:
    from dask_platform.local.probes import by_value

    climate = client.submit(by_value(xarray_mean), f"{team_url}demo/tas.zarr", pure=False).result()
    return Check(
        f"xarray: a worker wrote {team_url}demo/tas.zarr and computed its climatology",
        bool(climate["ok"]) and len(climate["climatology"]) == 12,
        climate["error"]
        or f"12 monthly means, {min(climate['climatology']):.1f} to "
        f"{max(climate['climatology']):.1f}",
    )


def run_demo(
    console: Console,
    outputs: dict[str, Any],
    passwords: dict[str, str],
    xarray_on_workers: bool = False,
) -> list[Check]:
    """The demo's checks as alice; ``xarray_on_workers`` adds the xarray computation (the worker
    image has xarray and zarr; this virtualenv, the client's, does not)."""
    import dask
    import dask.bag as db
    from dask_gateway import BasicAuth, Gateway

    from dask_platform.commands.verify import report_table
    from dask_platform.local import probes
    from dask_platform.runbooks.verify import verify

    send_probes_by_value()

    checks: list[Check] = []
    team = outputs["users"][DEMO_USER][0]
    other_team = outputs["users"][OTHER_TEAM_USER][0]
    team_url = outputs["scratch_urls"][team]
    role_name = outputs["team_role_arns"][team].split("/")[-1]

    gateway = Gateway(
        outputs["gateway_address"],
        proxy_address=outputs["gateway_proxy_address"],
        auth=BasicAuth(DEMO_USER, passwords[DEMO_USER]),
    )
    cluster = None
    try:
        options = gateway.cluster_options()
        options.worker_cores = 1
        options.worker_memory = 1.0
        options.environment = {"MY_VARIABLE": "1"}
        with step_progress(console, "workers", transient=False) as progress:
            task = progress.add_task(f"{DEMO_USER}: creating a cluster", total=WORKERS)
            cluster = gateway.new_cluster(options)
            cluster.scale(WORKERS)
            client = cluster.get_client()
            progress.update(task, description=f"{DEMO_USER}: waiting for workers")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                count = len(client.scheduler_info(n_workers=-1)["workers"])
                progress.update(task, completed=min(count, WORKERS))
                if count >= WORKERS:
                    break
                time.sleep(0.3)
        workers = client.scheduler_info(n_workers=-1)["workers"]
        checks.append(
            Check(
                f"cluster scaled to {WORKERS} workers", len(workers) == WORKERS, f"{len(workers)}"
            )
        )

        # The keyless path, checked the way `verify-workers` checks it (one implementation):
        # per worker the team's role, no key or identity override, its prefix written and read,
        # the other team's prefix denied, object stores as granted, versions = this client.
        report = verify(client, outputs, team=team, other_team=other_team)
        console.print(report_table(report, f"Workers of {DEMO_USER}'s cluster (team {team})"))
        checks.append(
            Check(
                f"every worker is the assumed role {role_name}, holds no AWS key, writes and "
                f"reads {team}'s prefix and is denied {other_team}'s (runbooks.verify)",
                len(report.workers) == WORKERS and not report.findings,
                "; ".join(report.findings) or f"{len(report.workers)} workers, no finding",
            )
        )
        variables = client.run(my_variable)
        checks.append(
            Check(
                "MY_VARIABLE=1 reached every worker",
                bool(variables) and all(v == "1" for v in variables.values()),
                ", ".join(str(v) for v in variables.values()),
            )
        )

        records = _records()
        prefix = f"{team_url}demo/"
        parts = db.from_sequence(records, npartitions=PARTITIONS).to_delayed()
        writes = [
            dask.delayed(probes.by_value(probes.write_records))(f"{prefix}part-{i}.json", part)
            for i, part in enumerate(parts)
        ]
        written = client.compute(writes, sync=True)
        listed = client.submit(probes.by_value(probes.list_prefix), prefix, pure=False).result()
        read_back = db.from_sequence(written, npartitions=PARTITIONS).map(
            probes.by_value(probes.read_records)
        )
        rows = [row for chunk in client.compute(read_back, sync=True) for row in chunk]
        checks.append(
            Check(
                f"workers wrote and read {RECORDS} records in {PARTITIONS} files under {prefix}",
                sorted(rows, key=lambda r: (r["station"], r["day"]))
                == sorted(records, key=lambda r: (r["station"], r["day"]))
                and len(listed) == PARTITIONS,
                f"{len(rows)} records read back; {len(listed)} objects listed",
            )
        )

        if xarray_on_workers:
            checks.append(_xarray_check(client, team_url))

        # Object stores by profile name and the personal scratch prefix.
        from dask_platform.local.object_stores import demo_checks

        checks += [Check(*c) for c in demo_checks(client, outputs, DEMO_USER, other_team)]

        name = cluster.name
        client.close()
        cluster.shutdown()
        cluster = None
        remaining = [c.name for c in gateway.list_clusters()]
        checks.append(Check("the cluster is shut down", name not in remaining, f"{name} gone"))
    finally:
        if cluster is not None:
            cluster.shutdown()
        gateway.close()
    return checks


def demo(
    worker_image: str = typer.Option(
        None,
        "--worker-image",
        help="Run schedulers and workers as podman containers of this image (e.g. "
        "localhost/dask-platform/worker:lock-<hash> from `make images`; `make demo-images` "
        "builds it and passes it); default: processes of this virtualenv.",
    ),
) -> None:
    """Run the end-to-end keyless-S3 demo on the embedded local platform."""
    from dask_platform.charts import ChartError
    from dask_platform.config.errors import StackConfigError
    from dask_platform.local.platform import LocalPlatform
    from dask_platform.local.processes import ComponentError

    # Wide enough for role ARNs when the output is a log rather than a terminal (rich's 80).
    console = Console(width=None if sys.stdout.isatty() else 120)
    started_at = time.monotonic()
    platform = LocalPlatform(container_image=worker_image)
    running = any(c.alive for c in platform.status())
    checks: list[Check] = []
    try:
        if running:
            console.print(
                "using the local platform that is already running (left running; it keeps the "
                "worker image it was started with)"
            )
            outputs = platform.outputs()
        else:
            with console.status("starting the local platform") as status:
                outputs = platform.up(progress=lambda m: status.update(m))
            console.print(
                f"[green]✓[/green] local platform up: gateway {outputs['gateway_address']}, "
                f"AWS emulator {outputs['aws_endpoint_url']} (IAM enforced), workers: "
                + (f"containers of {worker_image}" if worker_image else "virtualenv processes")
            )
        stats_before = (
            platform.emulator().stats()["counters"].get("sts:AssumeRoleWithWebIdentity", 0)
        )
        checks = run_demo(
            console, outputs, platform.passwords(), xarray_on_workers=bool(worker_image)
        )
        sts_calls = (
            platform.emulator().stats()["counters"].get("sts:AssumeRoleWithWebIdentity", 0)
            - stats_before
        )
        console.print(
            f"STS AssumeRoleWithWebIdentity calls seen by the emulator: {sts_calls} "
            f"({sts_calls / WORKERS:.1f} per worker)"
        )
    except (StackConfigError, ComponentError, ChartError) as exc:
        console.print(f"[red]✗ {exc}[/red]")
        checks.append(Check("the local platform runs", False, str(exc).splitlines()[0]))
    finally:
        if not running:
            with console.status("stopping the local platform"):
                report = platform.down()
            checks.append(
                Check(
                    "the platform stopped; no process left",
                    not report.leftovers,
                    f"stopped {', '.join(report.stopped) or 'nothing'}",
                )
            )

    table = Table(title="make demo")
    table.add_column("check", overflow="fold")
    table.add_column("result")
    table.add_column("observed", overflow="fold")
    for check in checks:
        table.add_row(
            check.name, "[green]✓[/green]" if check.passed else "[red]✗[/red]", check.detail
        )
    console.print(table)
    ok = bool(checks) and all(c.passed for c in checks)
    verdict = "[green]all checks held[/green]" if ok else "[red]a check failed[/red]"
    console.print(f"{verdict} in {time.monotonic() - started_at:.0f}s")
    if not ok:
        raise typer.Exit(1)
