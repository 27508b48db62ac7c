"""The local platform's outputs: the Pulumi program's exports plus a named local overlay.

``outputs.json`` (and ``sites/<site>.json``) has every key ``pulumi stack output --json`` has
for the local config's stack: the program's exports as the evaluation resolved them, with the
emulator's identifiers (:meth:`dask_platform.local.provision.Provisioned.translate`), then

* :data:`ABSENT_LOCALLY`: exports of resources with no local counterpart (EKS access, the VPC,
  Karpenter, ECS/EC2 for dask-cloudprovider) are ``null``;
* :func:`local_overlay`: what is a local process instead of an AWS resource (the gateway's
  addresses, the site's authentication), and keys only the local platform has (the emulator's
  endpoint, token files, users, state paths).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dask_platform.local.config import LocalSettings
from dask_platform.local.provision import Provisioned

ABSENT_LOCALLY = (
    "cluster_name",
    "kubeconfig",
    "karpenter_interruption_queue",
    "karpenter_node_pools",
    "vpc_id",
    "private_subnet_ids",
    "ec2_ami_id",
    "ec2_imdsv2_required",
    "ec2_instance_profile_arns",
    "ecs_analyst_groups",
    "ecs_cluster_arn",
    "ecs_cluster_name",
    "ecs_execution_role_arn",
    "ecs_fargate_spot",
    "ecs_gpu",
    "ecs_log_group",
    "ecs_operator_group",
    "ecs_security_group_id",
    "ecs_task_role_arns",
)
"""Exports naming resources the local platform does not have: ``null`` locally."""


@dataclass(frozen=True)
class LocalSiteOverlay:
    """One site's local-only values (see :func:`local_overlay`)."""

    site: Mapping[str, Any]  # the ``site`` export as this site's gateway answers (name, auth)
    gateway_port: int
    aws_endpoint_url: str
    service_account_token_files: Mapping[str, str]
    users: Mapping[str, list[str]]
    state_dir: Path
    site_outputs: Mapping[str, str]
    object_stores: Mapping[str, Any] | None = None


def local_overlay(overlay: LocalSiteOverlay, skipped: Mapping[str, str]) -> dict[str, Any]:
    """The keys that replace or extend the program's exports on the local platform."""
    replaced: dict[str, Any] = {
        "gateway_address": f"http://127.0.0.1:{overlay.gateway_port}",
        "gateway_proxy_address": f"gateway://127.0.0.1:{overlay.gateway_port}",
        "site": dict(overlay.site),
    }
    if overlay.object_stores is not None:
        replaced["object_stores"] = dict(overlay.object_stores)  # + local_endpoint_url
    return {
        **replaced,
        # Local-only.
        "aws_endpoint_url": overlay.aws_endpoint_url,
        "service_account_token_files": dict(overlay.service_account_token_files),
        "users": dict(overlay.users),
        "not_provisioned": dict(skipped),
        "state_dir": str(overlay.state_dir),
        "site_outputs": dict(overlay.site_outputs),
    }


def local_outputs(provisioned: Provisioned, overlay: LocalSiteOverlay) -> dict[str, Any]:
    """The program's exports (emulator identifiers), :data:`ABSENT_LOCALLY` as ``null``, then
    :func:`local_overlay`."""
    exported: dict[str, Any] = provisioned.translate(provisioned.evaluation.outputs)
    return {
        **exported,
        **dict.fromkeys(ABSENT_LOCALLY),
        **local_overlay(overlay, provisioned.skipped),
    }


def site_auth(local: LocalSettings, issuer_url: str) -> dict[str, Any]:
    """How a local gateway authenticates users, as the ``site`` output says it: the local
    identity provider's bearer tokens (``custom``/OIDC), or each user's own password over
    HTTP Basic (``simple``)."""
    if local.gateway_auth == "oidc":
        return {
            "type": "custom",
            "oidc": {
                "issuer": issuer_url,
                "audience": local.oidc.audience,
                "client_id": local.oidc.client_id,
                "groups_claim": local.oidc.groups_claim,
            },
        }
    return {"type": "simple"}
