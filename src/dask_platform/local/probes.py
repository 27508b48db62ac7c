"""Functions the demo runs ON Dask workers (write, list and read records in the team's prefix),
and :func:`by_value` to send them.

They use only what a worker has: its environment (the webhook's ``AWS_ROLE_ARN`` +
``AWS_WEB_IDENTITY_TOKEN_FILE``; never a key) and the default boto3 / s3fs credential chain.
The demo sends them with ``client.submit``; the integration tests' own probes (identity report,
single S3 attempts, ...) are in ``tests/integration/worker_probes.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


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
