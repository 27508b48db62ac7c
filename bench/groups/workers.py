"""Time to workers: through the local gateway vs a bare `dask worker`, and pip-at-start vs baked.

Per repetition, every variant runs once, in an order rotated between repetitions so drift in
the machine's load spreads over all of them:

* ``bare``: a scheduler in this process (``LocalCluster(n_workers=0, processes=False)``) and N
  ``dask worker`` processes started with the gateway's flags; time until N have registered.
* ``gateway``: as an analyst does it - ``Gateway.new_cluster()`` (the gateway starts a
  ``dask scheduler`` process), ``get_client()``, ``scale(N)``; time until N workers have
  registered. The local gateway's workers are processes of this virtualenv: the venv plays the
  image, already pulled.
* ``baked``: the gateway cluster, with the extra packages already on disk (installed once
  before the runs into a throw-away ``--prefix`` that ``PYTHONPATH`` points at), until every
  worker imports them.
* ``pip``: the same cluster with distributed's ``PipInstall`` plugin registered before
  ``scale(N)``, installing the packages at start (scheduler and each worker, ``--no-cache-dir``
  as on a fresh pod) into a fresh throw-away prefix per run, until every worker imports them.

The virtualenv is never modified: the packages must not be installed in it (checked).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.platforms import (
    gateway_for,
    local_platform,
    new_cluster,
    stop_cluster,
    wait_until,
    worker_count,
)
from bench.report import Row, fmt_ratio
from bench.runner import Context
from bench.stats import ratio, summary

TITLE = "Time to workers"
WORKER_COUNTS = (1, 4)
VARIANTS = ("bare", "gateway", "baked", "pip")
# Two small pure-Python packages and one compiled wheel, none of them in the project's
# environment; pinned so runs install the same thing.
PIP_PACKAGES = ("humanize==4.17.0", "tabulate==0.10.0", "ujson==5.11.0")
PIP_MODULES = ("humanize", "tabulate", "ujson")
USER = "alice"
WORKER_MEMORY = str(2**30)
TIMEOUT = 180.0
# The committed local config allows 4 cores per cluster, the scheduler's included (3 workers);
# N=4 one-core workers need 5.
CLUSTER_LIMITS = {"gateway": {"cluster_max_cores": 5, "cluster_max_workers": 4}}


class WorkersBenchError(RuntimeError):
    pass


def site_dirs(prefix: Path) -> list[str]:
    """Where ``pip install --prefix`` puts pure and compiled packages for this interpreter."""
    paths = {
        sysconfig.get_path(kind, vars={"base": str(prefix), "platbase": str(prefix)})
        for kind in ("purelib", "platlib")
    }
    for path in paths:
        Path(path).mkdir(parents=True, exist_ok=True)
    return sorted(paths)


def pip_options(prefix: Path) -> list[str]:
    # --force-reinstall: the scheduler and every worker install for themselves, as separate pods
    # would, even though here they share the prefix.
    return ["--prefix", str(prefix), "--force-reinstall", "--no-cache-dir", "--quiet"]


def _check_not_installed() -> None:
    import importlib.util

    present = [m for m in PIP_MODULES if importlib.util.find_spec(m) is not None]
    if present:
        raise WorkersBenchError(
            f"{', '.join(present)} already importable in this environment: the pip-at-start "
            "comparison needs packages the workers do not have; change PIP_PACKAGES"
        )


def _bare_env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    env = {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    for key in ("LANG", "LC_ALL", "HOME"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def bare_run(workers: int) -> dict[str, float]:
    from distributed import LocalCluster

    dask_bin = str(Path(sys.executable).parent / "dask")
    with LocalCluster(
        n_workers=0,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        scheduler_port=0,
        dashboard_address=None,
    ) as cluster:
        scheduler = cluster.scheduler
        assert scheduler is not None
        procs: list[subprocess.Popen[bytes]] = []
        started = time.monotonic()
        try:
            for i in range(workers):
                procs.append(
                    subprocess.Popen(
                        [
                            dask_bin,
                            "worker",
                            cluster.scheduler_address,
                            "--nthreads",
                            "1",
                            "--memory-limit",
                            WORKER_MEMORY,
                            "--dashboard-address",
                            "127.0.0.1:0",
                            "--name",
                            f"bench-{i}",
                        ],
                        env=_bare_env(),
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
            registered = wait_until(
                lambda: len(scheduler.workers) >= workers, TIMEOUT, 0.02, "bare workers"
            )
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    return {"ready_s": registered - started}


def gateway_run(
    gateway: Any,
    platform: Any,
    workers: int,
    environment: dict[str, str] | None = None,
    install_prefix: Path | None = None,
) -> dict[str, float]:
    from distributed.diagnostics.plugin import PipInstall

    from bench import worker_tasks

    started = time.monotonic()
    cluster = new_cluster(gateway, environment)
    client = None
    try:
        created = time.monotonic()
        client = cluster.get_client(set_as_default=False)
        connected = time.monotonic()
        if install_prefix is not None:
            client.register_plugin(
                PipInstall(list(PIP_PACKAGES), pip_options=pip_options(install_prefix))
            )
        cluster.scale(workers)
        registered = wait_until(
            lambda: worker_count(client) >= workers, TIMEOUT, 0.05, f"{workers} gateway workers"
        )
        ready = registered
        if environment is not None:

            def importable() -> bool:
                reports = client.run(worker_tasks.import_check, list(PIP_MODULES))
                return len(reports) >= workers and all(r["ok"] for r in reports.values())

            ready = wait_until(importable, TIMEOUT, 0.1, "the packages on every worker")
    finally:
        stop_cluster(cluster, client, platform)
    return {
        "created_s": created - started,
        "client_s": connected - started,
        "registered_s": registered - started,
        "ready_s": ready - started,
    }


def run(context: Context) -> dict[str, Any]:
    import cloudpickle

    from bench import worker_tasks

    _check_not_installed()
    cloudpickle.register_pickle_by_value(worker_tasks)
    repeat = context.repetitions(full=5, quick=2)
    baked_prefix = context.work_dir / "baked"
    started = time.monotonic()
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", *pip_options(baked_prefix), *PIP_PACKAGES],
        capture_output=True,
        text=True,
        check=False,
    )
    if installed.returncode != 0:
        raise WorkersBenchError(f"pip install {' '.join(PIP_PACKAGES)}:\n{installed.stderr}")
    host_install_s = time.monotonic() - started
    baked_env = {"PYTHONPATH": os.pathsep.join(site_dirs(baked_prefix))}
    runs: dict[str, dict[int, list[dict[str, float]]]] = {
        v: {n: [] for n in WORKER_COUNTS} for v in VARIANTS
    }
    pairs = [(v, n) for v in VARIANTS for n in WORKER_COUNTS]
    with local_platform("workers", context.console, stack=CLUSTER_LIMITS) as platform:
        gateway = gateway_for(platform, USER)
        try:
            # One untimed cluster first: the gateway's and the page cache's first-use costs.
            gateway_run(gateway, platform, 1)
            with context.task("time to workers", total=repeat * len(pairs)) as step:
                for rep in range(repeat):
                    shift = (rep * 3) % len(pairs)
                    for variant, workers in pairs[shift:] + pairs[:shift]:
                        if variant == "bare":
                            measured = bare_run(workers)
                        elif variant == "gateway":
                            measured = gateway_run(gateway, platform, workers)
                        elif variant == "baked":
                            measured = gateway_run(gateway, platform, workers, baked_env)
                        else:
                            prefix = context.work_dir / f"pip-{rep}-{workers}"
                            env = {"PYTHONPATH": os.pathsep.join(site_dirs(prefix))}
                            measured = gateway_run(gateway, platform, workers, env, prefix)
                        runs[variant][workers].append(measured)
                        step(f"{variant} N={workers}: {measured['ready_s']:.1f}s")
        finally:
            gateway.close()
    figures: dict[str, Any] = {}
    for variant in VARIANTS:
        for workers in WORKER_COUNTS:
            samples = runs[variant][workers]
            entry = {"ready_s": summary([r["ready_s"] for r in samples])}
            if variant != "bare":
                entry["created_s"] = summary([r["created_s"] for r in samples])
                entry["registered_s"] = summary([r["registered_s"] for r in samples])
            figures[f"{variant}_{workers}"] = entry

    def med(key: str) -> float:
        return float(figures[key]["ready_s"]["median"])

    figures["ratios"] = {
        **{f"gateway_to_bare_{n}": ratio(med(f"gateway_{n}"), med(f"bare_{n}")) for n in (1, 4)},
        **{f"pip_to_baked_{n}": ratio(med(f"pip_{n}"), med(f"baked_{n}")) for n in (1, 4)},
        "gateway_4_to_1": ratio(med("gateway_4"), med("gateway_1")),
        "bare_4_to_1": ratio(med("bare_4"), med("bare_1")),
        "pip_4_to_1": ratio(med("pip_4"), med("pip_1")),
    }
    figures["host_pip_install_s"] = round(host_install_s, 2)
    return {
        "parameters": {
            "repeat": repeat,
            "worker_counts": list(WORKER_COUNTS),
            "worker": {"nthreads": 1, "memory_bytes": int(WORKER_MEMORY)},
            "pip_packages": list(PIP_PACKAGES),
            "pip_options": ["--prefix", "<throw-away>", *pip_options(Path("x"))[2:]],
            "local_config_overrides": {"stack": CLUSTER_LIMITS},
        },
        "figures": figures,
        "notes": [
            "Gateway times run from `new_cluster()` to N workers registered with the scheduler "
            "(TLS through the gateway's proxy); the bare baseline from starting N `dask worker` "
            "processes to N registered with an in-process scheduler (TCP).",
            "pip at start: distributed's `PipInstall` installs on the scheduler when registered, "
            "then on every worker as it starts, each under a lock named after the host - so on "
            "one machine the N=4 installs run one after another; on EKS every pod is its own "
            "host and they overlap. N=1 is the per-worker cost.",
        ],
    }


def _cell(entry: Mapping[str, Any]) -> str:
    return f"{entry['median']:.2f} s [{entry['min']:.2f}-{entry['max']:.2f}]"


def rows(document: Mapping[str, Any]) -> list[Row]:
    figures = document["figures"]
    ratios = figures["ratios"]
    n = document["parameters"]["repeat"]
    result = []
    for workers in WORKER_COUNTS:
        result.append(
            Row(
                f"bare `dask worker` x{workers}: start to registered (median [min-max], n={n})",
                _cell(figures[f"bare_{workers}"]["ready_s"]),
                "baseline",
            )
        )
        gateway = figures[f"gateway_{workers}"]
        result.append(
            Row(
                f"gateway: `new_cluster()` + {workers} worker(s) connected",
                f"{_cell(gateway['ready_s'])} (cluster created in "
                f"{gateway['created_s']['median']:.2f} s)",
                f"gateway/bare **{fmt_ratio(ratios[f'gateway_to_bare_{workers}'])}**",
            )
        )
    result.append(
        Row(
            "N=4 / N=1",
            "",
            f"gateway {fmt_ratio(ratios['gateway_4_to_1'])}, "
            f"bare {fmt_ratio(ratios['bare_4_to_1'])}",
        )
    )
    packages = ", ".join(document["parameters"]["pip_packages"])
    for workers in WORKER_COUNTS:
        result.append(
            Row(
                f"{packages} baked in, {workers} worker(s) importing them",
                _cell(figures[f"baked_{workers}"]["ready_s"]),
                "baseline",
            )
        )
        result.append(
            Row(
                f"the same installed at start by `PipInstall`, {workers} worker(s)",
                _cell(figures[f"pip_{workers}"]["ready_s"]),
                f"pip/baked **{fmt_ratio(ratios[f'pip_to_baked_{workers}'])}**",
            )
        )
    return result
