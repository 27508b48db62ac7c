"""`dask-platform clusters reap` against the emulator (moto server, IAM enforcement ON): the
resources dask-cloudprovider leaves in an ECS cluster - created with the calls and tags
dask-cloudprovider 2025.9 makes (``aws/ecs.py``, ``aws/helper.py``) - are listed and removed
with the operator's permissions (policies/iam/operator-reap.json); the analyst's policy cannot
even list them; nothing else is touched. This moto reports no task or task definition times, so
the age threshold itself is not exercised here (every such resource counts as old).

moto evaluates Actions only (Resource ``*``, no Condition; see test_analyst_policy), so each IAM
user holds its policy's action envelope; the policies themselves are linted in tests/policy.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from dask_platform.cli import app
from dask_platform.iam import placeholders, render_policy
from dask_platform.local.emulator import Emulator
from dask_platform.runbooks.reap import find_leftovers, remove_leftovers

from .conftest import action_envelope

REGION = "us-west-2"
ECS_CLUSTER = "dask-itest"
DASK_TAGS = {"createdBy": "dask-cloudprovider"}
runner = CliRunner()


@dataclass
class World:
    aws: Emulator
    keys: dict[str, dict[str, str]]  # user -> access key pair
    dask_cluster: str
    task_definitions: list[str]
    tasks: list[str]
    security_group: str
    other_definition: str
    other_group: str

    def session(self, user: str) -> Any:
        keys = self.keys[user]
        return _EndpointSession(self.aws.endpoint, keys)


class _EndpointSession:
    """A boto3 Session whose clients talk to the emulator (as AWS_ENDPOINT_URL would)."""

    def __init__(self, endpoint: str, keys: dict[str, str]) -> None:
        self._session = boto3.session.Session(region_name=REGION, **keys)
        self._endpoint = endpoint

    def client(self, service: str) -> Any:
        return self._session.client(service, endpoint_url=self._endpoint)


def _user(iam: Any, name: str, policy: dict[str, Any]) -> dict[str, str]:
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name, PolicyName=name, PolicyDocument=json.dumps(action_envelope(policy))
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {
        "aws_access_key_id": key["AccessKeyId"],
        "aws_secret_access_key": key["SecretAccessKey"],
    }


def _values(name: str, account: str) -> dict[str, Any]:
    known = {
        "region": REGION,
        "account_id": account,
        "cluster_name": ECS_CLUSTER,
        "cluster_arn": f"arn:aws:ecs:{REGION}:{account}:cluster/{ECS_CLUSTER}",
    }
    return {p: known.get(p, f"itest-{p}") for p in placeholders(name)}


def _register(ecs: Any, family: str, tags: dict[str, str]) -> str:
    # As ECSCluster._create_scheduler_task_definition (family, tags in ECS spelling), but with
    # EC2 capacity and bridge networking: this moto's RunTask fails on awsvpc networking
    # (NetworkInterface has no private_dns_name).
    arn: str = ecs.register_task_definition(
        family=family,
        networkMode="bridge",
        containerDefinitions=[
            {
                "name": "dask-scheduler",
                "image": "daskdev/dask:latest",
                "cpu": 1024,
                "memory": 1024,
                "essential": True,
                "command": ["dask", "scheduler"],
            }
        ],
        volumes=[],
        requiresCompatibilities=["EC2"],
        tags=[{"key": k, "value": v} for k, v in tags.items()],
    )["taskDefinition"]["taskDefinitionArn"]
    return arn


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with Emulator(tmp_path_factory.mktemp("emulator"), region=REGION).start() as aws:
        account = aws.account_id
        iam, ec2, ecs = (aws.client(s) for s in ("iam", "ec2", "ecs"))
        vpc = ec2.create_vpc(CidrBlock="10.41.0.0/16")["Vpc"]["VpcId"]
        ecs.create_cluster(clusterName=ECS_CLUSTER)
        name = f"dask-{uuid.uuid4().hex[:10]}"
        tags = {**DASK_TAGS, "cluster": ECS_CLUSTER, "dask_cluster_name": name}
        # helper.create_default_security_group: tagged on creation, EC2 spelling.
        group = ec2.create_security_group(
            Description="A default security group for Dask",
            GroupName=name,
            VpcId=vpc,
            TagSpecifications=[
                {
                    "ResourceType": "security-group",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ],
        )["GroupId"]
        definitions = [
            _register(ecs, f"dask-{name}-scheduler", tags),
            _register(ecs, f"dask-{name}-worker", tags),
        ]
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][
            0
        ]["InstanceId"]
        ecs.register_container_instance(
            cluster=ECS_CLUSTER,
            instanceIdentityDocument=json.dumps(
                {"instanceId": instance, "region": REGION, "accountId": account}
            ),
        )
        tasks = [
            ecs.run_task(
                cluster=ECS_CLUSTER,
                taskDefinition=definitions[0],
                launchType="EC2",
                count=1,
                tags=[{"key": k, "value": v} for k, v in tags.items()],
            )["tasks"][0]["taskArn"]
        ]
        # Not dask-cloudprovider's: must never be touched.
        other_definition = _register(ecs, "dask-someone-elses-app", {"team": "ops"})
        other_group = ec2.create_security_group(Description="not dask", GroupName="web", VpcId=vpc)[
            "GroupId"
        ]
        keys = {
            "operator": _user(
                iam, "operator", render_policy("operator-reap", **_values("operator-reap", account))
            ),
            "analyst": _user(
                iam,
                "analyst",
                render_policy(
                    "analyst-resources-supplied", **_values("analyst-resources-supplied", account)
                ),
            ),
        }
        yield World(aws, keys, name, definitions, tasks, group, other_definition, other_group)


def test_the_analyst_cannot_list_what_is_left(world: World) -> None:
    with pytest.raises(ClientError) as caught:
        find_leftovers(world.session("analyst"), ECS_CLUSTER, 0)
    # moto's refusal: HTTP 403 naming the action (JSON protocols carry no error code).
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert caught.value.operation_name == "ListTasks"
    assert "not authorized" in str(caught.value) or "AccessDenied" in str(caught.value)


def test_the_operator_lists_then_removes_what_dask_cloudprovider_left(world: World) -> None:
    operator = world.session("operator")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
    found = find_leftovers(operator, ECS_CLUSTER, 2 * 3600, now=later)
    assert {(f.kind, f.id) for f in found} == {
        ("task", world.tasks[0]),
        ("task-definition", world.task_definitions[0]),
        ("task-definition", world.task_definitions[1]),
        ("security-group", world.security_group),
    }
    assert {f.dask_cluster for f in found} == {world.dask_cluster}

    # The command lists them and exits 1 without --yes (a finding), removes nothing.
    env = {
        "AWS_ACCESS_KEY_ID": world.keys["operator"]["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": world.keys["operator"]["aws_secret_access_key"],
        "AWS_ENDPOINT_URL": world.aws.endpoint,
        "AWS_DEFAULT_REGION": REGION,
        "COLUMNS": "250",  # rich folds long ids in a narrow terminal
    }
    listed = runner.invoke(
        app,
        ["clusters", "reap", "--no-gateway", "--ecs-cluster", ECS_CLUSTER, "--older-than", "0s"],
        env=env,
    )
    assert listed.exit_code == 1, listed.output
    assert world.security_group in listed.output
    assert "would remove" in listed.output

    removals = remove_leftovers(operator, ECS_CLUSTER, found)
    assert [r.error for r in removals] == [None] * 4
    ecs, ec2 = world.aws.client("ecs"), world.aws.client("ec2")
    task = ecs.describe_tasks(cluster=ECS_CLUSTER, tasks=world.tasks)["tasks"][0]
    assert task["desiredStatus"] == "STOPPED"
    for arn in world.task_definitions:
        assert ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]["status"] == (
            "INACTIVE"
        )
    groups = {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    assert world.security_group not in groups
    # Not dask-cloudprovider's: untouched.
    assert world.other_group in groups
    assert (
        ecs.describe_task_definition(taskDefinition=world.other_definition)["taskDefinition"][
            "status"
        ]
        == "ACTIVE"
    )

    # The command with --yes: nothing left, exit 0.
    again = runner.invoke(
        app,
        [
            "clusters",
            "reap",
            "--no-gateway",
            "--ecs-cluster",
            ECS_CLUSTER,
            "--older-than",
            "0s",
            "--yes",
        ],
        env=env,
    )
    assert again.exit_code == 0, again.output
    assert "removed 0 leftover(s)" in again.output
