"""Smoke tests of the benchmark runner (bench/): argument parsing, result tables, summaries.

Nothing here measures or asserts a timing; speed lives in bench/results/.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench import README, RESULTS_DIR
from bench.__main__ import app
from bench.groups.suite import parse_junit
from bench.report import END_MARKER, START_MARKER, Row, render_group
from bench.runner import GROUPS, command_for
from bench.stats import percentile, ratio, summary

runner = CliRunner()


def test_unknown_group_is_refused_naming_the_allowed_ones(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--group", "nonsense", "--results-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "nonsense" in result.output
    for name in GROUPS:
        assert name in result.output
    assert list(tmp_path.iterdir()) == []


def test_repeat_must_be_positive(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--repeat", "0", "--results-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--repeat" in result.output


def test_a_readme_without_markers_is_one_clear_error(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# no markers here\n")
    result = runner.invoke(
        app, ["--render-only", "--results-dir", str(tmp_path), "--readme-file", str(readme)]
    )
    assert result.exit_code == 2
    assert START_MARKER in result.output
    assert readme.read_text() == "# no markers here\n"


def test_render_only_rebuilds_the_committed_readme_block(tmp_path: Path) -> None:
    """The committed README table is exactly what the committed results render to."""
    committed = sorted(RESULTS_DIR.glob("*.json"))
    if not committed:
        pytest.skip("no committed benchmark results yet (bench/results/*.json)")
    results = tmp_path / "results"
    shutil.copytree(RESULTS_DIR, results)
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{START_MARKER}\nstale\n{END_MARKER}\nafter\n")
    result = runner.invoke(
        app,
        ["--render-only", "--results-dir", str(results), "--readme-file", str(readme)],
    )
    assert result.exit_code == 0, result.output
    rendered = readme.read_text()
    assert rendered.startswith("before\n")
    assert rendered.endswith("after\n")
    assert "stale" not in rendered

    def block(text: str) -> str:
        return text[text.index(START_MARKER) : text.index(END_MARKER)]

    assert block(rendered) == block(README.read_text())
    for path in committed:
        document = json.loads(path.read_text())
        assert document["quick"] is False, f"{path.name} is a --quick result"
        assert f"### {document['title']}" in rendered


def test_a_group_section_carries_date_machine_command_and_rows() -> None:
    document = {
        "group": "plan",
        "title": "Offline plan and policy gate",
        "date": "2026-01-02T03:04:05+00:00",
        "quick": True,
        "command": command_for("plan", quick=True),
        "seconds": 12.5,
        "machine": {"cores": 2, "cpu": "cpu", "memory_gib": 23.5, "python": "3.11.7"},
        "git": {"commit": "0123456789abcdef", "uncommitted_changes": ["src/x.py"]},
        "load_average": {"before": [1.5, 1.0, 0.5]},
    }
    lines = render_group(document, [Row("cold", "5.00 s", "**9.9**")], "results/plan.json")
    text = "\n".join(lines)
    assert "### Offline plan and policy gate" in text
    assert "2026-01-02 03:04:05 UTC" in text
    assert "quick run" in text
    assert "2 cores (cpu)" in text
    assert "`0123456789ab + 1 uncommitted file(s)`" in text
    assert "`uv run python -m bench --group plan --quick`" in text
    assert "| cold | 5.00 s | **9.9** |" in text


def test_summaries_and_ratios() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10, 20, 30, 40, 50], 95) == pytest.approx(48.0)
    stats = summary([3.0, 1.0, 2.0])
    assert (stats["median"], stats["min"], stats["max"], stats["n"]) == (2.0, 1.0, 3.0, 3)
    assert stats["samples"] == [3.0, 1.0, 2.0]
    assert "samples" not in summary([1.0], keep_samples=False)
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(1.0, 0.0) is None
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], 101)


def test_junit_durations_are_summed_per_test_directory(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest" time="9.5">'
        '<testcase classname="tests.unit.test_a" name="t1" time="1.25"/>'
        '<testcase classname="tests.unit.test_a" name="t2" time="0.75"><skipped/></testcase>'
        '<testcase classname="tests.integration.test_b" name="t3" time="6.0">'
        "<failure>boom</failure></testcase>"
        "</testsuite></testsuites>"
    )
    parsed = parse_junit(junit)
    assert parsed["pytest_seconds"] == 9.5
    assert parsed["groups"]["unit"] == {
        "tests": 2,
        "passed": 1,
        "failed": 0,
        "skipped": 1,
        "seconds": 2.0,
    }
    assert parsed["groups"]["integration"]["failed"] == 1
    assert parsed["failed"] == ["tests.integration.test_b::t3"]
    assert parsed["groups"]["integration"]["seconds"] == 6.0
