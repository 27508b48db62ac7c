"""The one IAM renderer: strict placeholders, list splicing, and the team documents' shape."""

from __future__ import annotations

import json

import pytest

from dask_platform.iam import (
    PolicyRenderError,
    irsa_trust_policy,
    placeholders,
    policy_dir,
    policy_names,
    render_policy,
    shared_data_policy,
    team_scratch_policy,
)


def test_every_document_is_valid_json_with_a_version():
    for name in policy_names():
        document = json.loads((policy_dir() / f"{name}.json").read_text())
        assert document["Version"] == "2012-10-17", name
        assert document["Statement"], name
        assert all(s.get("Sid") for s in document["Statement"]), (
            f"{name}: every statement has a Sid"
        )


def test_missing_value_is_an_error():
    with pytest.raises(PolicyRenderError, match=r"'team-scratch': missing values for team"):
        render_policy("team-scratch", bucket="b")


def test_unused_value_is_an_error():
    with pytest.raises(PolicyRenderError, match=r"unexpected values prefix"):
        render_policy("team-scratch", bucket="b", team="t", prefix="x")


def test_empty_values_are_refused():
    with pytest.raises(PolicyRenderError, match="team must not be empty"):
        render_policy("team-scratch", bucket="b", team="")
    with pytest.raises(PolicyRenderError, match="bucket_arns must not be an empty list"):
        render_policy("shared-data-read", bucket_arns=[], object_arns=["x"])


def test_unknown_document():
    with pytest.raises(PolicyRenderError, match=r"unknown policy 'nope'; known: "):
        render_policy("nope")


def test_list_values_are_spliced():
    policy = shared_data_policy(["a", "b"])
    assert policy is not None
    listing, reading = policy["Statement"]
    assert listing["Resource"] == ["arn:aws:s3:::a", "arn:aws:s3:::b"]
    assert reading["Resource"] == ["arn:aws:s3:::a/*", "arn:aws:s3:::b/*"]
    assert reading["Action"] == "s3:GetObject"
    assert shared_data_policy([]) is None


def test_placeholders_in_keys_are_rendered():
    trust = irsa_trust_policy(
        "arn:aws:iam::1:oidc-provider/oidc.example/id/X", "https://oidc.example/id/X", "ns", "t"
    )
    assert trust["Statement"][0]["Condition"]["StringEquals"] == {
        "oidc.example/id/X:sub": "system:serviceaccount:ns:dask-t",
        "oidc.example/id/X:aud": "sts.amazonaws.com",
    }
    assert "{{" not in json.dumps(trust)


def test_team_scratch_scope():
    policy = team_scratch_policy("bkt", "hydro")
    assert placeholders("team-scratch") == {"bucket", "team"}
    text = json.dumps(policy)
    assert "arn:aws:s3:::bkt/hydro/*" in text
    assert "arn:aws:s3:::bkt/*" not in text
