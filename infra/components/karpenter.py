"""Karpenter: node capacity that follows the Dask pods. Its IAM exactly as Karpenter's reference
(getting-started CloudFormation of v1.14.1), the spot interruption queue and its EventBridge
rules, the CRD and controller Helm releases, the EC2NodeClass and the two NodePools.

ref: https://karpenter.sh/docs/getting-started/getting-started-with-karpenter/
ref: https://github.com/aws/karpenter-provider-aws/blob/v1.14.1/website/content/en/v1.14/getting-started/getting-started-with-karpenter/cloudformation.yaml
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from dask_platform import karpenter as spec
from dask_platform.charts import chart_pin
from dask_platform.config.models import Capacity
from dask_platform.iam import issuer_host, placeholders, render_policy

# The node role's managed policies, as the reference's KarpenterNodeRole.
NODE_MANAGED_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
)

# The controller's policies, one document each as in the reference (policies/iam/karpenter-*).
CONTROLLER_POLICIES = (
    "karpenter-node-lifecycle",
    "karpenter-iam-integration",
    "karpenter-eks-integration",
    "karpenter-interruption",
    "karpenter-zonal-shift",
    "karpenter-resource-discovery",
)

# What the interruption queue receives: (rule name, EventBridge source, detail-type).
INTERRUPTION_EVENTS = (
    ("scheduled-change", "aws.health", "AWS Health Event"),
    ("spot-interruption", "aws.ec2", "EC2 Spot Instance Interruption Warning"),
    ("rebalance", "aws.ec2", "EC2 Instance Rebalance Recommendation"),
    ("instance-state-change", "aws.ec2", "EC2 Instance State-change Notification"),
    (
        "capacity-reservation-interruption",
        "aws.ec2",
        "EC2 Capacity Reservation Instance Interruption Warning",
    ),
)
QUEUE_RETENTION_SECONDS = 300  # the reference's: a notice older than 5 minutes is moot


@dataclass
class KarpenterArgs:
    cluster_name: pulumi.Input[str]
    cluster_security_group_id: pulumi.Input[str]
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    region: str
    capacity: Capacity
    node_tags: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class Karpenter(pulumi.ComponentResource):
    """Karpenter 1.14 and the platform's NodePools. Needs both an ``aws`` and a ``kubernetes``
    provider in ``opts.providers``."""

    def __init__(
        self, name: str, args: KarpenterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dask-platform:karpenter:Karpenter", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        account = account_id.account_id
        cluster = pulumi.Output.from_input(args.cluster_name)

        # ------------------------------------------------------------------ nodes' identity
        self.node_role = aws.iam.Role(
            f"{name}-node",
            assume_role_policy=json.dumps(render_policy("ec2-trust")),
            description="Nodes Karpenter launches (pods use IRSA, never this role)",
            tags=args.tags,
            opts=child,
        )
        for arn in NODE_MANAGED_POLICIES:
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{arn.rsplit('/', 1)[-1]}",
                role=self.node_role.name,
                policy_arn=arn,
                opts=child,
            )
        # Lets nodes with this role join the cluster (API authentication mode: no aws-auth).
        # ref: https://docs.aws.amazon.com/eks/latest/userguide/creating-access-entries.html
        self.node_access_entry = aws.eks.AccessEntry(
            f"{name}-node",
            cluster_name=args.cluster_name,
            principal_arn=self.node_role.arn,
            type="EC2_LINUX",
            tags=args.tags,
            opts=child,
        )
        # Karpenter's nodes join the cluster security group EKS created, found by this tag.
        aws.ec2.Tag(
            f"{name}-cluster-sg-discovery",
            resource_id=args.cluster_security_group_id,
            key=spec.DISCOVERY_TAG,
            value=args.cluster_name,
            opts=child,
        )

        # ------------------------------------------------------------------ interruption queue
        self.queue = aws.sqs.Queue(
            f"{name}-interruption",
            name=args.cluster_name,
            message_retention_seconds=QUEUE_RETENTION_SECONDS,
            sqs_managed_sse_enabled=True,
            tags=args.tags,
            opts=child,
        )
        aws.sqs.QueuePolicy(
            f"{name}-interruption",
            queue_url=self.queue.url,
            policy=self.queue.arn.apply(
                lambda arn: json.dumps(render_policy("karpenter-interruption-queue", queue_arn=arn))
            ),
            opts=child,
        )
        for rule_name, source, detail_type in INTERRUPTION_EVENTS:
            rule = aws.cloudwatch.EventRule(
                f"{name}-{rule_name}",
                description=f"{detail_type} to Karpenter's interruption queue",
                event_pattern=json.dumps({"source": [source], "detail-type": [detail_type]}),
                tags=args.tags,
                opts=child,
            )
            aws.cloudwatch.EventTarget(
                f"{name}-{rule_name}",
                rule=rule.name,
                target_id="KarpenterInterruptionQueueTarget",
                arn=self.queue.arn,
                opts=child,
            )

        # ------------------------------------------------------------------ controller's identity
        self.controller_role = aws.iam.Role(
            f"{name}-controller",
            assume_role_policy=pulumi.Output.all(
                args.oidc_provider_arn, args.oidc_issuer_url
            ).apply(
                lambda a: json.dumps(
                    render_policy(
                        "karpenter-controller-trust",
                        oidc_provider_arn=a[0],
                        oidc_issuer=issuer_host(a[1]),
                        namespace=spec.NAMESPACE,
                        service_account=spec.SERVICE_ACCOUNT,
                    )
                )
            ),
            description="The Karpenter controller (IRSA: kube-system/karpenter only)",
            tags=args.tags,
            opts=child,
        )
        values = pulumi.Output.all(account, cluster, self.node_role.arn, self.queue.arn)

        def document(policy_name: str) -> pulumi.Output[str]:
            return values.apply(
                lambda v: json.dumps(
                    _controller_policy(policy_name, args.region, v[0], v[1], v[2], v[3])
                )
            )

        for policy_name in CONTROLLER_POLICIES:
            policy = aws.iam.Policy(
                f"{name}-{policy_name.removeprefix('karpenter-')}",
                description=f"Karpenter controller: {policy_name} (Karpenter's reference IAM)",
                policy=document(policy_name),
                tags=args.tags,
                opts=child,
            )
            aws.iam.RolePolicyAttachment(
                f"{name}-{policy_name.removeprefix('karpenter-')}",
                role=self.controller_role.name,
                policy_arn=policy.arn,
                opts=child,
            )

        # ------------------------------------------------------------------ Helm releases
        crd_pin = chart_pin(spec.CRD_CHART)
        crds = k8s.helm.v3.Release(
            f"{name}-crd",
            name=spec.CRD_RELEASE,
            # An OCI chart is named by its full reference; Helm's repository lookup (repo=...)
            # fetches <repo>/index.yaml, which OCI registries do not serve.
            # ref: https://helm.sh/docs/topics/registries/
            chart=crd_pin.reference,
            version=crd_pin.version,
            namespace=spec.NAMESPACE,
            atomic=True,
            opts=child,
        )
        pin = chart_pin(spec.CHART)
        self.release = k8s.helm.v3.Release(
            f"{name}-controller",
            name=spec.RELEASE,
            chart=pin.reference,
            version=pin.version,
            namespace=spec.NAMESPACE,
            # The CRDs are the karpenter-crd release's, so chart upgrades update them too.
            skip_crds=True,
            atomic=True,
            values=pulumi.Output.all(cluster, self.queue.name, self.controller_role.arn).apply(
                lambda v: spec.controller_values(
                    cluster_name=v[0],
                    interruption_queue=v[1],
                    role_arn=v[2],
                    capacity=args.capacity,
                )
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[crds, self.node_access_entry]),
        )

        # ------------------------------------------------------------------ node class and pools
        after_controller = pulumi.ResourceOptions(parent=self, depends_on=[self.release])
        node_class = pulumi.Output.all(cluster, self.node_role.name).apply(
            lambda v: spec.ec2_node_class(
                cluster_name=v[0], node_role=v[1], capacity=args.capacity, tags=args.node_tags
            )
        )
        self.node_class = k8s.apiextensions.CustomResource(
            f"{name}-node-class",
            api_version=spec.NODE_CLASS_API,
            kind="EC2NodeClass",
            metadata={"name": spec.NODE_CLASS_NAME},
            spec=node_class.apply(lambda n: n["spec"]),
            opts=after_controller,
        )
        self.node_pools = {
            pool["metadata"]["name"]: k8s.apiextensions.CustomResource(
                f"{name}-{pool['metadata']['name']}",
                api_version=pool["apiVersion"],
                kind=pool["kind"],
                metadata=pool["metadata"],
                spec=pool["spec"],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.node_class]),
            )
            for pool in spec.node_pools(args.capacity)
        }

        self.interruption_queue = self.queue.name
        self.register_outputs(
            {
                "node_role_arn": self.node_role.arn,
                "controller_role_arn": self.controller_role.arn,
                "interruption_queue": self.interruption_queue,
                "node_pools": list(self.node_pools),
            }
        )


def _controller_policy(
    name: str, region: str, account_id: str, cluster_name: str, node_role_arn: str, queue_arn: str
) -> dict[str, object]:
    """One of the controller's documents with the placeholders it uses."""
    values = {
        "region": region,
        "account_id": account_id,
        "cluster_name": cluster_name,
        "node_role_arn": node_role_arn,
        "queue_arn": queue_arn,
    }
    wanted = placeholders(name)
    return render_policy(name, **{k: v for k, v in values.items() if k in wanted})
