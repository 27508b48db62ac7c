"""Reporter.run: the one way slow image steps (debootstrap, pip download) run a command - every
line logged and handed on, the exit code and the last lines kept for the error message."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from dask_platform.images.progress import Reporter

PRINT_FIVE = "import sys\nfor i in range(5): print(f'line {i}')\nsys.exit(3)"


def test_run_logs_every_line_and_returns_exit_code_and_tail(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    seen: list[str] = []
    with Reporter(console=Console(file=sys.stderr), log_file=log) as reporter:
        returncode, tail = reporter.run([sys.executable, "-c", PRINT_FIVE], seen.append, 2)
    assert returncode == 3
    assert tail == "line 3\nline 4"
    assert seen == [f"line {i}\n" for i in range(5)]
    logged = log.read_text().splitlines()
    assert logged[0] == f"$ {sys.executable} -c {PRINT_FIVE}".splitlines()[0]
    assert logged[-5:] == [f"line {i}" for i in range(5)]


def test_run_merges_stderr_into_the_tail(tmp_path: Path) -> None:
    script = "import sys; print('out'); sys.stdout.flush(); print('err', file=sys.stderr)"
    with Reporter(log_file=tmp_path / "log") as reporter:
        returncode, tail = reporter.run([sys.executable, "-c", script], lambda line: None)
    assert (returncode, tail) == (0, "out\nerr")
