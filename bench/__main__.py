"""``python -m bench`` (``make bench``): run the benchmarks, record them, update the README."""

from __future__ import annotations

import sys
import tempfile
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench import README, RESULTS_DIR
from bench.report import ReportError
from bench.runner import GROUPS, Context, refresh_readme, run_groups

Group = Enum("Group", {name: name for name in GROUPS}, type=str)  # type: ignore[misc]

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    group: list[Group] = typer.Option(
        None,
        "--group",
        "-g",
        help=f"Run only this group (repeatable), one of {{{', '.join(GROUPS)}}}; default: all.",
    ),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="Fewer repetitions and a 60 s credential run instead of 10 minutes (a smoke run; "
        "its results are marked quick in the JSON and the README).",
    ),
    repeat: int | None = typer.Option(
        None, "--repeat", min=1, help="Repetitions of every repeated measurement (overrides)."
    ),
    sts_seconds: int | None = typer.Option(
        None,
        "--sts-seconds",
        min=10,
        help="Length of the credential-refresh run (default 600, 60 with --quick).",
    ),
    results_dir: Path = typer.Option(
        RESULTS_DIR, "--results-dir", file_okay=False, help="Where the <group>.json files go."
    ),
    readme: Path = typer.Option(
        README, "--readme-file", dir_okay=False, help="The README whose results block to rewrite."
    ),
    update_readme: bool = typer.Option(
        True, "--readme/--no-readme", help="Rewrite the results block of --readme-file."
    ),
    render_only: bool = typer.Option(
        False,
        "--render-only",
        help="Measure nothing: rebuild the README block from the result files present.",
    ),
) -> None:
    """Measure image sizes, time to workers, keyless credentials, the offline plan and the
    test suite, side by side; write JSON results and the table in bench/README.md."""
    console = Console(width=None if sys.stdout.isatty() else 120)
    if render_only:
        try:
            refresh_readme(readme, results_dir)
        except ReportError as exc:
            console.print(f"[red]✗ {exc}[/red]")
            raise typer.Exit(2) from None
        console.print(f"[green]✓[/green] {readme} rebuilt from {results_dir}")
        return
    selected = [g.value for g in group] if group else list(GROUPS)
    # Keep the order of GROUPS whatever the order on the command line.
    selected = [name for name in GROUPS if name in selected]
    with tempfile.TemporaryDirectory(prefix="dask-platform-bench-") as work:
        context = Context(
            console=console,
            quick=quick,
            repeat=repeat,
            sts_seconds=sts_seconds,
            work_dir=Path(work),
        )
        try:
            outcomes = run_groups(selected, context, results_dir, readme if update_readme else None)
        except ReportError as exc:
            console.print(f"[red]✗ {exc}[/red]")
            raise typer.Exit(2) from None
    table = Table(title="benchmarks")
    for column in ("group", "figure", "value", "ratio"):
        table.add_column(column, overflow="fold")
    for outcome in outcomes:
        if not outcome.ok:
            table.add_row(outcome.group, "[red]failed[/red]", escape(outcome.error), "")
        for row in outcome.rows:
            cells = (row.figure, row.value, row.ratio)
            table.add_row(outcome.group, *(escape(c.replace("<br>", "\n")) for c in cells))
    console.print(table)
    failed = [o.group for o in outcomes if not o.ok]
    if failed:
        console.print(f"[red]✗ group(s) failed: {', '.join(failed)}[/red]")
        raise typer.Exit(1)
    console.print(f"[green]✓ results in {results_dir}[/green]")


if __name__ == "__main__":
    app()
