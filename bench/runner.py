"""Runs benchmark groups one after another and records each as it finishes.

A group is a module of :mod:`bench.groups` with ``TITLE``, ``run(context) -> dict`` (returning
``{"parameters": ..., "figures": ..., "notes": [...]}``) and ``rows(document) -> list[Row]``.
Groups run sequentially - never two at once - so one does not load the machine under another.
"""

from __future__ import annotations

import importlib
import shlex
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from bench.machine import git_facts, load_average, machine_facts
from bench.report import Row, render_block, update_readme, write_result

# In the order they run: the quick, self-contained groups first, the test suite (which starts
# its own platforms and images) last.
GROUPS: dict[str, str] = {
    "images": "bench.groups.images",
    "plan": "bench.groups.plan",
    "workers": "bench.groups.workers",
    "credentials": "bench.groups.credentials",
    "limits": "bench.groups.limits",
    "tests": "bench.groups.suite",
}

Advance = Callable[..., None]
PRINT_EVERY_S = 10.0


class GroupModule(Protocol):
    TITLE: str

    def run(self, context: Context) -> dict[str, Any]: ...

    def rows(self, document: Mapping[str, Any]) -> list[Row]: ...


def group_module(name: str) -> GroupModule:
    return cast(GroupModule, importlib.import_module(GROUPS[name]))


@dataclass
class Context:
    """What a group gets: the console, the run's options and a scratch directory."""

    console: Console
    quick: bool = False
    repeat: int | None = None
    sts_seconds: int | None = None
    work_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))

    def repetitions(self, full: int, quick: int) -> int:
        if self.repeat is not None:
            return self.repeat
        return quick if self.quick else full

    @contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[Advance]:
        """A progress bar (a line per step when the output is not a terminal)."""
        terminal = self.console.is_terminal
        started = time.monotonic()
        done = 0.0
        printed = 0.0
        progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[detail]}"),
            console=self.console,
            transient=True,
            disable=not terminal,
        )
        with progress:
            task_id = progress.add_task(description, total=total, detail="")

            def advance(detail: str = "", steps: float = 1) -> None:
                nonlocal done, printed
                done += steps
                progress.update(task_id, advance=steps, detail=detail)
                # In a log (not a terminal): a line per step, at most one per PRINT_EVERY_S.
                now = time.monotonic()
                if not terminal and now - printed >= PRINT_EVERY_S:
                    printed = now
                    count = f"{done:g}/{total:g} " if total else ""
                    self.console.print(f"  {description}: {count}{detail}".rstrip())

            yield advance
        self.console.print(
            f"[green]✓[/green] {description} [dim]({time.monotonic() - started:.0f}s)[/dim]"
        )


def command_for(group: str, quick: bool) -> str:
    argv = ["uv", "run", "python", "-m", "bench", "--group", group]
    if quick:
        argv.append("--quick")
    return shlex.join(argv)


def run_group(name: str, context: Context) -> dict[str, Any]:
    module = group_module(name)
    before = load_average()
    started = time.monotonic()
    measured = module.run(context)
    seconds = time.monotonic() - started
    return {
        "group": name,
        "title": module.TITLE,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": context.quick,
        "repeat_override": context.repeat,
        "command": command_for(name, context.quick),
        "seconds": round(seconds, 1),
        "machine": machine_facts(),
        "git": git_facts(),
        "load_average": {"before": before, "after": load_average()},
        "parameters": measured.get("parameters", {}),
        "figures": measured["figures"],
        "notes": measured.get("notes", []),
    }


def rows_of(group: str, document: Mapping[str, Any]) -> list[Row]:
    return group_module(group).rows(document)


def refresh_readme(readme: Path, results_dir: Path) -> None:
    from bench.report import read_results

    documents = read_results(results_dir, list(GROUPS))
    try:
        prefix = results_dir.resolve().relative_to(readme.resolve().parent).as_posix() + "/"
    except ValueError:
        prefix = results_dir.resolve().as_posix() + "/"
    update_readme(readme, render_block(documents, rows_of, prefix))


@dataclass
class Outcome:
    group: str
    ok: bool
    path: Path | None = None
    error: str = ""
    rows: list[Row] = field(default_factory=list)


def run_groups(
    groups: Sequence[str],
    context: Context,
    results_dir: Path,
    readme: Path | None,
) -> list[Outcome]:
    outcomes = []
    for name in groups:
        context.console.rule(f"[bold]{name}[/bold]: {group_module(name).TITLE}")
        try:
            document = run_group(name, context)
        except Exception as exc:
            context.console.print(traceback.format_exc(), markup=False, highlight=False)
            outcomes.append(Outcome(name, False, error=f"{type(exc).__name__}: {exc}"))
            continue
        path = write_result(results_dir, document)
        if readme is not None:
            refresh_readme(readme, results_dir)
        outcomes.append(Outcome(name, True, path, rows=group_module(name).rows(document)))
    return outcomes
