"""Object stores outside AWS S3 (OSN, Ceph): each store's key pair in its own Secrets Manager
secret, and per team the one policy that may read the secrets of that team's stores."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from dask_platform.config.models import ObjectStore
from dask_platform.iam import object_store_key_read_policy
from dask_platform.object_store_deploy import (
    AWS_CONFIG_MAP,
    render_aws_config,
    secret_name,
    secret_tags,
    store_profiles,
    store_secret_string,
    stores_of_team,
)


def _one_store(store: str, keys: str) -> str:
    return store_secret_string(keys, store)


@dataclass
class ObjectStoresArgs:
    stores: Sequence[ObjectStore]
    # The `object_store_keys` Pulumi secret (JSON: store -> key pair); stays a secret Output.
    keys: pulumi.Output[str]
    region: str
    name_prefix: str
    # Per team, the names of every role its workloads run as (IRSA, ECS task, EC2 instance).
    team_role_names: Mapping[str, Sequence[pulumi.Input[str]]]
    tags: dict[str, str] = field(default_factory=dict)


class ObjectStores(pulumi.ComponentResource):
    """A KMS key for the store secrets; per store a secret and its version (the key pair, a
    secret Output end to end); per team with stores a policy granting GetSecretValue on the
    literal ARNs of exactly those secrets, attached to each of the team's roles."""

    def __init__(
        self, name: str, args: ObjectStoresArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dask-platform:object-stores:ObjectStores", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.kms_key = aws.kms.Key(
            f"{name}-keys",
            description=f"Object store key pairs of {args.name_prefix} (Secrets Manager)",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=args.tags,
            opts=child,
        )
        self.secrets: dict[str, aws.secretsmanager.Secret] = {}
        for store in args.stores:
            secret = aws.secretsmanager.Secret(
                f"{name}-{store.name}",
                name=secret_name(args.name_prefix, store.name),
                description=f"Key pair of object store {store.name} ({store.endpoint_url}); "
                f"readable by the roles of: {', '.join(sorted(store.teams))}",
                kms_key_id=self.kms_key.arn,
                recovery_window_in_days=7,
                tags={**args.tags, **secret_tags(store.name, store.teams)},
                opts=child,
            )
            aws.secretsmanager.SecretVersion(
                f"{name}-{store.name}",
                secret_id=secret.id,
                # Only this store's pair; apply on a secret Output keeps it secret.
                secret_string=args.keys.apply(functools.partial(_one_store, store.name)),
                opts=child,
            )
            self.secrets[store.name] = secret

        self.team_policies: dict[str, aws.iam.Policy] = {}
        for team, role_names in args.team_role_names.items():
            stores = stores_of_team(args.stores, team)
            if not stores:
                continue
            document = pulumi.Output.all(
                self.kms_key.arn, *(self.secrets[s].arn for s in stores)
            ).apply(
                lambda values: json.dumps(
                    object_store_key_read_policy(list(values[1:]), values[0], args.region)
                )
            )
            policy = aws.iam.Policy(
                f"{name}-{team}",
                description=f"Read the key pairs of the object stores of {team}: "
                f"{', '.join(stores)}",
                policy=document,
                tags={**args.tags, "dask-platform/team": team},
                opts=child,
            )
            self.team_policies[team] = policy
            for index, role in enumerate(role_names):
                aws.iam.RolePolicyAttachment(
                    f"{name}-{team}-{index}", role=role, policy_arn=policy.arn, opts=child
                )

        self.secret_arns = {store: secret.arn for store, secret in self.secrets.items()}
        self.register_outputs(
            {
                "secret_arns": self.secret_arns,
                "team_policy_arns": {t: p.arn for t, p in self.team_policies.items()},
            }
        )


@dataclass
class ObjectStoreAwsConfigArgs:
    stores: Sequence[ObjectStore]
    secret_arns: Mapping[str, pulumi.Input[str]]
    namespace: pulumi.Input[str]


class ObjectStoreAwsConfig(pulumi.ComponentResource):
    """The platform AWS config (one profile per store, no key) as a ConfigMap in the gateway
    namespace; the chart values mount it into scheduler and worker pods."""

    def __init__(
        self, name: str, args: ObjectStoreAwsConfigArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dask-platform:object-stores:ObjectStoreAwsConfig", name, None, opts)
        names = [s.name for s in args.stores]
        text = pulumi.Output.all(*(args.secret_arns[n] for n in names)).apply(
            lambda arns: render_aws_config(
                store_profiles(args.stores, dict(zip(names, arns, strict=True)))
            )
        )
        self.config_map = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=AWS_CONFIG_MAP, namespace=args.namespace),
            data={"config": text},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"config_map": self.config_map.metadata.name})
