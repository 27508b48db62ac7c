"""EKS: the control plane (KMS-encrypted secrets, all logs, restricted endpoint), the IAM OIDC
provider IRSA trusts, and managed node groups on launch templates that require IMDSv2."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.launch_templates import hardened_launch_template
from components.network import egress_anywhere
from dask_platform.config.models import Eks as EksConfig
from dask_platform.config.models import NodeGroup as NodeGroupConfig
from dask_platform.iam import render_policy
from dask_platform.placement import CORE_ROLE, NODE_ROLE_LABEL

# ref: https://docs.aws.amazon.com/eks/latest/userguide/create-node-role.html
NODE_MANAGED_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
)
CLUSTER_MANAGED_POLICY = "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"
# ref: https://docs.aws.amazon.com/eks/latest/userguide/access-policy-permissions.html
ACCESS_POLICIES = {
    "admin": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
    "view": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy",
}


@dataclass
class EksClusterArgs:
    cluster_name: str
    config: EksConfig
    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    private_subnet_ids: Sequence[pulumi.Input[str]]
    log_retention_days: int = 90
    tags: dict[str, str] = field(default_factory=dict)


class EksCluster(pulumi.ComponentResource):
    """The Kubernetes cluster the Dask Gateway runs on."""

    def __init__(
        self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dask-platform:eks:EksCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cfg = args.config

        # Envelope encryption of Kubernetes Secrets. The key policy is AWS's default (account
        # root administers the key); the cluster role's use is granted by an IAM policy scoped to
        # this key's ARN. ref: https://docs.aws.amazon.com/eks/latest/userguide/enable-kms.html
        self.kms_key = aws.kms.Key(
            f"{name}-secrets",
            description=f"EKS secrets envelope encryption for {args.cluster_name}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=args.tags,
            opts=child,
        )
        aws.kms.Alias(
            f"{name}-secrets",
            name=f"alias/{args.cluster_name}-eks-secrets",
            target_key_id=self.kms_key.key_id,
            opts=child,
        )

        self.cluster_role = aws.iam.Role(
            f"{name}-cluster",
            assume_role_policy=json.dumps(render_policy("eks-cluster-trust")),
            description=f"EKS control plane of {args.cluster_name}",
            tags=args.tags,
            opts=child,
        )
        cluster_policy = aws.iam.RolePolicyAttachment(
            f"{name}-cluster",
            role=self.cluster_role.name,
            policy_arn=CLUSTER_MANAGED_POLICY,
            opts=child,
        )
        kms_policy = aws.iam.RolePolicy(
            f"{name}-cluster-kms",
            role=self.cluster_role.id,
            policy=self.kms_key.arn.apply(
                lambda arn: json.dumps(render_policy("eks-secrets-kms", key_arn=arn))
            ),
            opts=child,
        )

        # Created here (not by EKS) so retention is ours: EKS would create it with no expiry.
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane",
            name=f"/aws/eks/{args.cluster_name}/cluster",
            retention_in_days=args.log_retention_days,
            tags=args.tags,
            opts=child,
        )

        # API access from inside the VPC (plus the operator networks, _operator_ingress); the
        # public endpoint, if any, is restricted by eks.endpoint.public_access_cidrs.
        self.control_plane_sg = aws.ec2.SecurityGroup(
            f"{name}-control-plane",
            vpc_id=args.vpc_id,
            description="EKS API from inside the VPC",
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    protocol="tcp",
                    from_port=443,
                    to_port=443,
                    cidr_blocks=[args.vpc_cidr],
                    description="Kubernetes API from the VPC",
                )
            ],
            egress=egress_anywhere("control plane to nodes and AWS APIs"),
            tags=args.tags,
            opts=child,
        )

        endpoint = cfg.endpoint
        public_cidrs = list(endpoint.public_access_cidrs) if endpoint.public_access else []
        self.cluster = aws.eks.Cluster(
            f"{name}-cluster",
            name=args.cluster_name,
            version=cfg.kubernetes_version,
            role_arn=self.cluster_role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=list(args.private_subnet_ids),
                security_group_ids=[self.control_plane_sg.id],
                endpoint_private_access=True,
                endpoint_public_access=endpoint.public_access,
                public_access_cidrs=public_cidrs or None,
            ),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=self.kms_key.arn),
                resources=["secrets"],
            ),
            enabled_cluster_log_types=list(cfg.control_plane_log_types),
            # Access entries only; the identity that happens to run the first `up` gets no
            # hidden admin grant (it would vanish with that identity). eks.access lists who may.
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API", bootstrap_cluster_creator_admin_permissions=False
            ),
            tags=args.tags,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[cluster_policy, kms_policy, self.log_group]
            ),
        )

        self.oidc_issuer_url: pulumi.Output[str] = self.cluster.identities.apply(
            lambda ids: str(ids[0].oidcs[0].issuer)  # type: ignore[index]
        )
        # The IAM identity provider every team role's trust policy names.
        # ref: https://docs.aws.amazon.com/eks/latest/userguide/enable-iam-roles-for-service-accounts.html
        self.oidc_provider = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=self.oidc_issuer_url,
            client_id_lists=["sts.amazonaws.com"],
            tags=args.tags,
            opts=child,
        )

        self.node_role = aws.iam.Role(
            f"{name}-node",
            assume_role_policy=json.dumps(render_policy("ec2-trust")),
            description=f"EKS nodes of {args.cluster_name} (pods use IRSA, never this role)",
            tags=args.tags,
            opts=child,
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{arn.rsplit('/', 1)[-1]}",
                role=self.node_role.name,
                policy_arn=arn,
                opts=child,
            )
            for arn in NODE_MANAGED_POLICIES
        ]

        self.node_groups: dict[str, aws.eks.NodeGroup] = {}
        self.launch_templates: dict[str, aws.ec2.LaunchTemplate] = {}
        # Only the on-demand core group is managed here; Dask schedulers and workers get nodes
        # from Karpenter's NodePools (components/karpenter.py).
        self._node_group(name, args, CORE_ROLE, cfg.node_groups.core, False, attachments)

        # What every Kubernetes resource of the platform needs first: a way in for Pulumi
        # (access entries, the operator network), the core nodes (where Karpenter and the
        # gateway run; Karpenter's own nodes come later, from its NodePools), and the managed
        # add-ons on them.
        self.operator_ingress = self._operator_ingress(name, args)
        self.access_associations = self._access_entries(name, args)
        self.addons = self._addons(name, args)
        self.kubernetes_prerequisites: list[pulumi.Resource] = [
            *self.operator_ingress,
            *self.access_associations,
            self.node_groups[CORE_ROLE],
            *self.addons.values(),
        ]

        self.cluster_name = self.cluster.name
        self.kubeconfig: pulumi.Output[str] = pulumi.Output.secret(  # type: ignore[arg-type]
            pulumi.Output.all(
                self.cluster.name, self.cluster.endpoint, self.cluster.certificate_authority.data
            ).apply(lambda a: kubeconfig(a[0], a[1], a[2]))
        )
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "oidc_provider_arn": self.oidc_provider.arn,
                "oidc_issuer_url": self.oidc_issuer_url,
                "kubeconfig": self.kubeconfig,
            }
        )

    # ----------------------------------------------------------------------- access path

    def _operator_ingress(
        self, name: str, args: EksClusterArgs
    ) -> list[aws.vpc.SecurityGroupIngressRule]:
        """The private endpoint's way in: the operators' VPN (and CI runner) networks may reach
        the control plane's ENIs on 443. EKS publishes the private endpoint's addresses in the
        public DNS name when public access is off, so a VPN client routed into the VPC resolves
        and reaches it.
        ref: https://docs.aws.amazon.com/eks/latest/userguide/cluster-endpoint.html
        ref: https://repost.aws/knowledge-center/eks-private-cluster-endpoint-vpc
        """
        return [
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-api-from-{cidr.replace('/', '-')}",
                security_group_id=self.control_plane_sg.id,
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                cidr_ipv4=cidr,
                description="Kubernetes API from the operators' network (eks.endpoint)",
                opts=pulumi.ResourceOptions(parent=self),
            )
            for cidr in args.config.endpoint.private_access_cidrs
        ]

    def _access_entries(
        self, name: str, args: EksClusterArgs
    ) -> list[aws.eks.AccessPolicyAssociation]:
        """One access entry per listed role, associated with the cluster-wide admin or view
        policy. ref: https://docs.aws.amazon.com/eks/latest/userguide/access-policy-permissions.html
        """
        associations = []
        grants = [(arn, "admin") for arn in args.config.access.admin_role_arns] + [
            (arn, "view") for arn in args.config.access.view_role_arns
        ]
        for arn, level in grants:
            label = f"{name}-{level}-{arn.rsplit('/', 1)[-1]}"
            entry = aws.eks.AccessEntry(
                label,
                cluster_name=self.cluster.name,
                principal_arn=arn,
                type="STANDARD",
                opts=pulumi.ResourceOptions(parent=self),
            )
            associations.append(
                aws.eks.AccessPolicyAssociation(
                    label,
                    cluster_name=self.cluster.name,
                    principal_arn=entry.principal_arn,
                    policy_arn=ACCESS_POLICIES[level],
                    access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[entry]),
                )
            )
        return associations

    # ----------------------------------------------------------------------- add-ons

    def _addons(self, name: str, args: EksClusterArgs) -> dict[str, aws.eks.Addon]:
        """vpc-cni, kube-proxy and coredns as EKS managed add-ons, so `pulumi up` upgrades them
        with the cluster. A version left unset in eks.addons is the newest EKS offers for the
        cluster's Kubernetes version. Workers use IRSA, so eks-pod-identity-agent is not
        installed. coredns runs as pods: it waits for nodes (else its create never finishes).
        ref: https://docs.aws.amazon.com/eks/latest/userguide/workloads-add-ons-available-eks.html
        """
        versions = args.config.addons
        addons: dict[str, aws.eks.Addon] = {}
        for addon, configured in (
            ("vpc-cni", versions.vpc_cni),
            ("kube-proxy", versions.kube_proxy),
            ("coredns", versions.coredns),
        ):
            version: pulumi.Input[str] = (
                configured
                or aws.eks.get_addon_version_output(
                    addon_name=addon,
                    kubernetes_version=args.config.kubernetes_version,
                    most_recent=True,
                    opts=pulumi.InvokeOptions(parent=self),
                ).version
            )
            after_nodes = [self.node_groups[CORE_ROLE]] if addon == "coredns" else []
            addons[addon] = aws.eks.Addon(
                f"{name}-{addon}",
                cluster_name=self.cluster.name,
                addon_name=addon,
                addon_version=version,
                # Take over the self-managed copy EKS installed at creation; keep settings
                # someone changed on a later update (a re-apply of the version is then a no-op).
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="PRESERVE",
                tags=args.tags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=after_nodes),
            )
        return addons

    def _node_group(
        self,
        name: str,
        args: EksClusterArgs,
        role: str,
        group: NodeGroupConfig,
        spot: bool,
        attachments: list[aws.iam.RolePolicyAttachment],
    ) -> None:
        child = pulumi.ResourceOptions(parent=self)
        template = hardened_launch_template(
            f"{name}-{role}",
            description=f"{args.cluster_name} {role} nodes",
            disk_size_gib=group.disk_size_gib,
            instance_name=f"{args.cluster_name}-{role}",
            tags=args.tags,
            opts=child,
        )
        self.launch_templates[role] = template
        self.node_groups[role] = aws.eks.NodeGroup(
            f"{name}-{role}",
            cluster_name=self.cluster.name,
            node_role_arn=self.node_role.arn,
            subnet_ids=list(args.private_subnet_ids),
            capacity_type="SPOT" if spot else "ON_DEMAND",
            instance_types=list(group.instance_types),
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=group.min_size,
                max_size=group.max_size,
                desired_size=group.desired_size
                if group.desired_size is not None
                else group.min_size,
            ),
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=template.id, version=template.latest_version.apply(str)
            ),
            labels={NODE_ROLE_LABEL: role},
            tags=args.tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=attachments,
                # Scaling the core group is an operator's change of min/max; desired_size is
                # left to whoever scaled it last.
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )


def kubeconfig(cluster_name: str, endpoint: str, ca_data: str) -> str:
    """A kubeconfig that authenticates with `aws eks get-token` (no static token in it)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": cluster_name,
                    "cluster": {"server": endpoint, "certificate-authority-data": ca_data},
                }
            ],
            "contexts": [
                {"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}
            ],
            "current-context": cluster_name,
            "users": [
                {
                    "name": cluster_name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": ["eks", "get-token", "--cluster-name", cluster_name],
                        }
                    },
                }
            ],
        }
    )
