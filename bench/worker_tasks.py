"""Functions the benchmarks run ON Dask workers (sent by value: workers cannot import bench).

They use only what a worker has: the webhook's ``AWS_ROLE_ARN`` + ``AWS_WEB_IDENTITY_TOKEN_FILE``
and the emulator endpoint in its environment, and the default boto3 / s3fs credential chain -
except in the static-key comparison, where the key arrives as an argument (never through the
environment) and is an emulator user's key created for the benchmark and deleted after it.
"""

from __future__ import annotations

from typing import Any


def import_check(modules: list[str]) -> dict[str, Any]:
    """Whether ``modules`` import in this worker (after a pip install at start, or baked in)."""
    import importlib

    importlib.invalidate_caches()
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return {"ok": not missing, "missing": missing}


def s3_timings(
    bucket: str,
    prefix: str,
    sizes: dict[str, list[int]],
    static_key: list[str] | None = None,
) -> dict[str, Any]:
    """Time S3 PUTs then GETs per object size; ``sizes``: label -> [bytes, count].

    A new boto3 session per call: the first PUT includes resolving credentials (for web
    identity, the STS exchange) and is reported apart as ``cold_first_put_s``.
    """
    import os
    import time

    import boto3

    started = time.perf_counter()
    if static_key is None:
        session = boto3.session.Session()
    else:
        session = boto3.session.Session(
            aws_access_key_id=static_key[0], aws_secret_access_key=static_key[1]
        )
    s3 = session.client("s3")
    s3.put_object(Bucket=bucket, Key=f"{prefix}cold", Body=b"cold")
    result: dict[str, Any] = {
        "cold_first_put_s": time.perf_counter() - started,
        "credential_method": session.get_credentials().method,
        "sizes": {},
    }
    for label, (size, count) in sizes.items():
        body = os.urandom(size)
        puts = []
        for i in range(count):
            t0 = time.perf_counter()
            s3.put_object(Bucket=bucket, Key=f"{prefix}{label}/{i}", Body=body)
            puts.append(time.perf_counter() - t0)
        gets = []
        for i in range(count):
            t0 = time.perf_counter()
            data = s3.get_object(Bucket=bucket, Key=f"{prefix}{label}/{i}")["Body"].read()
            gets.append(time.perf_counter() - t0)
            if len(data) != size:
                raise RuntimeError(f"GET {prefix}{label}/{i}: {len(data)} bytes, not {size}")
        result["sizes"][label] = {"bytes": size, "put_s": puts, "get_s": gets}
    return result


def s3_steady_load(
    url: str, seconds: float, interval: float, library: str, worker_id: str
) -> dict[str, Any]:
    """PUT + GET a 1 KiB object every ``interval`` s for ``seconds`` with one long-lived client
    (boto3 or s3fs), the way a long job keeps its filesystem; count operations and errors."""
    import time

    body = b"x" * 1024
    base = f"{url.rstrip('/')}/{worker_id}"
    if library == "boto3":
        import boto3

        s3 = boto3.session.Session().client("s3")
        bucket, _, key_prefix = base.removeprefix("s3://").partition("/")

        def put(i: int) -> None:
            s3.put_object(Bucket=bucket, Key=f"{key_prefix}/{i % 10}", Body=body)

        def get(i: int) -> None:
            s3.get_object(Bucket=bucket, Key=f"{key_prefix}/{i % 10}")["Body"].read()

    elif library == "s3fs":
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True)

        def put(i: int) -> None:
            fs.pipe_file(f"{base}/{i % 10}", body)

        def get(i: int) -> None:
            fs.cat_file(f"{base}/{i % 10}")

    else:
        raise ValueError(f"library: {library!r} is not one of boto3, s3fs")
    operations = 0
    errors: list[str] = []
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        for call in (put, get):
            try:
                call(i)
                operations += 1
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        i += 1
        time.sleep(interval)
    return {"operations": operations, "errors": len(errors), "first_errors": errors[:3]}
