"""Every Kubernetes object a stack would apply, rendered and checked offline.

From an :class:`~dask_platform.pulumi_mocks.Evaluation` (the program under Pulumi's mocks):

* every Helm release the program declares (``kubernetes:helm.sh/v3:Release``) is rendered from
  its pinned chart with the exact values the program passes (secrets as :data:`REDACTED`) by
  Helm's own library (:func:`dask_platform.charts.render`), plus the chart's ``crds/``, which
  Helm installs first;
* every Kubernetes object the program declares itself (``kubernetes:<group>/<version>:<Kind>``:
  Namespace, ServiceAccount, Secret, custom resources such as a Karpenter NodePool) is turned
  back into the manifest the provider would apply;
* each object is validated against the Kubernetes schema of the stack's ``kubernetes_version``
  (strict, as the API server's field validation) or, for a custom resource, against the
  ``openAPIV3Schema`` of its CRD (from the charts' ``crds/``, CRD templates, or the program);
* checkov's kubernetes checks run on the rendered and declared objects, less the reviewed
  waivers of ``policies/checkov-kubernetes-waivers.yaml``.

ref: https://www.pulumi.com/docs/iac/cli/commands/pulumi_preview/ (what ``plan --json`` mirrors)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from dask_platform import charts, kube_schema
from dask_platform.charts import merge_values

if TYPE_CHECKING:
    from dask_platform.guard.lint import LintFinding
    from dask_platform.pulumi_mocks import Evaluation, RecordedResource

RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
"""The Pulumi type of a Helm release (rendered here from its pinned chart)."""

REDACTED = "<secret>"
"""What a secret value becomes in rendered values, manifests and ``plan --json``."""

CRD_KIND = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")

# Kubernetes kinds the provider applies that are not objects, and Pulumi types that are not
# Kubernetes objects at all (the provider itself, releases rendered separately, YAML groups).
_NOT_OBJECTS = ("kubernetes:helm.sh/", "kubernetes:yaml/", "kubernetes:kustomize/")

# Built-in kinds without a namespace; every other built-in kind gets the release's namespace
# when Helm installs it. ref: `kubectl api-resources --namespaced=false` on Kubernetes 1.33
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "APIService",
        "CSIDriver",
        "CSINode",
        "CertificateSigningRequest",
        "ClusterRole",
        "ClusterRoleBinding",
        "ComponentStatus",
        "CustomResourceDefinition",
        "FlowSchema",
        "IngressClass",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "RuntimeClass",
        "StorageClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
    }
)


@dataclass(frozen=True)
class KubeObject:
    """One Kubernetes object and where it comes from: ``"<release resource>: <template>"`` for
    a rendered one, ``"<Pulumi type> <resource name>"`` for one the program declares."""

    source: str
    manifest: dict[str, Any]

    @property
    def api_kind(self) -> tuple[str, str]:
        return str(self.manifest.get("apiVersion", "")), str(self.manifest.get("kind", ""))

    @property
    def label(self) -> str:
        metadata = self.manifest.get("metadata") or {}
        return f"{self.manifest.get('kind', '?')}/{metadata.get('name', '?')}"


@dataclass(frozen=True)
class RenderedRelease:
    """A Helm release the program declares, rendered from its pinned chart.

    ``objects``: the rendered templates; ``crds``: the chart's ``crds/`` (Helm installs them
    first, unless the release sets ``skipCrds``)."""

    resource: str
    chart: str
    version: str
    release: str
    namespace: str
    values: dict[str, Any]
    objects: list[KubeObject]
    crds: list[KubeObject] = field(default_factory=list)


@dataclass(frozen=True)
class ManifestProblem:
    """An object Kubernetes would refuse (or a release that cannot render): where and why."""

    source: str
    problem: str

    def __str__(self) -> str:
        return f"{self.source}: {self.problem}"


@dataclass
class ManifestReport:
    """What :func:`check_manifests` found for one stack."""

    kubernetes_version: str
    releases: list[RenderedRelease] = field(default_factory=list)
    declared: list[KubeObject] = field(default_factory=list)
    problems: list[ManifestProblem] = field(default_factory=list)
    findings: list[LintFinding] = field(default_factory=list)  # checkov, waivers applied

    @property
    def objects(self) -> list[KubeObject]:
        """Every object the stack applies: charts' CRDs, templates, then the program's own."""
        out = [o for r in self.releases for o in (*r.crds, *r.objects)]
        return out + self.declared

    @property
    def passed(self) -> bool:
        return not self.problems and not self.findings


# --------------------------------------------------------------------------- secrets


def redact(value: Any, secret_values: Collection[str] = ()) -> Any:
    """``value`` as plain JSON data with every secret replaced by :data:`REDACTED`.

    A value the program marked secret (Pulumi's secret wrapper) becomes ``REDACTED`` when it is
    a scalar; a secret mapping or list keeps its shape and every occurrence of a string of
    ``secret_values`` (the stack's decrypted config secrets) in any string is replaced. Numbers
    that are whole become ints (the engine carries every number as a double); assets become
    ``{"asset": ...}``.
    """
    from pulumi.runtime.rpc import is_rpc_secret, unwrap_rpc_secret

    secrets = sorted((s for s in secret_values if s), key=len, reverse=True)

    def walk(node: Any) -> Any:
        if is_rpc_secret(node):
            inner = unwrap_rpc_secret(node)
            return walk(inner) if isinstance(inner, dict | list) else REDACTED
        if isinstance(node, dict):
            return {str(k): walk(v) for k, v in node.items()}
        if isinstance(node, list | tuple):
            return [walk(v) for v in node]
        if isinstance(node, str):
            for secret in secrets:
                node = node.replace(secret, REDACTED)
            return node
        if isinstance(node, float) and node.is_integer():
            return int(node)
        if node is None or isinstance(node, bool | int | float):
            return node
        return {"asset": walk(_asset(node))}

    return walk(value)


def _asset(node: Any) -> Any:
    for attribute in ("path", "text", "uri", "assets"):
        if getattr(node, attribute, None) is not None:
            return {attribute: getattr(node, attribute)}
    return type(node).__name__


# --------------------------------------------------------------------------- releases


def _values_files(inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The release's ``valueYamlFiles`` (file or text assets), in order."""
    out = []
    for asset in inputs.get("valueYamlFiles") or []:
        path, text = getattr(asset, "path", None), getattr(asset, "text", None)
        if path is not None:
            # Relative paths are the program's, which runs in its own directory (main:).
            from dask_platform.project import project_root
            from dask_platform.pulumi_eval import _program_dir

            text = (_program_dir(project_root()) / path).read_text()
        out.append(yaml.safe_load(text or "") or {})
    return out


def release_values(record: RecordedResource, secret_values: Collection[str] = ()) -> dict[str, Any]:
    """The values a release passes to Helm: its ``valueYamlFiles`` merged in order, then its
    ``values`` over them (as the provider does), secrets as :data:`REDACTED`."""
    merged: dict[str, Any] = {}
    for document in _values_files(record.inputs):
        merged = merge_values(merged, document)
    values = redact(record.inputs.get("values") or {}, secret_values)
    if not isinstance(values, dict):  # a secret scalar where a mapping belongs
        raise charts.ChartError(f"release {record.name}: values is {values!r}, not a mapping")
    return merge_values(merged, values)


def render_release(
    record: RecordedResource, secret_values: Collection[str] = ()
) -> RenderedRelease:
    """Render one recorded ``kubernetes:helm.sh/v3:Release`` from its pinned chart.

    The chart, version and repository must be pinned in ``helm/charts.yaml``. Raises
    :class:`dask_platform.charts.ChartError` (pin, cache, digest) or
    ``helm_python.HelmError`` (values the chart's schema refuses, a failing template).
    """
    inputs = record.inputs
    repository = (inputs.get("repositoryOpts") or {}).get("repo")
    pin = charts.pin_of_reference(
        str(inputs.get("chart", "")),
        str(inputs["version"]) if inputs.get("version") is not None else None,
        repository,
    )
    release = str(inputs.get("name") or record.name)
    namespace = str(inputs.get("namespace") or "default")
    values = release_values(record, secret_values)
    rendered = charts.render(pin.name, values, release=release, namespace=namespace)
    objects = [
        KubeObject(f"{record.name}: {path}", obj) for path, obj in charts.documents(rendered)
    ]
    crds = []
    if not inputs.get("skipCrds"):
        crds = [
            KubeObject(f"{record.name}: {path}", obj)
            for path, obj in charts.documents(charts.chart_crds(pin.name, pin.version))
        ]
    return RenderedRelease(
        resource=record.name,
        chart=pin.name,
        version=pin.version,
        release=release,
        namespace=namespace,
        values=values,
        objects=objects,
        crds=crds,
    )


def declared_releases(evaluation: Evaluation) -> list[RecordedResource]:
    return evaluation.of_type(RELEASE_TYPE)


# --------------------------------------------------------------------------- declared objects


def is_kubernetes_object(type_: str) -> bool:
    """Whether a Pulumi type is a Kubernetes object the provider applies as one manifest."""
    return type_.startswith("kubernetes:") and not type_.startswith(_NOT_OBJECTS)


def object_manifest(
    record: RecordedResource, secret_values: Collection[str] = ()
) -> dict[str, Any]:
    """The manifest the Kubernetes provider applies for a declared object.

    The recorded inputs are the object's fields under their Kubernetes names (the SDK's input
    types map ``automount_service_account_token`` to ``automountServiceAccountToken``; a
    CustomResource's ``spec`` is passed as written), with ``apiVersion`` and ``kind`` set.
    Secrets become :data:`REDACTED`; whole numbers ints (the engine carries doubles).
    """
    manifest = redact(dict(record.inputs), secret_values)
    group_version, _, kind = record.type.removeprefix("kubernetes:").partition(":")
    group, _, version = group_version.partition("/")
    manifest.setdefault("apiVersion", version if group == "core" else group_version)
    manifest.setdefault("kind", kind)
    manifest.setdefault("metadata", {})
    return dict(manifest)


def declared_objects(evaluation: Evaluation) -> list[KubeObject]:
    """Every Kubernetes object the program declares itself (``get``s excluded)."""
    return [
        KubeObject(f"{r.type} {r.name}", object_manifest(r, evaluation.secret_values))
        for r in evaluation.resources
        if is_kubernetes_object(r.type) and not r.read
    ]


# --------------------------------------------------------------------------- validation


def crd_schemas(objects: Iterable[KubeObject]) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(apiVersion, kind): openAPIV3Schema}`` of every CRD among ``objects``."""
    return kube_schema.crd_schemas(o.manifest for o in objects if o.api_kind == CRD_KIND)


def validate_objects(
    objects: Iterable[KubeObject],
    kubernetes_version: str,
    schemas: Mapping[tuple[str, str], Mapping[str, Any]],
) -> list[ManifestProblem]:
    """Problems of each object: a custom resource (its kind in ``schemas``) against its CRD's
    schema, any other against Kubernetes ``kubernetes_version``'s schema (an unknown kind is
    a problem too). Empty when every object is valid."""
    problems = []
    for obj in objects:
        if obj.api_kind in schemas:
            found = kube_schema.validate_custom_resource(obj.manifest, schemas)
        else:
            found = kube_schema.validate_manifest(obj.manifest, kubernetes_version)
        problems += [ManifestProblem(obj.source, p) for p in found]
    return problems


def with_namespace(obj: KubeObject, namespace: str, cluster_scoped: Collection[str]) -> KubeObject:
    """The object with the release namespace Helm gives a namespaced object that names none."""
    manifest = obj.manifest
    metadata = manifest.get("metadata") or {}
    if manifest.get("kind") in cluster_scoped or metadata.get("namespace"):
        return obj
    return KubeObject(obj.source, {**manifest, "metadata": {**metadata, "namespace": namespace}})


def cluster_scoped_kinds(objects: Iterable[KubeObject]) -> set[str]:
    """:data:`CLUSTER_SCOPED_KINDS` plus the kinds of the cluster-scoped CRDs among ``objects``."""
    custom = {
        o.manifest["spec"]["names"]["kind"]
        for o in objects
        if o.api_kind == CRD_KIND and o.manifest.get("spec", {}).get("scope") == "Cluster"
    }
    return set(CLUSTER_SCOPED_KINDS) | custom


def check_manifests(
    evaluation: Evaluation, kubernetes_version: str, *, checkov: bool = True
) -> ManifestReport:
    """Render every release, check its values against its chart's values schema, gather every
    declared object, validate them all, run checkov.

    A release that cannot render (values its chart refuses, a failing template) or whose values
    break the chart's schema is a problem of the report; a chart that is not pinned or not in
    the cache raises :class:`dask_platform.charts.ChartError` (the stack cannot be checked at
    all).
    """
    from helm_python import HelmRenderError, HelmValuesError

    report = ManifestReport(kubernetes_version=kubernetes_version)
    for record in declared_releases(evaluation):
        try:
            rendered = render_release(record, evaluation.secret_values)
        except (HelmRenderError, HelmValuesError) as exc:  # the chart refused the values
            report.problems.append(ManifestProblem(record.name, f"does not render: {exc}"))
            continue
        report.releases.append(rendered)
        report.problems += [
            ManifestProblem(record.name, f"values {problem}")
            for problem in charts.values_schema_problems(
                rendered.chart, rendered.values, rendered.version
            )
        ]
    report.declared = declared_objects(evaluation)
    objects = report.objects
    report.problems += validate_objects(objects, kubernetes_version, crd_schemas(objects))
    if checkov:
        from dask_platform.guard.lint import checkov_kubernetes_findings

        report.findings = checkov_kubernetes_findings(
            (o.source, o.manifest) for o in checkov_objects(report)
        )
    return report


def checkov_objects(report: ManifestReport) -> list[KubeObject]:
    """What checkov scans: the releases' rendered templates, each namespaced object given the
    release's namespace as Helm installs it, and the program's own objects. (The charts' CRDs
    are schemas, not workloads.)"""
    scoped = cluster_scoped_kinds(report.objects)
    rendered = [with_namespace(o, r.namespace, scoped) for r in report.releases for o in r.objects]
    return rendered + report.declared


def _without_secret_data(manifest: dict[str, Any]) -> dict[str, Any]:
    """A Secret's values redacted (a chart may generate one, e.g. dask-gateway's API token)."""
    if manifest.get("kind") != "Secret" or manifest.get("apiVersion") != "v1":
        return manifest
    out = dict(manifest)
    for key in ("data", "stringData"):
        if isinstance(out.get(key), dict):
            out[key] = dict.fromkeys(out[key], REDACTED)
    return out


def plan_document(
    evaluation: Evaluation, report: ManifestReport | None, problems: Mapping[str, list[str]]
) -> dict[str, Any]:
    """What ``plan --json`` writes: every declared resource with its inputs (sorted by type and
    name), the stack's outputs, the rendered releases, and the problems by check; every secret
    redacted. Shape::

        {"stack", "kubernetes_version",
         "resources": [{"type", "name", "parent", "read", "protect", "inputs"}],
         "outputs": {name: value},
         "releases": [{"resource", "chart", "version", "release", "namespace", "values",
                       "crds": [CRD names], "manifests": [objects]}],
         "problems": {check: [message]}}
    """
    secrets = evaluation.secret_values
    resources = [
        {
            "type": r.type,
            "name": r.name,
            "parent": r.parent,
            "read": r.read,
            "protect": r.protect,
            "inputs": _without_secret_data(redact(r.inputs, secrets)),
        }
        # The engine registers resources concurrently: sorted, two plans of one program diff
        # only where the program changed.
        for r in sorted(evaluation.resources, key=lambda r: (r.type, r.name))
    ]
    outputs = {
        name: REDACTED if name in evaluation.secret_outputs else redact(value, secrets)
        for name, value in evaluation.outputs.items()
    }
    releases = [
        {
            "resource": r.resource,
            "chart": r.chart,
            "version": r.version,
            "release": r.release,
            "namespace": r.namespace,
            "values": r.values,
            "crds": [o.manifest["metadata"]["name"] for o in r.crds],
            "manifests": [_without_secret_data(redact(o.manifest, secrets)) for o in r.objects],
        }
        for r in (report.releases if report else [])
    ]
    return {
        "stack": evaluation.stack,
        "kubernetes_version": report.kubernetes_version if report else None,
        "resources": resources,
        "outputs": outputs,
        "releases": releases,
        "problems": {check: list(found) for check, found in problems.items()},
    }
