"""checkov's kubernetes checks on every object a stack applies (the rendered Helm releases and
the program's own objects, :mod:`dask_platform.guard.manifests`): every failure fails, except
those a waiver of ``policies/checkov-kubernetes-waivers.yaml`` covers (check id, resource ids,
reason), the one reviewed list.

ref: https://www.checkov.io/5.Policy%20Index/kubernetes.html
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from dask_platform.guard.lint.checkov import run_checkov
from dask_platform.guard.lint.findings import LintFinding

# --------------------------------------------------------------------------- checkov, kubernetes

KUBERNETES_WAIVERS_FILE = "policies/checkov-kubernetes-waivers.yaml"
"""The one reviewed list of checkov kubernetes findings accepted, each with its reason."""


class CheckovWaiver(BaseModel):
    """One accepted checkov kubernetes check on named resources, and why.

    ``resources`` are checkov's resource ids, ``<Kind>.<namespace>.<name>`` (shell-style
    wildcards allowed for ids checkov extends with labels, e.g. ``Pod.ns.name.*``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    check: str = Field(pattern=r"^CKV2?_K8S_[0-9]+$", description="checkov check id")
    resources: tuple[str, ...] = Field(min_length=1)
    reason: str = Field(min_length=40, description="why the finding is accepted")

    def covers(self, check: str, resource: str) -> bool:
        return check == self.check and any(fnmatchcase(resource, r) for r in self.resources)


class _WaiverFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    waivers: list[CheckovWaiver]


def kubernetes_waivers(path: Path | None = None) -> list[CheckovWaiver]:
    """The reviewed waivers (:data:`KUBERNETES_WAIVERS_FILE`). Raises ValueError listing every
    malformed entry by key path (``waivers[0].reason: ...``)."""
    from pydantic import ValidationError

    from dask_platform.config.errors import format_validation_error, problems_message

    if path is None:
        from dask_platform.project import project_root

        path = project_root() / KUBERNETES_WAIVERS_FILE
    try:
        return _WaiverFile.model_validate(yaml.safe_load(path.read_text())).waivers
    except ValidationError as exc:
        problems = format_validation_error(exc, _WaiverFile)
        raise ValueError(problems_message(path.name, problems)) from None


@dataclass(frozen=True)
class CheckovResult:
    """One failed checkov check on one Kubernetes object (before waivers)."""

    check: str
    name: str
    resource: str  # checkov's id: <Kind>.<namespace>.<name>
    source: str  # where the object comes from (release template or declared resource)

    def finding(self) -> LintFinding:
        return LintFinding("checkov", f"{self.source} ({self.resource})", self.check, self.name)


def checkov_kubernetes_results(
    objects: Iterable[tuple[str, Mapping[str, Any]]], timeout: float = 600
) -> list[CheckovResult]:
    """checkov's kubernetes checks on ``[(source, manifest), ...]``, every failure kept."""
    objects = list(objects)
    if not objects:
        return []
    with tempfile.TemporaryDirectory(prefix="checkov-k8s-") as scratch:
        sources: dict[str, str] = {}
        for index, (source, manifest) in enumerate(objects):
            name = f"{index:04d}-{manifest.get('kind', 'object')}.yaml"
            (Path(scratch) / name).write_text(yaml.safe_dump(dict(manifest), sort_keys=False))
            sources[name] = source
        failed = run_checkov(Path(scratch), "kubernetes", (), timeout)
    return [
        CheckovResult(
            check=c["check_id"],
            name=c["check_name"],
            resource=c.get("resource", ""),
            source=sources.get(Path(c.get("file_path", "")).name, c.get("file_path", "")),
        )
        for c in failed
    ]


def waive(
    results: Iterable[CheckovResult], waivers: Iterable[CheckovWaiver]
) -> tuple[list[LintFinding], set[CheckovWaiver]]:
    """(the findings no waiver covers, the waivers that covered something)."""
    waivers = list(waivers)
    findings, used = [], set()
    for result in results:
        covering = [w for w in waivers if w.covers(result.check, result.resource)]
        used.update(covering)
        if not covering:
            findings.append(result.finding())
    return findings, used


def checkov_kubernetes_findings(
    objects: Iterable[tuple[str, Mapping[str, Any]]],
    waivers: Iterable[CheckovWaiver] | None = None,
    timeout: float = 600,
) -> list[LintFinding]:
    """checkov's kubernetes checks on ``[(source, manifest), ...]`` less the reviewed waivers
    (:func:`kubernetes_waivers` when None). Raises CheckovUnavailable when checkov cannot run.
    ref: https://www.checkov.io/5.Policy%20Index/kubernetes.html
    """
    chosen = kubernetes_waivers() if waivers is None else waivers
    findings, _ = waive(checkov_kubernetes_results(objects, timeout), chosen)
    return findings
