"""The gate's IAM evaluator, table-driven: AWS's documented rules for the parts moto skips.

ref: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
"""

from __future__ import annotations

from typing import Any

import pytest

from dask_platform.iam import irsa_trust_policy, team_scratch_policy
from dask_platform.local.iam_eval import (
    Decision,
    Request,
    UnsupportedConditionError,
    evaluate,
)

BUCKET = "scratch"
PROVIDER = "arn:aws:iam::123456789012:oidc-provider/issuer.example/id/ABC"
ISSUER = "https://issuer.example/id/ABC"


def _list(prefix: str | None) -> Request:
    context = {} if prefix is None else {"s3:prefix": prefix}
    return Request("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", context)


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (_list("a/"), Decision.ALLOW),
        (_list("a/deeper/"), Decision.ALLOW),
        (_list("b/"), Decision.IMPLICIT_DENY),
        (_list("a"), Decision.IMPLICIT_DENY),
        (_list(""), Decision.IMPLICIT_DENY),
        (_list(None), Decision.IMPLICIT_DENY),  # a condition on an absent key is false
        (Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/a/x"), Decision.ALLOW),
        (Request("s3:getobject", f"arn:aws:s3:::{BUCKET}/a/x"), Decision.ALLOW),
        (Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/b/x"), Decision.IMPLICIT_DENY),
        (Request("s3:PutObjectAcl", f"arn:aws:s3:::{BUCKET}/a/x"), Decision.IMPLICIT_DENY),
    ],
)
def test_team_scratch_policy(request_: Request, expected: Decision) -> None:
    assert evaluate([team_scratch_policy(BUCKET, "a")], request_) is expected


def _trust(sub: str, aud: str, principal: str = PROVIDER) -> Request:
    return Request(
        "sts:AssumeRoleWithWebIdentity",
        principal=("Federated", principal),
        context={"issuer.example/id/ABC:sub": sub, "issuer.example/id/ABC:aud": aud},
    )


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (_trust("system:serviceaccount:ns:dask-a", "sts.amazonaws.com"), Decision.ALLOW),
        (_trust("system:serviceaccount:ns:dask-b", "sts.amazonaws.com"), Decision.IMPLICIT_DENY),
        (_trust("system:serviceaccount:other:dask-a", "sts.amazonaws.com"), Decision.IMPLICIT_DENY),
        (_trust("system:serviceaccount:ns:dask-a", "else"), Decision.IMPLICIT_DENY),
        (
            _trust("system:serviceaccount:ns:dask-a", "sts.amazonaws.com", PROVIDER + "X"),
            Decision.IMPLICIT_DENY,
        ),
    ],
)
def test_irsa_trust_policy(request_: Request, expected: Decision) -> None:
    document = irsa_trust_policy(PROVIDER, ISSUER, "ns", "a")
    assert evaluate([document], request_) is expected


def _statement(effect: str, condition: dict[str, Any]) -> dict[str, Any]:
    return {
        "Statement": [{"Effect": effect, "Action": "s3:*", "Resource": "*", "Condition": condition}]
    }


@pytest.mark.parametrize(
    ("condition", "context", "applies"),
    [
        ({"StringNotEquals": {"k": "x"}}, {}, True),  # negated operator, absent key
        ({"StringNotEquals": {"k": "x"}}, {"k": "x"}, False),
        ({"StringEqualsIfExists": {"k": "x"}}, {}, True),
        ({"StringEqualsIgnoreCase": {"k": "X"}}, {"k": "x"}, True),
        ({"StringLike": {"k": "a?c"}}, {"k": "abc"}, True),
        ({"StringLike": {"k": "a?c"}}, {"k": "abbc"}, False),
        ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": "false"}, True),
        ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": "true"}, False),
        ({"Null": {"k": "true"}}, {}, True),
        ({"Null": {"k": "true"}}, {"k": "v"}, False),
        ({"ForAllValues:StringEquals": {"k": ["a", "b"]}}, {"k": ["a"]}, True),
        ({"ForAllValues:StringEquals": {"k": ["a", "b"]}}, {"k": ["a", "c"]}, False),
    ],
)
def test_condition_operators(
    condition: dict[str, Any], context: dict[str, Any], applies: bool
) -> None:
    request_ = Request("s3:GetObject", "arn:aws:s3:::b/k", context)
    assert (evaluate([_statement("Allow", condition)], request_) is Decision.ALLOW) is applies


def test_an_explicit_deny_wins_over_an_allow() -> None:
    request_ = Request("s3:GetObject", "arn:aws:s3:::b/k", {"aws:SecureTransport": "false"})
    allow = {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
    deny = _statement("Deny", {"Bool": {"aws:SecureTransport": "false"}})
    assert evaluate([allow, deny], request_) is Decision.DENY


def test_an_unsupported_operator_fails_closed() -> None:
    with pytest.raises(UnsupportedConditionError, match="NumericLessThan"):
        evaluate(
            [_statement("Allow", {"NumericLessThan": {"s3:max-keys": "10"}})],
            Request("s3:ListBucket", "arn:aws:s3:::b", {"s3:max-keys": "5"}),
        )
