"""The CI skip rule itself must work, or every other guarantee of the suite is hollow."""

import subprocess
import sys
import textwrap


def _run_suite(tmp_path, ci: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(
        (__import__("pathlib").Path(__file__).parents[1] / "conftest.py").read_text()
    )
    (tmp_path / "test_skips.py").write_text(
        textwrap.dedent(
            """
            import pytest
            def test_needs_podman():
                pytest.skip("podman not installed")
            """
        )
    )
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        env={"CI": ci, "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        check=False,
    )


def test_skip_is_a_failure_under_ci(tmp_path):
    result = _run_suite(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    assert "1 failed" in result.stdout
    assert "skips are failures in CI" in result.stdout


def test_skip_is_reported_on_a_laptop(tmp_path):
    result = _run_suite(tmp_path, "")
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
