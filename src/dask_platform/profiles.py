"""Cluster profiles: ``cluster, client = dask_platform.connect("hpc")``.

A profile file names the clusters an analyst uses - a dask-gateway site, dask-cloudprovider on
the platform's ECS/Fargate/EC2 resources, SLURM through dask-jobqueue, or a LocalCluster - so one
line gets any of them. The file is YAML, validated by one pydantic model (unknown keys refused,
every problem reported with its key path)::

    profiles:
      central:                      # a dask-gateway site (from its stack outputs)
        kind: gateway
        site: central
        outputs: [~/sites/outputs.central.json, ~/sites/outputs.hpc.json]
        options: {worker_memory: 4}
      fargate:                      # dask-cloudprovider with the platform's kwargs
        kind: fargate
        outputs: ~/sites/outputs.prod.json
        team: hydrology
        n_workers: 4
      hpc:                          # dask-jobqueue
        kind: slurm
        account: hydro
        walltime: "02:00:00"
        memory: 16GiB
        cores: 8
        interface: ib0
        jobs: 2
      laptop:
        kind: local
        n_workers: 2

Where the file is: the ``path`` argument, else ``$DASK_PLATFORM_PROFILES``, else
``~/.config/dask-platform/profiles.yaml``. No profile may carry AWS keys or identity variables
(the same rule as every other path of the platform): such a profile is refused, naming the key.

For dask-cloudprovider profiles, :func:`cluster_arguments` returns the class and the exact
keyword arguments :func:`connect` would pass (the ECS/EC2 start itself needs AWS); ``connect``
accepts ``cluster_class=`` to use another class with those arguments.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dask_platform.config.errors import format_validation_error, problems_message

PROFILES_ENV = "DASK_PLATFORM_PROFILES"
DEFAULT_PROFILES = Path("~/.config/dask-platform/profiles.yaml")
KINDS = ("gateway", "fargate", "ecs", "ec2", "slurm", "local")
ProfileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class ProfileError(ValueError):
    """A profile problem: names the profile, the key and the allowed values."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AdaptRange(_Model):
    minimum: int = Field(ge=0)
    maximum: int = Field(ge=1)


class GatewayProfile(_Model):
    kind: Literal["gateway"]
    site: str = Field(description="The site's name (its stack outputs' site.name).")
    outputs: list[Path] = Field(
        default_factory=list,
        description="`pulumi stack output --json` files of the sites; empty = the local platform.",
    )
    state_dir: Path | None = Field(
        default=None, description="The local platform's state directory (default .dask-platform)."
    )
    username: str | None = Field(
        default=None, description="Log in as this user (password grant / basic auth)."
    )
    adapt: AdaptRange | None = Field(
        default=None, description="Adaptive range; default: the site's own defaults."
    )
    workers: int | None = Field(default=None, ge=0, description="Fixed workers instead.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Cluster options, e.g. worker_memory, team."
    )


class CloudProviderProfile(_Model):
    kind: Literal["fargate", "ecs", "ec2"]
    outputs: Path = Field(description="The stack's `pulumi stack output --json` file.")
    team: str = Field(description="The team whose task role / instance profile workers get.")
    gpu: bool = Field(default=False, description="ecs/ec2: GPU workers.")
    n_workers: int | None = Field(default=None, ge=0)
    options: dict[str, Any] = Field(
        default_factory=dict, description="Further constructor arguments (never keys)."
    )


class SlurmProfile(_Model):
    kind: Literal["slurm"]
    account: str = Field(min_length=1, description="The allocation jobs are charged to (-A).")
    walltime: str = Field(
        pattern=r"^(\d+-)?\d{1,3}:\d{2}:\d{2}$", description="Job time limit, [D-]HH:MM:SS."
    )
    memory: str = Field(
        pattern=r"^\d+(\.\d+)?\s*([KMGT]i?B)$", description="Memory per job, e.g. 16GiB."
    )
    cores: int = Field(ge=1, description="Cores per job.")
    processes: int | None = Field(default=None, ge=1, description="Worker processes per job.")
    interface: str | None = Field(
        default=None, description="Network interface workers and scheduler use (e.g. ib0)."
    )
    queue: str | None = Field(default=None, description="The partition (-p).")
    jobs: int = Field(default=0, ge=0, description="Jobs submitted at start.")
    job_extra_directives: list[str] = Field(default_factory=list)
    job_script_prologue: list[str] = Field(default_factory=list)
    local_directory: str | None = None
    log_directory: str | None = None


class LocalProfile(_Model):
    kind: Literal["local"]
    n_workers: int | None = Field(default=None, ge=0)
    threads_per_worker: int | None = Field(default=None, ge=1)
    processes: bool = True
    memory_limit: str | None = None


Profile = Annotated[
    GatewayProfile | CloudProviderProfile | SlurmProfile | LocalProfile,
    Field(discriminator="kind"),
]


class ProfilesFile(_Model):
    profiles: dict[ProfileName, Profile] = Field(min_length=1)


@dataclass(frozen=True)
class ClusterArguments:
    """What :func:`connect` constructs: ``cluster_class(**kwargs)``."""

    cluster_class: str
    kwargs: dict[str, Any]

    def load_class(self) -> type:
        import importlib

        module, _, name = self.cluster_class.rpartition(".")
        cls: type = getattr(importlib.import_module(module), name)
        return cls


def profiles_path(path: str | Path | None = None, environ: Mapping[str, str] = os.environ) -> Path:
    if path is not None:
        return Path(path).expanduser()
    if environ.get(PROFILES_ENV):
        return Path(environ[PROFILES_ENV]).expanduser()
    return DEFAULT_PROFILES.expanduser()


def load_profiles(path: str | Path | None = None) -> ProfilesFile:
    """Read and validate the profiles file (every problem at once)."""
    from dask_platform.guard.secrets import scan_text, scan_value

    file = profiles_path(path)
    if not file.is_file():
        raise ProfileError(
            f"{file}: no profiles file; write one (see dask_platform.profiles) or point "
            f"{PROFILES_ENV} at it"
        )
    try:
        document = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ProfileError(f"{file}: not YAML ({exc})") from None
    if not isinstance(document, dict):
        raise ProfileError(f"{file}: must be a mapping with a profiles: key")
    listed = document.get("profiles")
    raw: dict[str, Any] = listed if isinstance(listed, dict) else {}
    findings = list(scan_value("profiles", raw))
    for name, entry in raw.items():
        # Shell lines run before each SLURM worker: an `export AWS_...=` there is a copied key.
        prologue = entry.get("job_script_prologue") if isinstance(entry, dict) else None
        if isinstance(prologue, list):
            text = "\n".join(str(line) for line in prologue)
            path = f"profiles.{name}.job_script_prologue"
            findings.extend(scan_text(path, text, assignments=True))
    problems = sorted({f"{finding.path}: {finding.what}" for finding in findings})
    try:
        profiles = ProfilesFile.model_validate(document)
    except ValidationError as exc:
        problems.extend(format_validation_error(exc, ProfilesFile))
        profiles = None
    if problems or profiles is None:
        raise ProfileError(problems_message(str(file), problems))
    return profiles


def get_profile(name: str, path: str | Path | None = None) -> Profile:
    profiles = load_profiles(path).profiles
    if name not in profiles:
        raise ProfileError(
            f"profile: {name!r} is not defined in {profiles_path(path)}; profiles: "
            f"{', '.join(sorted(profiles))}"
        )
    return profiles[name]


def cluster_arguments(profile: Profile) -> ClusterArguments:
    """The cluster class and constructor arguments of a non-gateway profile."""
    if isinstance(profile, CloudProviderProfile):
        from dask_platform.cloudprovider import Platform

        platform = Platform.from_outputs(profile.outputs.expanduser())
        extra = dict(profile.options)
        if profile.n_workers is not None:
            extra["n_workers"] = profile.n_workers
        if profile.kind == "fargate":
            if profile.gpu:
                raise ProfileError("gpu: Fargate has no GPUs; use kind: ecs or ec2 with gpu: true")
            kwargs = platform.fargate_kwargs(profile.team, **extra)
            return ClusterArguments("dask_cloudprovider.aws.FargateCluster", kwargs)
        if profile.kind == "ecs":
            kwargs = platform.ecs_kwargs(profile.team, gpu=profile.gpu, **extra)
            return ClusterArguments("dask_cloudprovider.aws.ECSCluster", kwargs)
        kwargs = platform.ec2_kwargs(profile.team, gpu=profile.gpu, **extra)
        return ClusterArguments("dask_cloudprovider.aws.EC2Cluster", kwargs)
    if isinstance(profile, SlurmProfile):
        kwargs = profile.model_dump(exclude={"kind", "jobs"}, exclude_none=True)
        for key in ("job_extra_directives", "job_script_prologue"):
            if not kwargs.get(key):
                kwargs.pop(key, None)
        return ClusterArguments("dask_jobqueue.SLURMCluster", kwargs)
    if isinstance(profile, LocalProfile):
        kwargs = profile.model_dump(exclude={"kind"}, exclude_none=True)
        return ClusterArguments("distributed.LocalCluster", kwargs)
    raise ProfileError(f"a {profile.kind} profile starts through its gateway; use connect()")


def connect(
    profile: str,
    *,
    path: str | Path | None = None,
    cluster_class: Callable[..., Any] | None = None,
    auth: Any = None,
    password: str | None = None,
) -> tuple[Any, Any]:
    """Start the cluster a named profile describes and return ``(cluster, client)``.

    ``cluster_class`` replaces the profile's class (same arguments; e.g. a subclass).
    Gateway profiles: ``auth`` replaces the site's default ``GatewayAuth``; ``password`` is
    used once to log in as the profile's ``username`` and is not kept.
    """
    from distributed import Client

    chosen = get_profile(profile, path)
    if isinstance(chosen, GatewayProfile):
        return _connect_gateway(chosen, auth=auth, password=password)
    arguments = cluster_arguments(chosen)
    cls = cluster_class or arguments.load_class()
    cluster = cls(**arguments.kwargs)
    if isinstance(chosen, SlurmProfile) and chosen.jobs:
        cluster.scale(jobs=chosen.jobs)
    return cluster, Client(cluster)


def _connect_gateway(profile: GatewayProfile, auth: Any, password: str | None) -> tuple[Any, Any]:
    from dask_gateway import Gateway

    from dask_platform.local.config import DEFAULT_STATE_DIR
    from dask_platform.sites import SiteCatalog, default_auth

    catalog = (
        SiteCatalog.from_outputs([p.expanduser() for p in profile.outputs])
        if profile.outputs
        else SiteCatalog.from_local(profile.state_dir or DEFAULT_STATE_DIR)
    )
    site = catalog[profile.site]
    if auth is None:
        auth = default_auth(site, username=profile.username, password=password)
    gateway = Gateway(site.address, proxy_address=site.proxy_address, auth=auth)
    options = gateway.cluster_options()
    for key, value in profile.options.items():
        setattr(options, key, value)
    cluster = gateway.new_cluster(options)
    if profile.workers is not None:
        cluster.scale(profile.workers)
    else:
        adapt = profile.adapt or AdaptRange(
            minimum=site.adaptive.minimum, maximum=site.adaptive.maximum
        )
        cluster.adapt(minimum=adapt.minimum, maximum=adapt.maximum)
    return cluster, cluster.get_client()
