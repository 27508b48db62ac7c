"""Where the project's files are: the one way every module finds the repository root.

The root is the nearest directory holding ``Pulumi.yaml``, searched from the working directory
upwards (how Pulumi itself finds a project), then from this source checkout. Installed from a
wheel and run outside a checkout, there is no root: :class:`ProjectNotFoundError` says so.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_FILE = "Pulumi.yaml"
ROOT_ENV = "DASK_PLATFORM_ROOT"
"""Set to a checkout's directory to use it from anywhere (overrides the search)."""


class ProjectNotFoundError(FileNotFoundError):
    """No dask-platform checkout (a directory with Pulumi.yaml) was found."""


def _search(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        if (directory / PROJECT_FILE).is_file() and (directory / "helm").is_dir():
            return directory
    return None


def project_root() -> Path:
    """The checkout's root directory (holds Pulumi.yaml, helm/, policies/, infra/).

    Raises ProjectNotFoundError naming the places searched and DASK_PLATFORM_ROOT.
    """
    override = os.environ.get(ROOT_ENV)
    if override:
        root = Path(override).resolve()
        if not (root / PROJECT_FILE).is_file():
            raise ProjectNotFoundError(f"{ROOT_ENV}={override}: no {PROJECT_FILE} there")
        return root
    for start in (Path.cwd().resolve(), Path(__file__).resolve().parent):
        found = _search(start)
        if found is not None:
            return found
    raise ProjectNotFoundError(
        f"no dask-platform checkout ({PROJECT_FILE} beside helm/) in {Path.cwd()} or its "
        f"parents; run from a checkout or set {ROOT_ENV}"
    )
