"""A finding of any linter, as the gate reports it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LintFinding:
    linter: str
    source: str
    issue: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.linter}] {self.source}: {self.issue} {self.detail}".rstrip()
