"""The dask-cloudprovider resources (infra/components/ecs.py), evaluated under Pulumi mocks for
EVERY committed stack, plus two variants of dev (ECS off; create-everything analysts).

What is asserted is what a security reviewer would check in a plan: nothing open to the
internet, every role exactly scoped, IMDSv2 on every instance path, analysts in groups with the
minimal policy and no users or keys.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from dask_platform.analyst_policy import (
    analyst_create_everything_policy,
    analyst_resources_supplied_policy,
)
from dask_platform.cloudprovider import ECS_GPU_AMI_PARAMETER, TEAM_TAG
from dask_platform.config.errors import StackConfigError
from dask_platform.config.rules import validate_stack_config
from dask_platform.config.sources import SECRET_KEYS, load_stack_file
from dask_platform.iam import render_policy
from dask_platform.pulumi_eval import evaluate_stack
from dask_platform.pulumi_mocks import Evaluation

from .conftest import REPO, document, evaluated_bootstrap

ECS_NS = "aws:ecs"


def ecs_resources(evaluation: Evaluation, type_: str) -> list:
    return [r for r in evaluation.of_type(type_) if r.name.startswith("ecs-")]


def one(evaluation: Evaluation, name: str, type_: str | None = None):
    """The resource of that name (and type, where names repeat across types)."""
    if type_ is None:
        return evaluation.named(name)
    (match,) = [r for r in evaluation.of_type(type_) if r.name == name]
    return match


ROLE = "aws:iam/role:Role"
POLICY = "aws:iam/policy:Policy"
PROFILE = "aws:iam/instanceProfile:InstanceProfile"


def attached_policy_arns(evaluation: Evaluation, role_name: str) -> list[str]:
    """Policy ARNs attached to a recorded role (attachments name the role by its name)."""
    return sorted(
        a.inputs["policyArn"]
        for a in evaluation.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a.inputs["role"] == role_name
    )


def team_policy_arns(evaluation: Evaluation, team: str) -> list[str]:
    """The TeamIdentity managed policies (the IRSA role's S3 scope)."""
    return attached_policy_arns(evaluation, f"team-{team}-irsa")


def variant(tmp_path: Path, stack: str, **ecs_overrides) -> Evaluation:
    """Evaluate a copy of a committed stack with its ecs section changed."""
    raw = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())
    raw["config"]["dask-platform:ecs"] = {
        **raw["config"].get("dask-platform:ecs", {}),
        **ecs_overrides,
    }
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(raw))
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    project["main"] = str(REPO / project["main"])
    (tmp_path / "Pulumi.yaml").write_text(yaml.safe_dump(project))
    return evaluate_stack(stack, tmp_path)


# --------------------------------------------------------------------------- every resource


def test_every_ecs_resource_exists(evaluation, config):
    names = {r.name for r in evaluation.resources}
    expected = {
        "ecs-cluster",
        "ecs-logs",
        "ecs-dask",
        "ecs-execution",
        "ecs-execution-logs",
        "ecs-capacity",
        "ecs-imds-defaults",
    }
    for team in config.team_names:
        expected |= {
            f"ecs-{team}-task",
            f"ecs-{team}-instance",
            f"ecs-{team}-analysts",
            f"ecs-{team}-analyst-resources-supplied",
        }
    if config.ecs.gpu.enabled:
        expected |= {"ecs-gpu", "ecs-gpu-instance"}
    assert expected <= names, sorted(expected - names)


def test_cluster_has_fargate_and_spot_capacity(evaluation, config):
    capacity = one(evaluation, "ecs-capacity")
    providers = capacity.inputs["capacityProviders"]
    assert providers[:2] == ["FARGATE", "FARGATE_SPOT"]
    assert capacity.inputs["clusterName"] == evaluation.outputs["ecs_cluster_name"]
    (default,) = capacity.inputs["defaultCapacityProviderStrategies"]
    assert default["capacityProvider"] == "FARGATE"
    if config.ecs.gpu.enabled:
        assert providers[2:] == [evaluation.outputs["ecs_gpu"]["capacity_provider"]]
    else:
        assert providers[2:] == []
        assert evaluation.outputs["ecs_gpu"] is None


def test_log_group_has_the_configured_retention(evaluation, config):
    logs = one(evaluation, "ecs-logs")
    assert logs.inputs["retentionInDays"] == config.ecs.log_retention_days
    assert logs.inputs["name"] == evaluation.outputs["ecs_log_group"]


# --------------------------------------------------------------------------- network


def internet_ingress(rules: list[dict], configured: list[str]) -> list[dict]:
    """Ingress rules open to the whole internet that the stack config did not ask for."""
    return [
        rule
        for rule in rules
        if ("0.0.0.0/0" in rule.get("cidrBlocks", []) and "0.0.0.0/0" not in configured)
        or "::/0" in rule.get("ipv6CidrBlocks", [])
    ]


def test_no_ingress_from_the_internet(evaluation, config):
    rules = one(evaluation, "ecs-dask").inputs["ingress"]
    assert internet_ingress(rules, config.ecs.access_cidrs) == []


def test_open_ingress_is_caught():
    """The violating fixture: dask-cloudprovider's own default group (8786-8787 from anywhere)."""
    upstream_default = {"protocol": "tcp", "fromPort": 8786, "toPort": 8787}
    v4 = {**upstream_default, "cidrBlocks": ["0.0.0.0/0"]}
    v6 = {**upstream_default, "ipv6CidrBlocks": ["::/0"]}
    assert internet_ingress([v4, v6], configured=[]) == [v4, v6]
    assert internet_ingress([v4], configured=["0.0.0.0/0"]) == []


def test_internet_access_only_when_listed(tmp_path):
    evaluation = variant(tmp_path, "dev", access_cidrs=["0.0.0.0/0"])
    (clients,) = [r for r in one(evaluation, "ecs-dask").inputs["ingress"] if r.get("cidrBlocks")]
    assert clients["cidrBlocks"] == ["10.40.0.0/16", "0.0.0.0/0"]


def test_scheduler_ports_only_from_itself_the_vpc_and_configured_networks(evaluation, config):
    rules = one(evaluation, "ecs-dask").inputs["ingress"]
    by_cidr = [r for r in rules if r.get("cidrBlocks")]
    by_self = [r for r in rules if r.get("self")]
    assert len(rules) == len(by_cidr) + len(by_self) == 2
    (clients,) = by_cidr
    assert (clients["fromPort"], clients["toPort"], clients["protocol"]) == (8786, 8787, "tcp")
    assert clients["cidrBlocks"] == [config.network.vpc_cidr, *config.ecs.access_cidrs]
    (members,) = by_self
    assert (members["fromPort"], members["toPort"]) == (0, 65535)
    assert not members.get("cidrBlocks")


def test_access_cidrs_are_validated():
    with pytest.raises(StackConfigError) as caught:
        validate_stack_config(_minimal(ecs={"access_cidrs": ["10.0.0.1/8"]}))
    assert any(p.startswith("ecs.access_cidrs[0]:") for p in caught.value.problems)


# --------------------------------------------------------------------------- roles


def test_task_and_instance_roles_carry_exactly_the_team_s3_scope(evaluation, config):
    for team in config.team_names:
        expected = team_policy_arns(evaluation, team)
        assert expected, f"{team} has no team policies"
        for kind in ("task", "instance"):
            role = one(evaluation, f"ecs-{team}-{kind}", ROLE)
            assert attached_policy_arns(evaluation, role.outputs["name"]) == expected, kind
            assert role.inputs["tags"][TEAM_TAG] == team
            # Only attached managed policies for S3: no inline policy widens a team role. The
            # one inline document of an instance role is the ECR pull of the worker images
            # (EC2Cluster pulls with the instance's own role).
            inline = [
                document(p.inputs["policy"])
                for p in evaluation.of_type("aws:iam/rolePolicy:RolePolicy")
                # a RolePolicy names its role by name or by id (the mocks' id: "<name>-id")
                if p.inputs["role"] in (role.outputs["name"], f"{role.name}-id")
            ]
            if kind == "task":
                assert inline == []
            else:
                assert inline == [document(one(evaluation, "ecs-execution-ecr").inputs["policy"])]


def test_task_roles_trust_only_ecs_tasks_of_this_account(evaluation, config):
    expected = render_policy("ecs-task-trust", account_id=config.account_id, region=config.region)
    for team in config.team_names:
        trust = document(one(evaluation, f"ecs-{team}-task", ROLE).inputs["assumeRolePolicy"])
        assert trust == expected
    assert document(one(evaluation, "ecs-execution").inputs["assumeRolePolicy"]) == expected
    (statement,) = expected["Statement"]
    assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": config.account_id}


def test_instance_profiles_wrap_the_team_instance_roles(evaluation, config):
    for team in config.team_names:
        profile = one(evaluation, f"ecs-{team}-instance", PROFILE)
        assert profile.inputs["role"] == f"ecs-{team}-instance"
        assert evaluation.outputs["ec2_instance_profile_arns"][team].endswith(
            f":instance-profile/ecs-{team}-instance"
        )


def test_execution_role_writes_only_its_log_group_and_pulls_only_worker_images(evaluation, config):
    log_group = evaluation.outputs["ecs_log_group"]
    logs = document(one(evaluation, "ecs-execution-logs").inputs["policy"])
    assert logs == render_policy(
        "ecs-task-execution",
        account_id=config.account_id,
        region=config.region,
        log_group=log_group,
    )
    for statement in logs["Statement"]:
        assert log_group in statement["Resource"]
        assert "*" not in statement["Action"]
    ecr = document(one(evaluation, "ecs-execution-ecr").inputs["policy"])
    (login, pull) = ecr["Statement"]
    assert login["Action"] == "ecr:GetAuthorizationToken"  # account-wide by AWS design
    # The repositories of the bootstrap stack (prod's account), never a documentation account.
    registry = evaluation.outputs["worker_image"].split(".", 1)[0]
    assert registry != "123456789012"
    repositories = {
        f"arn:aws:ecr:us-west-2:{registry}:repository/{name}"
        for name in ("dask-platform/worker", "dask-platform/worker-gpu")
        if name.endswith("worker") or config.ecs.gpu.enabled
    }
    assert set(pull["Resource"]) == repositories
    # Nothing attached beyond those two inline documents (no CloudWatchLogsFullAccess).
    assert attached_policy_arns(evaluation, "ecs-execution") == []


# --------------------------------------------------------------------------- instances


def test_ec2_cluster_instances_get_imdsv2_from_the_region_default(evaluation):
    defaults = one(evaluation, "ecs-imds-defaults")
    assert defaults.inputs["httpTokens"] == "required"
    assert defaults.inputs["httpPutResponseHopLimit"] == 1
    assert evaluation.outputs["ec2_imdsv2_required"] is True


def test_gpu_capacity_is_imdsv2_only_on_the_gpu_ami(evaluation, config):
    if not config.ecs.gpu.enabled:
        assert not ecs_resources(evaluation, "aws:autoscaling/group:Group")
        return
    template = one(evaluation, "ecs-gpu", "aws:ec2/launchTemplate:LaunchTemplate")
    metadata = template.inputs["metadataOptions"]
    assert (metadata["httpTokens"], metadata["httpPutResponseHopLimit"]) == ("required", 1)
    assert template.inputs["imageId"] == "ami-0123456789abcdef0"  # the SSM parameter's answer
    user_data = base64.b64decode(template.inputs["userData"]).decode()
    assert f"ECS_CLUSTER={evaluation.outputs['ecs_cluster_name']}" in user_data
    # awsvpc tasks have ENIs of their own: the hop limit alone would not keep them from IMDS.
    assert "ECS_AWSVPC_BLOCK_IMDS=true" in user_data
    (device,) = template.inputs["blockDeviceMappings"]
    assert device["ebs"]["encrypted"] == "true"
    assert device["ebs"]["volumeSize"] == config.ecs.gpu.disk_size_gib
    group = one(evaluation, "ecs-gpu", "aws:autoscaling/group:Group")
    assert (group.inputs["minSize"], group.inputs["maxSize"]) == (
        config.ecs.gpu.min_size,
        config.ecs.gpu.max_size,
    )
    overrides = group.inputs["mixedInstancesPolicy"]["launchTemplate"]["overrides"]
    assert [o["instanceType"] for o in overrides] == config.ecs.gpu.instance_types
    assert {"key": "AmazonECSManaged", "value": "true", "propagateAtLaunch": True} in group.inputs[
        "tags"
    ]
    assert "desiredCapacity" in group.ignore_changes
    # The GPU instances' own role is the ECS agent's, nothing else.
    instance_role = one(evaluation, "ecs-gpu-instance", ROLE)
    assert attached_policy_arns(evaluation, instance_role.outputs["name"]) == [
        "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
    ]
    assert (
        evaluation.outputs["ecs_gpu"]["image"]
        == evaluated_bootstrap("prod").outputs["images"]["worker-gpu"]
    )


def test_the_gpu_ami_parameter_is_the_ecs_gpu_optimized_one():
    assert ECS_GPU_AMI_PARAMETER.startswith("/aws/service/ecs/optimized-ami/")
    assert "/gpu/" in ECS_GPU_AMI_PARAMETER


# --------------------------------------------------------------------------- analysts


def test_analysts_are_groups_with_exactly_the_minimal_policy(evaluation, config):
    assert not evaluation.of_type("aws:iam/user:User")
    assert not evaluation.of_type("aws:iam/accessKey:AccessKey")
    outputs = evaluation.outputs
    subnets = outputs["private_subnet_ids"]
    for team in config.team_names:
        group = one(evaluation, f"ecs-{team}-analysts")
        assert outputs["ecs_analyst_groups"][team] == group.inputs["name"]
        attachments = [
            a
            for a in evaluation.of_type("aws:iam/groupPolicyAttachment:GroupPolicyAttachment")
            if a.inputs["group"] == group.inputs["name"]
        ]
        assert len(attachments) == 1
        policy = one(evaluation, f"ecs-{team}-analyst-resources-supplied", POLICY)
        assert attachments[0].inputs["policyArn"] == policy.outputs["arn"]
        expected = analyst_resources_supplied_policy(
            account_id=config.account_id,
            region=config.region,
            team=team,
            cluster_arn=outputs["ecs_cluster_arn"],
            task_role_arn=outputs["ecs_task_role_arns"][team],
            execution_role_arn=outputs["ecs_execution_role_arn"],
            instance_role_arn=one(evaluation, f"ecs-{team}-instance", ROLE).outputs["arn"],
            subnet_ids=subnets,
            security_group_id=outputs["ecs_security_group_id"],
            ami_id=outputs["ec2_ami_id"],
        )
        assert document(policy.inputs["policy"]) == expected


def test_analyst_policy_passes_only_the_teams_roles(evaluation, config):
    outputs = evaluation.outputs
    for team in config.team_names:
        policy = one(evaluation, f"ecs-{team}-analyst-resources-supplied", POLICY)
        passed = [
            s
            for s in document(policy.inputs["policy"])["Statement"]
            if s["Action"] == "iam:PassRole"
        ]
        resources = sorted(
            r
            for s in passed
            for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
        )
        assert resources == sorted(
            [
                outputs["ecs_task_role_arns"][team],
                outputs["ecs_execution_role_arn"],
                one(evaluation, f"ecs-{team}-instance", ROLE).outputs["arn"],
            ]
        )
        others = [t for t in config.team_names if t != team]
        text = policy.inputs["policy"]
        for other in others:
            assert outputs["ecs_task_role_arns"][other] not in text
        for statement in document(text)["Statement"]:
            assert "*" not in statement["Action"]
            assert not str(statement["Action"]).endswith(":*")


def test_create_everything_adds_its_policy(tmp_path):
    evaluation = variant(tmp_path, "dev", analyst_policy="create-everything")
    outputs = evaluation.outputs
    for team in outputs["teams"]:
        policy = one(evaluation, f"ecs-{team}-analyst-create-everything", POLICY)
        assert document(policy.inputs["policy"]) == analyst_create_everything_policy(
            account_id=load_stack_file(REPO, "dev").account_id,
            region=outputs["region"],
            team=team,
            vpc_id=outputs["vpc_id"],
            team_policy_arns=team_policy_arns(evaluation, team),
        )
        attached = [
            a
            for a in evaluation.of_type("aws:iam/groupPolicyAttachment:GroupPolicyAttachment")
            if a.inputs["group"] == outputs["ecs_analyst_groups"][team]
        ]
        assert len(attached) == 2


def test_ecs_can_be_switched_off(tmp_path):
    evaluation = variant(tmp_path, "dev", enabled=False)
    assert not [r for r in evaluation.resources if r.name.startswith("ecs-")]
    assert not [k for k in evaluation.outputs if k.startswith(("ecs_", "ec2_"))]
    assert evaluation.outputs["team_role_arns"], "the rest of the platform is still there"


# --------------------------------------------------------------------------- config


def _minimal(**overrides) -> dict:
    raw = yaml.safe_load((REPO / "tests/fixtures/config/minimal.ok.yaml").read_text())["config"]
    # Secret keys (the hub token) are read by the program, not the model.
    data = {k.split(":", 1)[1]: v for k, v in raw.items() if k.split(":", 1)[1] not in SECRET_KEYS}
    data.update(overrides)
    return data


def test_ecs_defaults():
    config = validate_stack_config(_minimal())
    assert config.ecs.enabled
    assert config.ecs.fargate_spot
    assert config.ecs.access_cidrs == []
    assert config.ecs.analyst_policy == "resources-supplied"
    assert not config.ecs.gpu.enabled


@pytest.mark.parametrize(
    ("ecs", "expected"),
    [
        ({"log_retention_days": 10}, "ecs.log_retention_days: 10 is not a CloudWatch retention"),
        ({"gpu": {"enabled": True}}, "ecs.gpu.image: required without images.bootstrap_stack"),
        (
            {"gpu": {"instance_types": ["m6i.large"]}},
            "ecs.gpu.instance_types: m6i.large have no GPU",
        ),
        (
            {"gpu": {"min_size": 5, "max_size": 2}},
            "ecs.gpu.min_size: must not exceed max_size (2) (got 5)",
        ),
        ({"analyst_policy": "admin"}, "ecs.analyst_policy: Input should be"),
        ({"fargate_spots": True}, "ecs.fargate_spots: unknown key; allowed keys: access_cidrs"),
    ],
    ids=["retention", "gpu-image", "gpu-type", "gpu-range", "policy", "typo"],
)
def test_bad_ecs_config_names_the_field(ecs, expected):
    with pytest.raises(StackConfigError) as caught:
        validate_stack_config(_minimal(ecs=ecs))
    reported = "\n".join(caught.value.problems)
    assert expected in reported


def test_operators_may_reap_and_analysts_may_not_list(evaluation, config):
    """`clusters reap` needs to list and remove dask-cloudprovider's tasks, task definitions
    and security groups: the operators' group holds exactly operator-reap.json for this
    cluster; no analyst policy grants listing tasks or task definitions."""
    from dask_platform.iam import render_policy

    policy = one(evaluation, "ecs-operator-reap", POLICY)
    recorded = document(policy.inputs["policy"])
    account = recorded["Statement"][2]["Resource"].split(":")[4]  # the mocks' account
    cluster_name = one(evaluation, "ecs-cluster").inputs["name"]
    assert recorded == render_policy(
        "operator-reap", region=config.region, account_id=account, cluster_name=cluster_name
    )
    attachment = one(
        evaluation, "ecs-operator-reap", "aws:iam/groupPolicyAttachment:GroupPolicyAttachment"
    )
    assert attachment.inputs["group"] == one(evaluation, "ecs-operators").inputs["name"]
    for analyst in [r for r in ecs_resources(evaluation, POLICY) if "-analyst-" in r.name]:
        actions = {
            a
            for s in document(analyst.inputs["policy"])["Statement"]
            for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        }
        assert not {"ecs:ListTasks", "ecs:ListTaskDefinitions"} & actions, analyst.name
