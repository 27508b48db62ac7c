"""A SLURM profile against a real SLURM: munged, slurmctld and slurmd from Debian's slurm-wlm,
one node (this machine), started in a temporary directory for the module and stopped after it.

`dask_platform.connect("hpc")` submits a job with sbatch; the job's `dask worker` connects back
to the scheduler dask-jobqueue runs here, and a task runs inside the SLURM job. (The job
script itself is asserted exactly in tests/unit/test_profiles.py.) Needs slurm-wlm and munge
(scripts/install-system-deps installs them as root); skips without them, which CI turns into a
failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

import dask_platform
from dask_platform.local.processes import (
    MARKER_ENV,
    Spawned,
    free_port,
    log_tail,
    marked_processes,
    spawn,
    terminate,
)

DAEMONS = ("munged", "slurmctld", "slurmd")


def _binary(name: str) -> str | None:
    # The daemons live in /usr/sbin, which a non-login PATH may lack.
    sbin = Path("/usr/sbin") / name
    return shutil.which(name) or (str(sbin) if sbin.is_file() else None)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    binaries = {name: _binary(name) for name in (*DAEMONS, "sbatch", "squeue", "scancel", "sinfo")}
    missing = sorted(name for name, path in binaries.items() if path is None)
    if missing:
        pytest.skip(f"a real SLURM needs slurm-wlm and munge ({', '.join(missing)} not found)")
    if os.geteuid() != 0:
        pytest.skip("slurmd runs jobs as their user and must start as root")
    home = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "log", "munge"):
        (home / sub).mkdir()
    (home / "munge").chmod(0o700)
    key = home / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    socket_path = home / "munge" / "munge.socket"
    host = socket.gethostname().split(".")[0]
    conf = home / "slurm.conf"
    # ref: https://slurm.schedmd.com/slurm.conf.html - one node, no accounting, no cgroups
    # (linuxproc process tracking), so it runs in a container as root.
    conf.write_text(
        "\n".join(
            [
                "ClusterName=daskplatform",
                f"SlurmctldHost={host}(127.0.0.1)",
                f"SlurmctldPort={free_port()}",
                f"SlurmdPort={free_port()}",
                "SlurmUser=root",
                "AuthType=auth/munge",
                f"AuthInfo=socket={socket_path}",
                "CredType=cred/munge",
                f"StateSaveLocation={home / 'state'}",
                f"SlurmdSpoolDir={home / 'spool'}",
                f"SlurmctldPidFile={home / 'slurmctld.pid'}",
                f"SlurmdPidFile={home / 'slurmd.pid'}",
                f"SlurmctldLogFile={home / 'log' / 'slurmctld.log'}",
                f"SlurmdLogFile={home / 'log' / 'slurmd.log'}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "JobAcctGatherType=jobacct_gather/none",
                "AccountingStorageType=accounting_storage/none",
                "JobCompType=jobcomp/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core_Memory",
                "ReturnToService=2",
                "MpiDefault=none",
                f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} RealMemory=4000",
                "PartitionName=compute Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    env = {**os.environ, "SLURM_CONF": str(conf), MARKER_ENV: str(home)}
    commands = {
        "munged": [
            str(binaries["munged"]),
            "--foreground",
            f"--key-file={key}",
            f"--socket={socket_path}",
            f"--pid-file={home / 'munge' / 'munged.pid'}",
            f"--seed-file={home / 'munge' / 'munge.seed'}",
            f"--log-file={home / 'log' / 'munged.log'}",
            "--force",
        ],
        "slurmctld": [str(binaries["slurmctld"]), "-D", "-f", str(conf)],
        "slurmd": [str(binaries["slurmd"]), "-D", "-f", str(conf)],
    }
    started: list[Spawned] = []
    try:
        for name in DAEMONS:
            started.append(spawn(name, commands[name], env, home / "log" / f"{name}.out", home))
            if name == "munged":
                _wait(lambda: socket_path.exists(), started[-1], "its socket")
        _wait(lambda: _node_idle(env), started[-1], "the node to be idle (sinfo)")
        with pytest.MonkeyPatch.context() as patch:
            # The real configuration mechanism of every SLURM client (sbatch, squeue, scancel).
            patch.setenv("SLURM_CONF", str(conf))
            yield home
    finally:
        terminate([s.pid for s in reversed(started)])
        assert marked_processes(home) == [], "a SLURM daemon outlived the module"


def _node_idle(env: dict[str, str]) -> bool:
    done = subprocess.run(
        ["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, check=False
    )
    return done.returncode == 0 and done.stdout.strip() == "idle"


def _wait(ready: Callable[[], bool], spawned: Spawned, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    pytest.fail(f"{spawned.name} did not get {what} in {timeout:g}s:\n{log_tail(spawned.log)}")


def test_the_slurm_profile_runs_a_task_in_a_slurm_job(slurm: Path) -> None:
    profiles = slurm / "profiles.yaml"
    profiles.write_text(
        yaml.safe_dump(
            {
                "profiles": {
                    "hpc": {
                        "kind": "slurm",
                        "account": "hydro-2026",
                        "walltime": "00:10:00",
                        "memory": "1GiB",
                        "cores": 1,
                        "interface": "lo",
                        "queue": "compute",
                        "jobs": 1,
                        "log_directory": str(slurm / "jobs"),
                    }
                }
            }
        )
    )
    cluster, client = dask_platform.connect("hpc", path=profiles)
    try:
        client.wait_for_workers(1, timeout=120)
        job_id, account = client.submit(
            lambda: (os.environ.get("SLURM_JOB_ID"), os.environ.get("SLURM_JOB_ACCOUNT")),
            pure=False,
        ).result(timeout=60)
        assert job_id is not None, "the task ran inside a SLURM job"
        assert account == "hydro-2026"
        queue = subprocess.run(
            ["squeue", "-h", "-o", "%i %a %P %T"], capture_output=True, text=True, check=True
        ).stdout.split()
        assert queue == [job_id, "hydro-2026", "compute", "RUNNING"]
    finally:
        client.close()
        cluster.close()
    # Closing the cluster cancels its jobs (scancel).
    deadline = time.monotonic() + 60
    while (
        time.monotonic() < deadline
        and subprocess.run(
            ["squeue", "-h"], capture_output=True, text=True, check=True
        ).stdout.strip()
    ):
        time.sleep(0.5)
    assert subprocess.run(["squeue", "-h"], capture_output=True, text=True, check=True).stdout == ""
