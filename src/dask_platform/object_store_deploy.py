"""What the platform declares and renders for other object stores (the deploy side of
:mod:`dask_platform.object_stores`): the stores' Secrets Manager names and tags, the key pair
from the ``object_store_keys`` Pulumi secret, the platform AWS config file's text, the variables
the gateway sets on schedulers and workers (the team's store profiles, the personal scratch
prefix), the stack outputs, and the EKS Helm values that mount the AWS config.

:mod:`dask_platform.object_stores` is what runs in the pods (the credential process, the AWS
config written from its variable, the unknown-profile hint); it imports the standard library
only, and its source is shipped into the worker image as is.

ref: https://docs.aws.amazon.com/sdkref/latest/guide/feature-process-credentials.html
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dask_platform.object_stores import (
    AWS_CONFIG_FILE_ENV,
    AWS_CONFIG_PATH,
    CREDENTIAL_PROCESS,
    JUPYTERHUB_USER_ENV,
    OBJECT_STORE_TAG,
    OFFLINE_SECRET_TEXT,
    PANGEO_SCRATCH_ENV,
    PLATFORM_ENV_VARS,
    SCRATCH_URL_ENV,
    SECRET_FIELDS,
    SECRET_ID_KEY,
    TEAM_ENV,
    TEAMS_KEY,
    TEAMS_TAG,
    ObjectStoreError,
    parse_store_key,
)


def secret_name(prefix: str, store: str) -> str:
    """The Secrets Manager name of a store's key pair: ``<prefix>/object-stores/<store>``."""
    return f"{prefix}/object-stores/{store}"


def secret_tags(store: str, teams: Sequence[str]) -> dict[str, str]:
    return {OBJECT_STORE_TAG: store, TEAMS_TAG: " ".join(sorted(teams))}


def stores_of_team(stores: Sequence[Any], team: str) -> list[str]:
    """Names of the stores (anything with ``name`` and ``teams``) a team may use, sorted."""
    return sorted(s.name for s in stores if team in s.teams)


def store_secret_string(object_store_keys: str, store: str) -> str:
    """The secret text for ONE store, picked from the ``object_store_keys`` Pulumi secret (a
    JSON object: store name -> key pair). Each store's secret holds its own pair only."""
    try:
        keys = json.loads(object_store_keys)
    except ValueError:
        keys = None
    if not isinstance(keys, dict):
        raise ObjectStoreError(
            "object_store_keys: must be a JSON object mapping each store name to "
            f"{{{', '.join(SECRET_FIELDS)}}}"
        )
    if store not in keys:
        raise ObjectStoreError(
            f"object_store_keys: no key pair for object store {store!r} "
            f"(it has: {', '.join(sorted(keys)) or 'none'})"
        )
    return json.dumps(parse_store_key(json.dumps(keys[store]), store), sort_keys=True)


def offline_object_store_keys(raw_config: Mapping[str, Any], namespace: str) -> str:
    """What the offline plan passes for the encrypted ``object_store_keys``: the stack's store
    names, each with placeholder text instead of a key (nothing is decrypted offline)."""
    stores = raw_config.get(f"{namespace}:object_stores")
    if isinstance(stores, str):
        try:
            stores = json.loads(stores)
        except ValueError:
            stores = []
    names = [s.get("name") for s in stores or [] if isinstance(s, dict)]
    return json.dumps(
        {str(n): dict.fromkeys(SECRET_FIELDS, OFFLINE_SECRET_TEXT) for n in names if n}
    )


@dataclass(frozen=True)
class StoreProfile:
    """One ``[profile <name>]`` of the platform's AWS config file."""

    name: str
    endpoint_url: str
    teams: tuple[str, ...]
    secret_id: str
    region: str | None = None
    addressing_style: str | None = None


def render_aws_config(
    profiles: Sequence[StoreProfile], default_endpoint_url: str | None = None
) -> str:
    """The AWS config file (INI) the platform mounts: one profile per store, no secret in it.

    ``default_endpoint_url`` is for the local platform only (its emulator stands in for the
    regional AWS endpoints, and an AWS_ENDPOINT_URL variable would override every profile's
    endpoint_url: environment beats config file in the SDKs' endpoint precedence).
    """
    lines = [
        "# Written by dask-platform: object stores by profile name. The key pairs are not here;",
        "# each profile's credential_process reads its store's secret with the pod's own role.",
        "",
    ]
    if default_endpoint_url:
        lines += ["[default]", f"endpoint_url = {default_endpoint_url}", ""]
    for profile in sorted(profiles, key=lambda p: p.name):
        lines += [f"[profile {profile.name}]", f"endpoint_url = {profile.endpoint_url}"]
        if profile.region:
            lines.append(f"region = {profile.region}")
        if profile.addressing_style:
            lines += ["s3 =", f"    addressing_style = {profile.addressing_style}"]
        lines += [
            f"credential_process = {CREDENTIAL_PROCESS} {profile.name}",
            f"{SECRET_ID_KEY} = {profile.secret_id}",
            f"{TEAMS_KEY} = {' '.join(sorted(profile.teams))}",
            "",
        ]
    return "\n".join(lines)


def gateway_object_store_settings(
    scratch_bucket: str, stores: Sequence[Any], aws_config_file: str = AWS_CONFIG_PATH
) -> dict[str, Any]:
    """The keys this module adds to the gateway settings (``gateway_settings``)."""
    return {
        "scratch_bucket": scratch_bucket,
        "object_stores": {s.name: sorted(s.teams) for s in stores},
        "aws_config_file": aws_config_file if stores else None,
    }


def refuse_platform_variables(requested: Mapping[str, Any], field: str = "environment") -> None:
    """Raise ValueError naming ``field`` and the variables if ``requested`` (a user's
    environment) sets any of :data:`PLATFORM_ENV_VARS` (any letter case)."""
    clash = sorted(k for k in requested if str(k).upper() in PLATFORM_ENV_VARS)
    if clash:
        raise ValueError(
            f"{field}: {', '.join(clash)} is set by the platform (from your team and user "
            f"name) and cannot be chosen; platform-set variables: {', '.join(PLATFORM_ENV_VARS)}"
        )


def scratch_environment(bucket: str, team: str, user: str) -> dict[str, str]:
    """``SCRATCH_URL`` = ``PANGEO_SCRATCH`` = ``s3://<bucket>/<team>/<user>/`` for ``user`` of
    ``team``. Raises ValueError naming ``user`` if it cannot be one path segment (empty,
    ``.`` or ``..``, which path normalisation and zarr resolve to the team's own prefix, or
    with ``/`` or a control character).

    The team prefix is the IAM boundary; the user prefix inside it is a convention.
    """
    if user in ("", ".", "..") or "/" in user or not user.isprintable():
        raise ValueError(
            f"user: {user!r} cannot name a scratch prefix (one path segment: not empty, not '.' "
            "or '..', no '/' or control character)"
        )
    url = f"s3://{bucket}/{team}/{user}/"
    return {SCRATCH_URL_ENV: url, PANGEO_SCRATCH_ENV: url}


def notebook_scratch_environment(
    outputs: Mapping[str, Any], environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """``SCRATCH_URL`` and ``PANGEO_SCRATCH`` for the notebook's logged-in user
    (``JUPYTERHUB_USER``, which JupyterHub sets) of their team: ``DASK_PLATFORM_TEAM`` if the hub
    sets it, else the team whose role (``team_role_arns`` output) is the notebook's
    ``AWS_ROLE_ARN`` (IRSA). ``outputs``: the stack outputs (``scratch_bucket``,
    ``team_role_arns``). Raises ObjectStoreError naming what is missing."""
    user = environ.get(JUPYTERHUB_USER_ENV)
    if not user:
        raise ObjectStoreError(
            f"{JUPYTERHUB_USER_ENV} is not set: the scratch prefix is the logged-in user's, "
            "which JupyterHub sets in the notebook"
        )
    roles = dict(outputs.get("team_role_arns") or {})
    team = environ.get(TEAM_ENV) or next(
        (t for t, arn in sorted(roles.items()) if arn == environ.get("AWS_ROLE_ARN")), None
    )
    if environ.get(TEAM_ENV) and team not in roles:
        raise ObjectStoreError(
            f"{TEAM_ENV}: unknown team {team!r}; one of "
            f"{', '.join(sorted(roles)) or 'none in the outputs'}"
        )
    if not team or "scratch_bucket" not in outputs:
        raise ObjectStoreError(
            f"no team for the scratch prefix: neither {TEAM_ENV} nor an AWS_ROLE_ARN that is one "
            f"of the teams' roles ({', '.join(sorted(roles)) or 'none in the outputs'})"
            if not team
            else "outputs: no scratch_bucket (expected the stack's `pulumi stack output --json`)"
        )
    try:
        return scratch_environment(str(outputs["scratch_bucket"]), team, user)
    except ValueError as exc:
        raise ObjectStoreError(str(exc)) from None


def platform_environment(
    settings: Mapping[str, Any], team: str, user: str, requested: Mapping[str, str]
) -> dict[str, str]:
    """What the options handler adds to a cluster's environment for ``user`` of ``team``:
    ``SCRATCH_URL`` = ``PANGEO_SCRATCH`` = ``s3://<scratch>/<team>/<user>/``
    (:func:`scratch_environment`) and, when the stack has object stores, ``AWS_CONFIG_FILE``.
    Raises ValueError if ``requested`` (the user's ``environment`` option) names one of
    :data:`PLATFORM_ENV_VARS`: the platform sets these, never users.
    """
    refuse_platform_variables(requested)
    out = scratch_environment(str(settings["scratch_bucket"]), team, user)
    if settings.get("aws_config_file"):
        out[AWS_CONFIG_FILE_ENV] = str(settings["aws_config_file"])
    return out


def object_store_outputs(config: Any, secret_arns: Mapping[str, Any]) -> dict[str, Any]:
    """The ``object_stores`` stack output: per store its endpoint, region, addressing style,
    teams and secret ARN (``secret_arns`` values may be Pulumi Outputs). Never a key."""
    return {
        store.name: {
            "endpoint_url": store.endpoint_url,
            "region": store.region,
            "addressing_style": store.addressing_style,
            "teams": sorted(store.teams),
            "secret_arn": secret_arns[store.name],
            "profile": store.name,
        }
        for store in config.object_stores
    }


def aws_config_from_outputs(outputs: Mapping[str, Any]) -> str | None:
    """The platform AWS config (:func:`render_aws_config`) of a stack's outputs (``pulumi stack
    output --json``, or the local platform's outputs.json): one profile per entry of the
    ``object_stores`` output, at its ``local_endpoint_url`` where the local platform gives one.
    ``None`` for a stack without object stores. Raises ObjectStoreError naming the store and the
    missing field for a malformed entry."""
    stores = outputs.get("object_stores") or {}
    if not isinstance(stores, Mapping):
        raise ObjectStoreError("outputs.object_stores: must be an object (store name -> store)")
    profiles = []
    for name, store in sorted(stores.items()):
        missing = [k for k in ("endpoint_url", "teams", "secret_arn") if not store.get(k)]
        if missing:
            raise ObjectStoreError(
                f"outputs.object_stores.{name}: missing {', '.join(missing)} "
                "(expected endpoint_url, teams, secret_arn; region, addressing_style optional)"
            )
        profiles.append(
            StoreProfile(
                name=str(store.get("profile") or name),
                endpoint_url=str(store.get("local_endpoint_url") or store["endpoint_url"]),
                teams=tuple(str(t) for t in store["teams"]),
                secret_id=str(store["secret_arn"]),
                region=store.get("region"),
                addressing_style=store.get("addressing_style"),
            )
        )
    if not profiles:
        return None
    return render_aws_config(profiles, default_endpoint_url=outputs.get("aws_endpoint_url"))


AWS_CONFIG_MAP = "dask-platform-aws-config"
"""The ConfigMap holding the platform AWS config (key ``config``) in the gateway namespace."""


AWS_CONFIG_VOLUME = "dask-platform-aws-config"


def object_store_helm_values(stores: Sequence[Any]) -> dict[str, Any]:
    """Chart values that mount the platform AWS config into scheduler and worker pods
    (``gateway.backend.{scheduler,worker}.extraPodConfig`` volumes and
    ``extraContainerConfig`` mounts), or ``{}`` for a stack without object stores.

    ref: https://gateway.dask.org/install-kube.html (extraPodConfig, extraContainerConfig)
    """
    if not stores:
        return {}
    directory = os.path.dirname(AWS_CONFIG_PATH)
    pod = {
        "extraPodConfig": {
            "volumes": [
                {
                    "name": AWS_CONFIG_VOLUME,
                    "configMap": {
                        "name": AWS_CONFIG_MAP,
                        "items": [{"key": "config", "path": os.path.basename(AWS_CONFIG_PATH)}],
                    },
                }
            ]
        },
        "extraContainerConfig": {
            "volumeMounts": [{"name": AWS_CONFIG_VOLUME, "mountPath": directory, "readOnly": True}]
        },
    }
    return {"gateway": {"backend": {"scheduler": pod, "worker": pod}}}


def store_profiles(stores: Sequence[Any], secret_arns: Mapping[str, str]) -> list[StoreProfile]:
    """The AWS config profiles of a stack's stores (``stores``: ObjectStore models)."""
    return [
        StoreProfile(
            name=s.name,
            endpoint_url=s.endpoint_url,
            teams=tuple(s.teams),
            secret_id=secret_arns[s.name],
            region=s.region,
            addressing_style=s.addressing_style,
        )
        for s in stores
    ]
