"""Local schedulers and workers as containers of the worker image (podman), the way EKS runs
them: the image's own uid 1000 and environment, the team's projected token file mounted where
the EKS pod-identity webhook mounts it, and nothing of the host's home or of the platform's state
directory - only the cluster's working directory (its TLS certificate and key, as a Secret is
mounted on EKS) and the platform AWS config (at /etc/dask-platform/aws, as on EKS).

The gateway's local backend (``UnsafeLocalBackend``) builds the scheduler/worker command and
environment as usual; :class:`ContainerBackend` runs that command in ``podman run`` instead of
as a host process. The container shares the host's network (the gateway, the proxy and the AWS
emulator listen on 127.0.0.1), runs in the foreground of the ``podman run`` process the backend
tracks (signals are proxied to it), and is removed when it exits. Every container carries the
label :data:`STATE_LABEL` with the platform's state directory, so ``local down`` removes any
left behind.

ref: https://docs.aws.amazon.com/eks/latest/userguide/pod-configuration.html (token path)
ref: https://docs.podman.io/en/latest/markdown/podman-run.1.html
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from dask_gateway_server.backends.local import UnsafeLocalBackend
from traitlets import Unicode

from dask_platform.object_stores import AWS_CONFIG_FILE_ENV, AWS_CONFIG_PATH

# Where the EKS pod-identity webhook mounts the projected ServiceAccount token.
POD_TOKEN_DIR = "/var/run/secrets/eks.amazonaws.com/serviceaccount"  # noqa: S105 - a path
STATE_LABEL = "org.dask-platform.local-state-dir"
AWS_CONFIG_DIR = os.path.dirname(AWS_CONFIG_PATH)
"""Where scheduler and worker pods get the platform AWS config (the ConfigMap mount on EKS)."""
RUNTIME_PACKAGES = "/opt/runtime-packages"
"""The worker image's PIP_TARGET (images/worker/Containerfile), on sys.path."""
CONTAINER_UID = 1000
"""The worker image's user (images/worker/Containerfile)."""


def container_command(
    engine: str,
    image: str,
    name: str,
    command: Sequence[str],
    environment: Mapping[str, str],
    workdir: str,
    state_dir: str,
) -> tuple[list[str], dict[str, str]]:
    """``podman run`` argv and the environment to run it with (the variables it passes on)."""
    passed = {k: v for k, v in environment.items() if k not in ("PATH", "HOME", "USER")}
    mounts = ["--volume", f"{workdir}:{workdir}:rw"]
    token = passed.get("AWS_WEB_IDENTITY_TOKEN_FILE")
    if token:
        # The team's token DIRECTORY, as a projected volume: the issuer replaces the file at
        # each rotation, which a file mount would not follow. Only this team's directory.
        mounts += ["--volume", f"{os.path.dirname(token)}:{POD_TOKEN_DIR}:ro"]
        passed["AWS_WEB_IDENTITY_TOKEN_FILE"] = f"{POD_TOKEN_DIR}/{os.path.basename(token)}"
    config_file = passed.get(AWS_CONFIG_FILE_ENV)
    if config_file:
        # The platform AWS config (object store profiles, the emulator as default endpoint),
        # mounted where EKS mounts its ConfigMap: only that file's directory, read-only.
        mounts += ["--volume", f"{os.path.dirname(config_file)}:{AWS_CONFIG_DIR}:ro"]
        passed[AWS_CONFIG_FILE_ENV] = f"{AWS_CONFIG_DIR}/{os.path.basename(config_file)}"
    argv = [
        engine,
        "run",
        "--rm",
        "--name",
        name,
        "--label",
        f"{STATE_LABEL}={state_dir}",
        "--network",
        "host",
        "--user",
        f"{CONTAINER_UID}:{CONTAINER_UID}",
        "--read-only",
        "--tmpfs",
        "/tmp",  # noqa: S108 - the container's own tmpfs, as an emptyDir on EKS
        # The image's run-time install target (PIP_TARGET) must stay writable under
        # --read-only, or PipInstall and pip-on-worker fail as uid 1000.
        "--tmpfs",
        f"{RUNTIME_PACKAGES}:rw,U",  # U: owned by the container user (podman)
        "--workdir",
        workdir,
        *mounts,
        *[arg for key in sorted(passed) for arg in ("--env", key)],
        image,
        *command,
    ]
    run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **passed}
    return argv, run_env


def remove_containers(state_dir: str, engine: str = "podman") -> list[str]:
    """Remove every container of the platform at ``state_dir``; return their ids."""
    if shutil.which(engine) is None:
        return []
    listed = subprocess.run(
        [engine, "ps", "--all", "--quiet", "--filter", f"label={STATE_LABEL}={state_dir}"],
        capture_output=True,
        text=True,
        check=False,
    )
    ids = listed.stdout.split()
    if ids:
        subprocess.run([engine, "rm", "--force", *ids], capture_output=True, check=False)
    return ids


class ContainerBackend(UnsafeLocalBackend):  # type: ignore[misc]
    """``UnsafeLocalBackend`` whose schedulers and workers run in worker-image containers."""

    image = Unicode(help="The worker image schedulers and workers run from.", config=True)
    engine = Unicode("podman", help="The container engine's command.", config=True)
    state_dir = Unicode(help="The local platform's state directory (container label).", config=True)

    async def start_process(
        self, cluster: Any, cmd: list[str], env: dict[str, str], name: str
    ) -> int:
        workdir = cluster.state["workdir"]
        # The container's uid 1000 reads the cluster's certificate and key (0600, like the
        # Secret mounted into a pod) and writes its logs there.
        for root, _dirs, files in os.walk(workdir):
            for entry in (root, *(os.path.join(root, f) for f in files)):
                os.chown(entry, CONTAINER_UID, CONTAINER_UID)
        argv, run_env = container_command(
            self.engine,
            self.image,
            f"dask-{cluster.name}-{name}",
            cmd,
            env,
            workdir,
            self.state_dir,
        )
        pid: int = await super().start_process(cluster, argv, run_env, name)
        return pid
