"""The wheelhouse: hash-checked wheels for one machine architecture, every one the lock pins for
an image, downloaded once (``pip download --require-hashes`` for what is missing) and reused
by every build context (:mod:`dask_platform.images.build`).

ref: https://pip.pypa.io/en/stable/cli/pip_download/
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from rich.progress import TaskID

from dask_platform.images import ImageBuildError
from dask_platform.images.lock import LockedRequirement
from dask_platform.images.progress import Reporter

# Debian bookworm's glibc; wheels needing a newer one would not load in the base.
GLIBC = (2, 36)


def wheel_platforms(machine: str, glibc: tuple[int, int] = GLIBC) -> list[str]:
    """pip's ``--platform`` list for a glibc: every manylinux tag it can load (pip does not
    expand PEP 600 ``manylinux_2_X`` tags itself)."""
    major, newest = glibc
    tags = [f"manylinux_{major}_{minor}_{machine}" for minor in range(newest, 4, -1)]
    legacy = ["manylinux2014", "manylinux2010", "manylinux1"]
    if machine != "x86_64":
        legacy = ["manylinux2014"]
    return tags + [f"{name}_{machine}" for name in legacy]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Wheelhouse:
    """Hash-checked wheels for one machine architecture, downloaded once and reused."""

    def __init__(self, root: Path, machine: str, python_full_version: str) -> None:
        self.root = root
        self.machine = machine
        self.python = python_full_version
        self._verified: dict[Path, str] = {}

    def _index(self) -> dict[tuple[str, str], list[Path]]:
        found: dict[tuple[str, str], list[Path]] = {}
        for path in self.root.glob("*.whl"):
            try:
                name, version, _, _ = parse_wheel_filename(path.name)
            except InvalidWheelFilename:
                continue
            found.setdefault((canonicalize_name(name), str(version)), []).append(path)
        return found

    def _matching(
        self, requirement: LockedRequirement, index: Mapping[tuple[str, str], list[Path]]
    ) -> Path | None:
        allowed = {h.removeprefix("sha256:") for h in requirement.hashes}
        for path in index.get((requirement.name, requirement.version), []):
            if path not in self._verified:
                self._verified[path] = sha256_file(path)
            if self._verified[path] in allowed:
                return path
        return None

    def ensure(
        self, image: str, wanted: Mapping[str, LockedRequirement], reporter: Reporter
    ) -> dict[str, Path]:
        """A verified wheel for every requirement (already narrowed to the image's platform)."""
        self.root.mkdir(parents=True, exist_ok=True)
        task = reporter.task(f"{image}: wheels", total=len(wanted))
        index = self._index()
        missing = [r for r in wanted.values() if self._matching(r, index) is None]
        reporter.update(task, completed=len(wanted) - len(missing))
        if missing:
            self._download(missing, reporter, task)
            index = self._index()
        wheels: dict[str, Path] = {}
        for name, requirement in wanted.items():
            path = self._matching(requirement, index)
            if path is None:
                raise ImageBuildError(
                    f"{image}: no wheel of {name}=={requirement.version} for "
                    f"{self.machine}/Python {self.python} matches the lock's hashes"
                )
            wheels[name] = path
        reporter.done(task, f"{len(wheels)} wheels, {len(missing)} downloaded")
        return wheels

    def _download(
        self, missing: Iterable[LockedRequirement], reporter: Reporter, task: TaskID
    ) -> None:
        # Markers are dropped: pip would evaluate them against THIS interpreter, and the
        # requirements are already narrowed to the image's (whose Python patch level may differ).
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
            listing.writelines(f"{r.pinned_with_hashes}\n" for r in missing)
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--no-deps",
            "--require-hashes",
            "--only-binary=:all:",
            "--progress-bar=off",
            "--implementation=cp",
            f"--python-version={self.python}",
            "--dest",
            str(self.root),
            "-r",
            listing.name,
        ]
        for tag in wheel_platforms(self.machine):
            command.append(f"--platform={tag}")

        def saved(line: str) -> None:
            if line.startswith("Saved ") or "File was already downloaded" in line:
                reporter.update(task, advance=1, detail=Path(line.split()[-1]).name)

        try:
            returncode, tail = reporter.run(command, saved)
            if returncode != 0:
                raise ImageBuildError(
                    "pip could not download the locked wheels (network, or a package without a "
                    f"wheel for this platform):\n{tail}"
                )
        finally:
            Path(listing.name).unlink(missing_ok=True)
