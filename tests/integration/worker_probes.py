"""Worker-side functions only the integration tests send (a job that takes a while, S3 round
trips across token rotations and session expiry, an escalation attempt with the worker's own
token). Workers cannot import the tests: this module travels by value (cloudpickle), so wrap
functions with :func:`dask_platform.local.probes.by_value` for ``client.submit`` / ``map``."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import cloudpickle

from dask_platform.credentials import FORBIDDEN_ENV_VARS, key_variables_present

cloudpickle.register_pickle_by_value(sys.modules[__name__])


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


def store_regions(profile: str) -> dict[str, Any]:
    """The region each way of naming ``profile`` gets on this worker, and the team's own.

    ``AWS_PROFILE`` is tried in a fresh interpreter (the worker's environment plus that
    variable), as a user's script or notebook kernel started with it would see it."""
    import json
    import subprocess

    import boto3
    import fsspec

    fs = fsspec.filesystem("s3", profile=profile, skip_instance_cache=True)
    probe = "import boto3, json; print(json.dumps(boto3.client('s3').meta.region_name))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "AWS_PROFILE": profile},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return {
        "environment": os.environ.get("AWS_DEFAULT_REGION"),
        "team": boto3.Session().region_name,
        "boto3_session": boto3.Session(profile_name=profile).region_name,
        "aws_profile": json.loads(done.stdout),
        "s3fs": fs.connect().meta.region_name,
    }


def aws_profile_round_trip(profile: str, bucket: str, key: str) -> dict[str, Any]:
    """Write and read ``s3://bucket/key`` in a fresh interpreter whose only naming of the store
    is ``AWS_PROFILE=<profile>`` (the worker's environment plus that variable: IRSA's
    AWS_ROLE_ARN/AWS_WEB_IDENTITY_TOKEN_FILE included). Returns the credential method and what
    was read, or the last line of the error."""
    import json
    import subprocess

    probe = (
        "import boto3, json, sys\n"
        "s = boto3.Session(); c = s.client('s3')\n"
        f"c.put_object(Bucket={bucket!r}, Key={key!r}, Body=b'by AWS_PROFILE')\n"
        f"body = c.get_object(Bucket={bucket!r}, Key={key!r})['Body'].read().decode()\n"
        "print(json.dumps({'method': s.get_credentials().method, 'read': body}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "AWS_PROFILE": profile},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    result: dict[str, Any] = json.loads(done.stdout)
    return result
