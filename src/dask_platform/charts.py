"""The upstream Helm charts, read from a chart cache, checked against pins, rendered offline.

``helm/charts.yaml`` pins each chart's version and the sha256 of its packaged archive. Archives
live in one chart cache directory: the ``DASK_PLATFORM_CHART_CACHE`` setting (the Makefile points
it at the workspace's copy where one exists). Rendering uses Helm's own Go library through
``helm-python-sdk`` (no helm binary, no cluster: ``lookup`` returns nothing).

ref: https://helm.sh/docs/helm/helm_template/ (what ``render`` reproduces)
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dask_platform.project import project_root

_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

CHART_CACHE_ENV = "DASK_PLATFORM_CHART_CACHE"
"""The directory holding packaged chart archives named ``<chart>-<version>.tgz``."""


class ChartError(RuntimeError):
    """A chart archive is missing, unpinned or not the pinned bytes; the message says how to fix."""


@dataclass(frozen=True)
class ChartPin:
    name: str
    version: str
    repository: str
    sha256: str

    @property
    def archive_name(self) -> str:
        return f"{self.name}-{self.version}.tgz"

    @property
    def reference(self) -> str:
        """How Helm names the chart: ``oci://<registry>/<name>`` for an OCI chart (Helm has no
        repository index for those), else the plain name used with ``repo``."""
        if self.repository.startswith("oci://"):
            return f"{self.repository}/{self.name}"
        return self.name

    def pull_command(self, cache: str) -> str:
        """The command that puts the pinned archive into ``cache``."""
        if self.repository.startswith("oci://"):
            return f"helm pull {self.repository}/{self.name} --version {self.version} -d {cache}"
        return f"helm pull {self.name} --version {self.version} --repo {self.repository} -d {cache}"


def pins_file() -> Path:
    return project_root() / "helm" / "charts.yaml"


@functools.cache
def chart_pins() -> dict[str, ChartPin]:
    """Every pinned chart, by name (from ``helm/charts.yaml``)."""
    data = yaml.safe_load(pins_file().read_text())
    return {
        name: ChartPin(
            name=name,
            version=str(entry["version"]),
            repository=entry["repository"],
            sha256=entry["sha256"],
        )
        for name, entry in data["charts"].items()
    }


def pin_of_reference(
    chart: str, version: str | None = None, repository: str | None = None
) -> ChartPin:
    """The pin of a chart as a Helm release names it: ``chart`` is a name (``dask-gateway``,
    with ``repository`` its repository URL) or an OCI reference (``oci://<registry>/<name>``,
    no repository). The version and any repository named must be the pinned ones.

    Raises ChartError naming the chart, the pinned version and repository.
    ref: https://www.pulumi.com/registry/packages/kubernetes/api-docs/helm/v3/release/
    """
    name = chart
    if chart.startswith("oci://"):
        prefix, _, name = chart.rpartition("/")
        repository = repository or prefix
    pin = chart_pin(name, version)
    if repository is not None and repository.rstrip("/") != pin.repository.rstrip("/"):
        raise ChartError(
            f"chart {pin.name}: repository {repository} is not the pinned {pin.repository} "
            "(helm/charts.yaml)"
        )
    return pin


def chart_pin(name: str, version: str | None = None) -> ChartPin:
    """The pin of chart ``name``; ``version``, when given, must be the pinned one."""
    pins = chart_pins()
    if name not in pins:
        raise ChartError(f"chart {name!r} is not pinned in helm/charts.yaml ({', '.join(pins)})")
    pin = pins[name]
    if version is not None and version != pin.version:
        raise ChartError(
            f"chart {name} {version} is not the pinned version {pin.version} (helm/charts.yaml); "
            "bump the pin (version and sha256) together with the values it is tested with"
        )
    return pin


def chart_cache() -> Path:
    """The chart cache directory (``DASK_PLATFORM_CHART_CACHE``); ChartError when unset."""
    value = os.environ.get(CHART_CACHE_ENV)
    if not value:
        raise ChartError(
            f"{CHART_CACHE_ENV} is not set: point it at the directory holding the pinned chart "
            "archives (helm/charts.yaml), e.g. "
            + "; ".join(pin.pull_command("<cache>") for pin in chart_pins().values())
        )
    cache = Path(value)
    if not cache.is_dir():
        raise ChartError(
            f"{CHART_CACHE_ENV}={value} is not a directory; create it and fetch the pinned "
            "archives (helm/charts.yaml) into it: "
            + "; ".join(pin.pull_command(value) for pin in chart_pins().values())
        )
    return cache


def chart_archive(name: str, version: str | None = None) -> Path:
    """The verified archive of a pinned chart. ChartError if absent or not the pinned bytes."""
    pin = chart_pin(name, version)
    cache = chart_cache()
    path = cache / pin.archive_name
    if not path.is_file():
        raise ChartError(
            f"chart {pin.name} {pin.version}: {pin.archive_name} is not in the chart cache "
            f"{cache} ({CHART_CACHE_ENV}); fetch it with: {pin.pull_command(str(cache))}"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != pin.sha256:
        raise ChartError(
            f"chart {pin.name} {pin.version}: {path} has sha256 {digest}, not the pinned "
            f"{pin.sha256} (helm/charts.yaml); fetch it again with: "
            f"{pin.pull_command(str(cache))}"
        )
    return path


@functools.cache
def _load(path: Path, digest_key: str) -> Any:
    import helm_python  # imported on use: loading the Go library costs ~0.1 s

    return helm_python.Chart.load(path)


def render(
    name: str,
    values: dict[str, Any],
    *,
    release: str,
    namespace: str,
    version: str | None = None,
) -> dict[str, str]:
    """Render a pinned chart as ``helm template`` would: ``{template path: manifest text}``.

    Values are merged over the chart's defaults; Helm checks them against the chart's
    ``values.schema.json`` when it has one (for a chart with only ``values.schema.yaml``, see
    :func:`values_schema_problems`). Raises ChartError (cache, pin) or helm_python.HelmError
    (values, templates).
    """
    pin = chart_pin(name, version)
    chart = _load(chart_archive(name, version), pin.sha256)
    return dict(chart.render(values, name=release, namespace=namespace, is_install=True))


def merge_values(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` layered on ``base`` as Helm layers values files: mappings merge key by key,
    anything else (lists included) replaces. Neither input is changed.
    ref: https://helm.sh/docs/chart_template_guide/values_files/"""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_values(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def manifests(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object in rendered templates, in template order (empty docs dropped)."""
    return [obj for _, obj in documents(rendered)]


def documents(rendered: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """``[(template path, object), ...]`` of rendered templates (or chart files), in path order;
    empty documents and non-YAML files (NOTES.txt) dropped."""
    objects: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(rendered):
        if not path.endswith((".yaml", ".yml")):
            continue
        # libyaml's loader where PyYAML has it: CRDs run to thousands of lines (10x faster).
        for document in yaml.load_all(rendered[path], Loader=_SAFE_LOADER):
            if document:
                objects.append((path, document))
    return objects


def chart_crds(name: str, version: str | None = None) -> dict[str, str]:
    """``{path: text}`` of the chart's ``crds/`` files, which Helm installs before the templates
    (``helm template`` leaves them out unless ``--include-crds``).
    ref: https://helm.sh/docs/chart_best_practices/custom_resource_definitions/
    """
    import tarfile

    pin = chart_pin(name, version)
    prefix = f"{pin.name}/crds/"
    out: dict[str, str] = {}
    with tarfile.open(chart_archive(name, version)) as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.startswith(prefix):
                extracted = archive.extractfile(member)
                if extracted is not None:
                    out[member.name] = extracted.read().decode()
    return out


SCHEMA_FILES = ("values.schema.json", "values.schema.yaml")
"""Where a chart keeps its values schema: Helm reads only the JSON one. dask-gateway's
published archive carries only the YAML one, which Helm therefore never applies."""


def values_schema_problems(
    name: str, values: Mapping[str, Any], version: str | None = None
) -> list[str]:
    """Every way ``values``, layered over the chart's own ``values.yaml`` as Helm layers them,
    break the chart's values schema: ``["<key.path>: <message>", ...]``, sorted by path; ``[]``
    when they conform or the chart has no schema. A misspelled key (``gateway.extraconfig``)
    is one such problem: Helm would render it silently when the schema is not the JSON one.
    Raises ChartError (cache, pin). ref: https://helm.sh/docs/topics/charts/#schema-files
    """
    import tarfile

    import jsonschema

    pin = chart_pin(name, version)
    with tarfile.open(chart_archive(name, version)) as archive:
        members = set(archive.getnames())
    schema_file = next((f for f in SCHEMA_FILES if f"{pin.name}/{f}" in members), None)
    if schema_file is None:
        return []
    schema = yaml.safe_load(chart_file(name, schema_file, version))  # JSON is YAML too
    defaults = yaml.safe_load(chart_file(name, "values.yaml", version)) or {}
    validator = jsonschema.Draft202012Validator(schema)
    errors = validator.iter_errors(merge_values(defaults, values))
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}"
        for e in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path])
    ]


def chart_file(name: str, member: str, version: str | None = None) -> str:
    """A file of the pinned archive as text (e.g. ``crds/karpenter.sh_nodepools.yaml``)."""
    import tarfile

    pin = chart_pin(name, version)
    with tarfile.open(chart_archive(name, version)) as archive:
        extracted = archive.extractfile(f"{pin.name}/{member}")
        if extracted is None:
            raise ChartError(f"chart {pin.name} {pin.version} has no file {member}")
        return extracted.read().decode()
