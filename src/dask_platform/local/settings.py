"""The local platform's waits and timeouts: one settings object, each with its reason.

Every value can be overridden from the environment as ``DASK_PLATFORM_LOCAL_<NAME>`` (upper
case), e.g. ``DASK_PLATFORM_LOCAL_GATEWAY_READY_SECONDS=180`` on a slow, shared CI machine. A
bad value is refused at start-up with the variable's name and the allowed range.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dask_platform.config.errors import format_validation_error
from dask_platform.local.processes import ComponentError

ENV_PREFIX = "DASK_PLATFORM_LOCAL_"


class LocalSettingsError(ComponentError):
    """An environment override of :class:`LocalTimeouts` is invalid (the commands report it
    like any component's failure to start)."""


class LocalTimeouts(BaseModel):
    """Seconds the local platform waits for its processes (all floats, > 0)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    emulator_ready_seconds: float = Field(
        default=60,
        gt=0,
        description="How long `local up` waits for an emulator (moto server) to write its "
        "ready file: it imports moto and binds a port.",
    )
    issuer_ready_seconds: float = Field(
        default=30,
        gt=0,
        description="How long `local up` waits for the OIDC issuer's ready file: it generates "
        "an RSA key, writes the first tokens and binds a port.",
    )
    gateway_ready_seconds: float = Field(
        default=60,
        gt=0,
        description="How long `local up` waits for a gateway's /api/health to answer 200: "
        "dask-gateway-server loads the chart's config file and opens its SQLite state.",
    )
    health_poll_seconds: float = Field(
        default=0.2, gt=0, description="Pause between two polls of a starting gateway's health."
    )
    health_request_seconds: float = Field(
        default=2,
        gt=0,
        description="Timeout of one /api/health request (start-up polls and `local status`).",
    )
    ready_poll_seconds: float = Field(
        default=0.1, gt=0, description="Pause between two looks for a component's ready file."
    )
    admin_request_seconds: float = Field(
        default=10,
        gt=0,
        description="Timeout of one request to an emulator's admin API (provisioning, tests).",
    )
    stop_grace_seconds: float = Field(
        default=10,
        gt=0,
        description="How long a stopped process has between SIGTERM and SIGKILL.",
    )
    kill_wait_seconds: float = Field(
        default=5,
        gt=0,
        description="How long to wait for a SIGKILLed process to be gone before reporting it "
        "as left over.",
    )
    cluster_start_seconds: float = Field(
        default=60,
        gt=0,
        description="dask-gateway's cluster_start_timeout on the local backend: local "
        "schedulers start in about a second (the upstream default, 10 minutes, is for pods "
        "waiting for a node).",
    )
    worker_start_seconds: float = Field(
        default=60,
        gt=0,
        description="dask-gateway's worker_start_timeout on the local backend (see "
        "cluster_start_seconds).",
    )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> LocalTimeouts:
        """The defaults with every ``DASK_PLATFORM_LOCAL_<NAME>`` of ``environ`` applied.

        Raises :class:`LocalSettingsError` naming each bad variable and what it allows."""
        environ = os.environ if environ is None else environ
        values = {
            name: environ[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if ENV_PREFIX + name.upper() in environ
        }
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = []
            for problem in format_validation_error(exc, cls):
                name, _, message = problem.partition(": ")
                problems.append(f"{ENV_PREFIX}{name.upper()}={values.get(name)!r}: {message}")
            raise LocalSettingsError("; ".join(problems)) from None
