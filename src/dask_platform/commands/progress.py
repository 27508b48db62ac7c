"""The progress display of commands that wait on sites, clusters or an evaluation: a spinner,
what is going on, a bar counting ``unit`` (sites, workers, ...) and the time elapsed.

ref: https://rich.readthedocs.io/en/stable/progress.html
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)


def step_progress(console: Console, unit: str | None = "", transient: bool = True) -> Progress:
    """A :class:`rich.progress.Progress` on ``console``: spinner, description, then (unless
    ``unit`` is ``None``: a task of unknown length) a bar and ``<done>/<total> <unit>``, then
    the elapsed time. ``transient``: the display is gone once the block ends."""
    columns: list[ProgressColumn] = [SpinnerColumn(), TextColumn("{task.description}")]
    if unit is not None:
        counted = "{task.completed}/{task.total}" + (f" {unit}" if unit else "")
        columns += [BarColumn(), TextColumn(counted)]
    return Progress(*columns, TimeElapsedColumn(), console=console, transient=transient)
