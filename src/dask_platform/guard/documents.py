"""Every IAM document the platform renders: the ones a stack declares (trust policies, managed and
inline policies, bucket/repository policies, KMS key policies) and each template under
``policies/iam/`` rendered with sample values - what the linters and the plan output read."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from dask_platform import iam
from dask_platform.guard import rules
from dask_platform.guard.values import as_list, policy_document, statements

DocumentKind = Literal["identity", "trust", "resource", "kms-key"]

# (resource type, property) -> kind, for documents held directly in a property.
DOCUMENT_PROPERTIES: dict[tuple[str, str], DocumentKind] = {
    (rules.ROLE, "assumeRolePolicy"): "trust",
    **{(t, "policy"): "identity" for t in rules.IDENTITY_POLICY_TYPES},
    **{(t, "policy"): "resource" for t in rules.RESOURCE_POLICY_TYPES},
    **{(t, "policy"): "kms-key" for t in rules.KMS_KEY_POLICY_TYPES},
}

SAMPLE_ACCOUNT = "123456789012"
SAMPLE_REGION = "us-west-2"
SAMPLE_KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
SAMPLE_ISSUER = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"

# Sample values for template placeholders, by name. A template with a placeholder this table and
# the suffix rules below cannot fill is reported by name, so it gets a sample rather than a skip.
SAMPLE_VALUES: dict[str, Any] = {
    "bucket": "dask-platform-example-scratch",
    "team": "hydrology",
    "namespace": "dask-gateway",
    "account_id": SAMPLE_ACCOUNT,
    "region": SAMPLE_REGION,
    "oidc_issuer": SAMPLE_ISSUER,
    "oidc_provider_arn": f"arn:aws:iam::{SAMPLE_ACCOUNT}:oidc-provider/{SAMPLE_ISSUER}",
    "key_arn": f"arn:aws:kms:{SAMPLE_REGION}:{SAMPLE_ACCOUNT}:key/{SAMPLE_KEY_ID}",
    "vpc_id": "vpc-0123456789abcdef0",
    "log_group": "/dask-platform/example",
    "service_account": "karpenter",
    "queue_arn": f"arn:aws:sqs:{SAMPLE_REGION}:{SAMPLE_ACCOUNT}:dask-example",
    "launch_resource_arns": [
        f"arn:aws:ec2:{SAMPLE_REGION}:{SAMPLE_ACCOUNT}:subnet/subnet-0123456789abcdef0",
        f"arn:aws:ec2:{SAMPLE_REGION}:{SAMPLE_ACCOUNT}:security-group/sg-0123456789abcdef0",
        f"arn:aws:ec2:{SAMPLE_REGION}::image/ami-0123456789abcdef0",
    ],
    "bucket_arns": ["arn:aws:s3:::example-data-a", "arn:aws:s3:::example-data-b"],
    "object_arns": ["arn:aws:s3:::example-data-a/*", "arn:aws:s3:::example-data-b/*"],
    "account_principals": ["arn:aws:iam::444455556666:root"],
}
# Suffix rules for names the table does not list: (suffix, ARN of that kind).
_ARN_BY_SUFFIX = (
    ("role_arn", f"arn:aws:iam::{SAMPLE_ACCOUNT}:role/dask-example"),
    ("policy_arn", f"arn:aws:iam::{SAMPLE_ACCOUNT}:policy/dask-example"),
    ("key_arn", SAMPLE_VALUES["key_arn"]),
    ("log_group_arn", f"arn:aws:logs:{SAMPLE_REGION}:{SAMPLE_ACCOUNT}:log-group:/dask/example"),
    ("repository_arn", f"arn:aws:ecr:{SAMPLE_REGION}:{SAMPLE_ACCOUNT}:repository/dask/worker"),
    ("cluster_arn", f"arn:aws:ecs:{SAMPLE_REGION}:{SAMPLE_ACCOUNT}:cluster/dask-example"),
    (
        "task_definition_arn",
        f"arn:aws:ecs:{SAMPLE_REGION}:{SAMPLE_ACCOUNT}:task-definition/dask-example:1",
    ),
    ("bucket_arn", "arn:aws:s3:::dask-platform-example-scratch"),
    (
        "secret_arn",
        f"arn:aws:secretsmanager:{SAMPLE_REGION}:{SAMPLE_ACCOUNT}:secret:"
        "dask-example/object-stores/osn-renci-AbCdEf",
    ),
)


class SampleValueError(ValueError):
    pass


def sample_value(placeholder: str) -> Any:
    if placeholder in SAMPLE_VALUES:
        return SAMPLE_VALUES[placeholder]
    for suffix, arn in _ARN_BY_SUFFIX:
        if placeholder.endswith(suffix):
            return arn
        if placeholder.endswith(f"{suffix}s"):
            return [arn]
    if placeholder.endswith(("bucket", "bucket_name")):
        return "dask-platform-example-data"
    if placeholder.endswith(("_name", "_family", "_prefix")):
        return "dask-example"
    raise SampleValueError(
        f"no sample value for placeholder {{{{{placeholder}}}}}; add one to "
        "dask_platform.guard.documents.SAMPLE_VALUES so the template is linted"
    )


@dataclass(frozen=True)
class IamDocument:
    source: str  # where it comes from: "<stack>: <type> <name>.<property>" or the template
    kind: DocumentKind
    document: dict[str, Any]

    @property
    def text(self) -> str:
        return json.dumps(self.document, indent=2)


def classify(document: dict[str, Any]) -> DocumentKind:
    """trust (who may assume a role), resource (has a Principal) or identity."""
    kinds = set()
    for statement in statements(document):
        if "Principal" not in statement and "NotPrincipal" not in statement:
            kinds.add("identity")
        elif any(
            str(a).lower().startswith("sts:assumerole") for a in as_list(statement.get("Action"))
        ):
            kinds.add("trust")
        else:
            kinds.add("resource")
    if kinds == {"trust"}:
        return "trust"
    return "resource" if "resource" in kinds or "trust" in kinds else "identity"


def from_resources(stack: str, resources: Iterable[Any]) -> list[IamDocument]:
    """Documents declared by a stack's resources (GuardResource or RecordedResource: anything
    with ``type``, ``name`` and ``inputs``)."""
    out = []
    for resource in resources:
        for (type_, prop), kind in DOCUMENT_PROPERTIES.items():
            if resource.type != type_:
                continue
            document = policy_document(resource.inputs.get(prop))
            if document is not None:
                out.append(IamDocument(f"{stack}: {type_} {resource.name}.{prop}", kind, document))
        if resource.type == rules.ROLE:
            for index, inline in enumerate(as_list(resource.inputs.get("inlinePolicies"))):
                document = policy_document(
                    inline.get("policy") if isinstance(inline, dict) else None
                )
                if document is not None:
                    where = f"{stack}: {rules.ROLE} {resource.name}.inlinePolicies[{index}]"
                    out.append(IamDocument(where, "identity", document))
    return out


def from_templates() -> list[IamDocument]:
    """Each ``policies/iam/*.json`` rendered with sample values."""
    out = []
    for name in iam.policy_names():
        values = {p: sample_value(p) for p in sorted(iam.placeholders(name))}
        document = iam.render_policy(name, **values)
        out.append(
            IamDocument(f"policies/iam/{name}.json (sample values)", classify(document), document)
        )
    return out
