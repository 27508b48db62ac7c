"""What the emulator's admin API changes at run time: the emulator's clock (which only moves
forward) and STS's session lifetimes; :class:`BadSetting` names the field and the allowed
values.

ref: https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

# STS refuses DurationSeconds under 900. ref: API_AssumeRoleWithWebIdentity.html
STS_MINIMUM_SESSION_SECONDS = 900
# The lowest floor the emulator can be set to: tests lower the floor so a job runs across
# several credential lifetimes in real time (a deviation from AWS; see
# docs/explanation/local-stand-ins.md).
LOWEST_SESSION_SECONDS = 10


class BadSetting(ValueError):
    pass


class EmulatorClock:
    """The emulator's clock: the machine's, plus an offset that only grows.

    ``POST /dask-platform/clock {"advance_seconds": n}`` moves it (a test makes 901 s pass in
    no time); sessions minted afterwards are stamped with the moved clock, and expiry is
    checked against it. Clients keep their own clocks: a client refreshing credentials by its
    clock sees the emulator's clock as running ahead, as with any clock skew.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() + self._offset

    @property
    def offset(self) -> float:
        return self._offset

    def advance(self, seconds: float) -> None:
        if not seconds > 0:
            raise BadSetting(f"advance_seconds: must be a number > 0, got {seconds!r}")
        with self._lock:
            self._offset += float(seconds)


@dataclass
class StsSettings:
    """STS's session lifetimes as the emulator applies them."""

    minimum_session_seconds: int = STS_MINIMUM_SESSION_SECONDS
    web_identity_session_seconds: int | None = None  # None: STS's default, 3600

    def update(self, values: dict[str, Any]) -> None:
        unknown = sorted(set(values) - {"minimum_session_seconds", "web_identity_session_seconds"})
        if unknown:
            raise BadSetting(
                f"{', '.join(unknown)}: unknown; allowed: minimum_session_seconds, "
                "web_identity_session_seconds"
            )
        minimum = int(values.get("minimum_session_seconds", self.minimum_session_seconds))
        if not LOWEST_SESSION_SECONDS <= minimum <= STS_MINIMUM_SESSION_SECONDS:
            raise BadSetting(
                f"minimum_session_seconds: must lie between {LOWEST_SESSION_SECONDS} and "
                f"{STS_MINIMUM_SESSION_SECONDS} (STS's minimum), got {minimum}"
            )
        default = values.get("web_identity_session_seconds", self.web_identity_session_seconds)
        if default is not None and not minimum <= int(default) <= 43200:
            raise BadSetting(
                f"web_identity_session_seconds: must lie between minimum_session_seconds "
                f"({minimum}) and 43200, got {default}"
            )
        self.minimum_session_seconds = minimum
        self.web_identity_session_seconds = None if default is None else int(default)
