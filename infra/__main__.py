"""dask-platform: the Pulumi program. It only loads the stack config, composes one component per
AWS concern, and exports. Everything it builds is described in docs/explanation/design.md."""

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from components.ecs import DaskEcs, DaskEcsArgs
from components.eks import EksCluster, EksClusterArgs
from components.gateway import DaskGateway, DaskGatewayArgs
from components.identity import TeamIdentity, TeamIdentityArgs
from components.karpenter import Karpenter, KarpenterArgs
from components.network import Network, NetworkArgs
from components.object_stores import (
    ObjectStoreAwsConfig,
    ObjectStoreAwsConfigArgs,
    ObjectStores,
    ObjectStoresArgs,
)
from components.storage import DataBucket, DataBucketArgs, ScratchStorage, ScratchStorageArgs

from dask_platform.cloudprovider import ecr_repository_arn
from dask_platform.config.models import ImageRefs
from dask_platform.config.rules import require_account
from dask_platform.config.sources import load_from_pulumi
from dask_platform.gateway_settings import render_values
from dask_platform.iam import service_account_name
from dask_platform.instance_types import ecs_gpu_worker_size, instance_type
from dask_platform.object_store_deploy import object_store_outputs
from dask_platform.sites import site_output

config = load_from_pulumi()  # every problem at once, before any resource is declared
stack = pulumi.get_stack()
cluster_name = f"dask-{stack}"
tags = {"dask-platform/stack": stack, "managed-by": "pulumi", **config.tags}

aws_provider = aws.Provider("aws", region=config.region, default_tags={"tags": tags})
with_aws = pulumi.ResourceOptions(providers={"aws": aws_provider})
# Fails the `up` before anything is created in an account the config does not name.
aws.get_caller_identity_output(opts=pulumi.InvokeOptions(provider=aws_provider)).account_id.apply(
    lambda account: require_account(config.account_id, account)
)

# The images: from the bootstrap stack (applied and pushed first), or named in the config.
images: pulumi.Output[ImageRefs]
explicit_refs: ImageRefs | None = None
if config.images.bootstrap_stack is not None:
    bootstrap = pulumi.StackReference(config.images.bootstrap_stack)
    images = bootstrap.require_output("images").apply(
        lambda refs: ImageRefs(
            worker=refs["worker"], gateway=refs["gateway"], worker_gpu=refs.get("worker-gpu")
        )
    )
else:
    explicit_refs = config.explicit_images()
    assert explicit_refs is not None  # the config model requires them without bootstrap_stack
    images = pulumi.Output.from_input(explicit_refs)
worker_image = images.apply(lambda refs: refs.worker)

network = Network(
    "network",
    NetworkArgs(
        vpc_cidr=config.network.vpc_cidr,
        availability_zones=config.network.availability_zones,
        cluster_name=cluster_name,
        single_nat_gateway=config.network.single_nat_gateway,
        region=config.region,
    ),
    opts=with_aws,
)
eks = EksCluster(
    "eks",
    EksClusterArgs(
        cluster_name=cluster_name,
        config=config.eks,
        vpc_id=network.vpc_id,
        vpc_cidr=config.network.vpc_cidr,
        private_subnet_ids=network.private_subnet_ids,
    ),
    opts=with_aws,
)
scratch = ScratchStorage(
    "scratch",
    ScratchStorageArgs(
        bucket_name=config.scratch.bucket_name,
        retention_days=config.scratch.retention_days,
        teams=config.team_names,
    ),
    opts=with_aws,
)
for bucket in config.data_buckets:
    if bucket.managed:
        DataBucket(
            f"data-{bucket.name}",
            DataBucketArgs(bucket_name=bucket.name, requester_pays=bucket.requester_pays),
            opts=with_aws,
        )

identities = {
    team.name: TeamIdentity(
        f"team-{team.name}",
        TeamIdentityArgs(
            team=team.name,
            scratch_bucket=config.scratch.bucket_name,
            data_buckets=[b.name for b in config.data_buckets],
            namespace=config.gateway.namespace,
            oidc_provider_arn=eks.oidc_provider.arn,
            oidc_issuer_url=eks.oidc_issuer_url,
        ),
        opts=with_aws,
    )
    for team in config.teams
}

ecs = (
    DaskEcs(
        "ecs",
        DaskEcsArgs(
            cluster_name=cluster_name,
            config=config.ecs,
            region=config.region,
            vpc_id=network.vpc_id,
            vpc_cidr=config.network.vpc_cidr,
            private_subnet_ids=network.private_subnet_ids,
            teams=config.team_names,
            team_policy_arns={t: [p.arn for p in i.policies] for t, i in identities.items()},
            worker_image=worker_image,
            gpu_image=images.apply(lambda refs: refs.worker_gpu)
            if config.ecs.gpu.enabled
            else None,
            images_in_ecr=explicit_refs is None
            or any(
                ecr_repository_arn(ref)
                for ref in (explicit_refs.worker, explicit_refs.worker_gpu)
                if ref
            ),
        ),
        opts=with_aws,
    )
    if config.ecs.enabled
    else None
)

# --- object stores (OSN, Ceph): key pairs in Secrets Manager, read by the allowed teams' roles
object_stores = (
    ObjectStores(
        "object-stores",
        ObjectStoresArgs(
            stores=config.object_stores,
            keys=pulumi.Config().require_secret("object_store_keys"),
            region=config.region,
            name_prefix=cluster_name,
            team_role_names={
                team: [
                    identity.role.name,
                    *([ecs.task_roles[team].name, ecs.instance_roles[team].name] if ecs else []),
                ]
                for team, identity in identities.items()
            },
        ),
        opts=with_aws,
    )
    if config.object_stores
    else None
)
# --- end object stores

# Every Kubernetes resource goes through this provider, so it waits for what makes the API
# usable: the operators' way in (access entries, the VPN rule), the core nodes, and the
# managed add-ons. Karpenter's releases and NodePools go through it too.
k8s_provider = k8s.Provider(
    "eks",
    kubeconfig=eks.kubeconfig,
    enable_server_side_apply=True,
    opts=pulumi.ResourceOptions(depends_on=eks.kubernetes_prerequisites),
)
# Nodes for Dask schedulers and workers: Karpenter launches them when pods are Pending.
karpenter = Karpenter(
    "karpenter",
    KarpenterArgs(
        cluster_name=eks.cluster_name,
        cluster_security_group_id=eks.cluster.vpc_config.cluster_security_group_id,
        oidc_provider_arn=eks.oidc_provider.arn,
        oidc_issuer_url=eks.oidc_issuer_url,
        region=config.region,
        capacity=config.capacity,
        node_tags=tags,  # the provider's default tags do not reach instances Karpenter launches
    ),
    opts=pulumi.ResourceOptions(
        providers={"aws": aws_provider, "kubernetes": k8s_provider}, depends_on=[eks]
    ),
)
simple_password = (
    pulumi.Config().require_secret("gateway_simple_password")
    if config.gateway.auth.type == "simple"
    else None
)
jupyterhub_api_token = (
    pulumi.Config().require_secret("gateway_jupyterhub_api_token")
    if config.gateway.auth.type == "jupyterhub"
    else None
)
gateway = DaskGateway(
    "gateway",
    DaskGatewayArgs(
        namespace=config.gateway.namespace,
        chart_version=config.gateway.chart_version,
        team_role_arns={name: identity.role_arn for name, identity in identities.items()},
        values=images.apply(lambda refs: render_values(config, refs)),
        hostname=config.gateway.tls.hostname if config.gateway.tls else None,
        simple_password=simple_password,
        jupyterhub_api_token=jupyterhub_api_token,
    ),
    opts=pulumi.ResourceOptions(providers={"kubernetes": k8s_provider}, depends_on=[eks]),
)

if object_stores is not None:  # the platform AWS config, mounted by the chart values
    ObjectStoreAwsConfig(
        "object-stores-aws-config",
        ObjectStoreAwsConfigArgs(
            stores=config.object_stores,
            secret_arns=object_stores.secret_arns,
            namespace=gateway.namespace.metadata.name,
        ),
        opts=pulumi.ResourceOptions(providers={"kubernetes": k8s_provider}),
    )

pulumi.export("region", config.region)
pulumi.export("cluster_name", eks.cluster_name)
pulumi.export("kubeconfig", eks.kubeconfig)
pulumi.export("oidc_provider_arn", eks.oidc_provider.arn)
pulumi.export("oidc_issuer_url", eks.oidc_issuer_url)
pulumi.export("vpc_id", network.vpc_id)
pulumi.export("private_subnet_ids", network.private_subnet_ids)
pulumi.export("gateway_address", gateway.address)
pulumi.export("gateway_proxy_address", gateway.proxy_address)
pulumi.export("namespace", config.gateway.namespace)
pulumi.export("teams", config.team_names)
pulumi.export("scratch_bucket", scratch.bucket_name)
pulumi.export(
    "scratch_urls",
    {t: f"s3://{config.scratch.bucket_name}/{t}/" for t in config.team_names},
)
pulumi.export("team_role_arns", {name: i.role_arn for name, i in identities.items()})
pulumi.export("service_accounts", {t: service_account_name(t) for t in config.team_names})
pulumi.export("data_buckets", [b.name for b in config.data_buckets])
pulumi.export("worker_image", worker_image)
pulumi.export("karpenter_interruption_queue", karpenter.interruption_queue)
pulumi.export("karpenter_node_pools", list(karpenter.node_pools))
pulumi.export("site", site_output(stack, config))  # read by dask_platform.sites.catalog.SiteCatalog
if ecs is not None:  # dask-cloudprovider: read by dask_platform.cloudprovider.Platform
    gpu = config.ecs.gpu
    gpu_size = ecs_gpu_worker_size(gpu.instance_types, gpu.gpus_per_worker)
    pulumi.export("ecs_cluster_arn", ecs.cluster_arn)
    pulumi.export("ecs_cluster_name", ecs.cluster_name)
    pulumi.export("ecs_execution_role_arn", ecs.execution_role_arn)
    pulumi.export("ecs_task_role_arns", {t: r.arn for t, r in ecs.task_roles.items()})
    pulumi.export("ecs_security_group_id", ecs.security_group_id)
    pulumi.export("ecs_log_group", ecs.log_group_name)
    pulumi.export("ecs_fargate_spot", config.ecs.fargate_spot)
    pulumi.export(
        "ecs_gpu",
        {
            "capacity_provider": ecs.gpu_capacity_provider.name,
            "image": images.apply(lambda refs: refs.worker_gpu),
            "gpus_per_worker": gpu.gpus_per_worker,
            "instance_types": gpu.instance_types,
            # ECSCluster's worker_cpu/worker_mem: what every listed type registers, shared by
            # the workers one instance holds (dask-cloudprovider's defaults do not fit).
            "worker_cpu": gpu_size.worker_cpu,
            "worker_mem": gpu_size.worker_mem,
            "ec2_instance_type": gpu.instance_types[0],
            "ec2_gpus": instance_type(gpu.instance_types[0]).gpus,
        }
        if ecs.gpu_capacity_provider is not None
        else None,
    )
    pulumi.export("ecs_analyst_groups", {t: g.name for t, g in ecs.analyst_groups.items()})
    pulumi.export("ecs_operator_group", ecs.operator_group.name)
    pulumi.export("ec2_instance_profile_arns", {t: p.arn for t, p in ecs.instance_profiles.items()})
    pulumi.export("ec2_ami_id", ecs.ec2_ami_id)
    pulumi.export("ec2_imdsv2_required", config.ecs.imdsv2_account_default)
if object_stores is not None:  # the stores by name; never a key (those stay in Secrets Manager)
    pulumi.export("object_stores", object_store_outputs(config, object_stores.secret_arns))
