"""`dask-platform local up | down | status`: the embedded local platform."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from dask_platform.local.config import DEFAULT_CONFIG, DEFAULT_STATE_DIR

app = typer.Typer(
    help="The embedded local platform: AWS emulator, OIDC issuer, dask-gateway-server.",
    no_args_is_help=True,
)

STATE_DIR_OPTION = typer.Option(
    DEFAULT_STATE_DIR, "--state-dir", help="Runtime state directory (gitignored)."
)


@app.command("up")
def up(
    config: Path = typer.Option(
        DEFAULT_CONFIG, "--config", help="Local platform config (stack: + local: sections)."
    ),
    state_dir: Path = STATE_DIR_OPTION,
    gateway_port: int = typer.Option(
        None,
        "--gateway-port",
        min=1,
        max=65535,
        help="Port of the (first site's) gateway on 127.0.0.1; default: a free one.",
    ),
    auth: str = typer.Option(
        None,
        "--auth",
        help="How the gateways authenticate users, one of {password, oidc}; default: the "
        "config's local.gateway_auth.",
    ),
    worker_image: str = typer.Option(
        None,
        "--worker-image",
        help="Run schedulers and workers as podman containers of this image (e.g. "
        "localhost/dask-platform/worker:lock-<hash> from `make images`): uid 1000, only the "
        "team's token mounted; default: processes of this virtualenv.",
    ),
    sites: list[str] = typer.Option(
        None,
        "--site",
        "-s",
        help="Run a gateway for this site (repeat for several sites sharing the emulator and "
        "issuer); default: the config's local.sites.",
    ),
) -> None:
    """Start the emulator, the issuer and one gateway per site; provision; write outputs.json."""
    from dask_platform.charts import ChartError
    from dask_platform.config.errors import StackConfigError
    from dask_platform.local.config import load_local_config
    from dask_platform.local.platform import LocalPlatform
    from dask_platform.local.processes import ComponentError

    console = Console()
    overrides: dict[str, object] = {}
    if auth is not None:
        overrides["gateway_auth"] = auth
    if sites:
        overrides["sites"] = [{"name": name} for name in sites]
    try:
        local_config = load_local_config(config, overrides={"local": overrides})
        platform = LocalPlatform(state_dir, local_config, gateway_port, worker_image)
        started = time.monotonic()
        with console.status("starting the local platform") as status:
            outputs = platform.up(progress=lambda m: status.update(m))
    except (StackConfigError, ComponentError, ChartError) as exc:
        console.print(f"[red]✗ {exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"[green]✓ local platform up[/green] in {time.monotonic() - started:.1f}s")
    console.print(outputs_table(outputs))
    console.print(
        f"Outputs: {platform.outputs_file}  ·  user passwords: {state_dir / 'passwords.json'}"
        "  ·  stop with `dask-platform local down`"
    )
    first_user = next(iter(local_config.local.users))
    console.print(
        f"Dask config per user (Gateway() with no arguments): "
        f'eval "$(dask-platform local env --user {first_user})"  ·  or '
        f"DASK_CONFIG={platform.dask_config_dir(first_user)}"
    )


@app.command("env")
def env(
    user: str = typer.Option(
        ..., "--user", "-u", help="A user of the local platform (local.users)."
    ),
    state_dir: Path = STATE_DIR_OPTION,
) -> None:
    """Print the shell lines that make `Gateway()` and `GatewayCluster()` connect as USER and
    set SCRATCH_URL and PANGEO_SCRATCH to USER's prefix (s3://<scratch>/<team>/<user>/, the
    team the gateway picks by default), as in a notebook of the hub."""
    import shlex

    from dask_platform.local.platform import LocalPlatform
    from dask_platform.object_store_deploy import scratch_environment

    platform = LocalPlatform(state_dir)
    directory = platform.dask_config_dir(user)
    if not (directory / "gateway.yaml").is_file():
        users = sorted(p.name for p in directory.parent.glob("*") if p.is_dir())
        Console(stderr=True).print(
            f"[red]✗ user: no dask config for {user!r} in {directory.parent}"
            + (f"; users: {', '.join(users)}" if users else "; is the platform up?")
            + "[/red]"
        )
        raise typer.Exit(1)
    outputs = platform.outputs()
    teams = list(outputs["users"].get(user) or [])
    if not teams:
        with_team = sorted(u for u, t in outputs["users"].items() if t)
        Console(stderr=True).print(
            f"[red]✗ user: {user!r} is in no team (local.users.{user}.groups name no team's "
            f"groups), so has no scratch prefix and the gateway refuses their clusters; users "
            f"with a team: {', '.join(with_team) or 'none'}[/red]"
        )
        raise typer.Exit(1)
    # The gateway's default team: the first of the user's teams sorted by name
    # (helm/dask-gateway/gateway_config.py teams_of), not the stack's order.
    team = sorted(teams)[0]
    typer.echo(f"export DASK_CONFIG={shlex.quote(str(directory))}")
    for name, value in scratch_environment(outputs["scratch_bucket"], team, user).items():
        typer.echo(f"export {name}={shlex.quote(value)}")


def outputs_table(outputs: dict[str, object]) -> Table:
    table = Table(title="Local platform", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key in (
        "gateway_address",
        "gateway_proxy_address",
        "aws_endpoint_url",
        "oidc_issuer_url",
        "site",
        "site_outputs",
        "scratch_urls",
        "team_role_arns",
        "users",
    ):
        value = outputs.get(key)
        text = (
            "\n".join(f"{k}: {v}" for k, v in value.items())
            if isinstance(value, dict)
            else str(value)
        )
        table.add_row(key, text)
    return table


@app.command("down")
def down(state_dir: Path = STATE_DIR_OPTION) -> None:
    """Stop every process of the local platform (and any cluster it ran); verify none is left."""
    from dask_platform.local.platform import LocalPlatform

    console = Console()
    report = LocalPlatform(state_dir).down()
    if report.stopped:
        console.print(f"[green]✓ stopped[/green] {', '.join(report.stopped)}")
    else:
        console.print("the local platform was not running")
    if report.leftovers:
        console.print(f"[red]✗ still running after SIGKILL: pids {report.leftovers}[/red]")
        raise typer.Exit(1)
    console.print("[green]✓ no local-platform process is running[/green]")


@app.command("status")
def status(
    state_dir: Path = STATE_DIR_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable status."),
) -> None:
    """Show each component; exit 1 if the platform is not running or a component is down."""
    from dask_platform.local.platform import LocalPlatform

    console = Console()
    components = LocalPlatform(state_dir).status()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {"name": c.name, "pid": c.pid, "alive": c.alive, "address": c.address}
                    for c in components
                ],
                indent=2,
            )
        )
    elif not components:
        console.print("the local platform is not running; start it with `dask-platform local up`")
    else:
        table = Table(title="Local platform")
        for column in ("component", "pid", "state", "address", "log"):
            table.add_column(column)
        for c in components:
            state = "[green]running[/green]" if c.alive else "[red]down[/red]"
            table.add_row(c.name, str(c.pid), state, c.address, str(c.log))
        console.print(table)
        for c in components:
            if not c.alive:
                console.print(f"[red]✗ {c.name}: {c.detail}[/red]")
    if not components or not all(c.alive for c in components):
        raise typer.Exit(1)
