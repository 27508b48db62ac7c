"""Provision the emulator by replaying the resources the Pulumi program declares.

The local platform does not restate a bucket setting, a policy or a session length: it runs the
Pulumi program (:func:`dask_platform.pulumi_eval.evaluate_config`, the unit tests' harness) on
the local config's ``stack:`` section and replays, in the order the program declared them,
the recorded inputs of every ``aws:s3/*``, ``aws:iam/*``, ``aws:kms/*`` and
``aws:secretsmanager/*`` resource against the emulator with boto3. :data:`REPLAY` is the one
table from a Pulumi resource type to the boto3 call(s) that create it; a type in those
namespaces that is in neither :data:`REPLAY` nor :data:`NOT_REPLAYED` stops provisioning with
its name, so a new resource in ``infra/components`` cannot silently miss the local platform.

What differs locally is named, not re-created (:class:`LocalOverlay`):

* the EKS cluster's OIDC issuer is the local issuer (the evaluation's mocks answer its URL, so
  the program's own OIDC provider and trust policies name it);
* the stack's secure config values: the object store key pairs are those of the stand-ins'
  users (created before the replay), the gateway password is unused (each local user has
  their own);
* identifiers AWS computes (KMS key ids, secret ARN suffixes, resource ids): the program's
  mock values are mapped to the emulator's as each resource is created
  (:meth:`Provisioned.translate`), and every later input that names one gets the emulator's.

One resource is deliberately not replayed: the TLS-only bucket policy
(``policies/iam/bucket-tls-only.json``). moto evaluates bucket-policy Deny statements but ignores
their ``Condition``, so ``Deny s3:* if aws:SecureTransport=false`` would deny every request, TLS
or not. The policy tests check it; the platform's isolation claim does not rest on it.

ref: https://www.pulumi.com/docs/using-pulumi/testing/unit/ (the mocks),
https://www.pulumi.com/registry/packages/aws/api-docs/ (each type's inputs)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi.runtime import rpc

from dask_platform.config.sources import NAMESPACE
from dask_platform.local.emulator import Emulator
from dask_platform.local.processes import ComponentError
from dask_platform.pulumi_eval import evaluate_config
from dask_platform.pulumi_mocks import Evaluation, RecordedResource

REPLAYED_NAMESPACES = ("aws:s3/", "aws:iam/", "aws:kms/", "aws:secretsmanager/")
"""The resource namespaces the emulator holds; the program's other resources (VPC, EKS, ECS,
SQS, Kubernetes) have no local counterpart, or a local process instead (the gateway)."""
NOT_REPLAYED = {
    "aws:s3/bucketPolicy:BucketPolicy": "moto ignores bucket-policy conditions; the TLS-only "
    "Deny would match every request"
}
"""Types in :data:`REPLAYED_NAMESPACES` that are deliberately not replayed, with the reason."""
UNUSED_GATEWAY_PASSWORD = "[unused locally: each local user has their own password]"  # noqa: S105
"""What the program gets for ``gateway_simple_password`` locally (it only reaches the chart's
Secret, which the local gateway does not read)."""
# camelCase input names whose boto3 (PascalCase) name is not the plain capitalisation.
_BOTO_NAMES = {
    "id": "ID",
    "sseAlgorithm": "SSEAlgorithm",
    "kmsMasterKeyId": "KMSMasterKeyID",
    "mfaDelete": "MFADelete",
}


@dataclass(frozen=True)
class LocalOverlay:
    """The local platform's named differences from a deployed stack (see the module doc)."""

    oidc_issuer: str
    object_store_keys: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def secrets(self, stack: Mapping[str, Any]) -> dict[str, str]:
        """The secure config values the program requires for the raw ``stack`` section."""
        secrets = {}
        auth = (stack.get("gateway") or {}).get("auth") or {}
        if auth.get("type") == "simple":
            secrets["gateway_simple_password"] = UNUSED_GATEWAY_PASSWORD
        if stack.get("object_stores"):
            secrets["object_store_keys"] = json.dumps(dict(self.object_store_keys), sort_keys=True)
        return secrets


@dataclass
class Provisioned:
    """What the replay created: the evaluation it replayed, the program-to-emulator identifier
    map, and the replayed / deliberately skipped resources (by Pulumi name)."""

    evaluation: Evaluation
    identifiers: dict[str, str] = field(default_factory=dict)
    replayed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def translate(self, value: Any) -> Any:
        """``value`` (a recorded input or export) with every program identifier that the
        emulator computed differently replaced by the emulator's."""
        if isinstance(value, str):
            for old in sorted(self.identifiers, key=len, reverse=True):
                if old in value:
                    value = value.replace(old, self.identifiers[old])
            return value
        if isinstance(value, dict):
            # Pulumi's wire form of a secret value: {special sig key: secret sig, "value": ...}.
            if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
                return self.translate(value.get("value"))
            return {k: self.translate(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.translate(v) for v in value]
        if isinstance(value, float) and value.is_integer():
            return int(value)  # Pulumi sends every number as a float
        return value


def boto_shape(value: Any) -> Any:
    """A Pulumi input block as boto3 spells it: camelCase keys -> PascalCase (``id`` -> ``ID``,
    ``sseAlgorithm`` -> ``SSEAlgorithm``), recursively."""
    if isinstance(value, dict):
        return {_BOTO_NAMES.get(k, k[:1].upper() + k[1:]): boto_shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [boto_shape(v) for v in value]
    return value


class _Clients:
    def __init__(self, emulator: Emulator, region: str) -> None:
        self._emulator = emulator
        self._made: dict[str, Any] = {}
        self.region = region

    def __getattr__(self, service: str) -> Any:
        if service.startswith("_"):
            raise AttributeError(service)
        if service not in self._made:
            self._made[service] = self._emulator.client(service)
        return self._made[service]


def _tags(tags: Mapping[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in tags.items()]


def _optional(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v not in (None, "", [], {})}


# ------------------------------------------------------------------ one function per type
# Each gets the emulator's clients, the record, its inputs (translated, numbers as ints, the
# provider's default tags merged into ``tags``) and returns {program identifier: emulator's}.

Replayer = Callable[[_Clients, RecordedResource, dict[str, Any]], dict[str, str]]


def _bucket(aws: _Clients, r: RecordedResource, i: dict[str, Any]) -> dict[str, str]:
    kwargs: dict[str, Any] = {"Bucket": i["bucket"]}
    if aws.region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": aws.region}
    aws.s3.create_bucket(**kwargs)
    if i.get("tags"):
        aws.s3.put_bucket_tagging(Bucket=i["bucket"], Tagging={"TagSet": _tags(i["tags"])})
    return {}


def _public_access_block(aws: _Clients, r: RecordedResource, i: dict[str, Any]) -> dict[str, str]:
    block = {k: v for k, v in i.items() if k != "bucket"}
    aws.s3.put_public_access_block(
        Bucket=i["bucket"], PublicAccessBlockConfiguration=boto_shape(block)
    )
    return {}


def _encryption(aws: _Clients, r: RecordedResource, i: dict[str, Any]) -> dict[str, str]:
    aws.s3.put_bucket_encryption(
        Bucket=i["bucket"], ServerSideEncryptionConfiguration={"Rules": boto_shape(i["rules"])}
    )
    return {}


def _ownership(aws: _Clients, r: RecordedResource, i: dict[str, Any]) -> dict[str, str]:
    aws.s3.put_bucket_ownership_controls(
        Bucket=i["bucket"], OwnershipControls={"Rules": [boto_shape(i["rule"])]}
    )
    return {}


def _lifecycle(aws: _Clients, r: RecordedResource, i: dict[str, Any]) -> dict[str, str]:
    aws.s3.put_bucket_lifecycle_configuration(
        Bucket=i["bucket"], LifecycleConfiguration={"Rules": boto_shape(i["rules"])}
    )
    return {}


def _versioning(aws: _Clients, r: RecordedResource, i: dict[str, Any]) -> dict[str, str]:
    aws.s3.put_bucket_versioning(
        Bucket=i["bucket"], VersioningConfiguration=boto_shape(i["versioningConfiguration"])
    )
    return {}


def _request_payment(aws: _Clients, r: RecordedResource, i: dict[str, Any]) -> dict[str, str]:
    aws.s3.put_bucket_request_payment(
        Bucket=i["bucket"], RequestPaymentConfiguration={"Payer": i["payer"]}
    )
    return {}


def _object(aws: _Clients, r: RecordedResource, i: dict[str, Any]) -> dict[str, str]:
    aws.s3.put_object(Bucket=i["bucket"], Key=i["key"], Body=str(i.get("content", "")).encode())
    return {}


def _oidc_provider(aws: _Clients, r: RecordedResource, i: dict[str, Any]) -> dict[str, str]:
    arn = aws.iam.create_open_id_connect_provider(
        Url=i["url"],
        ClientIDList=i.get("clientIdLists", []),
        ThumbprintList=i.get("thumbprintLists", []),
        Tags=_tags(i.get("tags") or {}),
    )["OpenIDConnectProviderArn"]
    return {r.id: arn, r.outputs["arn"]: arn}


def _policy(aws: _Clients, r: RecordedResource, i: dict[str, Any]) -> dict[str, str]:
    name = r.outputs["name"]
    arn = aws.iam.create_policy(
        PolicyName=name,
        PolicyDocument=i["policy"],
        Tags=_tags(i.get("tags") or {}),
        **_optional(Description=i.get("description"), Path=i.get("path")),
    )["Policy"]["Arn"]
    return {r.id: arn, r.outputs["arn"]: arn}


def _role(aws: _Clients, r: RecordedResource, i: dict[str, Any]) -> dict[str, str]:
    name = r.outputs["name"]
    role = aws.iam.create_role(
        RoleName=name,
        AssumeRolePolicyDocument=i["assumeRolePolicy"],
        Tags=_tags(i.get("tags") or {}),
        **_optional(
            Description=i.get("description"),
            Path=i.get("path"),
            MaxSessionDuration=i.get("maxSessionDuration"),
        ),
    )["Role"]
    return {r.id: name, r.outputs["arn"]: role["Arn"]}


def _role_policy(aws: _Clients, r: RecordedResource, i: dict[str, Any]) -> dict[str, str]:
    aws.iam.put_role_policy(
        RoleName=i["role"], PolicyName=i.get("name") or r.name, PolicyDocument=i["policy"]
    )
    return {}


def _role_policy_attachment(
    aws: _Clients, r: RecordedResource, i: dict[str, Any]
) -> dict[str, str]:
    aws.iam.attach_role_policy(RoleName=i["role"], PolicyArn=i["policyArn"])
    return {}


def _instance_profile(aws: _Clients, r: RecordedResource, i: dict[str, Any]) -> dict[str, str]:
    name = r.outputs["name"]
    profile = aws.iam.create_instance_profile(
        InstanceProfileName=name, Tags=_tags(i.get("tags") or {}), **_optional(Path=i.get("path"))
    )["InstanceProfile"]
    if i.get("role"):
        aws.iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=i["role"])
    return {r.id: name, r.outputs["arn"]: profile["Arn"]}


def _group(aws: _Clients, r: RecordedResource, i: dict[str, Any]) -> dict[str, str]:
    name = i.get("name") or r.name
    aws.iam.create_group(GroupName=name, **_optional(Path=i.get("path")))
    return {r.id: name}


def _group_policy(aws: _Clients, r: RecordedResource, i: dict[str, Any]) -> dict[str, str]:
    aws.iam.put_group_policy(
        GroupName=i["group"], PolicyName=i.get("name") or r.name, PolicyDocument=i["policy"]
    )
    return {}


def _group_policy_attachment(
    aws: _Clients, r: RecordedResource, i: dict[str, Any]
) -> dict[str, str]:
    aws.iam.attach_group_policy(GroupName=i["group"], PolicyArn=i["policyArn"])
    return {}


def _kms_key(aws: _Clients, r: RecordedResource, i: dict[str, Any]) -> dict[str, str]:
    key = aws.kms.create_key(
        Tags=_tags(i.get("tags") or {}, "TagKey", "TagValue"),
        **_optional(Description=i.get("description")),
    )["KeyMetadata"]
    if i.get("enableKeyRotation"):
        aws.kms.enable_key_rotation(KeyId=key["KeyId"])
    return {r.id: key["KeyId"], r.outputs["keyId"]: key["KeyId"], r.outputs["arn"]: key["Arn"]}


def _kms_alias(aws: _Clients, r: RecordedResource, i: dict[str, Any]) -> dict[str, str]:
    aws.kms.create_alias(AliasName=i["name"], TargetKeyId=i["targetKeyId"])
    return {}


def _secret(aws: _Clients, r: RecordedResource, i: dict[str, Any]) -> dict[str, str]:
    arn = aws.secretsmanager.create_secret(
        Name=i["name"],
        Tags=_tags(i.get("tags") or {}),
        **_optional(Description=i.get("description"), KmsKeyId=i.get("kmsKeyId")),
    )["ARN"]
    return {r.id: arn, r.outputs["arn"]: arn}


def _secret_version(aws: _Clients, r: RecordedResource, i: dict[str, Any]) -> dict[str, str]:
    aws.secretsmanager.put_secret_value(SecretId=i["secretId"], SecretString=i["secretString"])
    return {}


REPLAY: dict[str, Replayer] = {
    "aws:s3/bucket:Bucket": _bucket,  # create_bucket, put_bucket_tagging
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": _public_access_block,
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        _encryption  # put_bucket_encryption
    ),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": _ownership,
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": _lifecycle,
    "aws:s3/bucketVersioning:BucketVersioning": _versioning,
    "aws:s3/bucketRequestPaymentConfiguration:BucketRequestPaymentConfiguration": (
        _request_payment
    ),
    "aws:s3/bucketObjectv2:BucketObjectv2": _object,  # put_object
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": _oidc_provider,
    "aws:iam/policy:Policy": _policy,  # create_policy
    "aws:iam/role:Role": _role,  # create_role
    "aws:iam/rolePolicy:RolePolicy": _role_policy,  # put_role_policy
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": _role_policy_attachment,
    "aws:iam/instanceProfile:InstanceProfile": _instance_profile,
    "aws:iam/group:Group": _group,  # create_group
    "aws:iam/groupPolicy:GroupPolicy": _group_policy,  # put_group_policy
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment": _group_policy_attachment,
    "aws:kms/key:Key": _kms_key,  # create_key, enable_key_rotation
    "aws:kms/alias:Alias": _kms_alias,  # create_alias
    "aws:secretsmanager/secret:Secret": _secret,  # create_secret
    "aws:secretsmanager/secretVersion:SecretVersion": _secret_version,  # put_secret_value
}
"""Pulumi resource type -> the function making its boto3 call(s)."""


def evaluate_local_program(
    stack: Mapping[str, Any],
    stack_name: str,
    overlay: LocalOverlay,
    project_dir: Path | None = None,
) -> Evaluation:
    """The Pulumi program evaluated on the local config's raw ``stack:`` section, as stack
    ``stack_name``, with the overlay's issuer and secrets."""
    raw: dict[str, Any] = {f"{NAMESPACE}:{key}": value for key, value in stack.items()}
    secrets = {f"{NAMESPACE}:{k}": v for k, v in overlay.secrets(stack).items()}
    raw.update({key: {"secure": "local"} for key in secrets})
    return evaluate_config(
        raw, stack_name, project_dir, secrets=secrets, oidc_issuer=overlay.oidc_issuer
    )


def _default_tags(evaluation: Evaluation, resource: RecordedResource) -> dict[str, str]:
    """The ``default_tags`` of the resource's AWS provider, which the provider adds to every
    resource's tags."""
    if not resource.provider:
        return {}
    provider = evaluation.by_urn().get(resource.provider.rsplit("::", 1)[0])
    if provider is None:
        return {}
    default_tags = provider.inputs.get("defaultTags") or {}
    if isinstance(default_tags, str):
        default_tags = json.loads(default_tags)
    return dict(default_tags.get("tags") or {})


def replay(evaluation: Evaluation, emulator: Emulator) -> Provisioned:
    """Create the evaluation's resources of :data:`REPLAYED_NAMESPACES` in the emulator, in
    declaration order. Raises :class:`ComponentError` naming a type with no replay."""
    provisioned = Provisioned(evaluation=evaluation)
    region = str(evaluation.outputs.get("region") or emulator.region)
    clients = _Clients(emulator, region)
    for resource in evaluation.resources:
        if resource.read or not resource.type.startswith(REPLAYED_NAMESPACES):
            continue
        if resource.type in NOT_REPLAYED:
            provisioned.skipped[resource.name] = NOT_REPLAYED[resource.type]
            continue
        if resource.type not in REPLAY:
            raise ComponentError(
                f"provisioning: the program declares {resource.type} ({resource.name}), which "
                f"the local platform cannot replay; add it to {__name__}.REPLAY (or "
                "NOT_REPLAYED, with the reason)"
            )
        inputs = provisioned.translate(resource.inputs)
        if resource.type in _TAGGED:
            inputs["tags"] = {**_default_tags(evaluation, resource), **(inputs.get("tags") or {})}
        made = REPLAY[resource.type](clients, resource, inputs)
        provisioned.identifiers.update({k: v for k, v in made.items() if k and k != v})
        provisioned.replayed.append(resource.name)
    return provisioned


# Types whose AWS resource carries tags (so the provider's default tags reach it).
_TAGGED = frozenset(
    {
        "aws:s3/bucket:Bucket",
        "aws:iam/role:Role",
        "aws:iam/policy:Policy",
        "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
        "aws:iam/instanceProfile:InstanceProfile",
        "aws:kms/key:Key",
        "aws:secretsmanager/secret:Secret",
    }
)


def provision(
    stack: Mapping[str, Any],
    emulator: Emulator,
    overlay: LocalOverlay,
    stack_name: str = "local",
    project_dir: Path | None = None,
) -> Provisioned:
    """Evaluate the program on the raw ``stack`` section and replay it into ``emulator``."""
    return replay(evaluate_local_program(stack, stack_name, overlay, project_dir), emulator)
