"""Rules against long-lived AWS credentials: IAM access keys, login profiles and
service-specific credentials, and AWS keys written into workloads or stack outputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dask_platform.guard.rules.policy_config import ReportViolation
from dask_platform.guard.rules.resource_types import LONG_LIVED_CREDENTIALS, STACK_TYPE
from dask_platform.guard.secrets import scan_value

if TYPE_CHECKING:
    from pulumi_policy import ResourceValidationArgs, StackValidationArgs

# --------------------------------------------------------------------------- long-lived keys


def no_long_lived_credentials_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type in LONG_LIVED_CREDENTIALS:
        kind = args.resource_type.rsplit(":", 1)[-1]
        report_violation(
            f"{kind} {args.name!r} creates a long-lived IAM credential; workloads use roles "
            "(IRSA, ECS task roles, instance profiles) and people use SSO, so no key or password "
            "is ever created to be copied"
        )


# --------------------------------------------------------------------------- credentials


def no_aws_keys_in_workloads_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type in LONG_LIVED_CREDENTIALS:
        return  # reported by no-long-lived-credentials; its outputs are the key itself
    for finding in scan_value("", args.props):
        report_violation(str(finding))


def no_aws_keys_in_stack_outputs_validator(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    for stack in (r for r in args.resources if r.resource_type == STACK_TYPE):
        for finding in scan_value("outputs", stack.props):
            report_violation(
                f"{finding} (stack outputs feed dask-cloudprovider and the clients)", stack.urn
            )
