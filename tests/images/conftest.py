"""Fixtures for the image tests: real images, built from the lock, inspected in running
containers through pytest-testinfra.

* ``engine`` - a Docker-compatible engine (DOCKER_HOST, a running socket, or a private podman
  service for the session); skips with the reason where there is none (a failure under CI=true).
* ``built`` - the worker, notebook and gateway images, built by the same code as
  ``make images`` (reused when their build key is unchanged, so a warm run costs seconds).
* ``host`` - ``testinfra`` hosts of one long-running container per image, removed at the end.
* ``inventory`` - per image, every installed distribution: version, top-level modules and the
  result of importing each of them, gathered once through the container's own Python.
"""

from __future__ import annotations

import json
import platform
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dask_platform.images import IMAGES
from dask_platform.images.build import BuildRequest, BuiltImage, build_images, default_cache_dir
from dask_platform.images.lock import applicable, group_requirements, target_environment

REPO = Path(__file__).resolve().parents[2]
HELM_DIR = REPO / "helm" / "dask-gateway"
MOUNTED_HELM_DIR = "/srv/dask-platform/helm"

# Gathered inside the container (its own Python, as the image's user): for every installed
# distribution, its version and whether each of its top-level modules imports.
INVENTORY_SCRIPT = r"""
import importlib, importlib.metadata as md, json, re, sys, warnings
warnings.simplefilter("ignore")
def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()
modules = {}
for module, dists in md.packages_distributions().items():
    for dist in dists:
        modules.setdefault(canonical(dist), set()).add(module)
report = {}
for dist in md.distributions():
    name = canonical(dist.metadata["Name"])
    names = sorted(m for m in modules.get(name, ()) if m.isidentifier() and not m.startswith("_"))
    errors = {}
    for module in names:
        try:
            importlib.import_module(module)
        except BaseException as exc:
            errors[module] = f"{type(exc).__name__}: {exc}"
    report[name] = {"version": dist.version, "modules": names, "errors": errors}
print(json.dumps({"python": ".".join(map(str, sys.version_info[:3])), "distributions": report}))
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that need a container engine (directly or through the built images) are `images`;
    # the lock, plumbing and same-environment drift tests run without one.
    for item in items:
        if "tests/images/" in str(item.fspath) and "engine" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.images)


def locked_names(image: str) -> list[str]:
    """Every package name the image's lock group can install (all forks), for parametrizing."""
    return sorted({r.name for r in group_requirements(image)})


@pytest.fixture(scope="session")
def engine() -> Iterator[Any]:
    from dask_platform.images.engine import EngineError, connect

    if shutil.which("podman") is None and shutil.which("docker") is None:
        pytest.skip("no container engine here (podman or docker): the image tests need one")
    try:
        with connect() as connected:
            yield connected
    except EngineError as exc:
        pytest.skip(f"no Docker-compatible engine could be reached or started: {exc}")


@pytest.fixture(scope="session")
def built(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuiltImage]:
    from dask_platform.images.base import BaseImageError
    from dask_platform.images.progress import Reporter

    log = tmp_path_factory.mktemp("images") / "build.log"
    request = BuildRequest(images=IMAGES, cache_dir=default_cache_dir())
    try:
        with Reporter(log_file=log) as reporter:
            images = build_images(engine.client, request, reporter)
    except BaseImageError as exc:
        # A laptop without registry access and without root/debootstrap has no base to build
        # on; under CI=true this skip is a failure.
        pytest.skip(f"no base image for the image builds: {exc}")
    return {item.image: item for item in images}


@pytest.fixture(scope="session")
def containers(engine: Any, built: dict[str, BuiltImage]) -> Iterator[dict[str, Any]]:
    """One idle container per image, as the image's own user; removed at session end."""
    started: dict[str, Any] = {}
    try:
        for image, item in built.items():
            volumes = {}
            if image == "gateway":
                volumes[str(HELM_DIR)] = {"bind": MOUNTED_HELM_DIR, "mode": "ro"}
            started[image] = engine.client.containers.run(
                item.build_reference,
                ["sleep", "infinity"],
                name=f"dask-platform-test-{image}-{uuid.uuid4().hex[:8]}",
                detach=True,
                network_disabled=True,
                volumes=volumes,
                # The healthchecks are for production `docker run`; a sleeping container has
                # nothing to answer them.
                healthcheck={"test": ["NONE"]},
            )
        yield started
    finally:
        for container in started.values():
            container.remove(force=True)


@pytest.fixture(scope="session")
def hosts(engine: Any, containers: dict[str, Any]) -> dict[str, Any]:
    import testinfra

    backend = "podman" if engine.kind == "podman" else "docker"
    return {
        image: testinfra.get_host(f"{backend}://{container.name}")
        for image, container in containers.items()
    }


@pytest.fixture(scope="session")
def inventory(hosts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    gathered = {}
    for image, host in hosts.items():
        result = host.run("python -c %s", INVENTORY_SCRIPT)
        assert result.rc == 0, f"{image}: inventory script failed: {result.stderr}"
        gathered[image] = json.loads(result.stdout)
    return gathered


@pytest.fixture(scope="session")
def locked(inventory: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Per image, package -> version the lock says it has, for the image's own Python."""
    machine = platform.machine()  # images are built for the host's architecture
    expected = {}
    for image, data in inventory.items():
        environment = target_environment(data["python"], machine)
        chosen = applicable(group_requirements(image), environment)
        expected[image] = {name: r.version for name, r in chosen.items()}
    return expected
