"""dask-platform: Dask on AWS for Earth-science teams, with keyless S3 access for workers.

Importing this package (or any module in it) creates no resource and starts no process.
``dask_platform.connect(profile)`` (:func:`dask_platform.profiles.connect`) is imported on first
use, so ``import dask_platform`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "connect"]


def __getattr__(name: str) -> Any:
    if name == "connect":
        from dask_platform.profiles import connect

        return connect
    raise AttributeError(f"module 'dask_platform' has no attribute {name!r}")
