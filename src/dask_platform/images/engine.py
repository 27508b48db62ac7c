"""A Docker-compatible engine for the ``docker`` SDK: Docker, or podman's compatible socket.

Order: an explicit ``docker_host`` (or ``DOCKER_HOST``); a running Docker daemon or podman
service on its usual socket; otherwise, if podman is installed, a private
``podman system service`` on a socket in a temporary directory, started here and stopped on
exit. Only that last case starts a process, and only inside :func:`connect`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

# Builds stream for minutes; the SDK's default 60 s read timeout would cut a quiet RUN step.
API_TIMEOUT_SECONDS = 1800
SOCKET_WAIT_SECONDS = 30
WELL_KNOWN_SOCKETS = (
    "/var/run/docker.sock",
    "/run/podman/podman.sock",
    f"/run/user/{os.getuid()}/podman/podman.sock",
)


class EngineError(RuntimeError):
    """No Docker-compatible engine could be reached or started."""


@dataclass
class Engine:
    client: docker.DockerClient
    base_url: str
    kind: str  # "docker" or "podman"
    started_here: bool

    def describe(self) -> str:
        version = self.client.version()
        origin = "private service started for this run" if self.started_here else "running"
        return f"{self.kind} {version.get('Version', '?')} at {self.base_url} ({origin})"


def _client(base_url: str) -> docker.DockerClient:
    return docker.DockerClient(base_url=base_url, version="auto", timeout=API_TIMEOUT_SECONDS)


def _kind(client: docker.DockerClient) -> str:
    components = client.version().get("Components", [])
    names = " ".join(str(c.get("Name", "")) for c in components).lower()
    return "podman" if "podman" in names else "docker"


def _reachable(base_url: str) -> docker.DockerClient | None:
    try:
        client = _client(base_url)
        client.ping()
    except (docker.errors.DockerException, OSError):
        return None
    return client


def _wait_for_socket(
    base_url: str, process: subprocess.Popen[bytes], log: Path
) -> docker.DockerClient:
    deadline = time.monotonic() + SOCKET_WAIT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EngineError(
                f"`podman system service` exited with {process.returncode} before serving "
                f"{base_url}:\n{log.read_text(errors='replace')[-2000:]}"
            )
        client = _reachable(base_url)
        if client is not None:
            return client
        time.sleep(0.2)
    raise EngineError(f"podman's Docker-compatible API did not answer on {base_url}")


@contextmanager
def connect(docker_host: str | None = None) -> Iterator[Engine]:
    """Yield an engine; a podman service started here is stopped when the block exits."""
    explicit = docker_host or os.environ.get("DOCKER_HOST")
    if explicit:
        client = _reachable(explicit)
        if client is None:
            raise EngineError(
                f"no Docker-compatible engine answers at {explicit} (from "
                f"{'--docker-host' if docker_host else 'DOCKER_HOST'})"
            )
        try:
            yield Engine(client, explicit, _kind(client), started_here=False)
        finally:
            client.close()
        return
    for path in WELL_KNOWN_SOCKETS:
        if Path(path).exists():
            client = _reachable(f"unix://{path}")
            if client is not None:
                try:
                    yield Engine(client, f"unix://{path}", _kind(client), started_here=False)
                finally:
                    client.close()
                return
    podman = shutil.which("podman")
    if podman is None:
        raise EngineError(
            "no Docker-compatible engine: set DOCKER_HOST, start Docker, or install podman "
            "(scripts/install-system-deps installs it on Debian/Ubuntu)"
        )
    with tempfile.TemporaryDirectory(prefix="dask-platform-podman-") as directory:
        base_url = f"unix://{directory}/podman.sock"
        log = Path(directory) / "service.log"
        # --time=0: no idle timeout; this process lives exactly as long as the block.
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [podman, "system", "service", "--time=0", base_url],
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        try:
            client = _wait_for_socket(base_url, process, log)
            try:
                yield Engine(client, base_url, "podman", started_here=True)
            finally:
                client.close()
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
