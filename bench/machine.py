"""What a result was measured on: the machine, its load, the code (git commit)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench import REPO_DIR


def _first_line(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def _os_name() -> str:
    release = Path("/etc/os-release")
    if release.is_file():
        for line in release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()


def machine_facts() -> dict[str, Any]:
    podman = _first_line(["podman", "--version"])
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": round(_memory_bytes() / 2**30, 1),
        "os": _os_name(),
        "kernel": platform.release(),
        "arch": platform.machine(),
        "python": platform.python_version(),
        "podman": podman.removeprefix("podman version ") if podman else None,
    }


def git_facts(repo: Path = REPO_DIR) -> dict[str, Any]:
    commit = _first_line(["git", "-C", str(repo), "rev-parse", "HEAD"])
    # Changes to tracked files outside bench/ mean the measured code is not exactly `commit`.
    status = subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            ":(exclude)bench",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    changed = [line[3:] for line in status.stdout.splitlines() if line.strip()]
    return {"commit": commit, "uncommitted_changes": changed}


def load_average() -> list[float]:
    """1, 5 and 15-minute load averages: how busy the (shared) machine was."""
    return [round(value, 2) for value in os.getloadavg()]
