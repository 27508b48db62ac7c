"""What every validator is handed besides its arguments: ``report_violation`` and the policy's
config (its value, or the schema default the policies declare).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

ReportViolation = Callable[..., None]


CONFIG_DEFAULTS: dict[str, Any] = {
    # Unset counts as production and as "no CIDR may be open": a pack run without config is as
    # strict as it can be. The policies' config schemas declare the same defaults.
    "production": True,
    "ingress_cidrs": [],
    "data_buckets": [],
    "scratch_bucket": None,
}


def _config(args: Any, key: str) -> Any:
    """A policy's configured value, or its schema default."""
    config = args.get_config() or {}
    return config[key] if key in config else CONFIG_DEFAULTS[key]
