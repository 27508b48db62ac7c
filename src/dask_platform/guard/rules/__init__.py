"""The platform's policy rules, one ``<rule>_validator(args, report_violation)`` each.

These are plain functions over pulumi_policy's argument classes, so the same code runs inside the
CrossGuard pack (``policies/crossguard``, during ``pulumi preview``/``up``) and in the offline
gate (``dask-platform plan``, over the resources the program declares under mocks). The policy
objects - names, descriptions (the WHY), enforcement and config schemas - are in
:mod:`dask_platform.guard.policies`.

Property names are the engine's (camelCase), as both callers see them.

One module per domain: :mod:`.iam`, :mod:`.credentials`, :mod:`.storage` (S3), :mod:`.nodes`
(EC2/EKS), :mod:`.network`, :mod:`.images` (ECR), :mod:`.gateway`, :mod:`.karpenter`,
:mod:`.object_stores`; the resource type tokens are in :mod:`.resource_types`.
"""

from dask_platform.guard.rules.credentials import (
    no_aws_keys_in_stack_outputs_validator,
    no_aws_keys_in_workloads_validator,
    no_long_lived_credentials_validator,
)
from dask_platform.guard.rules.gateway import (
    CHART_DEFAULT_AUTH,
    gateway_auth_not_simple_in_production_validator,
)
from dask_platform.guard.rules.iam import (
    STS_AUDIENCE,
    iam_no_wildcards_validator,
    oidc_trust_exact_subject_validator,
)
from dask_platform.guard.rules.images import (
    ecr_scan_immutable_validator,
)
from dask_platform.guard.rules.karpenter import (
    ALL_CAPACITY_TYPES,
    CAPACITY_TYPE_LABEL,
    DEFAULT_CAPACITY_TYPES,
    DO_NOT_DISRUPT,
    KARPENTER_CHART,
    NODE_POOL_TYPES,
    karpenter_nodepool_limits_validator,
    karpenter_spot_interruption_queue_validator,
    scheduler_do_not_disrupt_validator,
    schedulers_on_demand_only_validator,
)
from dask_platform.guard.rules.network import (
    eks_endpoint_restricted_validator,
    no_open_ingress_validator,
)
from dask_platform.guard.rules.nodes import (
    eks_no_creator_admin_validator,
    eks_secrets_encryption_validator,
    imdsv2_hop_limit_validator,
)
from dask_platform.guard.rules.object_stores import (
    PRINCIPAL_POLICY_ATTACHMENTS,
    READ_SECRET_ACTION,
    ROLE_POLICY_ATTACHMENT,
    SECRET,
    TEAM_TAG,
    object_store_key_per_team_validator,
)
from dask_platform.guard.rules.policy_config import CONFIG_DEFAULTS, ReportViolation
from dask_platform.guard.rules.resource_types import (
    ACCESS_KEY,
    BUCKET_TYPES,
    DATA_BUCKET_COMPONENT,
    ECR_REPOSITORY,
    EKS_CLUSTER,
    EKS_NODE_GROUP,
    ENCRYPTION_TYPES,
    HELM_RELEASE_TYPES,
    IDENTITY_POLICY_TYPES,
    INSTANCE,
    KMS_KEY_POLICY_TYPES,
    LAUNCH_CONFIGURATION,
    LAUNCH_TEMPLATE,
    LIFECYCLE_TYPES,
    LOGIN_PROFILE,
    LONG_LIVED_CREDENTIALS,
    METADATA_DEFAULTS,
    OWNERSHIP_TYPES,
    PUBLIC_ACCESS_BLOCK_TYPES,
    RESOURCE_POLICY_TYPES,
    ROLE,
    SCRATCH_COMPONENT,
    SECURITY_GROUP_RULE,
    SECURITY_GROUP_TYPES,
    SERVICE_SPECIFIC_CREDENTIAL,
    STACK_TYPE,
    VERSIONING_TYPES,
    VPC_INGRESS_RULE,
)
from dask_platform.guard.rules.storage import (
    PUBLIC_ACCESS_FLAGS,
    data_buckets_protected_versioned_validator,
    s3_bucket_companions_validator,
    scratch_bucket_lifecycle_validator,
)

__all__ = [
    "ACCESS_KEY",
    "ALL_CAPACITY_TYPES",
    "BUCKET_TYPES",
    "CAPACITY_TYPE_LABEL",
    "CHART_DEFAULT_AUTH",
    "CONFIG_DEFAULTS",
    "DATA_BUCKET_COMPONENT",
    "DEFAULT_CAPACITY_TYPES",
    "DO_NOT_DISRUPT",
    "ECR_REPOSITORY",
    "EKS_CLUSTER",
    "EKS_NODE_GROUP",
    "ENCRYPTION_TYPES",
    "HELM_RELEASE_TYPES",
    "IDENTITY_POLICY_TYPES",
    "INSTANCE",
    "KARPENTER_CHART",
    "KMS_KEY_POLICY_TYPES",
    "LAUNCH_CONFIGURATION",
    "LAUNCH_TEMPLATE",
    "LIFECYCLE_TYPES",
    "LOGIN_PROFILE",
    "LONG_LIVED_CREDENTIALS",
    "METADATA_DEFAULTS",
    "NODE_POOL_TYPES",
    "OWNERSHIP_TYPES",
    "PRINCIPAL_POLICY_ATTACHMENTS",
    "PUBLIC_ACCESS_BLOCK_TYPES",
    "PUBLIC_ACCESS_FLAGS",
    "READ_SECRET_ACTION",
    "RESOURCE_POLICY_TYPES",
    "ROLE",
    "ROLE_POLICY_ATTACHMENT",
    "SCRATCH_COMPONENT",
    "SECRET",
    "SECURITY_GROUP_RULE",
    "SECURITY_GROUP_TYPES",
    "SERVICE_SPECIFIC_CREDENTIAL",
    "STACK_TYPE",
    "STS_AUDIENCE",
    "TEAM_TAG",
    "VERSIONING_TYPES",
    "VPC_INGRESS_RULE",
    "ReportViolation",
    "data_buckets_protected_versioned_validator",
    "ecr_scan_immutable_validator",
    "eks_endpoint_restricted_validator",
    "eks_no_creator_admin_validator",
    "eks_secrets_encryption_validator",
    "gateway_auth_not_simple_in_production_validator",
    "iam_no_wildcards_validator",
    "imdsv2_hop_limit_validator",
    "karpenter_nodepool_limits_validator",
    "karpenter_spot_interruption_queue_validator",
    "no_aws_keys_in_stack_outputs_validator",
    "no_aws_keys_in_workloads_validator",
    "no_long_lived_credentials_validator",
    "no_open_ingress_validator",
    "object_store_key_per_team_validator",
    "oidc_trust_exact_subject_validator",
    "s3_bucket_companions_validator",
    "scheduler_do_not_disrupt_validator",
    "schedulers_on_demand_only_validator",
    "scratch_bucket_lifecycle_validator",
]
