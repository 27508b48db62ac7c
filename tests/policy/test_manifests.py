"""Every Kubernetes object a stack applies, as `dask-platform plan` checks it: each Helm release
rendered from its pinned chart by Helm's library with the values the program passes, every
rendered and declared object valid against the Kubernetes schemas of the stack's version (or its
CRD's schema), checkov's kubernetes checks clean less the reviewed waivers. Planted violations
(a field Kubernetes rejects, a misspelled or out-of-enum custom resource field, an unwaived
checkov finding, a broken chart cache) must each be caught."""

from __future__ import annotations

import copy
import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from dask_platform import charts
from dask_platform.charts import CHART_CACHE_ENV, ChartError
from dask_platform.cli import app
from dask_platform.config.sources import load_stack_file
from dask_platform.guard import manifests
from dask_platform.guard.lint import (
    CheckovUnavailable,
    CheckovWaiver,
    checkov_kubernetes_findings,
    checkov_kubernetes_results,
    kubernetes_waivers,
    uv_binary,
    waive,
)
from dask_platform.guard.manifests import KubeObject, check_manifests
from dask_platform.pulumi_eval import evaluate_stack
from dask_platform.pulumi_mocks import Evaluation

from .policy_harness import COMMITTED_STACKS, PROJECT, REPO

pytestmark = pytest.mark.policy

runner = CliRunner()
SECRET = "correct-horse-battery-staple-7f3a"  # a made-up password for the planted secret


def _version(stack: str) -> str:
    return load_stack_file(REPO, stack).eks.kubernetes_version


def _report(evaluated: Callable[[str], Evaluation], stack: str) -> manifests.ManifestReport:
    return check_manifests(evaluated(stack), _version(stack), checkov=False)


def _rendered(report: manifests.ManifestReport, kind: str, name: str) -> KubeObject:
    (found,) = [
        o
        for o in report.objects
        if o.manifest.get("kind") == kind and o.manifest["metadata"].get("name") == name
    ]
    return found


# --------------------------------------------------------------------------- committed stacks


@pytest.mark.parametrize("stack", COMMITTED_STACKS)
def test_every_release_renders_and_every_object_is_valid(
    stack: str, evaluated: Callable[[str], Evaluation]
) -> None:
    report = _report(evaluated, stack)
    assert [str(p) for p in report.problems] == []
    releases = {r.chart: r for r in report.releases}
    gateway = releases["dask-gateway"]
    assert (gateway.version, gateway.release) == ("2026.3.0", "dask-gateway")
    assert gateway.namespace == load_stack_file(REPO, stack).gateway.namespace
    kinds = {o.api_kind for o in gateway.objects}
    # Built-in kinds checked against Kubernetes' schema, traefik's CRs against the chart's CRDs.
    assert {("apps/v1", "Deployment"), ("v1", "ConfigMap"), ("v1", "Service")} <= kinds
    assert ("traefik.io/v1alpha1", "IngressRoute") in kinds
    schemas = manifests.crd_schemas(report.objects)
    assert ("traefik.io/v1alpha1", "IngressRoute") in schemas
    assert ("gateway.dask.org/v1alpha1", "DaskCluster") in schemas
    # Every object the program declares itself is there, as the provider would apply it.
    declared = {(o.manifest["kind"], o.manifest["metadata"]["name"]) for o in report.declared}
    config = load_stack_file(REPO, stack)
    assert ("Namespace", config.gateway.namespace) in declared
    assert {("ServiceAccount", f"dask-{t}") for t in config.team_names} <= declared


@pytest.mark.parametrize("stack", COMMITTED_STACKS)
def test_release_is_rendered_with_the_values_the_program_passes(
    stack: str, evaluated: Callable[[str], Evaluation]
) -> None:
    evaluation = evaluated(stack)
    (record,) = [
        r for r in evaluation.of_type(manifests.RELEASE_TYPE) if r.inputs["name"] == "dask-gateway"
    ]
    report = _report(evaluated, stack)
    config = _rendered(report, "ConfigMap", "api-dask-gateway").manifest
    extra = record.inputs["values"]["gateway"]["extraConfig"]["50-dask-platform"]
    assert extra.strip() in config["data"]["dask_gateway_config.py"]
    deployment = _rendered(report, "Deployment", "api-dask-gateway").manifest
    image = record.inputs["values"]["gateway"]["image"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{image['name']}:{image['tag']}"


# --------------------------------------------------------------------------- planted violations


def test_a_misspelled_chart_value_is_caught_though_helm_renders_it(
    evaluated: Callable[[str], Evaluation],
) -> None:
    """dask-gateway's schema is YAML, which Helm does not apply: the plan applies it."""
    evaluation = copy.deepcopy(evaluated(COMMITTED_STACKS[0]))
    (release,) = [
        r for r in evaluation.of_type(manifests.RELEASE_TYPE) if r.inputs["name"] == "dask-gateway"
    ]
    release.inputs["values"]["gateway"]["extraconfig"] = {"50-typo": "pass"}
    report = check_manifests(evaluation, _version(COMMITTED_STACKS[0]), checkov=False)
    assert [r.chart for r in report.releases].count("dask-gateway") == 1, "it still renders"
    (problem,) = report.problems
    assert problem.source == release.name
    assert problem.problem.startswith("values gateway: Additional properties are not allowed")
    assert "'extraconfig' was unexpected" in problem.problem


def test_a_deployment_field_kubernetes_rejects_is_caught(
    evaluated: Callable[[str], Evaluation],
) -> None:
    report = _report(evaluated, COMMITTED_STACKS[0])
    original = _rendered(report, "Deployment", "api-dask-gateway")
    unknown = copy.deepcopy(original.manifest)
    unknown["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    wrong_type = copy.deepcopy(original.manifest)
    wrong_type["spec"]["replicas"] = "two"
    problems = manifests.validate_objects(
        [
            KubeObject("planted: unknown field", unknown),
            KubeObject("planted: wrong type", wrong_type),
        ],
        "1.33",
        {},
    )
    assert len(problems) == 2, problems
    assert str(problems[0]).startswith("planted: unknown field: Deployment/api-dask-gateway: ")
    assert "imagePullPolicyy" in problems[0].problem
    assert str(problems[1]).startswith(
        "planted: wrong type: Deployment/api-dask-gateway: spec.replicas: "
    )
    assert "'two' is not of type 'integer'" in problems[1].problem
    assert manifests.validate_objects([original], "1.33", {}) == []


def test_an_unknown_kind_is_caught() -> None:
    obj = KubeObject("planted", {"apiVersion": "apps/v1", "kind": "Deploymnet", "metadata": {}})
    (problem,) = manifests.validate_objects([obj], "1.33", {})
    assert "no Kubernetes 1.33.0 schema" in problem.problem


def test_a_misspelled_field_and_a_bad_enum_in_custom_resources_are_caught(
    evaluated: Callable[[str], Evaluation],
) -> None:
    report = _report(evaluated, COMMITTED_STACKS[0])
    schemas = manifests.crd_schemas(report.objects)
    route = _rendered(report, "IngressRoute", "api-dask-gateway")
    assert manifests.validate_objects([route], "1.33", schemas) == []
    misspelled = copy.deepcopy(route.manifest)
    misspelled["spec"]["routess"] = misspelled["spec"].pop("routes")
    bad_enum = copy.deepcopy(route.manifest)
    bad_enum["spec"]["routes"][0]["kind"] = "Rules"
    problems = [
        str(p)
        for p in manifests.validate_objects(
            [KubeObject("misspelled", misspelled), KubeObject("bad enum", bad_enum)],
            "1.33",
            schemas,
        )
    ]
    assert any(
        p.startswith("misspelled: IngressRoute/api-dask-gateway: spec: ") and "'routess'" in p
        for p in problems
    ), problems
    assert any(
        p.startswith("misspelled: IngressRoute/api-dask-gateway: spec: ")
        and "'routes' is a required property" in p
        for p in problems
    ), problems
    assert (
        "bad enum: IngressRoute/api-dask-gateway: spec.routes.0.kind: 'Rules' is not one of "
        "['Rule']" in problems
    ), problems


# --------------------------------------------------------------------------- the program's own


def _project(tmp_path: Path, program: str, config: dict[str, Any] | None = None) -> Path:
    """A Pulumi project of its own: this repository's dev config (changed as given) and a
    program, either a tiny one (text) or this repository's (``infra``)."""
    if program == "infra":
        main = str(REPO / "infra")
    else:
        (tmp_path / "program").mkdir()
        (tmp_path / "program" / "__main__.py").write_text(textwrap.dedent(program))
        main = "program/"
    (tmp_path / "Pulumi.yaml").write_text(
        yaml.safe_dump({"name": PROJECT, "runtime": "python", "main": main})
    )
    document = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())
    # An account of its own: it owns that account's instance metadata defaults, alone both in
    # this project and beside the repository's stacks (which the program also reads).
    document["config"]["dask-platform:account_id"] = "777788889999"
    document["config"].update(config or {})
    (tmp_path / "Pulumi.ci.yaml").write_text(yaml.safe_dump(document))
    return tmp_path


KARPENTER_PROGRAM = """
import pulumi_kubernetes as k8s

crds = k8s.helm.v3.Release(
    "karpenter-crd",
    name="karpenter-crd",
    chart="oci://public.ecr.aws/karpenter/karpenter-crd",
    version="1.14.1",
    namespace="kube-system",
)
k8s.core.v1.Namespace("ns", metadata={{"name": "planted", "labelz": {{"a": "b"}}}})
k8s.apiextensions.CustomResource(
    "workers",
    api_version="karpenter.sh/v1",
    kind="NodePool",
    metadata={{"name": "workers"}},
    spec={{
        "template": {{
            "spec": {{
                "nodeClassRef": {{"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                  "name": "default"}},
                "requirements": [{{"key": "karpenter.sh/capacity-type", "operator": "In",
                                   "values": ["spot"]}}],
                {extra}
            }}
        }},
        "disruption": {{"consolidationPolicy": "{policy}", "consolidateAfter": "1m"}},
        "limits": {{"cpu": 100}},
    }},
)
"""


def test_declared_objects_and_custom_resources_of_another_chart_are_validated(
    tmp_path: Path,
) -> None:
    """A generic release (an OCI chart whose templates are CRDs) supplies the schema for a
    NodePool the program declares; the program's Namespace is checked by Kubernetes' schema."""
    project = _project(
        tmp_path, KARPENTER_PROGRAM.format(extra='"expireAfterr": "720h",', policy="WhenIdle")
    )
    evaluation = evaluate_stack("ci", project)
    (pool,) = [o for o in manifests.declared_objects(evaluation) if o.label == "NodePool/workers"]
    assert pool.source == "kubernetes:karpenter.sh/v1:NodePool workers"
    assert pool.manifest["spec"]["limits"] == {"cpu": 100}  # a whole number, as applied
    report = check_manifests(evaluation, "1.33", checkov=False)
    (release,) = report.releases
    assert (release.chart, release.version, release.namespace) == (
        "karpenter-crd",
        "1.14.1",
        "kube-system",
    )
    problems = [str(p) for p in report.problems]
    assert any(
        p.startswith("kubernetes:core/v1:Namespace ns: Namespace/planted: metadata: ")
        and "labelz" in p
        for p in problems
    ), problems
    assert any(
        p.startswith("kubernetes:karpenter.sh/v1:NodePool workers: NodePool/workers: ")
        and "'expireAfterr'" in p
        for p in problems
    ), problems
    assert any(
        "NodePool/workers: spec.disruption.consolidationPolicy: 'WhenIdle' is not one of" in p
        for p in problems
    ), problems
    assert len(problems) == 3, problems

    result = runner.invoke(
        app, ["plan", "--stack", "ci", "--project-dir", str(project), "--no-lint"]
    )
    assert result.exit_code == 1, result.output
    assert "[kubernetes-schemas] kubernetes:karpenter.sh/v1:NodePool workers" in result.output
    assert "mandatory problem(s)" in result.output


def test_a_valid_nodepool_of_the_crd_chart_passes(tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        KARPENTER_PROGRAM.format(extra="", policy="WhenEmpty").replace(
            ', "labelz": {"a": "b"}', ""
        ),
    )
    report = check_manifests(evaluate_stack("ci", project), "1.33", checkov=False)
    assert [str(p) for p in report.problems] == []


def test_a_custom_resource_without_its_crd_is_caught(tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        """
        import pulumi_kubernetes as k8s

        k8s.apiextensions.CustomResource(
            "workers", api_version="karpenter.sh/v1", kind="NodePool",
            metadata={"name": "workers"}, spec={},
        )
        """,
    )
    report = check_manifests(evaluate_stack("ci", project), "1.33", checkov=False)
    (problem,) = report.problems
    assert problem.source == "kubernetes:karpenter.sh/v1:NodePool workers"
    assert "NodePool/workers: no Kubernetes 1.33.0 schema" in problem.problem


def test_an_unpinned_release_fails_the_plan_naming_the_chart(tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        """
        import pulumi_kubernetes as k8s

        k8s.helm.v3.Release("ingress", chart="ingress-nginx", version="4.12.0",
            repository_opts={"repo": "https://kubernetes.github.io/ingress-nginx"})
        """,
    )
    with pytest.raises(ChartError, match="chart 'ingress-nginx' is not pinned"):
        check_manifests(evaluate_stack("ci", project), "1.33", checkov=False)
    result = runner.invoke(
        app, ["plan", "--stack", "ci", "--project-dir", str(project), "--no-lint"]
    )
    assert result.exit_code == 2, result.output
    assert "chart 'ingress-nginx' is not pinned in helm/charts.yaml" in result.output


@pytest.mark.parametrize("broken", ["missing", "corrupted"])
def test_a_broken_chart_cache_fails_the_plan_with_one_clear_error(
    broken: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite_cache = charts.chart_cache()
    cache = tmp_path / "charts"
    cache.mkdir()
    pin = charts.chart_pin("dask-gateway")
    for other in charts.chart_pins().values():  # every other release's chart is intact
        if other.name != pin.name:
            (cache / other.archive_name).write_bytes(
                (suite_cache / other.archive_name).read_bytes()
            )
    if broken == "corrupted":
        data = bytearray((suite_cache / pin.archive_name).read_bytes())
        data[100] ^= 0xFF
        (cache / pin.archive_name).write_bytes(bytes(data))
    monkeypatch.setenv(CHART_CACHE_ENV, str(cache))
    result = runner.invoke(app, ["plan", "--stack", "dev", "--no-lint"])
    assert result.exit_code == 2, result.output
    expected = "is not in the chart cache" if broken == "missing" else "has sha256"
    assert expected in result.output
    assert "helm pull dask-gateway --version 2026.3.0 --repo https://helm.dask.org" in (
        result.output.replace("\n", "")
    )


# --------------------------------------------------------------------------- checkov


def _checkov_results(objects: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    if uv_binary() is None:
        pytest.skip("uv is not installed: checkov runs as `uv tool run checkov`")
    try:
        return checkov_kubernetes_results(objects)
    except CheckovUnavailable as exc:
        pytest.fail(str(exc))


JUPYTERHUB_AUTH = {
    "dask-platform:gateway": {
        **yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())["config"]["dask-platform:gateway"],
        "auth": {
            "type": "jupyterhub",
            "jupyterhub_api_url": "http://hub.jupyterhub.svc.cluster.local:8081/hub/api",
        },
    },
    "dask-platform:gateway_jupyterhub_api_token": {"secure": "AAABAHNvbWUtY2lwaGVydGV4dA=="},
}


def test_committed_stacks_pass_checkov_and_every_waiver_is_still_needed(
    evaluated: Callable[[str], Evaluation], tmp_path: Path
) -> None:
    """One checkov run over both stacks' objects and a dev stack with JupyterHub auth (a
    supported auth type no committed stack uses): nothing unwaived, and no stale waiver."""
    waivers = kubernetes_waivers()
    objects: list[tuple[str, dict[str, Any]]] = []
    hub = evaluate_stack("ci", _project(tmp_path, "infra", JUPYTERHUB_AUTH))
    reports = [(stack, _report(evaluated, stack)) for stack in COMMITTED_STACKS]
    reports.append(("dev+jupyterhub", check_manifests(hub, _version("dev"), checkov=False)))
    for stack, report in reports:
        objects += [(f"{stack}: {o.source}", o.manifest) for o in manifests.checkov_objects(report)]
    findings, used = waive(_checkov_results(objects), waivers)
    assert [str(f) for f in findings] == []
    assert [w for w in waivers if w not in used] == []


def test_a_checkov_finding_not_in_the_waivers_fails() -> None:
    privileged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "planted", "namespace": "dask-gateway"},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox:1.37", "securityContext": {"privileged": True}}
            ]
        },
    }
    if uv_binary() is None:
        pytest.skip("uv is not installed: checkov runs as `uv tool run checkov`")
    findings = checkov_kubernetes_findings([("planted: pod.yaml", privileged)])
    privileged_findings = [f for f in findings if f.issue == "CKV_K8S_16"]
    assert [str(f) for f in privileged_findings] == [
        "[checkov] planted: pod.yaml (Pod.dask-gateway.planted): CKV_K8S_16 "
        "Container should not be privileged"
    ]
    # A waiver covers exactly its check and resources, nothing else.
    waiver = CheckovWaiver(
        check="CKV_K8S_16",
        resources=("Pod.dask-gateway.planted",),
        reason="a planted waiver for this test only, covering the one privileged pod",
    )
    results = _checkov_results([("planted: pod.yaml", privileged)])
    remaining, used = waive(results, [waiver])
    assert used == {waiver}
    assert "CKV_K8S_16" not in {f.issue for f in remaining}
    assert {f.issue for f in remaining} == {f.issue for f in findings} - {"CKV_K8S_16"}


def test_waiver_file_entries_are_checked(tmp_path: Path) -> None:
    bad = tmp_path / "waivers.yaml"
    bad.write_text(
        yaml.safe_dump(
            {"waivers": [{"check": "CKV_K8S_16", "resources": ["Pod.x.y"], "reason": "why not"}]}
        )
    )
    with pytest.raises(
        ValueError, match=r"waivers\[0\]\.reason: String should have at least 40 characters"
    ):
        kubernetes_waivers(bad)


# --------------------------------------------------------------------------- plan --json


def test_plan_json_has_every_resource_its_inputs_and_the_rendered_release(
    evaluated: Callable[[str], Evaluation],
) -> None:
    stack = COMMITTED_STACKS[0]
    result = runner.invoke(app, ["plan", "--stack", stack, "--json", "--no-lint"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert sorted(document) == [
        "kubernetes_version",
        "outputs",
        "problems",
        "releases",
        "resources",
        "stack",
    ]
    assert document["stack"] == stack
    assert document["kubernetes_version"] == _version(stack)
    evaluation = evaluated(stack)
    assert [(r["type"], r["name"]) for r in document["resources"]] == sorted(
        (r.type, r.name) for r in evaluation.resources
    )
    (namespace,) = [r for r in document["resources"] if r["type"] == "kubernetes:core/v1:Namespace"]
    assert namespace["inputs"]["metadata"]["name"] == load_stack_file(REPO, stack).gateway.namespace
    assert set(namespace) == {"type", "name", "parent", "read", "protect", "inputs"}
    (release,) = [r for r in document["releases"] if r["chart"] == "dask-gateway"]
    assert (release["chart"], release["version"], release["release"]) == (
        "dask-gateway",
        "2026.3.0",
        "dask-gateway",
    )
    assert "ingressroutes.traefik.io" in release["crds"]
    kinds = {(m["kind"], m["metadata"]["name"]) for m in release["manifests"]}
    assert ("Deployment", "api-dask-gateway") in kinds
    assert document["problems"] == {
        "policies": [],
        "iam_lint": [],
        "kubernetes_schemas": [],
        "checkov_kubernetes": [],
        "gateway_pods": [],
    }


SIMPLE_AUTH = {
    "dask-platform:gateway": {
        **yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())["config"]["dask-platform:gateway"],
        "auth": {"type": "simple"},
    },
    "dask-platform:gateway_simple_password": {"secure": "AAABAHNvbWUtY2lwaGVydGV4dA=="},
}


def test_a_secret_never_appears_in_the_plan_json(tmp_path: Path) -> None:
    project = _project(tmp_path, "infra", SIMPLE_AUTH)
    evaluation = evaluate_stack(
        "ci", project, secrets={"dask-platform:gateway_simple_password": SECRET}
    )
    (record,) = [
        r for r in evaluation.of_type(manifests.RELEASE_TYPE) if r.inputs["name"] == "dask-gateway"
    ]
    assert SECRET in json.dumps(record.inputs)  # the program did pass it to the release
    report = check_manifests(evaluation, "1.33", checkov=False)
    assert [str(p) for p in report.problems] == []
    (release,) = [r for r in report.releases if r.chart == "dask-gateway"]
    assert release.values["gateway"]["auth"]["simple"] == {"password": manifests.REDACTED}
    text = json.dumps(manifests.plan_document(evaluation, report, {}))
    assert SECRET not in text
    assert manifests.REDACTED in text

    # And the command itself (the secret stays undecrypted offline): no placeholder leaks.
    result = runner.invoke(
        app, ["plan", "--stack", "ci", "--project-dir", str(project), "--json", "--no-lint"]
    )
    document = json.loads(result.stdout)
    (values,) = [r["values"] for r in document["releases"] if r["chart"] == "dask-gateway"]
    assert values["gateway"]["auth"]["simple"] == {"password": manifests.REDACTED}
    assert "not decrypted" not in result.stdout
    provider = [r for r in document["resources"] if r["type"] == "pulumi:providers:kubernetes"]
    assert len(provider) == 1
    assert provider[0]["inputs"]["kubeconfig"] == manifests.REDACTED


def test_secret_objects_and_secret_inputs_are_redacted() -> None:
    """A Secret's data (declared, or rendered by a chart) and any value the program marked
    secret become the placeholder; the rest of the object stays as applied."""
    from pulumi.runtime.rpc import wrap_rpc_secret

    from dask_platform.pulumi_mocks import RecordedResource

    secret = RecordedResource(
        type="kubernetes:core/v1:Secret",
        name="hub-token",
        inputs={
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "hub-token", "namespace": "dask-gateway"},
            "stringData": {"token": "plain-but-still-a-secret"},
        },
        outputs={},
    )
    provider = RecordedResource(
        type="pulumi:providers:kubernetes",
        name="eks",
        inputs={"kubeconfig": wrap_rpc_secret("apiVersion: v1 ... token: abc"), "replicas": 2.0},
        outputs={},
    )
    evaluation = Evaluation(stack="s", resources=[secret, provider], secret_values={SECRET})
    document = manifests.plan_document(evaluation, None, {})
    by_name = {r["name"]: r["inputs"] for r in document["resources"]}
    assert by_name["hub-token"]["stringData"] == {"token": manifests.REDACTED}
    assert by_name["hub-token"]["metadata"] == {"name": "hub-token", "namespace": "dask-gateway"}
    assert by_name["eks"] == {"kubeconfig": manifests.REDACTED, "replicas": 2}
    assert manifests.redact({"url": f"https://u:{SECRET}@host"}, {SECRET}) == {
        "url": "https://u:<secret>@host"
    }


KARPENTER_CHART_PROGRAM = """
import pulumi_kubernetes as k8s

k8s.helm.v3.Release(
    "karpenter",
    name="karpenter",
    chart="oci://public.ecr.aws/karpenter/karpenter",
    version="1.14.1",
    namespace="kube-system",
    values={values},
)
"""


def test_a_release_its_chart_refuses_to_render_is_a_problem(tmp_path: Path) -> None:
    project = _project(tmp_path, KARPENTER_CHART_PROGRAM.format(values="{}"))
    report = check_manifests(evaluate_stack("ci", project), "1.33", checkov=False)
    assert report.releases == []
    (problem,) = report.problems
    assert problem.source == "karpenter"
    assert "does not render" in problem.problem
    assert "Chart cannot be installed without a valid settings.clusterName!" in problem.problem


def test_the_karpenter_chart_renders_and_validates_with_its_crds(tmp_path: Path) -> None:
    """The controller chart's own crds/ (NodePool, EC2NodeClass, ...) count as installed."""
    values = '{"settings": {"clusterName": "dask-ci", "interruptionQueue": "dask-ci"}}'
    project = _project(tmp_path, KARPENTER_CHART_PROGRAM.format(values=values))
    report = check_manifests(evaluate_stack("ci", project), "1.33", checkov=False)
    assert [str(p) for p in report.problems] == []
    (release,) = report.releases
    assert {o.manifest["spec"]["names"]["kind"] for o in release.crds} >= {
        "NodePool",
        "EC2NodeClass",
    }
    assert ("apps/v1", "Deployment") in {o.api_kind for o in release.objects}
