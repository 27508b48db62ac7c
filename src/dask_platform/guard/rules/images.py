"""Rules over the ECR repositories the images are pushed to."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dask_platform.guard.rules.policy_config import ReportViolation
from dask_platform.guard.rules.resource_types import ECR_REPOSITORY
from dask_platform.guard.values import (
    first,
    get_path,
    truthy,
)

if TYPE_CHECKING:
    from pulumi_policy import ResourceValidationArgs


def ecr_scan_immutable_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type != ECR_REPOSITORY:
        return
    scanning = first(args.props.get("imageScanningConfiguration"))
    if not truthy(get_path(scanning, "scanOnPush")):
        report_violation("imageScanningConfiguration.scanOnPush is not true")
    mutability = args.props.get("imageTagMutability") or "MUTABLE"
    if mutability != "IMMUTABLE":
        report_violation(
            f"imageTagMutability is {mutability!r}; must be 'IMMUTABLE' so a tag pinned in a "
            "stack config always names the same image"
        )
