"""Progress for slow image work: rich bars on a terminal, and every raw line in a log file."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class Reporter:
    """One progress display per run; ``log`` keeps the engines' full output out of the way."""

    def __init__(
        self, console: Console | None = None, log_file: Path | None = None, append: bool = False
    ) -> None:
        self.console = console or Console(stderr=True)
        self.log_file = log_file
        self.append = append
        self._log: IO[str] | None = None
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[detail]}"),
            console=self.console,
            transient=False,
            # Not a terminal (CI logs): no redrawn bars, one line per finished step instead.
            disable=not self.console.is_terminal,
        )

    def __enter__(self) -> Reporter:
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_file.open("a" if self.append else "w")
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()
        if self._log is not None:
            self._log.close()
            self._log = None

    def task(self, description: str, total: float | None = 1.0) -> TaskID:
        return self._progress.add_task(description, total=total, detail="")

    def update(
        self,
        task: TaskID,
        *,
        completed: float | None = None,
        advance: float | None = None,
        total: float | None = None,
        detail: str | None = None,
    ) -> None:
        fields: dict[str, Any] = {} if detail is None else {"detail": detail[:80]}
        self._progress.update(task, completed=completed, advance=advance, total=total, **fields)

    def done(self, task: TaskID, detail: str) -> None:
        total = self._progress.tasks[task].total or 1.0
        self._progress.update(task, completed=total, total=total, detail=detail[:80])
        if self._progress.disable:
            elapsed = self._progress.tasks[task].elapsed or 0.0
            description = self._progress.tasks[task].description
            self.note(f"{description}: {detail} ({elapsed:.0f} s)")

    def log(self, line: str) -> None:
        if self._log is not None:
            self._log.write(line if line.endswith("\n") else line + "\n")
            self._log.flush()

    def run(
        self, command: Sequence[str], on_line: Callable[[str], None], tail_lines: int = 40
    ) -> tuple[int, str]:
        """Run ``command`` (stderr merged into stdout), logging it and every line it prints and
        passing each line to ``on_line`` (to move a task along). Returns its exit code and its
        last ``tail_lines`` lines, for the error message of a failed run.

        Raises :class:`OSError` when ``command`` cannot be started.
        ref: https://docs.python.org/3/library/subprocess.html#subprocess.Popen
        """
        self.log("$ " + " ".join(command))
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        ) as process:
            assert process.stdout is not None
            tail: list[str] = []
            for line in process.stdout:
                self.log(line)
                tail = [*tail[-(tail_lines - 1) :], line.rstrip()]
                on_line(line)
            return process.wait(), "\n".join(tail)

    def note(self, message: str) -> None:
        self.log(message)
        self._progress.console.print(message)
