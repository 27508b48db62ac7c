"""Reading resource properties the way both callers hand them over.

In the pack, pulumi_policy wraps properties in proxies (``Mapping``/``Sequence``, not ``dict``/
``list``) that raise ``UnknownValueError`` when a preview value is not known yet; the offline
gate wraps the recorded properties in the same proxies. These helpers therefore test against the
abstract types and never swallow that exception: pulumi_policy turns it into "not applicable
during preview".
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from typing import Any


def is_mapping(value: Any) -> bool:
    return isinstance(value, Mapping)


def is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def plain(value: Any) -> Any:
    """A proxied (or plain) value as ordinary dicts and lists."""
    if is_mapping(value):
        return {str(k): plain(value[k]) for k in value}
    if is_list(value):
        return [plain(v) for v in value]
    return value


def as_list(value: Any) -> list[Any]:
    """IAM and AWS fields accept a scalar or a list; absent is empty."""
    if value is None:
        return []
    if is_list(value):
        return list(value)
    return [value]


def first(value: Any) -> Any:
    """pulumi-aws v7 turned several one-element lists into objects; accept both."""
    if is_list(value):
        return value[0] if len(value) else None
    return value


def get_path(value: Any, *path: str | int) -> Any:
    """``value[p0][p1]...`` or None when any step is missing."""
    current = value
    for part in path:
        if isinstance(part, int):
            if not is_list(current) or len(current) <= part:
                return None
            current = current[part]
        else:
            if not is_mapping(current) or part not in current:
                return None
            current = current[part]
    return current


def truthy(value: Any) -> bool:
    """Booleans arrive as bools, or as "true"/"false" strings in some provider fields."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def policy_document(value: Any) -> dict[str, Any] | None:
    """An IAM document given as a JSON string or an object; None if absent or not a document."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    if is_mapping(value):
        return plain(value)
    return None


def statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [s for s in as_list(document.get("Statement")) if isinstance(s, dict)]


def is_open_cidr(cidr: Any) -> bool:
    """0.0.0.0/0 or ::/0, however it is spelled."""
    if not isinstance(cidr, str):
        return False
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False).prefixlen == 0
    except ValueError:
        return False


def normalise_cidr(cidr: str) -> str:
    try:
        return str(ipaddress.ip_network(cidr.strip(), strict=False))
    except ValueError:
        return cidr.strip()
