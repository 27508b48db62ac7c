"""`dask-platform config check`: validate committed stack configs without any cloud access."""

from __future__ import annotations

import typer
from rich.console import Console

from dask_platform.project import project_root
from dask_platform.stack_config import StackConfigError, list_stacks, load_stack_file

app = typer.Typer(help="Stack configuration (Pulumi.<stack>.yaml).", no_args_is_help=True)


@app.command("check")
def check(
    stack: list[str] = typer.Option(
        None,
        "--stack",
        "-s",
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
