"""The team analysts' IAM policy for dask-cloudprovider: every AWS call its cluster managers
(``FargateCluster``, ``ECSCluster``, ``EC2Cluster``) make on the platform's resources
(:data:`CLOUDPROVIDER_CALLS`, read from dask-cloudprovider's source) and the two policy
documents that allow them (``policies/iam/analyst-*.json``). The infra program attaches the
policies; :mod:`dask_platform.cloudprovider` builds the kwargs the calls are made with.

ref: https://cloudprovider.dask.org/en/latest/aws.html
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from dask_platform.iam import render_policy


def analyst_resources_supplied_policy(
    *,
    account_id: str,
    region: str,
    team: str,
    cluster_arn: str,
    task_role_arn: str,
    execution_role_arn: str,
    instance_role_arn: str,
    subnet_ids: list[str],
    security_group_id: str,
    ami_id: str,
) -> dict[str, Any]:
    """The team analysts' policy: start/stop dask-cloudprovider clusters on supplied resources."""
    return render_policy(
        "analyst-resources-supplied",
        account_id=account_id,
        region=region,
        team=team,
        cluster_arn=cluster_arn,
        cluster_name=cluster_arn.rsplit("/", 1)[-1],
        task_role_arn=task_role_arn,
        execution_role_arn=execution_role_arn,
        instance_role_arn=instance_role_arn,
        launch_resource_arns=[
            *(f"arn:aws:ec2:{region}:{account_id}:subnet/{s}" for s in subnet_ids),
            f"arn:aws:ec2:{region}:{account_id}:security-group/{security_group_id}",
            f"arn:aws:ec2:{region}::image/{ami_id}",
        ],
    )


def analyst_create_everything_policy(
    *, account_id: str, region: str, team: str, vpc_id: str, team_policy_arns: list[str]
) -> dict[str, Any]:
    """Added to the team analysts' policy with ``ecs.analyst_policy: create-everything``."""
    return render_policy(
        "analyst-create-everything",
        account_id=account_id,
        region=region,
        team=team,
        vpc_id=vpc_id,
        team_policy_arns=team_policy_arns,
    )


# --------------------------------------------------------------------------- the calls


@dataclass(frozen=True)
class ApiCall:
    """One AWS API call dask-cloudprovider makes with the platform's kwargs."""

    action: str  # the IAM action AWS authorizes
    operation: str  # the boto3/aiobotocore method
    clusters: tuple[str, ...]  # which cluster managers make it
    phase: Literal["start", "stop"]
    source: str  # where, in dask_cloudprovider/aws/
    why: str
    # Further authorizations AWS makes for the same request (PassRole, tag-on-create).
    implied: tuple[str, ...] = ()

    @property
    def service(self) -> str:
        return self.action.split(":", 1)[0]


ECS = ("FargateCluster", "ECSCluster")
EC2 = ("EC2Cluster",)

CLOUDPROVIDER_CALLS: tuple[ApiCall, ...] = (
    ApiCall(
        "ecs:DescribeClusters", "describe_clusters", ECS, "start", "ecs.py ECSCluster._start",
        "read the name of the supplied cluster_arn",
    ),
    ApiCall(
        "ecs:RegisterTaskDefinition", "register_task_definition", ECS, "start",
        "ecs.py _create_scheduler/_create_worker_task_definition_arn",
        "one scheduler and one worker task definition (family `dask-<uuid>-*`), tagged",
        ("ecs:TagResource",),
    ),
    ApiCall(
        "ecs:ListAccountSettings", "list_account_settings", ECS, "start",
        "ecs.py Task._is_long_arn_format_enabled", "tasks are tagged only with long ARNs",
    ),
    ApiCall(
        "ecs:RunTask", "run_task", ECS, "start", "ecs.py Task.start",
        "the scheduler and each worker, in the platform cluster, with the team task role",
        ("iam:PassRole", "ecs:TagResource"),
    ),
    ApiCall(
        "ecs:DescribeTasks", "describe_tasks", ECS, "start", "ecs.py Task._update_task",
        "wait for RUNNING, then for STOPPED on close",
    ),
    ApiCall(
        "ec2:DescribeNetworkInterfaces", "describe_network_interfaces", ECS, "start",
        "ecs.py Task.start", "the task ENI's private address (the scheduler address)",
    ),
    ApiCall(
        "ecs:StopTask", "stop_task", ECS, "stop", "ecs.py Task.close",
        "stop the scheduler and worker tasks",
    ),
    ApiCall(
        "ecs:DeregisterTaskDefinition", "deregister_task_definition", ECS, "stop",
        "ecs.py _delete_*_task_definition_arn", "remove the cluster's two task definitions",
    ),
    ApiCall(
        "ec2:RunInstances", "run_instances", EC2, "start", "ec2.py EC2Instance.create_vm",
        "scheduler and workers in a private subnet with the team instance profile, team-tagged",
        ("iam:PassRole", "ec2:CreateTags"),
    ),
    ApiCall(
        "ec2:CreateTags", "create_tags", EC2, "start", "ec2.py EC2Instance.configure_vm",
        "name the instance and mark its Dask cluster",
    ),
    ApiCall(
        "ec2:DescribeInstances", "describe_instances", EC2, "start",
        "ec2.py EC2Instance.configure_vm", "wait for the private address",
    ),
    ApiCall(
        "ec2:TerminateInstances", "terminate_instances", EC2, "stop",
        "ec2.py EC2Instance.destroy_vm", "remove the scheduler and worker instances",
    ),
)  # fmt: skip
"""Every call FargateCluster/ECSCluster/EC2Cluster make to start, use and stop a cluster with
the kwargs :class:`dask_platform.cloudprovider.Platform` builds (skip_cleanup=True, every
resource supplied), read from dask-cloudprovider 2025.9 source. The table in
docs/explanation/cloudprovider.md and the analyst-policy replay test are generated from it.

Not listed: ``logs:GetLogEvents``. ``ECSCluster.logs()`` would call it from ``Task.logs``, but in
2025.9 ``Task.__init__`` keeps ``log_group``/``log_stream_prefix`` in ``self.kwargs``, so
``Task.logs`` fails with AttributeError before any request (``cluster.get_logs()`` reads the
logs from the scheduler instead, with no AWS call). A test holds this against the source."""


def calls_table() -> str:
    """The markdown table of the calls the analyst policy covers.

    ref: docs/explanation/cloudprovider.md (where it is pasted; a test keeps it current)"""
    rows = [
        "| IAM action | also authorized | cluster managers | when | dask-cloudprovider source |",
        "|---|---|---|---|---|",
    ]
    for call in CLOUDPROVIDER_CALLS:
        rows.append(
            f"| `{call.action}` | {', '.join(f'`{i}`' for i in call.implied) or '-'} "
            f"| {', '.join(call.clusters)} | {call.phase}: {call.why} | `{call.source}` |"
        )
    return "\n".join(rows)
