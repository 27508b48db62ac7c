"""Every rule against its fixtures: each violating case must be reported by its rule, each
passing case must pass the whole pack - offline, and through the real pack over gRPC with the
same result, so what `dask-platform plan` says is what `pulumi preview --policy-pack` says."""

from __future__ import annotations

import pytest

from dask_platform.guard.policies import policies
from dask_platform.guard.runner import run_policies

from .policy_harness import FIXTURE_STACK, PROJECT, Case, PackClient, load_cases

pytestmark = pytest.mark.policy

CASES = load_cases()


def run_offline(case: Case):  # type: ignore[no-untyped-def]
    return run_policies(
        case.resources(),
        stack=FIXTURE_STACK,
        project=PROJECT,
        stack_outputs=case.outputs,
        pack_config=case.config,
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case_offline(case: Case) -> None:
    result = run_offline(case)
    if case.expect_pass:
        assert [(v.policy, v.resource, v.message) for v in result.violations] == []
    else:
        messages = [v.message for v in result.of(case.policy)]
        assert any(case.violation in m for m in messages), (
            f"{case.policy} did not report {case.violation!r}; it reported {messages} "
            f"(all: {[(v.policy, v.message) for v in result.violations]})"
        )
        assert all(v.mandatory for v in result.of(case.policy))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case_through_the_pack(case: Case, pack: PackClient) -> None:
    pack.configure(case.config)
    through_pack = pack.violations(case.resources(), case.outputs)
    offline = {(v.policy, v.message) for v in run_offline(case).violations}
    assert through_pack == offline
    if not case.expect_pass:
        assert any(p == case.policy and case.violation in m for p, m in through_pack)


def test_every_rule_has_a_passing_and_a_violating_case() -> None:
    names = {p.name for p in policies()}
    covered_pass = {c.policy for c in CASES if c.expect_pass}
    covered_violation = {c.policy for c in CASES if not c.expect_pass}
    assert names - covered_pass == set(), "rules without a passing fixture case"
    assert names - covered_violation == set(), "rules without a violating fixture case"
    assert {c.policy for c in CASES} <= names, "fixture files for rules that do not exist"


def test_rules_are_kebab_case_with_reasons() -> None:
    seen = set()
    for policy in policies():
        assert policy.name not in seen
        seen.add(policy.name)
        assert policy.name == policy.name.lower()
        assert all(part.isalnum() for part in policy.name.split("-")), policy.name
        # A description says why, not only what: it is a sentence or more.
        assert len(policy.description) > 80, policy.name
        assert policy.enforcement_level is not None
        assert policy.enforcement_level.value == "mandatory"
