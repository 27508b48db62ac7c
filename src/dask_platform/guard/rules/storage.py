"""Rules over S3 buckets: the companion resources every bucket needs (public-access block,
encryption, ownership), the scratch bucket's expiry and the data buckets' protection.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from dask_platform.guard.rules.policy_config import ReportViolation, _config
from dask_platform.guard.rules.resource_types import (
    BUCKET_TYPES,
    DATA_BUCKET_COMPONENT,
    ENCRYPTION_TYPES,
    LIFECYCLE_TYPES,
    OWNERSHIP_TYPES,
    PUBLIC_ACCESS_BLOCK_TYPES,
    SCRATCH_COMPONENT,
    VERSIONING_TYPES,
)
from dask_platform.guard.values import (
    as_list,
    first,
    get_path,
    is_mapping,
    number,
    truthy,
)

if TYPE_CHECKING:
    from pulumi_policy import PolicyResource, StackValidationArgs

# --------------------------------------------------------------------------- S3


def _bucket_keys(bucket: PolicyResource) -> set[str]:
    """What a companion's ``bucket`` input can hold for this bucket: its name (which is also its
    id in AWS) or its id."""
    keys = set()
    for prop in ("bucket", "id"):
        value = bucket.props.get(prop)
        if isinstance(value, str) and value:
            keys.add(value)
    return keys


def _bucket_name(bucket: PolicyResource) -> str:
    value = bucket.props.get("bucket")
    return str(value) if value else bucket.name


def _companions(
    resources: Iterable[PolicyResource], types: tuple[str, ...], bucket: PolicyResource
) -> list[PolicyResource]:
    keys = _bucket_keys(bucket)
    return [r for r in resources if r.resource_type in types and r.props.get("bucket") in keys]


def _buckets(args: StackValidationArgs) -> list[PolicyResource]:
    return [r for r in args.resources if r.resource_type in BUCKET_TYPES]


PUBLIC_ACCESS_FLAGS = (
    "blockPublicAcls",
    "blockPublicPolicy",
    "ignorePublicAcls",
    "restrictPublicBuckets",
)


def s3_bucket_companions_validator(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    for bucket in _buckets(args):
        name = _bucket_name(bucket)
        blocks = _companions(args.resources, PUBLIC_ACCESS_BLOCK_TYPES, bucket)
        if not blocks:
            report_violation(f"bucket {name}: no BucketPublicAccessBlock", bucket.urn)
        for block in blocks:
            off = [flag for flag in PUBLIC_ACCESS_FLAGS if not truthy(block.props.get(flag))]
            if off:
                report_violation(
                    f"bucket {name}: public-access-block {block.name} leaves "
                    f"{', '.join(off)} off (all four must be true)",
                    bucket.urn,
                )
        encryption = _companions(args.resources, ENCRYPTION_TYPES, bucket)
        if not encryption:
            report_violation(
                f"bucket {name}: no BucketServerSideEncryptionConfiguration", bucket.urn
            )
        for config in encryption:
            algorithms = [
                get_path(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm")
                for rule in as_list(config.props.get("rules"))
            ]
            if not any(algorithms):
                report_violation(
                    f"bucket {name}: encryption {config.name} sets no default sseAlgorithm",
                    bucket.urn,
                )
        ownership = _companions(args.resources, OWNERSHIP_TYPES, bucket)
        if not ownership:
            report_violation(
                f"bucket {name}: no BucketOwnershipControls (ACLs must be disabled)", bucket.urn
            )
        for control in ownership:
            setting = get_path(first(control.props.get("rule")), "objectOwnership")
            if setting != "BucketOwnerEnforced":
                report_violation(
                    f"bucket {name}: ownership {control.name} is {setting!r}; must be "
                    "'BucketOwnerEnforced' (ACLs disabled, IAM alone decides access)",
                    bucket.urn,
                )


def _parent_type(resource: PolicyResource) -> str | None:
    parent = resource.parent
    return parent.resource_type if parent is not None else None


def _covers_whole_bucket(rule: Any) -> bool:
    legacy_prefix = rule.get("prefix")
    if legacy_prefix:
        return False
    rule_filter = first(rule.get("filter"))
    if rule_filter is None:
        return True
    if not is_mapping(rule_filter):
        return False
    for key in rule_filter:
        value = rule_filter[key]
        if key == "prefix":
            if value:
                return False
        elif value not in (None, "", [], {}):
            return False
    return True


def _enabled_whole_bucket_rules(lifecycles: list[PolicyResource]) -> list[Any]:
    return [
        rule
        for lifecycle in lifecycles
        for rule in as_list(lifecycle.props.get("rules"))
        if is_mapping(rule) and rule.get("status") == "Enabled" and _covers_whole_bucket(rule)
    ]


def _positive(rule: Any, block: str, field: str) -> bool:
    return (number(get_path(first(rule.get(block)), field)) or 0) > 0


def scratch_bucket_lifecycle_validator(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    configured = _config(args, "scratch_bucket")
    scratch = [
        b
        for b in _buckets(args)
        if _parent_type(b) == SCRATCH_COMPONENT or (configured and _bucket_name(b) == configured)
    ]
    if configured and not any(_bucket_name(b) == configured for b in scratch):
        report_violation(f"scratch bucket {configured} (from the stack config) is not declared")
    for bucket in scratch:
        name = _bucket_name(bucket)
        rules = _enabled_whole_bucket_rules(_companions(args.resources, LIFECYCLE_TYPES, bucket))
        expiring = [r for r in rules if _positive(r, "expiration", "days")]
        aborting = [
            r
            for r in rules
            if _positive(r, "abortIncompleteMultipartUpload", "daysAfterInitiation")
        ]
        if not expiring:
            report_violation(
                f"scratch bucket {name}: no enabled whole-bucket lifecycle rule expiring objects "
                "after a number of days",
                bucket.urn,
            )
        if not aborting:
            report_violation(
                f"scratch bucket {name}: no enabled whole-bucket lifecycle rule aborting "
                "incomplete multipart uploads",
                bucket.urn,
            )


def data_buckets_protected_versioned_validator(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    configured = {str(b) for b in as_list(_config(args, "data_buckets"))}
    data = [
        b
        for b in _buckets(args)
        if _parent_type(b) == DATA_BUCKET_COMPONENT or _bucket_name(b) in configured
    ]
    declared = {_bucket_name(b) for b in data}
    for missing in sorted(configured - declared):
        report_violation(f"data bucket {missing} (managed in the stack config) is not declared")
    for bucket in data:
        name = _bucket_name(bucket)
        if not bucket.opts.protect:
            report_violation(
                f"data bucket {name} is not protect=True: `pulumi destroy` could delete shared "
                "data",
                bucket.urn,
            )
        statuses = [
            get_path(first(v.props.get("versioningConfiguration")), "status")
            for v in _companions(args.resources, VERSIONING_TYPES, bucket)
        ]
        if "Enabled" not in statuses:
            report_violation(
                f"data bucket {name} is not versioned (no BucketVersioning with status Enabled)",
                bucket.urn,
            )
