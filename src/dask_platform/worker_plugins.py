"""Run-time installs on workers where a failure is never silent.

distributed's ``PipInstall`` raises pip's error at ``client.register_plugin(...)`` for the
workers running at that moment; a worker that joins LATER (adaptive scaling, a replaced worker)
runs the same install, and when it fails (the index went away) distributed only logs it
(``Worker plugin ... failed to setup``): the worker joins, takes tasks, and they die with
``ModuleNotFoundError``. :class:`PipInstall` here installs the same way (``python -m pip
install``; on the platform's worker image into ``PIP_TARGET``) and, when pip fails, raises pip's
error to whoever registered it AND closes the worker, so no worker without the packages takes
tasks.

The worker image carries the compute stack only (no ``dask_platform``): this module is pickled
BY VALUE (``cloudpickle.register_pickle_by_value``), so it must import nothing beyond the
standard library and distributed.

Usage::

    from dask_platform.worker_plugins import PipInstall
    client.register_plugin(PipInstall(["xarray-regrid==0.4.0"]))

ref: https://distributed.dask.org/en/stable/plugins.html#built-in-worker-plugins
ref: distributed/worker.py (``Worker.plugin_add``: errors caught for joining workers)
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Sequence
from typing import Any

import cloudpickle
from distributed.diagnostics.plugin import WorkerPlugin


class PipInstall(WorkerPlugin):  # type: ignore[misc]
    """``python -m pip install <pip_options> <packages>`` on every worker, now and joining;
    a worker whose install fails raises ``RuntimeError("pip install failed with '<pip's
    stderr>'")`` and leaves the cluster."""

    def __init__(self, packages: Sequence[str], pip_options: Sequence[str] = ()) -> None:
        self.packages = list(packages)
        self.pip_options = list(pip_options)
        self.name = f"dask-platform-pip-install-{uuid.uuid4()}"

    def setup(self, worker: Any) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", *self.pip_options, *self.packages],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            message = f"pip install failed with '{done.stderr.strip()}'"
            # Close after this setup returns its error (the registering client sees it).
            worker.loop.add_callback(
                worker.close, reason=f"{self.name}: {message[:200]}", nanny=True
            )
            raise RuntimeError(message)


cloudpickle.register_pickle_by_value(sys.modules[__name__])
