"""Build the images from the lock: wheelhouse, build contexts, engine builds, cache by build key.

For each image: export its part of ``images/uv.lock`` (hashes included; for an image built FROM
another, only the packages its parent lacks), make sure a hash-checked wheel of every one of
them sits in the wheelhouse (``pip download`` only for what is missing), assemble a build
context (Containerfile, requirements.txt, hard links to the wheels, the project's wheel for the
gateway) and build it with the ``docker`` SDK against any Docker-compatible engine.

Images are tagged ``lock-<12 hex of the lock's sha256>`` - the name people deploy - and
``build-<12 hex of the build key>``. The build key hashes everything the image is made of (lock,
requirements, Containerfile, base or parent image id, the project wheel); an image whose label
carries the same key is reused instead of rebuilt, which is what makes a warm ``make test`` cheap.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from rich.progress import TaskID

from dask_platform.images import (
    BUILD_KEY_LABEL,
    IMAGES,
    LOCK_LABEL,
    PARENT_IMAGE,
    all_images,
    images_dir,
    local_name,
)
from dask_platform.images.audit import audit_image
from dask_platform.images.base import resolve_base
from dask_platform.images.lock import (
    LockedRequirement,
    LockError,
    applicable,
    client_mismatches,
    group_requirements,
    lock_is_current,
    lock_sha256,
    lock_tag,
    requires_python,
    target_environment,
    uv,
)
from dask_platform.images.progress import Reporter
from dask_platform.project import project_root

CACHE_ENV = "DASK_PLATFORM_IMAGES_CACHE"
BUILD_KEY_VERSION = "1"  # bump when the way images are assembled changes
# Debian bookworm's glibc; wheels needing a newer one would not load in the base.
GLIBC = (2, 36)
PROJECT_WHEEL_IMAGES = frozenset({"gateway", "notebook"})
CREDENTIAL_PROCESS_IMAGES = frozenset({"worker"})
"""Images whose context holds the standalone credential process (images built FROM them have
it too): the worker image does not install the dask_platform package."""
CREDENTIAL_PROCESS_SCRIPT = "dask-platform-credential-process"
OBJECT_STORES_MODULE = "dask_platform_object_stores.py"
"""The same module, importable in the worker image's environment under its own name, for the
.pth that turns DASK_PLATFORM_AWS_CONFIG into a file (ECS/Fargate and EC2 have no mount)."""
PROFILE_HINT_MODULE = "dask_platform_aws_profile_hint.py"
"""dask_platform/aws_profile_hint.py likewise, for the same .pth where the platform AWS config is
set: botocore's ProfileNotFound then names the team's store profiles."""
AWS_CONFIG_PTH = "dask-platform-aws-config.pth"
AWS_CONFIG_PTH_LINE = (
    "import os; os.environ.get('DASK_PLATFORM_AWS_CONFIG') and "
    "__import__('dask_platform_object_stores').materialize_aws_config(); "
    "os.environ.get('AWS_CONFIG_FILE') and __import__('dask_platform_aws_profile_hint').install()\n"
)
SCRIPT_INTERPRETER = "/opt/venv/bin/python"


class ImageBuildError(RuntimeError):
    """An image could not be built; the message carries the engine's last lines."""


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or project_root() / ".images-cache")


@dataclass(frozen=True)
class BuildRequest:
    images: Sequence[str] = IMAGES
    base_image: str | None = None
    allow_base_fallback: bool = True
    refresh_base: bool = False
    rebuild: bool = False
    cache_dir: Path = field(default_factory=default_cache_dir)


@dataclass(frozen=True)
class BuiltImage:
    image: str
    reference: str  # localhost/dask-platform/<image>:lock-<hash>
    build_reference: str  # localhost/dask-platform/<image>:build-<key>
    image_id: str
    build_key: str
    lock_sha256: str
    reused: bool
    seconds: float

    @property
    def tags(self) -> tuple[str, str]:
        return (self.reference.rpartition(":")[2], self.build_reference.rpartition(":")[2])


# --------------------------------------------------------------------------- the lock


def checked_lock() -> str:
    """The lock's sha256, after proving it is current and agrees with the client's lock."""
    current, detail = lock_is_current()
    if not current:
        raise LockError(
            "images/uv.lock does not match images/pyproject.toml; run `make images-lock`:\n"
            + detail
        )
    mismatches = client_mismatches()
    if mismatches:
        rows = "\n".join(f"  {m.package}: images {m.images}, client {m.client}" for m in mismatches)
        raise LockError(
            "images/uv.lock and uv.lock pin different versions (the images would drift from "
            f"the client); run `make images-lock`:\n{rows}"
        )
    return lock_sha256()


def image_requirements(image: str, environment: Mapping[str, str]) -> dict[str, LockedRequirement]:
    """What ``image`` installs itself on ``environment``: its group, minus its parent's."""
    requirements = applicable(group_requirements(image), environment)
    parent = PARENT_IMAGE.get(image)
    if parent is None:
        return requirements
    inherited = applicable(group_requirements(parent), environment)
    for name, requirement in inherited.items():
        own = requirements.get(name)
        if own is not None and own.version != requirement.version:
            raise LockError(
                f"{image} and {parent} lock {name} at {own.version} and {requirement.version}"
            )
    return {name: r for name, r in requirements.items() if name not in inherited}


# --------------------------------------------------------------------------- the wheelhouse


def wheel_platforms(machine: str, glibc: tuple[int, int] = GLIBC) -> list[str]:
    """pip's ``--platform`` list for a glibc: every manylinux tag it can load (pip does not
    expand PEP 600 ``manylinux_2_X`` tags itself)."""
    major, newest = glibc
    tags = [f"manylinux_{major}_{minor}_{machine}" for minor in range(newest, 4, -1)]
    legacy = ["manylinux2014", "manylinux2010", "manylinux1"]
    if machine != "x86_64":
        legacy = ["manylinux2014"]
    return tags + [f"{name}_{machine}" for name in legacy]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Wheelhouse:
    """Hash-checked wheels for one machine architecture, downloaded once and reused."""

    def __init__(self, root: Path, machine: str, python_full_version: str) -> None:
        self.root = root
        self.machine = machine
        self.python = python_full_version
        self._verified: dict[Path, str] = {}

    def _index(self) -> dict[tuple[str, str], list[Path]]:
        found: dict[tuple[str, str], list[Path]] = {}
        for path in self.root.glob("*.whl"):
            try:
                name, version, _, _ = parse_wheel_filename(path.name)
            except InvalidWheelFilename:
                continue
            found.setdefault((canonicalize_name(name), str(version)), []).append(path)
        return found

    def _matching(
        self, requirement: LockedRequirement, index: Mapping[tuple[str, str], list[Path]]
    ) -> Path | None:
        allowed = {h.removeprefix("sha256:") for h in requirement.hashes}
        for path in index.get((requirement.name, requirement.version), []):
            if path not in self._verified:
                self._verified[path] = sha256_file(path)
            if self._verified[path] in allowed:
                return path
        return None

    def ensure(
        self, image: str, wanted: Mapping[str, LockedRequirement], reporter: Reporter
    ) -> dict[str, Path]:
        """A verified wheel for every requirement (already narrowed to the image's platform)."""
        self.root.mkdir(parents=True, exist_ok=True)
        task = reporter.task(f"{image}: wheels", total=len(wanted))
        index = self._index()
        missing = [r for r in wanted.values() if self._matching(r, index) is None]
        reporter.update(task, completed=len(wanted) - len(missing))
        if missing:
            self._download(missing, reporter, task)
            index = self._index()
        wheels: dict[str, Path] = {}
        for name, requirement in wanted.items():
            path = self._matching(requirement, index)
            if path is None:
                raise ImageBuildError(
                    f"{image}: no wheel of {name}=={requirement.version} for "
                    f"{self.machine}/Python {self.python} matches the lock's hashes"
                )
            wheels[name] = path
        reporter.done(task, f"{len(wheels)} wheels, {len(missing)} downloaded")
        return wheels

    def _download(
        self, missing: Iterable[LockedRequirement], reporter: Reporter, task: TaskID
    ) -> None:
        # Markers are dropped: pip would evaluate them against THIS interpreter, and the
        # requirements are already narrowed to the image's (whose Python patch level may differ).
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
            listing.writelines(f"{r.pinned_with_hashes}\n" for r in missing)
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--no-deps",
            "--require-hashes",
            "--only-binary=:all:",
            "--progress-bar=off",
            "--implementation=cp",
            f"--python-version={self.python}",
            "--dest",
            str(self.root),
            "-r",
            listing.name,
        ]
        for tag in wheel_platforms(self.machine):
            command.append(f"--platform={tag}")

        def saved(line: str) -> None:
            if line.startswith("Saved ") or "File was already downloaded" in line:
                reporter.update(task, advance=1, detail=Path(line.split()[-1]).name)

        try:
            returncode, tail = reporter.run(command, saved)
            if returncode != 0:
                raise ImageBuildError(
                    "pip could not download the locked wheels (network, or a package without a "
                    f"wheel for this platform):\n{tail}"
                )
        finally:
            Path(listing.name).unlink(missing_ok=True)


# --------------------------------------------------------------------------- contexts and keys


def project_wheel(out_dir: Path, reporter: Reporter) -> Path:
    """This checkout's dask_platform wheel (hatchling builds are reproducible: same sources,
    same bytes, so the build key only changes when the code does)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    result = subprocess.run(
        [uv(), "build", "--wheel", "--quiet", "--out-dir", str(out_dir), str(project_root())],
        capture_output=True,
        text=True,
        check=False,
    )
    reporter.log(result.stdout + result.stderr)
    wheels = sorted(out_dir.glob("dask_platform-*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        raise ImageBuildError(f"`uv build --wheel` of the project failed:\n{result.stderr}")
    return wheels[0]


def credential_process_script() -> str:
    """The ``dask-platform-credential-process`` executable of the worker image, derived from
    :mod:`dask_platform.object_stores` at build time (its source behind a ``#!`` line for the
    image's Python), so it cannot drift from the module the platform renders profiles with.

    The module imports the standard library only at import time (boto3 when it runs), and runs
    ``credential_process_main()`` as ``__main__``.
    ref: https://docs.aws.amazon.com/sdkref/latest/guide/feature-process-credentials.html
    """
    from dask_platform import object_stores

    source = Path(object_stores.__file__).read_text()
    return f"#!{SCRIPT_INTERPRETER}\n{source}"


def build_key(parts: Mapping[str, str]) -> str:
    payload = json.dumps({"version": BUILD_KEY_VERSION, **parts}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def image_files(image: str) -> list[Path]:
    """The files of ``images/<image>/`` besides its Containerfile (part of the build key)."""
    return sorted(
        p for p in (images_dir() / image).iterdir() if p.is_file() and p.name != "Containerfile"
    )


def assemble_context(
    context: Path,
    image: str,
    requirements: Mapping[str, LockedRequirement],
    wheels: Mapping[str, Path],
    extra_wheels: Sequence[Path] = (),
) -> str:
    """Write the build context; returns the requirements text it holds."""
    if context.exists():
        shutil.rmtree(context)
    (context / "wheels").mkdir(parents=True)
    shutil.copy2(images_dir() / image / "Containerfile", context / "Containerfile")
    # Files the Containerfile COPYs from its own folder (scripts such as the GPU worker's
    # dask-cuda-worker), under files/.
    for source in image_files(image):
        (context / "files").mkdir(exist_ok=True)
        shutil.copy2(source, context / "files" / source.name)
    text = "".join(f"{requirements[name].line}\n" for name in sorted(wheels))
    (context / "requirements.txt").write_text(text)
    for path in [*wheels.values(), *extra_wheels]:
        target = context / "wheels" / path.name
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
    if image in CREDENTIAL_PROCESS_IMAGES:
        script = context / CREDENTIAL_PROCESS_SCRIPT
        script.write_text(credential_process_script())
        script.chmod(0o755)
        from dask_platform import aws_profile_hint, object_stores

        shutil.copy2(object_stores.__file__, context / OBJECT_STORES_MODULE)
        shutil.copy2(aws_profile_hint.__file__, context / PROFILE_HINT_MODULE)
        (context / AWS_CONFIG_PTH).write_text(AWS_CONFIG_PTH_LINE)
    return text


def _git(*args: str) -> str:
    try:
        result = subprocess.run(
            ["git", "-C", str(project_root()), *args], capture_output=True, text=True, check=False
        )
    except OSError:
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else "unknown"


_STEP = re.compile(r"(?:\[(\d+)/(\d+)\]\s+)?step\s+(\d+)/(\d+)", re.IGNORECASE)


def build_fraction(line: str) -> float | None:
    """How far a build is, from podman's ``[s/S] STEP i/n`` or Docker's ``Step i/N`` lines."""
    match = _STEP.search(line)
    if match is None:
        return None
    stage, stages, step, steps = match.groups()
    done = (int(step) - 1) / int(steps)
    if stage is None:
        return done
    return (int(stage) - 1 + done) / int(stages)


def _engine_build(
    client: docker.DockerClient,
    context: Path,
    reference: str,
    buildargs: Mapping[str, str],
    reporter: Reporter,
    task: TaskID,
) -> str:
    tail: list[str] = []
    image_id: str | None = None
    stream = client.api.build(
        path=str(context),
        dockerfile="Containerfile",
        tag=reference,
        buildargs=dict(buildargs),
        rm=True,
        forcerm=True,
        pull=False,
        decode=True,
    )
    for chunk in stream:
        if "error" in chunk:
            raise ImageBuildError(
                f"building {reference} failed: {chunk['error']}\n" + "\n".join(tail[-40:])
            )
        text = chunk.get("stream")
        if text:
            for line in text.splitlines():
                reporter.log(line)
                tail = [*tail[-60:], line]
                fraction = build_fraction(line)
                if fraction is not None:
                    reporter.update(task, completed=fraction, detail=line.strip())
        aux = chunk.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            image_id = str(aux["ID"])
    if image_id is None:
        try:
            image_id = str(client.images.get(reference).id)
        except docker.errors.ImageNotFound as exc:
            raise ImageBuildError(
                f"building {reference} produced no image:\n" + "\n".join(tail[-40:])
            ) from exc
    return image_id


STAGE_LABEL = "org.dask-platform.stage"


def remove_leftovers(
    client: docker.DockerClient, image: str, lock_sha: str, keep_id: str, reporter: Reporter
) -> None:
    """Remove what a build leaves behind: its build-stage images (labelled, untagged) and
    earlier builds of the same image for the same lock (superseded: a Containerfile or the
    project code changed). Images of other locks stay; an image in use is left alone."""
    leftovers = client.images.list(filters={"dangling": True, "label": f"{STAGE_LABEL}=build"})
    for candidate in client.images.list(name=local_name(image)):
        labels = candidate.labels or {}
        if labels.get(LOCK_LABEL) == lock_sha and candidate.id != keep_id:
            leftovers.append(candidate)
    for leftover in leftovers:
        try:
            client.images.remove(str(leftover.id), force=False, noprune=False)
        except docker.errors.APIError as exc:
            reporter.log(f"left {leftover.id} in place: {exc}")


def _reusable(client: docker.DockerClient, reference: str, key: str) -> str | None:
    try:
        image = client.images.get(reference)
    except docker.errors.ImageNotFound:
        return None
    labels = image.labels or {}
    return str(image.id) if labels.get(BUILD_KEY_LABEL) == key else None


def build_images(
    client: docker.DockerClient, request: BuildRequest, reporter: Reporter
) -> list[BuiltImage]:
    """Build (or reuse) the requested images, parents first."""
    unknown = sorted(set(request.images) - set(all_images()))
    if unknown:
        raise ImageBuildError(
            f"unknown image(s) {', '.join(unknown)}; one of {{{', '.join(all_images())}}}"
        )
    wanted = set(request.images)
    for image in list(wanted):
        parent = PARENT_IMAGE.get(image)
        if parent is not None:
            wanted.add(parent)  # a notebook needs the worker of the same lock
    order = [image for image in all_images() if image in wanted]

    sha = checked_lock()
    tag = lock_tag(sha)
    machine = platform.machine()
    cache = request.cache_dir
    # Every image sits on the base (a notebook through its worker), so its Python - patch level
    # included - decides which of the lock's forks apply.
    base = resolve_base(
        client,
        requires_python(),
        cache / "base",
        reporter,
        requested=request.base_image,
        allow_fallback=request.allow_base_fallback,
        refresh=request.refresh_base,
    )
    reporter.note(f"base image: {base.reference} ({base.origin}, Python {base.python})")
    environment = target_environment(base.python, machine)
    wheelhouse = Wheelhouse(cache / "wheels" / machine, machine, base.python)

    vcs_ref = _git("rev-parse", "HEAD")
    source_url = _git("config", "--get", "remote.origin.url")
    built: dict[str, BuiltImage] = {}
    for image in order:
        started = time.monotonic()
        requirements = image_requirements(image, environment)
        wheels = wheelhouse.ensure(image, requirements, reporter)
        extra: list[Path] = []
        key_parts = {"image": image, "lock": sha, "machine": machine}
        if image in PROJECT_WHEEL_IMAGES:
            wheel = project_wheel(cache / "project-wheel", reporter)
            extra.append(wheel)
            key_parts["project_wheel"] = sha256_file(wheel)
        context = cache / "context" / image
        key_parts["requirements"] = assemble_context(context, image, requirements, wheels, extra)
        key_parts["containerfile"] = (context / "Containerfile").read_text()
        if image in CREDENTIAL_PROCESS_IMAGES:
            key_parts["credential_process"] = credential_process_script() + AWS_CONFIG_PTH_LINE
            key_parts["profile_hint"] = (context / PROFILE_HINT_MODULE).read_text()
        for source in image_files(image):
            key_parts[f"file:{source.name}"] = source.read_text()
        buildargs = {"LOCK_SHA256": sha, "LOCK_TAG": tag, "VCS_REF": vcs_ref}
        buildargs["SOURCE_URL"] = source_url
        parent = PARENT_IMAGE.get(image)
        if parent is not None:
            buildargs["WORKER_IMAGE"] = built[parent].build_reference
            key_parts["parent"] = built[parent].image_id
        else:
            buildargs["BASE_IMAGE"] = base.reference
            key_parts["base"] = base.image_id
        key = build_key(key_parts)
        buildargs["BUILD_KEY"] = key
        reference = f"{local_name(image)}:{tag}"
        build_reference = f"{local_name(image)}:build-{key[:12]}"
        image_id = None if request.rebuild else _reusable(client, build_reference, key)
        reused = image_id is not None
        task = reporter.task(f"{image}: build", total=1.0)
        if image_id is None:
            image_id = _engine_build(client, context, build_reference, buildargs, reporter, task)
        findings = audit_image(client, build_reference)
        if findings:
            raise ImageBuildError(
                f"{build_reference} breaks the image rules:\n"
                + "\n".join(f"  - {finding}" for finding in findings)
            )
        # The lock tag follows the newest build of this lock (re-pointed when a Containerfile or
        # the project code changed); the build tag is immutable.
        client.images.get(image_id).tag(local_name(image), tag)
        remove_leftovers(client, image, sha, image_id, reporter)
        # Re-assembled from the wheelhouse on every run; kept only when a build fails (to debug).
        shutil.rmtree(context)
        seconds = time.monotonic() - started
        reporter.done(task, f"{'reused' if reused else 'built'} {reference}")
        built[image] = BuiltImage(
            image=image,
            reference=reference,
            build_reference=build_reference,
            image_id=image_id,
            build_key=key,
            lock_sha256=sha,
            reused=reused,
            seconds=seconds,
        )
    return [built[image] for image in order]
