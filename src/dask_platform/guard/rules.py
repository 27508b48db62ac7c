"""The platform's policy rules, one ``<rule>_validator(args, report_violation)`` each.

These are plain functions over pulumi_policy's argument classes, so the same code runs inside the
CrossGuard pack (``policies/crossguard``, during ``pulumi preview``/``up``) and in the offline
gate (``dask-platform plan``, over the resources the program declares under mocks). The policy
objects - names, descriptions (the WHY), enforcement and config schemas - are in
:mod:`dask_platform.guard.policies`.

Property names are the engine's (camelCase), as both callers see them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from dask_platform.guard import iam_actions
from dask_platform.guard.secrets import scan_value
from dask_platform.guard.values import (
    as_list,
    first,
    get_path,
    is_mapping,
    is_open_cidr,
    normalise_cidr,
    number,
    policy_document,
    statements,
    truthy,
)

if TYPE_CHECKING:
    from pulumi_policy import PolicyResource, ResourceValidationArgs, StackValidationArgs

ReportViolation = Callable[..., None]

# --------------------------------------------------------------------------- resource types
# pulumi-aws v7 names; the V2 spellings are the aliases v7 keeps for stacks created on v6.

ACCESS_KEY = "aws:iam/accessKey:AccessKey"
LOGIN_PROFILE = "aws:iam/userLoginProfile:UserLoginProfile"
SERVICE_SPECIFIC_CREDENTIAL = "aws:iam/serviceSpecificCredential:ServiceSpecificCredential"
LONG_LIVED_CREDENTIALS = (ACCESS_KEY, LOGIN_PROFILE, SERVICE_SPECIFIC_CREDENTIAL)

ROLE = "aws:iam/role:Role"
IDENTITY_POLICY_TYPES = (
    "aws:iam/policy:Policy",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/groupPolicy:GroupPolicy",
)
RESOURCE_POLICY_TYPES = (
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:ecr/repositoryPolicy:RepositoryPolicy",
)
KMS_KEY_POLICY_TYPES = ("aws:kms/key:Key", "aws:kms/keyPolicy:KeyPolicy")

BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
PUBLIC_ACCESS_BLOCK_TYPES = ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",)
ENCRYPTION_TYPES = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
OWNERSHIP_TYPES = ("aws:s3/bucketOwnershipControls:BucketOwnershipControls",)
LIFECYCLE_TYPES = (
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2",
)
VERSIONING_TYPES = (
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketVersioningV2:BucketVersioningV2",
)
SCRATCH_COMPONENT = "dask-platform:storage:ScratchStorage"
DATA_BUCKET_COMPONENT = "dask-platform:storage:DataBucket"

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE = "aws:ec2/instance:Instance"
LAUNCH_CONFIGURATION = "aws:ec2/launchConfiguration:LaunchConfiguration"
METADATA_DEFAULTS = "aws:ec2/instanceMetadataDefaults:InstanceMetadataDefaults"
EKS_NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
ECR_REPOSITORY = "aws:ecr/repository:Repository"

SECURITY_GROUP_TYPES = (
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
)
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
VPC_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"

HELM_RELEASE_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")
STACK_TYPE = "pulumi:pulumi:Stack"

# The upstream dask-gateway chart's default when values do not set gateway.auth.type.
# ref: https://github.com/dask/dask-gateway/blob/main/resources/helm/dask-gateway/values.yaml
CHART_DEFAULT_AUTH = "simple"
STS_AUDIENCE = "sts.amazonaws.com"

# --------------------------------------------------------------------------- config


CONFIG_DEFAULTS: dict[str, Any] = {
    # Unset counts as production and as "no CIDR may be open": a pack run without config is as
    # strict as it can be. The policies' config schemas declare the same defaults.
    "production": True,
    "ingress_cidrs": [],
    "data_buckets": [],
    "scratch_bucket": None,
}


def _config(args: Any, key: str) -> Any:
    """A policy's configured value, or its schema default."""
    config = args.get_config() or {}
    return config[key] if key in config else CONFIG_DEFAULTS[key]


# --------------------------------------------------------------------------- long-lived keys


def no_long_lived_credentials_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type in LONG_LIVED_CREDENTIALS:
        kind = args.resource_type.rsplit(":", 1)[-1]
        report_violation(
            f"{kind} {args.name!r} creates a long-lived IAM credential; workloads use roles "
            "(IRSA, ECS task roles, instance profiles) and people use SSO, so no key or password "
            "is ever created to be copied"
        )


# --------------------------------------------------------------------------- IAM documents


def _principal_values(statement: Mapping[str, Any], kind: str) -> list[str]:
    principal = statement.get("Principal")
    if principal == "*":
        return ["*"]
    if isinstance(principal, dict):
        return [str(v) for v in as_list(principal.get(kind))]
    return []


def _oidc_statements(document: Mapping[str, Any]) -> list[tuple[dict[str, Any], str]]:
    out = []
    for statement in statements(document):
        if statement.get("Effect") != "Allow":
            continue
        for federated in _principal_values(statement, "Federated"):
            if ":oidc-provider/" in federated:
                out.append((statement, federated.split(":oidc-provider/", 1)[1]))
    return out


def _is_eks_issuer(host: str) -> bool:
    return host.startswith("oidc.eks.") and ".amazonaws.com/id/" in host


def _has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


def _check_oidc_trust(statement: dict[str, Any], host: str) -> list[str]:
    problems = []
    conditions = statement.get("Condition")
    conditions = conditions if isinstance(conditions, dict) else {}
    string_equals = conditions.get("StringEquals")
    string_equals = string_equals if isinstance(string_equals, dict) else {}
    sub_key, aud_key = f"{host}:sub", f"{host}:aud"

    for operator, block in conditions.items():
        if operator != "StringEquals" and isinstance(block, dict) and sub_key in block:
            problems.append(
                f"{sub_key} is matched with {operator}; only StringEquals pins one identity"
            )

    subs = as_list(string_equals.get(sub_key))
    if not subs:
        problems.append(
            f"no StringEquals on {sub_key}: any identity the issuer signs could assume it"
        )
    elif len(subs) > 1:
        problems.append(
            f"StringEquals {sub_key} lists {len(subs)} subjects; a role belongs to exactly one "
            "service account"
        )
    else:
        sub = str(subs[0])
        if _has_wildcard(sub):
            problems.append(f"{sub_key} {sub!r} contains a wildcard")
        elif _is_eks_issuer(host) and not (
            sub.startswith("system:serviceaccount:") and len(sub.split(":")) == 4
        ):
            problems.append(
                f"{sub_key} {sub!r} is not one service account "
                "(system:serviceaccount:<namespace>:<name>)"
            )

    auds = [str(a) for a in as_list(string_equals.get(aud_key))]
    if not auds:
        problems.append(f"no StringEquals on {aud_key}: tokens minted for other audiences work")
    elif _is_eks_issuer(host) and auds != [STS_AUDIENCE]:
        problems.append(f"{aud_key} must be exactly {STS_AUDIENCE!r} (got {auds})")
    elif any(_has_wildcard(a) for a in auds):
        problems.append(f"{aud_key} {auds} contains a wildcard")
    return problems


def oidc_trust_exact_subject_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type != ROLE:
        return
    document = policy_document(args.props.get("assumeRolePolicy"))
    if document is None:
        return
    for statement, host in _oidc_statements(document):
        sid = statement.get("Sid") or "(no Sid)"
        for problem in _check_oidc_trust(statement, host):
            report_violation(f"trust statement {sid}: {problem}")


def _documents(args: ResourceValidationArgs) -> list[tuple[str, str, dict[str, Any]]]:
    """(where, kind, document) for every IAM document a resource carries."""
    props = args.props
    out: list[tuple[str, str, dict[str, Any]]] = []

    def add(where: str, kind: str, value: Any) -> None:
        document = policy_document(value)
        if document is not None:
            out.append((where, kind, document))

    if args.resource_type == ROLE:
        add("assumeRolePolicy", "trust", props.get("assumeRolePolicy"))
        for index, inline in enumerate(as_list(props.get("inlinePolicies"))):
            if is_mapping(inline):
                add(f"inlinePolicies[{index}].policy", "identity", inline.get("policy"))
    elif args.resource_type in IDENTITY_POLICY_TYPES:
        add("policy", "identity", props.get("policy"))
    elif args.resource_type in RESOURCE_POLICY_TYPES:
        add("policy", "resource", props.get("policy"))
    elif args.resource_type in KMS_KEY_POLICY_TYPES:
        add("policy", "kms-key", props.get("policy"))
    return out


def _wildcard_problems(kind: str, statement: dict[str, Any]) -> list[str]:
    if statement.get("Effect") != "Allow":
        return []
    problems = []
    actions = [str(a) for a in as_list(statement.get("Action"))]
    if "*" in actions:
        problems.append('grants Action "*" (every action of every service)')
    if "NotAction" in statement:
        problems.append("uses NotAction with Allow (grants everything not listed)")
    if kind in {"resource", "trust"} and any(p == "*" for p in _principal_values(statement, "AWS")):
        problems.append('allows Principal "*" (anyone)')
    if kind == "kms-key":
        # In a key policy "Resource": "*" means "this key": it is the only correct spelling.
        return problems
    resources = [str(r) for r in as_list(statement.get("Resource"))]
    if "NotResource" in statement:
        problems.append("uses NotResource with Allow (grants every resource not listed)")
    if "*" in resources and "*" not in actions:
        scopable = iam_actions.scopable_actions(actions)
        if scopable:
            shown = ", ".join(scopable[:6]) + (" ..." if len(scopable) > 6 else "")
            problems.append(
                f'grants Resource "*" for {len(scopable)} action(s) that can be scoped to ARNs: '
                f"{shown}"
            )
    return problems


def iam_no_wildcards_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    for where, kind, document in _documents(args):
        for index, statement in enumerate(statements(document)):
            sid = statement.get("Sid") or f"Statement[{index}]"
            for problem in _wildcard_problems(kind, statement):
                report_violation(f"{where} {sid}: {problem}")


# --------------------------------------------------------------------------- S3


def _bucket_keys(bucket: PolicyResource) -> set[str]:
    """What a companion's ``bucket`` input can hold for this bucket: its name (which is also its
    id in AWS) or its id."""
    keys = set()
    for prop in ("bucket", "id"):
        value = bucket.props.get(prop)
        if isinstance(value, str) and value:
            keys.add(value)
    return keys


def _bucket_name(bucket: PolicyResource) -> str:
    value = bucket.props.get("bucket")
    return str(value) if value else bucket.name


def _companions(
    resources: Iterable[PolicyResource], types: tuple[str, ...], bucket: PolicyResource
) -> list[PolicyResource]:
    keys = _bucket_keys(bucket)
    return [r for r in resources if r.resource_type in types and r.props.get("bucket") in keys]


def _buckets(args: StackValidationArgs) -> list[PolicyResource]:
    return [r for r in args.resources if r.resource_type in BUCKET_TYPES]


PUBLIC_ACCESS_FLAGS = (
    "blockPublicAcls",
    "blockPublicPolicy",
    "ignorePublicAcls",
    "restrictPublicBuckets",
)


def s3_bucket_companions_validator(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    for bucket in _buckets(args):
        name = _bucket_name(bucket)
        blocks = _companions(args.resources, PUBLIC_ACCESS_BLOCK_TYPES, bucket)
        if not blocks:
            report_violation(f"bucket {name}: no BucketPublicAccessBlock", bucket.urn)
        for block in blocks:
            off = [flag for flag in PUBLIC_ACCESS_FLAGS if not truthy(block.props.get(flag))]
            if off:
                report_violation(
                    f"bucket {name}: public-access-block {block.name} leaves "
                    f"{', '.join(off)} off (all four must be true)",
                    bucket.urn,
                )
        encryption = _companions(args.resources, ENCRYPTION_TYPES, bucket)
        if not encryption:
            report_violation(
                f"bucket {name}: no BucketServerSideEncryptionConfiguration", bucket.urn
            )
        for config in encryption:
            algorithms = [
                get_path(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm")
                for rule in as_list(config.props.get("rules"))
            ]
            if not any(algorithms):
                report_violation(
                    f"bucket {name}: encryption {config.name} sets no default sseAlgorithm",
                    bucket.urn,
                )
        ownership = _companions(args.resources, OWNERSHIP_TYPES, bucket)
        if not ownership:
            report_violation(
                f"bucket {name}: no BucketOwnershipControls (ACLs must be disabled)", bucket.urn
            )
        for control in ownership:
            setting = get_path(first(control.props.get("rule")), "objectOwnership")
            if setting != "BucketOwnerEnforced":
                report_violation(
                    f"bucket {name}: ownership {control.name} is {setting!r}; must be "
                    "'BucketOwnerEnforced' (ACLs disabled, IAM alone decides access)",
                    bucket.urn,
                )


def _parent_type(resource: PolicyResource) -> str | None:
    parent = resource.parent
    return parent.resource_type if parent is not None else None


def _covers_whole_bucket(rule: Any) -> bool:
    legacy_prefix = rule.get("prefix")
    if legacy_prefix:
        return False
    rule_filter = first(rule.get("filter"))
    if rule_filter is None:
        return True
    if not is_mapping(rule_filter):
        return False
    for key in rule_filter:
        value = rule_filter[key]
        if key == "prefix":
            if value:
                return False
        elif value not in (None, "", [], {}):
            return False
    return True


def _enabled_whole_bucket_rules(lifecycles: list[PolicyResource]) -> list[Any]:
    return [
        rule
        for lifecycle in lifecycles
        for rule in as_list(lifecycle.props.get("rules"))
        if is_mapping(rule) and rule.get("status") == "Enabled" and _covers_whole_bucket(rule)
    ]


def _positive(rule: Any, block: str, field: str) -> bool:
    return (number(get_path(first(rule.get(block)), field)) or 0) > 0


def scratch_bucket_lifecycle_validator(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    configured = _config(args, "scratch_bucket")
    scratch = [
        b
        for b in _buckets(args)
        if _parent_type(b) == SCRATCH_COMPONENT or (configured and _bucket_name(b) == configured)
    ]
    if configured and not any(_bucket_name(b) == configured for b in scratch):
        report_violation(f"scratch bucket {configured} (from the stack config) is not declared")
    for bucket in scratch:
        name = _bucket_name(bucket)
        rules = _enabled_whole_bucket_rules(_companions(args.resources, LIFECYCLE_TYPES, bucket))
        expiring = [r for r in rules if _positive(r, "expiration", "days")]
        aborting = [
            r
            for r in rules
            if _positive(r, "abortIncompleteMultipartUpload", "daysAfterInitiation")
        ]
        if not expiring:
            report_violation(
                f"scratch bucket {name}: no enabled whole-bucket lifecycle rule expiring objects "
                "after a number of days",
                bucket.urn,
            )
        if not aborting:
            report_violation(
                f"scratch bucket {name}: no enabled whole-bucket lifecycle rule aborting "
                "incomplete multipart uploads",
                bucket.urn,
            )


def data_buckets_protected_versioned_validator(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    configured = {str(b) for b in as_list(_config(args, "data_buckets"))}
    data = [
        b
        for b in _buckets(args)
        if _parent_type(b) == DATA_BUCKET_COMPONENT or _bucket_name(b) in configured
    ]
    declared = {_bucket_name(b) for b in data}
    for missing in sorted(configured - declared):
        report_violation(f"data bucket {missing} (managed in the stack config) is not declared")
    for bucket in data:
        name = _bucket_name(bucket)
        if not bucket.opts.protect:
            report_violation(
                f"data bucket {name} is not protect=True: `pulumi destroy` could delete shared "
                "data",
                bucket.urn,
            )
        statuses = [
            get_path(first(v.props.get("versioningConfiguration")), "status")
            for v in _companions(args.resources, VERSIONING_TYPES, bucket)
        ]
        if "Enabled" not in statuses:
            report_violation(
                f"data bucket {name} is not versioned (no BucketVersioning with status Enabled)",
                bucket.urn,
            )


# --------------------------------------------------------------------------- EC2 / EKS


def _metadata_problems(options: Any) -> list[str]:
    options = first(options)
    if not is_mapping(options):
        return ["no metadataOptions: IMDSv1 stays enabled and the hop limit is the default"]
    if options.get("httpEndpoint") == "disabled":
        return []  # no metadata service at all: nothing to borrow
    problems = []
    if options.get("httpTokens") != "required":
        problems.append(
            f"metadataOptions.httpTokens is {options.get('httpTokens')!r}; must be 'required' "
            "(IMDSv2 only)"
        )
    hops = number(options.get("httpPutResponseHopLimit"))
    if hops != 1:
        shown = "unset" if hops is None else f"{hops:g}"
        problems.append(
            f"metadataOptions.httpPutResponseHopLimit is {shown}; must be 1 so containers "
            "cannot reach the node's credentials"
        )
    return problems


def imdsv2_hop_limit_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type in (LAUNCH_TEMPLATE, INSTANCE, LAUNCH_CONFIGURATION):
        for problem in _metadata_problems(args.props.get("metadataOptions")):
            report_violation(problem)
    elif args.resource_type == METADATA_DEFAULTS:
        # The account/region defaults carry the same fields at the top level; "no-preference"
        # leaves AWS's own default (IMDSv1 allowed, hop limit 1 or 2 by AMI) in place.
        for problem in _metadata_problems(args.props):
            report_violation(f"instance metadata defaults: {problem}")
    elif args.resource_type == EKS_NODE_GROUP and not args.props.get("launchTemplate"):
        report_violation(
            "node group has no launchTemplate: EKS's default template allows IMDSv1 and a hop "
            "limit of 2, so pods could use the node role"
        )


def eks_secrets_encryption_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type != EKS_CLUSTER:
        return
    configs = [c for c in as_list(args.props.get("encryptionConfig")) if is_mapping(c)]
    encrypted = [
        c
        for c in configs
        if "secrets" in as_list(c.get("resources")) and get_path(first(c.get("provider")), "keyArn")
    ]
    if not encrypted:
        report_violation(
            "encryptionConfig does not envelope-encrypt 'secrets' with a KMS key (keyArn)"
        )


def eks_endpoint_restricted_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type != EKS_CLUSTER:
        return
    vpc = first(args.props.get("vpcConfig"))
    vpc = vpc if is_mapping(vpc) else {}
    # AWS's defaults: public endpoint on, open to 0.0.0.0/0.
    public = vpc.get("endpointPublicAccess")
    if public is not None and not truthy(public):
        return
    cidrs = [str(c) for c in as_list(vpc.get("publicAccessCidrs"))]
    if not cidrs:
        report_violation(
            "the public API endpoint is on with no publicAccessCidrs, which AWS opens to "
            "0.0.0.0/0; turn endpointPublicAccess off or list the operator networks"
        )
    for cidr in cidrs:
        if is_open_cidr(cidr):
            report_violation(f"publicAccessCidrs includes {cidr}: the Kubernetes API is open")


def eks_no_creator_admin_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type != EKS_CLUSTER:
        return
    access = first(args.props.get("accessConfig"))
    access = access if is_mapping(access) else {}
    # AWS's defaults when unset: the creator becomes an invisible cluster admin.
    bootstrap = access.get("bootstrapClusterCreatorAdminPermissions")
    if bootstrap is None or truthy(bootstrap):
        shown = "unset (AWS default: true)" if bootstrap is None else "true"
        report_violation(
            f"accessConfig.bootstrapClusterCreatorAdminPermissions is {shown}: whoever ran the "
            "first `up` becomes a cluster admin that no access entry shows, and the cluster is "
            "locked once that identity is gone; set it false and list eks.access.admin_role_arns"
        )
    mode = access.get("authenticationMode")
    if mode not in ("API", "API_AND_CONFIG_MAP"):
        report_violation(
            f"accessConfig.authenticationMode is {mode or 'unset'}: access entries need API or "
            "API_AND_CONFIG_MAP (the aws-auth ConfigMap alone cannot be managed before the "
            "cluster is reachable)"
        )


def ecr_scan_immutable_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type != ECR_REPOSITORY:
        return
    scanning = first(args.props.get("imageScanningConfiguration"))
    if not truthy(get_path(scanning, "scanOnPush")):
        report_violation("imageScanningConfiguration.scanOnPush is not true")
    mutability = args.props.get("imageTagMutability") or "MUTABLE"
    if mutability != "IMMUTABLE":
        report_violation(
            f"imageTagMutability is {mutability!r}; must be 'IMMUTABLE' so a tag pinned in a "
            "stack config always names the same image"
        )


def _ingress_cidrs(args: ResourceValidationArgs) -> list[tuple[str, str]]:
    """(where, cidr) for every ingress source CIDR a resource opens."""
    props, out = args.props, []
    if args.resource_type in SECURITY_GROUP_TYPES:
        for index, rule in enumerate(as_list(props.get("ingress"))):
            if not is_mapping(rule):
                continue
            for key in ("cidrBlocks", "ipv6CidrBlocks"):
                out += [(f"ingress[{index}]", str(c)) for c in as_list(rule.get(key))]
    elif args.resource_type == SECURITY_GROUP_RULE and props.get("type") == "ingress":
        for key in ("cidrBlocks", "ipv6CidrBlocks"):
            out += [(key, str(c)) for c in as_list(props.get(key))]
    elif args.resource_type == VPC_INGRESS_RULE:
        for key in ("cidrIpv4", "cidrIpv6"):
            if props.get(key):
                out.append((key, str(props.get(key))))
    return out


def no_open_ingress_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    allowed = {normalise_cidr(str(c)) for c in as_list(_config(args, "ingress_cidrs"))}
    for where, cidr in _ingress_cidrs(args):
        if is_open_cidr(cidr) and normalise_cidr(cidr) not in allowed:
            listed = ", ".join(sorted(allowed)) or "none"
            report_violation(
                f"{where} allows ingress from {cidr}; the stack config (network.ingress_cidrs, "
                f"ecs.access_cidrs) does not list it (allowed: {listed})"
            )


# --------------------------------------------------------------------------- credentials


def no_aws_keys_in_workloads_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type in LONG_LIVED_CREDENTIALS:
        return  # reported by no-long-lived-credentials; its outputs are the key itself
    for finding in scan_value("", args.props):
        report_violation(str(finding))


def no_aws_keys_in_stack_outputs_validator(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    for stack in (r for r in args.resources if r.resource_type == STACK_TYPE):
        for finding in scan_value("outputs", stack.props):
            report_violation(
                f"{finding} (stack outputs feed dask-cloudprovider and the clients)", stack.urn
            )


def _helm_values(props: Mapping[str, Any]) -> Any:
    values = props.get("values")
    return values if is_mapping(values) else {}


def _is_dask_gateway_chart(props: Mapping[str, Any]) -> bool:
    chart = props.get("chart")
    return isinstance(chart, str) and chart.rstrip("/").rsplit("/", 1)[-1] == "dask-gateway"


def gateway_auth_not_simple_in_production_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type not in HELM_RELEASE_TYPES or not _is_dask_gateway_chart(args.props):
        return
    if not _config(args, "production"):
        return
    auth = get_path(_helm_values(args.props), "gateway", "auth", "type") or CHART_DEFAULT_AUTH
    if auth == "simple":
        report_violation(
            "the dask-gateway release uses 'simple' auth (one shared password, no identity) in a "
            "production stack; use one of {custom, jupyterhub, kerberos}"
        )


# --------------------------------------------------------------------------- Karpenter

NODE_POOL_TYPES = ("kubernetes:karpenter.sh/v1:NodePool",)
KARPENTER_CHART = "karpenter"
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
# Karpenter's default when a NodePool does not constrain karpenter.sh/capacity-type.
# ref: https://karpenter.sh/docs/concepts/nodepools/ (spec.template.spec.requirements)
DEFAULT_CAPACITY_TYPES = ("on-demand",)
ALL_CAPACITY_TYPES = ("spot", "on-demand", "reserved")


def _chart_name(props: Mapping[str, Any]) -> str:
    chart = props.get("chart")
    return chart.rstrip("/").rsplit("/", 1)[-1] if isinstance(chart, str) else ""


def _pool_name(pool: PolicyResource) -> str:
    return str(get_path(pool.props, "metadata", "name") or pool.name)


def _pool_capacity_types(spec: Any) -> set[str]:
    """The capacity types a NodePool's requirements allow (Karpenter's defaults when unset)."""
    allowed = set(DEFAULT_CAPACITY_TYPES)
    for requirement in as_list(get_path(spec, "template", "spec", "requirements")):
        if not is_mapping(requirement) or requirement.get("key") != CAPACITY_TYPE_LABEL:
            continue
        values = {str(v) for v in as_list(requirement.get("values"))}
        operator = requirement.get("operator")
        if operator == "In":
            allowed = values
        elif operator == "NotIn":
            allowed = set(ALL_CAPACITY_TYPES) - values
        elif operator == "Exists":
            allowed = set(ALL_CAPACITY_TYPES)
    return allowed


def _node_pools(args: StackValidationArgs) -> list[PolicyResource]:
    return [r for r in args.resources if r.resource_type in NODE_POOL_TYPES]


def karpenter_nodepool_limits_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type not in NODE_POOL_TYPES:
        return
    limits = get_path(args.props, "spec", "limits")
    missing = [k for k in ("cpu", "memory") if not is_mapping(limits) or not limits.get(k)]
    if missing:
        report_violation(
            f"NodePool {get_path(args.props, 'metadata', 'name') or args.name} has no "
            f"spec.limits.{' and spec.limits.'.join(missing)}: nothing caps how many nodes it "
            "launches (a runaway cluster.scale() buys instances until the account quota)"
        )


def karpenter_spot_interruption_queue_validator(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    spot_pools = [
        p for p in _node_pools(args) if "spot" in _pool_capacity_types(p.props.get("spec"))
    ]
    if not spot_pools:
        return
    releases = [
        r
        for r in args.resources
        if r.resource_type in HELM_RELEASE_TYPES and _chart_name(r.props) == KARPENTER_CHART
    ]
    queues = [get_path(_helm_values(r.props), "settings", "interruptionQueue") for r in releases]
    if not any(queues):
        names = ", ".join(sorted(_pool_name(p) for p in spot_pools))
        report_violation(
            f"NodePool(s) {names} allow spot capacity but no karpenter release sets "
            "settings.interruptionQueue: without the SQS queue Karpenter never hears the "
            "two-minute spot notice, so workers die mid-task instead of draining",
            spot_pools[0].urn,
        )


def _scheduler_pod(props: Mapping[str, Any]) -> tuple[dict[str, str], list[Any]]:
    """(nodeSelector, tolerations) the dask-gateway chart gives scheduler pods."""
    pod = get_path(_helm_values(props), "gateway", "backend", "scheduler", "extraPodConfig")
    selector = get_path(pod, "nodeSelector")
    selector = {str(k): str(selector[k]) for k in selector} if is_mapping(selector) else {}
    return selector, [t for t in as_list(get_path(pod, "tolerations")) if is_mapping(t)]


def _tolerates(tolerations: list[Any], taint: Any) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") not in (None, "", taint.get("effect")):
            continue
        operator = toleration.get("operator") or "Equal"
        if operator == "Exists" and toleration.get("key") in (None, "", taint.get("key")):
            return True
        if (
            operator == "Equal"
            and toleration.get("key") == taint.get("key")
            and str(toleration.get("value") or "") == str(taint.get("value") or "")
        ):
            return True
    return False


def _pools_for(
    pools: list[PolicyResource], selector: dict[str, str], tolerations: list[Any]
) -> list[tuple[PolicyResource, set[str]]]:
    """The NodePools a pod with this nodeSelector and these tolerations can get a node from,
    each with the capacity types it could get there."""
    out = []
    for pool in pools:
        spec = pool.props.get("spec")
        labels = get_path(spec, "template", "metadata", "labels")
        labels = {str(k): str(labels[k]) for k in labels} if is_mapping(labels) else {}
        taints = [t for t in as_list(get_path(spec, "template", "spec", "taints")) if is_mapping(t)]
        if not all(_tolerates(tolerations, t) for t in taints):
            continue
        capacity = _pool_capacity_types(spec)
        if CAPACITY_TYPE_LABEL in selector:
            capacity &= {selector[CAPACITY_TYPE_LABEL]}
        other = {k: v for k, v in selector.items() if k != CAPACITY_TYPE_LABEL}
        if capacity and all(labels.get(k) == v for k, v in other.items()):
            out.append((pool, capacity))
    return out


def _gateway_releases(args: StackValidationArgs) -> list[PolicyResource]:
    return [
        r
        for r in args.resources
        if r.resource_type in HELM_RELEASE_TYPES and _is_dask_gateway_chart(r.props)
    ]


def schedulers_on_demand_only_validator(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    pools = _node_pools(args)
    for release in _gateway_releases(args):
        selector, tolerations = _scheduler_pod(release.props)
        for pool, capacity in _pools_for(pools, selector, tolerations):
            if "spot" in capacity:
                report_violation(
                    f"Dask schedulers (nodeSelector {selector or 'none'}) can get a spot node "
                    f"from NodePool {_pool_name(pool)}: a spot interruption loses the scheduler "
                    "and with it the whole Dask cluster; select karpenter.sh/capacity-type: "
                    "on-demand or a pool that allows only on-demand",
                    release.urn,
                )


def _sets_do_not_disrupt(source: str) -> bool:
    """Whether gateway config source builds a mapping that carries karpenter.sh/do-not-disrupt:
    "true" (the key as the literal or as the name DO_NOT_DISRUPT_ANNOTATION of
    dask_platform.placement) and names ``scheduler_extra_pod_annotations``.

    A static screen for the policy pack, which cannot run dask-gateway-server; `plan` proves the
    annotation on the scheduler pods the upstream controller builds
    (dask_platform.gateway_pods.placement_problems)."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    if "scheduler_extra_pod_annotations" not in source:
        return False
    for node in ast.walk(tree):
        if not isinstance(node, ast.Dict):
            continue
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:  # a ``**mapping`` entry
                continue
            names_annotation = (isinstance(key, ast.Constant) and key.value == DO_NOT_DISRUPT) or (
                isinstance(key, ast.Name | ast.Attribute)
                and (getattr(key, "id", None) or getattr(key, "attr", None))
                == "DO_NOT_DISRUPT_ANNOTATION"
            )
            if names_annotation and isinstance(value, ast.Constant) and value.value == "true":
                return True
    return False


def scheduler_do_not_disrupt_validator(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    pools = _node_pools(args)
    for release in _gateway_releases(args):
        selector, tolerations = _scheduler_pod(release.props)
        reachable = _pools_for(pools, selector, tolerations)
        if not reachable:
            continue  # schedulers never run on nodes Karpenter manages
        extra = get_path(_helm_values(release.props), "gateway", "extraConfig")
        sources = [str(extra[k]) for k in extra] if is_mapping(extra) else [str(extra or "")]
        if not any(_sets_do_not_disrupt(source) for source in sources):
            names = ", ".join(sorted(_pool_name(p) for p, _ in reachable))
            report_violation(
                f"Dask schedulers run on Karpenter NodePool(s) {names} but the gateway config "
                f'(gateway.extraConfig) does not annotate them {DO_NOT_DISRUPT}: "true"; '
                "consolidation or expiry would remove the node and lose the whole Dask cluster",
                release.urn,
            )


# --------------------------------------------------------------------------- object stores

SECRET = "aws:secretsmanager/secret:Secret"  # noqa: S105 (a resource type)
ROLE_POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
PRINCIPAL_POLICY_ATTACHMENTS = (
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
    "aws:iam/userPolicyAttachment:UserPolicyAttachment",
    "aws:iam/policyAttachment:PolicyAttachment",
)
TEAM_TAG = "dask-platform/team"
READ_SECRET_ACTION = "secretsmanager:getsecretvalue"  # noqa: S105 (an IAM action)


def _reads_secret(statement: Mapping[str, Any]) -> bool:
    import fnmatch

    return statement.get("Effect") == "Allow" and any(
        fnmatch.fnmatchcase(READ_SECRET_ACTION, str(a).lower())
        for a in as_list(statement.get("Action"))
    )


def _store_secrets(args: StackValidationArgs) -> dict[str, tuple[str, list[str]]]:
    """Secret ARN -> (store, allowed teams), from the tags the ObjectStores component sets."""
    from dask_platform.object_stores import OBJECT_STORE_TAG, TEAMS_TAG

    out = {}
    for secret in (r for r in args.resources if r.resource_type == SECRET):
        store = get_path(secret.props, "tags", OBJECT_STORE_TAG)
        if store and secret.props.get("arn"):
            teams = str(get_path(secret.props, "tags", TEAMS_TAG) or "").split()
            out[str(secret.props["arn"])] = (str(store), teams)
    return out


def _secrets_granted(document: Any, secrets: Mapping[str, Any]) -> list[str]:
    import fnmatch

    granted = []
    for statement in statements(document):
        if not _reads_secret(statement):
            continue
        for resource in as_list(statement.get("Resource")):
            granted += [a for a in secrets if fnmatch.fnmatchcase(a, str(resource))]
    return sorted(set(granted))


def object_store_key_per_team_validator(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    secrets = _store_secrets(args)
    if not secrets:
        return
    roles: dict[str, PolicyResource] = {}
    for each in (r for r in args.resources if r.resource_type == ROLE):
        for key in ("name", "id", "arn"):
            if each.props.get(key):
                roles[str(each.props[key])] = each
    # (where, document, holder): holder is the role, a team name (unattached policy) or None.
    grants: list[tuple[str, Any, Any]] = []
    policies = {}
    for resource in args.resources:
        if resource.resource_type == "aws:iam/policy:Policy" and resource.props.get("arn"):
            policies[str(resource.props["arn"])] = resource
        elif resource.resource_type == "aws:iam/rolePolicy:RolePolicy":
            holder = roles.get(str(resource.props.get("role")))
            grants.append((resource.name, policy_document(resource.props.get("policy")), holder))
        elif resource.resource_type == ROLE:
            for index, inline in enumerate(as_list(resource.props.get("inlinePolicies"))):
                document = policy_document(inline.get("policy") if is_mapping(inline) else None)
                grants.append((f"{resource.name}.inlinePolicies[{index}]", document, resource))
    attached: set[str] = set()
    for resource in args.resources:
        policy = policies.get(str(resource.props.get("policyArn")))
        if policy is None:
            continue
        document = policy_document(policy.props.get("policy"))
        if resource.resource_type == ROLE_POLICY_ATTACHMENT:
            attached.add(policy.name)
            holder = roles.get(str(resource.props.get("role")))
            grants.append((f"{policy.name} (attached by {resource.name})", document, holder))
        elif resource.resource_type in PRINCIPAL_POLICY_ATTACHMENTS:
            attached.add(policy.name)
            grants.append((f"{policy.name} (attached by {resource.name})", document, None))
    for policy in policies.values():
        if policy.name not in attached:
            # Not attached (yet): judged by the team it is tagged for.
            team = get_path(policy.props, "tags", TEAM_TAG)
            grants.append((policy.name, policy_document(policy.props.get("policy")), team))
    for where, document, holder in grants:
        if document is None:
            continue
        if isinstance(holder, str) or holder is None:
            team, who = holder, f"policy {where}"
        else:
            team = get_path(holder.props, "tags", TEAM_TAG)
            who = f"role {holder.props.get('name') or holder.name} via {where}"
        for arn in _secrets_granted(document, secrets):
            store, allowed = secrets[arn]
            if team is None or team not in allowed:
                report_violation(
                    f"{who} ({f'team {team}' if team else 'no team'}) can read the key of object "
                    f"store {store!r} ({arn}), which is granted to: {', '.join(allowed) or 'none'};"
                    " a store's key is readable by the roles of its own teams only"
                )


__all__ = [
    "data_buckets_protected_versioned_validator",
    "ecr_scan_immutable_validator",
    "eks_endpoint_restricted_validator",
    "eks_no_creator_admin_validator",
    "eks_secrets_encryption_validator",
    "gateway_auth_not_simple_in_production_validator",
    "iam_no_wildcards_validator",
    "imdsv2_hop_limit_validator",
    "karpenter_nodepool_limits_validator",
    "karpenter_spot_interruption_queue_validator",
    "no_aws_keys_in_stack_outputs_validator",
    "no_aws_keys_in_workloads_validator",
    "no_long_lived_credentials_validator",
    "no_open_ingress_validator",
    "object_store_key_per_team_validator",
    "oidc_trust_exact_subject_validator",
    "s3_bucket_companions_validator",
    "scheduler_do_not_disrupt_validator",
    "schedulers_on_demand_only_validator",
    "scratch_bucket_lifecycle_validator",
]
