"""helm/dask-gateway/gateway_config.py - the options handler is the security boundary between an
authenticated user and an IAM role, so it is tested directly with dask-gateway-server's own
Options/User classes and loaded through traitlets exactly as the gateway loads it."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest
from dask_gateway_server.models import User
from traitlets.config import Config, PyFileConfigLoader

from dask_platform.config.sources import load_stack_file
from dask_platform.credentials import FORBIDDEN_ENV_VARS, ForbiddenEnvironmentError
from dask_platform.gateway_settings import SETTINGS_ENV, gateway_settings
from dask_platform.pulumi_eval import stack_images

GIB = 2**30


@pytest.fixture(scope="module")
def module(repo):
    spec = importlib.util.spec_from_file_location(
        "gateway_config_under_test", repo / "helm/dask-gateway/gateway_config.py"
    )
    assert spec
    assert spec.loader
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)  # imported, not exec'd as config: applies nothing
    return loaded


@pytest.fixture(scope="module")
def settings(repo):
    return gateway_settings(load_stack_file(repo, "prod"), stack_images("prod", repo))


@pytest.fixture(scope="module")
def cluster_options(module, settings):
    return module.make_cluster_options(settings)


hydrologist = User("hana", groups=["dask-hydrology"])
climatologist = User("carl", groups=["dask-climate"])
both = User("bea", groups=["dask-hydrology", "dask-climate-admins"])
stranger = User("sam", groups=["finance"])


def configure(cluster_options, user, request):
    options = cluster_options(user)
    parsed = options.parse_options(request)
    return options.get_configuration(parsed, user)


def test_defaults(cluster_options, settings):
    config = configure(cluster_options, hydrologist, {})
    assert config["worker_cores"] == 2 == config["worker_cores_limit"]
    assert config["worker_memory"] == 4 * GIB == config["worker_memory_limit"]
    assert config["scheduler_extra_pod_config"] == {"serviceAccountName": "dask-hydrology"}
    assert config["worker_extra_pod_config"] == {"serviceAccountName": "dask-hydrology"}
    assert config["environment"]["DASK_PLATFORM_TEAM"] == "hydrology"
    assert config["image"] == settings["image"]
    assert "/dask-platform/worker:lock-" in config["image"]


def test_specification_lists_ranges_and_only_own_teams(cluster_options):
    spec = {f["field"]: f for f in cluster_options(both).get_specification()}
    assert spec["worker_cores"]["spec"] == {"type": "int", "min": 1, "max": 10}
    assert spec["worker_cores"]["default"] == 2
    assert spec["worker_memory"]["default"] == 4
    assert spec["worker_memory"]["spec"]["min"] == 1
    assert spec["worker_memory"]["spec"]["max"] == 32
    assert spec["team"]["spec"]["options"] == ["climate", "hydrology"]
    assert cluster_options(hydrologist).get_specification()[-1]["spec"]["options"] == ["hydrology"]


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ({"worker_cores": 1}, (1, 4 * GIB)),
        ({"worker_cores": 10, "worker_memory": 32}, (10, 32 * GIB)),
        ({"worker_memory": 1.5}, (2, int(1.5 * GIB))),
    ],
)
def test_within_range(cluster_options, request_, expected):
    config = configure(cluster_options, hydrologist, request_)
    assert (config["worker_cores"], config["worker_memory"]) == expected


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"worker_cores": 0}, "worker_cores: 0 is outside 1 to 10"),
        ({"worker_cores": 11}, "worker_cores: 11 is outside 1 to 10"),
        ({"worker_memory": 0.5}, "worker_memory: 0.5 is outside 1 to 32"),
        ({"worker_memory": 33}, "worker_memory: 33 is outside 1 to 32"),
        ({"worker_gpus": 1}, "Unknown fields ['worker_gpus']"),
    ],
)
def test_out_of_range_is_refused_naming_the_whole_range(cluster_options, request_, message):
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        configure(cluster_options, hydrologist, request_)
    assert str(caught.value) == message


def test_the_handler_names_the_whole_range_too(module, settings, cluster_options):
    """Options forged past the fields meet the same message in the handler."""
    from dask_gateway_server.utils import FrozenAttrDict

    handler = module.make_options_handler(settings)
    options = cluster_options(hydrologist)
    forged = dict(options.transform_options(options.parse_options({})), worker_cores=11)
    with pytest.raises(ValueError, match="worker_cores: ") as caught:
        handler(FrozenAttrDict(forged), hydrologist)
    assert str(caught.value) == "worker_cores: 11 is outside 1 to 10"


def test_a_user_cannot_choose_another_teams_service_account(cluster_options):
    with pytest.raises(ValueError, match=r"^team: ") as caught:
        configure(cluster_options, hydrologist, {"team": "climate"})
    assert (
        str(caught.value) == "team: 'climate' is not one you may choose; choose one of: hydrology"
    )


def test_a_refused_team_lists_every_team_of_the_user(cluster_options):
    with pytest.raises(ValueError, match=r"^team: ") as caught:
        configure(cluster_options, both, {"team": "finance"})
    assert str(caught.value) == (
        "team: 'finance' is not one you may choose; choose one of: climate, hydrology"
    )


def test_pangeo_scalar_environment_values_become_strings(cluster_options):
    config = configure(
        cluster_options,
        hydrologist,
        {
            "environment": {
                "DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING": False,
                "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": 5,
                "RATIO": 0.5,
            }
        },
    )
    environment = config["environment"]
    assert environment["DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING"] == "False"
    assert environment["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] == "5"
    assert environment["RATIO"] == "0.5"


def test_notebook_tokens_are_refused_in_the_handler(cluster_options):
    with pytest.raises(ForbiddenEnvironmentError) as caught:
        configure(
            cluster_options,
            hydrologist,
            {"environment": {"JUPYTERHUB_API_TOKEN": "x", "GITHUB_TOKEN": "y", "HOME": "/h"}},
        )
    assert caught.value.names == ["GITHUB_TOKEN", "JUPYTERHUB_API_TOKEN"]


def test_the_handler_itself_refuses_another_team(module, settings, cluster_options):
    """Even with options forged past the Select (the handler is the boundary)."""
    handler = module.make_options_handler(settings)
    options = cluster_options(climatologist)
    forged = options.transform_options(options.parse_options({}))
    forged = dict(forged, team="hydrology")
    from dask_gateway_server.utils import FrozenAttrDict

    with pytest.raises(module.NoTeamError, match=r"team: 'hydrology' is not one of your teams"):
        handler(FrozenAttrDict(forged), climatologist)


def test_cluster_request_cannot_name_a_service_account(cluster_options):
    with pytest.raises(ValueError, match="Unknown fields"):
        configure(cluster_options, hydrologist, {"serviceAccountName": "dask-climate"})
    with pytest.raises(ValueError, match="Unknown fields"):
        configure(
            cluster_options,
            hydrologist,
            {"worker_extra_pod_config": {"serviceAccountName": "dask-climate"}},
        )


def test_member_of_two_teams_picks_either(cluster_options):
    assert (
        configure(cluster_options, both, {"team": "climate"})["worker_extra_pod_config"][
            "serviceAccountName"
        ]
        == "dask-climate"
    )
    assert configure(cluster_options, both, {})["environment"]["DASK_PLATFORM_TEAM"] == "climate"


def test_user_without_team_is_refused(cluster_options, module):
    with pytest.raises(module.NoTeamError, match=r"user 'sam' belongs to no team.*finance"):
        configure(cluster_options, stranger, {})


@pytest.mark.parametrize(
    "variable",
    ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "aws_secret_access_key"],
)
def test_environment_with_aws_keys_is_refused(cluster_options, variable):
    with pytest.raises(ForbiddenEnvironmentError) as caught:
        configure(cluster_options, hydrologist, {"environment": {variable: "x", "OK": "1"}})
    message = str(caught.value)
    assert message.startswith(f"environment: {variable} may not be set")
    assert "team's IAM role" in message


@pytest.mark.parametrize("variable", ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_PROFILE"])
def test_environment_cannot_redirect_identity(cluster_options, variable):
    with pytest.raises(ForbiddenEnvironmentError, match=variable):
        configure(cluster_options, hydrologist, {"environment": {variable: "x"}})


def test_environment_passes_other_variables(cluster_options):
    config = configure(cluster_options, hydrologist, {"environment": {"MY_VARIABLE": "1"}})
    assert config["environment"]["MY_VARIABLE"] == "1"
    assert not FORBIDDEN_ENV_VARS.intersection(config["environment"])


def test_loaded_as_a_traitlets_config_file(repo, settings, monkeypatch, tmp_path):
    """The way dask-gateway-server (and the chart's extraConfig) runs the file."""
    monkeypatch.setenv(SETTINGS_ENV, json.dumps(settings))
    loader = PyFileConfigLoader("gateway_config.py", path=str(repo / "helm/dask-gateway"))
    config: Config = loader.load_config()
    # dask scheduler with the no-client preload (prod: 15 minutes, the default)
    command = config.ClusterConfig.scheduler_cmd
    assert command[:3] == ["dask", "scheduler", "--preload"]
    assert len(command) == 4
    assert "NO_CLIENT_SECONDS = 900.0" in command[3]
    assert config.ClusterConfig.worker_cmd == ["dask", "worker"]
    assert config.ClusterConfig.idle_timeout == 60 * 60  # prod: 60 minutes
    assert config.ClusterConfig.cluster_max_workers == 200
    assert config.ClusterConfig.cluster_max_cores == 800
    assert config.ClusterConfig.cluster_max_memory == 3200 * GIB
    options = config.Backend.cluster_options(hydrologist)
    assert [f.field for f in options.fields] == [
        "worker_cores",
        "worker_memory",
        "environment",
        "image",
        "team",
    ]


def test_missing_settings_is_a_clear_error(repo, monkeypatch):
    monkeypatch.delenv(SETTINGS_ENV, raising=False)
    loader = PyFileConfigLoader("gateway_config.py", path=str(repo / "helm/dask-gateway"))
    with pytest.raises(RuntimeError, match=f"{SETTINGS_ENV} is not set"):
        loader.load_config()


def test_the_handler_merges_the_configured_pod_settings(module, settings):
    """dask-gateway applies a returned key as KubeClusterConfig(**overrides): it REPLACES the
    configured value, so the handler must return the chart's settings plus its own."""
    configured = {
        "worker_extra_pod_config": {
            "nodeSelector": {"dask-platform/node-role": "workers"},
            "tolerations": [{"key": "dask-platform/workers", "operator": "Exists"}],
        },
        "scheduler_extra_pod_config": {"nodeSelector": {"dask-platform/node-role": "schedulers"}},
    }
    options = module.make_cluster_options(settings, configured)(hydrologist)
    result = options.get_configuration(options.parse_options({}), hydrologist)
    assert result["worker_extra_pod_config"] == {
        **configured["worker_extra_pod_config"],
        "serviceAccountName": "dask-hydrology",
    }
    assert result["scheduler_extra_pod_config"] == {
        "nodeSelector": {"dask-platform/node-role": "schedulers"},
        "serviceAccountName": "dask-hydrology",
    }
    assert configured["worker_extra_pod_config"].get("serviceAccountName") is None, "not mutated"


def test_configure_marks_schedulers_do_not_disrupt(module, settings):
    c = Config()
    c.KubeClusterConfig.scheduler_extra_pod_annotations = {"team.example/owner": "x"}
    module.configure(c, settings)
    assert c.KubeClusterConfig.scheduler_extra_pod_annotations == {
        "team.example/owner": "x",
        "karpenter.sh/do-not-disrupt": "true",
    }
