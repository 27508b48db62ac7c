"""`dask-platform verify-workers`: trust, but verify - per worker, on a real cluster.

Starts a cluster on a site (or attaches to one with --cluster) and reports, per worker: its
AWS identity, any AWS key variable or identity override in its environment, a write/read probe
under its team's scratch prefix, a write probe under another team's prefix (which must be
denied), and package versions against this client. Exit 1 on any finding; 2 when the cluster
cannot be reached or verified as asked.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dask_platform.commands.progress import step_progress
from dask_platform.runbooks import options as opt
from dask_platform.runbooks.verify import VerifyReport


def verify_workers(
    outputs: list[Path] = opt.OUTPUTS,
    state_dir: Path = opt.STATE_DIR,
    site: str | None = opt.SITE,
    user: str | None = opt.USER,
    password_stdin: bool = opt.PASSWORD_STDIN,
    cluster_name: str | None = typer.Option(
        None,
        "--cluster",
        "-c",
        help="Attach to this running cluster of yours; default: start one and stop it after.",
    ),
    workers: int = typer.Option(
        2, "--workers", "-n", min=1, max=100, help="Workers of the started cluster."
    ),
    team: str | None = typer.Option(
        None, "--team", help="The cluster's team; default: what its workers report."
    ),
    other_team: str | None = typer.Option(
        None,
        "--other-team",
        help="The team whose prefix must be denied; default: the first other team.",
    ),
    keep: bool = typer.Option(
        False, "--keep", help="Leave the started cluster running (for a closer look)."
    ),
    timeout: float = typer.Option(
        180, "--timeout", min=10, help="Seconds to wait for the cluster and its workers."
    ),
) -> None:
    """Prove per worker: team role, no keys, own prefix writable, others' denied, same versions."""
    from dask_platform.runbooks.access import Credentials, read_password_stdin
    from dask_platform.runbooks.verify import VerifyError, verify
    from dask_platform.sites import SiteError, load_catalog

    console = Console()
    started_at = time.monotonic()
    try:
        catalog = load_catalog(outputs, state_dir)
        chosen = catalog[site] if site is not None else next(iter(catalog))
        password = read_password_stdin() if password_stdin else None
        credentials = Credentials(user, password)
        gateway = credentials.gateway(chosen)
    except SiteError as exc:
        console.print(f"[red]✗ {escape(str(exc))}[/red]")
        raise typer.Exit(2) from None

    cluster = None
    started = False
    try:
        with step_progress(console) as progress:
            if cluster_name is not None:
                task = progress.add_task(f"attaching to {cluster_name} at {chosen.name}", total=1)
                cluster = gateway.connect(cluster_name)
            else:
                task = progress.add_task(
                    f"starting a cluster at {chosen.name} ({workers} workers)", total=workers
                )
                options = gateway.cluster_options()
                if team is not None and hasattr(options, "team"):
                    options.team = team
                cluster = gateway.new_cluster(options)
                started = True
                cluster.scale(workers)
            client = cluster.get_client(set_as_default=False)
            # An attached cluster is verified as it is (no worker is itself a finding).
            deadline = time.monotonic() + (timeout if started else 0)
            while True:
                count = len(client.scheduler_info(n_workers=-1)["workers"])
                progress.update(task, completed=min(count, progress.tasks[task].total or 1))
                if count >= workers or time.monotonic() >= deadline:
                    break
                time.sleep(0.5)
            progress.update(task, description="probing every worker")
            report = verify(client, chosen.outputs, team=team, other_team=other_team)
            client.close()
    except VerifyError as exc:
        console.print(f"[red]✗ {escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    except (OSError, ValueError, RuntimeError, TimeoutError) as exc:
        console.print(f"[red]✗ cannot verify a cluster at {chosen.name}: {escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    finally:
        if cluster is not None:
            if started and not keep:
                cluster.shutdown()
            else:
                cluster.close(shutdown=False)
        credentials.close()

    console.print(
        report_table(
            report, f"verify-workers: {cluster.name} at site {chosen.name} (team {report.team})"
        )
    )
    for finding in report.findings:
        console.print(f"[red]✗ {escape(finding)}[/red]")
    elapsed = time.monotonic() - started_at
    if report.findings:
        console.print(
            f"[red]{len(report.findings)} finding(s) on {len(report.workers)} worker(s)[/red] "
            f"in {elapsed:.0f}s"
        )
        raise typer.Exit(1)
    console.print(
        f"[green]✓ {len(report.workers)} worker(s) hold no key and act as "
        f"{report.role_arn.rsplit('/', 1)[-1]} only[/green] in {elapsed:.0f}s"
    )


def report_table(report: VerifyReport, title: str) -> Table:
    """The report of :func:`dask_platform.runbooks.verify.verify` as a table: per worker its
    assumed role, AWS key variables, its team's prefix, the other team's prefix, object stores
    and versions. ``verify-workers`` and ``demo`` print this same table."""
    table = Table(title=title)
    for column in (
        "worker",
        "assumed role",
        "AWS keys",
        f"{report.team} prefix",
        f"{report.other_team or '-'} prefix",
        "object stores",
        "versions",
        "",
    ):
        table.add_column(column, overflow="fold", no_wrap=column in {"worker", "assumed role"})
    for worker in report.workers:
        r = worker.report
        caller = r.get("caller_arn")
        # arn:aws:sts::<account>:assumed-role/<role>/<session>: the role is what matters.
        parts = caller.split(":", 5)[-1].split("/") if caller else []
        identity = (
            parts[1]
            if len(parts) > 1 and parts[0] == "assumed-role"
            else (caller or f"[red]{r.get('caller_error')}[/red]")
        )
        own = (
            "write+read ✓"
            if r["team_write"]["ok"] and r["team_read"].get("matches")
            else (f"[red]{r['team_write'].get('error') or r['team_read'].get('error')}[/red]")
        )
        foreign = r["other_team_write"]
        other = (
            "[red]WRITE ALLOWED[/red]"
            if foreign["ok"]
            else (
                "denied ✓"
                if foreign["error"] == "AccessDenied"
                else f"[red]{foreign['error']}[/red]"
            )
        )
        table.add_row(
            worker.address.removeprefix("tls://"),
            identity,
            f"[red]{', '.join(r['key_variables'] + r['identity_overrides'])}[/red]"
            if r["key_variables"] or r["identity_overrides"]
            else "none ✓",
            own,
            other if report.other_team else "-",
            _object_stores_cell(report.object_stores, r.get("object_stores") or {}),
            "[red]" + ", ".join(f"{p} {v}" for p, v in worker.drifted.items()) + "[/red]"
            if worker.drifted
            else "= client ✓",
            "[red]✗[/red]" if worker.findings else "[green]✓[/green]",
        )
    return table


def _object_stores_cell(granted: dict[str, bool], access: dict[str, dict[str, Any]]) -> str:
    """Per store: its key readable when granted, AccessDenied when not."""
    cells = []
    for store, allowed in granted.items():
        outcome = access.get(store, {"ok": False, "error": "not checked"})
        if allowed:
            cells.append(
                f"{store} ✓" if outcome["ok"] else f"[red]{store}: {outcome['error']}[/red]"
            )
        elif not outcome["ok"] and "AccessDenied" in str(outcome["error"]):
            cells.append(f"{store} denied ✓")
        else:
            cells.append(f"[red]{store}: {'READABLE' if outcome['ok'] else outcome['error']}[/red]")
    return "\n".join(cells) or "-"
