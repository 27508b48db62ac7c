"""The built images, inspected in running containers (pytest-testinfra) and through the engine.

One parametrized case per locked package per image; the rest are the properties the platform
relies on: non-root, no AWS configuration or credential files, the worker free of Jupyter, the
notebook exactly the worker plus Jupyter, the gateway speaking the client's dask-gateway
version and able to load the one gateway config file.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest

from dask_platform.config.sources import load_stack_file
from dask_platform.gateway_settings import SETTINGS_ENV, gateway_settings, render_values
from dask_platform.images import BUILD_KEY_LABEL, IMAGE_LABEL, IMAGES, LOCK_LABEL
from dask_platform.images.audit import audit_image, credential_files
from dask_platform.images.lock import lock_sha256, lock_tag
from dask_platform.no_client import scheduler_command
from dask_platform.pulumi_eval import stack_images

from .conftest import MOUNTED_HELM_DIR, REPO, locked_names

PACKAGE_CASES = [
    pytest.param(image, name, id=f"{image}-{name}")
    for image in IMAGES
    for name in locked_names(image)
]
# Top-level modules that cannot import in the images, each for a reason that is not a defect of
# the image, matched on the exact error so any other failure of the same module still fails.
KNOWN_IMPORT_GAPS = {
    # ipykernel imports it only once a user imports matplotlib, which the notebook does not ship.
    ("matplotlib-inline", "matplotlib_inline"): "No module named 'matplotlib'",
    # The wheel ships its build hook as a top-level module; nothing imports it at run time.
    ("dask-gateway-server", "hatch_build"): "No module named 'hatchling'",
}
JUPYTER_DISTRIBUTIONS = ("jupyter", "notebook", "ipykernel", "ipython", "nbconvert", "nbformat")


@pytest.mark.parametrize(("image", "package"), PACKAGE_CASES)
def test_locked_package_is_installed_at_its_version_and_imports(image, package, inventory, locked):
    if package not in locked[image]:
        python = inventory[image]["python"]
        pytest.fail(f"{package} has no lock entry for {image}'s Python {python}")
    installed = inventory[image]["distributions"].get(package)
    assert installed is not None, f"{package} is locked for {image} but not installed"
    assert installed["version"] == locked[image][package]
    failures = {
        module: error
        for module, error in installed["errors"].items()
        if KNOWN_IMPORT_GAPS.get((package, module), "<none>") not in error
    }
    assert failures == {}, f"{package}: modules that fail to import"


@pytest.mark.parametrize("image", IMAGES)
def test_nothing_is_installed_beyond_the_lock(image, inventory, locked):
    own_wheel = {"dask-platform"} if image in ("gateway", "notebook") else set()
    extra = set(inventory[image]["distributions"]) - set(locked[image]) - own_wheel
    assert extra == set()


@pytest.mark.parametrize("image", IMAGES)
def test_runs_as_the_non_root_dask_user(image, hosts):
    user = hosts[image].user()
    assert (user.name, user.uid, user.gid) == ("dask", 1000, 1000)
    assert hosts[image].check_output("id -u") == "1000"


@pytest.mark.parametrize("image", IMAGES)
def test_no_aws_variables_in_the_image_config_or_the_running_environment(
    image, engine, built, hosts
):
    config_env = engine.client.images.get(built[image].image_id).attrs["Config"]["Env"] or []
    assert [e for e in config_env if e.split("=", 1)[0].upper().startswith("AWS_")] == []
    assert [k for k in hosts[image].environment() if k.upper().startswith("AWS_")] == []


@pytest.mark.parametrize("image", IMAGES)
def test_no_aws_directory_or_credential_file_anywhere(image, engine, built, hosts):
    assert not hosts[image].file("/home/dask/.aws").exists
    assert hosts[image].file("/home/dask").user == "dask"
    # Every home directory, read as root: ~/.aws, ~/.docker/config.json, ~/.netrc, ...
    assert credential_files(engine.client, built[image].build_reference) == []


@pytest.mark.parametrize("image", IMAGES)
def test_the_image_passes_the_audit_the_build_runs(image, engine, built):
    assert audit_image(engine.client, built[image].build_reference) == []


@pytest.mark.parametrize("image", IMAGES)
def test_labels_name_the_lock_and_the_build(image, engine, built):
    labels = engine.client.images.get(built[image].image_id).labels
    sha = lock_sha256()
    assert labels[LOCK_LABEL] == sha
    assert labels["org.opencontainers.image.version"] == lock_tag(sha)
    assert labels[IMAGE_LABEL] == image
    assert labels[BUILD_KEY_LABEL] == built[image].build_key
    assert built[image].reference.endswith(f":{lock_tag(sha)}")


@pytest.mark.parametrize("image", ["worker", "notebook"])
def test_dask_scheduler_and_worker_commands_run(image, hosts, locked):
    for command in ("dask worker --version", "dask scheduler --version"):
        result = hosts[image].run(command)
        assert result.rc == 0, result.stderr
        assert f"version {locked[image]['dask']}" in result.stdout


def test_the_worker_has_no_jupyter(hosts, inventory):
    installed = inventory["worker"]["distributions"]
    assert [name for name in installed if name.startswith(JUPYTER_DISTRIBUTIONS)] == []
    assert not hosts["worker"].exists("jupyter")
    assert not hosts["worker"].exists("jupyter-lab")


def test_the_notebook_runs_jupyterlab_with_the_dask_extension(hosts, locked):
    lab = hosts["notebook"].run("jupyter lab --version")
    assert lab.rc == 0
    assert lab.stdout.strip() == locked["notebook"]["jupyterlab"]
    extensions = hosts["notebook"].run("jupyter labextension list")
    assert extensions.rc == 0
    listing = extensions.stdout + extensions.stderr
    assert f"dask-labextension v{locked['notebook']['dask-labextension']} enabled OK" in (
        " ".join(listing.replace("\x1b[32m", "").replace("\x1b[0m", "").split())
    )
    assert hosts["notebook"].exists("jupyterhub-singleuser")


def test_worker_and_notebook_share_every_version(inventory):
    worker = inventory["worker"]["distributions"]
    notebook = inventory["notebook"]["distributions"]
    assert set(worker) <= set(notebook)
    assert {n: notebook[n]["version"] for n in worker} == {n: worker[n]["version"] for n in worker}


def test_the_notebook_is_built_on_the_worker_layers(engine, built):
    worker = engine.client.images.get(built["worker"].image_id).attrs["RootFS"]["Layers"]
    notebook = engine.client.images.get(built["notebook"].image_id).attrs["RootFS"]["Layers"]
    assert len(notebook) > len(worker)
    assert notebook[: len(worker)] == worker


def test_the_worker_is_smaller_than_the_notebook(engine, built):
    size = {i: engine.client.images.get(built[i].image_id).attrs["Size"] for i in built}
    assert size["worker"] < size["notebook"]


def test_the_gateway_runs_the_clients_dask_gateway_version(hosts, inventory):
    client_version = importlib.metadata.version("dask-gateway")
    installed = inventory["gateway"]["distributions"]
    assert installed["dask-gateway-server"]["version"] == client_version
    assert installed["dask-gateway"]["version"] == client_version
    result = hosts["gateway"].run("dask-gateway-server --version")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == client_version


def test_the_gateway_image_loads_the_gateway_config_and_maps_teams(hosts):
    """The one gateway config file, executed by traitlets inside the gateway image exactly as
    the chart runs it, with a committed stack's settings; then its options handler decides a
    user's ServiceAccount there."""
    settings = gateway_settings(load_stack_file(REPO, "prod"), stack_images("prod"))
    script = f"""
import json
from dask_gateway_server.models import User
from traitlets.config import PyFileConfigLoader
config = PyFileConfigLoader("gateway_config.py", path="{MOUNTED_HELM_DIR}").load_config()
hana = User("hana", groups=["dask-hydrology"])
options = config.Backend.cluster_options(hana)
chosen = options.get_configuration(options.parse_options({{}}), hana)
print(json.dumps({{
    "scheduler_cmd": config.ClusterConfig.scheduler_cmd,
    "worker_cmd": config.ClusterConfig.worker_cmd,
    "service_account": chosen["worker_extra_pod_config"]["serviceAccountName"],
}}))
"""
    result = hosts["gateway"].run(
        f"env {SETTINGS_ENV}=%s python -c %s", json.dumps(settings), script
    )
    assert result.rc == 0, result.stderr
    assert json.loads(result.stdout) == {
        # traitlets' Command trait splits the configured command line
        "scheduler_cmd": scheduler_command(settings["no_client_timeout_minutes"] * 60),
        "worker_cmd": ["dask", "worker"],
        "service_account": "dask-hydrology",
    }


def test_the_gateway_image_runs_the_helm_values_authenticator(hosts):
    """What `auth.type: custom` in the rendered Helm values names - the class and its config -
    imports and configures inside the gateway image (the upstream image would lack it)."""
    auth = render_values(load_stack_file(REPO, "prod"), stack_images("prod"))["gateway"]["auth"]
    assert auth["type"] == "custom"
    script = f"""
import importlib, json
module, _, name = {auth["custom"]["class"]!r}.rpartition(".")
cls = getattr(importlib.import_module(module), name)
authenticator = cls(**{auth["custom"]["config"]!r})
print(json.dumps({{
    "class": f"{{cls.__module__}}.{{cls.__name__}}",
    "issuer": authenticator.issuer,
    "audience": authenticator.audience,
    "groups_claim": authenticator.groups_claim,
}}))
"""
    result = hosts["gateway"].run("python -c %s", script)
    assert result.rc == 0, result.stderr
    assert json.loads(result.stdout) == {
        "class": auth["custom"]["class"],
        **auth["custom"]["config"],
    }


def ecs_launch_commands() -> set[str]:
    """The executables dask-cloudprovider's ECS/Fargate task definitions start, read from the
    installed source (every ``"command": [<exe>, ...]`` of aws/ecs.py), so a change upstream
    shows here first."""
    import ast

    import dask_cloudprovider.aws.ecs as ecs

    tree = ast.parse(Path(ecs.__file__).read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Dict):
            continue
        for key, value in zip(node.keys, node.values, strict=True):
            if not (isinstance(key, ast.Constant) and key.value == "command"):
                continue
            while isinstance(value, ast.BinOp):  # ["dask-worker", ...] + extra_args
                value = value.left
            if isinstance(value, ast.List) and value.elts:
                first = value.elts[0]
                options = [first.body, first.orelse] if isinstance(first, ast.IfExp) else [first]
                found |= {o.value for o in options if isinstance(o, ast.Constant)}
    return found


def test_ecs_task_commands_are_known():
    assert ecs_launch_commands() == {"dask-scheduler", "dask-worker", "dask-cuda-worker"}


@pytest.mark.parametrize("command", ["dask-scheduler", "dask-worker"])
def test_the_worker_image_runs_what_ecs_task_definitions_start(command, hosts, locked):
    """FargateCluster/ECSCluster exec these names (gone from distributed since 2026.6): the
    image's shims must run the locked distributed."""
    result = hosts["worker"].run(f"{command} --version")
    assert result.rc == 0, result.stderr
    assert f"version {locked['worker']['distributed']}" in result.stdout
