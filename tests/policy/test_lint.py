"""The linters: every IAM document the platform renders (from every committed stack, and every
template with sample values) is clean under parliament (community auditors on) and cloudsplaining;
the Containerfiles are clean under checkov. Planted violations fail each of them, and the few
accepted findings stay as narrow as their reasons."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from dask_platform import iam
from dask_platform.guard import documents as iam_documents
from dask_platform.guard.documents import IamDocument
from dask_platform.guard.lint import (
    CHECKOV_SKIPS,
    CheckovUnavailable,
    checkov_findings,
    cloudsplaining_findings,
    containerfiles,
    parliament_findings,
    resolve_from_args,
    uv_binary,
)
from dask_platform.pulumi_mocks import Evaluation

from .policy_harness import COMMITTED_STACKS, REPO

pytestmark = pytest.mark.policy

TEMPLATE_DOCUMENTS = iam_documents.from_templates()
FIXTURE_IMAGES = REPO / "tests" / "fixtures" / "policy" / "images"


def _doc(kind: str, *statements: dict) -> IamDocument:  # type: ignore[type-arg]
    return IamDocument(  # type: ignore[arg-type]
        "planted", kind, {"Version": "2012-10-17", "Statement": list(statements)}
    )


# --------------------------------------------------------------------------- committed documents


def test_every_template_is_linted() -> None:
    assert sorted(d.source.split("/")[-1].split(".json")[0] for d in TEMPLATE_DOCUMENTS) == (
        iam.policy_names()
    )


@pytest.mark.parametrize("document", TEMPLATE_DOCUMENTS, ids=lambda d: d.source.split(" ")[0])
def test_template_is_clean(document: IamDocument) -> None:
    assert parliament_findings(document) == []
    assert cloudsplaining_findings(document) == []


@pytest.mark.parametrize("stack", COMMITTED_STACKS)
def test_stack_documents_are_clean(stack: str, evaluated: Callable[[str], Evaluation]) -> None:
    documents = iam_documents.from_resources(stack, evaluated(stack).resources)
    kinds = {d.kind for d in documents}
    assert {"trust", "identity", "resource"} <= kinds
    findings = [f for d in documents for f in parliament_findings(d) + cloudsplaining_findings(d)]
    assert [str(f) for f in findings] == []


# --------------------------------------------------------------------------- planted violations


def test_parliament_reports_a_typo_and_a_privilege_escalation() -> None:
    typo = _doc("identity", {"Effect": "Allow", "Action": "s3:GetObjekt", "Resource": "*"})
    assert {f.issue for f in parliament_findings(typo)} >= {"UNKNOWN_ACTION"}
    escalation = _doc(
        "identity",
        {"Effect": "Allow", "Action": ["iam:PassRole", "ec2:RunInstances"], "Resource": "*"},
    )
    issues = {f.issue for f in parliament_findings(escalation)}
    assert {"PRIVILEGE_ESCALATION", "PERMISSIONS_MANAGEMENT_ACTIONS"} <= issues


def test_cloudsplaining_reports_each_risk_class() -> None:
    wide = _doc(
        "identity",
        {
            "Effect": "Allow",
            "Action": ["s3:*", "iam:PassRole", "ec2:RunInstances", "iam:CreateAccessKey"],
            "Resource": "*",
        },
    )
    labels = {f.issue for f in cloudsplaining_findings(wide)}
    assert labels == {
        "privilege escalation",
        "data exfiltration",
        "resource exposure",
        "credentials exposure",
        "service wildcard",
    }


def test_accepted_findings_stay_narrow() -> None:
    # A trust policy has no Resource: accepted. An identity policy without one: reported.
    no_resource = {"Effect": "Allow", "Action": "s3:GetObject"}
    assert [f.issue for f in parliament_findings(_doc("identity", no_resource))] == ["MALFORMED"]
    trust = {
        "Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    assert parliament_findings(_doc("trust", trust)) == []
    # iam:PassRole of named roles to one service: accepted; to any service: reported.
    pass_role = {
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": "arn:aws:iam::123456789012:role/dask-hydrology-task",
        "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
    }
    assert parliament_findings(_doc("identity", pass_role)) == []
    unpinned = {k: v for k, v in pass_role.items() if k != "Condition"}
    assert {f.issue for f in parliament_findings(_doc("identity", unpinned))} == {
        "PERMISSIONS_MANAGEMENT_ACTIONS"
    }
    # The ECR login token alone is accepted; another credentials-exposing action is not.
    ecr = {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}
    assert parliament_findings(_doc("identity", ecr)) == []
    assert cloudsplaining_findings(_doc("identity", ecr)) == []
    keys = {
        "Effect": "Allow",
        "Action": ["ecr:GetAuthorizationToken", "iam:CreateAccessKey"],
        "Resource": "*",
    }
    assert "credentials exposure" in {
        f.issue for f in cloudsplaining_findings(_doc("identity", keys))
    }


# --------------------------------------------------------------------------- checkov


def _checkov(paths: list[Path]) -> list[str]:
    if uv_binary() is None:
        pytest.skip("uv is not installed: checkov runs as `uv tool run checkov`")
    try:
        return [str(f) for f in checkov_findings(paths)]
    except CheckovUnavailable as exc:
        pytest.fail(str(exc))


def test_committed_containerfiles_pass_checkov() -> None:
    paths = containerfiles(REPO)
    # Until the images land, the fixture image stands for them; the glob stays the gate.
    assert _checkov(paths or [FIXTURE_IMAGES / "clean" / "Containerfile"]) == []


def test_checkov_reports_a_root_image_under_its_real_path() -> None:
    bad = FIXTURE_IMAGES / "runs-as-root" / "Containerfile"
    findings = _checkov([FIXTURE_IMAGES / "clean" / "Containerfile", bad])
    assert any(f"{bad}:" in f and "CKV_DOCKER_8" in f for f in findings), findings
    assert any("CKV_DOCKER_7" in f for f in findings), findings  # FROM ...:latest
    assert not any("clean" in f for f in findings), findings


def test_checkov_skips_are_explained() -> None:
    for check, reason in CHECKOV_SKIPS.items():
        assert check.startswith("CKV")
        assert len(reason) > 40


def test_from_lines_get_the_global_arg_defaults() -> None:
    text = (
        "ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm\n"
        "FROM ${BASE_IMAGE} AS build\n"
        "ARG BASE_IMAGE\n"
        "FROM $BASE_IMAGE\n"
        "RUN echo ${BASE_IMAGE}\n"
    )
    assert resolve_from_args(text).splitlines() == [
        "ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm",
        "FROM docker.io/library/python:3.11-slim-bookworm AS build",
        "ARG BASE_IMAGE",
        "FROM docker.io/library/python:3.11-slim-bookworm",
        "RUN echo ${BASE_IMAGE}",
    ]


def test_documents_render_as_json() -> None:
    for document in TEMPLATE_DOCUMENTS:
        assert json.loads(document.text) == document.document


def test_karpenter_acceptances_stay_narrow() -> None:
    """The findings accepted for Karpenter's reference IAM are accepted only in its shape."""
    profile = "arn:aws:iam::123456789012:instance-profile/*"
    owned = {"StringEquals": {"aws:ResourceTag/kubernetes.io/cluster/dask-dev": "owned"}}
    scoped = {
        "Effect": "Allow",
        "Action": ["iam:AddRoleToInstanceProfile", "iam:DeleteInstanceProfile"],
        "Resource": profile,
        "Condition": owned,
    }
    assert parliament_findings(_doc("identity", scoped)) == []
    unscoped = {k: v for k, v in scoped.items() if k != "Condition"}
    assert {f.issue for f in parliament_findings(_doc("identity", unscoped))} == {
        "PERMISSIONS_MANAGEMENT_ACTIONS"
    }
    # RunInstances split over statements: accepted when together they name every resource type.
    region = "arn:aws:ec2:us-west-2"
    split = [
        {
            "Effect": "Allow",
            "Action": "ec2:RunInstances",
            "Resource": [
                f"{region}::image/*",
                f"{region}:*:subnet/*",
                f"{region}:*:security-group/*",
            ],
        },
        {
            "Effect": "Allow",
            "Action": "ec2:RunInstances",
            "Resource": [f"{region}:*:instance/*", f"{region}:*:network-interface/*"],
            "Condition": owned,
        },
    ]
    assert parliament_findings(_doc("identity", *split)) == []
    assert {f.issue for f in parliament_findings(_doc("identity", split[0]))} == {
        "RESOURCE_MISMATCH"
    }
    # The zonal-shift read: "*" only with the resource-identifier condition.
    zonal = {
        "Effect": "Allow",
        "Action": "arc-zonal-shift:GetManagedResource",
        "Resource": "*",
        "Condition": {
            "StringEquals": {
                "arc-zonal-shift:ResourceIdentifier": (
                    "arn:aws:eks:us-west-2:123456789012:cluster/dask-dev"
                )
            }
        },
    }
    assert parliament_findings(_doc("identity", zonal)) == []
    bare = {k: v for k, v in zonal.items() if k != "Condition"}
    assert {f.issue for f in parliament_findings(_doc("identity", bare))} == {"RESOURCE_STAR"}
