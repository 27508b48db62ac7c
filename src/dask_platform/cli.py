"""The `dask-platform` command: one Typer app; each command group lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="dask-platform",
    help="Dask on AWS for Earth-science teams: plans, the local platform, and runbooks.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@app.callback()
def main() -> None:
    """dask-platform operator and analyst commands."""


@app.command()
def config_check(
    stack: str = typer.Option(
        ..., "--stack", "-s", help="Stack name: validates Pulumi.<stack>.yaml."
    ),
) -> None:
    """Validate a committed stack config and print every problem with its key path."""
    from rich.console import Console

    from dask_platform.pulumi_eval import REPO_DIR
    from dask_platform.stack_config import StackConfigError, load_stack_file

    console = Console()
    try:
        config = load_stack_file(REPO_DIR, stack)
    except StackConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(
        f"[green]Pulumi.{stack}.yaml is valid[/green]: {len(config.teams)} team(s), "
        f"region {config.region}, auth {config.gateway.auth.type}"
    )


@app.command()
def demo() -> None:
    """Run the end-to-end keyless-S3 demo on the embedded local platform."""
    typer.echo(
        "make demo: the embedded local platform is not built yet (issue 3); "
        "`make test` runs what exists.",
        err=True,
    )
    raise typer.Exit(1)
