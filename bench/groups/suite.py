"""The test suite: wall time of one `make test`, split by test group.

One run of ``make test PYTEST_ARGS="--junitxml=..."``: the make wall time is measured here;
pytest's JUnit XML gives each test's duration (setup + call + teardown, so a session fixture's
start-up - a local platform, the images - counts in the first test that uses it), summed per
directory of ``tests/``. What is not in any test - set-up, system packages, the linters, and
pytest's collection - is the make time minus the sum.
"""

from __future__ import annotations

import os
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench import REPO_DIR
from bench.report import Row, fmt_ratio
from bench.runner import Context
from bench.stats import ratio

TITLE = "Test suite (`make test`)"
GROUP_ORDER = ("unit", "policy", "integration", "images")
WAIT_FOR_OTHER_SESSIONS_S = 1800.0


class SuiteBenchError(RuntimeError):
    pass


def parse_junit(path: Path) -> dict[str, Any]:
    """Per test group (``tests/<group>/``): tests, outcomes and summed seconds."""
    root = ET.parse(path).getroot()  # noqa: S314 - pytest's own report, written in this run
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    groups: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    for case in root.iter("testcase"):
        classname = case.get("classname", "")
        parts = classname.split(".")
        group = parts[1] if len(parts) > 1 and parts[0] == "tests" else "other"
        entry = groups.setdefault(
            group, {"tests": 0, "passed": 0, "failed": 0, "skipped": 0, "seconds": 0.0}
        )
        entry["tests"] += 1
        entry["seconds"] += float(case.get("time", 0) or 0)
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            entry["failed"] += 1
            failed.append(f"{classname}::{case.get('name', '')}")
        elif "skipped" in tags:
            entry["skipped"] += 1
        else:
            entry["passed"] += 1
    for entry in groups.values():
        entry["seconds"] = round(entry["seconds"], 1)
    return {
        "pytest_seconds": round(sum(float(s.get("time", 0) or 0) for s in suites), 1),
        "groups": groups,
        "failed": failed,
    }


def other_pytest_sessions() -> list[int]:
    """pids of pytest sessions already running on this machine (``pytest``, ``uv run pytest``,
    ``python -m pytest``)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        argv = proc.info.get("cmdline") or []
        if proc.pid != os.getpid() and any(Path(a).name == "pytest" for a in argv[:4]):
            found.append(proc.pid)
    return sorted(found)


def wait_for_other_sessions(context: Context) -> None:
    """A second session would share the CPU with the first - and the integration fixtures of a
    new session stop the local platforms of other sessions (they take them for leftovers of an
    aborted run). So wait until no other pytest runs."""
    others = other_pytest_sessions()
    if not others:
        return
    deadline = time.monotonic() + WAIT_FOR_OTHER_SESSIONS_S
    with context.task(f"waiting for other pytest sessions to finish (pids {others})") as step:
        while others and time.monotonic() < deadline:
            time.sleep(5)
            others = other_pytest_sessions()
            step(f"still running: {others}" if others else "none left", 0)
    if others:
        raise SuiteBenchError(
            f"other pytest sessions are still running after {WAIT_FOR_OTHER_SESSIONS_S:.0f}s "
            f"(pids {', '.join(map(str, others))}); run this group when they have finished"
        )


def run(context: Context) -> dict[str, Any]:
    wait_for_other_sessions(context)
    junit = context.work_dir / "junit.xml"
    log = context.work_dir / "make-test.log"
    pytest_args = f"--junitxml={junit} -o junit_duration_report=total"
    argv = ["make", "test", f"PYTEST_ARGS={pytest_args}"]
    started = time.monotonic()
    with log.open("w") as sink, context.task("make test", total=None) as step:
        process = subprocess.Popen(
            argv, cwd=REPO_DIR, stdout=sink, stderr=subprocess.STDOUT, text=True
        )
        last = 0
        while process.poll() is None:
            time.sleep(1)
            elapsed = int(time.monotonic() - started)
            if elapsed - last >= 30:
                step(f"{elapsed}s", 0)
                last = elapsed
    wall = time.monotonic() - started
    if not junit.is_file():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise SuiteBenchError(
            f"`make test` exited {process.returncode} before pytest wrote its report (set-up or "
            f"lint failed):\n{tail}"
        )
    parsed = parse_junit(junit)
    groups = parsed["groups"]
    in_tests = sum(g["seconds"] for g in groups.values())
    figures: dict[str, Any] = {
        "make_test_s": round(wall, 1),
        "exit_code": process.returncode,
        "failed_tests": parsed["failed"],
        "pytest_s": parsed["pytest_seconds"],
        "outside_tests_s": round(wall - in_tests, 1),
        "groups": {name: groups[name] for name in [*GROUP_ORDER, "other"] if name in groups},
        "share_of_make_test": {
            name: ratio(entry["seconds"], wall) for name, entry in groups.items()
        },
    }
    failed = sum(g["failed"] for g in groups.values())
    notes = [
        "Per-group seconds are sums of pytest's per-test durations (JUnit XML, setup + call + "
        "teardown) from the one `make test` run; 'outside the tests' is make's wall time "
        "minus their sum: uv sync, install-system-deps, ruff, mypy and pytest's collection.",
    ]
    if failed or process.returncode:
        names = ", ".join(f"`{name}`" for name in parsed["failed"])
        notes.append(
            f"`make test` exited {process.returncode} with {failed} failed test(s)"
            + (f": {names}" if names else "")
            + "."
        )
    return {
        "parameters": {"command": " ".join(argv[:2]) + f' PYTEST_ARGS="{pytest_args}"'},
        "figures": figures,
        "notes": notes,
    }


def rows(document: Mapping[str, Any]) -> list[Row]:
    figures = document["figures"]
    result = [
        Row(
            "`make test` wall time",
            f"{figures['make_test_s']:.0f} s (exit {figures['exit_code']})",
            "1.00",
        )
    ]
    for name, entry in figures["groups"].items():
        outcome = f"{entry['passed']} passed"
        if entry["failed"]:
            outcome += f", {entry['failed']} failed"
        if entry["skipped"]:
            outcome += f", {entry['skipped']} skipped"
        result.append(
            Row(
                f"`tests/{name}` ({entry['tests']} tests: {outcome})",
                f"{entry['seconds']:.0f} s",
                f"**{fmt_ratio(figures['share_of_make_test'][name])}**",
            )
        )
    outside = figures["outside_tests_s"]
    result.append(
        Row(
            "outside the tests: set-up, lint (ruff, mypy), collection",
            f"{outside:.0f} s",
            fmt_ratio(ratio(outside, figures["make_test_s"])),
        )
    )
    return result
