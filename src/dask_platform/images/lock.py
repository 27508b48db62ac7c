"""The images' one lock: regenerate it pinned to the client's lock, export each image's part.

``images/pyproject.toml`` is the readable input (one dependency group per image);
``images/uv.lock`` is the lock, with hashes, resolved for Linux and the images' Python. Before
resolving, :func:`relock` copies every version of the project's own ``uv.lock`` into the
generated ``constraint-dependencies`` block, so a package both environments have is the same
version in both: what ``dask-platform images drift`` then verifies on real images and clusters.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from dask_platform.images import images_dir
from dask_platform.project import project_root


def images_lock_file() -> Path:
    """``images/uv.lock``: the one lock of every image."""
    return images_dir() / "uv.lock"


def images_pyproject_file() -> Path:
    """``images/pyproject.toml``: the images' dependency groups (partly generated)."""
    return images_dir() / "pyproject.toml"


def client_lock_file() -> Path:
    """The client's ``uv.lock`` (the project root's)."""
    return project_root() / "uv.lock"


def client_pyproject_file() -> Path:
    """The client's ``pyproject.toml``."""
    return project_root() / "pyproject.toml"


BEGIN_GENERATED = "# BEGIN GENERATED: "
END_GENERATED = "# END GENERATED: "


class LockError(RuntimeError):
    """The images' lock is missing, stale, or inconsistent with the client's lock."""


def lock_sha256(path: Path | None = None) -> str:
    path = path or images_lock_file()
    if not path.is_file():
        raise LockError(f"{path} is missing: run `make images-lock` to create it")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lock_tag(sha256: str) -> str:
    """The image tag that names a lock: ``lock-`` and 12 hex digits of its sha256."""
    return f"lock-{sha256[:12]}"


def locked_versions(path: Path) -> dict[str, set[str]]:
    """Every registry package of a uv lock and its version(s) (a universal lock may fork)."""
    document = tomllib.loads(path.read_text())
    versions: dict[str, set[str]] = {}
    for package in document.get("package", []):
        if "registry" not in package.get("source", {}):
            continue  # the projects themselves (editable, virtual, directory sources)
        versions.setdefault(canonicalize_name(package["name"]), set()).add(package["version"])
    return versions


def client_constraints(client_lock: Path | None = None) -> list[str]:
    """``name==version`` for every package the client's lock pins to a single version."""
    client_lock = client_lock or client_lock_file()
    return [
        f"{name}=={next(iter(versions))}"
        for name, versions in sorted(locked_versions(client_lock).items())
        if len(versions) == 1
    ]


def _generated_block(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"^{re.escape(BEGIN_GENERATED + name)}\b[^\n]*\n.*?^{re.escape(END_GENERATED + name)}$",
        re.MULTILINE | re.DOTALL,
    )


def replace_generated(text: str, name: str, key: str, items: list[str]) -> str:
    """Replace the body of a ``# BEGIN GENERATED: <name>`` block with ``key = [items]``."""
    match = _generated_block(name).search(text)
    if match is None:
        raise LockError(
            f"images/pyproject.toml: the '{BEGIN_GENERATED}{name}' ... '{END_GENERATED}{name}' "
            "block is missing"
        )
    header = match.group(0).splitlines()[0]
    body = "".join(f'    "{item}",\n' for item in items)
    block = f"{header}\n{key} = [\n{body}]\n{END_GENERATED}{name}"
    return text[: match.start()] + block + text[match.end() :]


def project_dependencies(client_pyproject: Path | None = None) -> list[str]:
    """The project's runtime dependencies: the gateway image installs its wheel with them."""
    client_pyproject = client_pyproject or client_pyproject_file()
    return list(tomllib.loads(client_pyproject.read_text())["project"]["dependencies"])


def generated_project_dependencies(pyproject: Path | None = None) -> list[str]:
    """The ``project`` group as last generated into images/pyproject.toml."""
    pyproject = pyproject or images_pyproject_file()
    groups = tomllib.loads(pyproject.read_text())["dependency-groups"]
    return [item for item in groups.get("project", []) if isinstance(item, str)]


def write_generated(pyproject: Path | None = None) -> bool:
    """Copy the client's pins and the project's dependencies in; True if the file changed."""
    pyproject = pyproject or images_pyproject_file()
    text = pyproject.read_text()
    updated = replace_generated(text, "project", "project", project_dependencies())
    updated = replace_generated(
        updated, "constraints", "constraint-dependencies", client_constraints()
    )
    if updated == text:
        return False
    pyproject.write_text(updated)
    return True


def uv() -> str:
    # `uv run` exports UV with its own path; otherwise PATH.
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        raise LockError("uv is not on PATH; `make setup` installs it")
    return found


def relock(upgrade: bool = False) -> bool:
    """Pin the client's versions, then resolve ``images/uv.lock``. True if the lock changed."""
    lock_file = images_lock_file()
    before = lock_file.read_bytes() if lock_file.is_file() else b""
    write_generated()
    command = [uv(), "lock", "--project", str(images_dir())]
    if upgrade:
        command.append("--upgrade")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LockError(
            "uv could not resolve images/pyproject.toml pinned to the client's uv.lock:\n"
            + result.stderr.strip()
        )
    return lock_file.read_bytes() != before


def lock_is_current() -> tuple[bool, str]:
    """Whether ``images/uv.lock`` still matches its input (checked offline).

    Current means: the lock matches images/pyproject.toml, and the generated ``project`` group
    still equals the project's runtime dependencies. A change elsewhere in the client's lock
    matters only where it changes a version the images also have: :func:`client_mismatches`.
    """
    if generated_project_dependencies() != project_dependencies():
        return False, (
            "the project's runtime dependencies (pyproject.toml) changed since the last "
            "`make images-lock`; the gateway image installs them"
        )
    result = subprocess.run(
        [uv(), "lock", "--check", "--offline", "--project", str(images_dir())],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0, result.stderr.strip()


@dataclass(frozen=True)
class Mismatch:
    package: str
    images: str
    client: str


def client_mismatches(
    images_lock: Path | None = None, client_lock: Path | None = None
) -> list[Mismatch]:
    """Packages both locks have at different versions (none, after ``make images-lock``)."""
    images_lock = images_lock or images_lock_file()
    client_lock = client_lock or client_lock_file()
    images = locked_versions(images_lock)
    client = locked_versions(client_lock)
    return [
        Mismatch(name, ", ".join(sorted(images[name])), ", ".join(sorted(client[name])))
        for name in sorted(images.keys() & client.keys())
        if images[name] != client[name]
    ]


# --------------------------------------------------------------------------- per-image exports


@dataclass(frozen=True)
class LockedRequirement:
    name: str  # canonical
    version: str
    marker: str | None
    hashes: tuple[str, ...]
    line: str  # the requirement as exported, hashes included, one line

    def applies(self, environment: Mapping[str, str]) -> bool:
        return self.marker is None or Marker(self.marker).evaluate(dict(environment))

    @property
    def pinned_with_hashes(self) -> str:
        """``name==version --hash=...`` without the marker."""
        hashes = " ".join(f"--hash={h}" for h in self.hashes)
        return f"{self.name}=={self.version} {hashes}"


def export_group(group: str, lock_dir: Path | None = None) -> str:
    """One image's requirements from the lock (hashes, markers), exported without resolving."""
    lock_dir = lock_dir or images_dir()
    result = subprocess.run(
        [
            uv(),
            "export",
            "--frozen",
            "--project",
            str(lock_dir),
            "--only-group",
            group,
            "--no-emit-project",
            "--no-header",
            "--no-annotate",
            "--format",
            "requirements-txt",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise LockError(f"uv export of group {group!r} failed:\n{result.stderr.strip()}")
    return result.stdout


def parse_requirements(text: str) -> list[LockedRequirement]:
    """Parse exported ``name==version ; marker --hash=...`` lines (continuations joined).

    A name may appear more than once with exclusive markers: the lock forks where a package's
    newer releases need a newer Python patch level than the oldest the lock supports.
    """
    joined = re.sub(r"\\\n\s*", " ", text)
    parsed: list[LockedRequirement] = []
    for raw in joined.splitlines():
        line = " ".join(raw.split())
        if not line or line.startswith("#"):
            continue
        spec, *hash_parts = line.split(" --hash=")
        requirement = Requirement(spec.strip())
        pins = [s.version for s in requirement.specifier if s.operator == "=="]
        if len(pins) != 1:
            raise LockError(f"not a pinned requirement in the export: {line!r}")
        parsed.append(
            LockedRequirement(
                name=canonicalize_name(requirement.name),
                version=pins[0],
                marker=str(requirement.marker) if requirement.marker else None,
                hashes=tuple(h.strip() for h in hash_parts),
                line=line,
            )
        )
    return parsed


@cache
def _group_requirements(
    group: str, lock_dir: Path, lock_digest: str
) -> tuple[LockedRequirement, ...]:
    return tuple(parse_requirements(export_group(group, lock_dir)))


def group_requirements(group: str, lock_dir: Path | None = None) -> list[LockedRequirement]:
    """Every requirement line of a group (all forks), from the lock as it is now."""
    lock_dir = lock_dir or images_dir()
    digest = lock_sha256(lock_dir / "uv.lock")
    return list(_group_requirements(group, lock_dir, digest))


def applicable(
    requirements: Iterable[LockedRequirement], environment: Mapping[str, str]
) -> dict[str, LockedRequirement]:
    """The one requirement per package that applies to ``environment``."""
    chosen: dict[str, LockedRequirement] = {}
    for requirement in requirements:
        if not requirement.applies(environment):
            continue
        if requirement.name in chosen:
            raise LockError(
                f"two locked versions of {requirement.name} apply to the images' platform: "
                f"{chosen[requirement.name].version} and {requirement.version}"
            )
        chosen[requirement.name] = requirement
    return chosen


def target_environment(python_full_version: str, machine: str | None = None) -> dict[str, str]:
    """PEP 508 marker values of an image: Linux, CPython ``python_full_version``, a machine."""
    major, minor, *_ = python_full_version.split(".")
    return {
        "implementation_name": "cpython",
        "implementation_version": python_full_version,
        "os_name": "posix",
        "platform_machine": machine or platform.machine(),
        "platform_python_implementation": "CPython",
        "platform_system": "Linux",
        "python_full_version": python_full_version,
        "python_version": f"{major}.{minor}",
        "sys_platform": "linux",
        "platform_release": "",
        "platform_version": "",
    }


def image_packages(
    group: str, environment: Mapping[str, str], lock_dir: Path | None = None
) -> dict[str, str]:
    """The packages (canonical name -> version) an image of ``group`` installs from the lock."""
    lock_dir = lock_dir or images_dir()
    chosen = applicable(group_requirements(group, lock_dir), environment)
    return {name: requirement.version for name, requirement in chosen.items()}


def requires_python(pyproject: Path | None = None) -> str:
    """The images' Python minor version, from ``requires-python = "==3.X.*"``."""
    pyproject = pyproject or images_pyproject_file()
    spec = tomllib.loads(pyproject.read_text())["project"]["requires-python"]
    match = re.fullmatch(r"==\s*(\d+\.\d+)\.\*", spec.strip())
    if match is None:
        raise LockError(
            f"{pyproject}: requires-python must name one minor version as '==3.X.*' "
            f"(got {spec!r}): the base image must provide exactly that Python"
        )
    return match.group(1)
