"""Functions that run ON Dask workers to show what a worker's identity can and cannot do.

They use only what a worker has: its environment (the webhook's ``AWS_ROLE_ARN`` +
``AWS_WEB_IDENTITY_TOKEN_FILE``; never a key) and the default boto3 / s3fs credential chain.
The demo and the integration tests send them with ``client.run`` / ``client.submit``.
"""

from __future__ import annotations

import json
import os
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
