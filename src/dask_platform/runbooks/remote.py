"""Functions that run on a cluster's workers or scheduler, sent by value.

Production worker images carry the compute stack, not this project, so these functions must not
need ``dask_platform`` on the other side: :func:`by_value` registers this module (and
:mod:`dask_platform.credentials`) with cloudpickle, which then sends the functions' code (and
the constants they use) instead of an import path. They import only the standard library,
boto3 and botocore, inside the functions.
"""

from __future__ import annotations

import os
import time
from typing import Any

from dask_platform import credentials
from dask_platform.credentials import FORBIDDEN_ENV_VARS, KEY_ENV_VARS, key_variables_present

PROBE_PREFIX = "verify-workers"
# What the EKS pod-identity webhook (and the local overlay playing it) sets: expected, not a
# finding. Every other identity variable redirects the worker away from its team role.
WEBHOOK_IDENTITY = frozenset(
    # AWS_CONFIG_FILE: the platform's AWS config (object store profiles), set by the options
    # handler, which refuses it from users.
    {"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONFIG_FILE"}
)
OVERRIDES = FORBIDDEN_ENV_VARS - KEY_ENV_VARS - WEBHOOK_IDENTITY


def by_value() -> None:
    """Send this module's functions by value, and :mod:`dask_platform.credentials` (the one
    list of key variables; it imports only the standard library), idempotently."""
    import sys

    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cloudpickle.register_pickle_by_value(credentials)


def _s3(operation: str, url: str, body: bytes = b"") -> dict[str, Any]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = url.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3")
    try:
        if operation == "put":
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            return {"ok": True}
        if operation == "get":
            data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            return {"ok": True, "matches": data == body}
        s3.delete_object(Bucket=bucket, Key=key)
        return {"ok": True}
    except ClientError as exc:
        return {"ok": False, "error": exc.response["Error"]["Code"]}
    except BotoCoreError as exc:
        return {"ok": False, "error": type(exc).__name__}


def worker_team() -> str | None:
    """The worker's DASK_PLATFORM_TEAM (set by the gateway's options handler)."""
    return os.environ.get("DASK_PLATFORM_TEAM")


def verify_worker(
    team_url: str, other_team_url: str, probe_id: str, dask_worker: Any = None
) -> dict[str, Any]:
    """What `verify-workers` checks on one worker. Reports variable NAMES, never values."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    name = str(getattr(dask_worker, "name", None) or os.getpid())
    report: dict[str, Any] = {
        "worker": name,
        "key_variables": key_variables_present(os.environ),
        "aws_variables": sorted(k for k in os.environ if k.upper().startswith("AWS_")),
        "identity_overrides": sorted(k for k in os.environ if k.upper() in OVERRIDES),
        "team": os.environ.get("DASK_PLATFORM_TEAM"),
    }
    try:
        report["caller_arn"] = boto3.client("sts").get_caller_identity()["Arn"]
    except (ClientError, BotoCoreError) as exc:
        report["caller_arn"] = None
        report["caller_error"] = type(exc).__name__ + (
            f" {exc.response['Error']['Code']}" if isinstance(exc, ClientError) else ""
        )
    body = f"{PROBE_PREFIX} {probe_id} {name} {time.time()}".encode()
    own = f"{team_url.rstrip('/')}/{PROBE_PREFIX}/{probe_id}/{name}"
    written = _s3("put", own, body)
    read = _s3("get", own, body) if written["ok"] else {"ok": False, "error": "not written"}
    if written["ok"]:
        _s3("delete", own)
    report["team_write"] = written
    report["team_read"] = read
    other = f"{other_team_url.rstrip('/')}/{PROBE_PREFIX}/{probe_id}/{name}"
    foreign = _s3("put", other, body)
    if foreign["ok"]:
        # Isolation is broken; do not leave the evidence in the other team's prefix.
        _s3("delete", other)
    report["other_team_write"] = foreign
    return report


def object_store_access(stores: list[str]) -> dict[str, dict[str, Any]]:
    """Per object store profile: can this worker get the store's key (its credential_process
    reads the store's secret with the worker's team role)? ``{"ok", "error"}``; never the key."""
    import boto3

    out: dict[str, dict[str, Any]] = {}
    for store in stores:
        try:
            credentials = boto3.Session(profile_name=store).get_credentials()
            frozen = credentials.get_frozen_credentials() if credentials else None
            out[store] = {"ok": bool(frozen and frozen.access_key), "error": None}
        except Exception as exc:  # reported as a finding or as the expected denial
            out[store] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return out


def scheduler_activity(dask_scheduler: Any = None) -> dict[str, Any]:
    """Whether the scheduler runs anything, and when anything last happened (its own clock)."""
    scheduler = dask_scheduler
    processing = sum(len(ws.processing) for ws in scheduler.workers.values())
    log = scheduler.transition_log
    last = log[-1][-1] if log else scheduler.time_started
    return {
        "now": time.time(),
        "last_activity": float(last),
        "processing": processing,
        "queued": len(scheduler.queued),
        "unrunnable": len(scheduler.unrunnable),
        "workers": len(scheduler.workers),
        "tasks": len(scheduler.tasks),
    }
