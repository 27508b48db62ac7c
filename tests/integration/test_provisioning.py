"""The emulator holds what the Pulumi program declares, rendered from the same sources."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from dask_platform.iam import irsa_trust_policy, team_scratch_policy
from dask_platform.local.config import load_local_config
from dask_platform.local.platform import LocalPlatform


@pytest.fixture(scope="module")
def admin(platform: LocalPlatform) -> Any:
    return platform.emulator()


@pytest.mark.parametrize("team", ["hydrology", "climate"])
def test_team_roles_carry_the_rendered_documents(
    team: str, admin: Any, outputs: dict[str, Any]
) -> None:
    iam = admin.client("iam")
    role_name = outputs["team_role_arns"][team].split("/")[-1]
    role = iam.get_role(RoleName=role_name)["Role"]
    assert role["AssumeRolePolicyDocument"] == irsa_trust_policy(
        outputs["oidc_provider_arn"], outputs["oidc_issuer_url"], outputs["namespace"], team
    )
    assert role["MaxSessionDuration"] == 3600
    attached = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    documents = []
    for policy in attached:
        version = iam.get_policy(PolicyArn=policy["PolicyArn"])["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=policy["PolicyArn"], VersionId=version)
        documents.append(document["PolicyVersion"]["Document"])
    scratch = team_scratch_policy(outputs["scratch_bucket"], team)
    assert scratch in documents
    # And the object-store key policy, for a team granted stores (local/platform.yaml).
    others = [d for d in documents if d != scratch]
    stores = outputs.get("object_stores") or {}
    granted = sorted(s["secret_arn"] for s in stores.values() if team in s["teams"])
    if granted:
        assert len(others) == 1
        assert others[0]["Statement"][0]["Action"] == "secretsmanager:GetSecretValue"
        assert others[0]["Statement"][0]["Resource"] == granted
    else:
        assert others == []


def test_the_oidc_provider_is_the_local_issuer(admin: Any, outputs: dict[str, Any]) -> None:
    provider = admin.client("iam").get_open_id_connect_provider(
        OpenIDConnectProviderArn=outputs["oidc_provider_arn"]
    )
    assert provider["ClientIDList"] == ["sts.amazonaws.com"]
    assert outputs["oidc_issuer_url"].endswith(provider["Url"].removeprefix("http://"))


def test_the_scratch_bucket_has_the_programs_settings(admin: Any, outputs: dict[str, Any]) -> None:
    s3 = admin.client("s3")
    bucket = outputs["scratch_bucket"]
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    ownership = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert ownership == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    retention = load_local_config().stack.scratch.retention_days
    assert rules["expire-scratch"]["Expiration"] == {"Days": retention}
    assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 1
    }
    for team in outputs["teams"]:
        assert s3.head_object(Bucket=bucket, Key=f"{team}/")["ContentLength"] == 0
    # Deliberately absent (see dask_platform.local.provision) and said so in the outputs.
    assert "bucket-tls-only" in outputs["not_provisioned"]
    with pytest.raises(ClientError) as missing:
        s3.get_bucket_policy(Bucket=bucket)
    assert missing.value.response["Error"]["Code"] == "NoSuchBucketPolicy"


def test_outputs_have_every_key_any_committed_stack_exports(outputs: dict[str, Any]) -> None:
    from dask_platform.config.sources import list_stacks
    from dask_platform.project import project_root
    from dask_platform.pulumi_eval import evaluate_stack

    exported = {
        key for stack in list_stacks(project_root()) for key in evaluate_stack(stack).outputs
    }
    assert exported - set(outputs) == set()
    assert outputs["scratch_urls"] == {
        t: f"s3://{outputs['scratch_bucket']}/{t}/" for t in outputs["teams"]
    }
    assert outputs["gateway_address"].startswith("http://127.0.0.1:")
    assert outputs["gateway_proxy_address"].startswith("gateway://127.0.0.1:")
