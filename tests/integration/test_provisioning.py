"""The emulator holds what the Pulumi program declares: its S3/IAM/KMS/Secrets Manager
resources, replayed from the program's evaluation (dask_platform.local.provision), read back
here with boto3 and compared with the declared inputs."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from dask_platform.local.config import load_local_config
from dask_platform.local.emulator import Emulator
from dask_platform.local.outputs import ABSENT_LOCALLY
from dask_platform.local.platform import LocalPlatform
from dask_platform.local.processes import ComponentError
from dask_platform.local.provision import LocalOverlay, Provisioned, provision
from dask_platform.project import project_root
from dask_platform.pulumi_mocks import RecordedResource

ISSUER = "http://127.0.0.1:9/issuer"  # any URL: these fixtures do not assume roles


@pytest.fixture(scope="module")
def admin(platform: LocalPlatform) -> Any:
    return platform.emulator()


@pytest.fixture(scope="module")
def provisioned(platform: LocalPlatform) -> Provisioned:
    assert platform.provisioned is not None
    return platform.provisioned


def declared(provisioned: Provisioned, type_: str) -> list[RecordedResource]:
    resources = provisioned.evaluation.of_type(type_)
    assert resources, f"the program declares no {type_}"
    return resources


def inputs_of(provisioned: Provisioned, resource: RecordedResource) -> dict[str, Any]:
    """The declared inputs with the emulator's identifiers (and Pulumi's float numbers as int)."""
    translated: dict[str, Any] = provisioned.translate(resource.inputs)
    return translated


def assert_buckets_match(s3: Any, provisioned: Provisioned) -> None:
    for r in declared(
        provisioned,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    ):
        want = inputs_of(provisioned, r)
        rules = s3.get_bucket_encryption(Bucket=want["bucket"])[
            "ServerSideEncryptionConfiguration"
        ]["Rules"]
        assert [
            (
                x["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"],
                x.get("BucketKeyEnabled", False),
            )
            for x in rules
        ] == [
            (x["applyServerSideEncryptionByDefault"]["sseAlgorithm"], x["bucketKeyEnabled"])
            for x in want["rules"]
        ]
    for r in declared(provisioned, "aws:s3/bucketOwnershipControls:BucketOwnershipControls"):
        want = inputs_of(provisioned, r)
        rules = s3.get_bucket_ownership_controls(Bucket=want["bucket"])["OwnershipControls"]
        assert rules["Rules"] == [{"ObjectOwnership": want["rule"]["objectOwnership"]}]
    for r in declared(provisioned, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"):
        want = inputs_of(provisioned, r)
        block = s3.get_public_access_block(Bucket=want["bucket"])["PublicAccessBlockConfiguration"]
        assert block == {
            "BlockPublicAcls": want["blockPublicAcls"],
            "IgnorePublicAcls": want["ignorePublicAcls"],
            "BlockPublicPolicy": want["blockPublicPolicy"],
            "RestrictPublicBuckets": want["restrictPublicBuckets"],
        }
    for r in declared(
        provisioned, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
    ):
        want = inputs_of(provisioned, r)
        got = {
            x["ID"]: x
            for x in s3.get_bucket_lifecycle_configuration(Bucket=want["bucket"])["Rules"]
        }
        assert sorted(got) == sorted(x["id"] for x in want["rules"])
        for rule in want["rules"]:
            assert got[rule["id"]]["Status"] == rule["status"]
            if "expiration" in rule:
                assert got[rule["id"]]["Expiration"] == {"Days": rule["expiration"]["days"]}
            if "abortIncompleteMultipartUpload" in rule:
                assert got[rule["id"]]["AbortIncompleteMultipartUpload"] == {
                    "DaysAfterInitiation": rule["abortIncompleteMultipartUpload"][
                        "daysAfterInitiation"
                    ]
                }
    for r in declared(provisioned, "aws:s3/bucketObjectv2:BucketObjectv2"):
        want = inputs_of(provisioned, r)
        head = s3.head_object(Bucket=want["bucket"], Key=want["key"])
        assert head["ContentLength"] == len(want["content"])


def policy_document(iam: Any, arn: str) -> Any:
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    return iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]


def assert_roles_match(iam: Any, provisioned: Provisioned) -> None:
    attachments = [
        inputs_of(provisioned, r)
        for r in provisioned.evaluation.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    ]
    inline = [
        inputs_of(provisioned, r)
        for r in provisioned.evaluation.of_type("aws:iam/rolePolicy:RolePolicy")
    ]
    for r in declared(provisioned, "aws:iam/role:Role"):
        want = inputs_of(provisioned, r)
        name = r.outputs["name"]
        role = iam.get_role(RoleName=name)["Role"]
        assert role["AssumeRolePolicyDocument"] == json.loads(want["assumeRolePolicy"])
        assert role.get("Description") == want.get("description")
        if "maxSessionDuration" in want:
            assert role["MaxSessionDuration"] == want["maxSessionDuration"]
        got = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        assert sorted(p["PolicyArn"] for p in got) == sorted(
            a["policyArn"] for a in attachments if a["role"] == name
        )
        documents = {
            p: iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]
            for p in iam.list_role_policies(RoleName=name)["PolicyNames"]
        }
        assert sorted(documents.values(), key=json.dumps) == sorted(
            (json.loads(i["policy"]) for i in inline if i["role"] == name), key=json.dumps
        )
    for r in declared(provisioned, "aws:iam/policy:Policy"):
        want = inputs_of(provisioned, r)
        arn = provisioned.translate(r.outputs["arn"])
        assert policy_document(iam, arn) == json.loads(want["policy"])


def test_every_declared_bucket_setting_is_in_the_emulator(
    admin: Any, provisioned: Provisioned
) -> None:
    assert_buckets_match(admin.client("s3"), provisioned)


def test_every_declared_role_and_policy_is_in_the_emulator(
    admin: Any, provisioned: Provisioned
) -> None:
    assert_roles_match(admin.client("iam"), provisioned)


def test_the_team_roles_are_the_exported_ones(admin: Any, outputs: dict[str, Any]) -> None:
    iam = admin.client("iam")
    for team, arn in outputs["team_role_arns"].items():
        role = iam.get_role(RoleName=arn.split("/")[-1])["Role"]
        assert role["Arn"] == arn
        assert f"system:serviceaccount:{outputs['namespace']}:dask-{team}" in json.dumps(
            role["AssumeRolePolicyDocument"]
        )


def test_the_oidc_provider_is_the_local_issuer(admin: Any, outputs: dict[str, Any]) -> None:
    provider = admin.client("iam").get_open_id_connect_provider(
        OpenIDConnectProviderArn=outputs["oidc_provider_arn"]
    )
    assert provider["ClientIDList"] == ["sts.amazonaws.com"]
    assert outputs["oidc_issuer_url"].endswith(provider["Url"].removeprefix("http://"))


def test_the_store_secret_holds_the_stand_ins_key(admin: Any, outputs: dict[str, Any]) -> None:
    store = outputs["object_stores"]["osn-renci"]
    secret = admin.client("secretsmanager").get_secret_value(SecretId=store["secret_arn"])
    assert sorted(json.loads(secret["SecretString"])) == ["access_key_id", "secret_access_key"]


def test_the_tls_only_policy_is_skipped_and_said_so(admin: Any, outputs: dict[str, Any]) -> None:
    # Deliberately absent (see dask_platform.local.provision) and said so in the outputs.
    assert "scratch-tls-only" in outputs["not_provisioned"]
    with pytest.raises(ClientError) as missing:
        admin.client("s3").get_bucket_policy(Bucket=outputs["scratch_bucket"])
    assert missing.value.response["Error"]["Code"] == "NoSuchBucketPolicy"


def test_outputs_are_the_programs_exports_plus_the_local_overlay(
    outputs: dict[str, Any], provisioned: Provisioned
) -> None:
    from dask_platform.config.sources import list_stacks
    from dask_platform.pulumi_eval import evaluate_stack

    exported = {
        key for stack in list_stacks(project_root()) for key in evaluate_stack(stack).outputs
    }
    assert exported - set(outputs) == set()
    overlaid = {"gateway_address", "gateway_proxy_address", "site", "object_stores"}
    program = provisioned.translate(provisioned.evaluation.outputs)
    for key, value in program.items():
        if key in ABSENT_LOCALLY:
            assert outputs[key] is None, key
        elif key not in overlaid:
            assert outputs[key] == value, key
    assert outputs["scratch_urls"] == {
        t: f"s3://{outputs['scratch_bucket']}/{t}/" for t in outputs["teams"]
    }
    assert outputs["gateway_address"].startswith("http://127.0.0.1:")
    assert outputs["gateway_proxy_address"].startswith("gateway://127.0.0.1:")


# ------------------------------------------------------------------ a changed program


@pytest.fixture
def program_copy(tmp_path: Path) -> Path:
    """A copy of the Pulumi program (Pulumi.yaml + infra/) to change."""
    root = project_root()
    shutil.copy(root / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copytree(root / "infra", tmp_path / "infra")
    return tmp_path


@pytest.fixture
def bare_emulator(tmp_path: Path) -> Iterator[Emulator]:
    aws = Emulator(tmp_path / "emulator").start()
    try:
        yield aws
    finally:
        aws.stop()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} in {path}"
    path.write_text(text.replace(old, new))


def test_a_setting_changed_in_infra_components_shows_up_locally(
    program_copy: Path, bare_emulator: Emulator
) -> None:
    components = program_copy / "infra" / "components"
    _edit(components / "storage.py", "days_after_initiation=1", "days_after_initiation=2")
    _edit(components / "storage.py", "bucket_key_enabled=True", "bucket_key_enabled=False")
    _edit(
        components / "identity.py",
        "max_session_duration=TEAM_ROLE_MAX_SESSION_SECONDS",
        "max_session_duration=7200",
    )
    config = load_local_config()
    keys = {
        s.name: {"access_key_id": "a", "secret_access_key": "b"} for s in config.stack.object_stores
    }
    provisioned = provision(
        config.stack_document,
        bare_emulator,
        LocalOverlay(oidc_issuer=ISSUER, object_store_keys=keys),
        project_dir=program_copy,
    )
    s3 = bare_emulator.client("s3")
    bucket = config.stack.scratch.bucket_name
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 2
    }
    encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["BucketKeyEnabled"] is False
    iam = bare_emulator.client("iam")
    for team in config.stack.team_names:
        assert iam.get_role(RoleName=f"team-{team}-irsa")["Role"]["MaxSessionDuration"] == 7200
    # And the whole replay still equals the (changed) declaration.
    assert_buckets_match(s3, provisioned)
    assert_roles_match(iam, provisioned)


def test_a_resource_type_without_a_replay_is_named(
    program_copy: Path, bare_emulator: Emulator
) -> None:
    main = program_copy / "infra" / "__main__.py"
    main.write_text(main.read_text() + '\naws.iam.User("fixture-user", opts=with_aws)\n')
    config = load_local_config()
    keys = {
        s.name: {"access_key_id": "a", "secret_access_key": "b"} for s in config.stack.object_stores
    }
    with pytest.raises(ComponentError) as raised:
        provision(
            config.stack_document,
            bare_emulator,
            LocalOverlay(oidc_issuer=ISSUER, object_store_keys=keys),
            project_dir=program_copy,
        )
    assert "aws:iam/user:User (fixture-user)" in str(raised.value)
    assert "REPLAY" in str(raised.value)
