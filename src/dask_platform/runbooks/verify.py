"""`verify-workers`: prove, per worker, that the keyless path holds on a running cluster.

For every worker: its AWS identity (``sts get-caller-identity``) must be the team's role; no AWS
key variable and no identity override may be in its environment; it must write and read back
an object under its team's scratch prefix; its write under another team's prefix must be
refused with ``AccessDenied``; every object store granted to its team must hand it the store's
key through the store's profile, and every other store must be refused with ``AccessDenied``;
its package versions must equal the client's. Anything else is a
finding. The probe objects are deleted again.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dask_platform.runbooks import remote


class VerifyError(ValueError):
    """The cluster cannot be verified as asked (not a finding about the workers)."""


@dataclass
class WorkerResult:
    address: str
    report: dict[str, Any]
    findings: list[str] = field(default_factory=list)
    drifted: dict[str, str] = field(default_factory=dict)


@dataclass
class VerifyReport:
    team: str
    other_team: str | None
    role_arn: str
    workers: list[WorkerResult]
    cluster_findings: list[str] = field(default_factory=list)
    # Object store profile -> whether the team is granted it (each checked on every worker).
    object_stores: dict[str, bool] = field(default_factory=dict)

    @property
    def findings(self) -> list[str]:
        return self.cluster_findings + [
            f"{w.address}: {finding}" for w in self.workers for finding in w.findings
        ]


def cluster_team(client: Any, outputs: Mapping[str, Any], team: str | None) -> str:
    teams = list(outputs.get("teams") or [])
    if team is not None:
        if team not in teams:
            raise VerifyError(f"--team: {team!r} is not a team of this site; teams: {teams}")
        return team
    remote.by_value()
    seen = {v for v in client.run(remote.worker_team).values() if v}
    if len(seen) != 1:
        raise VerifyError(
            "cannot tell the cluster's team from its workers "
            f"({', '.join(sorted(seen)) or 'none set'}); give --team (one of {', '.join(teams)})"
        )
    found = seen.pop()
    if found not in teams:
        raise VerifyError(f"the workers say team {found!r}, which this site does not have")
    return found


def _object_store_findings(
    team: str, stores: Mapping[str, Any], access: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    findings = []
    for store, spec in sorted(stores.items()):
        outcome = access.get(store, {"ok": False, "error": "not checked"})
        granted = team in spec["teams"]
        if granted and not outcome["ok"]:
            findings.append(f"cannot use object store {store} ({outcome['error']})")
        elif not granted and outcome["ok"]:
            findings.append(
                f"READ the key of object store {store}, which team {team} is not granted: "
                "isolation is broken"
            )
        elif not granted and "AccessDenied" not in str(outcome["error"]):
            findings.append(
                f"object store {store} (not granted) failed with {outcome['error']}, not "
                "AccessDenied"
            )
    return findings


def verify(
    client: Any,
    outputs: Mapping[str, Any],
    team: str | None = None,
    other_team: str | None = None,
) -> VerifyReport:
    from dask_platform.images import drift

    chosen = cluster_team(client, outputs, team)
    teams = list(outputs.get("teams") or [])
    if other_team is not None and (other_team not in teams or other_team == chosen):
        raise VerifyError(
            f"--other-team: {other_team!r} must be another team of this site; teams: {teams}"
        )
    other = other_team or next((t for t in teams if t != chosen), None)
    scratch = outputs["scratch_urls"]
    role_arn = str(outputs["team_role_arns"][chosen])
    role_name = role_arn.rsplit("/", 1)[-1]
    probe_id = uuid.uuid4().hex[:12]
    remote.by_value()
    reports: dict[str, dict[str, Any]] = client.run(
        remote.verify_worker,
        scratch[chosen],
        scratch[other] if other else scratch[chosen],
        probe_id,
    )
    # Object stores: every granted store's key is readable, every other one AccessDenied.
    stores: Mapping[str, Any] = outputs.get("object_stores") or {}
    store_access: dict[str, dict[str, Any]] = (
        client.run(remote.object_store_access, sorted(stores)) if stores else {}
    )
    result = VerifyReport(team=chosen, other_team=other, role_arn=role_arn, workers=[])
    result.object_stores = {s: chosen in spec["teams"] for s, spec in sorted(stores.items())}
    if not reports:
        result.cluster_findings.append("the cluster has no worker to verify")

    client_versions = drift.client_versions()
    packages = [p for p in client_versions if p != drift.PYTHON]
    sources = {drift.CLIENT: client_versions, **drift.cluster_versions(client, packages)}
    comparison = drift.compare(sources)
    for row in comparison.drifted:
        scheduler_version = row.versions.get("scheduler")
        if scheduler_version != row.versions[drift.CLIENT]:
            result.cluster_findings.append(
                f"scheduler: {row.package} {scheduler_version or 'missing'} "
                f"(client {row.versions[drift.CLIENT] or 'missing'})"
            )

    for address, report in sorted(reports.items()):
        worker = WorkerResult(address, {**report, "object_stores": store_access.get(address, {})})
        caller = report.get("caller_arn")
        if caller is None:
            worker.findings.append(f"no AWS identity ({report.get('caller_error')})")
        elif f":assumed-role/{role_name}/" not in caller:
            worker.findings.append(f"identity {caller} is not the team role {role_name}")
        if report["key_variables"]:
            worker.findings.append(
                f"AWS key variable(s) in the environment: {', '.join(report['key_variables'])}"
            )
        if report["identity_overrides"]:
            overrides = ", ".join(report["identity_overrides"])
            worker.findings.append(f"identity override(s) in the environment: {overrides}")
        if report.get("team") not in (None, chosen):
            worker.findings.append(f"DASK_PLATFORM_TEAM is {report['team']}, not {chosen}")
        written, read = report["team_write"], report["team_read"]
        if not written["ok"]:
            worker.findings.append(f"cannot write its team prefix ({written['error']})")
        elif not read["ok"] or not read.get("matches"):
            worker.findings.append(f"cannot read back its team prefix ({read.get('error')})")
        if other is not None:
            foreign = report["other_team_write"]
            if foreign["ok"]:
                worker.findings.append(f"WROTE under team {other}'s prefix: isolation is broken")
            elif foreign["error"] != "AccessDenied":
                worker.findings.append(
                    f"write under team {other}'s prefix failed with {foreign['error']}, not "
                    "AccessDenied"
                )
        worker.findings += _object_store_findings(chosen, stores, store_access.get(address, {}))
        source = f"worker {address}"
        for row in comparison.drifted:
            if source in row.versions and row.versions[source] != row.versions[drift.CLIENT]:
                worker.drifted[row.package] = (
                    f"{row.versions[source] or 'missing'} "
                    f"(client {row.versions[drift.CLIENT] or 'missing'})"
                )
        if worker.drifted:
            worker.findings.append(
                "versions differ from the client: "
                + ", ".join(f"{p} {v}" for p, v in sorted(worker.drifted.items()))
            )
        result.workers.append(worker)
    return result
