"""dask-cloudprovider on the platform's pre-provisioned ECS/Fargate/EC2 resources.

An analyst writes::

    from dask_cloudprovider.aws import FargateCluster
    from dask_platform.cloudprovider import Platform

    platform = Platform.from_outputs("outputs.prod.json")  # `pulumi stack output --json`
    cluster = FargateCluster(**platform.fargate_kwargs("hydrology"), n_workers=4)

and the cluster runs in the platform's ECS cluster, private subnets and security group, logs to
the platform's log group, and its workers reach S3 as the team's task role (EC2: instance
profile). No key is ever passed: kwargs carrying AWS keys, or environment mappings carrying key
or identity variables, are refused with an error naming them.

The kwargs' environment (``environment``; EC2: ``env_vars``) carries the team
(``DASK_PLATFORM_TEAM``) and the user's scratch prefix, ``SCRATCH_URL`` = ``PANGEO_SCRATCH`` =
``s3://<scratch>/<team>/<user>/`` (the user: ``user=``, else ``JUPYTERHUB_USER`` in a notebook,
else the login name), as the gateway sets them on Kubernetes; a user's environment naming one of
them is refused. For a stack with object stores it also carries the platform AWS config as
base64 text (``DASK_PLATFORM_AWS_CONFIG``: endpoints and secret ARNs, never a key): nothing can
mount the file into a task or instance, so the worker image writes it at interpreter start and
sets AWS_CONFIG_FILE, and ``fsspec.filesystem("s3", profile="osn-renci")`` works there as on EKS.

This module does not import dask_cloudprovider (the ``cloudprovider`` extra): it only builds
plain dictionaries, so the infra program and the tests can use its constants without it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dask_platform.config.errors import format_validation_error
from dask_platform.credentials import FORBIDDEN_ENV_VARS, check_environment
from dask_platform.object_store_deploy import (
    aws_config_from_outputs,
    refuse_platform_variables,
    scratch_environment,
)
from dask_platform.object_stores import (
    AWS_CONFIG_CONTENT_ENV,
    JUPYTERHUB_USER_ENV,
    TEAM_ENV,
    aws_config_env_value,
)

CloudProviderKwargs: TypeAlias = dict[str, Any]
"""Keyword arguments of a dask-cloudprovider cluster manager (``FargateCluster``,
``ECSCluster``, ``EC2Cluster``), by the manager's own argument names.
ref: https://cloudprovider.dask.org/en/latest/aws.html"""

TEAM_TAG = "dask-platform/team"
"""The tag naming a resource's team; the analyst policy scopes EC2 instances with it."""

SCHEDULER_PORTS = (8786, 8787)
"""Dask scheduler and dashboard: the only ports reachable from outside the security group."""

# Amazon Linux 2023 (ECS is retiring the Amazon Linux 2 AMIs).
# ref: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/retrieve-ecs-optimized_AMI.html
ECS_GPU_AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
# ref: https://documentation.ubuntu.com/aws/aws-how-to/instances/find-ubuntu-images/
EC2_AMI_PARAMETER = (
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
)

FORBIDDEN_KWARGS = frozenset({"aws_access_key_id", "aws_secret_access_key", "aws_session_token"})
"""Constructor arguments that would carry key material (ECSCluster accepts the first two)."""

_ECR_IMAGE = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/(?P<repo>[^:@]+)"
)


def ecr_repository_arn(image: str) -> str | None:
    """The ECR repository ARN of an image reference, or None for another registry."""
    match = _ECR_IMAGE.match(image)
    if not match:
        return None
    return f"arn:aws:ecr:{match['region']}:{match['account']}:repository/{match['repo']}"


def gpu_resource_args(gpus: int) -> list[str]:
    """Worker arguments advertising ``gpus`` as the Dask resource ``GPU`` (tasks submitted with
    ``resources={"GPU": 1}`` then run one per GPU)."""
    return ["--resources", f"GPU={gpus}"]


def ecr_login_commands(image: str) -> list[str]:
    """cloud-init commands that let Docker pull ``image`` from ECR with the instance's role:
    Ubuntu's amazon-ecr-credential-helper, named for that registry in root's Docker config
    (cloud-init runs as root). Empty for an image outside ECR.

    The commands are YAML plain scalars in dask-cloudprovider's cloud-init template, so they
    hold no ': ' or ' #'. ref: https://github.com/awslabs/amazon-ecr-credential-helper
    """
    match = _ECR_IMAGE.match(image)
    if not match:
        return []
    registry = f"{match['account']}.dkr.ecr.{match['region']}.amazonaws.com"
    return [
        "apt-get install -y amazon-ecr-credential-helper",
        "mkdir -p /root/.docker",
        f'printf \'{{"credHelpers":{{"{registry}":"ecr-login"}}}}\' > /root/.docker/config.json',
    ]


# --------------------------------------------------------------------------- the outputs


class PlatformError(ValueError):
    """Kwargs the platform will not build: the message names the argument and what is allowed."""


class GpuOutputs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    capacity_provider: str
    image: str
    gpus_per_worker: int = Field(ge=1)
    instance_types: list[str] = Field(min_length=1)
    # One ECS GPU worker task, sized to what every listed type registers (the program computes
    # it from EC2's instance-type catalogue: dask_platform.instance_types).
    worker_cpu: int = Field(ge=256)
    worker_mem: int = Field(ge=512)
    # EC2Cluster(gpu): the first listed type, whose GPUs all go to its one container.
    ec2_instance_type: str
    ec2_gpus: int = Field(ge=1)


class PlatformOutputs(BaseModel):
    """The stack outputs the kwargs are built from (``pulumi stack output --json``, or the local
    platform's ``.dask-platform/outputs.json``: same keys). Other outputs are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    region: str
    vpc_id: str
    scratch_bucket: str
    private_subnet_ids: list[str] = Field(min_length=1)
    teams: list[str] = Field(min_length=1)
    worker_image: str
    # Absent when the stack has ecs.enabled: false.
    ecs_cluster_arn: str | None = None
    ecs_execution_role_arn: str | None = None
    ecs_task_role_arns: dict[str, str] = Field(default_factory=dict)
    ecs_security_group_id: str | None = None
    ecs_log_group: str | None = None
    ecs_fargate_spot: bool = False
    ecs_gpu: GpuOutputs | None = None
    ec2_instance_profile_arns: dict[str, str] = Field(default_factory=dict)
    ec2_ami_id: str | None = None
    ec2_imdsv2_required: bool = False
    # Object stores by profile name (dask_platform.object_stores): the `object_stores` output.
    object_stores: dict[str, Any] = Field(default_factory=dict)


_PLATFORM_OWNED = {
    "cluster_arn": "the platform's ECS cluster",
    "execution_role_arn": "the platform's execution role",
    "task_role_arn": "the team's task role (its S3 scope)",
    "task_role_policies": "the team's task role (its S3 scope)",
    "vpc": "the platform's VPC",
    "subnets": "the platform's private subnets",
    "subnet_id": "a platform private subnet",
    "security_groups": "the platform's Dask security group",
    "cloudwatch_logs_group": "the platform's log group",
    "iam_instance_profile": "the team's instance profile (its S3 scope)",
    "ami": "the platform's EC2 image",
    "skip_cleanup": "True: the stale-resource sweep would delete other teams' resources",
    "fargate_use_private_ip": "True: tasks run in private subnets",
    "use_private_ip": "True: instances run in private subnets, never with a public address",
    "region_name": "the stack's region",
    "region": "the stack's region",
}


def _find_forbidden(value: Any, path: str, found: list[str]) -> None:
    """Key names or AWS key/identity variable names anywhere in user-supplied kwargs."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            name = str(key)
            if name.lower() in FORBIDDEN_KWARGS or name.upper() in FORBIDDEN_ENV_VARS:
                found.append(f"{path}[{name!r}]" if path else name)
            _find_forbidden(item, f"{path}[{name!r}]" if path else name, found)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _find_forbidden(item, f"{path}[{index}]", found)
    elif isinstance(value, str):
        # docker_args ("-e AWS_SECRET_ACCESS_KEY=..."), extra_bootstrap commands, task overrides
        names = [n for n in FORBIDDEN_ENV_VARS if re.search(rf"\b{n}\b", value, re.IGNORECASE)]
        if names:
            found.append(f"{path} (mentions {', '.join(sorted(names))})")


def current_user(environ: Mapping[str, str] | None = None) -> str:
    """Who is starting the cluster, for the scratch prefix: ``JUPYTERHUB_USER`` (set in every
    notebook of the hub), else the login name. Raises PlatformError if neither is known."""
    import getpass
    import os

    environ = os.environ if environ is None else environ
    if environ.get(JUPYTERHUB_USER_ENV):
        return environ[JUPYTERHUB_USER_ENV]
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no LOGNAME/USER and no passwd entry (3.11: KeyError)
        raise PlatformError(
            f"user: cannot tell who you are ({JUPYTERHUB_USER_ENV} is not set and this process "
            "has no login name); pass user=<your user name> (it names your scratch prefix)"
        ) from None


class Platform:
    """Keyword arguments for dask-cloudprovider's cluster managers, for one team at a time."""

    def __init__(self, outputs: PlatformOutputs) -> None:
        self.outputs = outputs

    @classmethod
    def from_outputs(cls, path: str | Path) -> Platform:
        """Load ``pulumi stack output --json`` (or the local platform's outputs.json)."""
        from dask_platform.sites.outputs import StackOutputsError, read_outputs

        try:
            data = read_outputs(path)
        except StackOutputsError as exc:
            raise PlatformError(str(exc)) from None
        return cls.from_mapping(data, str(path))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "stack outputs") -> Platform:
        try:
            return cls(PlatformOutputs.model_validate(dict(data)))
        except ValidationError as exc:
            problems = "; ".join(format_validation_error(exc, PlatformOutputs))
            raise PlatformError(f"{source}: {problems}") from None

    # ----------------------------------------------------------------------- public

    def fargate_kwargs(
        self, team: str, *, user: str | None = None, **extra: Any
    ) -> CloudProviderKwargs:
        """``FargateCluster(**kwargs)``: scheduler on FARGATE, workers on FARGATE_SPOT if the
        stack says so, all as the team's task role. ``user`` names the scratch prefix
        (:func:`current_user` when None)."""
        kwargs = self._ecs_base(team)
        kwargs["fargate_spot"] = self.outputs.ecs_fargate_spot
        return self._merge(kwargs, extra, team, user, env_field="environment")

    def ecs_kwargs(
        self, team: str, gpu: bool = False, *, user: str | None = None, **extra: Any
    ) -> CloudProviderKwargs:
        """``ECSCluster(**kwargs)``. Without ``gpu``: everything on Fargate. With ``gpu``: the
        scheduler on Fargate, workers on the GPU capacity provider with ``worker_gpu`` GPUs."""
        kwargs = self._ecs_base(team)
        if not gpu:
            kwargs.update(
                fargate_scheduler=True,
                fargate_workers=True,
                fargate_spot=self.outputs.ecs_fargate_spot,
            )
            return self._merge(kwargs, extra, team, user, env_field="environment")
        gpu_outputs = self._gpu()
        kwargs.update(
            fargate_scheduler=True,
            fargate_workers=False,
            fargate_spot=False,
            image=gpu_outputs.image,
            # dask-cloudprovider's defaults (4 vCPU, 16 GiB) exceed what a g5.xlarge registers,
            # so the task would never be placed.
            worker_cpu=gpu_outputs.worker_cpu,
            worker_mem=gpu_outputs.worker_mem,
            worker_gpu=gpu_outputs.gpus_per_worker,
            # The GPU resource equals the GPUs ECS gives the task (resourceRequirements).
            worker_extra_args=gpu_resource_args(gpu_outputs.gpus_per_worker),
            # RunTask for the workers names the GPU provider (the cluster default is Fargate).
            worker_task_kwargs={
                "capacityProviderStrategy": [
                    {"capacityProvider": gpu_outputs.capacity_provider, "weight": 1}
                ]
            },
        )
        extra = dict(extra)
        if "worker_extra_args" in extra:
            extra["worker_extra_args"] = [
                *kwargs["worker_extra_args"],
                *(extra["worker_extra_args"] or []),
            ]
        return self._merge(kwargs, extra, team, user, env_field="environment")

    def ec2_kwargs(
        self, team: str, gpu: bool = False, *, user: str | None = None, **extra: Any
    ) -> CloudProviderKwargs:
        """``EC2Cluster(**kwargs)``: private subnet, the platform security group and image, the
        team's instance profile, team-tagged instances and volumes."""
        out = self._require_ecs()
        self._check_team(team)
        if not out.ec2_imdsv2_required or not out.ec2_ami_id:
            raise PlatformError(
                "ec2_kwargs: this stack does not make IMDSv2 the region default "
                "(ecs.imdsv2_account_default: false) and EC2Cluster cannot request it per "
                "instance, so its instances would serve role credentials over IMDSv1. Set "
                "ecs.imdsv2_account_default: true in the stack, or use fargate_kwargs/ecs_kwargs."
            )
        tags = {TEAM_TAG: team}
        kwargs: CloudProviderKwargs = {
            "region": out.region,
            "vpc": out.vpc_id,
            "subnet_id": out.private_subnet_ids[0],
            "security_groups": [out.ecs_security_group_id],
            "iam_instance_profile": {"Arn": out.ec2_instance_profile_arns[team]},
            "ami": out.ec2_ami_id,
            "bootstrap": True,
            "docker_image": out.worker_image,
            "use_private_ip": True,
            "instance_tags": dict(tags),
            "volume_tags": dict(tags),
        }
        if gpu:
            gpu_outputs = self._gpu()
            kwargs["docker_image"] = gpu_outputs.image
            kwargs["instance_type"] = gpu_outputs.ec2_instance_type
            # EC2Cluster runs the container with --gpus=all: every GPU of the instance is the
            # worker's, and its Nanny advertises exactly that many.
            kwargs["worker_options"] = {"resources": {"GPU": gpu_outputs.ec2_gpus}}
        login = ecr_login_commands(str(kwargs["docker_image"]))
        if login:
            # cloud-init runs these after installing Docker and before `docker run`.
            kwargs["extra_bootstrap"] = login
        extra = dict(extra)
        if "extra_bootstrap" in extra and login:
            extra["extra_bootstrap"] = [*login, *(extra["extra_bootstrap"] or [])]
        if "worker_options" in extra and "worker_options" in kwargs:
            extra["worker_options"] = {
                **(extra["worker_options"] or {}),
                **kwargs["worker_options"],
            }
        return self._merge(kwargs, extra, team, user, env_field="env_vars")

    # ----------------------------------------------------------------------- internals

    def _require_ecs(self) -> PlatformOutputs:
        out = self.outputs
        missing = [
            key
            for key in (
                "ecs_cluster_arn",
                "ecs_execution_role_arn",
                "ecs_security_group_id",
                "ecs_log_group",
            )
            if getattr(out, key) is None
        ]
        if missing:
            raise PlatformError(
                f"these stack outputs have no {', '.join(missing)}: the stack was deployed "
                "with ecs.enabled: false, or the file is not a `pulumi stack output --json`"
            )
        return out

    def _check_team(self, team: str) -> None:
        out = self.outputs
        if team not in out.teams or team not in out.ecs_task_role_arns:
            raise PlatformError(f"team: unknown team {team!r}; one of {', '.join(out.teams)}")

    def _gpu(self) -> GpuOutputs:
        if self.outputs.ecs_gpu is None:
            raise PlatformError(
                "gpu: this stack has no GPU capacity (ecs.gpu.enabled: false); use gpu=False, "
                "or enable ecs.gpu in the stack config"
            )
        return self.outputs.ecs_gpu

    def _platform_environment(self, team: str, user: str | None) -> dict[str, str]:
        """The team, the user's scratch prefix and, for stacks with object stores, their AWS
        config as text (no mount on ECS/EC2; the worker image writes it to a file at start)."""
        try:
            out = {
                TEAM_ENV: team,
                **scratch_environment(
                    self.outputs.scratch_bucket,
                    team,
                    current_user() if user is None else user,
                ),
            }
        except ValueError as exc:
            raise PlatformError(str(exc)) from None
        text = aws_config_from_outputs({"object_stores": self.outputs.object_stores})
        if text is not None:
            out[AWS_CONFIG_CONTENT_ENV] = aws_config_env_value(text)
        return out

    def _ecs_base(self, team: str) -> CloudProviderKwargs:
        out = self._require_ecs()
        self._check_team(team)
        return {
            "cluster_arn": out.ecs_cluster_arn,
            "execution_role_arn": out.ecs_execution_role_arn,
            "task_role_arn": out.ecs_task_role_arns[team],
            "vpc": out.vpc_id,
            "subnets": list(out.private_subnet_ids),
            "security_groups": [out.ecs_security_group_id],
            "cloudwatch_logs_group": out.ecs_log_group,
            "image": out.worker_image,
            "fargate_use_private_ip": True,
            "skip_cleanup": True,
            "region_name": out.region,
            "tags": {TEAM_TAG: team},
        }

    def _merge(
        self,
        kwargs: CloudProviderKwargs,
        extra: Mapping[str, Any],
        team: str,
        user: str | None,
        env_field: str,
    ) -> CloudProviderKwargs:
        if env_field in extra:
            check_environment(dict(extra[env_field] or {}), env_field)
        found: list[str] = []
        _find_forbidden(dict(extra), "", found)
        if found:
            raise PlatformError(
                f"{', '.join(found)}: AWS keys and identity variables may not be passed to a "
                f"cluster; its workers get S3 access from team {team!r}'s role. Remove them."
            )
        taken = sorted(set(extra) & set(_PLATFORM_OWNED))
        if taken:
            reasons = "; ".join(f"{k} is {_PLATFORM_OWNED[k]}" for k in taken)
            raise PlatformError(
                f"{', '.join(taken)}: set by the platform for team {team!r} ({reasons}). "
                "Allowed: any other argument of the cluster manager."
            )
        merged = {**kwargs, **extra}
        user_env = dict(extra.get(env_field) or {})
        try:
            refuse_platform_variables(user_env, env_field)
        except ValueError as exc:
            raise PlatformError(str(exc)) from None
        merged[env_field] = {**user_env, **self._platform_environment(team, user)}
        for tag_field in ("tags", "instance_tags", "volume_tags"):
            if tag_field in extra and tag_field in kwargs:
                user_tags = dict(extra[tag_field] or {})
                if TEAM_TAG in user_tags and user_tags[TEAM_TAG] != team:
                    raise PlatformError(
                        f"{tag_field}[{TEAM_TAG!r}]: must be {team!r} (the policy scopes "
                        "resources by it); allowed: any other tag"
                    )
                merged[tag_field] = {**user_tags, **kwargs[tag_field]}
        return merged
