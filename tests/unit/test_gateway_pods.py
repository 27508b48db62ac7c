"""The dask-gateway release as EKS runs it, for every committed stack: the pinned chart rendered
by Helm's library with the values the program passes, its config files loaded as the API pod
and the controller load them, and every team's scheduler and worker pods built by
dask-gateway-server's own KubeBackend + KubeController. Each check has a violating fixture
(values or an extra ``gateway.extraConfig`` entry) that must be caught."""

from __future__ import annotations

import copy
import textwrap
from functools import cache

import pytest

from dask_platform import placement
from dask_platform.config.sources import list_stacks, load_stack_file
from dask_platform.gateway_pod_checks import (
    capacity_problems,
    check_pods,
    environment_problems,
    placement_problems,
    resource_problems,
    schema_problems,
    service_account_problems,
)
from dask_platform.gateway_pods import (
    GatewayConfigError,
    build_pods,
    config_file_problems,
    render_gateway,
)
from dask_platform.gateway_settings import render_values
from dask_platform.iam import service_account_name
from dask_platform.pulumi_eval import stack_images
from tests.unit.conftest import REPO

STACKS = list_stacks(REPO)


@pytest.fixture(scope="module", params=STACKS)
def stack_name(request):
    return request.param


@pytest.fixture(scope="module")
def stack_config(stack_name):
    return load_stack_file(REPO, stack_name)


@pytest.fixture(scope="module")
def stack_values(stack_name, stack_config):
    """The values the program passes: images from the bootstrap stack the config references."""
    return render_values(stack_config, stack_images(stack_name))


@cache
def _prod_images():
    return stack_images("prod")


def prod_values(config) -> dict:
    """A fresh copy of prod's values (with the bootstrap stack's images) to change."""
    return render_values(config, _prod_images())


@pytest.fixture(scope="module")
def prod():
    return load_stack_file(REPO, "prod")


def with_extra_config(config, snippet: str, key: str = "99-fixture") -> dict:
    values = prod_values(config)
    values["gateway"]["extraConfig"][key] = textwrap.dedent(snippet)
    return values


# --------------------------------------------------------------------------- committed stacks


def test_every_committed_stack_passes_every_check(stack_config, stack_values):
    assert check_pods(stack_config, stack_values) == []


def test_pods_for_every_team_component_and_option_bound(stack_config, stack_values):
    pods = build_pods(stack_config, stack_values)
    teams = stack_config.team_names
    # default, min and max of the two option ranges, and every range at its max at once =
    # 6 clusters per team, 2 pods each.
    assert len(pods) == len(teams) * 6 * 2
    assert {(p.team, p.component) for p in pods} == {
        (t, c) for t in teams for c in ("scheduler", "worker")
    }
    gw = stack_config.gateway
    workers = {p.case: p for p in pods if p.component == "worker" and p.team == teams[0]}
    limits = workers["worker_cores=max"].pod["spec"]["containers"][0]["resources"]["limits"]
    assert float(limits["cpu"]) == gw.worker_cores.max
    memory = workers["worker_memory=min"].pod["spec"]["containers"][0]["resources"]["requests"]
    assert int(memory["memory"]) == int(gw.worker_memory_gib.min * 2**30)
    largest = workers["all=max"].pod["spec"]["containers"][0]["resources"]["limits"]
    assert (float(largest["cpu"]), int(largest["memory"])) == (
        gw.worker_cores.max,
        int(gw.worker_memory_gib.max * 2**30),
    )


def test_worker_keeps_the_chart_placement_and_gets_the_team_account(prod):
    pods = build_pods(prod, prod_values(prod))
    worker = next(p for p in pods if p.team == "oceans" and p.component == "worker")
    spec = worker.pod["spec"]
    assert spec["serviceAccountName"] == service_account_name("oceans") == "dask-oceans"
    assert spec["nodeSelector"] == {placement.NODE_ROLE_LABEL: placement.WORKERS_ROLE}
    assert spec["tolerations"] == [placement.toleration(placement.WORKER_TAINT_KEY)]
    assert spec["automountServiceAccountToken"] is False


def test_scheduler_is_on_demand_and_not_disrupted(prod):
    scheduler = next(p for p in build_pods(prod, prod_values(prod)) if p.component == "scheduler")
    assert scheduler.pod["spec"]["nodeSelector"] == {
        placement.NODE_ROLE_LABEL: placement.SCHEDULERS_ROLE,
        placement.CAPACITY_TYPE_LABEL: "on-demand",
    }
    assert scheduler.pod["spec"]["tolerations"] == [
        placement.toleration(placement.SCHEDULER_TAINT_KEY)
    ]
    assert scheduler.pod["metadata"]["annotations"] == {placement.DO_NOT_DISRUPT_ANNOTATION: "true"}


def test_the_rendered_config_files_compile(stack_config, stack_values):
    rendered = render_gateway(stack_config, stack_values)
    assert config_file_problems(rendered) == []
    assert (
        "# From gateway.extraConfig.50-dask-platform"
        in rendered.gateway_files["dask_gateway_config.py"]
    )
    assert "DASK_PLATFORM_GATEWAY_SETTINGS" in rendered.gateway_env


# --------------------------------------------------------------------------- violating fixtures


def test_a_future_import_in_extra_config_is_caught(prod):
    values = with_extra_config(prod, "from __future__ import annotations\nx: int = 1\n")
    rendered = render_gateway(prod, values)
    (problem,) = config_file_problems(rendered)
    assert problem.startswith("gateway ConfigMap dask_gateway_config.py: line ")
    assert "from __future__ imports must occur at the beginning of the file" in problem
    assert check_pods(prod, values) == [problem]
    with pytest.raises(GatewayConfigError, match="from __future__"):
        build_pods(prod, values)


def test_a_config_file_that_raises_on_load_is_caught(prod):
    values = with_extra_config(prod, "raise RuntimeError('broken on purpose')\n")
    (problem,) = check_pods(prod, values)
    assert "RuntimeError: broken on purpose" in problem


REPLACING_HANDLER = """
    _platform_options = c.Backend.cluster_options

    def _replacing_options(user):
        options = _platform_options(user)

        def handler(opts, user):
            result = options.handler(opts, user)
            for key in ("scheduler_extra_pod_config", "worker_extra_pod_config"):
                # The defect of issue 11: a returned pod config replaces the chart's.
                account = result[key]["serviceAccountName"]
                result[key] = {"serviceAccountName": account}
            return result

        return type(options)(*options.fields, handler=handler)

    c.Backend.cluster_options = _replacing_options
"""


def test_a_handler_that_replaces_the_node_selector_is_caught(prod):
    pods = build_pods(prod, with_extra_config(prod, REPLACING_HANDLER))
    problems = placement_problems(pods)
    # Every pod lost both its nodeSelector and its tolerations.
    assert len(problems) == 2 * len(pods)
    worker = next(p for p in problems if "worker" in p)
    assert "nodeSelector lost the chart-configured {'dask-platform/node-role': 'workers'}" in worker
    assert any("tolerations lost the chart-configured" in p for p in problems)
    assert capacity_problems(pods), "the scheduler is no longer held off spot capacity"
    assert service_account_problems(pods) == []


def test_a_pod_field_kubernetes_rejects_is_caught(prod):
    values = prod_values(prod)
    values["gateway"]["backend"]["worker"]["extraPodConfig"]["priorityClass"] = "high"
    pods = build_pods(prod, values)
    problems = schema_problems(pods, prod.eks.kubernetes_version)
    workers = [p for p in pods if p.component == "worker"]
    assert len(problems) == len(workers)
    assert "priorityClass" in problems[0]
    assert all(" worker " in p for p in problems)


def test_another_teams_service_account_is_caught(prod):
    snippet = REPLACING_HANDLER.replace(
        'result[key] = {"serviceAccountName": account}',
        'result[key] = dict(result[key], serviceAccountName="dask-climate")',
    )
    pods = build_pods(prod, with_extra_config(prod, snippet))
    problems = service_account_problems(pods)
    assert problems
    assert all("'dask-climate', not 'dask-" in p for p in problems)
    assert not any(p.startswith("climate ") for p in problems)


def test_resources_other_than_the_options_are_caught(prod):
    values = prod_values(prod)
    values["gateway"]["backend"]["worker"]["extraContainerConfig"] = {
        "resources": {"limits": {"cpu": "1"}}
    }
    pods = build_pods(prod, values)
    problems = resource_problems(pods)
    # Every worker whose cores option is not 1 now has a 1-core limit.
    assert problems
    assert all("resources.limits is 1 cores" in p for p in problems)
    assert any("worker (worker_cores=max)" in p for p in problems)


def test_an_aws_key_in_the_pod_env_is_caught(prod):
    snippet = """
    c.KubeClusterConfig.scheduler_extra_container_config = {
        "env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "not-a-real-key"}]
    }
    """
    pods = build_pods(prod, with_extra_config(prod, snippet))
    problems = environment_problems(pods)
    assert len(problems) == len([p for p in pods if p.component == "scheduler"])
    assert problems[0].endswith("scheduler (default): env carries AWS_SECRET_ACCESS_KEY")


def test_a_scheduler_on_spot_capacity_is_caught(prod):
    values = prod_values(prod)
    scheduler = values["gateway"]["backend"]["scheduler"]["extraPodConfig"]
    scheduler["nodeSelector"] = {
        **scheduler["nodeSelector"],
        placement.CAPACITY_TYPE_LABEL: "spot",
    }
    scheduler["tolerations"] = [
        *scheduler["tolerations"],
        placement.toleration(placement.WORKER_TAINT_KEY),
    ]
    pods = build_pods(prod, values)
    problems = capacity_problems(pods)
    assert any(
        "nodeSelector karpenter.sh/capacity-type is 'spot', not 'on-demand'" in p for p in problems
    )
    assert any("tolerates the spot workers' taint" in p for p in problems)
    assert all(" scheduler " in p for p in problems)


def test_a_scheduler_without_do_not_disrupt_is_caught(prod):
    snippet = "c.KubeClusterConfig.scheduler_extra_pod_annotations = {}\n"
    problems = capacity_problems(build_pods(prod, with_extra_config(prod, snippet)))
    assert problems
    assert all('no karpenter.sh/do-not-disrupt: "true" annotation' in p for p in problems)


def test_checks_do_not_change_the_values(prod):
    values = prod_values(prod)
    before = copy.deepcopy(values)
    build_pods(prod, values)
    assert values == before


def test_pod_settings_configured_after_the_platform_file_are_kept(prod):
    """A later gateway.extraConfig entry (run after the platform's, in the same file) changes
    the configured worker pod settings: the handler merges what is configured at request time."""
    snippet = """
    c.KubeClusterConfig.worker_extra_pod_config = {
        **c.KubeClusterConfig.worker_extra_pod_config,
        "priorityClassName": "dask-workers",
    }
    """
    pods = build_pods(prod, with_extra_config(prod, snippet, key="60-site"))
    workers = [p for p in pods if p.component == "worker"]
    assert {p.pod["spec"].get("priorityClassName") for p in workers} == {"dask-workers"}
    assert {p.pod["spec"]["serviceAccountName"] for p in workers} == {
        service_account_name(t) for t in prod.team_names
    }
    assert placement_problems(pods) == []
    assert capacity_problems(pods) == []


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (
            {"class": "dask_platform.oidc.gateway.NoSuchAuthenticator"},
            "authenticator class dask_platform.oidc.gateway.NoSuchAuthenticator does not import",
        ),
        (
            {"class": "dask_platform.oidc.gateway.OIDCAuthenticator", "issuer_typo": "x"},
            "issuer_typo configured for dask_platform.oidc.gateway.OIDCAuthenticator but not "
            "among its settings",
        ),
    ],
)
def test_an_authenticator_the_api_pod_could_not_create_is_caught(prod, auth, expected):
    values = prod_values(prod)
    custom = values["gateway"]["auth"]["custom"]
    custom["class"] = auth["class"]
    if "issuer_typo" in auth:
        custom["config"] = {**custom["config"], "issuer_typo": auth["issuer_typo"]}
    problems = check_pods(prod, values)
    assert len(problems) == 1
    assert expected in problems[0]


# --------------------------------------------------------------------------- backend class


def test_the_rendered_config_selects_the_platforms_limited_kube_backend(prod):
    """The chart's lines select KubeBackend; the platform's file, pasted after them, selects its
    subclass with the per-user and per-team limits, and the pods are built by that class."""
    import tempfile
    from pathlib import Path

    from dask_gateway_server.backends.kubernetes import KubeBackend

    from dask_platform.gateway_limits import LimitedKubeBackend
    from dask_platform.gateway_pods import kube_backend_class, load_config_file

    rendered = render_gateway(prod, prod_values(prod))
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config_file(rendered.gateway_files, rendered.gateway_env, Path(tmp))
    selected = kube_backend_class(config.DaskGateway.backend_class)
    assert selected is LimitedKubeBackend
    assert issubclass(selected, KubeBackend)
    assert set(config.PlatformLimits.limits) == set(prod.team_names)
    assert build_pods(prod, prod_values(prod)), "pods are built with the selected class"


def test_a_backend_that_is_not_kubernetes_is_caught(prod):
    values = with_extra_config(
        prod,
        """
        c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
        """,
    )
    with pytest.raises(GatewayConfigError, match="not KubeBackend or a subclass of it"):
        build_pods(prod, values)
