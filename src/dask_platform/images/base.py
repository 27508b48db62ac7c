"""The base image: the requested registry Python image, or one made from Debian packages.

``BASE_IMAGE`` defaults to the public ``python:3.11-slim-bookworm``. Where no registry is
reachable (this project's CI machines, air-gapped sites), the default falls back to an
equivalent base built here with debootstrap from Debian bookworm packages (python3.11, venv,
ca-certificates; minbase variant, docs and apt lists removed), imported with the engine's
``import`` API and cached twice: as an image tagged by the recipe's content key, and as a
tarball under the cache directory, so a repeated run costs nothing and a pruned engine costs
one import. An explicitly requested BASE_IMAGE never falls back: asking for X and silently
getting Y would be worse than an error.

Whatever the base, its Python must be the lock's (``requires-python`` in images/pyproject.toml).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import docker
import docker.errors
from docker.models.images import Image

from dask_platform.images import LOCAL_REPOSITORY
from dask_platform.images.progress import Reporter

DEFAULT_BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"
DEBIAN_MIRROR_ENV = "DEBIAN_MIRROR"
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"


class BaseImageError(RuntimeError):
    """No usable base image: not pullable, cannot be built here, or the wrong Python."""


@dataclass(frozen=True)
class DebootstrapRecipe:
    """Everything that decides the base's content; its hash is the cache key."""

    suite: str = "bookworm"
    variant: str = "minbase"
    python: str = "3.11"  # bookworm's python3 (a different lock Python needs another suite)
    # python3-distutils provides the virtual python3.11-distutils that python3.11-venv needs
    # and debootstrap's resolver does not pick by itself.
    extra_packages: tuple[str, ...] = ("python3", "python3-distutils", "ca-certificates")
    # Nothing a container runs needs these; together about 140 MB of the rootfs.
    prune: tuple[str, ...] = (
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
        "var/cache/apt",
        "var/lib/apt/lists",
        "var/log",
    )
    # The settings a registry Python image carries, so the Containerfiles need not care which
    # base they got.
    changes: tuple[str, ...] = (
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        'CMD ["python3"]',
    )
    architecture: str = field(default_factory=lambda: os.uname().machine)

    @property
    def packages(self) -> tuple[str, ...]:
        return (f"python{self.python}", f"python{self.python}-venv", *self.extra_packages)

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def reference(self) -> str:
        return f"{LOCAL_REPOSITORY}/base:{self.suite}-py{self.python}-{self.key}"


@dataclass(frozen=True)
class BaseImage:
    reference: str
    image_id: str
    origin: str  # "local", "pulled" or "debootstrap"
    python: str  # full version, e.g. 3.11.2


def _local(client: docker.DockerClient, reference: str) -> Image | None:
    try:
        return client.images.get(reference)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError:
        return None


def _pull(client: docker.DockerClient, reference: str, reporter: Reporter) -> Image | None:
    try:
        return client.images.pull(reference)
    except docker.errors.DockerException as exc:
        reason = getattr(exc, "explanation", None) or str(exc)
        reporter.note(f"[yellow]base image {reference} cannot be pulled[/yellow] ({reason})")
        return None


def python_version(client: docker.DockerClient, reference: str) -> str:
    """The full version of ``python3`` in an image, e.g. 3.11.2 (by running it, as builds do).

    The patch level matters: the lock may fork on it (see lock.parse_requirements)."""
    output = client.containers.run(
        reference,
        ["python3", "-c", "import platform; print(platform.python_version())"],
        remove=True,
        network_disabled=True,
    )
    text = output.decode().strip() if isinstance(output, bytes) else str(output).strip()
    if not re.fullmatch(r"\d+\.\d+\.\d+", text):
        raise BaseImageError(f"{reference}: `python3` did not report a version (got {text!r})")
    return text


def _image_id_from_import(response: str) -> str:
    """The engine answers an import with JSON lines; the last status is the new image's id."""
    for line in reversed(response.strip().splitlines()):
        try:
            status = json.loads(line).get("status", "")
        except ValueError:
            continue
        match = re.search(r"(sha256:)?([0-9a-f]{64})", status)
        if match:
            return match.group(2)
    raise BaseImageError(f"the engine's import answer names no image id: {response[-500:]!r}")


def _rootfs_filter(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
    # The runtime mounts its own /dev, /proc and /sys; their contents never belong in a layer.
    parts = Path(member.name).parts
    if len(parts) > 2 and parts[1] in {"dev", "proc", "sys"}:
        return None
    return member


def _debootstrap(recipe: DebootstrapRecipe, rootfs: Path, reporter: Reporter) -> None:
    executable = shutil.which("debootstrap")
    if executable is None:
        raise BaseImageError(
            "no base image could be pulled and debootstrap is not installed; install it "
            "(scripts/install-system-deps) or pass --base-image with a local image"
        )
    if os.geteuid() != 0:
        raise BaseImageError(
            "no base image could be pulled and debootstrap needs root to build one; run as root "
            "or pass --base-image with a local Python "
            f"{recipe.python} image"
        )
    mirror = os.environ.get(DEBIAN_MIRROR_ENV, DEFAULT_DEBIAN_MIRROR)
    task = reporter.task(f"base: debootstrap {recipe.suite}", total=None)
    command = [
        executable,
        f"--variant={recipe.variant}",
        f"--include={','.join(recipe.packages)}",
        recipe.suite,
        str(rootfs),
        mirror,
    ]

    def step(line: str) -> None:
        if line.startswith(("I: Retrieving", "I: Extracting", "I: Unpacking", "I: Configuring")):
            reporter.update(task, detail=line[3:].strip())

    returncode, tail = reporter.run(command, step, tail_lines=30)
    if returncode != 0:
        raise BaseImageError(
            f"debootstrap failed (exit {returncode}) using mirror {mirror} "
            f"(set {DEBIAN_MIRROR_ENV} to use another):\n{tail}"
        )
    for relative in recipe.prune:
        target = rootfs / relative
        if target.is_dir():
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    reporter.done(task, "done")


def debootstrap_base(
    client: docker.DockerClient,
    cache_dir: Path,
    reporter: Reporter,
    recipe: DebootstrapRecipe | None = None,
    refresh: bool = False,
) -> Image:
    """The Debian-built base for ``recipe``: cached image, else cached tarball, else built."""
    recipe = recipe or DebootstrapRecipe()
    if not refresh:
        cached = _local(client, recipe.reference)
        if cached is not None:
            return cached
    cache_dir.mkdir(parents=True, exist_ok=True)
    tarball = cache_dir / f"base-{recipe.key}.tar"
    if refresh or not tarball.is_file():
        with tempfile.TemporaryDirectory(prefix="rootfs-", dir=cache_dir) as directory:
            rootfs = Path(directory) / "rootfs"
            _debootstrap(recipe, rootfs, reporter)
            partial = tarball.with_suffix(".tar.partial")
            with tarfile.open(partial, "w") as archive:
                archive.add(rootfs, arcname=".", filter=_rootfs_filter)
            partial.replace(tarball)
    task = reporter.task("base: import into the engine", total=None)
    repository, _, tag = recipe.reference.rpartition(":")
    response = client.api.import_image_from_file(
        str(tarball), repository=repository, tag=tag, changes=list(recipe.changes)
    )
    image = client.images.get(_image_id_from_import(str(response)))
    # podman's compatible import ignores the tag parameter (it tags `latest`); tagging by id
    # works on both engines, and the stray `latest` goes.
    image.tag(repository, tag)
    if tag != "latest" and f"{repository}:latest" in client.images.get(image.id).tags:
        client.images.remove(f"{repository}:latest")
    reporter.done(task, recipe.reference)
    return client.images.get(recipe.reference)


def resolve_base(
    client: docker.DockerClient,
    python: str,
    cache_dir: Path,
    reporter: Reporter,
    requested: str | None = None,
    allow_fallback: bool = True,
    refresh: bool = False,
) -> BaseImage:
    """The base every BASE_IMAGE build uses, with its Python checked against the lock's."""
    reference = requested or DEFAULT_BASE_IMAGE
    origin = "local"
    image = _local(client, reference)
    if image is None:
        image = _pull(client, reference, reporter)
        origin = "pulled"
    if image is None:
        if requested is not None or not allow_fallback:
            raise BaseImageError(
                f"base image {reference} is neither local nor pullable"
                + ("" if requested is None else " (an explicit --base-image never falls back)")
            )
        recipe = DebootstrapRecipe(python=python)
        reporter.note(
            f"building a base from Debian {recipe.suite} packages instead: {recipe.reference}"
        )
        image = debootstrap_base(client, cache_dir, reporter, recipe, refresh=refresh)
        reference, origin = recipe.reference, "debootstrap"
    found = python_version(client, reference)
    if found.rsplit(".", 1)[0] != python:
        raise BaseImageError(
            f"base image {reference} has Python {found}; the lock is resolved for Python "
            f"{python} (images/pyproject.toml requires-python), so its wheels would not install"
        )
    return BaseImage(reference=reference, image_id=str(image.id), origin=origin, python=found)
