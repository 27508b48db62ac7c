"""Network: the VPC, public + private subnets across AZs, NAT, and a locked-down default SG."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws


@dataclass
class NetworkArgs:
    vpc_cidr: str
    availability_zones: Sequence[str]
    cluster_name: str
    region: str  # for the S3 endpoint's service name
    single_nat_gateway: bool = False
    tags: dict[str, str] = field(default_factory=dict)


def subnet_blocks(vpc_cidr: str, zones: int) -> tuple[list[str], list[str]]:
    """(private, public) CIDRs: the VPC split in 16; private blocks first, public from the top half.

    Deterministic from the config, so a plan shows literal CIDRs a reviewer can check.
    """
    network = ipaddress.IPv4Network(vpc_cidr)
    blocks = list(network.subnets(new_prefix=network.prefixlen + 4))
    return [str(b) for b in blocks[:zones]], [str(b) for b in blocks[8 : 8 + zones]]


def egress_anywhere(description: str) -> list[aws.ec2.SecurityGroupEgressArgs]:
    """A security group's ``egress``: every protocol to any IPv4 address (``description``
    says what needs it). Private subnets reach the internet only through the NAT gateways.

    ref: https://docs.aws.amazon.com/vpc/latest/userguide/security-group-rules.html
    """
    return [
        aws.ec2.SecurityGroupEgressArgs(
            protocol="-1",
            from_port=0,
            to_port=0,
            cidr_blocks=["0.0.0.0/0"],
            description=description,
        )
    ]


class Network(pulumi.ComponentResource):
    """VPC for the EKS cluster and the ECS/EC2 Dask clusters. Workloads sit in private subnets;
    public subnets hold only NAT gateways (and load balancers, when the config opens one); S3
    is reached through a gateway endpoint."""

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dask-platform:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cluster_tag = {f"kubernetes.io/cluster/{args.cluster_name}": "shared"}

        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**args.tags, "Name": f"{name}-vpc"},
            opts=child,
        )
        # The default SG is attached to anything created without one; strip all its rules so
        # that an oversight fails closed. ref: CIS AWS Foundations 5.4
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg", vpc_id=self.vpc.id, ingress=[], egress=[], opts=child
        )
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=self.vpc.id, tags={**args.tags, "Name": f"{name}-igw"}, opts=child
        )
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=self.vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={**args.tags, "Name": f"{name}-public"},
            opts=child,
        )

        private_cidrs, public_cidrs = subnet_blocks(args.vpc_cidr, len(args.availability_zones))
        self.public_subnets: list[aws.ec2.Subnet] = []
        self.private_subnets: list[aws.ec2.Subnet] = []
        nat_gateways: list[aws.ec2.NatGateway] = []
        for index, zone in enumerate(args.availability_zones):
            public = aws.ec2.Subnet(
                f"{name}-public-{zone}",
                vpc_id=self.vpc.id,
                cidr_block=public_cidrs[index],
                availability_zone=zone,
                # Nothing launched here gets a public address unless it asks explicitly.
                map_public_ip_on_launch=False,
                tags={
                    **args.tags,
                    **cluster_tag,
                    "Name": f"{name}-public-{zone}",
                    "kubernetes.io/role/elb": "1",
                },
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{zone}",
                subnet_id=public.id,
                route_table_id=public_rt.id,
                opts=child,
            )
            self.public_subnets.append(public)
            if index == 0 or not args.single_nat_gateway:
                # A NAT gateway (and its address) only works once the VPC has an attached
                # internet gateway; nothing in their inputs says so, so say it explicitly.
                # ref: https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/nat_gateway
                after_igw = pulumi.ResourceOptions(parent=self, depends_on=[igw])
                eip = aws.ec2.Eip(
                    f"{name}-nat-{zone}", domain="vpc", tags=args.tags, opts=after_igw
                )
                nat_gateways.append(
                    aws.ec2.NatGateway(
                        f"{name}-nat-{zone}",
                        allocation_id=eip.id,
                        subnet_id=public.id,
                        tags={**args.tags, "Name": f"{name}-nat-{zone}"},
                        opts=after_igw,
                    )
                )

        private_route_tables: list[aws.ec2.RouteTable] = []
        for index, zone in enumerate(args.availability_zones):
            private = aws.ec2.Subnet(
                f"{name}-private-{zone}",
                vpc_id=self.vpc.id,
                cidr_block=private_cidrs[index],
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={
                    **args.tags,
                    **cluster_tag,
                    "Name": f"{name}-private-{zone}",
                    "kubernetes.io/role/internal-elb": "1",
                    # Karpenter launches nodes into the subnets carrying this tag.
                    # ref: https://karpenter.sh/docs/concepts/nodeclasses/#specsubnetselectorterms
                    "karpenter.sh/discovery": args.cluster_name,
                },
                opts=child,
            )
            nat = nat_gateways[min(index, len(nat_gateways) - 1)]
            route_table = aws.ec2.RouteTable(
                f"{name}-private-{zone}",
                vpc_id=self.vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
                tags={**args.tags, "Name": f"{name}-private-{zone}"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{zone}",
                subnet_id=private.id,
                route_table_id=route_table.id,
                opts=child,
            )
            self.private_subnets.append(private)
            private_route_tables.append(route_table)

        # S3 from the private subnets without the NAT gateways (no per-GB NAT charge on scratch
        # and data traffic; the route is more specific than 0.0.0.0/0, so it wins).
        # ref: https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-s3.html
        self.s3_endpoint = aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=self.vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[table.id for table in private_route_tables],
            tags={**args.tags, "Name": f"{name}-s3"},
            opts=child,
        )

        self.vpc_id = self.vpc.id
        self.private_subnet_ids = [s.id for s in self.private_subnets]
        self.public_subnet_ids = [s.id for s in self.public_subnets]
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "public_subnet_ids": self.public_subnet_ids,
            }
        )
