"""`dask-platform clusters list | stop`: your clusters on one site or all, and the idle ones.

A gateway shows each user only their own clusters, so nothing here can see or stop anyone
else's. Idle = no task processing, queued or waiting for a worker, and no task activity, for
the given duration (asked of each cluster's scheduler).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dask_platform.commands.progress import step_progress
from dask_platform.runbooks import options as opt

app = typer.Typer(
    help="Your dask-gateway clusters across sites: list them, stop the idle ones.",
    no_args_is_help=True,
)

IDLE_FOR = typer.Option(
    None,
    "--idle-for",
    help="A duration such as 90s, 30m, 2h: only clusters idle at least this long.",
)


def _seconds(text: str | None) -> float | None:
    if text is None:
        return None
    from dask.utils import parse_timedelta

    try:
        value = parse_timedelta(text, default="s")
    except (ValueError, KeyError, TypeError):
        raise typer.BadParameter(
            f"{text!r} is not a duration; e.g. 90s, 30m, 2h", param_hint="--idle-for"
        ) from None
    if value is None or value < 0:
        raise typer.BadParameter(f"{text!r} must be positive", param_hint="--idle-for")
    return float(value)


def _survey(
    console: Console,
    outputs: list[Path],
    state_dir: Path,
    site: str | None,
    all_sites: bool,
    user: str | None,
    password_stdin: bool,
) -> tuple[list, list[str], dict, Any]:
    from dask_platform.runbooks.access import (
        Credentials,
        choose_sites,
        read_password_stdin,
    )
    from dask_platform.runbooks.clusters import survey
    from dask_platform.sites import SiteError, load_catalog

    try:
        catalog = load_catalog(outputs, state_dir)
        sites = choose_sites(catalog, site, all_sites)
        credentials = Credentials(user, read_password_stdin() if password_stdin else None)
    except SiteError as exc:
        console.print(f"[red]✗ {escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    states = []
    unreachable = []
    gateways = {}
    with step_progress(console, "sites") as progress:
        task = progress.add_task("asking the sites", total=len(sites))
        for chosen in sites:
            progress.update(task, description=f"asking {chosen.name} and its schedulers")
            try:
                gateway = credentials.gateway(chosen)
                states.extend(survey(gateway, chosen.name))
                gateways[chosen.name] = gateway
            except SiteError as exc:
                credentials.close()
                console.print(f"[red]✗ {escape(str(exc))}[/red]")
                raise typer.Exit(2) from None
            except Exception as exc:
                unreachable.append(f"{chosen.name}: {type(exc).__name__}: {exc}".splitlines()[0])
            progress.advance(task)
    return states, unreachable, gateways, credentials


def _table(title: str, states: list, idle_for: float | None, extra: dict | None = None) -> Table:
    from dask_platform.runbooks.clusters import format_duration

    table = Table(title=title)
    for column in ("site", "cluster", "status", "workers", "started", "idle for"):
        table.add_column(column, overflow="fold", no_wrap=column in {"cluster", "started"})
    # Listing: where to look; stopping: what happened.
    table.add_column("dashboard" if extra is None else "action", overflow="fold")
    for s in states:
        idle = (
            "busy"
            if s.busy
            else (f"[red]{escape(s.error)}[/red]" if s.error else format_duration(s.idle_seconds))
        )
        if idle_for is not None and s.idle_for_at_least(idle_for):
            idle = f"[yellow]{idle}[/yellow]"
        table.add_row(
            s.site,
            s.name,
            s.status.lower(),
            "" if s.workers is None else str(s.workers),
            s.started.strftime("%Y-%m-%d %H:%M:%S") if s.started else "",
            idle,
            (s.dashboard or "") if extra is None else extra.get((s.site, s.name), "kept"),
        )
    return table


@app.command("list")
def list_command(
    outputs: list[Path] = opt.OUTPUTS,
    state_dir: Path = opt.STATE_DIR,
    site: str | None = opt.SITE,
    all_sites: bool = opt.ALL_SITES,
    user: str | None = opt.USER,
    password_stdin: bool = opt.PASSWORD_STDIN,
    idle_for: str | None = IDLE_FOR,
) -> None:
    """List your clusters with workers and idle time; exit 1 if a site is unreachable or (with
    --idle-for) any cluster has been idle that long."""
    console = Console()
    threshold = _seconds(idle_for)
    states, unreachable, _, credentials = _survey(
        console, outputs, state_dir, site, all_sites, user, password_stdin
    )
    credentials.close()
    console.print(_table("Your clusters", states, threshold))
    for problem in unreachable:
        console.print(f"[red]✗ site unreachable: {escape(problem)}[/red]")
    idle = [s for s in states if threshold is not None and s.idle_for_at_least(threshold)]
    for s in idle:
        console.print(f"[yellow]! {s.site}/{s.name} idle for at least {idle_for}[/yellow]")
    if unreachable or idle:
        raise typer.Exit(1)
    console.print(f"[green]✓ {len(states)} cluster(s)[/green]")


@app.command("stop")
def stop_command(
    names: list[str] = typer.Argument(
        None, help="Clusters to stop by name; or use --idle-for to stop the idle ones."
    ),
    outputs: list[Path] = opt.OUTPUTS,
    state_dir: Path = opt.STATE_DIR,
    site: str | None = opt.SITE,
    all_sites: bool = opt.ALL_SITES,
    user: str | None = opt.USER,
    password_stdin: bool = opt.PASSWORD_STDIN,
    idle_for: str | None = IDLE_FOR,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would stop; stop nothing."),
) -> None:
    """Stop your named clusters, or every one idle for --idle-for; exit 1 if a stop failed or
    a site was unreachable."""
    console = Console()
    threshold = _seconds(idle_for)
    if not names and threshold is None:
        console.print("[red]✗ nothing to stop: give cluster names or --idle-for DURATION[/red]")
        raise typer.Exit(2)
    states, unreachable, gateways, credentials = _survey(
        console, outputs, state_dir, site, all_sites, user, password_stdin
    )
    known = {s.name for s in states}
    missing = sorted(set(names or []) - known)
    actions: dict[tuple[str, str], str] = {}
    failures = []
    for s in states:
        wanted = s.name in (names or []) or (
            threshold is not None and not names and s.idle_for_at_least(threshold)
        )
        if not wanted:
            continue
        if dry_run:
            actions[(s.site, s.name)] = "would stop"
            continue
        try:
            gateways[s.site].stop_cluster(s.name)
            actions[(s.site, s.name)] = "[green]stopped[/green]"
        except Exception as exc:
            actions[(s.site, s.name)] = f"[red]stop failed: {escape(str(exc))}[/red]"
            failures.append(f"{s.site}/{s.name}: {exc}")
    credentials.close()
    console.print(_table("Your clusters", states, threshold, actions))
    for name in missing:
        console.print(f"[red]✗ {name}: not one of your clusters on the chosen site(s)[/red]")
    for problem in unreachable:
        console.print(f"[red]✗ site unreachable: {escape(problem)}[/red]")
    for failure in failures:
        console.print(f"[red]✗ {escape(failure)}[/red]")
    stopped = sum(1 for a in actions.values() if "stopped" in a)
    if missing or unreachable or failures:
        raise typer.Exit(1)
    verb = "would stop" if dry_run else "stopped"
    console.print(f"[green]✓ {verb} {len(actions) if dry_run else stopped} cluster(s)[/green]")


@app.command("reap")
def reap_command(
    ecs_cluster: list[str] = typer.Option(
        None,
        "--ecs-cluster",
        help="The site's ECS cluster (name or ARN) that dask-cloudprovider runs tasks in; "
        "repeat for several.",
    ),
    older_than: str = typer.Option(
        ...,
        "--older-than",
        help="A duration such as 12h: only what is older (pick more than the longest "
        "legitimate session).",
    ),
    gateway: bool = typer.Option(
        True,
        "--gateway/--no-gateway",
        help="Also the site's gateway clusters with no client connected (yours; an "
        "administrator's: everyone's).",
    ),
    outputs: list[Path] = opt.OUTPUTS,
    state_dir: Path = opt.STATE_DIR,
    site: str | None = opt.SITE,
    all_sites: bool = opt.ALL_SITES,
    user: str | None = opt.USER,
    password_stdin: bool = opt.PASSWORD_STDIN,
    yes: bool = typer.Option(False, "--yes", help="Remove what is listed (default: list only)."),
) -> None:
    """List (and with --yes remove) what no live client owns and is older than --older-than:
    the site's gateway clusters with no client, and what dask-cloudprovider left in its ECS
    clusters (tasks, task definitions, security groups; with the operator's AWS credentials
    from the environment - AWS_PROFILE, ...; policies/iam/operator-reap.json). Exit 1 if
    anything is left over (without --yes) or a removal failed."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from dask_platform.runbooks.clusters import format_duration
    from dask_platform.runbooks.reap import (
        find_gateway_leftovers,
        find_leftovers,
        remove_leftovers,
    )

    console = Console()
    threshold = _seconds(older_than)
    assert threshold is not None
    table = Table(title="Left over: no live client owns these")
    for column in ("where", "kind", "id", "dask cluster", "age", "action"):
        table.add_column(column, overflow="fold")
    problems: list[str] = []
    listed = 0
    if gateway:
        _, unreachable, gateways, credentials = _survey(
            console, outputs, state_dir, site, all_sites, user, password_stdin
        )
        problems.extend(f"site unreachable: {u}" for u in unreachable)
        for site_name, site_gateway in gateways.items():
            for found in find_gateway_leftovers(site_gateway, site_name, threshold):
                listed += 1
                action = "would stop"
                if yes:
                    try:
                        site_gateway.stop_cluster(found.name)
                        action = "[green]stopped[/green]"
                    except Exception as exc:
                        action = f"[red]stop failed: {escape(str(exc))}[/red]"
                        problems.append(f"{site_name}/{found.name}: {exc}")
                table.add_row(
                    f"gateway {site_name}",
                    f"cluster ({found.status.lower()}, no client)",
                    found.name,
                    found.name,
                    format_duration(found.age_seconds),
                    action,
                )
        credentials.close()
    session = boto3.session.Session()
    for cluster in ecs_cluster or []:
        try:
            leftovers = find_leftovers(session, cluster, threshold)
        except (ClientError, BotoCoreError) as exc:
            problems.append(f"{cluster}: {exc}")
            continue
        listed += len(leftovers)
        outcomes: dict[str, str] = {}
        if yes:
            for removal in remove_leftovers(session, cluster, leftovers):
                if removal.error:
                    outcomes[removal.leftover.id] = f"[red]{escape(removal.error)}[/red]"
                    problems.append(f"{removal.leftover.id}: {removal.error}")
                else:
                    outcomes[removal.leftover.id] = "[green]removed[/green]"
        for leftover in leftovers:
            table.add_row(
                f"ecs {cluster}",
                leftover.kind,
                leftover.id,
                leftover.dask_cluster,
                format_duration(leftover.age_seconds) if leftover.age_seconds is not None else "",
                outcomes.get(leftover.id, "would remove"),
            )
    console.print(table)
    for problem in problems:
        console.print(f"[red]✗ {escape(problem)}[/red]")
    if problems or (listed and not yes):
        raise typer.Exit(1)
    console.print(f"[green]✓ {'removed' if yes else 'found'} {listed} leftover(s)[/green]")
