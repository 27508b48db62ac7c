"""The Pulumi program, evaluated under mocks for EVERY committed stack.

These assert the security properties of what `pulumi up` would create: exact IRSA trust, no
keys, IMDSv2 hop limit 1, scratch lifecycle and public-access blocks, ServiceAccount-to-role
binding, the pinned chart and its schema-valid values.
"""

from __future__ import annotations

import ipaddress
import re

import pytest

from dask_platform.charts import values_schema_problems
from dask_platform.iam import (
    TEAM_ROLE_MAX_SESSION_SECONDS,
    issuer_host,
    shared_data_policy,
    team_scratch_policy,
)
from dask_platform.local.config import LocalSettings

from .conftest import document

S3 = "aws:s3"


def gateway_release(evaluation):
    (release,) = [
        r
        for r in evaluation.of_type("kubernetes:helm.sh/v3:Release")
        if r.inputs["chart"] == "dask-gateway"
    ]
    return release


def team_roles(evaluation):
    return {
        r.name.removeprefix("team-").removesuffix("-irsa"): r
        for r in evaluation.of_type("aws:iam/role:Role")
        if r.name.startswith("team-") and r.name.endswith("-irsa")
    }


def test_one_irsa_role_per_team(evaluation, config):
    assert sorted(team_roles(evaluation)) == sorted(config.team_names)


def test_team_role_sessions_last_the_declared_maximum(evaluation, config):
    """Every role a team's workers run as (IRSA, ECS task, EC2 instance) has the one declared
    MaxSessionDuration, and the local platform's STS sessions may not outlast it."""
    roles = [
        r
        for r in evaluation.of_type("aws:iam/role:Role")
        if any(f"-{team}-" in f"-{r.name}-" for team in config.team_names)
    ]
    assert len(roles) >= len(config.team_names)
    assert {r.name: r.inputs["maxSessionDuration"] for r in roles} == {r.name: 3600 for r in roles}
    assert TEAM_ROLE_MAX_SESSION_SECONDS == 3600
    field = LocalSettings.model_fields["web_identity_session_seconds"]
    assert field.default == TEAM_ROLE_MAX_SESSION_SECONDS
    assert {"le": TEAM_ROLE_MAX_SESSION_SECONDS} in [
        {"le": m.le} for m in field.metadata if hasattr(m, "le")
    ]


def test_irsa_trust_is_exact(evaluation, config):
    issuer = issuer_host(evaluation.outputs["oidc_issuer_url"])
    provider_arn = evaluation.outputs["oidc_provider_arn"]
    assert provider_arn.endswith(f":oidc-provider/{issuer}")
    for team, role in team_roles(evaluation).items():
        trust = document(role.inputs["assumeRolePolicy"])
        (statement,) = trust["Statement"]
        assert statement["Effect"] == "Allow"
        assert statement["Principal"] == {"Federated": provider_arn}
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        # Exactly one operator, StringEquals, with exactly the two keys: no StringLike, no
        # wildcard, no other service account of the namespace.
        assert statement["Condition"] == {
            "StringEquals": {
                f"{issuer}:sub": f"system:serviceaccount:{config.gateway.namespace}:dask-{team}",
                f"{issuer}:aud": "sts.amazonaws.com",
            }
        }


def test_team_roles_get_exactly_their_scope(evaluation, config):
    """The IRSA role's attached policies are exactly the team's scratch (+ shared data) docs."""
    policies = {
        p.name: document(p.inputs["policy"]) for p in evaluation.of_type("aws:iam/policy:Policy")
    }
    attachments = evaluation.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    data = [b.name for b in config.data_buckets]
    for team in config.team_names:
        attached = sorted(
            a.inputs["policyArn"].rsplit("/", 1)[-1]
            for a in attachments
            if a.inputs["role"] == f"team-{team}-irsa"
        )
        expected = [f"team-{team}-scratch"] + ([f"team-{team}-shared-data"] if data else [])
        assert attached == sorted(expected)
        assert policies[f"team-{team}-scratch"] == team_scratch_policy(
            config.scratch.bucket_name, team
        )
        if data:
            assert policies[f"team-{team}-shared-data"] == shared_data_policy(data)


def test_scratch_policy_is_limited_to_the_team_prefix(evaluation, config):
    bucket = config.scratch.bucket_name
    for team in config.team_names:
        policy = next(
            document(p.inputs["policy"])
            for p in evaluation.of_type("aws:iam/policy:Policy")
            if p.name == f"team-{team}-scratch"
        )
        list_statement, object_statement = policy["Statement"]
        assert list_statement["Action"] == "s3:ListBucket"
        assert list_statement["Resource"] == f"arn:aws:s3:::{bucket}"
        assert list_statement["Condition"] == {
            "StringLike": {"s3:prefix": [f"{team}/", f"{team}/*"]}
        }
        assert object_statement["Resource"] == f"arn:aws:s3:::{bucket}/{team}/*"
        assert "s3:DeleteObject" in object_statement["Action"]
        assert not any("*" in a for a in object_statement["Action"])


def test_no_long_lived_credentials(evaluation):
    forbidden = {
        "aws:iam/accessKey:AccessKey",
        "aws:iam/userLoginProfile:UserLoginProfile",
        "aws:iam/user:User",
        "aws:iam/serviceSpecificCredential:ServiceSpecificCredential",
    }
    assert not [r.name for r in evaluation.resources if r.type in forbidden]


def test_every_launch_template_requires_imdsv2_hop_limit_one(evaluation):
    templates = evaluation.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    assert templates
    for template in templates:
        metadata = template.inputs["metadataOptions"]
        assert metadata["httpTokens"] == "required", template.name
        assert metadata["httpPutResponseHopLimit"] == 1, template.name
        assert metadata["httpEndpoint"] == "enabled"


def test_only_the_core_node_group_is_managed(evaluation):
    """Dask schedulers and workers get nodes from Karpenter; the one managed group is the
    on-demand core group on its hardened launch template."""
    (group,) = evaluation.of_type("aws:eks/nodeGroup:NodeGroup")
    assert group.name == "eks-core"
    assert group.inputs["capacityType"] == "ON_DEMAND"
    assert "taints" not in group.inputs
    assert group.inputs["launchTemplate"]["id"] == "eks-core-id"
    assert group.inputs["labels"] == {"dask-platform/node-role": "core"}
    assert "scalingConfig.desiredSize" in group.ignore_changes


def test_scratch_lifecycle(evaluation, config):
    (lifecycle,) = evaluation.of_type(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
    )
    assert lifecycle.inputs["bucket"] == config.scratch.bucket_name
    rules = {r["id"]: r for r in lifecycle.inputs["rules"]}
    assert rules["expire-scratch"]["expiration"] == {"days": config.scratch.retention_days}
    assert rules["expire-scratch"]["filter"] == {"prefix": ""}
    assert rules["abort-incomplete-multipart-uploads"]["abortIncompleteMultipartUpload"] == {
        "daysAfterInitiation": 1
    }
    assert all(r["status"] == "Enabled" for r in rules.values())


def test_one_prefix_per_team(evaluation, config):
    markers = evaluation.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
    assert sorted(m.inputs["key"] for m in markers) == sorted(f"{t}/" for t in config.team_names)


def test_every_bucket_has_all_companions(evaluation):
    buckets = {b.outputs["bucket"] for b in evaluation.of_type(f"{S3}/bucket:Bucket")}
    assert buckets

    def companions(kind):
        return {c.inputs["bucket"]: c for c in evaluation.of_type(kind)}

    blocks = companions(f"{S3}/bucketPublicAccessBlock:BucketPublicAccessBlock")
    encryption = companions(
        f"{S3}/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    ownership = companions(f"{S3}/bucketOwnershipControls:BucketOwnershipControls")
    policies = companions(f"{S3}/bucketPolicy:BucketPolicy")
    for bucket in buckets:
        block = blocks[bucket].inputs
        assert [
            block[k]
            for k in (
                "blockPublicAcls",
                "blockPublicPolicy",
                "ignorePublicAcls",
                "restrictPublicBuckets",
            )
        ] == [True, True, True, True]
        rule = encryption[bucket].inputs["rules"][0]
        assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
        assert ownership[bucket].inputs["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
        tls = document(policies[bucket].inputs["policy"])["Statement"][0]
        assert tls["Effect"] == "Deny"
        assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_managed_data_buckets_are_protected_and_versioned(evaluation, config):
    managed = {b.name for b in config.data_buckets if b.managed}
    buckets = {b.outputs["bucket"]: b for b in evaluation.of_type(f"{S3}/bucket:Bucket")}
    versioned = {
        v.inputs["bucket"]
        for v in evaluation.of_type(f"{S3}/bucketVersioning:BucketVersioning")
        if v.inputs["versioningConfiguration"]["status"] == "Enabled"
    }
    for name in managed:
        assert buckets[name].protect, name
        assert name in versioned, name
    # Scratch is disposable by design and expires: it is neither protected nor versioned.
    assert not buckets[config.scratch.bucket_name].protect
    assert config.scratch.bucket_name not in versioned


def test_service_accounts_are_bound_to_their_team_role(evaluation, config):
    accounts = evaluation.of_type("kubernetes:core/v1:ServiceAccount")
    role_arns = evaluation.outputs["team_role_arns"]
    assert sorted(a.inputs["metadata"]["name"] for a in accounts) == sorted(
        f"dask-{t}" for t in config.team_names
    )
    for account in accounts:
        metadata = account.inputs["metadata"]
        team = metadata["name"].removeprefix("dask-")
        assert metadata["namespace"] == config.gateway.namespace
        assert metadata["annotations"]["eks.amazonaws.com/role-arn"] == role_arns[team]
        assert role_arns[team].endswith(f":role/team-{team}-irsa")
        assert account.inputs["automountServiceAccountToken"] is False


def test_chart_is_pinned(evaluation, config):
    release = gateway_release(evaluation)
    assert release.inputs["chart"] == "dask-gateway"
    assert release.inputs["version"] == "2026.3.0" == config.gateway.chart_version
    assert release.inputs["repositoryOpts"] == {"repo": "https://helm.dask.org"}
    assert release.inputs["namespace"] == config.gateway.namespace
    assert release.inputs["atomic"] is True


def test_release_values_validate_against_the_upstream_schema(evaluation):
    release = gateway_release(evaluation)
    assert values_schema_problems("dask-gateway", release.inputs["values"]) == []


def test_release_values_carry_the_gateway_config_file_and_settings(evaluation, config, repo):
    import json

    release = gateway_release(evaluation)
    gateway = release.inputs["values"]["gateway"]
    assert gateway["extraConfig"] == {
        "50-dask-platform": (repo / "helm/dask-gateway/gateway_config.py").read_text()
    }
    (env,) = [e for e in gateway["env"] if e["name"] == "DASK_PLATFORM_GATEWAY_SETTINGS"]
    settings = json.loads(env["value"])
    assert settings["teams"] == {
        t.name: {"groups": list(t.groups), "service_account": f"dask-{t.name}"}
        for t in config.teams
    }
    assert settings["idle_timeout_minutes"] == config.gateway.idle_timeout_minutes
    assert gateway["auth"]["type"] == config.gateway.auth.type
    # The worker image the stack exports (read from the bootstrap stack) is the one the chart
    # runs; the gateway image likewise.
    name, _, tag = evaluation.outputs["worker_image"].rpartition(":")
    assert gateway["backend"]["image"] == {"name": name, "tag": tag}


def test_no_secret_in_release_values(evaluation):
    """No key material and no password in the (plain, state-visible) values."""
    release = gateway_release(evaluation)
    text = str(release.inputs["values"])
    assert not re.search(r"AKIA[0-9A-Z]{16}", text)
    assert "password" not in text.lower().replace("passwordless", "")


def test_eks_cluster_hardening(evaluation, config):
    (cluster,) = evaluation.of_type("aws:eks/cluster:Cluster")
    inputs = cluster.inputs
    assert inputs["encryptionConfig"]["resources"] == ["secrets"]
    (key,) = evaluation.of_type("aws:kms/key:Key")
    assert inputs["encryptionConfig"]["provider"]["keyArn"] == key.outputs["arn"]
    assert key.inputs["enableKeyRotation"] is True
    assert inputs["enabledClusterLogTypes"] == list(config.eks.control_plane_log_types)
    vpc = inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    endpoint = config.eks.endpoint
    assert vpc["endpointPublicAccess"] is endpoint.public_access
    assert vpc.get("publicAccessCidrs", []) == (
        list(endpoint.public_access_cidrs) if endpoint.public_access else []
    )
    assert "0.0.0.0/0" not in vpc.get("publicAccessCidrs", [])


def test_oidc_provider_audience_is_sts(evaluation):
    (provider,) = evaluation.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert provider.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    assert provider.inputs["url"] == evaluation.outputs["oidc_issuer_url"]


def test_no_security_group_opens_to_the_internet(evaluation, config):
    opened = set(config.network.ingress_cidrs)
    for group in evaluation.of_type("aws:ec2/securityGroup:SecurityGroup"):
        for rule in group.inputs.get("ingress", []):
            for cidr in rule.get("cidrBlocks", []):
                assert cidr != "0.0.0.0/0" or cidr in opened, group.name
    for rule in evaluation.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"):
        cidr = rule.inputs.get("cidrIpv4")
        assert cidr != "0.0.0.0/0" or cidr in opened, rule.name
    (default,) = evaluation.of_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert default.inputs["ingress"] == []
    assert default.inputs["egress"] == []


def test_subnets_span_the_zones_inside_the_vpc(evaluation, config):
    vpc = ipaddress.IPv4Network(config.network.vpc_cidr)
    subnets = evaluation.of_type("aws:ec2/subnet:Subnet")
    zones = config.network.availability_zones
    assert len(subnets) == 2 * len(zones)
    blocks = [ipaddress.IPv4Network(s.inputs["cidrBlock"]) for s in subnets]
    assert all(b.subnet_of(vpc) for b in blocks)
    assert not any(a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1 :])
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in subnets)
    nats = evaluation.of_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == (1 if config.network.single_nat_gateway else len(zones))


def test_every_resource_has_a_component_parent(evaluation):
    """STYLE: one component per concern, `parent=self` on every child."""
    orphans = [
        r.name
        for r in evaluation.resources
        if not r.read
        and not r.type.startswith("pulumi:providers:")
        and not r.type.startswith("dask-platform:")
        and "$dask-platform:" not in r.parent
    ]
    assert orphans == []


def test_exports(evaluation, config):
    outputs = evaluation.outputs
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in outputs), "snake_case"
    assert outputs["scratch_urls"] == {
        t: f"s3://{config.scratch.bucket_name}/{t}/" for t in config.team_names
    }
    assert outputs["service_accounts"] == {t: f"dask-{t}" for t in config.team_names}
    assert outputs["gateway_address"].startswith(("http://", "https://"))
    assert outputs["gateway_proxy_address"].startswith("gateway://")
    assert outputs["namespace"] == config.gateway.namespace
    assert "kubeconfig" in evaluation.secret_outputs
    assert '"command": "aws"' in outputs["kubeconfig"], "exec auth, no static token"
    assert "token" not in outputs["kubeconfig"].replace("get-token", "")


@pytest.mark.parametrize("stack", ["dev"])
def test_stacks_do_not_share_physical_names(stack):
    from .conftest import STACKS, evaluated

    names = {
        s: {b.outputs["bucket"] for b in evaluated(s).of_type(f"{S3}/bucket:Bucket")}
        for s in STACKS
    }
    scratch = [evaluated(s).outputs["scratch_bucket"] for s in STACKS]
    assert len(set(scratch)) == len(scratch)
    assert names[stack]


def test_a_stack_evaluates_after_asyncio_run_in_the_same_process():
    """`asyncio.run()` leaves the main thread without a current event loop; the evaluation
    (Pulumi's mocks make futures on that loop) still runs, as `plan` after async code would."""
    import asyncio

    from dask_platform.project import project_root
    from dask_platform.pulumi_eval import evaluate_stack

    async def nothing() -> None:
        return None

    asyncio.run(nothing())
    evaluation = evaluate_stack("dev", project_root())
    assert evaluation.of_type("aws:eks/cluster:Cluster")
