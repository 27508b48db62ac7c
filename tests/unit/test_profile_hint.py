"""An unknown profile on a platform process names the profiles the team can use (issue 14).

botocore raises its own ``ProfileNotFound`` for an unknown profile (``boto3.Session(
profile_name=...)``, ``AWS_PROFILE``, s3fs's ``profile=``) before any platform code runs; the
.pth files (the dask_platform wheel's, the worker image's) extend that class when botocore is
first imported. These tests run the real botocore, boto3 and s3fs, in fresh interpreters where
interpreter start is what is under test.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import sysconfig
from pathlib import Path

import boto3
import fsspec
import pytest
from botocore.exceptions import ProfileNotFound

from dask_platform import aws_profile_hint, object_stores
from dask_platform.aws_profile_hint import HINT_KWARG, install
from dask_platform.images.build import (
    AWS_CONFIG_PTH,
    AWS_CONFIG_PTH_LINE,
    OBJECT_STORES_MODULE,
    PROFILE_HINT_MODULE,
)
from dask_platform.object_store_deploy import StoreProfile, render_aws_config
from dask_platform.object_stores import AWS_CONFIG_CONTENT_ENV, aws_config_env_value

STORES = [
    StoreProfile("osn-renci", "http://127.0.0.1:9", ("hydrology",), "arn:secret:osn"),
    StoreProfile("ceph-site", "http://127.0.0.1:9", ("hydrology", "climate"), "arn:secret:ceph"),
]


def expected(profile: str, team: str, usable: str, config: Path | str) -> str:
    return (
        f"The config profile ({profile}) could not be found: {profile!r} is not an object store "
        f"of this platform; profiles team {team!r} can use: {usable} "
        f"(from AWS_CONFIG_FILE={config})"
    )


@pytest.fixture
def platform_config(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text(render_aws_config(STORES, default_endpoint_url="http://127.0.0.1:5000"))
    return path


@pytest.fixture
def on_a_worker(platform_config: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This process as a worker of team hydrology: the platform's variables, the hook on."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(platform_config))
    monkeypatch.setenv("DASK_PLATFORM_TEAM", "hydrology")
    install()
    return platform_config


def test_boto3_session_names_the_teams_profiles(on_a_worker: Path) -> None:
    with pytest.raises(ProfileNotFound) as caught:
        boto3.Session(profile_name="osn-typo")
    assert str(caught.value) == expected(
        "osn-typo", "hydrology", "ceph-site, osn-renci", on_a_worker
    )


def test_aws_profile_names_the_teams_profiles(
    on_a_worker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "osn-typo")
    # boto3.client() uses the default session, made once per process: a fresh one reads it.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    with pytest.raises(ProfileNotFound) as caught:
        boto3.client("s3")
    assert str(caught.value) == expected(
        "osn-typo", "hydrology", "ceph-site, osn-renci", on_a_worker
    )


def test_s3fs_profile_names_the_teams_profiles(
    on_a_worker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASK_PLATFORM_TEAM", "climate")
    fs = fsspec.filesystem("s3", profile="osn-typo", skip_instance_cache=True)
    with pytest.raises(ProfileNotFound) as caught:
        fs.ls("osn-renci/")
    assert str(caught.value) == expected("osn-typo", "climate", "ceph-site", on_a_worker)


def test_the_hint_survives_the_trip_to_the_client(
    on_a_worker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # distributed pickles a task's error; botocore rebuilds it from (class, kwargs) on the
    # client, which has no platform config: the worker's sentence travels in the kwargs.
    with pytest.raises(ProfileNotFound) as caught:
        boto3.Session(profile_name="osn-typo")
    sent = pickle.dumps(caught.value)
    monkeypatch.delenv("AWS_CONFIG_FILE")
    monkeypatch.delenv("DASK_PLATFORM_TEAM")
    received = pickle.loads(sent)  # noqa: S301 (our own bytes)
    assert type(received) is ProfileNotFound
    assert str(received) == str(caught.value)
    assert received.kwargs["profile"] == "osn-typo"
    # A client without the hook (no dask_platform wheel) still rebuilds the error: botocore's
    # own message, the extra key ignored.
    script = (
        f"import pickle, sys; sys.path.append({sysconfig.get_path('purelib')!r}); "
        f"print(pickle.loads({sent!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "The config profile (osn-typo) could not be found\n"


def test_a_config_of_no_platform_keeps_botocores_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A laptop's own config (no object store profile in it), or none at all: unchanged."""
    own = tmp_path / "own-config"
    own.write_text("[profile mine]\nregion = us-west-2\n")
    install()
    for config in (str(own), str(tmp_path / "missing"), None):
        if config is None:
            monkeypatch.delenv("AWS_CONFIG_FILE", raising=False)
        else:
            monkeypatch.setenv("AWS_CONFIG_FILE", config)
        with pytest.raises(ProfileNotFound) as caught:
            boto3.Session(profile_name="osn-typo")
        assert str(caught.value) == "The config profile (osn-typo) could not be found"
        assert HINT_KWARG not in caught.value.kwargs


def test_an_unreadable_platform_config_keeps_botocores_message(
    platform_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hint runs inside an exception's constructor: its own failure must not replace it.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(platform_config))
    monkeypatch.setattr(object_stores, "_profiles", lambda _path: 1 / 0)
    install()
    error = ProfileNotFound(profile="osn-typo")
    assert str(error) == "The config profile (osn-typo) could not be found"


# --------------------------------------------------------------------------- interpreter start

PROBE = (
    "import json, sys; at_start = 'botocore' in sys.modules; import boto3\n"
    "try:\n    boto3.Session(profile_name='osn-typo')\n"
    "except Exception as exc:\n    error = f'{type(exc).__module__}.{type(exc).__name__}: {exc}'\n"
    "print(json.dumps({'botocore_at_start': at_start, 'error': error}))\n"
)


def run_python(args: list[str], env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def clean_environment(**platform: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "DASK_PLATFORM_")) and k not in ("PYTHONPATH",)
    }
    return {**env, "DASK_PLATFORM_TEAM": "hydrology", **platform}


def test_the_wheels_pth_hints_without_importing_botocore_at_start(platform_config: Path) -> None:
    """The dask_platform wheel's .pth (client environments, local venv workers, the notebook
    image): a fresh interpreter has not imported botocore, and its first ProfileNotFound
    names the team's profiles."""
    result = run_python(["-c", PROBE], clean_environment(AWS_CONFIG_FILE=str(platform_config)))
    assert result == {
        "botocore_at_start": False,
        "error": "botocore.exceptions.ProfileNotFound: "
        + expected("osn-typo", "hydrology", "ceph-site, osn-renci", platform_config),
    }


def test_the_worker_images_pth_hints_without_importing_botocore_at_start(
    tmp_path: Path, platform_config: Path
) -> None:
    """The worker image's .pth and module, as the build writes them into its environment
    (no dask_platform package there): run by ``site`` in a fresh interpreter that has only
    the locked packages, both where AWS_CONFIG_FILE is mounted (EKS, local image workers) and
    where the config arrives as text (ECS/Fargate, EC2)."""
    site_dir = tmp_path / "site-packages"
    site_dir.mkdir()
    (site_dir / OBJECT_STORES_MODULE).write_text(Path(object_stores.__file__).read_text())
    (site_dir / PROFILE_HINT_MODULE).write_text(Path(aws_profile_hint.__file__).read_text())
    (site_dir / AWS_CONFIG_PTH).write_text(AWS_CONFIG_PTH_LINE)
    # -S: no .pth of this environment runs (so not the wheel's); the locked packages are put
    # on the path as plain directories, then `site` processes the image's site directory.
    purelib = sysconfig.get_path("purelib")
    start = f"import site, sys; sys.path.append({purelib!r}); site.addsitedir({str(site_dir)!r})\n"
    mounted = run_python(
        ["-S", "-c", start + PROBE], clean_environment(AWS_CONFIG_FILE=str(platform_config))
    )
    assert mounted == {
        "botocore_at_start": False,
        "error": "botocore.exceptions.ProfileNotFound: "
        + expected("osn-typo", "hydrology", "ceph-site, osn-renci", platform_config),
    }
    env = clean_environment(
        **{AWS_CONFIG_CONTENT_ENV: aws_config_env_value(platform_config.read_text())},
        TMPDIR=str(tmp_path),
    )
    as_text = run_python(["-S", "-c", start + PROBE], env)
    written = tmp_path / f"dask-platform-aws-{os.getuid()}" / "config"
    assert as_text == {
        "botocore_at_start": False,
        "error": "botocore.exceptions.ProfileNotFound: "
        + expected("osn-typo", "hydrology", "ceph-site, osn-renci", written),
    }
    # At start the .pth loads the small hook module only (os and sys), and without any platform
    # variable nothing at all.
    loaded = (
        "import json, sys; print(json.dumps({'loaded': sorted(m for m in sys.modules "
        "if m.startswith(('dask_platform', 'botocore')))}))"
    )
    at_start = run_python(
        ["-S", "-c", start + loaded], clean_environment(AWS_CONFIG_FILE=str(platform_config))
    )
    assert at_start == {"loaded": ["dask_platform_aws_profile_hint"]}
    assert run_python(["-S", "-c", start + loaded], clean_environment()) == {"loaded": []}


# --------------------------------------------------------------------------- a store's region

ENV_REGION = "eu-central-1"
"""What the pod-identity webhook (and ECS, and the local platform) sets: the team's region."""

REGIONAL_STORES = [
    *STORES,
    StoreProfile("osn-east", "http://127.0.0.1:9", ("hydrology",), "arn:secret:e", "us-east-2"),
]
UNSIGNED_TEST_KEY = {"aws_access_key_id": "unit-test", "aws_secret_access_key": "unit-test"}
"""Explicit placeholder credentials, so a client is built without running the credential
process (no emulator here): the region lookup is what is under test."""


@pytest.fixture
def regional_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A worker of team hydrology whose environment names the team's region, as on EKS."""
    path = tmp_path / "config"
    path.write_text(render_aws_config(REGIONAL_STORES))
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(path))
    monkeypatch.setenv("DASK_PLATFORM_TEAM", "hydrology")
    monkeypatch.setenv("AWS_DEFAULT_REGION", ENV_REGION)
    monkeypatch.setenv("AWS_REGION", ENV_REGION)
    install()
    return path


def test_a_store_profiles_region_beats_the_environments(regional_worker: Path) -> None:
    session = boto3.Session(profile_name="osn-east")
    assert session.region_name == "us-east-2"
    assert session.client("s3", **UNSIGNED_TEST_KEY).meta.region_name == "us-east-2"


def test_aws_profile_naming_a_store_takes_its_region(
    regional_worker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "osn-east")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    assert boto3.client("s3", **UNSIGNED_TEST_KEY).meta.region_name == "us-east-2"


def test_s3fs_profile_takes_the_stores_region(regional_worker: Path) -> None:
    fs = fsspec.filesystem(
        "s3", profile="osn-east", key="unit-test", secret="unit-test", skip_instance_cache=True
    )
    assert fs.connect().meta.region_name == "us-east-2"


def test_the_teams_own_calls_keep_the_environments_region(regional_worker: Path) -> None:
    """The credential process and any call without a store profile use the team's region; a
    store with no region, and an explicit region_name, are botocore's as before."""
    assert boto3.Session().region_name == ENV_REGION
    assert boto3.Session(profile_name="osn-renci").region_name == ENV_REGION
    assert boto3.Session(profile_name="osn-east", region_name="ap-south-1").region_name == (
        "ap-south-1"
    )
    client = boto3.Session(profile_name="osn-east").client(
        "s3", region_name="ap-south-1", **UNSIGNED_TEST_KEY
    )
    assert client.meta.region_name == "ap-south-1"


def test_a_region_in_a_profile_of_no_platform_is_botocores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A laptop's own profile keeps botocore's order: the environment wins."""
    own = tmp_path / "own-config"
    own.write_text("[profile mine]\nregion = us-west-2\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(own))
    monkeypatch.setenv("AWS_DEFAULT_REGION", ENV_REGION)
    install()
    assert boto3.Session(profile_name="mine").region_name == ENV_REGION


REGION_PROBE = (
    "import json, sys; at_start = 'botocore' in sys.modules; import boto3\n"
    "print(json.dumps({'botocore_at_start': at_start,"
    " 'store': boto3.Session(profile_name='osn-east').region_name,"
    " 'team': boto3.Session().region_name}))\n"
)


def test_a_fresh_interpreter_takes_the_stores_region(tmp_path: Path) -> None:
    """Through the wheel's .pth, and the worker image's .pth and modules, at interpreter start."""
    config = tmp_path / "config"
    config.write_text(render_aws_config(REGIONAL_STORES))
    env = clean_environment(AWS_CONFIG_FILE=str(config), AWS_DEFAULT_REGION=ENV_REGION)
    want = {"botocore_at_start": False, "store": "us-east-2", "team": ENV_REGION}
    assert run_python(["-c", REGION_PROBE], env) == want
    site_dir = tmp_path / "site-packages"
    site_dir.mkdir()
    (site_dir / OBJECT_STORES_MODULE).write_text(Path(object_stores.__file__).read_text())
    (site_dir / PROFILE_HINT_MODULE).write_text(Path(aws_profile_hint.__file__).read_text())
    (site_dir / AWS_CONFIG_PTH).write_text(AWS_CONFIG_PTH_LINE)
    purelib = sysconfig.get_path("purelib")
    start = f"import site, sys; sys.path.append({purelib!r}); site.addsitedir({str(site_dir)!r})\n"
    assert run_python(["-S", "-c", start + REGION_PROBE], env) == want


# --------------------------------------------------------------------------- AWS_PROFILE on IRSA


@pytest.fixture
def irsa_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A worker of team hydrology on EKS: IRSA's AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE in
    its environment (the local platform sets them too), and a store profile whose
    credential_process prints a fixed key pair (no emulator here)."""
    process = tmp_path / "store-credentials"
    document = {"Version": 1, "AccessKeyId": "store-key-id", "SecretAccessKey": "store-secret"}
    process.write_text(f"#!{sys.executable}\nprint({json.dumps(json.dumps(document))})\n")
    process.chmod(0o755)
    token = tmp_path / "token"
    token.write_text("not-a-real-token")
    config = tmp_path / "config"
    config.write_text(
        "[default]\n\n[profile osn-east]\nendpoint_url = http://127.0.0.1:9\nregion = us-east-2\n"
        f"credential_process = {process}\ndask_platform_secret_id = arn:secret:e\n"
        "dask_platform_teams = hydrology\n"
    )
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("DASK_PLATFORM_TEAM", "hydrology")
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/team-hydrology-irsa")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    install()
    return config


@pytest.mark.parametrize("variable", ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"])
def test_aws_profile_naming_a_store_uses_its_credential_process_on_irsa(
    irsa_worker: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """botocore reads IRSA's variables before a profile's credential_process unless the profile
    was given explicitly, so without the hook ``AWS_PROFILE=osn-east`` got the team's web
    identity (sent to the store's endpoint_url as STS) instead of the store's key pair."""
    monkeypatch.setenv(variable, "osn-east")
    credentials = boto3.Session().get_credentials()
    assert credentials.method == "custom-process"
    assert credentials.access_key == "store-key-id"


def test_the_teams_own_session_keeps_irsa(irsa_worker: Path) -> None:
    credentials = boto3.Session().get_credentials()
    assert credentials.method == "assume-role-with-web-identity"
    explicit = boto3.Session(profile_name="osn-east").get_credentials()
    assert (explicit.method, explicit.access_key) == ("custom-process", "store-key-id")


def test_s3fs_under_aws_profile_uses_the_stores_key_on_irsa(
    irsa_worker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from aiobotocore.session import AioSession

    monkeypatch.setenv("AWS_PROFILE", "osn-east")
    loop = asyncio.new_event_loop()  # private: asyncio.run would leave later tests no loop
    try:
        credentials = loop.run_until_complete(AioSession().get_credentials())
    finally:
        loop.close()
    assert credentials.method == "custom-process"
    assert credentials.access_key == "store-key-id"
