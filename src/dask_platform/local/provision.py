"""Provision the emulator from the same sources as the Pulumi program.

The same StackConfig, the same rendered documents (:mod:`dask_platform.iam`), the same bucket
settings as ``infra/components/storage.py`` and ``infra/components/identity.py``: public-access
block, AES256 default encryption with bucket keys, owner-enforced object ownership, the
lifecycle rules, one prefix marker per team, the OIDC provider, and per team the scratch (+
shared data) policy and the IRSA role trusted only for ``system:serviceaccount:<ns>:dask-<team>``.

One deliberate difference: the TLS-only bucket policy (``policies/iam/bucket-tls-only.json``)
is not applied. moto evaluates bucket-policy Deny statements but ignores their ``Condition``,
so ``Deny s3:* if aws:SecureTransport=false`` would deny every request, TLS or not. The policy
is attached by the Pulumi program and checked by the policy tests; the emulator cannot
evaluate it faithfully, and the platform's isolation claim does not rest on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dask_platform.config.models import StackConfig
from dask_platform.iam import (
    irsa_trust_policy,
    issuer_host,
    service_account_name,
    shared_data_policy,
    team_scratch_policy,
)
from dask_platform.local.emulator import Emulator

# Web-identity sessions are short; the SDKs refresh them from the rotated token
# (the same value as infra/components/identity.py).
ROLE_MAX_SESSION_SECONDS = 3600
SKIPPED = {
    "bucket-tls-only": "moto ignores bucket-policy conditions; the Deny would match every request"
}


@dataclass
class Provisioned:
    scratch_bucket: str
    oidc_provider_arn: str
    team_role_arns: dict[str, str]
    team_policy_arns: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=lambda: dict(SKIPPED))


def role_name(team: str) -> str:
    return f"dask-platform-local-{team}"


def _create_bucket(s3: Any, name: str, region: str, tags: dict[str, str]) -> None:
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**kwargs)
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    s3.put_bucket_ownership_controls(
        Bucket=name, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    )
    if tags:
        s3.put_bucket_tagging(
            Bucket=name, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}
        )


def provision(config: StackConfig, aws: Emulator, issuer_url: str) -> Provisioned:
    s3 = aws.client("s3")
    iam = aws.client("iam")
    tags = {"dask-platform/stack": "local", "managed-by": "dask-platform-local", **config.tags}

    bucket = config.scratch.bucket_name
    _create_bucket(s3, bucket, config.region, tags)
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "expire-scratch",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "Expiration": {"Days": config.scratch.retention_days},
                },
                {
                    "ID": "abort-incomplete-multipart-uploads",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                },
            ]
        },
    )
    for team in config.team_names:
        s3.put_object(Bucket=bucket, Key=f"{team}/", Body=b"")
    for data_bucket in config.data_buckets:
        # Unmanaged data buckets exist outside a stack in production; locally they are created
        # so the read-only policy has something to read.
        _create_bucket(s3, data_bucket.name, config.region, tags)
        if data_bucket.managed:
            s3.put_bucket_versioning(
                Bucket=data_bucket.name, VersioningConfiguration={"Status": "Enabled"}
            )

    provider_arn = iam.create_open_id_connect_provider(
        Url=issuer_url,
        ClientIDList=["sts.amazonaws.com"],
        ThumbprintList=[],
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )["OpenIDConnectProviderArn"]
    assert provider_arn.endswith(issuer_host(issuer_url))

    role_arns: dict[str, str] = {}
    policy_arns: dict[str, list[str]] = {}
    namespace = config.gateway.namespace
    data_document = shared_data_policy([b.name for b in config.data_buckets])
    for team in config.team_names:
        team_tags = [
            {"Key": k, "Value": v} for k, v in {**tags, "dask-platform/team": team}.items()
        ]
        documents = {f"{role_name(team)}-scratch": team_scratch_policy(bucket, team)}
        if data_document is not None:
            documents[f"{role_name(team)}-shared-data"] = data_document
        policy_arns[team] = [
            iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(document), Tags=team_tags)[
                "Policy"
            ]["Arn"]
            for name, document in documents.items()
        ]
        role = iam.create_role(
            RoleName=role_name(team),
            Description=f"Dask workers of {team} (IRSA {namespace}/{service_account_name(team)})",
            AssumeRolePolicyDocument=json.dumps(
                irsa_trust_policy(provider_arn, issuer_url, namespace, team)
            ),
            MaxSessionDuration=ROLE_MAX_SESSION_SECONDS,
            Tags=team_tags,
        )["Role"]
        for arn in policy_arns[team]:
            iam.attach_role_policy(RoleName=role_name(team), PolicyArn=arn)
        role_arns[team] = role["Arn"]
    return Provisioned(
        scratch_bucket=bucket,
        oidc_provider_arn=provider_arn,
        team_role_arns=role_arns,
        team_policy_arns=policy_arns,
    )
