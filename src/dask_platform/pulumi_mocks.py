"""What Pulumi's unit-test mocks record and answer while the program runs (the one stand-in of
the project; :mod:`dask_platform.pulumi_eval` drives the program with them).

:class:`RecordingMocks` keeps every resource the program declares with its resolved inputs
(:class:`RecordedResource`) and answers like AWS would for the few computed values the program
reads back (ARNs, the cluster's OIDC issuer, a load balancer hostname); otherwise it echoes the
inputs. :class:`Evaluation` is what one run of the program left: resources, outputs, secrets.

ref: https://www.pulumi.com/docs/using-pulumi/testing/unit/
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

ACCOUNT_ID = "123456789012"
UNDECRYPTED_SECRET = "[secret: not decrypted by the offline plan]"
"""What the program receives for a secure config value the offline plan cannot decrypt."""


@dataclass(frozen=True)
class RecordedResource:
    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    provider: str | None = None
    read: bool = False  # a `Resource.get` of an existing object, not one the program creates
    protect: bool = False
    parent: str = ""  # the parent's URN ("" for the stack itself)
    ignore_changes: tuple[str, ...] = ()
    urn: str = ""
    id: str = ""  # the id the mocks answered (what other resources' `.id` inputs carry)
    # URNs this resource waits for: depends_on (components expanded to their children) and
    # every resource whose output feeds one of its inputs, as the engine receives them.
    dependencies: tuple[str, ...] = ()


@dataclass
class Evaluation:
    stack: str
    resources: list[RecordedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)
    # The plain text of every secure config value as the program received it, so that whatever
    # the program derives from one can be redacted (dask_platform.guard.manifests.redact).
    secret_values: set[str] = field(default_factory=set)

    def of_type(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_ and not r.read]

    def by_urn(self) -> dict[str, RecordedResource]:
        return {r.urn: r for r in self.resources if r.urn}

    def prerequisites(self, resource: RecordedResource) -> set[str]:
        """Every URN ``resource`` transitively waits for: its dependencies, its provider (and
        what the provider's inputs came from), and theirs - what the engine must have created
        before it starts ``resource``."""
        index = self.by_urn()
        seen: set[str] = set()
        pending = [resource]
        while pending:
            current = pending.pop()
            edges = list(current.dependencies)
            if current.provider:
                edges.append(current.provider.rsplit("::", 1)[0])
            for urn in edges:
                if urn not in seen:
                    seen.add(urn)
                    if urn in index:
                        pending.append(index[urn])
        return seen

    def named(self, name: str) -> RecordedResource:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r}")
        return matches[0]


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length].upper()


def _issuer(region: str, cluster: str) -> str:
    return f"https://oidc.eks.{region}.amazonaws.com/id/{_digest(cluster, 32)}"


class RecordingMocks:
    """``pulumi.runtime.Mocks``: records each resource and answers with plausible AWS values."""

    def __init__(
        self,
        region: str,
        account_id: str = ACCOUNT_ID,
        stack_outputs: dict[str, dict[str, Any]] | None = None,
        oidc_issuer: str | None = None,
    ) -> None:
        self.region = region
        # The EKS cluster's OIDC issuer URL (default: one shaped like EKS's, per cluster name).
        self.oidc_issuer = oidc_issuer
        self.account_id = account_id
        # Outputs of the stacks the program references (pulumi.StackReference), by stack name.
        self.stack_outputs = stack_outputs or {}
        self.records: list[RecordedResource] = []
        self.urns: dict[tuple[str, str], str] = {}
        # RegisterResource requests by (type, name): the mock monitor may answer several at once
        # from different threads, so the options are looked up, never kept in one slot.
        self.requests: dict[tuple[str, str], Any] = {}

    def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        type_ = args.typ
        name = args.name
        physical = inputs.get("name") or inputs.get("bucket") or name
        outputs = dict(inputs)
        # AWS uses the bucket name as a bucket's id; companions reference it by that id.
        default_id = physical if type_ == "aws:s3/bucket:Bucket" else f"{name}-id"
        resource_id = args.resource_id or default_id
        if type_ == "pulumi:pulumi:StackReference":
            computed = self._stack_reference(str(inputs.get("name")))
        else:
            computed = self._computed(type_, name, physical, inputs)
        for key, value in computed.items():
            if isinstance(value, dict) and isinstance(outputs.get(key), dict):
                outputs[key] = {**value, **outputs[key]}  # computed fields of an input block
            elif key not in inputs or key == "arn":
                outputs[key] = value
        request = self.requests.pop((type_, name), None)
        self.records.append(
            RecordedResource(
                type=type_,
                name=name,
                inputs=inputs,
                outputs=outputs,
                provider=args.provider,
                read=bool(args.resource_id),
                protect=bool(getattr(request, "protect", False)),
                parent=str(getattr(request, "parent", "") or ""),
                ignore_changes=tuple(getattr(request, "ignoreChanges", ()) or ()),
                urn=self.urns.pop((type_, name), ""),
                id=resource_id,
                dependencies=tuple(getattr(request, "dependencies", ()) or ()),
            )
        )

        return resource_id, outputs

    def _stack_reference(self, stack: str) -> dict[str, Any]:
        if stack not in self.stack_outputs:
            known = ", ".join(sorted(self.stack_outputs)) or "none"
            raise KeyError(f"StackReference {stack!r}: not evaluated (evaluated: {known})")
        return {"outputs": self.stack_outputs[stack], "secretOutputNames": []}

    def call(self, args: Any) -> tuple[dict[str, Any], list[Any] | None]:
        token = args.token
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            # The account the stack config names: the plan is of a deploy to that account.
            return {
                "accountId": self.account_id,
                "arn": f"arn:aws:iam::{self.account_id}:role/plan",
                "userId": "PLAN",
            }, None
        if token == "aws:eks/getAddonVersion:getAddonVersion":
            # EKS answers with the newest build for the Kubernetes version; offline there is no
            # catalogue, so the plan shows what `up` resolves.
            addon, kubernetes = args.args.get("addonName"), args.args.get("kubernetesVersion")
            return {
                **dict(args.args),
                "id": f"{addon}-{kubernetes}",
                "version": f"newest {addon} for Kubernetes {kubernetes} (resolved at up)",
            }, None
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com"}, None
        if token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region}, None
        if token == "aws:ssm/getParameter:getParameter":
            return {
                "name": args.args.get("name"),
                "value": "ami-0123456789abcdef0",
                "type": "String",
            }, None
        if token == "aws:ec2/getAmi:getAmi":
            return {"id": "ami-0123456789abcdef0", "imageId": "ami-0123456789abcdef0"}, None
        return dict(args.args), None

    def _computed(
        self, type_: str, name: str, physical: str, inputs: dict[str, Any]
    ) -> dict[str, Any]:
        account = self.account_id
        arn_prefix = f"arn:aws:{{}}:{self.region}:{account}"
        if type_ == "aws:iam/role:Role":
            return {"arn": f"arn:aws:iam::{account}:role/{physical}", "name": physical}
        if type_ == "aws:iam/policy:Policy":
            return {"arn": f"arn:aws:iam::{account}:policy/{physical}", "name": physical}
        if type_ == "aws:iam/instanceProfile:InstanceProfile":
            return {
                "arn": f"arn:aws:iam::{account}:instance-profile/{physical}",
                "name": physical,
            }
        if type_ == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
            # IAM names the provider by the issuer URL without its scheme.
            host = str(inputs.get("url", "")).removeprefix("https://").removeprefix("http://")
            return {"arn": f"arn:aws:iam::{account}:oidc-provider/{host}"}
        if type_ == "aws:eks/cluster:Cluster":
            return {
                "arn": f"{arn_prefix.format('eks')}:cluster/{physical}",
                "endpoint": f"https://{_digest(physical, 12)}.gr7.{self.region}.eks.amazonaws.com",
                "certificateAuthority": {"data": "TU9DSy1DQQ=="},
                "identities": [
                    {"oidcs": [{"issuer": self.oidc_issuer or _issuer(self.region, physical)}]}
                ],
                # The security group EKS creates for the cluster (and its managed nodes).
                "vpcConfig": {"clusterSecurityGroupId": f"sg-{_digest(physical, 17).lower()}"},
            }
        if type_ == "aws:sqs/queue:Queue":
            return {
                "arn": f"{arn_prefix.format('sqs')}:{physical}",
                "url": f"https://sqs.{self.region}.amazonaws.com/{account}/{physical}",
            }
        if type_ == "aws:s3/bucket:Bucket":
            return {"arn": f"arn:aws:s3:::{physical}", "bucket": physical}
        if type_ == "aws:kms/key:Key":
            return {"arn": f"{arn_prefix.format('kms')}:key/{name}", "keyId": f"{name}-key-id"}
        if type_ == "aws:ec2/launchTemplate:LaunchTemplate":
            return {"latestVersion": 1, "arn": f"{arn_prefix.format('ec2')}:launch-template/{name}"}
        if type_ == "aws:ecr/repository:Repository":
            return {
                "arn": f"{arn_prefix.format('ecr')}:repository/{physical}",
                "repositoryUrl": f"{account}.dkr.ecr.{self.region}.amazonaws.com/{physical}",
                "registryId": account,
            }
        if type_ == "aws:secretsmanager/secret:Secret":
            # Secrets Manager appends six random characters to the name.
            return {
                "arn": f"{arn_prefix.format('secretsmanager')}:secret:{physical}-"
                f"{_digest(physical, 6).title()}"
            }
        if type_ == "aws:ecs/cluster:Cluster":
            return {"arn": f"{arn_prefix.format('ecs')}:cluster/{physical}"}
        if type_ == "aws:cloudwatch/logGroup:LogGroup":
            return {"arn": f"{arn_prefix.format('logs')}:log-group:{physical}"}
        if type_ == "aws:ec2/securityGroup:SecurityGroup":
            return {"arn": f"{arn_prefix.format('ec2')}:security-group/{name}"}
        if type_ == "kubernetes:core/v1:Service":
            return {
                "status": {
                    "loadBalancer": {
                        "ingress": [{"hostname": f"{name}.elb.{self.region}.amazonaws.com"}]
                    }
                }
            }
        if type_ == "kubernetes:helm.sh/v3:Release":
            return {
                "status": {
                    "namespace": inputs.get("namespace"),
                    "name": inputs.get("name"),
                    "status": "deployed",
                }
            }
        return {}
