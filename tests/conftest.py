"""Shared test plumbing.

The one skip rule of this suite: a test that needs a system facility (podman, debootstrap) may
skip on a laptop that lacks it, with the reason printed - but under CI=true every skip is turned
into a failure, so nothing silently stops being tested.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# The chart cache, as the Makefile sets it, for pytest run on its own: the workspace's pinned
# archives beside the checkout, where they exist (CI sets DASK_PLATFORM_CHART_CACHE itself).
_WORKSPACE_CHARTS = REPO.parent / "shared" / "upstream" / "charts"
if _WORKSPACE_CHARTS.is_dir():
    os.environ.setdefault("DASK_PLATFORM_CHART_CACHE", str(_WORKSPACE_CHARTS))

# The chart cache (helm/charts.yaml pins its archives). The Makefile sets it; a bare `pytest`
# in a workspace that keeps the pinned archives beside the checkout finds them the same way.
# The product itself reads only the setting.
_WORKSPACE_CHARTS = REPO.parent / "shared" / "upstream" / "charts"
if not os.environ.get("DASK_PLATFORM_CHART_CACHE") and _WORKSPACE_CHARTS.is_dir():
    os.environ["DASK_PLATFORM_CHART_CACHE"] = str(_WORKSPACE_CHARTS)


def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    """Under CI=true a skipped test is a failed test."""
    if not IN_CI or call.excinfo is None:
        return None
    if call.excinfo.errisinstance(pytest.skip.Exception):
        reason = str(call.excinfo.value)
        outcome = pytest.TestReport.from_item_and_call(item, call)
        outcome.outcome = "failed"
        outcome.longrepr = f"skipped under CI=true (skips are failures in CI): {reason}"
        return outcome
    return None


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
