"""The analyst policy against real evaluators: every call dask-cloudprovider makes to start, use
and stop a cluster with the platform's kwargs is allowed; calls outside the scope are denied.

Two evaluators, because neither covers the whole policy on its own:

* moto in server mode (``dask_platform.local.emulator``, IAM enforcement ON). The analyst is an
  IAM user in the team's analyst group, as in production; the calls are replayed with boto3
  with exactly the arguments dask-cloudprovider 2025.9 sends (``ecs.py``/``ec2.py``), built
  from ``Platform.fargate_kwargs``/``ec2_kwargs``, and must succeed. moto authorizes every
  signed call of every service (ECS, EC2, CloudWatch Logs, IAM, ...) but only on its Action:
  for ECS, EC2 and Logs it checks the statement's Resource against the literal ``*`` (it
  resolves a real ARN only for IAM roles, STS and S3) and it ignores Condition blocks (it
  implements only StringEquals, and passes when the key is absent). A statement scoped to an
  ARN can therefore never match in moto, so the group holds the policy's *action envelope*:
  the same Allow statements with Resource ``*`` and no Condition (Deny statements left out).
  moto thus proves the action list is complete and that actions outside it are refused.
* @cloud-copilot/iam-simulate (node; tests/integration/iam_simulate), an independent
  implementation of AWS's evaluation logic with Resource, Condition and explicit Deny, and
  AWS's action/resource/condition-key data. It evaluates the REAL rendered policy for every
  authorization each replayed request needs - the API action on the ARN moto returned, with
  the request's condition keys, plus what AWS also checks (iam:PassRole for RunTask and
  RunInstances, tag-on-create ecs:TagResource/ec2:CreateTags) - and the out-of-scope requests
  (another cluster, another team's role or instance, a public address, IMDSv1, ...).

parliament reports no finding on either minimal policy (placeholders substituted first).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from dask_platform.analyst_policy import (
    CLOUDPROVIDER_CALLS,
    ApiCall,
    analyst_create_everything_policy,
    analyst_resources_supplied_policy,
)
from dask_platform.cloudprovider import TEAM_TAG, Platform
from dask_platform.iam import render_policy, team_scratch_policy
from dask_platform.local.emulator import Emulator

from .conftest import action_envelope

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SIMULATOR = Path(__file__).parent / "iam_simulate"
REGION = "us-west-2"
TEAM, OTHER = "hydrology", "climate"
STACK = "dask-itest"
SCRATCH = "itest-scratch"
CALLS = {call.action: call for call in CLOUDPROVIDER_CALLS}


# --------------------------------------------------------------------------- the simulator


@pytest.fixture(scope="session")
def simulate() -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """Run iam-simulate on a batch of requests (installed from the committed lock)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed for the IAM simulator (apt-get install nodejs npm)")
    work = REPO / ".dask-platform" / "iam-simulate"
    work.mkdir(parents=True, exist_ok=True)
    changed = False
    for name in ("package.json", "package-lock.json", "simulate.mjs"):
        source = (SIMULATOR / name).read_text()
        target = work / name
        if not target.is_file() or target.read_text() != source:
            target.write_text(source)
            changed = True
    if changed or not (work / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=work,
            check=True,
            timeout=300,
            capture_output=True,
        )

    def run(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        done = subprocess.run(
            [node, str(work / "simulate.mjs")],
            input=json.dumps(requests),
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        results: list[dict[str, Any]] = json.loads(done.stdout)
        return results

    return run


@dataclass(frozen=True)
class Authorization:
    """One authorization AWS makes for a request: action on a resource with context keys."""

    action: str
    resource: str
    context: dict[str, Any] = field(default_factory=dict)

    def request(self, policies: list[dict[str, Any]], principal: str, account: str) -> dict:
        return {
            "policies": policies,
            "principal": principal,
            "action": self.action,
            "resource": self.resource,
            "account_id": account,
            "context": self.context,
        }


# --------------------------------------------------------------------------- the platform


@dataclass
class World:
    """What the stack would have created, inside the emulator, plus an analyst of TEAM."""

    aws: Emulator
    account: str
    outputs: dict[str, Any]
    instance_role_arns: dict[str, str]
    team_policy_arns: dict[str, list[str]]
    analyst_arn: str
    analyst_keys: dict[str, str]
    policy: dict[str, Any]

    def admin(self, service: str) -> Any:
        return self.aws.client(service)

    def analyst(self, service: str) -> Any:
        return boto3.session.Session().client(
            service, endpoint_url=self.aws.endpoint, region_name=REGION, **self.analyst_keys
        )


def _role(iam: Any, name: str, trust: dict[str, Any], policy_arns: list[str]) -> str:
    arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
        "Arn"
    ]
    for policy_arn in policy_arns:
        iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
    return arn


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with Emulator(tmp_path_factory.mktemp("emulator"), region=REGION).start() as aws:
        account = aws.account_id
        iam, ec2, ecs, logs = (aws.client(s) for s in ("iam", "ec2", "ecs", "logs"))

        vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
        # As infra/components/network.py creates it (and moto's ECS needs it for task ENIs).
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=f"{REGION}{zone}")[
                "Subnet"
            ]["SubnetId"]
            for cidr, zone in (("10.40.0.0/20", "a"), ("10.40.16.0/20", "b"))
        ]
        group = ec2.create_security_group(GroupName="dask", Description="dask", VpcId=vpc)
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        cluster_arn = ecs.create_cluster(clusterName=f"{STACK}-ecs")["cluster"]["clusterArn"]
        log_group = f"/dask-platform/{STACK}/ecs"
        logs.create_log_group(logGroupName=log_group)

        task_trust = render_policy("ecs-task-trust", account_id=account, region=REGION)
        execution_role = _role(iam, f"{STACK}-execution", task_trust, [])
        task_roles, instance_roles, profiles, team_policies = {}, {}, {}, {}
        for team in (TEAM, OTHER):
            scratch = iam.create_policy(
                PolicyName=f"{team}-scratch",
                PolicyDocument=json.dumps(team_scratch_policy(SCRATCH, team)),
            )["Policy"]["Arn"]
            team_policies[team] = [scratch]
            task_roles[team] = _role(iam, f"ecs-{team}-task", task_trust, [scratch])
            instance_roles[team] = _role(
                iam, f"ecs-{team}-instance", render_policy("ec2-trust"), [scratch]
            )
            iam.create_instance_profile(InstanceProfileName=f"ecs-{team}-instance")
            iam.add_role_to_instance_profile(
                InstanceProfileName=f"ecs-{team}-instance", RoleName=f"ecs-{team}-instance"
            )
            profiles[team] = iam.get_instance_profile(InstanceProfileName=f"ecs-{team}-instance")[
                "InstanceProfile"
            ]["Arn"]

        # The same keys `pulumi stack output --json` prints (see tests/fixtures/outputs/).
        outputs = {
            "region": REGION,
            "vpc_id": vpc,
            "scratch_bucket": SCRATCH,
            "private_subnet_ids": subnets,
            "teams": [TEAM, OTHER],
            "worker_image": f"{account}.dkr.ecr.{REGION}.amazonaws.com/dask-platform/worker:1",
            "ecs_cluster_arn": cluster_arn,
            "ecs_execution_role_arn": execution_role,
            "ecs_task_role_arns": task_roles,
            "ecs_security_group_id": group["GroupId"],
            "ecs_log_group": log_group,
            "ecs_fargate_spot": True,
            "ecs_gpu": None,
            "ec2_instance_profile_arns": profiles,
            "ec2_ami_id": image,
            "ec2_imdsv2_required": True,
        }
        policy = analyst_resources_supplied_policy(
            account_id=account,
            region=REGION,
            team=TEAM,
            cluster_arn=cluster_arn,
            task_role_arn=task_roles[TEAM],
            execution_role_arn=execution_role,
            instance_role_arn=instance_roles[TEAM],
            subnet_ids=subnets,
            security_group_id=group["GroupId"],
            ami_id=image,
        )
        analysts = f"{STACK}-{TEAM}-analysts"
        iam.create_group(GroupName=analysts, Path="/dask-platform/")
        iam.put_group_policy(
            GroupName=analysts,
            PolicyName="dask-cloudprovider",
            PolicyDocument=json.dumps(action_envelope(policy)),
        )
        user = iam.create_user(UserName=f"analyst-{TEAM}")["User"]
        iam.add_user_to_group(GroupName=analysts, UserName=user["UserName"])
        key = iam.create_access_key(UserName=user["UserName"])["AccessKey"]
        assert aws.enforcement_enabled()
        yield World(
            aws=aws,
            account=account,
            outputs=outputs,
            instance_role_arns=instance_roles,
            team_policy_arns=team_policies,
            analyst_arn=user["Arn"],
            analyst_keys={
                "aws_access_key_id": key["AccessKeyId"],
                "aws_secret_access_key": key["SecretAccessKey"],
            },
            policy=policy,
        )


@pytest.fixture(scope="module")
def platform(world: World) -> Platform:
    return Platform.from_mapping(world.outputs, "emulator outputs")


# --------------------------------------------------------------------------- the replays


@dataclass
class Replay:
    """The calls made, and the authorizations AWS would make for each of them."""

    made: list[str] = field(default_factory=list)
    authorizations: list[tuple[str, Authorization]] = field(default_factory=list)

    def call(self, api: ApiCall, client: Any, **params: Any) -> Any:
        response = getattr(client, api.operation)(**params)
        self.made.append(api.action)
        return response

    def needs(self, api: ApiCall, *authorizations: Authorization) -> None:
        for authorization in authorizations:
            self.authorizations.append((api.action, authorization))


def tag_context(tags: dict[str, str]) -> dict[str, Any]:
    return {
        **{f"aws:RequestTag/{k}": v for k, v in tags.items()},
        "aws:TagKeys": sorted(tags),
    }


def replay_fargate_cluster(world: World, kwargs: dict[str, Any]) -> Replay:
    """FargateCluster(**kwargs, n_workers=1) start and close - with the arguments
    dask_cloudprovider/aws/ecs.py 2025.9 passes (the call order of ECSCluster._start)."""
    replay = Replay()
    ecs, ec2 = (world.analyst(s) for s in ("ecs", "ec2"))
    name = uuid.uuid4().hex[:10]
    cluster_arn = kwargs["cluster_arn"]
    cluster_name = replay.call(CALLS["ecs:DescribeClusters"], ecs, clusters=[cluster_arn])[
        "clusters"
    ][0]["clusterName"]
    replay.needs(CALLS["ecs:DescribeClusters"], Authorization("ecs:DescribeClusters", cluster_arn))
    # ECSCluster.tags: the user's tags, createdBy, cluster and dask_cluster_name.
    tags = {**kwargs["tags"], "createdBy": "dask-cloudprovider", "cluster": cluster_name}
    tags["dask_cluster_name"] = name
    prefix = f"{cluster_name}/{name}"
    definitions = {}
    for role in ("scheduler", "worker"):
        register = CALLS["ecs:RegisterTaskDefinition"]
        definition = replay.call(
            register,
            ecs,
            family=f"dask-{name}-{role}",
            taskRoleArn=kwargs["task_role_arn"],
            executionRoleArn=kwargs["execution_role_arn"],
            networkMode="awsvpc",
            containerDefinitions=[
                {
                    "name": f"dask-{role}",
                    "image": kwargs["image"],
                    "cpu": 1024,
                    "memory": 4096,
                    "memoryReservation": 4096,
                    "essential": True,
                    "command": [f"dask-{role}"],
                    "ulimits": [{"name": "nofile", "softLimit": 65535, "hardLimit": 65535}],
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {
                            "awslogs-region": REGION,
                            "awslogs-group": kwargs["cloudwatch_logs_group"],
                            "awslogs-stream-prefix": prefix,
                            "awslogs-create-group": "true",
                        },
                    },
                    "mountPoints": [],
                }
            ],
            volumes=[],
            requiresCompatibilities=["FARGATE"],
            runtimePlatform={"cpuArchitecture": "X86_64"},
            cpu="1024",
            memory="4096",
            tags=[{"key": k, "value": v} for k, v in tags.items()],
        )["taskDefinition"]["taskDefinitionArn"]
        definitions[role] = definition
        replay.needs(
            register,
            Authorization("ecs:RegisterTaskDefinition", definition, tag_context(tags)),
            Authorization(
                "ecs:TagResource",
                definition,
                {**tag_context(tags), "ecs:CreateAction": "RegisterTaskDefinition"},
            ),
        )

    tasks = []
    for role, capacity in (("scheduler", "FARGATE"), ("worker", "FARGATE_SPOT")):
        settings = CALLS["ecs:ListAccountSettings"]
        replay.call(settings, ecs, name="taskLongArnFormat", effectiveSettings=True)
        replay.needs(settings, Authorization("ecs:ListAccountSettings", "*"))
        run = CALLS["ecs:RunTask"]
        task = replay.call(
            run,
            ecs,
            cluster=cluster_arn,
            taskDefinition=definitions[role],
            overrides={"containerOverrides": [{"name": f"dask-{role}", "environment": []}]},
            count=1,
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": kwargs["subnets"],
                    "securityGroups": kwargs["security_groups"],
                    "assignPublicIp": "DISABLED",
                }
            },
            capacityProviderStrategy=[{"capacityProvider": capacity}],
            tags=[{"key": k, "value": v} for k, v in tags.items()],
        )["tasks"][0]
        task_arn = task["taskArn"]
        tasks.append(task_arn)
        passed = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
        replay.needs(
            run,
            Authorization(
                "ecs:RunTask",
                definitions[role],
                {
                    "ecs:cluster": cluster_arn,
                    "ecs:capacity-provider": capacity,
                    **tag_context(tags),
                },
            ),
            Authorization("iam:PassRole", kwargs["task_role_arn"], passed),
            Authorization("iam:PassRole", kwargs["execution_role_arn"], passed),
            Authorization(
                "ecs:TagResource", task_arn, {**tag_context(tags), "ecs:CreateAction": "RunTask"}
            ),
        )
        describe = CALLS["ecs:DescribeTasks"]
        described = replay.call(describe, ecs, cluster=cluster_arn, tasks=[task_arn])["tasks"][0]
        replay.needs(
            describe, Authorization("ecs:DescribeTasks", task_arn, {"ecs:cluster": cluster_arn})
        )
        eni = [
            d["value"]
            for a in described.get("attachments", [])
            for d in a["details"]
            if d["name"] == "networkInterfaceId"
        ]
        enis = CALLS["ec2:DescribeNetworkInterfaces"]
        replay.call(enis, ec2, **({"NetworkInterfaceIds": eni} if eni else {}))
        replay.needs(enis, Authorization("ec2:DescribeNetworkInterfaces", "*"))

    for task_arn in tasks:
        stop = CALLS["ecs:StopTask"]
        replay.call(stop, ecs, cluster=cluster_arn, task=task_arn)
        replay.needs(stop, Authorization("ecs:StopTask", task_arn, {"ecs:cluster": cluster_arn}))
        replay.call(CALLS["ecs:DescribeTasks"], ecs, cluster=cluster_arn, tasks=[task_arn])
    for definition in definitions.values():
        deregister = CALLS["ecs:DeregisterTaskDefinition"]
        replay.call(deregister, ecs, taskDefinition=definition)
        replay.needs(deregister, Authorization("ecs:DeregisterTaskDefinition", "*"))
    return replay


def replay_ec2_cluster(world: World, kwargs: dict[str, Any]) -> Replay:
    """EC2Cluster(**kwargs) with one VM: create_vm, configure_vm, destroy_vm of
    dask_cloudprovider/aws/ec2.py 2025.9, with its arguments."""
    replay = Replay()
    ec2 = world.analyst("ec2")
    tags = {**kwargs["instance_tags"], "createdBy": "dask-cloudprovider"}
    run = CALLS["ec2:RunInstances"]
    instance = replay.call(
        run,
        ec2,
        BlockDeviceMappings=[
            {
                "DeviceName": "/dev/sda1",
                "VirtualName": "sda1",
                "Ebs": {
                    "DeleteOnTermination": True,
                    "VolumeSize": 40,
                    "VolumeType": "gp3",
                    "Encrypted": False,
                },
            }
        ],
        ImageId=kwargs["ami"],
        InstanceType="t3.medium",
        MaxCount=1,
        MinCount=1,
        Monitoring={"Enabled": False},
        UserData="#cloud-config\n",
        InstanceInitiatedShutdownBehavior="terminate",
        NetworkInterfaces=[
            {
                "AssociatePublicIpAddress": not kwargs["use_private_ip"],
                "DeleteOnTermination": True,
                "Description": "private",
                "DeviceIndex": 0,
                "Groups": kwargs["security_groups"],
                "SubnetId": kwargs["subnet_id"],
            }
        ],
        TagSpecifications=[
            {"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
            for kind in ("instance", "volume")
        ],
        IamInstanceProfile=kwargs["iam_instance_profile"],
    )["Instances"][0]
    instance_id = instance["InstanceId"]
    prefix = f"arn:aws:ec2:{REGION}:{world.account}"
    instance_arn = f"{prefix}:instance/{instance_id}"
    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    created = {**tag_context(tags), "ec2:CreateAction": "RunInstances"}
    replay.needs(
        run,
        Authorization("ec2:RunInstances", instance_arn, tag_context(tags)),
        Authorization(
            "ec2:RunInstances", f"{prefix}:volume/vol-0a1b2c3d4e5f6a7b8", tag_context(tags)
        ),
        Authorization(
            "ec2:RunInstances",
            f"{prefix}:network-interface/{eni}",
            {"ec2:AssociatePublicIpAddress": "false", "ec2:Subnet": f"{prefix}:subnet/x"},
        ),
        Authorization("ec2:RunInstances", f"{prefix}:subnet/{kwargs['subnet_id']}"),
        Authorization(
            "ec2:RunInstances", f"{prefix}:security-group/{kwargs['security_groups'][0]}"
        ),
        Authorization("ec2:RunInstances", f"arn:aws:ec2:{REGION}::image/{kwargs['ami']}"),
        Authorization(
            "iam:PassRole",
            world.instance_role_arns[TEAM],
            {"iam:PassedToService": "ec2.amazonaws.com"},
        ),
        Authorization("ec2:CreateTags", instance_arn, created),
        Authorization("ec2:CreateTags", f"{prefix}:volume/vol-0a1b2c3d4e5f6a7b8", created),
    )
    name_tags = {"Name": "dask-worker-1", "Dask Cluster": uuid.uuid4().hex}
    tag = CALLS["ec2:CreateTags"]
    replay.call(
        tag,
        ec2,
        Resources=[instance_id],
        Tags=[{"Key": k, "Value": v} for k, v in name_tags.items()],
    )
    owned = {f"aws:ResourceTag/{TEAM_TAG}": TEAM}
    replay.needs(
        tag, Authorization("ec2:CreateTags", instance_arn, {**owned, **tag_context(name_tags)})
    )
    describe = CALLS["ec2:DescribeInstances"]
    replay.call(describe, ec2, InstanceIds=[instance_id], DryRun=False)
    replay.needs(describe, Authorization("ec2:DescribeInstances", "*"))
    terminate = CALLS["ec2:TerminateInstances"]
    replay.call(terminate, ec2, InstanceIds=[instance_id], DryRun=False)
    replay.needs(terminate, Authorization("ec2:TerminateInstances", instance_arn, owned))
    return replay


@pytest.fixture(scope="module")
def fargate_replay(world: World, platform: Platform) -> Replay:
    return replay_fargate_cluster(world, platform.fargate_kwargs(TEAM))


@pytest.fixture(scope="module")
def ec2_replay(world: World, platform: Platform) -> Replay:
    return replay_ec2_cluster(world, platform.ec2_kwargs(TEAM))


# --------------------------------------------------------------------------- allowed


def denied(error: ClientError) -> bool:
    """moto's refusal: 403 with AccessDenied (EC2: UnauthorizedOperation; JSON protocols carry
    the code only in the message)."""
    status = error.response["ResponseMetadata"]["HTTPStatusCode"]
    text = f"{error.response['Error'].get('Code')} {error.response['Error'].get('Message')}"
    return status == 403 and (
        "AccessDenied" in text or "UnauthorizedOperation" in text or "not authorized" in text
    )


def test_moto_enforces_iam_for_the_analyst(world: World):
    """The analyst is refused what the group does not grant: enforcement is really on."""
    with pytest.raises(ClientError) as caught:
        world.analyst("ecs").create_cluster(clusterName="dask-mine")
    assert denied(caught.value), caught.value.response


def test_every_listed_call_is_replayed(fargate_replay: Replay, ec2_replay: Replay):
    assert set(fargate_replay.made) | set(ec2_replay.made) == set(CALLS)


def test_moto_allows_every_fargate_call(fargate_replay: Replay):
    # Reaching here means every call above returned without AccessDenied.
    assert fargate_replay.made.count("ecs:RunTask") == 2


def test_moto_allows_every_ec2_call(ec2_replay: Replay):
    assert ec2_replay.made[-1] == "ec2:TerminateInstances"


@pytest.mark.parametrize("cluster", ["fargate", "ec2"])
def test_the_real_policy_allows_every_authorization(
    cluster: str, world: World, fargate_replay: Replay, ec2_replay: Replay, simulate
):
    replay = fargate_replay if cluster == "fargate" else ec2_replay
    policies = [{"name": "analyst-resources-supplied", "policy": world.policy}]
    requests = [
        a.request(policies, world.analyst_arn, world.account) for _, a in replay.authorizations
    ]
    results = simulate(requests)
    refused = [
        (call, a.action, a.resource, r)
        for (call, a), r in zip(replay.authorizations, results, strict=True)
        if r["result"] != "Allowed"
    ]
    assert not refused, refused
    # Every condition key sent was one AWS evaluates for that action and resource type.
    ignored = {
        (a.action, key)
        for (_, a), r in zip(replay.authorizations, results, strict=True)
        for key in r.get("ignoredContextKeys") or []
    }
    assert not ignored, ignored
    implied = {a.action for _, a in replay.authorizations}
    for call in {c for c, _ in replay.authorizations}:
        assert set(CALLS[call].implied) <= implied, call


# --------------------------------------------------------------------------- denied

OUT_OF_SCOPE_ACTIONS = [
    ("ecs", "create_cluster", {"clusterName": "dask-mine"}),
    ("ecs", "delete_cluster", {"cluster": "dask-itest-ecs"}),
    ("ecs", "list_clusters", {}),
    ("iam", "create_role", {"RoleName": "dask-x-task-role", "AssumeRolePolicyDocument": "{}"}),
    (
        "iam",
        "attach_role_policy",
        {
            "RoleName": "ecs-hydrology-task",
            "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess",
        },
    ),
    ("iam", "create_access_key", {"UserName": "analyst-hydrology"}),
    ("iam", "list_roles", {}),
    ("ec2", "create_security_group", {"GroupName": "open", "Description": "open"}),
    (
        "ec2",
        "modify_instance_metadata_options",
        {"InstanceId": "i-0123456789abcdef0", "HttpTokens": "optional"},
    ),
    ("logs", "create_log_group", {"logGroupName": "dask-ecs"}),
    ("logs", "describe_log_groups", {}),
    ("s3", "list_buckets", {}),
]


@pytest.mark.parametrize(
    ("service", "operation", "params"),
    OUT_OF_SCOPE_ACTIONS,
    ids=[o for _, o, _ in OUT_OF_SCOPE_ACTIONS],
)
def test_moto_denies_actions_outside_the_policy(world: World, service, operation, params):
    with pytest.raises(ClientError) as caught:
        getattr(world.analyst(service), operation)(**params)
    assert denied(caught.value), caught.value.response


def out_of_scope(world: World) -> list[tuple[str, Authorization]]:
    out = world.outputs
    prefix = f"arn:aws:ec2:{REGION}:{world.account}"
    ecs = f"arn:aws:ecs:{REGION}:{world.account}"
    other_cluster = f"{ecs}:cluster/someone-elses"
    mine = {f"aws:RequestTag/{TEAM_TAG}": TEAM, "aws:TagKeys": [TEAM_TAG]}
    to_ecs = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    return [
        (
            "run a task in another cluster",
            Authorization(
                "ecs:RunTask",
                f"{ecs}:task-definition/dask-x-worker:1",
                {"ecs:cluster": other_cluster},
            ),
        ),
        (
            "run a task definition that is not dask's",
            Authorization(
                "ecs:RunTask",
                f"{ecs}:task-definition/admin-tools:3",
                {"ecs:cluster": out["ecs_cluster_arn"]},
            ),
        ),
        (
            "stop a task of another cluster",
            Authorization(
                "ecs:StopTask", f"{ecs}:task/someone-elses/abc", {"ecs:cluster": other_cluster}
            ),
        ),
        ("describe another cluster", Authorization("ecs:DescribeClusters", other_cluster)),
        (
            "register a non-dask task definition",
            Authorization("ecs:RegisterTaskDefinition", f"{ecs}:task-definition/admin-tools:1"),
        ),
        (
            "tag a task outside creation",
            Authorization(
                "ecs:TagResource", f"{ecs}:task/dask-itest-ecs/abc", {"aws:TagKeys": ["x"]}
            ),
        ),
        (
            "pass another team's task role",
            Authorization("iam:PassRole", out["ecs_task_role_arns"][OTHER], to_ecs),
        ),
        (
            "pass another team's instance role",
            Authorization(
                "iam:PassRole",
                world.instance_role_arns[OTHER],
                {"iam:PassedToService": "ec2.amazonaws.com"},
            ),
        ),
        (
            "pass the team task role to Lambda",
            Authorization(
                "iam:PassRole",
                out["ecs_task_role_arns"][TEAM],
                {"iam:PassedToService": "lambda.amazonaws.com"},
            ),
        ),
        (
            "read the Dask log group (dask-cloudprovider 2025.9 never does)",
            Authorization(
                "logs:GetLogEvents",
                f"arn:aws:logs:{REGION}:{world.account}:log-group:"
                f"{out['ecs_log_group']}:log-stream:x",
            ),
        ),
        (
            "launch into another subnet",
            Authorization("ec2:RunInstances", f"{prefix}:subnet/subnet-elsewhere"),
        ),
        (
            "launch with another security group",
            Authorization("ec2:RunInstances", f"{prefix}:security-group/sg-open"),
        ),
        (
            "launch another image",
            Authorization("ec2:RunInstances", f"arn:aws:ec2:{REGION}::image/ami-other"),
        ),
        (
            "launch with a public address",
            Authorization(
                "ec2:RunInstances",
                f"{prefix}:network-interface/eni-1",
                {"ec2:AssociatePublicIpAddress": "true"},
            ),
        ),
        (
            "launch an untagged instance",
            Authorization("ec2:RunInstances", f"{prefix}:instance/i-1", {}),
        ),
        (
            "launch an instance tagged for another team",
            Authorization(
                "ec2:RunInstances",
                f"{prefix}:instance/i-1",
                {f"aws:RequestTag/{TEAM_TAG}": OTHER, "aws:TagKeys": [TEAM_TAG]},
            ),
        ),
        (
            "launch with IMDSv1 allowed",
            Authorization(
                "ec2:RunInstances",
                f"{prefix}:instance/i-1",
                {**mine, "ec2:MetadataHttpTokens": "optional"},
            ),
        ),
        (
            "terminate another team's instance",
            Authorization(
                "ec2:TerminateInstances",
                f"{prefix}:instance/i-2",
                {f"aws:ResourceTag/{TEAM_TAG}": OTHER},
            ),
        ),
        (
            "retag an own instance to another team",
            Authorization(
                "ec2:CreateTags",
                f"{prefix}:instance/i-3",
                {
                    f"aws:ResourceTag/{TEAM_TAG}": TEAM,
                    f"aws:RequestTag/{TEAM_TAG}": OTHER,
                    "aws:TagKeys": [TEAM_TAG],
                },
            ),
        ),
        (
            "tag someone else's volume",
            Authorization("ec2:CreateTags", f"{prefix}:volume/vol-1", {"aws:TagKeys": ["x"]}),
        ),
    ]


def test_the_real_policy_denies_out_of_scope_requests(world: World, simulate):
    cases = out_of_scope(world)
    policies = [{"name": "analyst-resources-supplied", "policy": world.policy}]
    results = simulate([a.request(policies, world.analyst_arn, world.account) for _, a in cases])
    allowed = [
        (why, r)
        for (why, _), r in zip(cases, results, strict=True)
        if r["result"] != "ImplicitlyDenied" and r["result"] != "ExplicitlyDenied"
    ]
    assert not allowed, allowed


def test_create_everything_still_isolates_teams(world: World, simulate):
    account = world.account
    policy = analyst_create_everything_policy(
        account_id=account,
        region=REGION,
        team=TEAM,
        vpc_id=world.outputs["vpc_id"],
        team_policy_arns=world.team_policy_arns[TEAM],
    )
    policies = [{"name": "analyst-create-everything", "policy": policy}]
    role = f"arn:aws:iam::{account}:role/dask-abc-task-role"
    mine = {f"aws:ResourceTag/{TEAM_TAG}": TEAM}
    allowed = [
        Authorization(
            "iam:CreateRole", role, {f"aws:RequestTag/{TEAM_TAG}": TEAM, "aws:TagKeys": [TEAM_TAG]}
        ),
        Authorization(
            "iam:AttachRolePolicy", role, {**mine, "iam:PolicyARN": world.team_policy_arns[TEAM][0]}
        ),
        Authorization(
            "iam:PassRole", role, {**mine, "iam:PassedToService": "ecs-tasks.amazonaws.com"}
        ),
        Authorization(
            "ecs:CreateCluster",
            f"arn:aws:ecs:{REGION}:{account}:cluster/dask-abc",
            {f"aws:RequestTag/{TEAM_TAG}": TEAM, "aws:TagKeys": [TEAM_TAG]},
        ),
    ]
    denied = [
        Authorization(
            "iam:AttachRolePolicy",
            role,
            {**mine, "iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"},
        ),
        Authorization(
            "iam:AttachRolePolicy",
            role,
            {**mine, "iam:PolicyARN": world.team_policy_arns[OTHER][0]},
        ),
        Authorization(
            "iam:PassRole",
            role,
            {
                f"aws:ResourceTag/{TEAM_TAG}": OTHER,
                "iam:PassedToService": "ecs-tasks.amazonaws.com",
            },
        ),
        Authorization("iam:CreateRole", f"arn:aws:iam::{account}:role/admin", {}),
        Authorization("ec2:CreateSecurityGroup", f"arn:aws:ec2:{REGION}:{account}:vpc/vpc-other"),
        Authorization("ecs:DeleteCluster", world.outputs["ecs_cluster_arn"]),
    ]
    results = simulate([a.request(policies, world.analyst_arn, account) for a in allowed + denied])
    verdicts = [r["result"] for r in results]
    assert verdicts[: len(allowed)] == ["Allowed"] * len(allowed), list(
        zip(allowed, verdicts, strict=False)
    )
    assert "Allowed" not in verdicts[len(allowed) :], list(
        zip(denied, verdicts[len(allowed) :], strict=True)
    )


# --------------------------------------------------------------------------- linted


@pytest.mark.parametrize("name", ["analyst-resources-supplied", "analyst-create-everything"])
def test_parliament_finds_nothing(world: World, name: str):
    from parliament import analyze_policy_string

    policy = (
        world.policy
        if name == "analyst-resources-supplied"
        else analyst_create_everything_policy(
            account_id=world.account,
            region=REGION,
            team=TEAM,
            vpc_id=world.outputs["vpc_id"],
            team_policy_arns=world.team_policy_arns[TEAM],
        )
    )
    findings = analyze_policy_string(json.dumps(policy)).findings
    assert [(f.issue, f.detail) for f in findings] == []
