"""dask-gateway-server's option fields with errors that name the whole allowed range or choice.

Upstream's fields say ``worker_cores must be <= 10.000000, got 11`` and ``'climate' is not a
valid option for team``; these say ``worker_cores: 11 is outside 1 to 10`` and ``team:
'climate' is not one you may choose; choose one of: hydrology`` - the field, the value and
everything allowed, at request time. Same JSON spec as upstream (``int``, ``float``,
``select``), so the client and its widget are unchanged. Imported by the gateway config file,
so it needs only dask-gateway-server.

ref: https://gateway.dask.org/cluster-options.html
"""

from __future__ import annotations

from typing import Any

from dask_gateway_server import options as upstream

__all__ = ["Float", "Integer", "Select", "range_error"]


def range_error(field: str, value: float, low: float | None, high: float | None) -> str:
    """``"<field>: <value> is outside <low> to <high>"`` (an open end reads "any")."""
    low_text = "any" if low is None else f"{low:g}"
    high_text = "any" if high is None else f"{high:g}"
    return f"{field}: {value:g} is outside {low_text} to {high_text}"


class _Ranged:
    field: str
    min: Any
    max: Any

    def _check_range(self, x: Any) -> Any:
        if (self.min is not None and x < self.min) or (self.max is not None and x > self.max):
            raise ValueError(range_error(self.field, x, self.min, self.max))
        return x


class Integer(_Ranged, upstream.Integer):  # type: ignore[misc]
    """upstream ``Integer`` (spec ``int``); out of range: ``"<field>: 11 is outside 1 to 10"``."""

    def validate(self, x: Any) -> Any:
        if not isinstance(x, int) or isinstance(x, bool):
            raise TypeError(f"{self.field}: must be an integer, got {x!r}")
        return self._check_range(x)


class Float(_Ranged, upstream.Float):  # type: ignore[misc]
    """upstream ``Float`` (spec ``float``); out of range: ``"<field>: 33 is outside 1 to 32"``."""

    def validate(self, x: Any) -> Any:
        if isinstance(x, int) and not isinstance(x, bool):
            x = float(x)
        if not isinstance(x, float):
            raise TypeError(f"{self.field}: must be a number, got {x!r}")
        return self._check_range(x)


class Select(upstream.Select):  # type: ignore[misc]
    """upstream ``Select`` (spec ``select``); a value not offered names every choice."""

    def validate(self, x: Any) -> Any:
        if not isinstance(x, str) or x not in self.options:
            raise ValueError(
                f"{self.field}: {x!r} is not one you may choose; choose one of: "
                f"{', '.join(self.options)}"
            )
        return x
