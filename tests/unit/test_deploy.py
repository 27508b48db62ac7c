"""What the first `pulumi up` on a fresh account needs (issue 13), evaluated under Pulumi mocks
for EVERY committed stack: a way into the Kubernetes API (access entries, the operator network),
a network that comes up in order (NAT after the internet gateway, S3 without NAT), managed
add-ons, a supported Kubernetes version, images from the bootstrap stack, one owner of the
account's IMDS defaults, and a dependency graph that puts all of it before any Kubernetes
resource."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from dask_platform.config.errors import StackConfigError
from dask_platform.config.models import DOCUMENTATION_RANGES
from dask_platform.config.rules import regional_owner_problems
from dask_platform.config.sources import load_stack_file
from dask_platform.config.types import EKS_STANDARD_SUPPORT
from dask_platform.pulumi_mocks import Evaluation, RecordingMocks

from ..programs import declared, run_program
from .conftest import BOOTSTRAP, REPO, STACKS, evaluated, evaluated_bootstrap

CLUSTER = "aws:eks/cluster:Cluster"
ACCESS_ENTRY = "aws:eks/accessEntry:AccessEntry"
ASSOCIATION = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
ADDON = "aws:eks/addon:Addon"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
ADMIN = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
VIEW = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"


def by_urn(evaluation: Evaluation):
    return evaluation.by_urn()


def urn_of(evaluation: Evaluation, type_: str, name: str) -> str:
    (match,) = [r for r in evaluation.resources if r.type == type_ and r.name == name]
    assert match.urn
    return match.urn


# --------------------------------------------------------------------------- access


def test_the_creator_gets_no_hidden_admin(evaluation):
    (cluster,) = evaluation.of_type(CLUSTER)
    assert cluster.inputs["accessConfig"] == {
        "authenticationMode": "API",
        "bootstrapClusterCreatorAdminPermissions": False,
    }


def test_every_listed_role_has_an_access_entry_with_its_policy(evaluation, config):
    all_entries = evaluation.of_type(ACCESS_ENTRY)
    entries = {e.inputs["principalArn"]: e for e in all_entries if e.inputs["type"] == "STANDARD"}
    expected = {arn: ADMIN for arn in config.eks.access.admin_role_arns} | {
        arn: VIEW for arn in config.eks.access.view_role_arns
    }
    assert set(entries) == set(expected)
    # The only other entry lets Karpenter's nodes join (EC2_LINUX, no access policy).
    (node_entry,) = [e for e in all_entries if e.inputs["type"] != "STANDARD"]
    assert node_entry.name == "karpenter-node"
    assert node_entry.inputs["type"] == "EC2_LINUX"
    roles = evaluation.of_type("aws:iam/role:Role")
    (node_role,) = [r for r in roles if r.name == "karpenter-node"]
    assert node_entry.inputs["principalArn"] == node_role.outputs["arn"]
    associations = evaluation.of_type(ASSOCIATION)
    assert {a.inputs["principalArn"]: a.inputs["policyArn"] for a in associations} == expected
    for association in associations:
        assert association.inputs["accessScope"] == {"type": "cluster"}
        assert association.inputs["clusterName"] == f"dask-{evaluation.stack}"
        # The association is made after its entry exists.
        entry = entries[association.inputs["principalArn"]]
        assert entry.urn in association.dependencies


def test_committed_admins_are_roles_of_the_stacks_own_account(config):
    assert config.eks.access.admin_role_arns, "someone must be able to administer the cluster"
    for arn in config.eks.access.admin_role_arns:
        assert arn.startswith(f"arn:aws:iam::{config.account_id}:role/")


def test_the_private_endpoint_admits_the_operator_network(evaluation, config):
    """A private endpoint is useless from outside the VPC unless the control-plane security
    group admits the operators' VPN: one 443 rule per configured network, on that group."""
    (cluster,) = evaluation.of_type(CLUSTER)
    vpc = cluster.inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is config.eks.endpoint.public_access
    rules = [r for r in evaluation.of_type(INGRESS_RULE) if r.name.startswith("eks-api-from-")]
    assert sorted(r.inputs["cidrIpv4"] for r in rules) == sorted(
        config.eks.endpoint.private_access_cidrs
    )
    (group_id,) = vpc["securityGroupIds"]
    for rule in rules:
        assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (443, 443)
        assert rule.inputs["ipProtocol"] == "tcp"
        assert rule.inputs["securityGroupId"] == group_id
    if not config.eks.endpoint.public_access:
        assert rules, "a private endpoint needs an operator network"


def test_no_committed_endpoint_cidr_is_a_documentation_range(config):
    endpoint = config.eks.endpoint
    for cidr in [*endpoint.public_access_cidrs, *endpoint.private_access_cidrs]:
        network = ipaddress.IPv4Network(cidr)
        assert not any(network.overlaps(d) for d in DOCUMENTATION_RANGES), cidr


# --------------------------------------------------------------------------- network


def test_nat_gateways_and_their_addresses_wait_for_the_internet_gateway(evaluation):
    igw = urn_of(evaluation, "aws:ec2/internetGateway:InternetGateway", "network-igw")
    nats = evaluation.of_type("aws:ec2/natGateway:NatGateway")
    eips = evaluation.of_type("aws:ec2/eip:Eip")
    assert nats
    assert len(eips) == len(nats)
    for resource in [*nats, *eips]:
        assert igw in resource.dependencies, resource.name


def test_s3_gateway_endpoint_on_every_private_route_table(evaluation, config):
    (endpoint,) = evaluation.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert endpoint.inputs["serviceName"] == f"com.amazonaws.{config.region}.s3"
    assert endpoint.inputs["vpcEndpointType"] == "Gateway"
    private_tables = {
        f"{t.name}-id"
        for t in evaluation.of_type("aws:ec2/routeTable:RouteTable")
        if "-private-" in t.name
    }
    assert len(private_tables) == len(config.network.availability_zones)
    assert set(endpoint.inputs["routeTableIds"]) == private_tables


# --------------------------------------------------------------------------- add-ons, version


def test_managed_addons_for_the_cluster_version(evaluation, config):
    addons = {a.inputs["addonName"]: a for a in evaluation.of_type(ADDON)}
    # IRSA everywhere, no Pod Identity: so no eks-pod-identity-agent.
    assert sorted(addons) == ["coredns", "kube-proxy", "vpc-cni"]
    for name, addon in addons.items():
        assert addon.inputs["clusterName"] == f"dask-{evaluation.stack}"
        assert addon.inputs["resolveConflictsOnCreate"] == "OVERWRITE"
        configured = getattr(config.eks.addons, name.replace("-", "_"))
        # Unset in config: what aws.eks.get_addon_version answers for this Kubernetes version
        # (the mocks' call() answers it, naming the version it was asked about).
        assert addon.inputs["addonVersion"] == (
            configured
            or f"newest {name} for Kubernetes {config.eks.kubernetes_version} (resolved at up)"
        )
    # coredns runs as pods: it can only become ACTIVE once there are nodes.
    groups = {g.urn for g in evaluation.of_type(NODE_GROUP)}
    assert groups
    assert groups <= set(addons["coredns"].dependencies)


def test_committed_stacks_run_a_version_in_standard_support(config):
    assert config.eks.kubernetes_version in EKS_STANDARD_SUPPORT
    (cluster_version,) = [config.eks.kubernetes_version]
    # The newest listed version: a fresh cluster starts with the longest support ahead.
    assert cluster_version == max(EKS_STANDARD_SUPPORT, key=lambda v: tuple(map(int, v.split("."))))


def test_the_support_calendar_is_dated_and_excludes_expired_versions():
    for version, end in EKS_STANDARD_SUPPORT.items():
        assert end > "2026-11-30", f"{version}'s standard support ended {end}"
    assert "1.28" not in EKS_STANDARD_SUPPORT
    assert "1.33" not in EKS_STANDARD_SUPPORT


# --------------------------------------------------------------------------- ownership


def test_one_owner_of_the_imds_defaults_per_account_and_region():
    stacks = {
        s: {
            k.split(":", 1)[1]: v
            for k, v in yaml.safe_load((REPO / f"Pulumi.{s}.yaml").read_text())["config"].items()
        }
        for s in STACKS
    }
    assert regional_owner_problems(stacks) == []


def _stack(account: str, owns: bool) -> dict:
    return {"account_id": account, "region": "us-west-2", "ecs": {"imdsv2_account_default": owns}}


@pytest.mark.parametrize(
    ("stacks", "expected"),
    [
        (
            {"dev": _stack("111122223333", True), "prod": _stack("111122223333", True)},
            "stacks dev, prod all own the instance metadata defaults of account 111122223333",
        ),
        (
            {"dev": _stack("111122223333", False), "prod": _stack("111122223333", False)},
            "no stack of dev, prod owns the instance metadata defaults",
        ),
    ],
    ids=["two-owners", "no-owner"],
)
def test_shared_account_ownership_is_a_config_error(stacks, expected):
    (problem,) = regional_owner_problems(stacks)
    assert expected in problem
    assert problem.startswith("ecs.imdsv2_account_default: ")


def test_a_second_owner_in_the_same_account_fails_to_load(tmp_path: Path):
    """dev moved into prod's account while still owning the defaults: loading either stack is a
    config error naming the key (the program loads the same way, before any resource)."""
    for stack in STACKS:
        (tmp_path / f"Pulumi.{stack}.yaml").write_text((REPO / f"Pulumi.{stack}.yaml").read_text())
    dev = tmp_path / "Pulumi.dev.yaml"
    prod_account = load_stack_file(REPO, "prod").account_id
    text = dev.read_text().replace(
        f'account_id: "{load_stack_file(REPO, "dev").account_id}"', f'account_id: "{prod_account}"'
    )
    dev.write_text(text)
    with pytest.raises(StackConfigError) as caught:
        load_stack_file(tmp_path, "dev")
    assert any("all own the instance metadata defaults" in p for p in caught.value.problems)


# --------------------------------------------------------------------------- ordering


def _is_kubernetes(resource) -> bool:
    return resource.type.startswith("kubernetes:")


# Karpenter's Kubernetes objects: its two Helm releases, the EC2NodeClass and the NodePools.
KARPENTER_RELEASES = {"karpenter-crd", "karpenter"}
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
RELEASE = "kubernetes:helm.sh/v3:Release"


def _karpenter_kubernetes(evaluation: Evaluation) -> list:
    releases = [r for r in evaluation.of_type(RELEASE) if r.inputs["name"] in KARPENTER_RELEASES]
    return [*releases, *evaluation.of_type(NODE_CLASS), *evaluation.of_type(NODE_POOL)]


def test_kubernetes_resources_come_after_capacity_addons_and_access(evaluation, config):
    """From the recorded dependency graph (depends_on, input dependencies, and each resource's
    provider): before the engine creates any Kubernetes object it has created the nodes, every
    managed add-on, every access entry's policy association and the operator-network rule."""
    kubernetes = [r for r in evaluation.resources if _is_kubernetes(r)]
    assert kubernetes
    required = {
        r.urn
        for r in evaluation.resources
        if r.type in (NODE_GROUP, ADDON, ASSOCIATION)
        or (r.type == INGRESS_RULE and r.name.startswith("eks-api-from-"))
    }
    assert {evaluation.by_urn()[u].type for u in required} >= {NODE_GROUP, ADDON, ASSOCIATION}
    # Only the core group is managed (Dask's nodes come from Karpenter); it is among them.
    (core,) = evaluation.of_type(NODE_GROUP)
    assert core.name == "eks-core"
    assert core.urn in required
    # Karpenter's releases and NodePools are among the Kubernetes resources checked.
    karpenter = _karpenter_kubernetes(evaluation)
    assert {r.inputs["name"] for r in karpenter if r.type == RELEASE} == KARPENTER_RELEASES
    assert {r.inputs["metadata"]["name"] for r in karpenter if r.type == NODE_POOL} == {
        "dask-workers",
        "dask-schedulers",
    }
    assert len([r for r in karpenter if r.type == NODE_CLASS]) == 1
    assert {r.urn for r in karpenter} <= {r.urn for r in kubernetes}
    for resource in kubernetes:
        missing = required - evaluation.prerequisites(resource)
        assert not missing, f"{resource.name} may start before {sorted(missing)}"


def test_karpenter_goes_through_the_waiting_kubernetes_provider(evaluation):
    """Karpenter's Kubernetes objects use the one Kubernetes provider (the one that waits on the
    cluster's prerequisites); its IAM roles, policies, SQS queue and EventBridge rules are AWS
    resources on the AWS provider, which wait for nothing of Kubernetes."""
    (provider,) = [r for r in evaluation.resources if r.type == "pulumi:providers:kubernetes"]
    karpenter = _karpenter_kubernetes(evaluation)
    assert len(karpenter) == 5
    for resource in karpenter:
        assert resource.provider is not None
        assert resource.provider.rsplit("::", 1)[0] == provider.urn, resource.name
    aws_side = [
        r
        for r in evaluation.resources
        if r.name.startswith("karpenter-") and r.type.startswith(("aws:iam/", "aws:sqs/"))
    ]
    assert {r.type for r in aws_side} >= {
        "aws:iam/role:Role",
        "aws:iam/policy:Policy",
        "aws:sqs/queue:Queue",
        "aws:sqs/queuePolicy:QueuePolicy",
    }
    index = evaluation.by_urn()
    for resource in aws_side:
        assert resource.provider is not None
        assert index[resource.provider.rsplit("::", 1)[0]].type == "pulumi:providers:aws"
        needed = {index[u].type for u in evaluation.prerequisites(resource) if u in index}
        assert not any(t.startswith("kubernetes:") for t in needed), resource.name


def test_no_kubernetes_resource_needs_what_only_the_bootstrap_stack_creates(evaluation):
    """The bootstrap stack is applied before this one; nothing of this stack waits for (or
    creates) a resource of the kinds the bootstrap stack owns - it only reads its outputs."""
    bootstrap_only = {r.type for r in evaluated_bootstrap("prod").resources if not r.read} - {
        "pulumi:providers:aws",
        "pulumi:pulumi:Stack",
    }
    assert "aws:ecr/repository:Repository" in bootstrap_only
    assert not [r.name for r in evaluation.resources if r.type in bootstrap_only and not r.read]
    index = evaluation.by_urn()
    for resource in evaluation.resources:
        if _is_kubernetes(resource):
            needed = {index[u].type for u in evaluation.prerequisites(resource) if u in index}
            assert not needed & bootstrap_only, resource.name


def test_the_ordering_check_catches_a_provider_without_prerequisites(evaluation):
    """The check above fails on the program as it was: a Kubernetes provider built from the
    kubeconfig alone waits for the cluster, not for nodes, add-ons or access."""
    import dataclasses

    (provider,) = [r for r in evaluation.resources if r.type == "pulumi:providers:kubernetes"]
    cluster = evaluation.of_type(CLUSTER)[0]
    stripped = dataclasses.replace(provider, dependencies=(cluster.urn,))
    broken = Evaluation(
        stack=evaluation.stack,
        resources=[stripped if r is provider else r for r in evaluation.resources],
    )
    addons = {a.urn for a in broken.of_type(ADDON)}
    (gateway,) = [r for r in broken.of_type(RELEASE) if r.inputs["name"] == "dask-gateway"]
    # Karpenter's objects too: the NodePools would race the add-ons and the core nodes.
    for resource in [gateway, *_karpenter_kubernetes(broken)]:
        assert not addons <= broken.prerequisites(resource), resource.name


# ------------------------------------------------ docs/how-to/deploy.md, docs/reference/outputs.md


DEPLOY_DOC = REPO / "docs" / "how-to" / "deploy.md"
OUTPUTS_DOC = REPO / "docs" / "reference" / "outputs.md"


def test_deploy_doc_names_every_export(stack):
    """docs/reference/outputs.md lists what each stack exports: every output of the evaluated
    platform stack (ecs_gpu's keys too) and of the bootstrap stack."""
    text = OUTPUTS_DOC.read_text()
    outputs = evaluated(stack).outputs
    missing = [name for name in outputs if f"`{name}`" not in text]
    gpu = outputs.get("ecs_gpu") or {}
    missing += [f"ecs_gpu.{k}" for k in gpu if f"`{k}`" not in text and k not in ("image",)]
    missing += [name for name in evaluated_bootstrap("prod").outputs if f"`{name}`" not in text]
    assert missing == []


def test_deploy_doc_commands_exist():
    """Every `dask-platform` command the how-to runs is a command of the CLI with those
    options."""
    import re
    import shlex

    from typer.testing import CliRunner

    from dask_platform.cli import app

    runner = CliRunner()
    text = DEPLOY_DOC.read_text()
    lines = re.findall(
        r"dask-platform ([a-z-]+(?: [a-z-]+)?)((?: --?[a-z-]+(?: [^\s-][^\s]*)?)*)", text
    )
    assert len(lines) >= 6
    for command, options in lines:
        words = command.split()
        result = runner.invoke(app, [*words, "--help"])
        if result.exit_code != 0:  # a one-word command followed by an argument
            words = words[:1]
            result = runner.invoke(app, [*words, "--help"])
        assert result.exit_code == 0, (command, result.output)
        for option in re.findall(r"--[a-z-]+", options):
            assert option in result.output, (command, option)
        assert shlex.split(options) is not None


def test_deploy_doc_order_matches_the_projects():
    text = DEPLOY_DOC.read_text()
    assert text.index("## 3. Apply the bootstrap stack") < text.index("## 4. Build and push")
    assert text.index("## 4. Build and push") < text.index("## 6. Apply the platform stack")
    assert text.index("## 6. Apply the platform stack") < text.index("## 8. Verify the workers")
    for stack in STACKS:
        assert f"`{load_stack_file(REPO, stack).eks.endpoint.private_access_cidrs[0]}`" in text


@pytest.mark.parametrize("stack", STACKS)
def test_the_program_refuses_credentials_of_another_account(stack):
    """`up` with credentials of an account the stack does not name fails before it declares
    anything there; with the named account's it goes ahead."""
    from dask_platform.bootstrap_config import split_stack_name

    config = load_stack_file(REPO, stack)
    assert config.images.bootstrap_stack is not None
    bootstrap = evaluated_bootstrap(split_stack_name(config.images.bootstrap_stack)[2])

    def credentials_of(account: str) -> RecordingMocks:
        return RecordingMocks(
            config.region,
            account_id=account,
            stack_outputs={config.images.bootstrap_stack: bootstrap.outputs},
        )

    with pytest.raises(
        ValueError,
        match=rf"account_id: this stack deploys to account {config.account_id}, "
        "but the credentials are for account 999999999999",
    ):
        run_program(REPO, stack, credentials_of("999999999999"))
    recording = credentials_of(config.account_id)
    run_program(REPO, stack, recording)
    assert len(declared(recording)) > 50


def test_the_bootstrap_program_refuses_credentials_of_another_account():
    with pytest.raises(
        ValueError,
        match=r"account_id: this stack deploys to account \d{12}, "
        "but the credentials are for account 999999999999",
    ):
        run_program(BOOTSTRAP, "prod", RecordingMocks("us-west-2", account_id="999999999999"))
