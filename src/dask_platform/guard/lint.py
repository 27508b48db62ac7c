"""IAM and image linters through their Python APIs (checkov through its CLI, isolated).

* parliament (community auditors on): every finding fails, except the few listed in
  :data:`ACCEPTED_PARLIAMENT_FINDINGS`, each narrowed to the document kind and detail it is about
  and carrying the reason a reviewer accepted it.
* cloudsplaining: on identity policies, any privilege escalation, data exfiltration, resource
  exposure (permissions management without constraints), credentials exposure or service
  wildcard fails. (Its CLI exits 0 on findings, hence the API.)
* checkov on ``images/*/Containerfile``: run as ``uv tool run --from checkov==<pin>`` because
  checkov's own pins (boto3, pulumi, s3fs, ...) cannot share this project's lock; with
  ``--skip-download`` so nothing is fetched from Bridgecrew. checkov only recognises files named
  like ``Dockerfile``, so each Containerfile is scanned as a renamed copy (with the global ARG
  defaults written into its FROM lines, see :func:`resolve_from_args`) and reported under its
  real path.
* checkov's kubernetes checks on every object a stack applies (the rendered Helm releases and
  the program's own objects, :mod:`dask_platform.guard.manifests`): every failure fails, except
  those a waiver of ``policies/checkov-kubernetes-waivers.yaml`` covers (check id, resource ids,
  reason), the one reviewed list.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from dask_platform.guard.documents import IamDocument
from dask_platform.guard.iam_actions import expand
from dask_platform.guard.values import as_list, statements

CHECKOV_VERSION = "3.3.30"
CONTAINERFILE_GLOB = "images/*/Containerfile"

# Checks that do not apply to these images, with the reason.
CHECKOV_SKIPS: dict[str, str] = {
    "CKV_DOCKER_2": (
        "HEALTHCHECK: the images are built in OCI format, which has no HEALTHCHECK (podman drops "
        "it), and Kubernetes / ECS ignore it; liveness is the orchestrator's probe"
    ),
}


@dataclass(frozen=True)
class LintFinding:
    linter: str
    source: str
    issue: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.linter}] {self.source}: {self.issue} {self.detail}".rstrip()


# --------------------------------------------------------------------------- parliament


@dataclass(frozen=True)
class AcceptedFinding:
    """A finding a reviewer accepted: which linter issue, on which kind of document, under what
    condition (on the finding's detail and the document itself), and why."""

    issue: str
    kinds: frozenset[str]
    applies: Callable[[str, dict[str, Any]], bool]
    reason: str


_OIDC_PROVIDER_ARN = re.compile(r"^arn:aws[-a-z]*:iam::\d{12}:oidc-provider/.+$")
_ROLE_ARN = re.compile(r"^arn:aws[-a-z]*:iam::\d{12}:role/.+$")


def _granting(document: dict[str, Any], action: str) -> list[dict[str, Any]]:
    """The Allow statements that grant ``action`` (wildcards in the document expanded)."""
    out = []
    for statement in statements(document):
        if statement.get("Effect") != "Allow":
            continue
        granted = {a for pattern in as_list(statement.get("Action")) for a in expand(str(pattern))}
        if action in granted:
            out.append(statement)
    return out


def _constrained_role_grant(statement: dict[str, Any], action: str) -> bool:
    """Named role ARNs only (a "*" inside a role name is a naming convention, not "any role"),
    and a condition; passing a role also pins the service it may be passed to."""
    resources = [str(r) for r in as_list(statement.get("Resource"))]
    if not resources or not all(_ROLE_ARN.match(r) for r in resources):
        return False
    conditions = statement.get("Condition")
    if not isinstance(conditions, dict) or not conditions:
        return False
    if action == "iam:passrole":
        return any(
            isinstance(block, dict) and "iam:PassedToService" in block
            for block in conditions.values()
        )
    return True


def _role_grants_constrained(actions: list[str], document: dict[str, Any]) -> bool:
    iam_actions = [a for a in actions if a.startswith("iam:")]
    return bool(iam_actions) and all(
        _granting(document, a)
        and all(_constrained_role_grant(s, a) for s in _granting(document, a))
        for a in iam_actions
    )


_INSTANCE_PROFILE_ARN = re.compile(r"^arn:aws[-a-z]*:iam::\d{12}:instance-profile/.+$")
_CLUSTER_TAG_KEYS = (
    "aws:ResourceTag/kubernetes.io/cluster/",
    "aws:RequestTag/kubernetes.io/cluster/",
)


def _cluster_owned_profile_grant(statement: dict[str, Any]) -> bool:
    """Instance-profile ARNs only, under a StringEquals that the profile (or the request) is
    tagged as owned by one named cluster - how Karpenter's reference scopes the profiles it
    creates for its EC2NodeClasses."""
    resources = [str(r) for r in as_list(statement.get("Resource"))]
    if not resources or not all(_INSTANCE_PROFILE_ARN.match(r) for r in resources):
        return False
    equals = (statement.get("Condition") or {}).get("StringEquals")
    return isinstance(equals, dict) and any(
        key.startswith(_CLUSTER_TAG_KEYS) and value == "owned" for key, value in equals.items()
    )


def _iam_grants_scoped(actions: list[str], document: dict[str, Any]) -> bool:
    """Every iam: action is either PassRole/role management on named roles (see
    :func:`_constrained_role_grant`) or instance-profile management scoped to a cluster tag."""
    for action in actions:
        granting = _granting(document, action)
        if not action.startswith("iam:") or not granting:
            return False
        if "instanceprofile" in action:
            if not all(_cluster_owned_profile_grant(s) for s in granting):
                return False
        elif not all(_constrained_role_grant(s, action) for s in granting):
            return False
    return True


def _resource_type_of(arn_format: str) -> str | None:
    """``arn:*:ec2:*:*:instance/*`` -> ``instance``; None when the type itself is a wildcard."""
    parts = arn_format.split(":", 5)
    if len(parts) < 6:
        return None
    kind = parts[5].split("/", 1)[0]
    return None if not kind or "*" in kind else kind


def _mismatch_covered(detail: str, document: dict[str, Any]) -> bool:
    """parliament checks each statement on its own: a RESOURCE_MISMATCH is only an artefact
    when, for every (action, required ARN format) it lists, another Allow statement of the same
    document grants that action on a resource of that type (Karpenter's reference splits
    RunInstances/CreateFleet over statements with different tag conditions), or the resource
    is AWS-owned with an empty account field (public AMIs, snapshots, SSM parameters)."""
    import ast

    try:
        items = ast.literal_eval(detail)
    except (ValueError, SyntaxError):
        return False
    if not isinstance(items, list) or not items:
        return False
    for item in items:
        if not isinstance(item, dict):
            return False
        kind = _resource_type_of(str(item.get("required_format", "")))
        action = str(item.get("action", "")).lower()
        if kind is None or not action:
            return False
        service = action.split(":", 1)[0]
        resources = [
            str(r) for s in _granting(document, action) for r in as_list(s.get("Resource"))
        ]
        if not any(
            r.split(":", 5)[2:3] == [service] and r.split(":", 5)[-1].startswith(f"{kind}/")
            for r in resources
            if r.count(":") >= 5
        ):
            return False
    return True


def _actions_of(detail: str) -> list[str]:
    return [a.strip(" '\"") for a in detail.strip("[]").split(",") if a.strip()]


def _ecr_only(document: dict[str, Any]) -> bool:
    actions: list[str] = []
    for statement in document.get("Statement", []):
        value = statement.get("Action", [])
        actions += [value] if isinstance(value, str) else list(value)
    return bool(actions) and all(a.startswith("ecr:") for a in actions)


ACCEPTED_PARLIAMENT_FINDINGS: tuple[AcceptedFinding, ...] = (
    AcceptedFinding(
        "MALFORMED",
        frozenset({"resource"}),
        lambda detail, doc: (
            detail == "Statement contains neither Resource nor NotResource" and _ecr_only(doc)
        ),
        "an ECR repository policy is attached to its repository and names no Resource (AWS's "
        "own examples have none); parliament reads it as an identity policy. ref: "
        "https://docs.aws.amazon.com/AmazonECR/latest/userguide/repository-policy-examples.html",
    ),
    AcceptedFinding(
        "MALFORMED",
        frozenset({"trust"}),
        lambda detail, _doc: detail == "Statement contains neither Resource nor NotResource",
        "parliament reads every document as an identity policy; a role trust policy has no "
        "Resource element by definition",
    ),
    AcceptedFinding(
        "UNKNOWN_FEDERATION_SOURCE",
        frozenset({"trust"}),
        lambda detail, _doc: bool(_OIDC_PROVIDER_ARN.match(detail)),
        "parliament knows SAML providers and a few web identity providers but not IAM OIDC "
        "providers, which is what IRSA trusts; the subject and audience are checked by the "
        "oidc-trust-exact-subject rule",
    ),
    AcceptedFinding(
        "PERMISSIONS_MANAGEMENT_ACTIONS",
        frozenset({"identity"}),
        lambda detail, doc: (
            all(a.startswith("iam:") for a in _actions_of(detail))
            and _role_grants_constrained(_actions_of(detail), doc)
        ),
        "dask-cloudprovider must pass (and, creating everything, manage) the team's ECS roles; "
        "accepted only where every grant names role ARNs, carries a condition (team tag), and "
        "iam:PassRole pins iam:PassedToService",
    ),
    AcceptedFinding(
        "PRIVILEGE_ESCALATION",
        frozenset({"identity"}),
        lambda detail, doc: (
            "iam:passrole" in _actions_of(detail)
            and _role_grants_constrained(["iam:passrole"], doc)
        ),
        "launching an instance or task with a role is escalation only if any role can be "
        "passed; accepted only where iam:PassRole names the team's role ARNs and pins "
        "iam:PassedToService",
    ),
    AcceptedFinding(
        "PERMISSIONS_MANAGEMENT_ACTIONS",
        frozenset({"identity"}),
        lambda detail, doc: (
            any("instanceprofile" in a for a in _actions_of(detail))
            and _iam_grants_scoped(_actions_of(detail), doc)
        ),
        "Karpenter creates one instance profile per EC2NodeClass and passes its node role to "
        "EC2; accepted only where the profile actions are limited to instance profiles tagged "
        "as owned by the cluster and iam:PassRole names the node role and pins "
        "iam:PassedToService (Karpenter's reference IAM)",
    ),
    AcceptedFinding(
        "RESOURCE_MISMATCH",
        frozenset({"identity"}),
        _mismatch_covered,
        "parliament matches resource formats per statement; accepted only where every required "
        "resource type is granted for that action by a statement of the same document",
    ),
    AcceptedFinding(
        "RESOURCE_STAR",
        frozenset({"identity"}),
        lambda detail, doc: (
            [a.lower() for a in _actions_of(detail)] == ["arc-zonal-shift:getmanagedresource"]
            and all(
                "arc-zonal-shift:ResourceIdentifier"
                in ((s.get("Condition") or {}).get("StringEquals") or {})
                for s in _granting(doc, "arc-zonal-shift:getmanagedresource")
            )
        ),
        "zonal-shift resources are load balancers only; Karpenter reads its EKS cluster's "
        "zonal-shift status, scoped by the arc-zonal-shift:ResourceIdentifier condition",
    ),
    AcceptedFinding(
        "CREDENTIALS_EXPOSURE",
        frozenset({"identity"}),
        lambda detail, _doc: _actions_of(detail) == ["ecr:getauthorizationtoken"],
        "the ECS execution role logs in to ECR to pull the worker image; the token is a registry "
        "login (which repositories it can pull is decided by the pull actions, scoped to ARNs), "
        'and AWS accepts no resource but "*" for it',
    ),
)


def _accepted(kind: str, issue: str, detail: str, document: dict[str, Any]) -> bool:
    return any(
        a.issue == issue and kind in a.kinds and a.applies(detail, document)
        for a in ACCEPTED_PARLIAMENT_FINDINGS
    )


def parliament_findings(document: IamDocument) -> list[LintFinding]:
    with warnings.catch_warnings():
        # parliament imports pkg_resources (deprecated; setuptools is pinned <82 for it) and
        # compiles regexes with invalid escapes: warnings about parliament, not about policies.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import parliament

    policy = parliament.analyze_policy_string(
        json.dumps(document.document), include_community_auditors=True
    )
    out = []
    for finding in policy.findings:
        detail = str(finding.detail) if finding.detail else ""  # a str, or a list of dicts
        if not detail and isinstance(finding.location, dict) and "actions" in finding.location:
            detail = str(sorted(finding.location["actions"]))
        if _accepted(document.kind, finding.issue, detail, document.document):
            continue
        out.append(LintFinding("parliament", document.source, finding.issue, detail))
    return out


# --------------------------------------------------------------------------- cloudsplaining

# (check label, the exact findings) -> why it is accepted.
ACCEPTED_CLOUDSPLAINING_FINDINGS: dict[tuple[str, tuple[str, ...]], str] = {
    ("credentials exposure", ("ecr:getauthorizationtoken",)): (
        "the ECS execution role's ECR login; see the matching parliament exception"
    ),
}

CLOUDSPLAINING_CHECKS = (
    ("privilege escalation", "allows_privilege_escalation"),
    ("data exfiltration", "allows_data_exfiltration_actions"),
    ("resource exposure", "permissions_management_without_constraints"),
    ("credentials exposure", "credentials_exposure"),
    ("service wildcard", "service_wildcard"),
)


def cloudsplaining_findings(document: IamDocument) -> list[LintFinding]:
    """Identity policies only: cloudsplaining models what a principal may do."""
    if document.kind != "identity":
        return []
    from cloudsplaining.scan.policy_document import PolicyDocument

    analysed = PolicyDocument(document.document)
    out = []
    for label, attribute in CLOUDSPLAINING_CHECKS:
        found = getattr(analysed, attribute)
        key = (label, tuple(sorted(str(f).lower() for f in found)))
        if found and key not in ACCEPTED_CLOUDSPLAINING_FINDINGS:
            out.append(LintFinding("cloudsplaining", document.source, label, str(found)))
    return out


def lint_documents(documents: Iterable[IamDocument]) -> list[LintFinding]:
    out: list[LintFinding] = []
    for document in documents:
        out += parliament_findings(document)
        out += cloudsplaining_findings(document)
    return out


# --------------------------------------------------------------------------- checkov


class CheckovUnavailable(RuntimeError):
    pass


def containerfiles(repo: Path) -> list[Path]:
    return sorted(repo.glob(CONTAINERFILE_GLOB))


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


def _run_checkov(
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
        failed = _run_checkov(Path(scratch), "dockerfile", CHECKOV_SKIPS, timeout)
    out = []
    for check in failed:
        copy = Path(check.get("file_path", "")).name
        source = names.get(copy, Path(copy))
        lines = check.get("file_line_range") or []
        where = f"{source}:{lines[0]}" if lines else str(source)
        out.append(LintFinding("checkov", where, check["check_id"], check["check_name"]))
    return out


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
        failed = _run_checkov(Path(scratch), "kubernetes", (), timeout)
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
