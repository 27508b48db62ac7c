"""Identity: per team, the S3 policies (scratch prefix, shared data read-only) and the IRSA role
that only the team's ServiceAccount, through the cluster's OIDC provider, can assume."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from dask_platform.iam import (
    TEAM_ROLE_MAX_SESSION_SECONDS,
    irsa_trust_policy,
    shared_data_policy,
    team_scratch_policy,
)


@dataclass
class TeamIdentityArgs:
    team: str
    scratch_bucket: str
    data_buckets: Sequence[str]
    namespace: str
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    tags: dict[str, str] = field(default_factory=dict)


class TeamIdentity(pulumi.ComponentResource):
    """One team's AWS identity. The managed policies are also attached by the ECS/EC2 roles,
    so every backend grants exactly the same S3 scope."""

    def __init__(
        self, name: str, args: TeamIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dask-platform:identity:TeamIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {**args.tags, "dask-platform/team": args.team}

        self.scratch_policy = aws.iam.Policy(
            f"{name}-scratch",
            description=f"Read/write/delete s3://{args.scratch_bucket}/{args.team}/ only",
            policy=json.dumps(team_scratch_policy(args.scratch_bucket, args.team)),
            tags=tags,
            opts=child,
        )
        self.policies: list[aws.iam.Policy] = [self.scratch_policy]
        data_document = shared_data_policy(list(args.data_buckets))
        if data_document is not None:
            self.policies.append(
                aws.iam.Policy(
                    f"{name}-shared-data",
                    description="Read-only on the platform's shared data buckets",
                    policy=json.dumps(data_document),
                    tags=tags,
                    opts=child,
                )
            )

        self.role = aws.iam.Role(
            f"{name}-irsa",
            description=f"Dask workers of {args.team} (IRSA {args.namespace}/dask-{args.team})",
            assume_role_policy=pulumi.Output.all(
                args.oidc_provider_arn, args.oidc_issuer_url
            ).apply(lambda a: json.dumps(irsa_trust_policy(a[0], a[1], args.namespace, args.team))),
            # Web-identity sessions are short; the SDKs refresh them from the rotated token.
            max_session_duration=TEAM_ROLE_MAX_SESSION_SECONDS,
            tags=tags,
            opts=child,
        )
        for index, policy in enumerate(self.policies):
            aws.iam.RolePolicyAttachment(
                f"{name}-irsa-{index}", role=self.role.name, policy_arn=policy.arn, opts=child
            )
        self.role_arn = self.role.arn
        self.register_outputs({"role_arn": self.role_arn})
