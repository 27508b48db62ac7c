"""Object stores (OSN, Ceph) in the Pulumi program, the gateway environment and the AWS config.

The program is evaluated under Pulumi mocks for tests/fixtures/config/object-stores.ok.yaml
(two stores: osn-renci for team-a, ceph-site for team-a and team-b). The encrypted key pairs are
never decrypted offline: each store's secret carries the offline placeholder text instead, which
the tests look for everywhere a key must not appear.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from dask_gateway_server.models import User
from typer.testing import CliRunner

from dask_platform.config.errors import StackConfigError
from dask_platform.config.rules import validate_stack_config
from dask_platform.config.sources import load_stack_path, read_stack_path, split_namespace
from dask_platform.gateway_settings import gateway_settings
from dask_platform.iam import object_store_key_read_policy
from dask_platform.object_store_deploy import (
    StoreProfile,
    platform_environment,
    render_aws_config,
    store_secret_string,
)
from dask_platform.object_stores import AWS_CONFIG_PATH, OFFLINE_SECRET_TEXT, ObjectStoreError
from dask_platform.pulumi_eval import evaluate_stack
from dask_platform.pulumi_mocks import Evaluation

from .conftest import document

FIXTURE = Path(__file__).parents[1] / "fixtures" / "config" / "object-stores.ok.yaml"
SECRET = "aws:secretsmanager/secret:Secret"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
# ref: https://github.com/pulumi/pulumi/blob/master/sdk/python/lib/pulumi/runtime/rpc.py
SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"
SECRET_SIGNATURE_VALUE = "1b47061264138c4ac30d75fd1eb44270"
STORES = {"osn-renci": ["team-a"], "ceph-site": ["team-a", "team-b"]}


@pytest.fixture(scope="module")
def project(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("project")
    shutil.copy(repo / "Pulumi.yaml", project / "Pulumi.yaml")
    (project / "infra").symlink_to(repo / "infra")
    shutil.copy(FIXTURE, project / "Pulumi.stores.yaml")
    return project


@pytest.fixture(scope="module")
def evaluation(project: Path) -> Evaluation:
    return evaluate_stack("stores", project)


def secrets_by_store(evaluation: Evaluation) -> dict[str, object]:
    return {r.inputs["tags"]["dask-platform/object-store"]: r for r in evaluation.of_type(SECRET)}


def test_one_kms_encrypted_secret_per_store(evaluation: Evaluation) -> None:
    secrets = secrets_by_store(evaluation)
    assert sorted(secrets) == sorted(STORES)
    keys = [r for r in evaluation.of_type("aws:kms/key:Key") if r.name == "object-stores-keys"]
    assert len(keys) == 1
    assert keys[0].inputs["enableKeyRotation"] is True
    for store, secret in secrets.items():
        assert secret.inputs["name"] == f"dask-stores/object-stores/{store}"
        assert secret.inputs["kmsKeyId"] == keys[0].outputs["arn"]
        assert secret.inputs["tags"]["dask-platform/teams"] == " ".join(STORES[store])
    versions = evaluation.of_type(SECRET_VERSION)
    assert len(versions) == len(STORES)
    for version in versions:
        recorded = version.inputs["secretString"]
        # A secret Output reaches the engine wrapped in Pulumi's secret signature.
        assert recorded[SECRET_SIGNATURE] == SECRET_SIGNATURE_VALUE
        pair = json.loads(recorded["value"])
        assert sorted(pair) == ["access_key_id", "secret_access_key"]
        assert pair["secret_access_key"] == OFFLINE_SECRET_TEXT


def test_each_team_reads_exactly_its_stores_secrets(evaluation: Evaluation) -> None:
    secrets = {s: r.outputs["arn"] for s, r in secrets_by_store(evaluation).items()}
    key_arn = evaluation.named("object-stores-keys").outputs["arn"]
    policies = {
        r.inputs["tags"]["dask-platform/team"]: r
        for r in evaluation.of_type("aws:iam/policy:Policy")
        if r.name.startswith("object-stores-")
    }
    assert sorted(policies) == ["team-a", "team-b"]
    for team, policy in policies.items():
        granted = [s for s, teams in STORES.items() if team in teams]
        expected = object_store_key_read_policy(
            [secrets[s] for s in granted], key_arn, "eu-central-1"
        )
        assert document(policy.inputs["policy"]) == expected
        resources = document(policy.inputs["policy"])["Statement"][0]["Resource"]
        assert sorted(resources) == sorted(secrets[s] for s in granted)
    assert secrets["osn-renci"] not in json.dumps(document(policies["team-b"].inputs["policy"]))


def test_policies_are_attached_to_every_role_of_the_team_only(evaluation: Evaluation) -> None:
    roles = {
        r.outputs["name"]: r.inputs["tags"].get("dask-platform/team")
        for r in evaluation.of_type("aws:iam/role:Role")
        if "dask-platform/team" in (r.inputs.get("tags") or {})
    }
    policy_team = {
        r.outputs["arn"]: r.inputs["tags"]["dask-platform/team"]
        for r in evaluation.of_type("aws:iam/policy:Policy")
        if r.name.startswith("object-stores-")
    }
    attached: dict[str, list[str]] = {}
    for attachment in evaluation.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        team = policy_team.get(attachment.inputs["policyArn"])
        if team is not None:
            assert roles[attachment.inputs["role"]] == team
            attached.setdefault(team, []).append(attachment.inputs["role"])
    # IRSA, ECS task and EC2 instance role of each team.
    assert {t: len(r) for t, r in attached.items()} == {"team-a": 3, "team-b": 3}


def test_exports_name_the_stores_and_no_key(evaluation: Evaluation) -> None:
    stores = evaluation.outputs["object_stores"]
    assert sorted(stores) == sorted(STORES)
    assert stores["osn-renci"]["endpoint_url"] == "https://renc.osn.xsede.org"
    assert stores["osn-renci"]["addressing_style"] == "path"
    assert stores["ceph-site"]["teams"] == ["team-a", "team-b"]
    assert stores["osn-renci"]["secret_arn"].startswith(
        "arn:aws:secretsmanager:eu-central-1:111122223333:secret:dask-stores/object-stores/"
    )
    assert OFFLINE_SECRET_TEXT not in json.dumps(evaluation.outputs, default=str)


def test_plan_shows_the_secrets_and_policies_and_no_key(project: Path) -> None:
    from dask_platform.cli import app

    result = CliRunner().invoke(
        app, ["plan", "--stack", "stores", "--project-dir", str(project)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "secretsmanager:GetSecretValue" in result.output
    assert "dask-stores/object-stores/osn-renci" in result.output
    assert OFFLINE_SECRET_TEXT not in result.output
    # The secret text is there to be found: it is what the SecretVersion carries.
    assert OFFLINE_SECRET_TEXT in json.dumps(
        [r.inputs for r in evaluate_stack("stores", project).of_type(SECRET_VERSION)]
    )


# --------------------------------------------------------------------------- bad stores


def _with_store(**fields: object) -> dict[str, object]:
    """The fixture's stack with one store, ``fields`` replacing the osn-renci defaults."""
    data = split_namespace(read_stack_path(FIXTURE), FIXTURE.name)
    store = {"name": "osn-renci", "endpoint_url": "https://renc.osn.xsede.org", "teams": ["team-a"]}
    data["object_stores"] = [{**store, **fields}]
    return data


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        # [profile default] is every client's profile: the team's own S3 calls and the credential
        # process's Secrets Manager call would go to the store (and the process would run itself).
        (
            {"name": "default"},
            "object_stores[0].name: must be 2-40 characters of a-z, 0-9 and '-', starting with a "
            "letter, not 'default'",
        ),
        # An INI line break in the endpoint adds keys to (or breaks) every pod's AWS config.
        (
            {"endpoint_url": "https://renc.osn.xsede.org\ncredential_process = sh -c evil"},
            "object_stores[0].endpoint_url: must be an http(s) endpoint URL",
        ),
        (
            {"endpoint_url": "https://renc.osn\t.xsede.org"},
            "object_stores[0].endpoint_url: must be an http(s) endpoint URL",
        ),
        (
            {"endpoint_url": "https://renc osn.xsede.org"},
            "object_stores[0].endpoint_url: must be an http(s) endpoint URL",
        ),
    ],
)
def test_a_store_the_aws_config_cannot_hold_is_one_config_error(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(StackConfigError) as caught:
        validate_stack_config(_with_store(**fields))
    assert [p for p in caught.value.problems if p.startswith(message)] == caught.value.problems
    assert len(caught.value.problems) == 1


# --------------------------------------------------------------------------- key pairs


def test_each_store_secret_holds_only_its_own_pair() -> None:
    keys = json.dumps(
        {
            "osn-renci": {"access_key_id": "AKOSN", "secret_access_key": "osn-secret"},
            "ceph-site": {"access_key_id": "AKCEPH", "secret_access_key": "ceph-secret"},
        }
    )
    osn = store_secret_string(keys, "osn-renci")
    assert json.loads(osn) == {"access_key_id": "AKOSN", "secret_access_key": "osn-secret"}
    assert "ceph" not in osn


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("not json", "object_store_keys: must be a JSON object mapping each store name"),
        ('{"other": {}}', "no key pair for object store 'osn-renci' (it has: other)"),
        (
            '{"osn-renci": {"access_key_id": "AK"}}',
            "the key pair of object store 'osn-renci' is not a JSON object with access_key_id, "
            "secret_access_key",
        ),
    ],
)
def test_malformed_keys_are_one_clear_error_without_the_value(keys: str, message: str) -> None:
    with pytest.raises(ObjectStoreError) as caught:
        store_secret_string(keys, "osn-renci")
    assert message in str(caught.value)
    assert '"AK"' not in str(caught.value)


# --------------------------------------------------------------------------- runtime


@pytest.mark.parametrize(
    ("environment", "cause"),
    [
        # A notebook or laptop without the team's role: botocore's chain finds no credentials.
        ({"AWS_DEFAULT_REGION": "us-east-1"}, "NoCredentialsError"),
        # An instance where nothing gives the region (no variable, no IMDS).
        ({}, "NoRegionError"),
    ],
)
def test_the_credential_process_without_a_role_is_one_clear_error(
    tmp_path: Path, environment: dict[str, str], cause: str
) -> None:
    """botocore shows the process's stderr inside CredentialRetrievalError: one sentence naming
    the store and what is missing, never a traceback."""
    import subprocess
    import sys

    config = tmp_path / "config"
    arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:x/object-stores/osn-renci-AbC"
    config.write_text(
        render_aws_config(
            [StoreProfile("osn-renci", "https://renc.osn.xsede.org", ("team-a",), arn)]
        )
    )
    env = {
        "PATH": str(Path(sys.executable).parent),
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "DASK_PLATFORM_TEAM": "team-a",
        **environment,
    }
    done = subprocess.run(
        [sys.executable, "-m", "dask_platform.object_stores", "osn-renci"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        "dask-platform-credential-process: object store 'osn-renci': its key cannot be read "
        "with this process's AWS role"
    )
    assert cause in lines[0]


def test_aws_config_has_endpoint_addressing_and_credential_process(tmp_path: Path) -> None:
    from botocore.configloader import load_config

    path = tmp_path / "config"
    path.write_text(
        render_aws_config(
            [
                StoreProfile(
                    name="osn-renci",
                    endpoint_url="https://renc.osn.xsede.org",
                    teams=("team-a",),
                    secret_id="arn:aws:secretsmanager:us-east-1:1:secret:x",
                    region="us-east-1",
                    addressing_style="path",
                )
            ]
        )
    )
    # Parsed by botocore's own loader, as the SDK reads it on a worker.
    profile = load_config(str(path))["profiles"]["osn-renci"]
    assert profile["endpoint_url"] == "https://renc.osn.xsede.org"
    assert profile["s3"] == {"addressing_style": "path"}
    assert profile["credential_process"] == "dask-platform-credential-process osn-renci"
    assert profile["region"] == "us-east-1"
    assert "default" not in load_config(str(path))["profiles"]


SETTINGS = {"scratch_bucket": "scratch", "aws_config_file": "/etc/dask-platform/aws/config"}


def test_platform_environment_is_the_users_scratch_prefix_and_the_config() -> None:
    env = platform_environment(SETTINGS, "hydrology", "alice", {"MY_VARIABLE": "1"})
    assert env == {
        "SCRATCH_URL": "s3://scratch/hydrology/alice/",
        "PANGEO_SCRATCH": "s3://scratch/hydrology/alice/",
        "AWS_CONFIG_FILE": "/etc/dask-platform/aws/config",
    }
    without_stores = platform_environment({**SETTINGS, "aws_config_file": None}, "c", "bob", {})
    assert "AWS_CONFIG_FILE" not in without_stores


@pytest.mark.parametrize(
    "name", ["AWS_CONFIG_FILE", "PANGEO_SCRATCH", "scratch_url", "DASK_PLATFORM_TEAM"]
)
def test_users_cannot_set_the_platform_variables(name: str) -> None:
    with pytest.raises(ValueError, match=f"environment: {name} is set by the platform"):
        platform_environment(SETTINGS, "hydrology", "alice", {name: "s3://elsewhere/"})


# --------------------------------------------------------------------------- the options handler


@pytest.fixture(scope="module")
def gateway_config(repo: Path):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "gateway_config_with_stores", repo / "helm/dask-gateway/gateway_config.py"
    )
    assert spec
    assert spec.loader
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def _configure(gateway_config, user, request):  # type: ignore[no-untyped-def]
    settings = gateway_settings(load_stack_path(FIXTURE))
    options = gateway_config.make_cluster_options(settings)(user)
    return options.get_configuration(options.parse_options(request), user)


def test_the_handler_sets_the_users_scratch_and_the_aws_config(gateway_config) -> None:  # type: ignore[no-untyped-def]
    config = _configure(gateway_config, User("alice", groups=["grp-a"]), {})
    environment = config["environment"]
    assert environment["PANGEO_SCRATCH"] == "s3://example-scratch/team-a/alice/"
    assert environment["SCRATCH_URL"] == environment["PANGEO_SCRATCH"]
    assert environment["AWS_CONFIG_FILE"] == AWS_CONFIG_PATH


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("AWS_CONFIG_FILE", "environment: AWS_CONFIG_FILE may not be set"),
        ("PANGEO_SCRATCH", "environment: PANGEO_SCRATCH is set by the platform"),
        # Once silently replaced by the user's team; the limits count clusters by it.
        ("DASK_PLATFORM_TEAM", "environment: DASK_PLATFORM_TEAM is set by the platform"),
    ],
)
def test_the_handler_refuses_user_chosen_platform_variables(gateway_config, name, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        _configure(
            gateway_config, User("alice", groups=["grp-a"]), {"environment": {name: "/elsewhere"}}
        )


# --------------------------------------------------------------------------- on EKS


def test_the_aws_config_map_has_a_profile_per_store_and_no_key(
    evaluation: Evaluation, tmp_path: Path
) -> None:
    from botocore.configloader import load_config

    (config_map,) = evaluation.of_type("kubernetes:core/v1:ConfigMap")
    assert config_map.inputs["metadata"]["name"] == "dask-platform-aws-config"
    text = config_map.inputs["data"]["config"]
    assert OFFLINE_SECRET_TEXT not in text
    path = tmp_path / "config"
    path.write_text(text)
    profiles = load_config(str(path))["profiles"]
    secrets = {s: r.outputs["arn"] for s, r in secrets_by_store(evaluation).items()}
    for store in STORES:
        assert profiles[store]["credential_process"] == f"dask-platform-credential-process {store}"
        assert profiles[store]["dask_platform_secret_id"] == secrets[store]
    assert profiles["osn-renci"]["endpoint_url"] == "https://renc.osn.xsede.org"


def test_the_chart_values_mount_the_config_and_pass_the_chart_schema(
    evaluation: Evaluation,
) -> None:
    from dask_platform.charts import values_schema_problems

    (release,) = [
        r
        for r in evaluation.of_type("kubernetes:helm.sh/v3:Release")
        if r.inputs["name"] == "dask-gateway"
    ]
    values = release.inputs["values"]
    assert values_schema_problems("dask-gateway", values) == []
    for role in ("scheduler", "worker"):
        backend = values["gateway"]["backend"][role]
        (volume,) = backend["extraPodConfig"]["volumes"]
        assert volume["configMap"]["name"] == "dask-platform-aws-config"
        (mount,) = backend["extraContainerConfig"]["volumeMounts"]
        assert mount == {
            "name": volume["name"],
            "mountPath": str(Path(AWS_CONFIG_PATH).parent),
            "readOnly": True,
        }
    # The chart's own placement settings are kept beside the volume.
    assert values["gateway"]["backend"]["worker"]["extraPodConfig"]["tolerations"]


def test_the_pods_the_controller_builds_mount_the_aws_config(evaluation: Evaluation) -> None:
    """Through the real chart and dask-gateway's controller: every scheduler and worker pod has
    the ConfigMap volume, the read-only mount at the path AWS_CONFIG_FILE names, and keeps the
    chart's placement (the options handler merges, never replaces)."""
    from dask_platform.gateway_pod_checks import check_built_pods
    from dask_platform.gateway_pods import build_pods

    (release,) = [
        r
        for r in evaluation.of_type("kubernetes:helm.sh/v3:Release")
        if r.inputs["name"] == "dask-gateway"
    ]
    config = load_stack_path(FIXTURE)
    pods = build_pods(config, release.inputs["values"])
    assert {p.component for p in pods} == {"scheduler", "worker"}
    for built in pods:
        spec = built.pod["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = [
            m
            for m in spec["containers"][0]["volumeMounts"]
            if m["mountPath"] == str(Path(AWS_CONFIG_PATH).parent)
        ]
        assert len(mounts) == 1, built.label
        assert mounts[0]["readOnly"] is True
        assert volumes[mounts[0]["name"]]["configMap"]["name"] == "dask-platform-aws-config"
        env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
        assert env["AWS_CONFIG_FILE"] == AWS_CONFIG_PATH, built.label
    assert check_built_pods(pods, config.eks.kubernetes_version) == []


# ------------------------------------------------------------------- from outputs (notebook)

OUTPUT_STORE = {
    "endpoint_url": "https://renc.osn.xsede.org",
    "region": "us-east-1",
    "addressing_style": "path",
    "teams": ["team-b", "team-a"],
    "secret_arn": "arn:aws:secretsmanager:us-west-2:123456789012:secret:x/osn-renci-AbC",
    "profile": "osn-renci",
}


def test_aws_config_from_outputs_has_the_stores_profiles(tmp_path: Path) -> None:
    from botocore.configloader import load_config

    from dask_platform.object_store_deploy import aws_config_from_outputs

    text = aws_config_from_outputs({"object_stores": {"osn-renci": OUTPUT_STORE}})
    assert text is not None
    (tmp_path / "config").write_text(text)
    profiles = load_config(str(tmp_path / "config"))["profiles"]
    assert sorted(profiles) == ["osn-renci"]
    assert profiles["osn-renci"]["endpoint_url"] == "https://renc.osn.xsede.org"
    assert profiles["osn-renci"]["region"] == "us-east-1"
    assert profiles["osn-renci"]["s3"] == {"addressing_style": "path"}
    assert (
        profiles["osn-renci"]["credential_process"] == "dask-platform-credential-process osn-renci"
    )
    assert profiles["osn-renci"]["dask_platform_secret_id"] == OUTPUT_STORE["secret_arn"]
    assert profiles["osn-renci"]["dask_platform_teams"] == "team-a team-b"


def test_aws_config_from_local_outputs_uses_the_stand_in_and_the_emulator(tmp_path: Path) -> None:
    from botocore.configloader import load_config

    from dask_platform.object_store_deploy import aws_config_from_outputs

    store = {**OUTPUT_STORE, "local_endpoint_url": "http://127.0.0.1:4567"}
    text = aws_config_from_outputs(
        {"object_stores": {"osn-renci": store}, "aws_endpoint_url": "http://127.0.0.1:5000"}
    )
    assert text is not None
    (tmp_path / "config").write_text(text)
    profiles = load_config(str(tmp_path / "config"))["profiles"]
    assert profiles["osn-renci"]["endpoint_url"] == "http://127.0.0.1:4567"
    assert profiles["default"]["endpoint_url"] == "http://127.0.0.1:5000"


def test_aws_config_from_outputs_without_stores_is_none() -> None:
    from dask_platform.object_store_deploy import aws_config_from_outputs

    assert aws_config_from_outputs({"gateway_address": "https://g"}) is None
    assert aws_config_from_outputs({"object_stores": {}}) is None


def test_a_malformed_store_output_names_the_store_and_the_fields() -> None:
    from dask_platform.object_store_deploy import aws_config_from_outputs

    broken = {k: v for k, v in OUTPUT_STORE.items() if k != "secret_arn"}
    with pytest.raises(ObjectStoreError) as caught:
        aws_config_from_outputs({"object_stores": {"osn-renci": broken}})
    assert str(caught.value) == (
        "outputs.object_stores.osn-renci: missing secret_arn (expected endpoint_url, teams, "
        "secret_arn; region, addressing_style optional)"
    )


def test_config_aws_writes_the_file_and_removes_it_without_stores(tmp_path: Path) -> None:
    from dask_platform.cli import app

    outputs = tmp_path / "outputs.json"
    out = tmp_path / "home" / ".config" / "dask-platform" / "aws" / "config"
    outputs.write_text(json.dumps({"object_stores": {"osn-renci": OUTPUT_STORE}}))
    result = CliRunner().invoke(
        app, ["config", "aws", "--outputs", str(outputs), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "credential_process = dask-platform-credential-process osn-renci" in out.read_text()
    assert oct(out.stat().st_mode & 0o777) == "0o644"
    outputs.write_text(json.dumps({"gateway_address": "https://g"}))
    result = CliRunner().invoke(
        app, ["config", "aws", "--outputs", str(outputs), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert not out.exists()
    outputs.write_text(json.dumps({"object_stores": {"osn-renci": {"teams": ["a"]}}}))
    result = CliRunner().invoke(
        app, ["config", "aws", "--outputs", str(outputs), "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "missing endpoint_url, secret_arn" in result.output


# --------------------------------------------------------------------------- notebook scratch

ROLES = {
    "hydrology": "arn:aws:iam::111122223333:role/team-hydrology-irsa",
    "climate": "arn:aws:iam::111122223333:role/team-climate-irsa",
}
SCRATCH_OUTPUTS = {"scratch_bucket": "scratch", "team_role_arns": ROLES}


def config_scratch(tmp_path: Path, outputs: dict, env: dict[str, str]):  # type: ignore[no-untyped-def]
    from dask_platform.cli import app

    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    blank = dict.fromkeys(("JUPYTERHUB_USER", "DASK_PLATFORM_TEAM", "AWS_ROLE_ARN"))
    return CliRunner().invoke(
        app, ["config", "scratch", "--outputs", str(path)], env={**blank, **env}
    )


def test_the_notebook_gets_the_hub_users_scratch_prefix_of_its_roles_team(
    tmp_path: Path,
) -> None:
    """What the notebook image's start script evals: the team from the notebook's role (IRSA),
    or DASK_PLATFORM_TEAM where the hub sets it; a user name a shell would split stays whole."""
    import subprocess

    by_role = config_scratch(
        tmp_path,
        SCRATCH_OUTPUTS,
        {"JUPYTERHUB_USER": "o'brien x", "AWS_ROLE_ARN": ROLES["climate"]},
    )
    assert by_role.exit_code == 0, by_role.output
    done = subprocess.run(
        [
            "sh",
            "-c",
            'eval "$1"; printf "%s|%s" "$SCRATCH_URL" "$PANGEO_SCRATCH"',
            "sh",
            by_role.stdout,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "s3://scratch/climate/o'brien x/|s3://scratch/climate/o'brien x/"
    by_team = config_scratch(
        tmp_path,
        SCRATCH_OUTPUTS,
        {"JUPYTERHUB_USER": "alice", "DASK_PLATFORM_TEAM": "hydrology", "AWS_ROLE_ARN": "x"},
    )
    assert by_team.stdout.splitlines() == [
        "export SCRATCH_URL=s3://scratch/hydrology/alice/",
        "export PANGEO_SCRATCH=s3://scratch/hydrology/alice/",
    ]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AWS_ROLE_ARN": ROLES["climate"]}, "JUPYTERHUB_USER is not set"),
        (
            {"JUPYTERHUB_USER": "alice", "AWS_ROLE_ARN": "arn:aws:iam::1:role/other"},
            "no team for the scratch prefix: neither DASK_PLATFORM_TEAM nor an AWS_ROLE_ARN "
            "that is one of the teams' roles (climate, hydrology)",
        ),
        (
            {"JUPYTERHUB_USER": "alice", "DASK_PLATFORM_TEAM": "oceans"},
            "DASK_PLATFORM_TEAM: unknown team 'oceans'; one of climate, hydrology",
        ),
    ],
)
def test_a_notebook_without_user_or_team_is_one_clear_error(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    result = config_scratch(tmp_path, SCRATCH_OUTPUTS, env)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert result.stdout == ""


# --------------------------------------------------------------------------- the images' command


def test_the_images_credential_process_is_the_module_behind_a_shebang(tmp_path: Path) -> None:
    import subprocess
    import sys

    from dask_platform import object_stores
    from dask_platform.images.build import credential_process_script

    script = credential_process_script()
    first, _, rest = script.partition("\n")
    assert first == "#!/opt/venv/bin/python"
    assert rest == Path(object_stores.__file__).read_text()
    # Run as a standalone script (no dask_platform importable): the command's own usage error.
    path = tmp_path / "dask-platform-credential-process"
    path.write_text(rest)
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stderr == "usage: dask-platform-credential-process <object store profile name>\n"


def test_only_the_worker_context_holds_the_credential_process(tmp_path: Path) -> None:
    from dask_platform.images.build import CREDENTIAL_PROCESS_SCRIPT, assemble_context

    for image in ("worker", "gateway"):
        assemble_context(tmp_path / image, image, {}, {})
    script = tmp_path / "worker" / CREDENTIAL_PROCESS_SCRIPT
    assert script.is_file()
    assert script.stat().st_mode & 0o777 == 0o755
    assert not (tmp_path / "gateway" / CREDENTIAL_PROCESS_SCRIPT).exists()
