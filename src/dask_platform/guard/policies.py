"""The policies: every rule as a pulumi_policy policy object, with its name, the reason it exists,
its enforcement level and its config schema. The CrossGuard pack hands :func:`policies` to
``PolicyPack``; the offline gate runs the same objects' ``validate``.

Constructing these objects starts nothing (only ``PolicyPack`` starts a server).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ResourceValidationPolicy,
    StackValidationPolicy,
)

from dask_platform.config.models import StackConfig
from dask_platform.guard import rules

PACK_NAME = "dask-platform"
PACK_DESCRIPTION = (
    "dask-platform guardrails: keyless S3 for Dask workers (IRSA, no AWS keys anywhere), locked "
    "down buckets, IMDSv2 nodes, a private EKS API, immutable scanned images."
)

_INGRESS_SCHEMA = PolicyConfigSchema(
    properties={
        "ingress_cidrs": {
            "type": "array",
            "items": {"type": "string"},
            "default": rules.CONFIG_DEFAULTS["ingress_cidrs"],
            "description": "The stack's network.ingress_cidrs and ecs.access_cidrs: an open "
            "CIDR (0.0.0.0/0, ::/0) passes only if listed here.",
        }
    }
)
_PRODUCTION_SCHEMA = PolicyConfigSchema(
    properties={
        "production": {
            "type": "boolean",
            "default": rules.CONFIG_DEFAULTS["production"],
            "description": "The stack's `production` flag. Unset counts as production.",
        }
    }
)
_SCRATCH_SCHEMA = PolicyConfigSchema(
    properties={
        "scratch_bucket": {
            "type": "string",
            "description": "The stack's scratch.bucket_name (buckets under a ScratchStorage "
            "component are checked either way).",
        }
    }
)
_DATA_BUCKETS_SCHEMA = PolicyConfigSchema(
    properties={
        "data_buckets": {
            "type": "array",
            "items": {"type": "string"},
            "default": rules.CONFIG_DEFAULTS["data_buckets"],
            "description": "Names of the data buckets this stack manages (data_buckets with "
            "managed: true); buckets under a DataBucket component are checked either way.",
        }
    }
)


def policies() -> list[Policy]:
    """Every rule of the pack, in the order the verdict lists them."""
    mandatory = EnforcementLevel.MANDATORY
    return [
        ResourceValidationPolicy(
            name="no-long-lived-credentials",
            description="No IAM access keys, login profiles or service-specific credentials. A "
            "long-lived key is exactly what ends up pasted into notebooks and shipped to workers; "
            "this platform gives workloads roles and people SSO, so nothing needs one.",
            validate=rules.no_long_lived_credentials_validator,
            enforcement_level=mandatory,
        ),
        ResourceValidationPolicy(
            name="oidc-trust-exact-subject",
            description="A role trusted through an OIDC provider must pin StringEquals on both "
            "<issuer>:sub (exactly one service account, no wildcard) and <issuer>:aud "
            "(sts.amazonaws.com). Without them any pod in the cluster - any team - could assume "
            "another team's role and read its scratch data.",
            validate=rules.oidc_trust_exact_subject_validator,
            enforcement_level=mandatory,
        ),
        ResourceValidationPolicy(
            name="iam-no-wildcards",
            description='No "*" action, no NotAction/NotResource with Allow, no "*" principal, '
            'and no "*" resource for an action that AWS lets you scope to ARNs. Wildcards are '
            "how a policy written for one team's prefix silently grants every bucket; KMS key "
            'policies are exempt from the resource check because there "*" means "this key".',
            validate=rules.iam_no_wildcards_validator,
            enforcement_level=mandatory,
        ),
        StackValidationPolicy(
            name="s3-bucket-companions",
            description="Every bucket has its pulumi-aws v7 companions: a public-access block "
            "with all four flags true, default encryption, and BucketOwnerEnforced ownership "
            "(ACLs off). In v7 these are separate resources, so forgetting one is silent - and a "
            "bucket without them can become public through an ACL or policy.",
            validate=rules.s3_bucket_companions_validator,
            enforcement_level=mandatory,
        ),
        StackValidationPolicy(
            name="scratch-bucket-lifecycle",
            description="The scratch bucket expires objects and aborts incomplete multipart "
            "uploads. Scratch is shared by every team's workers; without expiry it grows "
            "forever, and abandoned multipart parts are billed but invisible in listings.",
            validate=rules.scratch_bucket_lifecycle_validator,
            enforcement_level=mandatory,
            config_schema=_SCRATCH_SCHEMA,
        ),
        StackValidationPolicy(
            name="data-buckets-protected-versioned",
            description="Data buckets the stack owns are protect=True and versioned: shared "
            "datasets must survive a mistaken `pulumi destroy` and an overwrite by a worker.",
            validate=rules.data_buckets_protected_versioned_validator,
            enforcement_level=mandatory,
            config_schema=_DATA_BUCKETS_SCHEMA,
        ),
        ResourceValidationPolicy(
            name="imdsv2-hop-limit-1",
            description="Launch templates and instances require IMDSv2 with a hop limit of 1, and "
            "EKS node groups use such a template. A container is one hop further than its node, "
            "so it cannot read the node role's credentials and must use its team role.",
            validate=rules.imdsv2_hop_limit_validator,
            enforcement_level=mandatory,
        ),
        ResourceValidationPolicy(
            name="eks-secrets-encryption",
            description="EKS envelope-encrypts Kubernetes Secrets with a KMS key, so secrets in "
            "etcd backups and snapshots are not readable without the key.",
            validate=rules.eks_secrets_encryption_validator,
            enforcement_level=mandatory,
        ),
        ResourceValidationPolicy(
            name="eks-endpoint-restricted",
            description="The EKS API endpoint is private, or public only to listed operator "
            "networks - never 0.0.0.0/0, which is AWS's default when public access is on.",
            validate=rules.eks_endpoint_restricted_validator,
            enforcement_level=mandatory,
        ),
        ResourceValidationPolicy(
            name="eks-no-creator-admin",
            description="EKS clusters use access entries (authentication mode API) and give "
            "the creating identity no implicit admin (bootstrapClusterCreatorAdminPermissions "
            "false). Otherwise only whoever ran the first `pulumi up` can administer the "
            "cluster, invisibly, and nobody can once that identity is rotated away; operators "
            "and CI get their access from eks.access.admin_role_arns instead.",
            validate=rules.eks_no_creator_admin_validator,
            enforcement_level=mandatory,
        ),
        ResourceValidationPolicy(
            name="ecr-scan-immutable",
            description="ECR repositories scan on push and have immutable tags: the worker image "
            "a stack pins by tag must be the one that was scanned, and cannot be replaced later.",
            validate=rules.ecr_scan_immutable_validator,
            enforcement_level=mandatory,
        ),
        ResourceValidationPolicy(
            name="no-open-ingress",
            description="No security group opens ingress to 0.0.0.0/0 or ::/0 unless the stack "
            "config lists it in network.ingress_cidrs. Dask schedulers and dashboards have no "
            "authentication of their own.",
            validate=rules.no_open_ingress_validator,
            enforcement_level=mandatory,
            config_schema=_INGRESS_SCHEMA,
        ),
        ResourceValidationPolicy(
            name="no-aws-keys-in-workloads",
            description="No AWS key or identity variables, and no literal secrets, in Helm "
            "values, ECS task definitions, launch-template user data or any other resource "
            "property. A key there is readable by every worker and everyone with the state file.",
            validate=rules.no_aws_keys_in_workloads_validator,
            enforcement_level=mandatory,
        ),
        StackValidationPolicy(
            name="no-aws-keys-in-stack-outputs",
            description="No AWS key or identity variables, and no literal secrets, in the stack "
            "outputs - they become the dask-cloudprovider kwargs and client settings analysts "
            "copy into notebooks.",
            validate=rules.no_aws_keys_in_stack_outputs_validator,
            enforcement_level=mandatory,
        ),
        StackValidationPolicy(
            name="object-store-key-per-team",
            description="The key pair of an outside object store (OSN, Ceph) is readable only "
            "by the roles of the teams the stack config allows for it. A GetSecretValue grant on "
            "another team's store secret - by a literal ARN or a wildcard - would hand that team "
            "a long-lived key to data it was never given.",
            validate=rules.object_store_key_per_team_validator,
            enforcement_level=mandatory,
        ),
        ResourceValidationPolicy(
            name="gateway-auth-not-simple-in-production",
            description="In a production stack the dask-gateway release never uses 'simple' "
            "auth (the chart's default): one shared password identifies nobody, so the team - "
            "and its IAM role - could not be derived from the user.",
            validate=rules.gateway_auth_not_simple_in_production_validator,
            enforcement_level=mandatory,
            config_schema=_PRODUCTION_SCHEMA,
        ),
        ResourceValidationPolicy(
            name="karpenter-nodepool-limits",
            description="Every Karpenter NodePool sets spec.limits.cpu and spec.limits.memory. "
            "Karpenter launches whatever Pending pods ask for; the limits are the only cap on "
            "what a runaway cluster.scale() or a bad adaptive policy can buy.",
            validate=rules.karpenter_nodepool_limits_validator,
            enforcement_level=mandatory,
        ),
        StackValidationPolicy(
            name="karpenter-spot-interruption-queue",
            description="A stack whose NodePools allow spot runs Karpenter with its interruption "
            "queue (settings.interruptionQueue). Without it Karpenter does not see the two-minute "
            "spot notice or rebalance events, and workers die instead of being drained.",
            validate=rules.karpenter_spot_interruption_queue_validator,
            enforcement_level=mandatory,
        ),
        StackValidationPolicy(
            name="schedulers-on-demand-only",
            description="No Dask scheduler can get a spot node: the scheduler pod's nodeSelector "
            "and tolerations match no NodePool that may launch spot for it. The scheduler holds "
            "the task graph; an interruption loses the whole cluster, not one worker.",
            validate=rules.schedulers_on_demand_only_validator,
            enforcement_level=mandatory,
        ),
        StackValidationPolicy(
            name="scheduler-do-not-disrupt",
            description="Schedulers that run on Karpenter nodes carry the pod annotation "
            'karpenter.sh/do-not-disrupt: "true", set by the gateway config, so consolidation, '
            "drift and expiry never remove a node under a running Dask cluster.",
            validate=rules.scheduler_do_not_disrupt_validator,
            enforcement_level=mandatory,
        ),
    ]


def pack_config(config: StackConfig) -> dict[str, dict[str, Any]]:
    """The policy-pack config for a stack, derived from its StackConfig - what the offline gate
    uses and what ``dask-platform plan --pack-config`` writes for ``pulumi preview
    --policy-pack-config``."""
    return {
        # Both settings name who may come in from outside the VPC: the gateway's and the
        # dask-cloudprovider clusters' (ecs.access_cidrs).
        "no-open-ingress": {
            "ingress_cidrs": sorted({*config.network.ingress_cidrs, *config.ecs.access_cidrs})
        },
        "gateway-auth-not-simple-in-production": {"production": config.production},
        "scratch-bucket-lifecycle": {"scratch_bucket": config.scratch.bucket_name},
        "data-buckets-protected-versioned": {
            "data_buckets": [b.name for b in config.data_buckets if b.managed]
        },
    }


def policy_config(
    pack: Mapping[str, Any], policy: Policy
) -> tuple[EnforcementLevel, dict[str, Any]]:
    """A policy's enforcement level and properties from a pack config in Pulumi's file format
    (``{"all": level, "<policy>": level | {"enforcementLevel": ..., ...}}``), schema defaults
    filled in as the engine does."""
    level = policy.enforcement_level or EnforcementLevel.ADVISORY
    if isinstance(pack.get("all"), str):
        level = EnforcementLevel(pack["all"])
    elif isinstance(pack.get("all"), Mapping) and "enforcementLevel" in pack["all"]:
        level = EnforcementLevel(pack["all"]["enforcementLevel"])
    entry = pack.get(policy.name)
    properties: dict[str, Any] = {}
    if policy.config_schema is not None:
        for key, schema in policy.config_schema.properties.items():
            if "default" in schema:
                properties[key] = schema["default"]
    if isinstance(entry, str):
        level = EnforcementLevel(entry)
    elif isinstance(entry, Mapping):
        for key, value in entry.items():
            if key == "enforcementLevel":
                level = EnforcementLevel(value)
            else:
                properties[key] = value
    return level, properties
