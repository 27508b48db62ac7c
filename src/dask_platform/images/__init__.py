"""Container images pinned to the notebook environment.

One lock (``images/uv.lock``, resolved from ``images/pyproject.toml`` and pinned to the client's
own ``uv.lock``) feeds three images: the slim ``worker`` (schedulers and workers), the
``notebook`` (the worker plus Jupyter, built FROM the worker image) and the ``gateway``
(dask-gateway-server plus this project's gateway-side code). Modules:

* :mod:`.lock` - the lock: regeneration, per-image exports, the lock hash that tags images;
* :mod:`.engine` - a Docker-compatible engine (DOCKER_HOST, or a private podman socket);
* :mod:`.base` - the base image: a registry Python image, else one built with debootstrap;
* :mod:`.build` - wheelhouse, build contexts, builds with progress, cache by build key;
* :mod:`.push` - pushing to the ECR repositories the Pulumi program exports;
* :mod:`.drift` - comparing versions across client, image and running cluster;
* :mod:`.sizes` - image sizes for ``bench/images/``.

Importing any of them starts nothing.
"""

from __future__ import annotations

from pathlib import Path

from dask_platform.project import project_root

IMAGES: tuple[str, ...] = ("worker", "notebook", "gateway")
"""The images ``make images`` builds, in build order (the notebook is built FROM the worker)."""

OPTIONAL_IMAGES: tuple[str, ...] = ("worker-gpu",)
"""Images that build only when asked for by name (``--image worker-gpu``)."""

PARENT_IMAGE: dict[str, str] = {"notebook": "worker", "worker-gpu": "worker"}
"""Images built FROM another image of this set: they add only the packages the parent lacks."""

LOCAL_REPOSITORY = "localhost/dask-platform"
"""Local image names: ``localhost/dask-platform/<image>:<tag>``. ``localhost/`` keeps podman from
searching registries for a short name and keeps Docker from reading it as a Docker Hub name."""

LABEL_PREFIX = "org.dask-platform"
LOCK_LABEL = f"{LABEL_PREFIX}.lock.sha256"
BUILD_KEY_LABEL = f"{LABEL_PREFIX}.build-key"
IMAGE_LABEL = f"{LABEL_PREFIX}.image"


class ImageBuildError(RuntimeError):
    """An image could not be built; the message carries the engine's last lines."""


def all_images() -> tuple[str, ...]:
    return IMAGES + OPTIONAL_IMAGES


def local_name(image: str) -> str:
    return f"{LOCAL_REPOSITORY}/{image}"


def images_dir() -> Path:
    """The checkout's ``images/`` (Containerfiles, the images' lock). Building images needs a
    checkout; outside one this raises :class:`~dask_platform.project.ProjectNotFoundError`."""
    return project_root() / "images"
