"""step_progress: the one progress display of the commands that wait (clusters, verify, demo,
plan) - a counted bar in the unit given, or a spinner alone for work of unknown length."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from dask_platform.commands.progress import step_progress


def _shown(unit: str | None, transient: bool = False) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=120)
    with step_progress(console, unit, transient) as progress:
        task = progress.add_task("asking", total=None if unit is None else 3)
        progress.update(task, advance=2)
        progress.refresh()
    return out.getvalue()


@pytest.mark.parametrize(("unit", "count"), [("sites", "2/3 sites"), ("", "2/3 0:")])
def test_counted_progress_shows_done_of_total_in_its_unit(unit: str, count: str) -> None:
    assert count in _shown(unit)


def test_unknown_length_shows_no_count() -> None:
    shown = _shown(None)
    assert "asking" in shown
    assert "/" not in shown
