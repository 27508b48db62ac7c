"""The emulator gate's evaluator (dask_platform.local.iam_eval) agrees with an independent one.

moto skips Condition blocks, so the gate evaluates the team documents' ``s3:prefix`` conditions
itself with a small evaluator. Its verdicts on exactly the documents the platform renders are
compared here, request by request, with @cloud-copilot/iam-simulate (a maintained AWS policy
evaluator, run under node): a disagreement on any request in the grid fails the test.
"""

from __future__ import annotations

import itertools

import pytest

from dask_platform.iam import shared_data_policy, team_scratch_policy
from dask_platform.local.iam_eval import Decision, Request, evaluate

from .test_analyst_policy import simulate  # noqa: F401  (the session fixture)

ACCOUNT = "123456789012"
BUCKET = "diff-scratch"
PRINCIPAL = f"arn:aws:sts::{ACCOUNT}:assumed-role/team-hydro/worker"

ACTIONS = [
    "s3:ListBucket",
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:GetBucketLocation",
    "s3:PutBucketPolicy",
]
RESOURCES = [
    f"arn:aws:s3:::{BUCKET}",
    f"arn:aws:s3:::{BUCKET}/hydro/data.zarr/.zattrs",
    f"arn:aws:s3:::{BUCKET}/hydro/",
    f"arn:aws:s3:::{BUCKET}/hydrology/x",  # a team whose name starts with another's
    f"arn:aws:s3:::{BUCKET}/ocean/x",
    f"arn:aws:s3:::{BUCKET}/x",
    "arn:aws:s3:::other-bucket/hydro/x",
    "arn:aws:s3:::noaa-goes16",
    "arn:aws:s3:::noaa-goes16/ABI-L2/file.nc",
]
PREFIXES = [None, "", "hydro/", "hydro/sub/", "hydro", "hydrology/", "ocean/", "/hydro/"]


BUCKET_ACTIONS = {"s3:ListBucket", "s3:GetBucketLocation", "s3:PutBucketPolicy"}


def _grid():
    # Only combinations AWS can be asked for: bucket actions on buckets, object actions on
    # objects (the simulator rejects the others as having no resource type).
    for action, resource in itertools.product(ACTIONS, RESOURCES):
        is_bucket = "/" not in resource.removeprefix("arn:aws:s3:::")
        if (action in BUCKET_ACTIONS) != is_bucket:
            continue
        if action == "s3:ListBucket":
            for prefix in PREFIXES:
                yield action, resource, ({} if prefix is None else {"s3:prefix": prefix})
        else:
            yield action, resource, {}


@pytest.mark.integration
def test_gate_evaluator_agrees_with_iam_simulate_on_the_team_documents(simulate):  # noqa: F811
    documents = [
        team_scratch_policy(BUCKET, "hydro"),
        shared_data_policy(["noaa-goes16"]),
    ]
    grid = list(_grid())
    requests = [
        {
            "policies": [{"name": f"p{i}", "policy": d} for i, d in enumerate(documents)],
            "principal": PRINCIPAL,
            "action": action,
            "resource": resource,
            "account_id": ACCOUNT,
            "context": context,
        }
        for action, resource, context in grid
    ]
    simulated = simulate(requests)
    disagreements = []
    allowed = 0
    for (action, resource, context), outcome in zip(grid, simulated, strict=True):
        ours = evaluate(documents, Request(action=action, resource=resource, context=context))
        theirs = outcome["result"]
        assert theirs in {"Allowed", "ImplicitlyDenied", "ExplicitlyDenied"}, outcome
        ours_name = {
            Decision.ALLOW: "Allowed",
            Decision.IMPLICIT_DENY: "ImplicitlyDenied",
            Decision.DENY: "ExplicitlyDenied",
        }[ours]
        allowed += ours is Decision.ALLOW
        if ours_name != theirs:
            disagreements.append((action, resource, context, ours_name, theirs))
    assert disagreements == []
    # The grid exercises both sides: some requests are allowed, most are not.
    assert 0 < allowed < len(grid) // 2
