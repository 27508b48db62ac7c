"""Rules over the dask-gateway Helm release, and the helpers that read its values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dask_platform.guard.rules.policy_config import ReportViolation, _config
from dask_platform.guard.rules.resource_types import HELM_RELEASE_TYPES
from dask_platform.guard.values import (
    get_path,
    is_mapping,
)

if TYPE_CHECKING:
    from pulumi_policy import ResourceValidationArgs


# The upstream dask-gateway chart's default when values do not set gateway.auth.type.
# ref: https://github.com/dask/dask-gateway/blob/main/resources/helm/dask-gateway/values.yaml
CHART_DEFAULT_AUTH = "simple"


def _helm_values(props: Mapping[str, Any]) -> Any:
    values = props.get("values")
    return values if is_mapping(values) else {}


def _is_dask_gateway_chart(props: Mapping[str, Any]) -> bool:
    chart = props.get("chart")
    return isinstance(chart, str) and chart.rstrip("/").rsplit("/", 1)[-1] == "dask-gateway"


def gateway_auth_not_simple_in_production_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type not in HELM_RELEASE_TYPES or not _is_dask_gateway_chart(args.props):
        return
    if not _config(args, "production"):
        return
    auth = get_path(_helm_values(args.props), "gateway", "auth", "type") or CHART_DEFAULT_AUTH
    if auth == "simple":
        report_violation(
            "the dask-gateway release uses 'simple' auth (one shared password, no identity) in a "
            "production stack; use one of {custom, jupyterhub, kerberos}"
        )
