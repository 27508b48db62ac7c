"""IAM policy evaluation for the parts the emulator (moto) does not evaluate.

moto enforces identity policies on Action and Resource but skips ``Condition`` blocks (it
supports only ``StringEquals`` and passes a condition whose key is absent), and it does not
check web-identity trust policies at all. The platform's isolation depends on exactly those
parts - ``s3:prefix`` on ``s3:ListBucket``, ``<issuer>:sub``/``<issuer>:aud`` in the IRSA trust -
so the emulator's gate evaluates them here, following AWS's rules: an explicit Deny wins, an
Allow is needed, a condition on an absent key is false (except the negated and ``IfExists``
operators, and ``Null``).

ref: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
ref: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any


class Decision(Enum):
    ALLOW = "allow"
    DENY = "deny"  # an explicit Deny statement matched
    IMPLICIT_DENY = "implicit-deny"  # no Allow statement matched


class UnsupportedConditionError(ValueError):
    """A condition operator this evaluator does not implement (evaluation fails closed)."""


@dataclass(frozen=True)
class Request:
    """What a statement is matched against. ``principal`` is ``(type, id)`` for resource-based
    documents (trust policies), e.g. ``("Federated", "arn:aws:iam::1:oidc-provider/...")``."""

    action: str
    resource: str | None = None
    context: Mapping[str, str | list[str]] | None = None
    principal: tuple[str, str] | None = None


@cache
def _wildcard(pattern: str, case_sensitive: bool = True) -> re.Pattern[str]:
    # IAM wildcards: '*' any run of characters, '?' exactly one; everything else literal.
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(body, 0 if case_sensitive else re.IGNORECASE)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _matches_any(patterns: Any, value: str, case_sensitive: bool = True) -> bool:
    return any(_wildcard(str(p), case_sensitive).fullmatch(value) for p in _as_list(patterns))


def _principal_matches(principal_element: Any, principal: tuple[str, str] | None) -> bool:
    if principal_element is None:
        return True  # identity policies have no Principal element
    if principal is None:
        return False
    if principal_element == "*":
        return True
    kind, identity = principal
    if not isinstance(principal_element, Mapping):
        return False
    return (
        _matches_any(principal_element.get(kind), identity) or principal_element.get("AWS") == "*"
    )


def _string_test(operator: str) -> tuple[bool, bool, bool]:
    """(negated, wildcard, case_sensitive) for a String* operator."""
    return {
        "StringEquals": (False, False, True),
        "StringNotEquals": (True, False, True),
        "StringEqualsIgnoreCase": (False, False, False),
        "StringNotEqualsIgnoreCase": (True, False, False),
        "StringLike": (False, True, True),
        "StringNotLike": (True, True, True),
        "ArnEquals": (False, True, True),
        "ArnLike": (False, True, True),
        "ArnNotEquals": (True, True, True),
        "ArnNotLike": (True, True, True),
    }[operator]


def _condition_holds(operator: str, key: str, expected: Any, context: Mapping[str, Any]) -> bool:
    qualifier = ""
    if ":" in operator:
        qualifier, operator = operator.split(":", 1)
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    present = key in context
    actual = _as_list(context.get(key))
    expected_values = [str(v) for v in _as_list(expected)]

    if operator == "Null":
        want_absent = str(expected).lower() == "true"
        return want_absent != present
    if not present:
        if if_exists:
            return True
        # A negated operator on an absent key holds; every other operator does not.
        return operator.startswith(("StringNot", "ArnNot")) or qualifier == "ForAllValues"
    if operator == "Bool":
        return any(str(a).lower() == e.lower() for a in actual for e in expected_values)
    try:
        negated, wildcard, case_sensitive = _string_test(operator)
    except KeyError:
        raise UnsupportedConditionError(
            f"condition operator {operator!r} is not supported by the emulator's evaluator"
        ) from None

    def one(value: str) -> bool:
        if wildcard:
            hit = _matches_any(expected_values, value, case_sensitive)
        elif case_sensitive:
            hit = value in expected_values
        else:
            hit = value.lower() in {e.lower() for e in expected_values}
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(str(a)) for a in actual)
    return any(one(str(a)) for a in actual)


def statement_applies(statement: Mapping[str, Any], request: Request) -> bool:
    """Whether every element of ``statement`` matches ``request`` (its Effect aside)."""
    if "Action" in statement:
        if not _matches_any(statement["Action"], request.action, case_sensitive=False):
            return False
    elif _matches_any(statement.get("NotAction"), request.action, case_sensitive=False):
        return False
    if request.resource is not None:
        if "Resource" in statement and not _matches_any(statement["Resource"], request.resource):
            return False
        if "NotResource" in statement and _matches_any(statement["NotResource"], request.resource):
            return False
    if "NotPrincipal" in statement:
        raise UnsupportedConditionError("NotPrincipal is not supported by the emulator")
    if not _principal_matches(statement.get("Principal"), request.principal):
        return False
    context = request.context or {}
    for operator, pairs in (statement.get("Condition") or {}).items():
        for key, expected in pairs.items():
            if not _condition_holds(operator, key, expected, context):
                return False
    return True


def evaluate(documents: Iterable[Mapping[str, Any] | str], request: Request) -> Decision:
    """AWS's evaluation over a set of documents: explicit Deny > Allow > implicit deny."""
    allowed = False
    for document in documents:
        parsed = json.loads(document) if isinstance(document, str) else document
        for statement in _as_list(parsed.get("Statement")):
            if not statement_applies(statement, request):
                continue
            if statement.get("Effect") == "Deny":
                return Decision.DENY
            if statement.get("Effect") == "Allow":
                allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY
