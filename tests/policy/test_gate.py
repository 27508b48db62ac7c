"""The offline gate over every committed stack: each passes, and a violation planted into the
evaluated program's own resources is caught - so the rules really see what the program declares.
Then `dask-platform plan` end to end (exit codes, output, pack config)."""

from __future__ import annotations

import copy
import dataclasses
import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from dask_platform.cli import app
from dask_platform.config.sources import load_stack_file
from dask_platform.guard import rules
from dask_platform.guard.policies import pack_config, policies
from dask_platform.guard.runner import (
    GuardResource,
    resources_from_evaluation,
    run_policies,
    stack_urn,
)
from dask_platform.pulumi_mocks import Evaluation

from .policy_harness import COMMITTED_STACKS, PROJECT, REPO

pytestmark = pytest.mark.policy


def gate(evaluation: Evaluation, resources: list[GuardResource] | None = None, **overrides: Any):  # type: ignore[no-untyped-def]
    config = pack_config(load_stack_file(REPO, evaluation.stack))
    config.update(overrides)
    return run_policies(
        resources if resources is not None else resources_from_evaluation(evaluation, PROJECT),
        stack=evaluation.stack,
        project=PROJECT,
        stack_outputs=evaluation.outputs,
        pack_config=config,
    )


def test_there_are_committed_stacks() -> None:
    assert {"dev", "prod"} <= set(COMMITTED_STACKS)


@pytest.mark.parametrize("stack", COMMITTED_STACKS)
def test_committed_stack_passes_the_gate(
    stack: str, evaluated: Callable[[str], Evaluation]
) -> None:
    evaluation = evaluated(stack)
    result = gate(evaluation)
    assert [(v.policy, v.resource, v.message) for v in result.violations] == []
    assert result.passed
    assert [name for name, _ in result.policies] == [p.name for p in policies()]
    # The gate looked at the platform, not at an empty list.
    types = {r.type for r in evaluation.resources}
    for expected in (rules.ROLE, rules.BUCKET_TYPES[0], rules.LAUNCH_TEMPLATE, rules.EKS_CLUSTER):
        assert expected in types
    assert result.resources_checked == sum(1 for r in evaluation.resources if not r.read)


@pytest.mark.parametrize("stack", COMMITTED_STACKS)
def test_every_parent_resolves(stack: str, evaluated: Callable[[str], Evaluation]) -> None:
    resources = resources_from_evaluation(evaluated(stack), PROJECT)
    urns = {r.urn for r in resources} | {stack_urn(stack, PROJECT)}
    assert [r.label for r in resources if r.parent_urn not in urns] == []
    components = [r for r in resources if r.type == rules.SCRATCH_COMPONENT]
    assert len(components) == 1
    children = [r for r in resources if r.parent_urn == components[0].urn]
    assert rules.BUCKET_TYPES[0] in {r.type for r in children}


# --------------------------------------------------------------------------- planted violations


def _mutate(
    resources: list[GuardResource],
    match: Callable[[GuardResource], bool],
    change: Callable[[dict[str, Any]], None],
) -> list[GuardResource]:
    """A copy of the stack's resources with `change` applied to the inputs and outputs of every
    resource `match` selects (at least one must match)."""
    out, hits = [], 0
    for resource in resources:
        if match(resource):
            hits += 1
            inputs, outputs = (
                copy.deepcopy(dict(resource.inputs)),
                copy.deepcopy(dict(resource.outputs)),
            )
            change(inputs)
            change(outputs)
            resource = dataclasses.replace(resource, inputs=inputs, outputs=outputs)
        out.append(resource)
    assert hits, "the planted violation matched no resource of the stack"
    return out


def _is(type_: str, name_part: str = "") -> Callable[[GuardResource], bool]:
    return lambda r: r.type == type_ and name_part in r.name


def _set_trust_sub(props: dict[str, Any], value: str) -> None:
    document = json.loads(props["assumeRolePolicy"])
    conditions = document["Statement"][0]["Condition"]["StringEquals"]
    for key in conditions:
        if key.endswith(":sub"):
            conditions[key] = value
    props["assumeRolePolicy"] = json.dumps(document)


def _helm_env(props: dict[str, Any]) -> None:
    props["values"]["gateway"]["env"].append({"name": "AWS_SECRET_ACCESS_KEY", "value": "x"})


def _scheduler_placement(props: dict[str, Any], pool_role: str) -> None:
    """Schedulers placed on a Karpenter pool (tolerating its taint); the gateway config left
    without the do-not-disrupt annotation."""
    backend = props["values"]["gateway"].setdefault("backend", {})
    backend.setdefault("scheduler", {})["extraPodConfig"] = {
        "nodeSelector": {"dask-platform/node-role": pool_role},
        "tolerations": [
            {"key": f"dask-platform/{pool_role}", "operator": "Equal", "value": "true"}
        ],
    }
    props["values"]["gateway"]["extraConfig"] = {"50-dask-platform": "c.Backend.x = 1\n"}


PLANTS: dict[str, tuple[Callable[[GuardResource], bool], Callable[[dict[str, Any]], None], str]] = {
    "imdsv2-hop-limit-1": (
        _is(rules.LAUNCH_TEMPLATE, "core"),
        lambda p: p["metadataOptions"].update(httpPutResponseHopLimit=2),
        "httpPutResponseHopLimit is 2",
    ),
    "oidc-trust-exact-subject": (
        _is(rules.ROLE, "irsa"),
        lambda p: _set_trust_sub(p, "system:serviceaccount:dask-gateway:*"),
        "contains a wildcard",
    ),
    "s3-bucket-companions": (
        _is(rules.PUBLIC_ACCESS_BLOCK_TYPES[0], "scratch"),
        lambda p: p.update(restrictPublicBuckets=False),
        "restrictPublicBuckets off",
    ),
    "scratch-bucket-lifecycle": (
        _is(rules.LIFECYCLE_TYPES[0], "scratch"),
        lambda p: p.update(rules=[r for r in p["rules"] if "expiration" not in r]),
        "expiring objects",
    ),
    "eks-endpoint-restricted": (
        _is(rules.EKS_CLUSTER),
        lambda p: p["vpcConfig"].update(endpointPublicAccess=True, publicAccessCidrs=["0.0.0.0/0"]),
        "publicAccessCidrs includes 0.0.0.0/0",
    ),
    "eks-no-creator-admin": (
        _is(rules.EKS_CLUSTER),
        lambda p: p["accessConfig"].update(bootstrapClusterCreatorAdminPermissions=True),
        "bootstrapClusterCreatorAdminPermissions is true",
    ),
    "eks-secrets-encryption": (
        _is(rules.EKS_CLUSTER),
        lambda p: p.pop("encryptionConfig"),
        "does not envelope-encrypt",
    ),
    "no-open-ingress": (
        _is(rules.SECURITY_GROUP_TYPES[0], "eks-control-plane"),
        lambda p: p["ingress"][0].update(cidrBlocks=["0.0.0.0/0"]),
        "allows ingress from 0.0.0.0/0",
    ),
    "iam-no-wildcards": (
        _is(rules.IDENTITY_POLICY_TYPES[0], "scratch"),
        lambda p: p.update(
            policy=p["policy"]
            .replace('"s3:GetObject"', '"s3:GetObject", "s3:PutBucketPolicy"')
            .replace('"Resource": "arn:aws:s3:::', '"Resource": "*", "Comment": "arn:aws:s3:::')
        ),
        'grants Resource "*"',
    ),
    "no-aws-keys-in-workloads": (
        _is(rules.HELM_RELEASE_TYPES[0], "gateway"),
        _helm_env,
        "sets AWS_SECRET_ACCESS_KEY",
    ),
    "karpenter-nodepool-limits": (
        _is(rules.NODE_POOL_TYPES[0], "dask-workers"),
        lambda p: p["spec"].pop("limits"),
        "NodePool dask-workers has no spec.limits.cpu and spec.limits.memory",
    ),
    "karpenter-spot-interruption-queue": (
        _is(rules.HELM_RELEASE_TYPES[0], "karpenter-controller"),
        lambda p: p["values"]["settings"].update(interruptionQueue=""),
        "NodePool(s) dask-workers allow spot capacity",
    ),
    "schedulers-on-demand-only": (
        _is(rules.HELM_RELEASE_TYPES[0], "gateway"),
        lambda p: _scheduler_placement(p, "workers"),
        "can get a spot node from NodePool dask-workers",
    ),
    "scheduler-do-not-disrupt": (
        _is(rules.HELM_RELEASE_TYPES[0], "gateway"),
        lambda p: _scheduler_placement(p, "schedulers"),
        "run on Karpenter NodePool(s) dask-schedulers but the gateway config",
    ),
}


@pytest.mark.parametrize("stack", COMMITTED_STACKS)
@pytest.mark.parametrize("policy", sorted(PLANTS))
def test_planted_violation_fails_the_gate(
    stack: str, policy: str, evaluated: Callable[[str], Evaluation]
) -> None:
    evaluation = evaluated(stack)
    match, change, expected = PLANTS[policy]
    planted = _mutate(resources_from_evaluation(evaluation, PROJECT), match, change)
    result = gate(evaluation, planted)
    assert not result.passed
    assert any(expected in v.message for v in result.of(policy)), result.of(policy)


@pytest.mark.parametrize("stack", COMMITTED_STACKS)
def test_planted_access_key_and_simple_auth(
    stack: str, evaluated: Callable[[str], Evaluation]
) -> None:
    evaluation = evaluated(stack)
    resources = resources_from_evaluation(evaluation, PROJECT)
    # A created resource (a read, such as the stack reference, is never validated as one).
    template = next(r for r in resources if not r.read)
    access_key = dataclasses.replace(
        template,
        type=rules.ACCESS_KEY,
        name="ci",
        inputs={"user": "ci"},
        outputs={"user": "ci"},
        urn=template.urn.replace(template.type, rules.ACCESS_KEY).replace(template.name, "ci"),
    )
    simple = _mutate(
        resources,
        _is(rules.HELM_RELEASE_TYPES[0], "gateway"),
        lambda p: p["values"]["gateway"]["auth"].update(type="simple"),
    )
    result = gate(
        evaluation,
        [*simple, access_key],
        **{"gateway-auth-not-simple-in-production": {"production": True}},
    )
    assert result.of("no-long-lived-credentials")
    assert any(
        "'simple' auth" in v.message for v in result.of("gateway-auth-not-simple-in-production")
    )


@pytest.mark.parametrize("stack", COMMITTED_STACKS)
def test_buckets_are_found_by_their_components_without_pack_config(
    stack: str, evaluated: Callable[[str], Evaluation]
) -> None:
    evaluation = evaluated(stack)
    resources = [
        r
        for r in resources_from_evaluation(evaluation, PROJECT)
        if r.type not in rules.LIFECYCLE_TYPES
    ]
    result = run_policies(
        resources, stack=stack, project=PROJECT, stack_outputs=evaluation.outputs, pack_config={}
    )
    assert any("expiring objects" in v.message for v in result.of("scratch-bucket-lifecycle"))


def test_unprotected_data_bucket_fails_the_gate(evaluated: Callable[[str], Evaluation]) -> None:
    managed = [
        s for s in COMMITTED_STACKS if any(b.managed for b in load_stack_file(REPO, s).data_buckets)
    ]
    assert managed, "no committed stack manages a data bucket"
    evaluation = evaluated(managed[0])
    resources = [
        dataclasses.replace(r, protect=False) if r.type in rules.BUCKET_TYPES else r
        for r in resources_from_evaluation(evaluation, PROJECT)
    ]
    # Found by its DataBucket component, and by name from the stack config.
    for config in ({}, None):
        result = (
            gate(evaluation, resources)
            if config is None
            else run_policies(
                resources, stack=evaluation.stack, project=PROJECT, pack_config=config
            )
        )
        violations = result.of("data-buckets-protected-versioned")
        assert any("is not protect=True" in v.message for v in violations)


def test_pack_config_comes_from_the_stack_config() -> None:
    config = load_stack_file(REPO, "prod")
    opened = config.model_copy(
        update={"ecs": config.ecs.model_copy(update={"access_cidrs": ["0.0.0.0/0"]})}
    )
    pack = pack_config(opened)
    assert pack["no-open-ingress"]["ingress_cidrs"] == sorted(
        {*config.network.ingress_cidrs, "0.0.0.0/0"}
    )
    assert pack["gateway-auth-not-simple-in-production"] == {"production": config.production}
    assert pack["scratch-bucket-lifecycle"] == {"scratch_bucket": config.scratch.bucket_name}
    assert pack["data-buckets-protected-versioned"] == {
        "data_buckets": [b.name for b in config.data_buckets if b.managed]
    }
    assert set(pack) <= {p.name for p in policies()}


# --------------------------------------------------------------------------- the CLI

runner = CliRunner()


@pytest.mark.parametrize("stack", COMMITTED_STACKS)
def test_plan_command_passes_committed_stack(stack: str, tmp_path: Path) -> None:
    pack_file = tmp_path / f"{stack}.pack.json"
    result = runner.invoke(app, ["plan", "--stack", stack, "--pack-config", str(pack_file)])
    assert result.exit_code == 0, result.output
    assert "no mandatory violations" in result.output
    for expected in ("Resources", "IAM documents", "eks-cluster", '"Statement"'):
        assert expected in result.output
    for policy in policies():
        assert policy.name in result.output
    assert json.loads(pack_file.read_text()) == pack_config(load_stack_file(REPO, stack))


def test_plan_command_unknown_stack_lists_committed_stacks() -> None:
    result = runner.invoke(app, ["plan", "--stack", "staging"])
    assert result.exit_code == 2
    assert "no Pulumi.staging.yaml" in result.output
    assert f"committed stacks: {', '.join(COMMITTED_STACKS)}" in result.output


def _project(tmp_path: Path, program: str, config: dict[str, Any]) -> Path:
    """A Pulumi project of its own: this repository's dev config (changed as given) and a tiny
    program, so the real CLI path can be driven to a violation."""
    (tmp_path / "program").mkdir()
    (tmp_path / "program" / "__main__.py").write_text(textwrap.dedent(program))
    (tmp_path / "Pulumi.yaml").write_text(
        yaml.safe_dump({"name": PROJECT, "runtime": "python", "main": "program/"})
    )
    document = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())
    document["config"].update(config)
    (tmp_path / "Pulumi.ci.yaml").write_text(yaml.safe_dump(document))
    return tmp_path


def test_plan_command_fails_on_a_mandatory_violation(tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        """
        import pulumi_aws as aws

        user = aws.iam.User("ci")
        aws.iam.AccessKey("ci-key", user=user.name)
        """,
        {},
    )
    result = runner.invoke(app, ["plan", "--stack", "ci", "--project-dir", str(project)])
    assert result.exit_code == 1, result.output
    assert "no-long-lived-credentials" in result.output
    assert "AccessKey 'ci-key' creates a long-lived IAM credential" in result.output
    assert "mandatory problem(s)" in result.output


def test_plan_command_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    project = _project(tmp_path, "", {"dask-platform:scratch": {"bucket_name": "Not_A_Bucket"}})
    result = runner.invoke(app, ["plan", "--stack", "ci", "--project-dir", str(project)])
    assert result.exit_code == 2, result.output
    assert "scratch.bucket_name" in result.output


def test_the_bootstrap_stack_passes_the_gate_and_a_planted_violation_fails_it() -> None:
    """The bootstrap project (infra/bootstrap) under the same rules: its repositories scan on
    push with immutable tags, and its cross-account pull policy has no wildcard principal."""
    from dask_platform.pulumi_eval import evaluate_stack

    bootstrap = REPO / "infra" / "bootstrap"
    evaluation = evaluate_stack("prod", bootstrap)
    project = "dask-platform-bootstrap"
    resources = resources_from_evaluation(evaluation, project)
    assert any(r.type == "aws:ecr/repositoryPolicy:RepositoryPolicy" for r in resources)
    clean = run_policies(
        resources, stack="prod", project=project, stack_outputs=evaluation.outputs, pack_config={}
    )
    assert clean.passed, [v.message for v in clean.violations]
    planted = _mutate(
        resources,
        _is("aws:ecr/repositoryPolicy:RepositoryPolicy", "worker-pull"),
        lambda p: p.update(policy=p["policy"].replace('"arn:aws:iam::', '"*", "arn:aws:iam::')),
    )
    result = run_policies(planted, stack="prod", project=project, pack_config={})
    assert not result.passed
    assert result.of("iam-no-wildcards")
