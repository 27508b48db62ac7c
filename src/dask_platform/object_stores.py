"""Other S3-compatible object stores (OSN, Ceph, Wasabi), reached by profile name with no key in
any environment, option or cluster spec; and the personal scratch prefix.

The path, end to end::

    Pulumi secret object_store_keys ──> one Secrets Manager secret per store (KMS encrypted)
        IAM: secretsmanager:GetSecretValue on that literal ARN, for the allowed teams' roles only
    platform AWS config file (AWS_CONFIG_FILE, set by the platform on scheduler and workers)
        [profile osn-renci]
        endpoint_url = https://renc.osn.xsede.org
        credential_process = dask-platform-credential-process osn-renci
    botocore runs the credential process in the pod; it reads the secret with the pod's own team
    role (the default chain: web identity on EKS, the task role on ECS) and prints the key pair
    with an Expiration, so a rotated key is picked up without a restart.

So ``fsspec.filesystem("s3", profile="osn-renci")`` and ``boto3.Session(profile_name=
"osn-renci")`` work on a worker unchanged.

Importing this module imports the standard library only: the credential process runs on
workers whose image has boto3 but need not have the rest of this package's dependencies.

ref: https://docs.aws.amazon.com/sdkref/latest/guide/feature-process-credentials.html
ref: https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

CREDENTIAL_PROCESS = "dask-platform-credential-process"
"""The console script (pyproject ``[project.scripts]``) a profile's credential_process runs."""

AWS_CONFIG_PATH = "/etc/dask-platform/aws/config"
"""Where the platform's AWS config file is mounted in scheduler, worker and notebook pods."""

AWS_CONFIG_FILE_ENV = "AWS_CONFIG_FILE"
AWS_CONFIG_CONTENT_ENV = "DASK_PLATFORM_AWS_CONFIG"
"""The platform AWS config's text, base64 encoded (:func:`aws_config_env_value`), where nothing
can mount the file (ECS/Fargate tasks and EC2 instances that dask-cloudprovider starts): the
worker image writes it to a file at interpreter start and sets AWS_CONFIG_FILE
(:func:`materialize_aws_config`). Endpoints and secret ARNs, never a key. Base64 because
EC2Cluster's cloud-init puts each variable in a quoted YAML line, which folds newlines."""
TEAM_ENV = "DASK_PLATFORM_TEAM"
SCRATCH_URL_ENV = "SCRATCH_URL"
PANGEO_SCRATCH_ENV = "PANGEO_SCRATCH"
PLATFORM_ENV_VARS = (
    AWS_CONFIG_FILE_ENV,
    AWS_CONFIG_CONTENT_ENV,
    SCRATCH_URL_ENV,
    PANGEO_SCRATCH_ENV,
    TEAM_ENV,
)
"""Variables only the platform sets on schedulers and workers; a cluster option naming one is
refused (the values come from the authenticated user and the stack)."""
JUPYTERHUB_USER_ENV = "JUPYTERHUB_USER"
"""The logged-in user's name, which JupyterHub sets in every single-user notebook server."""

CREDENTIAL_LIFETIME_SECONDS = 3600
"""The Expiration the credential process reports. botocore refreshes process credentials 15
minutes before they expire (its advisory refresh), so a rotated key reaches running workers
within 45 minutes; shorter than 15 minutes would make every call re-run the process."""

SECRET_FIELDS = ("access_key_id", "secret_access_key")
"""The keys of one store's secret (and of each entry of ``object_store_keys``);
``session_token`` is optional."""

SECRET_ID_KEY = "dask_platform_secret_id"  # noqa: S105 (a profile key name)
TEAMS_KEY = "dask_platform_teams"
"""Profile keys of the platform's own (botocore ignores keys it does not know)."""

OBJECT_STORE_TAG = "dask-platform/object-store"
TEAMS_TAG = "dask-platform/teams"
"""Tags on each store's secret: the store, and its allowed teams separated by spaces (what the
object-store-key-per-team policy rule checks grants against)."""

OFFLINE_SECRET_TEXT = "[secret: not decrypted by the offline plan]"  # noqa: S105 (a placeholder)


class ObjectStoreError(RuntimeError):
    """A store cannot be used: unknown profile, not granted, or a malformed secret."""


def parse_store_key(text: str, store: str) -> dict[str, str]:
    """One store's key pair from its secret text (JSON object with ``access_key_id`` and
    ``secret_access_key``, optionally ``session_token``). Raises ObjectStoreError naming the
    store and the expected fields; never echoes the value."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not all(
        isinstance(value.get(f), str) and value.get(f) for f in SECRET_FIELDS
    ):
        raise ObjectStoreError(
            f"the key pair of object store {store!r} is not a JSON object with "
            f"{', '.join(SECRET_FIELDS)} (strings); set it with `pulumi config set --secret "
            "object_store_keys`"
        )
    return {k: str(value[k]) for k in (*SECRET_FIELDS, "session_token") if value.get(k)}


# --------------------------------------------------------------------------- credential process


def _profiles(config_file: str) -> dict[str, dict[str, Any]]:
    from botocore.configloader import load_config

    profiles: dict[str, dict[str, Any]] = load_config(config_file).get("profiles", {})
    return {n: p for n, p in profiles.items() if SECRET_ID_KEY in p}


def _team_stores(profiles: Mapping[str, Mapping[str, Any]], team: str | None) -> list[str]:
    if team is None:
        return sorted(profiles)
    return sorted(n for n, p in profiles.items() if team in str(p.get(TEAMS_KEY, "")).split())


def unknown_profile_message(name: str, environ: Mapping[str, str] = os.environ) -> str:
    """The error for a profile that is not an object store of this platform, naming the
    profiles the caller's team can use and the file they come from::

        'osn-typo' is not an object store of this platform; profiles team 'hydrology' can
        use: osn-renci (from AWS_CONFIG_FILE=/etc/dask-platform/aws/config)
    """
    team = environ.get(TEAM_ENV)
    config_file = environ.get(AWS_CONFIG_FILE_ENV)
    usable = _team_stores(_profiles(config_file), team) if config_file else []
    who = f"team {team!r}" if team else "this role"
    source = f" (from {AWS_CONFIG_FILE_ENV}={config_file})" if config_file else ""
    return (
        f"{name!r} is not an object store of this platform; profiles {who} can use: "
        f"{', '.join(usable) or 'none'}{source}"
    )


def store_profile_region(profile_config: Mapping[str, Any] | None) -> str | None:
    """The ``region`` of a platform object store profile (a profile of the AWS config with
    ``dask_platform_secret_id``), which :mod:`dask_platform.aws_profile_hint` makes botocore use
    for that profile over ``AWS_DEFAULT_REGION``; None for any other profile or a store with no
    region (botocore's own lookup then stands)."""
    if not profile_config or SECRET_ID_KEY not in profile_config:
        return None
    region = profile_config.get("region")
    return str(region) if region else None


def profile_not_found_hint(profile: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """What :mod:`dask_platform.aws_profile_hint` adds to botocore's ``The config profile
    (<profile>) could not be found`` where ``AWS_CONFIG_FILE`` is the platform's (a file with
    at least one object store profile): :func:`unknown_profile_message`. None elsewhere (a
    laptop's own config, no config, a file that cannot be read or parsed): botocore's message
    then stands alone. Never raises."""
    config_file = environ.get(AWS_CONFIG_FILE_ENV)
    if not config_file:
        return None
    try:
        if not _profiles(config_file):
            return None
        return unknown_profile_message(profile, environ)
    except Exception:  # it runs inside an exception's constructor: never replace that error
        return None


def fetch_credentials(
    store: str, environ: Mapping[str, str] = os.environ, now: datetime.datetime | None = None
) -> dict[str, Any]:
    """The credential_process document for ``store``, read with the caller's own role (boto3's
    default chain from the process environment; ``environ`` gives the platform variables).

    Raises ObjectStoreError: the profile is unknown (naming the team's profiles), the team's
    role is denied the secret (AccessDenied naming store and team), the process has no role or
    region to read it with (botocore's error named), or the secret is malformed.
    """
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    config_file = environ.get(AWS_CONFIG_FILE_ENV)
    if not config_file:
        raise ObjectStoreError(
            f"{AWS_CONFIG_FILE_ENV} is not set: the platform sets it on schedulers, workers and "
            "notebooks of stacks that have object stores"
        )
    profiles = _profiles(config_file)
    team = environ.get(TEAM_ENV)
    if store not in profiles:
        raise ObjectStoreError(unknown_profile_message(store, environ))
    secret_id = str(profiles[store][SECRET_ID_KEY])
    try:
        # The default chain (web identity on EKS, the task role on ECS), never a store's profile.
        client = boto3.session.Session().client("secretsmanager")
        text = client.get_secret_value(SecretId=secret_id)["SecretString"]
    except BotoCoreError as exc:  # no role, no region, no endpoint: not a traceback
        raise ObjectStoreError(
            f"object store {store!r}: its key cannot be read with this process's AWS role "
            f"({type(exc).__name__}: {exc}); schedulers, workers and notebooks of the platform "
            "run as their team's role (IRSA, ECS task or EC2 instance role)"
        ) from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if not (code.startswith("AccessDenied") or status == 403):
            raise ObjectStoreError(
                f"object store {store!r}: reading its key failed: {exc}"
            ) from None
        who = f"team {team!r}" if team else "this role"
        raise ObjectStoreError(
            f"AccessDenied: object store {store!r} is not granted to {who} (its role may not "
            f"read {secret_id}); object stores {who} can use: "
            f"{', '.join(_team_stores(profiles, team)) or 'none'}"
        ) from None
    pair = parse_store_key(text, store)
    expires = (now or datetime.datetime.now(datetime.UTC)) + datetime.timedelta(
        seconds=CREDENTIAL_LIFETIME_SECONDS
    )
    document: dict[str, Any] = {
        "Version": 1,
        "AccessKeyId": pair["access_key_id"],
        "SecretAccessKey": pair["secret_access_key"],
        "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if "session_token" in pair:
        document["SessionToken"] = pair["session_token"]
    return document


def aws_config_env_value(text: str) -> str:
    """The value of ``DASK_PLATFORM_AWS_CONFIG`` for an AWS config file's text (base64)."""
    import base64

    return base64.b64encode(text.encode()).decode()


def materialize_aws_config(environ: MutableMapping[str, str] = os.environ) -> str | None:
    """Where the platform AWS config arrives as base64 text (``DASK_PLATFORM_AWS_CONFIG``, the
    ECS and EC2 kwargs of :mod:`dask_platform.cloudprovider`) and ``AWS_CONFIG_FILE`` is not set:
    write
    it to ``<tmp>/dask-platform-aws-<uid>/config`` (directory 0700) and set ``AWS_CONFIG_FILE``
    in ``environ`` (so the process and its children read it). Returns the path, or None when
    there is nothing to do. The worker image runs this at every interpreter start (a .pth)."""
    value = environ.get(AWS_CONFIG_CONTENT_ENV)
    if not value or environ.get(AWS_CONFIG_FILE_ENV):
        return None
    import base64
    import binascii
    import tempfile

    try:
        text = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ObjectStoreError(
            f"{AWS_CONFIG_CONTENT_ENV}: not the base64 of an AWS config file; the platform sets "
            "it (dask_platform.cloudprovider kwargs), never users"
        ) from None
    directory = os.path.join(tempfile.gettempdir(), f"dask-platform-aws-{os.getuid()}")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, "config")
    partial = f"{path}.{os.getpid()}"
    with open(partial, "w") as handle:
        handle.write(text)
    os.replace(partial, path)
    environ[AWS_CONFIG_FILE_ENV] = path
    return path


def credential_process_main(argv: Sequence[str] | None = None) -> None:
    """``dask-platform-credential-process <store>``: print the store's credentials as the
    credential_process JSON on stdout; errors go to stderr (botocore shows them) with exit 1."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0].startswith("-"):
        print(f"usage: {CREDENTIAL_PROCESS} <object store profile name>", file=sys.stderr)
        raise SystemExit(2)
    # A user's AWS_PROFILE naming a store would make the secret read run this process again.
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        os.environ.pop(name, None)
    try:
        document = fetch_credentials(args[0])
    except ObjectStoreError as exc:
        print(f"{CREDENTIAL_PROCESS}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    sys.stdout.write(json.dumps(document) + "\n")


if __name__ == "__main__":
    credential_process_main()


NOTEBOOK_AWS_CONFIG = ".config/dask-platform/aws/config"
"""Where the notebook image's start script writes the platform AWS config (under ``$HOME``)
when the hub mounts none; it then sets ``AWS_CONFIG_FILE`` for the notebook's processes."""


# --------------------------------------------------------------------------- probes


def store_round_trip(profile: str, url: str) -> dict[str, Any]:
    """Run ON a worker: write ``url`` (``s3://bucket/key``) through the store's profile with
    fsspec, read it back with boto3, both by profile name alone. Returns ``{"ok": bool,
    "error": str | None, "team": ...}``; never raises (the demo and verify-workers report it)."""
    import boto3
    import fsspec

    team = os.environ.get(TEAM_ENV)
    payload = f"written by team {team} through profile {profile}".encode()
    bucket, _, key = url.removeprefix("s3://").partition("/")
    try:
        fs = fsspec.filesystem("s3", profile=profile, skip_instance_cache=True)
        with fs.open(url, "wb") as handle:
            handle.write(payload)
        body = boto3.Session(profile_name=profile).client("s3").get_object(Bucket=bucket, Key=key)
        read = body["Body"].read()
    except Exception as exc:  # reported, not raised: the caller shows what a user would see
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "team": team}
    return {"ok": read == payload, "error": None, "team": team}


def credential_process_report(store: str) -> dict[str, Any]:
    """Run ON a worker: run the credential process for ``store`` as botocore would and report
    its exit code, stderr, and the fields and Expiration of what it printed (never the key)."""
    import subprocess

    done = subprocess.run(
        [CREDENTIAL_PROCESS, store], capture_output=True, text=True, timeout=60, check=False
    )
    report: dict[str, Any] = {"returncode": done.returncode, "stderr": done.stderr}
    if done.returncode == 0:
        document = json.loads(done.stdout)
        report["fields"] = sorted(document)
        report["version"] = document.get("Version")
        report["expiration"] = document.get("Expiration")
    return report
