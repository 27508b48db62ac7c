"""Registry: one ECR repository per image of images/ (worker, notebook, gateway, worker-gpu).
Created by the bootstrap project (infra/bootstrap), never by a platform stack.

What `scripts/build-images --push` pushes to and every worker pulls from: tags are immutable (a
``lock-<hash>`` tag names exactly one build, forever), every push is scanned, images are
encrypted with KMS, repositories are protected from `pulumi destroy`, and a lifecycle policy
keeps the storage bounded (untagged leftovers expire; only the newest images are kept).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from dask_platform.iam import render_policy


@dataclass
class RegistryArgs:
    repository_prefix: str
    images: Sequence[str]
    keep_images: int
    untagged_expiry_days: int
    # Accounts (other than the owner) whose stacks pull: granted by each repository's policy.
    pull_account_ids: Sequence[str] = ()
    tags: dict[str, str] = field(default_factory=dict)


def lifecycle_policy(keep_images: int, untagged_expiry_days: int) -> str:
    """Untagged images expire after N days; beyond the newest ``keep_images``, images expire.

    The ``any`` rule must have the highest priority number (it is evaluated last).
    """
    # ref: https://docs.aws.amazon.com/AmazonECR/latest/userguide/LifecyclePolicies.html
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": f"Expire untagged images after {untagged_expiry_days} days",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": untagged_expiry_days,
                    },
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 2,
                    "description": f"Keep the newest {keep_images} images",
                    "selection": {
                        "tagStatus": "any",
                        "countType": "imageCountMoreThan",
                        "countNumber": keep_images,
                    },
                    "action": {"type": "expire"},
                },
            ]
        }
    )


class Registry(pulumi.ComponentResource):
    """ECR repositories ``<prefix>/<image>``: scan on push, immutable tags, KMS, protected."""

    def __init__(
        self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dask-platform:registry:Registry", name, None, opts)
        policy = lifecycle_policy(args.keep_images, args.untagged_expiry_days)
        self.repositories: dict[str, aws.ecr.Repository] = {}
        for image in args.images:
            repository = aws.ecr.Repository(
                f"{name}-{image}",
                name=f"{args.repository_prefix}/{image}",
                # A tag, once pushed, always means the same image: a cluster started from
                # lock-<hash> today gets the bytes it got yesterday.
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                    scan_on_push=True
                ),
                # The AWS-managed key for ECR: encryption at rest with CloudTrail-audited use,
                # and nodes pull without extra key grants.
                encryption_configurations=[
                    aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS")
                ],
                force_delete=False,
                tags={**args.tags, "dask-platform/image": image},
                opts=pulumi.ResourceOptions(parent=self, protect=True),
            )
            aws.ecr.LifecyclePolicy(
                f"{name}-{image}-lifecycle",
                repository=repository.name,
                policy=policy,
                opts=pulumi.ResourceOptions(parent=self),
            )
            if args.pull_account_ids:
                # Cross-account pulls need both sides: this resource policy, and an ECR read
                # grant on the puller's own role (node, task execution, EC2 instance roles).
                # ref: https://docs.aws.amazon.com/AmazonECR/latest/userguide/repository-policy-examples.html
                aws.ecr.RepositoryPolicy(
                    f"{name}-{image}-pull",
                    repository=repository.name,
                    policy=json.dumps(
                        render_policy(
                            "ecr-cross-account-pull",
                            account_principals=[
                                f"arn:aws:iam::{account}:root" for account in args.pull_account_ids
                            ],
                        )
                    ),
                    opts=pulumi.ResourceOptions(parent=self),
                )
            self.repositories[image] = repository
        self.repository_urls = {
            image: repository.repository_url for image, repository in self.repositories.items()
        }
        self.register_outputs({"repository_urls": self.repository_urls})
