"""Running checkov, isolated: as ``uv tool run --from checkov==<pin>`` because checkov's own pins
(boto3, pulumi, s3fs, ...) cannot share this project's lock, with ``--skip-download`` so
nothing is fetched from Bridgecrew; :class:`CheckovUnavailable` when it cannot run.

ref: https://www.checkov.io/2.Basics/CLI%20Command%20Reference.html
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CHECKOV_VERSION = "3.3.30"

# Checks that do not apply to these images, with the reason.
CHECKOV_SKIPS: dict[str, str] = {
    "CKV_DOCKER_2": (
        "HEALTHCHECK: the images are built in OCI format, which has no HEALTHCHECK (podman drops "
        "it), and Kubernetes / ECS ignore it; liveness is the orchestrator's probe"
    ),
}


# --------------------------------------------------------------------------- checkov


class CheckovUnavailable(RuntimeError):
    pass


def uv_binary() -> str | None:
    """`uv run` exports UV with its own path; otherwise look on PATH and where the Makefile puts
    it."""
    for candidate in (
        os.environ.get("UV"),
        shutil.which("uv"),
        str(Path.home() / ".local" / "bin" / "uv"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def checkov_command(
    directory: Path,
    uv: str,
    framework: str = "dockerfile",
    skip: Iterable[str] = tuple(CHECKOV_SKIPS),
) -> list[str]:
    command = [
        uv,
        "tool",
        "run",
        "--from",
        f"checkov=={CHECKOV_VERSION}",
        "checkov",
        "--skip-download",
        "--framework",
        framework,
        "--directory",
        str(directory),
        "--output",
        "json",
        "--compact",
        "--quiet",
    ]
    skipped = sorted(skip)
    return command + (["--skip-check", ",".join(skipped)] if skipped else [])


def run_checkov(
    directory: Path, framework: str, skip: Iterable[str], timeout: float
) -> list[dict[str, Any]]:
    """checkov's failed checks on the files of ``directory`` (its JSON ``failed_checks``)."""
    uv = uv_binary()
    if uv is None:
        raise CheckovUnavailable("uv is not installed; checkov runs as `uv tool run checkov`")
    completed = subprocess.run(
        checkov_command(directory, uv, framework, skip),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    # checkov exits 1 when checks fail, 0 when all pass; anything else (or no JSON) is an error.
    try:
        report = json.loads(completed.stdout)
    except ValueError:
        raise CheckovUnavailable(
            f"checkov produced no report (exit {completed.returncode}): "
            f"{completed.stderr.strip()[-2000:]}"
        ) from None
    reports = report if isinstance(report, list) else [report]
    return [c for entry in reports for c in entry.get("results", {}).get("failed_checks", [])]
