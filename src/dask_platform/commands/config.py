"""`dask-platform config check | dask`: validate committed stack configs without any cloud access;
write the dask configuration of a stack's outputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from dask_platform.config.errors import StackConfigError
from dask_platform.config.sources import list_stacks, load_stack_file
from dask_platform.project import project_root

app = typer.Typer(help="Stack configuration (Pulumi.<stack>.yaml).", no_args_is_help=True)


@app.command("check")
def check(
    stack: list[str] = typer.Option(
        None,
        "--stack",
        help="Stack name(s) to validate (Pulumi.<stack>.yaml); default: every committed stack.",
    ),
) -> None:
    """Validate stack configs and print every problem with its key path."""
    console = Console()
    stacks = stack or list_stacks(project_root())
    failed = False
    for name in stacks:
        try:
            config = load_stack_file(project_root(), name)
        except StackConfigError as exc:
            failed = True
            console.print(f"[red]✗ {exc}[/red]")
            continue
        console.print(
            f"[green]✓ Pulumi.{name}.yaml[/green]: {len(config.teams)} team(s), "
            f"region {config.region}, gateway auth {config.gateway.auth.type}"
        )
    if failed:
        raise typer.Exit(2)


STACK_OUTPUTS_FILE = typer.Option(
    ...,
    "--outputs",
    "-o",
    help="A stack's outputs: `pulumi stack output --json` saved to a file, or the local "
    "platform's outputs.json.",
)
"""`--outputs` of the commands that write client-side files from a stack's outputs."""

T = TypeVar("T")


def _from_outputs(
    console: Console,
    outputs: Path,
    build: Callable[[dict[str, Any]], T],
    problem: type[Exception],
) -> T:
    """``build`` of the outputs read from ``outputs``; a file that cannot be read, or a
    ``problem`` ``build`` raises, is one red line and exit code 2."""
    from dask_platform.sites.outputs import StackOutputsError, read_outputs

    try:
        return build(read_outputs(outputs))
    except StackOutputsError as exc:
        console.print(f"[red]✗ {exc}[/red]")
    except problem as exc:
        console.print(f"[red]✗ {outputs}: {exc}[/red]")
    raise typer.Exit(2)


@app.command("dask")
def dask(
    outputs: Path = STACK_OUTPUTS_FILE,
    out: Path = typer.Option(
        ...,
        "--out",
        help="Directory to write gateway.yaml into (e.g. ~/.config/dask, /etc/dask, or one "
        "DASK_CONFIG points at).",
    ),
) -> None:
    """Write the dask config that makes `Gateway()` and `GatewayCluster()` need no arguments."""
    from dask_platform.dask_config import (
        DaskConfigError,
        dask_config_from_outputs,
        write_dask_config,
    )

    console = Console()
    config = _from_outputs(console, outputs, dask_config_from_outputs, DaskConfigError)
    path = write_dask_config(out, config)
    console.print(f"[green]✓ wrote {path}[/green] (gateway {config['gateway']['address']})")


@app.command("aws")
def aws(
    outputs: Path = STACK_OUTPUTS_FILE,
    out: Path = typer.Option(
        ...,
        "--out",
        help="The AWS config file to write (the notebook image: ~/.config/dask-platform/aws/"
        "config); removed when the stack has no object stores.",
    ),
) -> None:
    """Write the platform AWS config of a stack's outputs: one profile per object store, whose
    credential_process reads the store's secret with the caller's own role (no key in it)."""
    import os

    from dask_platform.object_store_deploy import aws_config_from_outputs
    from dask_platform.object_stores import ObjectStoreError

    console = Console()
    text = _from_outputs(console, outputs, aws_config_from_outputs, ObjectStoreError)
    if text is None:
        out.unlink(missing_ok=True)
        console.print(f"no object stores in {outputs}: no AWS config written")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    console.print(f"[green]✓ wrote {out}[/green]")


@app.command("scratch")
def scratch(outputs: Path = STACK_OUTPUTS_FILE) -> None:
    """Print the shell lines that set SCRATCH_URL and PANGEO_SCRATCH (s3://<scratch>/<team>/
    <user>/) for the notebook's user (JUPYTERHUB_USER) of their team (DASK_PLATFORM_TEAM, else
    the team whose role is AWS_ROLE_ARN). The notebook image's start script evals them."""
    import shlex

    from dask_platform.object_store_deploy import notebook_scratch_environment
    from dask_platform.object_stores import ObjectStoreError
    from dask_platform.sites.outputs import StackOutputsError, read_outputs

    console = Console(stderr=True)
    try:
        environment = notebook_scratch_environment(read_outputs(outputs))
    except StackOutputsError as exc:
        console.print(f"[red]✗ {exc}[/red]")
        raise typer.Exit(2) from None
    except ObjectStoreError as exc:
        console.print(f"[red]✗ {outputs}: {exc}[/red]")
        raise typer.Exit(2) from None
    for name, value in environment.items():
        typer.echo(f"export {name}={shlex.quote(value)}")
