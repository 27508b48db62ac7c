"""Karpenter as the program declares it, checked against Karpenter's own pieces: every NodePool
and EC2NodeClass validates against the openAPIV3Schema of the CRDs in the pinned karpenter-crd
chart (a misspelled field or a wrong enum value fails), and the pinned karpenter chart renders
with the values the program passes, its manifests valid for the stack's Kubernetes version."""

from __future__ import annotations

import copy
import json
from functools import cache

import pytest
import yaml

from dask_platform import charts, karpenter, placement
from dask_platform.kube_schema import crd_schemas, validate_custom_resource, validate_manifest

from .conftest import document

NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"


@cache
def schemas():
    rendered = charts.render(
        karpenter.CRD_CHART, {}, release=karpenter.CRD_RELEASE, namespace=karpenter.NAMESPACE
    )
    crds = [m for m in charts.manifests(rendered) if m["kind"] == "CustomResourceDefinition"]
    return crd_schemas(crds)


def declared(evaluation, type_):
    """The custom resources the program declared, as manifests."""
    return [
        {
            "apiVersion": r.inputs["apiVersion"],
            "kind": r.inputs["kind"],
            "metadata": r.inputs["metadata"],
            "spec": r.inputs["spec"],
        }
        for r in evaluation.of_type(type_)
    ]


def test_the_crd_chart_defines_nodepools_and_ec2nodeclasses():
    assert {("karpenter.sh/v1", "NodePool"), ("karpenter.k8s.aws/v1", "EC2NodeClass")} <= set(
        schemas()
    )


def test_declared_node_pools_and_class_validate_against_the_crds(evaluation):
    pools = declared(evaluation, NODE_POOL)
    classes = declared(evaluation, NODE_CLASS)
    assert sorted(p["metadata"]["name"] for p in pools) == ["dask-schedulers", "dask-workers"]
    assert [c["metadata"]["name"] for c in classes] == ["dask-platform"]
    for obj in [*pools, *classes]:
        assert validate_custom_resource(obj, schemas()) == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("spec", "disruption", "consolidationPolicy"), "WhenIdle", "'WhenIdle' is not one of"),
        (("spec", "disruption", "consolidateAfter"), "5 minutes", "does not match"),
        (("spec", "template", "spec", "expireAfter"), "30d", "does not match"),
        (("spec", "disruption", "consolidateAftr"), "1m", "('consolidateAftr' was unexpected)"),
        (("spec", "template", "spec", "taints", 0, "effect"), "NoScheduled", "is not one of"),
    ],
)
def test_a_planted_defect_in_a_node_pool_fails_the_schema(evaluation, path, value, expected):
    (pool,) = [
        p for p in declared(evaluation, NODE_POOL) if p["metadata"]["name"] == "dask-workers"
    ]
    planted = copy.deepcopy(pool)
    target = planted
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    problems = validate_custom_resource(planted, schemas())
    assert any(expected in p for p in problems), problems


def test_a_misspelled_node_class_field_fails_the_schema(evaluation):
    (node_class,) = declared(evaluation, NODE_CLASS)
    planted = copy.deepcopy(node_class)
    planted["spec"]["metadataOptions"]["httpTokens"] = "optional-ish"
    planted["spec"]["amiSelectorTerm"] = planted["spec"].pop("amiSelectorTerms")
    problems = validate_custom_resource(planted, schemas())
    assert any("httpTokens: 'optional-ish' is not one of" in p for p in problems), problems
    assert any("amiSelectorTerm" in p for p in problems), problems


def test_node_pools_follow_the_stack_config(evaluation, config):
    pools = {p["metadata"]["name"]: p for p in declared(evaluation, NODE_POOL)}
    for name, cfg, role, taint in (
        ("dask-workers", config.capacity.workers, "workers", placement.WORKER_TAINT_KEY),
        (
            "dask-schedulers",
            config.capacity.schedulers,
            "schedulers",
            placement.SCHEDULER_TAINT_KEY,
        ),
    ):
        spec = pools[name]["spec"]
        template = spec["template"]
        assert template["metadata"]["labels"] == {placement.NODE_ROLE_LABEL: role}
        assert template["spec"]["taints"] == [
            {"key": taint, "value": "true", "effect": "NoSchedule"}
        ]
        requirements = {r["key"]: r["values"] for r in template["spec"]["requirements"]}
        assert requirements["karpenter.sh/capacity-type"] == list(cfg.capacity_types)
        assert requirements["karpenter.k8s.aws/instance-category"] == list(cfg.instance_categories)
        assert spec["limits"] == {
            "cpu": str(cfg.cpu_limit),
            "memory": f"{cfg.memory_limit_gib}Gi",
        }
        assert spec["disruption"] == {
            "consolidationPolicy": "WhenEmpty",
            "consolidateAfter": cfg.consolidate_after,
        }
        assert template["spec"]["expireAfter"] == cfg.expire_after
    assert pools["dask-schedulers"]["spec"]["template"]["spec"]["requirements"][0] == {
        "key": "karpenter.sh/capacity-type",
        "operator": "In",
        "values": ["on-demand"],
    }


def test_node_class_is_hardened(evaluation):
    (node_class,) = declared(evaluation, NODE_CLASS)
    spec = node_class["spec"]
    assert spec["metadataOptions"]["httpTokens"] == "required"
    assert spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
    (root,) = spec["blockDeviceMappings"]
    assert root["rootVolume"] is True
    assert root["ebs"]["encrypted"] is True
    assert root["ebs"]["volumeType"] == "gp3"
    assert spec["amiSelectorTerms"][0]["alias"].startswith("al2023@")
    assert spec["tags"]["dask-platform/stack"] == evaluation.stack
    (role,) = [r for r in evaluation.of_type("aws:iam/role:Role") if r.name == "karpenter-node"]
    assert spec["role"] == role.outputs["name"]


def _release(evaluation, chart):
    (release,) = [
        r for r in evaluation.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == chart
    ]
    return release


def test_controller_chart_renders_with_the_program_values(evaluation, config):
    release = _release(evaluation, "karpenter")
    pin = charts.chart_pin("karpenter")
    assert release.inputs["version"] == pin.version
    assert release.inputs["repositoryOpts"] == {"repo": pin.repository}
    assert release.inputs["skipCrds"] is True
    values = release.inputs["values"]
    assert values["settings"]["clusterName"] == evaluation.outputs["cluster_name"]
    assert (
        values["settings"]["interruptionQueue"]
        == evaluation.outputs["karpenter_interruption_queue"]
    )
    rendered = charts.render(
        "karpenter", values, release=karpenter.RELEASE, namespace=karpenter.NAMESPACE
    )
    objects = charts.manifests(rendered)
    problems = [p for o in objects for p in validate_manifest(o, config.eks.kubernetes_version)]
    assert problems == []
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"][placement.NODE_ROLE_LABEL] == placement.CORE_ROLE
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["CLUSTER_NAME"] == values["settings"]["clusterName"]
    assert env["INTERRUPTION_QUEUE"] == values["settings"]["interruptionQueue"]
    assert env["VM_MEMORY_OVERHEAD_PERCENT"] == str(config.capacity.vm_memory_overhead_percent)
    (account,) = [o for o in objects if o["kind"] == "ServiceAccount"]
    role_arns = [
        r.outputs["arn"]
        for r in evaluation.of_type("aws:iam/role:Role")
        if r.name == "karpenter-controller"
    ]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role_arns[0]


def test_crd_release_renders_valid_crds(evaluation, config):
    crd = _release(evaluation, "karpenter-crd")
    assert crd.inputs["version"] == charts.chart_pin("karpenter-crd").version
    assert crd.inputs["namespace"] == karpenter.NAMESPACE
    rendered = charts.render(
        karpenter.CRD_CHART,
        crd.inputs.get("values") or {},
        release=karpenter.CRD_RELEASE,
        namespace=karpenter.NAMESPACE,
    )
    objects = charts.manifests(rendered)
    assert {o["metadata"]["name"] for o in objects} >= {
        "nodepools.karpenter.sh",
        "nodeclaims.karpenter.sh",
        "ec2nodeclasses.karpenter.k8s.aws",
    }
    assert [p for o in objects for p in validate_manifest(o, config.eks.kubernetes_version)] == []


def test_interruption_queue_and_rules_as_the_reference(evaluation):
    (queue,) = evaluation.of_type("aws:sqs/queue:Queue")
    assert queue.inputs["messageRetentionSeconds"] == 300
    assert queue.inputs["sqsManagedSseEnabled"] is True
    (policy,) = evaluation.of_type("aws:sqs/queuePolicy:QueuePolicy")
    statements = document(policy.inputs["policy"])["Statement"]
    deny = [s for s in statements if s["Effect"] == "Deny"]
    assert deny == [
        {
            "Sid": "DenyHTTP",
            "Effect": "Deny",
            "Action": "sqs:*",
            "Resource": queue.outputs["arn"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            "Principal": "*",
        }
    ]
    rules = evaluation.of_type("aws:cloudwatch/eventRule:EventRule")
    patterns = sorted((json.loads(r.inputs["eventPattern"])["detail-type"][0]) for r in rules)
    reference = _reference_cloudformation()
    expected = sorted(
        r["Properties"]["EventPattern"]["detail-type"][0]
        for r in reference["Resources"].values()
        if r["Type"] == "AWS::Events::Rule"
    )
    assert patterns == expected
    targets = evaluation.of_type("aws:cloudwatch/eventTarget:EventTarget")
    assert len(targets) == len(rules)
    assert {t.inputs["arn"] for t in targets} == {queue.outputs["arn"]}


def test_pass_role_names_the_node_role_only(evaluation):
    (node_role,) = [
        r for r in evaluation.of_type("aws:iam/role:Role") if r.name == "karpenter-node"
    ]
    policies = {
        p.name: document(p.inputs["policy"])
        for p in evaluation.of_type("aws:iam/policy:Policy")
        if p.name.startswith("karpenter-")
    }
    assert len(policies) == 6, sorted(policies)
    passing = [
        s
        for doc in policies.values()
        for s in doc["Statement"]
        if "iam:PassRole" in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]
    assert [s["Resource"] for s in passing] == [node_role.outputs["arn"]]
    assert passing[0]["Condition"] == {
        "StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]}
    }
    (entry,) = [
        e
        for e in evaluation.of_type("aws:eks/accessEntry:AccessEntry")
        if e.inputs["type"] != "STANDARD"  # the operators' entries (eks.access) are STANDARD
    ]
    assert entry.inputs["type"] == "EC2_LINUX"
    assert entry.inputs["principalArn"] == node_role.outputs["arn"]


def test_discovery_tags_on_private_subnets_and_cluster_security_group(evaluation):
    cluster = evaluation.outputs["cluster_name"]
    subnets = evaluation.of_type("aws:ec2/subnet:Subnet")
    private = [s for s in subnets if "private" in s.name]
    assert private
    assert all(s.inputs["tags"]["karpenter.sh/discovery"] == cluster for s in private)
    assert not any(
        "karpenter.sh/discovery" in s.inputs["tags"] for s in subnets if s not in private
    )
    (tag,) = evaluation.of_type("aws:ec2/tag:Tag")
    (eks,) = evaluation.of_type("aws:eks/cluster:Cluster")
    assert tag.inputs == {
        "resourceId": eks.outputs["vpcConfig"]["clusterSecurityGroupId"],
        "key": "karpenter.sh/discovery",
        "value": cluster,
    }


REFERENCE_POLICIES = {
    "NodeLifecyclePolicy": "karpenter-node-lifecycle",
    "IAMIntegrationPolicy": "karpenter-iam-integration",
    "EKSIntegrationPolicy": "karpenter-eks-integration",
    "InterruptionPolicy": "karpenter-interruption",
    "ZonalShiftPolicy": "karpenter-zonal-shift",
    "ResourceDiscoveryPolicy": "karpenter-resource-discovery",
}


def test_controller_policies_are_the_reference_documents(evaluation, config):
    """Each controller policy is the reference CloudFormation's document, with the reference's
    substitutions made for this stack - nothing added, nothing left out."""
    reference = _reference_cloudformation()["Resources"]
    policies = {
        p.name: document(p.inputs["policy"])
        for p in evaluation.of_type("aws:iam/policy:Policy")
        if p.name.startswith("karpenter-")
    }
    (node_role,) = [
        r for r in evaluation.of_type("aws:iam/role:Role") if r.name == "karpenter-node"
    ]
    (queue,) = evaluation.of_type("aws:sqs/queue:Queue")
    substitutions = {
        "${AWS::Partition}": "aws",
        "${AWS::Region}": config.region,
        "${AWS::AccountId}": config.account_id,
        "${ClusterName}": evaluation.outputs["cluster_name"],
        "${KarpenterNodeRole.Arn}": node_role.outputs["arn"],
        "${KarpenterInterruptionQueue.Arn}": queue.outputs["arn"],
    }
    assert sorted(policies) == sorted(
        f"karpenter-{n.removeprefix('karpenter-')}" for n in REFERENCE_POLICIES.values()
    )
    for resource, name in REFERENCE_POLICIES.items():
        text = reference[resource]["Properties"]["PolicyDocument"]
        for placeholder, value in substitutions.items():
            text = text.replace(placeholder, value)
        assert policies[name] == json.loads(text), name
    attached = sorted(
        a.inputs["policyArn"]
        for a in evaluation.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a.inputs["role"] == node_role.outputs["name"]
    )
    expected = sorted(
        arn.replace("${AWS::Partition}", "aws")
        for arn in reference["KarpenterNodeRole"]["Properties"]["ManagedPolicyArns"]
    )
    assert attached == expected


class _CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form functions (!Sub, !GetAtt, !Ref) read as plain
    values."""


_CloudFormationLoader.add_multi_constructor(
    "!", lambda loader, _suffix, node: loader.construct_scalar(node)
)


def _reference_cloudformation():
    """Karpenter's getting-started CloudFormation, kept beside the chart archives."""
    path = charts.chart_cache() / "karpenter-1.14.1-getting-started-cloudformation.yaml"
    return yaml.load(path.read_text(), Loader=_CloudFormationLoader)  # noqa: S506
