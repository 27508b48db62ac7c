"""`make demo`'s checks on the local platform: the keyless path is the report of
runbooks.verify (the table `verify-workers` prints), not a second implementation."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from dask_platform.commands.demo import DEMO_USER, run_demo
from dask_platform.local.platform import LocalPlatform


def test_the_demo_prints_and_checks_the_verify_report(
    platform: LocalPlatform, outputs: dict[str, Any]
) -> None:
    console = Console(record=True, width=250)
    checks = run_demo(console, outputs, platform.passwords())
    printed = console.export_text()

    team = outputs["users"][DEMO_USER][0]
    assert [c.name for c in checks if not c.passed] == []
    # The verify-workers table: one row per worker, its columns and verdicts.
    assert f"Workers of {DEMO_USER}'s cluster (team {team})" in printed
    for column in ("assumed role", "AWS keys", f"{team} prefix", "object stores", "versions"):
        assert column in printed
    role = outputs["team_role_arns"][team].rsplit("/", 1)[-1]
    assert printed.count(role) == 2, "one row per worker, each the team's role"
    assert printed.count("write+read ✓") == 2
    assert printed.count("denied ✓") >= 2
    keyless = next(c for c in checks if c.name.endswith("(runbooks.verify)"))
    assert keyless.detail == "2 workers, no finding"
