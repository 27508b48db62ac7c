"""The local platform's outside object stores: one stand-in per store of the stack config.

Each stand-in is a second emulator process (moto server behind the same gate, IAM enforced),
standing in for OSN or Ceph. It has its own static key: an IAM user of the stand-in whose policy
(``policies/iam/object-store-stand-in-bucket.json``) allows one bucket, named after the store.
That key pair exists in exactly one other place: the store's secret in the FIRST emulator's
Secrets Manager, which only the allowed teams' roles may read (IAM enforced there too). The
platform AWS config file (``<state>/aws/config``) points each store's profile at its stand-in.

Layout under the state directory::

    object-stores/<store>/emulator.json   the stand-in's endpoint and admin key (0600)
    object-stores/stores.json             endpoints and secret ARNs (no key)
    aws/config                            the platform AWS config workers get (no key)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dask_platform.config.models import ObjectStore, StackConfig
from dask_platform.iam import render_policy
from dask_platform.local.emulator import Emulator
from dask_platform.local.processes import Spawned, read_json, write_json_atomic
from dask_platform.object_store_deploy import StoreProfile, render_aws_config
from dask_platform.object_stores import TEAM_ENV


def stand_in_dir(state_dir: Path, store: str) -> Path:
    return state_dir / "object-stores" / store


def aws_config_path(state_dir: Path) -> Path:
    return state_dir / "aws" / "config"


def component_name(store: str) -> str:
    """The state-file name of a store's stand-in process."""
    return f"object-store-{store}"


def start_stand_ins(
    state_dir: Path, stores: Sequence[ObjectStore], marker: Path
) -> dict[str, Emulator]:
    """Start one stand-in emulator per store (stopping the ones started if one fails)."""
    started: dict[str, Emulator] = {}
    try:
        for store in stores:
            started[store.name] = Emulator(
                stand_in_dir(state_dir, store.name),
                region=store.region or "us-east-1",
                marker=marker,
            ).start()
    except BaseException:
        for emulator in started.values():
            emulator.stop()
        raise
    return started


def spawned(stand_ins: Mapping[str, Emulator]) -> dict[str, Spawned]:
    return {component_name(store): emulator.spawned for store, emulator in stand_ins.items()}


def store_key_pair(stand_in: Emulator, store: str) -> dict[str, str]:
    """The stand-in's bucket and the one IAM user allowed to use it; returns its key pair (the
    store's entry of the local ``object_store_keys``, which the program puts in the store's
    secret: dask_platform.local.provision)."""
    s3 = stand_in.client("s3")
    iam = stand_in.client("iam")
    kwargs: dict[str, Any] = {"Bucket": store}
    if stand_in.region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": stand_in.region}
    s3.create_bucket(**kwargs)
    user = f"object-store-{store}"
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName="store-bucket",
        PolicyDocument=json.dumps(render_policy("object-store-stand-in-bucket", bucket=store)),
    )
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}


def store_key_pairs(stand_ins: Mapping[str, Emulator]) -> dict[str, dict[str, str]]:
    """Per store, the key pair of its stand-in's user (see :func:`store_key_pair`)."""
    return {store: store_key_pair(emulator, store) for store, emulator in stand_ins.items()}


def record_stores(
    state_dir: Path, secret_arns: Mapping[str, str], stand_ins: Mapping[str, Emulator]
) -> None:
    """stores.json: each store's secret ARN (as provisioned) and its stand-in's endpoint."""
    write_json_atomic(
        state_dir / "object-stores" / "stores.json",
        {
            "secret_arns": dict(secret_arns),
            "endpoints": {name: emulator.endpoint for name, emulator in stand_ins.items()},
        },
        mode=0o644,
    )


def write_aws_config(config: StackConfig, aws: Emulator, state_dir: Path) -> Path:
    """The platform AWS config file of the local platform: the emulator as the default
    endpoint (it stands for the regional AWS endpoints), each store's profile at its stand-in."""
    known = _known(state_dir)
    profiles = [
        StoreProfile(
            name=store.name,
            endpoint_url=known["endpoints"][store.name],
            teams=tuple(store.teams),
            secret_id=known["secret_arns"][store.name],
            region=store.region,
            addressing_style=store.addressing_style,
        )
        for store in config.object_stores
    ]
    path = aws_config_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_aws_config(profiles, default_endpoint_url=aws.endpoint)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def _known(state_dir: Path) -> dict[str, Any]:
    path = state_dir / "object-stores" / "stores.json"
    if not path.is_file():
        return {"secret_arns": {}, "endpoints": {}}
    data: dict[str, Any] = read_json(path)
    return data


def local_object_store_outputs(
    exported: Mapping[str, Mapping[str, Any]], state_dir: Path
) -> dict[str, dict[str, Any]]:
    """The program's ``object_stores`` export with each stand-in's endpoint added as
    ``local_endpoint_url``."""
    endpoints = _known(state_dir)["endpoints"]
    return {
        name: {**store, "local_endpoint_url": endpoints.get(name)}
        for name, store in exported.items()
    }


def team_pod_environment(outputs: Mapping[str, Any], team: str) -> dict[str, str]:
    """What a scheduler or worker pod of ``team`` gets from the platform (the webhook's role and
    token file, the platform AWS config): to run a probe as that team without a cluster."""
    state_dir = Path(str(outputs["state_dir"]))
    return {
        "PATH": os.environ.get("PATH", ""),
        "AWS_ROLE_ARN": str(outputs["team_role_arns"][team]),
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(outputs["service_account_token_files"][team]),
        "AWS_CONFIG_FILE": str(aws_config_path(state_dir)),
        "AWS_REGION": str(outputs["region"]),
        "AWS_DEFAULT_REGION": str(outputs["region"]),
        TEAM_ENV: team,
    }


def demo_checks(
    client: Any, outputs: Mapping[str, Any], user: str, other_team: str
) -> list[tuple[str, bool, str]]:
    """`make demo`'s object store part, on ``user``'s running cluster: (check, passed, seen).

    The user's workers write and read each of their team's stores by profile name; another
    team's role is refused the store's key by IAM; PANGEO_SCRATCH is the user's prefix."""
    import subprocess

    from dask_platform.local.probes import by_value
    from dask_platform.object_stores import CREDENTIAL_PROCESS, store_round_trip

    checks: list[tuple[str, bool, str]] = []
    team = outputs["users"][user][0]
    expected = f"s3://{outputs['scratch_bucket']}/{team}/{user}/"
    seen = set(client.run(lambda: os.environ.get("PANGEO_SCRATCH")).values())
    checks.append((f"PANGEO_SCRATCH on every worker is {expected}", seen == {expected}, str(seen)))
    for store, spec in sorted((outputs.get("object_stores") or {}).items()):
        if team in spec["teams"]:
            url = f"s3://{store}/demo/{user}.txt"
            result = client.submit(by_value(store_round_trip), store, url, pure=False).result()
            keys = client.run(lambda: sorted(k for k in os.environ if "SECRET" in k.upper()))
            checks.append(
                (
                    f"{user}'s workers wrote and read {url} by profile name (no key in their "
                    "environment)",
                    bool(result["ok"]) and not any(keys.values()),
                    result["error"] or f"endpoint {spec['local_endpoint_url']}",
                )
            )
        if other_team not in spec["teams"]:
            done = subprocess.run(
                [CREDENTIAL_PROCESS, store],
                env=team_pod_environment(outputs, other_team),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            checks.append(
                (
                    f"team {other_team}'s role is denied {store}'s key by IAM",
                    done.returncode == 1 and "AccessDenied" in done.stderr and not done.stdout,
                    # The message up to the secret's ARN (shown in full by verify-workers).
                    done.stderr.strip().removeprefix(f"{CREDENTIAL_PROCESS}: ").split(" (")[0],
                )
            )
    return checks
