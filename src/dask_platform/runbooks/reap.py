"""`clusters reap`: what dask-cloudprovider leaves behind in a site's ECS cluster, found and
removed with the operator's permissions (policies/iam/operator-reap.json).

dask-cloudprovider tags everything it creates ``createdBy: dask-cloudprovider`` and
``dask_cluster_name: <its cluster>``, leaves both task definitions ACTIVE after every run (the
platform sets ``skip_cleanup=True``; even a clean ``close()`` deregisters nothing then), and
leaves the scheduler task RUNNING after Ctrl-C or a failed start. Left over, for a threshold
``older_than`` (seconds) the operator picks above the longest legitimate session:

* a task tagged by dask-cloudprovider, RUNNING and started longer ago than the threshold;
* an ACTIVE ``dask-*`` task definition tagged by dask-cloudprovider, registered longer ago than
  the threshold, that no running task uses;
* a security group tagged by dask-cloudprovider whose Dask cluster has no running task and no
  task definition younger than the threshold (security groups carry no creation time: a
  cluster still starting has a young task definition).

A task or task definition whose age the API does not report (AWS always reports it; the
emulator does not) counts as older than any threshold.

ref: dask_cloudprovider/aws/ecs.py (DEFAULT_TAGS, ECSCluster.tags, _create_security_groups,
_create_scheduler_task_definition), aws/helper.py (create_default_security_group).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

CREATED_BY = ("createdBy", "dask-cloudprovider")
CLUSTER_TAG = "dask_cluster_name"
Kind = Literal["task", "task-definition", "security-group"]


@dataclass(frozen=True)
class Leftover:
    """One resource dask-cloudprovider left behind."""

    kind: Kind
    id: str  # task ARN, task definition ARN, security group id
    dask_cluster: str  # its dask_cluster_name tag ("" when absent)
    age_seconds: float | None  # None: the resource has no creation time (security groups)


@dataclass(frozen=True)
class Removal:
    leftover: Leftover
    error: str | None = None  # None: removed


def _tags(items: list[dict[str, str]] | None) -> dict[str, str]:
    # ECS spells tags {key, value}; EC2 {Key, Value}.
    return {t.get("key", t.get("Key", "")): t.get("value", t.get("Value", "")) for t in items or []}


def _age(when: dt.datetime, now: dt.datetime) -> float:
    return (now - when).total_seconds()


def find_leftovers(
    session: Any, cluster: str, older_than: float, now: dt.datetime | None = None
) -> list[Leftover]:
    """Every leftover in ECS cluster ``cluster`` (name or ARN) and the account's security
    groups, with ``session`` (a boto3 Session holding the operator's credentials). Raises
    botocore's ClientError (AccessDenied for a caller without the operator policy)."""
    now = now or dt.datetime.now(dt.UTC)
    ecs = session.client("ecs")
    ec2 = session.client("ec2")
    found: list[Leftover] = []

    running: list[dict[str, Any]] = []
    arns = [
        a
        for page in ecs.get_paginator("list_tasks").paginate(
            cluster=cluster, desiredStatus="RUNNING"
        )
        for a in page["taskArns"]
    ]
    for start in range(0, len(arns), 100):  # DescribeTasks takes up to 100 tasks
        running += ecs.describe_tasks(
            cluster=cluster, tasks=arns[start : start + 100], include=["TAGS"]
        )["tasks"]
    young_clusters: set[str] = set()
    used_definitions: set[str] = set()
    running = [t for t in running if t.get("desiredStatus") != "STOPPED"]  # already stopping
    for task in running:
        tags = _tags(task.get("tags"))
        started = task.get("startedAt") or task.get("createdAt")
        ours = tags.get(CREATED_BY[0]) == CREATED_BY[1]
        age = _age(started, now) if started is not None else None
        if ours and (age is None or age >= older_than):
            # Stopped by the same run: its task definition is not "in use" any more.
            found.append(Leftover("task", task["taskArn"], tags.get(CLUSTER_TAG, ""), age))
            continue
        used_definitions.add(task["taskDefinitionArn"])
        if ours:
            young_clusters.add(tags.get(CLUSTER_TAG, ""))

    # familyPrefix is a whole family name despite its name: list all, keep dask-* families.
    # ref: https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ListTaskDefinitions.html
    definitions = [
        arn
        for page in ecs.get_paginator("list_task_definitions").paginate(status="ACTIVE")
        for arn in page["taskDefinitionArns"]
        if arn.rsplit("/", 1)[-1].startswith("dask-")
    ]
    for arn in definitions:
        described = ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
        tags = _tags(described.get("tags"))
        if tags.get(CREATED_BY[0]) != CREATED_BY[1]:
            continue
        registered = described["taskDefinition"].get("registeredAt")
        age = _age(registered, now) if registered is not None else None
        if age is not None and age < older_than:
            young_clusters.add(tags.get(CLUSTER_TAG, ""))
            continue
        if arn not in used_definitions:
            found.append(Leftover("task-definition", arn, tags.get(CLUSTER_TAG, ""), age))

    groups = ec2.describe_security_groups(
        Filters=[{"Name": f"tag:{CREATED_BY[0]}", "Values": [CREATED_BY[1]]}]
    )["SecurityGroups"]
    for group in groups:
        name = _tags(group.get("Tags")).get(CLUSTER_TAG, "")
        if name in young_clusters:
            continue  # its cluster runs or is starting
        found.append(Leftover("security-group", group["GroupId"], name, None))
    return found


def remove_leftovers(session: Any, cluster: str, leftovers: list[Leftover]) -> list[Removal]:
    """Remove each leftover (tasks first: a security group in use cannot be deleted); every
    failure is reported, none stops the rest."""
    ecs = session.client("ecs")
    ec2 = session.client("ec2")
    order = {"task": 0, "task-definition": 1, "security-group": 2}
    results = []
    for leftover in sorted(leftovers, key=lambda found: order[found.kind]):
        try:
            if leftover.kind == "task":
                ecs.stop_task(
                    cluster=cluster, task=leftover.id, reason="dask-platform clusters reap"
                )
            elif leftover.kind == "task-definition":
                ecs.deregister_task_definition(taskDefinition=leftover.id)
            else:
                ec2.delete_security_group(GroupId=leftover.id)
        except Exception as exc:  # reported per resource
            results.append(Removal(leftover, f"{type(exc).__name__}: {exc}"))
        else:
            results.append(Removal(leftover))
    return results


# --------------------------------------------------------------------------- gateway clusters


@dataclass(frozen=True)
class GatewayLeftover:
    """A gateway cluster older than the threshold that no client is connected to."""

    site: str
    name: str
    status: str
    age_seconds: float


def other_clients(gateway: Any, name: str) -> list[str]:
    """The ids of the clients connected to cluster ``name``'s scheduler, besides the one this
    function connects with (it connects without owning the cluster)."""
    from dask_platform.runbooks.clusters import attached_client

    with attached_client(gateway, name) as client:
        # A lambda travels by value: schedulers run the worker image, without this package.
        ids: list[str] = client.run_on_scheduler(
            lambda dask_scheduler: sorted(
                c for c in dask_scheduler.clients if c != "fire-and-forget"
            )
        )
        return [i for i in ids if i != client.id]


def _has_clients(gateway: Any, name: str) -> bool:
    try:
        return bool(other_clients(gateway, name))
    except Exception:  # a scheduler that does not answer owns nothing
        return False


def find_gateway_leftovers(
    gateway: Any, site: str, older_than: float, now: dt.datetime | None = None
) -> list[GatewayLeftover]:
    """The caller's clusters on ``gateway`` (an administrator's: everyone's) started longer
    ago than ``older_than`` seconds with no client connected; a cluster still pending after
    the threshold counts too. A scheduler that does not answer counts as a leftover."""
    from dask_platform.runbooks.clusters import survey

    found = []
    for state in survey(gateway, site, with_activity=False):
        if state.status not in ("PENDING", "RUNNING") or state.started is None:
            continue
        started = state.started
        reference = now or dt.datetime.now(started.tzinfo)
        age = (reference - started).total_seconds()
        if age < older_than:
            continue
        if state.status == "RUNNING" and _has_clients(gateway, state.name):
            continue
        found.append(GatewayLeftover(site, state.name, state.status, age))
    return found
