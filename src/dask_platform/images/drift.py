"""Version drift between the client environment, built images and running clusters.

The most common Dask support question is a version mismatch between a notebook and its workers.
This compares, package by package, the versions every source reports:

* the client - the environment this runs in (``importlib.metadata``);
* an image - its own Python, run in a throwaway container, lists its distributions;
* a running cluster - ``Client.get_versions(check=True)`` asks the scheduler and every worker.

A package is compared where the client has it and another source reports it; Dask's required
packages must be present everywhere. Python is compared on major.minor (a patch-level
difference does not change pickling or the wire protocol). Any difference is a finding.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

CLIENT = "client"
PYTHON = "python"
# distributed's own list of packages that must match across client, scheduler and workers.
# ref: https://github.com/dask/distributed/blob/main/distributed/versions.py
REQUIRED = ("dask", "distributed", "msgpack", "cloudpickle", "tornado", "toolz")

_VERSIONS_SCRIPT = (
    "import importlib.metadata as m, json, platform;"
    "print(json.dumps({'python': platform.python_version(),"
    " 'packages': {d.metadata['Name']: d.version for d in m.distributions()}}))"
)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def python_minor(version: str | None) -> str | None:
    if version is None:
        return None
    return ".".join(version.split(".")[:2])


@dataclass(frozen=True)
class Row:
    package: str
    versions: dict[str, str | None]  # source -> version (None: not installed there)

    @property
    def drifted(self) -> bool:
        present = {v for v in self.versions.values() if v is not None}
        missing_required = self.package in REQUIRED and None in self.versions.values()
        return len(present) > 1 or missing_required


@dataclass
class DriftReport:
    sources: list[str]
    rows: list[Row] = field(default_factory=list)

    @property
    def drifted(self) -> list[Row]:
        return [row for row in self.rows if row.drifted]


def client_versions() -> dict[str, str]:
    import platform

    versions: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        # The first one on sys.path is the one `import` and importlib.metadata.version() use;
        # later ones are shadowed copies (e.g. setuptools/_vendor, on sys.path once
        # pkg_resources is imported).
        versions.setdefault(canonical(dist.metadata["Name"]), dist.version)
    versions[PYTHON] = platform.python_version()
    return versions


def image_versions(docker_client: Any, reference: str) -> dict[str, str]:
    """What an image has installed, reported by the image's own Python."""
    output = docker_client.containers.run(
        reference, ["python3", "-c", _VERSIONS_SCRIPT], remove=True, network_disabled=True
    )
    text = output.decode() if isinstance(output, bytes) else str(output)
    data = json.loads(text.strip().splitlines()[-1])
    versions = {canonical(name): version for name, version in data["packages"].items()}
    versions[PYTHON] = data["python"]
    return versions


def cluster_versions(dask_client: Any, packages: Iterable[str]) -> dict[str, dict[str, str]]:
    """Per scheduler and worker, the versions of ``packages`` (and Dask's own list)."""
    with warnings.catch_warnings():
        # check=True makes distributed warn about mismatches; the report here is the table.
        warnings.simplefilter("ignore")
        reported = dask_client.get_versions(check=True, packages=sorted(set(packages)))

    def flatten(info: Mapping[str, Any] | None) -> dict[str, str]:
        found = dict((info or {}).get("packages") or {})
        versions = {canonical(k): str(v) for k, v in found.items() if v is not None}
        python = found.get(PYTHON)
        if python is not None:
            versions[PYTHON] = ".".join(str(python).split(".")[:3])
        return versions

    sources = {"scheduler": flatten(reported.get("scheduler"))}
    for address, info in sorted((reported.get("workers") or {}).items()):
        sources[f"worker {address}"] = flatten(info)
    return sources


def compare(sources: Mapping[str, Mapping[str, str]]) -> DriftReport:
    """Rows for every package the client shares with another source (and Dask's required)."""
    if CLIENT not in sources:
        raise ValueError("compare() needs the client's versions")
    names = list(sources)
    others = [n for n in names if n != CLIENT]
    client = sources[CLIENT]
    shared = {
        package
        for package in client
        if package in REQUIRED or any(package in sources[other] for other in others)
    }
    rows = []
    for package in sorted(shared):
        versions = {source: sources[source].get(package) for source in names}
        if package == PYTHON:
            versions = {source: python_minor(v) for source, v in versions.items()}
        rows.append(Row(package, versions))
    return DriftReport(sources=names, rows=rows)
