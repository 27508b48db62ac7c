"""checkov on ``images/*/Containerfile``. checkov only recognises files named like ``Dockerfile``,
so each Containerfile is scanned as a renamed copy (with the global ARG defaults written into
its FROM lines, see :func:`resolve_from_args`) and reported under its real path.

ref: https://www.checkov.io/5.Policy%20Index/dockerfile.html
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from dask_platform.guard.lint.checkov import CHECKOV_SKIPS, run_checkov
from dask_platform.guard.lint.findings import LintFinding

CONTAINERFILE_GLOB = "images/*/Containerfile"


def containerfiles(repo: Path) -> list[Path]:
    return sorted(repo.glob(CONTAINERFILE_GLOB))


_GLOBAL_ARG = re.compile(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)=(\S+)\s*$")
_FROM = re.compile(r"^\s*FROM\s", re.IGNORECASE)


def resolve_from_args(text: str) -> str:
    """The Containerfile with the global ``ARG`` defaults substituted into its ``FROM`` lines,
    as a build without ``--build-arg`` resolves them. checkov does not expand them, so
    ``FROM ${BASE_IMAGE}`` would always read as an untagged image. Line numbers are kept."""
    defaults: dict[str, str] = {}
    seen_from = False
    out = []
    for line in text.splitlines(keepends=True):
        if _FROM.match(line):
            seen_from = True
            for name, value in defaults.items():
                line = line.replace(f"${{{name}}}", value).replace(f"${name}", value)
        elif not seen_from and (match := _GLOBAL_ARG.match(line)):
            defaults[match.group(1)] = match.group(2).strip("\"'")
        out.append(line)
    return "".join(out)


def checkov_findings(paths: Iterable[Path], timeout: float = 600) -> list[LintFinding]:
    """Failed checkov checks for each Containerfile (reported under its real path)."""
    paths = list(paths)
    if not paths:
        return []
    with tempfile.TemporaryDirectory(prefix="checkov-") as scratch:
        names: dict[str, Path] = {}
        for index, path in enumerate(paths):
            # checkov only scans files named like Dockerfile: <n>-<image>.Dockerfile.
            copy_name = f"{index}-{path.parent.name}.Dockerfile"
            (Path(scratch) / copy_name).write_text(resolve_from_args(path.read_text()))
            names[copy_name] = path
        failed = run_checkov(Path(scratch), "dockerfile", CHECKOV_SKIPS, timeout)
    out = []
    for check in failed:
        copy = Path(check.get("file_path", "")).name
        source = names.get(copy, Path(copy))
        lines = check.get("file_line_range") or []
        where = f"{source}:{lines[0]}" if lines else str(source)
        out.append(LintFinding("checkov", where, check["check_id"], check["check_name"]))
    return out
