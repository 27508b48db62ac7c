"""Storage: the scratch bucket (per-team prefixes, expiry, no public access) and the shared data
buckets this stack owns (protected, versioned)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from dask_platform.iam import render_policy


def _locked_down_bucket(
    parent: pulumi.ComponentResource,
    name: str,
    bucket_name: str,
    tags: dict[str, str],
    protect: bool,
) -> aws.s3.Bucket:
    """A bucket with the companions every bucket of this platform has: all four public-access
    blocks, default encryption, owner-enforced object ownership, a TLS-only bucket policy."""
    child = pulumi.ResourceOptions(parent=parent)
    bucket = aws.s3.Bucket(
        f"{name}-bucket",
        bucket=bucket_name,
        force_destroy=False,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent, protect=protect),
    )
    access_block = aws.s3.BucketPublicAccessBlock(
        f"{name}-public-access-block",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=child,
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-encryption",
        bucket=bucket.id,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"
                ),
                bucket_key_enabled=True,
            )
        ],
        opts=child,
    )
    # ACLs disabled: access is decided by IAM alone, which is what the isolation proof tests.
    aws.s3.BucketOwnershipControls(
        f"{name}-ownership",
        bucket=bucket.id,
        rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
        opts=child,
    )
    aws.s3.BucketPolicy(
        f"{name}-tls-only",
        bucket=bucket.id,
        policy=json.dumps(render_policy("bucket-tls-only", bucket=bucket_name)),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[access_block]),
    )
    return bucket


@dataclass
class ScratchStorageArgs:
    bucket_name: str
    retention_days: int
    teams: Sequence[str]
    tags: dict[str, str] = field(default_factory=dict)


class ScratchStorage(pulumi.ComponentResource):
    """The scratch bucket: one prefix per team, objects expire, uploads cannot linger."""

    def __init__(
        self, name: str, args: ScratchStorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dask-platform:storage:ScratchStorage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Scratch is disposable by definition (it expires), so it is not protected; data
        # buckets are.
        self.bucket = _locked_down_bucket(self, name, args.bucket_name, args.tags, protect=False)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-scratch",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                        days=args.retention_days
                    ),
                ),
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="abort-incomplete-multipart-uploads",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=1
                    ),
                ),
            ],
            opts=child,
        )
        # An empty marker object per team so each prefix exists (and shows in consoles) from the
        # first deploy; the marker expires like everything else and is harmless when it does.
        for team in args.teams:
            aws.s3.BucketObjectv2(
                f"{name}-prefix-{team}",
                bucket=self.bucket.id,
                key=f"{team}/",
                content="",
                opts=child,
            )
        self.bucket_name = self.bucket.bucket
        self.register_outputs({"bucket_name": self.bucket_name})


@dataclass
class DataBucketArgs:
    bucket_name: str
    requester_pays: bool
    tags: dict[str, str] = field(default_factory=dict)


class DataBucket(pulumi.ComponentResource):
    """A shared data bucket owned by this stack: protected from `pulumi destroy`, versioned."""

    def __init__(
        self, name: str, args: DataBucketArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dask-platform:storage:DataBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.bucket = _locked_down_bucket(self, name, args.bucket_name, args.tags, protect=True)
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=self.bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled"
            ),
            opts=child,
        )
        if args.requester_pays:
            aws.s3.BucketRequestPaymentConfiguration(
                f"{name}-requester-pays", bucket=self.bucket.id, payer="Requester", opts=child
            )
        self.register_outputs({"bucket_name": self.bucket.bucket})
