"""Launcher and client for the AWS emulator (moto in server mode behind the IAM gate).

    with Emulator(state_dir).start() as aws:
        s3 = aws.client("s3")                 # admin (AdministratorAccess) credentials
        aws.set_enforcement(False)            # moto's /moto-api/reset-auth, if a test needs it
        aws.stats()["counters"]["sts:AssumeRoleWithWebIdentity"]
        aws.advance_clock(901)                # the emulator's clock (sessions expire by it)
        aws.sts_log()                         # every AssumeRoleWithWebIdentity, with outcome

The server side is :mod:`dask_platform.local.emulator_server`; the docstring of
:mod:`dask_platform.local.emulator_gate` says what the gate adds to moto. Nothing starts until
:meth:`Emulator.start`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from dask_platform.local.emulator_server import ADMIN_TOKEN_HEADER, READY_FILE
from dask_platform.local.processes import (
    MARKER_ENV,
    ComponentError,
    Spawned,
    clean_environment,
    is_alive,
    read_json,
    spawn,
    terminate,
    wait_for,
)
from dask_platform.local.settings import LocalTimeouts

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class AdminCredentials:
    access_key_id: str
    secret_access_key: str

    def as_client_kwargs(self) -> dict[str, str]:
        return {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
        }


class Emulator:
    """One emulator process. ``state_dir`` holds its ready file and log.

    ``web_identity_duration``: session seconds when AssumeRoleWithWebIdentity names none
    (None: STS's 3600). ``minimum_session_seconds``: the least DurationSeconds accepted (None:
    STS's 900; down to 10 so a test can outlive sessions). Both can change at run time
    (:meth:`sts_settings`).
    """

    def __init__(
        self,
        state_dir: Path,
        region: str = DEFAULT_REGION,
        web_identity_duration: int | None = None,
        port: int = 0,
        marker: Path | None = None,
        minimum_session_seconds: int | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.region = region
        self.web_identity_duration = web_identity_duration
        self.minimum_session_seconds = minimum_session_seconds
        self.requested_port = port
        self.marker = marker or self.state_dir
        self._info: dict[str, Any] | None = None

    @property
    def ready_file(self) -> Path:
        return self.state_dir / READY_FILE

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / "emulator.log"

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float | None = None) -> Emulator:
        """Start the server; wait ``timeout`` seconds (default: the setting
        ``emulator_ready_seconds``, dask_platform.local.settings) for its ready file."""
        if timeout is None:
            timeout = LocalTimeouts.from_environment().emulator_ready_seconds
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)
        argv = [
            sys.executable,
            "-m",
            "dask_platform.local.emulator_server",
            "--state-dir",
            str(self.state_dir),
            "--port",
            str(self.requested_port),
        ]
        if self.web_identity_duration is not None:
            argv += ["--web-identity-duration", str(self.web_identity_duration)]
        if self.minimum_session_seconds is not None:
            argv += ["--minimum-session-seconds", str(self.minimum_session_seconds)]
        spawned = spawn(
            "emulator",
            argv,
            clean_environment(os.environ, {MARKER_ENV: str(self.marker)}),
            self.log_file,
            cwd=self.state_dir,
        )
        try:
            self._info = wait_for(
                spawned, self.ready_file, timeout, lambda d: d["pid"] == spawned.pid
            )
        except ComponentError:
            terminate([spawned.pid])
            raise
        return self

    @classmethod
    def attach(cls, state_dir: Path, region: str = DEFAULT_REGION) -> Emulator:
        """The emulator already running for ``state_dir`` (raises if there is none)."""
        emulator = cls(state_dir, region=region)
        if not emulator.ready_file.is_file():
            raise ComponentError(f"no emulator is running for {state_dir}")
        emulator._info = read_json(emulator.ready_file)
        if not is_alive(emulator.pid):
            raise ComponentError(
                f"the emulator (pid {emulator.pid}) is not running; see {emulator.log_file}"
            )
        return emulator

    def stop(self) -> None:
        if self._info is not None:
            terminate([self.pid])
        self.ready_file.unlink(missing_ok=True)
        self._info = None

    def __enter__(self) -> Emulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ facts

    @property
    def info(self) -> dict[str, Any]:
        if self._info is None:
            raise ComponentError("the emulator is not started")
        return self._info

    @property
    def spawned(self) -> Spawned:
        return Spawned("emulator", self.pid, self.log_file)

    @property
    def pid(self) -> int:
        return int(self.info["pid"])

    @property
    def endpoint(self) -> str:
        return str(self.info["endpoint"])

    @property
    def account_id(self) -> str:
        return str(self.info["account_id"])

    @property
    def admin_credentials(self) -> AdminCredentials:
        admin = self.info["admin"]
        return AdminCredentials(admin["access_key_id"], admin["secret_access_key"])

    # ------------------------------------------------------------------ use

    def client(self, service: str, credentials: dict[str, str] | None = None) -> Any:
        """A boto3 client against the emulator; admin credentials unless others are given.

        ``credentials`` takes STS-style keys (AccessKeyId, SecretAccessKey, SessionToken).
        """
        import boto3

        if credentials is None:
            kwargs: dict[str, str] = self.admin_credentials.as_client_kwargs()
        else:
            kwargs = {
                "aws_access_key_id": credentials["AccessKeyId"],
                "aws_secret_access_key": credentials["SecretAccessKey"],
                "aws_session_token": credentials["SessionToken"],
            }
        return boto3.session.Session().client(
            service, endpoint_url=self.endpoint, region_name=self.region, **kwargs
        )

    def _admin_request(
        self, method: str, path: str, data: bytes | None = None, json: Any = None
    ) -> Any:
        response = requests.request(
            method,
            self.endpoint + path,
            data=data,
            json=json,
            headers={ADMIN_TOKEN_HEADER: str(self.info["admin_token"])},
            timeout=LocalTimeouts.from_environment().admin_request_seconds,
        )
        if response.status_code == 400:
            raise ValueError(response.text.strip())
        response.raise_for_status()
        return response.json()

    def set_enforcement(self, enabled: bool) -> None:
        """Switch moto's IAM enforcement (moto's ``/moto-api/reset-auth``: the number of
        requests served before enforcement starts; 0 = from now on, inf = never)."""
        self._admin_request("POST", "/moto-api/reset-auth", b"0" if enabled else b"inf")

    def enforcement_enabled(self) -> bool:
        previous = self._admin_request("POST", "/moto-api/reset-auth", b"0")
        enabled = float(previous["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]) == 0
        if not enabled:
            self.set_enforcement(False)
        return enabled

    def stats(self) -> dict[str, Any]:
        """Counters kept by the gate: ``counters`` (``sts:<Action>``, denials) and
        ``web_identity_by_role`` (role ARN -> AssumeRoleWithWebIdentity calls)."""
        result: dict[str, Any] = self._admin_request("GET", "/dask-platform/stats")
        return result

    def clock(self) -> dict[str, float]:
        """The emulator's clock: ``now`` (epoch seconds) and ``offset_seconds`` from this
        machine's clock."""
        result: dict[str, float] = self._admin_request("GET", "/dask-platform/clock")
        return result

    def advance_clock(self, seconds: float) -> dict[str, float]:
        """Move the emulator's clock forward by ``seconds`` (> 0; it never goes back):
        sessions expire by this clock, and sessions minted later are stamped with it."""
        result: dict[str, float] = self._admin_request(
            "POST", "/dask-platform/clock", json={"advance_seconds": seconds}
        )
        return result

    def sts_log(self) -> list[dict[str, Any]]:
        """Every AssumeRoleWithWebIdentity the emulator answered, oldest first: ``time``
        (emulator clock), ``role_arn``, ``session_name`` and either ``access_key_id`` +
        ``expiration`` + ``duration_seconds`` or ``error`` + ``message``."""
        result: list[dict[str, Any]] = self._admin_request("GET", "/dask-platform/sts-log")
        return result

    def sts_settings(self, **values: int | None) -> dict[str, Any]:
        """Read, or with ``values`` change, ``minimum_session_seconds`` (10..900) and
        ``web_identity_session_seconds`` (the lifetime when a caller names none). Raises
        ValueError naming the field and its allowed values."""
        if values:
            result: dict[str, Any] = self._admin_request(
                "POST", "/dask-platform/sts-settings", json=values
            )
        else:
            result = self._admin_request("GET", "/dask-platform/sts-settings")
        return result
