"""ECS / Fargate / EC2 for dask-cloudprovider: everything FargateCluster, ECSCluster and
EC2Cluster would otherwise create on every start (cluster, roles, log group, security group), made
once here, so an analyst needs only a minimal policy and every worker runs as its team's role."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.launch_templates import hardened_launch_template
from components.network import egress_anywhere
from dask_platform.analyst_policy import (
    analyst_create_everything_policy,
    analyst_resources_supplied_policy,
)
from dask_platform.cloudprovider import (
    EC2_AMI_PARAMETER,
    ECS_GPU_AMI_PARAMETER,
    SCHEDULER_PORTS,
    TEAM_TAG,
    ecr_repository_arn,
)
from dask_platform.config.models import Ecs as EcsConfig
from dask_platform.iam import TEAM_ROLE_MAX_SESSION_SECONDS, render_policy
from dask_platform.instance_types import ECS_RESERVED_MEMORY_MIB

# ref: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/instance_IAM_role.html
CONTAINER_INSTANCE_POLICY = (
    "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
)
FARGATE_PROVIDERS = ("FARGATE", "FARGATE_SPOT")


@dataclass
class DaskEcsArgs:
    cluster_name: str
    config: EcsConfig
    region: str
    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    private_subnet_ids: Sequence[pulumi.Input[str]]
    teams: Sequence[str]
    # The TeamIdentity managed policies, so task roles and instance profiles carry exactly the
    # documents the IRSA roles carry.
    team_policy_arns: Mapping[str, Sequence[pulumi.Input[str]]]
    worker_image: pulumi.Input[str]
    gpu_image: pulumi.Input[str | None] = None
    # The images are in ECR (always so when they come from the bootstrap stack): the execution
    # role and the EC2Cluster instance roles get a pull grant on exactly their repositories.
    images_in_ecr: bool = True
    tags: dict[str, str] = field(default_factory=dict)


def _json(document: dict) -> str:
    return json.dumps(document, sort_keys=False)


class DaskEcs(pulumi.ComponentResource):
    """The ECS cluster (FARGATE, FARGATE_SPOT and an optional GPU capacity provider), its log
    group and security group, the execution role, per-team task roles and instance profiles,
    and per-team analyst groups holding the minimal dask-cloudprovider policy."""

    def __init__(
        self, name: str, args: DaskEcsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dask-platform:ecs:DaskEcs", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOptions(parent=self)
        cfg = args.config
        region = args.region
        account_id = aws.get_caller_identity_output(opts=invoke).account_id
        ecs_name = f"{args.cluster_name}-ecs"

        self.cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            name=ecs_name,
            settings=[aws.ecs.ClusterSettingArgs(name="containerInsights", value="enabled")],
            tags=args.tags,
            opts=child,
        )
        # Ours, with a retention: dask-cloudprovider would create "dask-ecs" with its own.
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/dask-platform/{args.cluster_name}/ecs",
            retention_in_days=cfg.log_retention_days,
            tags=args.tags,
            opts=child,
        )

        # dask-cloudprovider's default group opens 8786-8787 to 0.0.0.0/0 and ::/0. Here: all
        # TCP between members (scheduler <-> workers <-> workers use ephemeral ports), and the
        # scheduler/dashboard ports from the VPC and the configured networks only.
        client_cidrs = [args.vpc_cidr, *cfg.access_cidrs]
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-dask",
            vpc_id=args.vpc_id,
            description="Dask schedulers and workers started with dask-cloudprovider",
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    protocol="tcp",
                    from_port=0,
                    to_port=65535,
                    self=True,
                    description="Dask scheduler, workers and nannies among themselves",
                ),
                aws.ec2.SecurityGroupIngressArgs(
                    protocol="tcp",
                    from_port=SCHEDULER_PORTS[0],
                    to_port=SCHEDULER_PORTS[1],
                    cidr_blocks=client_cidrs,
                    description="Dask scheduler (8786) and dashboard (8787) from clients",
                ),
            ],
            egress=egress_anywhere("image pulls, S3, CloudWatch Logs through the NAT gateways"),
            tags={**args.tags, "Name": f"{ecs_name}-dask"},
            opts=child,
        )

        task_trust = account_id.apply(
            lambda account: _json(
                render_policy("ecs-task-trust", account_id=account, region=region)
            )
        )
        self.execution_role = aws.iam.Role(
            f"{name}-execution",
            description=f"ECS agent for Dask tasks of {ecs_name}: image pulls and log writes",
            assume_role_policy=task_trust,
            tags=args.tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-execution-logs",
            role=self.execution_role.id,
            policy=account_id.apply(
                lambda account: _json(
                    render_policy(
                        "ecs-task-execution",
                        account_id=account,
                        region=region,
                        log_group=f"/dask-platform/{args.cluster_name}/ecs",
                    )
                )
            ),
            opts=child,
        )
        self.ecr_pull_policy: pulumi.Output[str] | None = None
        if args.images_in_ecr:
            self.ecr_pull_policy = pulumi.Output.all(args.worker_image, args.gpu_image).apply(
                lambda images: _json(
                    render_policy(
                        "ecr-pull",
                        repository_arns=sorted(
                            {arn for arn in map(ecr_repository_arn, filter(None, images)) if arn}
                        ),
                    )
                )
            )
            aws.iam.RolePolicy(
                f"{name}-execution-ecr",
                role=self.execution_role.id,
                policy=self.ecr_pull_policy,
                opts=child,
            )

        # Per team: the ECS task role (Fargate/ECS workers) and the EC2 instance profile
        # (EC2Cluster workers), each with exactly the team's managed S3 policies.
        self.task_roles: dict[str, aws.iam.Role] = {}
        self.instance_roles: dict[str, aws.iam.Role] = {}
        self.instance_profiles: dict[str, aws.iam.InstanceProfile] = {}
        for team in args.teams:
            team_tags = {**args.tags, TEAM_TAG: team}
            task_role = aws.iam.Role(
                f"{name}-{team}-task",
                description=f"Dask workers of {team} on ECS/Fargate",
                assume_role_policy=task_trust,
                max_session_duration=TEAM_ROLE_MAX_SESSION_SECONDS,
                tags=team_tags,
                opts=child,
            )
            instance_role = aws.iam.Role(
                f"{name}-{team}-instance",
                description=f"Dask workers of {team} on EC2 (EC2Cluster)",
                assume_role_policy=_json(render_policy("ec2-trust")),
                max_session_duration=TEAM_ROLE_MAX_SESSION_SECONDS,
                tags=team_tags,
                opts=child,
            )
            for index, policy_arn in enumerate(args.team_policy_arns[team]):
                for kind, role in (("task", task_role), ("instance", instance_role)):
                    aws.iam.RolePolicyAttachment(
                        f"{name}-{team}-{kind}-{index}",
                        role=role.name,
                        policy_arn=policy_arn,
                        opts=child,
                    )
            if self.ecr_pull_policy is not None:
                # EC2Cluster's cloud-init pulls the image with the instance's own role (the
                # platform's ec2_kwargs log Docker in to ECR first).
                aws.iam.RolePolicy(
                    f"{name}-{team}-instance-ecr",
                    role=instance_role.id,
                    policy=self.ecr_pull_policy,
                    opts=child,
                )
            self.task_roles[team] = task_role
            self.instance_roles[team] = instance_role
            self.instance_profiles[team] = aws.iam.InstanceProfile(
                f"{name}-{team}-instance",
                role=instance_role.name,
                tags=team_tags,
                opts=child,
            )

        # EC2Cluster (dask-cloudprovider 2025.9) sends no MetadataOptions with RunInstances, so
        # IMDSv2 can only come from the region's account-level default. Hop limit 1 is enough:
        # EC2Cluster runs its one container with --net=host, i.e. on the instance's own stack.
        # ref: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-IMDS-new-instances.html
        self.imds_defaults: aws.ec2.InstanceMetadataDefaults | None = None
        if cfg.imdsv2_account_default:
            self.imds_defaults = aws.ec2.InstanceMetadataDefaults(
                f"{name}-imds-defaults",
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=1,
                instance_metadata_tags="disabled",
                opts=child,
            )
        # EC2Cluster expects a Debian-family AMI (its cloud-init installs Docker with apt).
        self.ec2_ami_id = aws.ssm.get_parameter_output(name=EC2_AMI_PARAMETER, opts=invoke).value

        self.gpu_capacity_provider: aws.ecs.CapacityProvider | None = None
        if cfg.gpu.enabled:
            self.gpu_capacity_provider = self._gpu_capacity(name, args, ecs_name, invoke, child)
        providers: list[pulumi.Input[str]] = list(FARGATE_PROVIDERS)
        if self.gpu_capacity_provider is not None:
            providers.append(self.gpu_capacity_provider.name)
        aws.ecs.ClusterCapacityProviders(
            f"{name}-capacity",
            cluster_name=self.cluster.name,
            capacity_providers=providers,
            # A task that names no provider (ECSCluster without a strategy) lands on Fargate.
            default_capacity_provider_strategies=[
                aws.ecs.ClusterCapacityProvidersDefaultCapacityProviderStrategyArgs(
                    capacity_provider="FARGATE", weight=1, base=0
                )
            ],
            opts=child,
        )

        self.analyst_groups: dict[str, aws.iam.Group] = {}
        self._analyst_groups(name, args, account_id, child)
        self.operator_group = self._operator_group(name, args, ecs_name, account_id, child)

        self.cluster_arn = self.cluster.arn
        self.cluster_name = self.cluster.name
        self.log_group_name = self.log_group.name
        self.security_group_id = self.security_group.id
        self.execution_role_arn = self.execution_role.arn
        self.register_outputs(
            {
                "cluster_arn": self.cluster_arn,
                "log_group": self.log_group_name,
                "security_group_id": self.security_group_id,
                "execution_role_arn": self.execution_role_arn,
                "task_role_arns": {t: r.arn for t, r in self.task_roles.items()},
                "instance_profile_arns": {t: p.arn for t, p in self.instance_profiles.items()},
            }
        )

    def _gpu_capacity(
        self,
        name: str,
        args: DaskEcsArgs,
        ecs_name: str,
        invoke: pulumi.InvokeOptions,
        child: pulumi.ResourceOptions,
    ) -> aws.ecs.CapacityProvider:
        gpu = args.config.gpu
        role = aws.iam.Role(
            f"{name}-gpu-instance",
            description=f"ECS agent on the GPU container instances of {ecs_name} (tasks use "
            "their team task role, never this one)",
            assume_role_policy=_json(render_policy("ec2-trust")),
            tags=args.tags,
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-gpu-instance", role=role.name, policy_arn=CONTAINER_INSTANCE_POLICY, opts=child
        )
        profile = aws.iam.InstanceProfile(
            f"{name}-gpu-instance", role=role.name, tags=args.tags, opts=child
        )
        ami = aws.ssm.get_parameter_output(name=ECS_GPU_AMI_PARAMETER, opts=invoke).value
        # awsvpc tasks get an ENI of their own, so the hop limit does not keep them from IMDS:
        # ECS_AWSVPC_BLOCK_IMDS does. They read their task role from the agent's credential
        # endpoint (169.254.170.2), and the agent runs on the host network, so hop limit 1 holds.
        # ref: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html
        user_data = "\n".join(
            [
                "#!/bin/bash",
                "cat >> /etc/ecs/ecs.config <<'EOF'",
                f"ECS_CLUSTER={ecs_name}",
                "ECS_AWSVPC_BLOCK_IMDS=true",
                "ECS_ENABLE_TASK_IAM_ROLE=true",
                "ECS_ENABLE_GPU_SUPPORT=true",
                # Held back for the agent, Docker and the NVIDIA runtime; the GPU workers are
                # sized to what remains (dask_platform.instance_types).
                f"ECS_RESERVED_MEMORY={ECS_RESERVED_MEMORY_MIB}",
                "EOF",
                "",
            ]
        )
        template = hardened_launch_template(
            f"{name}-gpu",
            description=f"{ecs_name} GPU container instances (ECS GPU-optimized AL2023 AMI)",
            disk_size_gib=gpu.disk_size_gib,
            instance_name=f"{ecs_name}-gpu",
            tags=args.tags,
            opts=child,
            image_id=ami,
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=profile.arn),
            vpc_security_group_ids=[self.security_group.id],
            user_data=base64.b64encode(user_data.encode()).decode(),
        )
        group = aws.autoscaling.Group(
            f"{name}-gpu",
            min_size=gpu.min_size,
            max_size=gpu.max_size,
            vpc_zone_identifiers=list(args.private_subnet_ids),
            mixed_instances_policy=aws.autoscaling.GroupMixedInstancesPolicyArgs(
                launch_template=aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateArgs(
                    launch_template_specification=aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateLaunchTemplateSpecificationArgs(
                        launch_template_id=template.id, version="$Latest"
                    ),
                    overrides=[
                        aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateOverrideArgs(
                            instance_type=instance_type
                        )
                        for instance_type in gpu.instance_types
                    ],
                ),
            ),
            # ECS managed scaling sets the desired count and requires this tag.
            # ref: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/asg-capacity-providers-create-auto-scaling-group.html
            tags=[
                aws.autoscaling.GroupTagArgs(
                    key="AmazonECSManaged", value="true", propagate_at_launch=True
                )
            ],
            protect_from_scale_in=False,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["desiredCapacity"]),
        )
        return aws.ecs.CapacityProvider(
            f"{name}-gpu",
            name=f"{ecs_name}-gpu",
            auto_scaling_group_provider=aws.ecs.CapacityProviderAutoScalingGroupProviderArgs(
                auto_scaling_group_arn=group.arn,
                managed_termination_protection="DISABLED",
                managed_scaling=aws.ecs.CapacityProviderAutoScalingGroupProviderManagedScalingArgs(
                    status="ENABLED", target_capacity=100
                ),
            ),
            tags=args.tags,
            opts=child,
        )

    def _operator_group(
        self,
        name: str,
        args: DaskEcsArgs,
        ecs_name: str,
        account_id: pulumi.Output[str],
        child: pulumi.ResourceOptions,
    ) -> aws.iam.Group:
        """The operators' IAM group: what `dask-platform clusters reap` needs to find and
        remove what dask-cloudprovider leaves in this cluster (policies/iam/operator-reap.json;
        analysts cannot list tasks or task definitions). No users: membership is managed where
        people are."""
        group = aws.iam.Group(
            f"{name}-operators",
            name=f"{args.cluster_name}-operators",
            path="/dask-platform/",
            opts=child,
        )
        document = account_id.apply(
            lambda account: _json(
                render_policy(
                    "operator-reap",
                    region=args.region,
                    account_id=account,
                    cluster_name=ecs_name,
                )
            )
        )
        policy = aws.iam.Policy(
            f"{name}-operator-reap",
            description="dask-platform clusters reap: dask-cloudprovider's leftovers",
            policy=document,
            tags=dict(args.tags),
            opts=child,
        )
        aws.iam.GroupPolicyAttachment(
            f"{name}-operator-reap", group=group.name, policy_arn=policy.arn, opts=child
        )
        return group

    def _analyst_groups(
        self,
        name: str,
        args: DaskEcsArgs,
        account_id: pulumi.Output[str],
        child: pulumi.ResourceOptions,
    ) -> None:
        """One IAM group per team holding the minimal dask-cloudprovider policy (no users, no
        keys: membership is managed where people are, e.g. IAM Identity Center)."""
        region = args.region
        for team in args.teams:
            group = aws.iam.Group(
                f"{name}-{team}-analysts",
                name=f"{args.cluster_name}-{team}-analysts",
                path="/dask-platform/",
                opts=child,
            )
            self.analyst_groups[team] = group

            def supplied(values: list[Any], team: str = team) -> str:
                (
                    account,
                    cluster_arn,
                    task_role,
                    execution_role,
                    instance_role,
                    sg,
                    ami,
                    *subnets,
                ) = values
                return _json(
                    analyst_resources_supplied_policy(
                        account_id=account,
                        region=region,
                        team=team,
                        cluster_arn=cluster_arn,
                        task_role_arn=task_role,
                        execution_role_arn=execution_role,
                        instance_role_arn=instance_role,
                        subnet_ids=subnets,
                        security_group_id=sg,
                        ami_id=ami,
                    )
                )

            def create_everything(values: list[Any], team: str = team) -> str:
                account, vpc_id, *team_policies = values
                return _json(
                    analyst_create_everything_policy(
                        account_id=account,
                        region=region,
                        team=team,
                        vpc_id=vpc_id,
                        team_policy_arns=team_policies,
                    )
                )

            policies = {
                "resources-supplied": pulumi.Output.all(
                    account_id,
                    self.cluster.arn,
                    self.task_roles[team].arn,
                    self.execution_role.arn,
                    self.instance_roles[team].arn,
                    self.security_group.id,
                    self.ec2_ami_id,
                    *args.private_subnet_ids,
                ).apply(supplied)
            }
            if args.config.analyst_policy == "create-everything":
                policies["create-everything"] = pulumi.Output.all(
                    account_id, args.vpc_id, *args.team_policy_arns[team]
                ).apply(create_everything)
            for kind, document in policies.items():
                policy = aws.iam.Policy(
                    f"{name}-{team}-analyst-{kind}",
                    description=f"dask-cloudprovider for {team} ({kind})",
                    policy=document,
                    tags={**args.tags, TEAM_TAG: team},
                    opts=child,
                )
                aws.iam.GroupPolicyAttachment(
                    f"{name}-{team}-analyst-{kind}",
                    group=group.name,
                    policy_arn=policy.arn,
                    opts=child,
                )
