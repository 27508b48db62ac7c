"""Functions that run ON Dask workers to show what a worker's identity can and cannot do.

They use only what a worker has: its environment (the webhook's ``AWS_ROLE_ARN`` +
``AWS_WEB_IDENTITY_TOKEN_FILE``; never a key) and the default boto3 / s3fs credential chain.
The demo and the integration tests send them with ``client.run`` / ``client.submit``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from dask_platform.credentials import FORBIDDEN_ENV_VARS, key_variables_present


def by_value(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` behind a local closure, for ``client.submit`` / ``dask.delayed`` / ``map``.

    distributed pickles a task graph with the standard pickle first, which sends functions by
    reference (the worker imports their module), and switches to cloudpickle only for objects
    pickle cannot handle. A local closure is one, so the graph goes through cloudpickle, which
    sends ``function`` by value when its module is registered with
    ``cloudpickle.register_pickle_by_value`` - what workers without dask_platform (the worker
    image) need. ``client.run(function)`` needs no wrapper (it checks the registry itself).
    ref: https://github.com/dask/distributed/blob/main/distributed/protocol/pickle.py
    """

    def call(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    call.__name__ = getattr(function, "__name__", "call")
    call.__doc__ = function.__doc__
    return call


def _split(url: str) -> tuple[str, str]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return bucket, key


def identity_report(dask_worker: Any = None) -> dict[str, Any]:
    """Who this worker is to AWS, and which AWS variables its environment holds."""
    import boto3

    caller = boto3.client("sts").get_caller_identity()
    return {
        "pid": os.getpid(),
        "caller_arn": caller["Arn"],
        "key_variables": key_variables_present(os.environ),
        "aws_variables": sorted(k for k in os.environ if k.upper().startswith("AWS_")),
        "forbidden_variables": sorted(k for k in os.environ if k.upper() in FORBIDDEN_ENV_VARS),
        "my_variable": os.environ.get("MY_VARIABLE"),
        "team": os.environ.get("DASK_PLATFORM_TEAM"),
    }


def s3_attempt(operation: str, url: str, body: bytes = b"probe") -> dict[str, Any]:
    """Try one S3 operation with the worker's own credentials; report the outcome, not raise.

    ``operation``: one of put, get, delete, list.
    """
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3")
    bucket, key = _split(url)
    try:
        if operation == "put":
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            detail: Any = len(body)
        elif operation == "get":
            detail = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        elif operation == "delete":
            s3.delete_object(Bucket=bucket, Key=key)
            detail = None
        elif operation == "list":
            response = s3.list_objects_v2(Bucket=bucket, Prefix=key)
            detail = [o["Key"] for o in response.get("Contents", [])]
        else:
            raise ValueError(f"operation: {operation!r} is not one of put, get, delete, list")
    except ClientError as exc:
        return {
            "operation": operation,
            "url": url,
            "ok": False,
            "error": exc.response["Error"]["Code"],
        }
    return {"operation": operation, "url": url, "ok": True, "detail": detail}


def write_records(url: str, records: list[dict[str, Any]]) -> str:
    """Write one partition as JSON lines with s3fs (the library analysts' code uses)."""
    import s3fs

    fs = s3fs.S3FileSystem()
    with fs.open(url, "w") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return url


def read_records(url: str) -> list[dict[str, Any]]:
    import s3fs

    fs = s3fs.S3FileSystem()
    with fs.open(url, "r") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def list_prefix(url: str) -> list[str]:
    import s3fs

    fs = s3fs.S3FileSystem()
    return sorted(f"s3://{p}" for p in fs.ls(url.rstrip("/") + "/", refresh=True))


def slow_square(x: int, seconds: float) -> int:
    """A task that takes a while (for the worker-killed and token-rotation tests)."""
    time.sleep(seconds)
    return x * x


def s3_round_trips(url: str, count: int, pause: float) -> dict[str, Any]:
    """``count`` put+get round trips, ``pause`` apart, each refreshing credentials as boto3
    decides - so a job spans token rotations and short credential lifetimes."""
    import boto3

    session = boto3.session.Session()
    s3 = session.client("s3")
    bucket, key = _split(url)
    expiries = set()
    for i in range(count):
        s3.put_object(Bucket=bucket, Key=f"{key}{i}", Body=str(i).encode())
        assert s3.get_object(Bucket=bucket, Key=f"{key}{i}")["Body"].read() == str(i).encode()
        credentials = session.get_credentials()
        expiry = getattr(credentials, "_expiry_time", None)
        if expiry is not None:
            expiries.add(expiry.isoformat())
        time.sleep(pause)
    return {"round_trips": count, "credential_expiries": sorted(expiries)}


def assume_role_with_own_token(role_arn: str) -> dict[str, Any]:
    """Try to exchange this worker's own projected token for ``role_arn`` (another team's role,
    in the isolation tests): the role's trust policy must refuse it."""
    import boto3
    from botocore.exceptions import ClientError

    with open(os.environ["AWS_WEB_IDENTITY_TOKEN_FILE"]) as handle:
        token = handle.read()
    sts = boto3.client("sts")
    try:
        response = sts.assume_role_with_web_identity(
            RoleArn=role_arn, RoleSessionName="escalation-probe", WebIdentityToken=token
        )
    except ClientError as exc:
        return {"ok": False, "error": exc.response["Error"]["Code"]}
    return {"ok": True, "arn": response["AssumedRoleUser"]["Arn"]}


def s3_round_trips_recorded(
    url: str, seconds: float, pause: float, fixed_session: bool = False
) -> dict[str, Any]:
    """put+get round trips for ``seconds``, ``pause`` apart, recording which session (access
    key id) signed each one and when it was first used - to match against the emulator's STS
    call log. ``fixed_session``: take the worker's credentials once and never refresh them (a
    worker handed a fixed session); the first refusal ends the loop and is reported."""
    import boto3
    from botocore.exceptions import ClientError

    session = boto3.session.Session()
    if fixed_session:
        frozen = session.get_credentials().get_frozen_credentials()
        s3 = boto3.session.Session(
            aws_access_key_id=frozen.access_key,
            aws_secret_access_key=frozen.secret_key,
            aws_session_token=frozen.token,
        ).client("s3")
    else:
        s3 = session.client("s3")
    bucket, key = _split(url)
    first_use: dict[str, float] = {}

    def note_key(request: Any, **kwargs: Any) -> None:
        # The key id that signed this request (never the secret).
        authorization = str(request.headers.get("Authorization", ""))
        key_id = authorization.split("Credential=", 1)[-1].split("/", 1)[0]
        first_use.setdefault(key_id, time.time())

    s3.meta.events.register("request-created.s3", note_key)
    started = time.time()
    round_trips = 0
    while time.time() - started < seconds:
        try:
            s3.put_object(Bucket=bucket, Key=f"{key}{round_trips}", Body=b"x")
            s3.get_object(Bucket=bucket, Key=f"{key}{round_trips}")["Body"].read()
        except ClientError as exc:
            return {
                "ok": False,
                "pid": os.getpid(),
                "error": exc.response["Error"]["Code"],
                "status": exc.response["ResponseMetadata"]["HTTPStatusCode"],
                "after_seconds": time.time() - started,
                "round_trips": round_trips,
                "access_keys": first_use,
            }
        round_trips += 1
        time.sleep(pause)
    return {
        "ok": True,
        "pid": os.getpid(),
        "round_trips": round_trips,
        "started": started,
        "access_keys": first_use,
    }
