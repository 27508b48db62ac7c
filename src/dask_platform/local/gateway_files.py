"""A local site's gateway files: the chart's rendered config file with the local overlay.

The file the API pod runs on EKS - the pinned chart rendered with the stack's values (the
ConfigMap's files, mounted as the chart mounts them) - then a few appended lines that call
:func:`dask_platform.local.webhook.configure_local_gateway` with ``overlay.json`` (the local
backend, the pod-identity webhook's part), then the site's ``extra_config`` files.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Mapping
from typing import Any

from dask_platform.gateway_pods import CONFIG_FILE, render_gateway, write_config_files
from dask_platform.iam import service_account_name
from dask_platform.local.config import LocalConfig, LocalSite
from dask_platform.local.object_stores import aws_config_path
from dask_platform.local.processes import free_port, write_json_atomic
from dask_platform.local.settings import LocalTimeouts
from dask_platform.local.state import StateDir


def gateway_overlay(
    state: StateDir,
    config: LocalConfig,
    site: LocalSite,
    *,
    aws_endpoint_url: str,
    issuer: Mapping[str, Any],
    team_role_arns: Mapping[str, str],
    proxy_port: int,
    container_image: str | None,
    timeouts: LocalTimeouts,
) -> dict[str, Any]:
    """overlay.json: what :func:`configure_local_gateway` needs (no secret)."""
    oidc = config.local.oidc
    return {
        "site": site.name,
        "state_dir": str(state.root),
        "gateway_dir": str(state.site_dir(site.name)),
        "api_port": free_port(),
        "proxy_port": proxy_port,
        "users_file": str(state.users_file),
        "aws_endpoint_url": aws_endpoint_url,
        # The platform AWS config (default endpoint, object store profiles): what the
        # scheduler and worker pods get mounted on EKS.
        "aws_config_file": str(aws_config_path(state.root)),
        "region": config.stack.region,
        "idle_timeout_seconds": config.local.idle_timeout_seconds,
        "no_client_timeout_seconds": config.local.no_client_timeout_seconds,
        "cluster_start_seconds": timeouts.cluster_start_seconds,
        "worker_start_seconds": timeouts.worker_start_seconds,
        "namespace": config.stack.gateway.namespace,
        # The ServiceAccount annotations: eks.amazonaws.com/role-arn on EKS.
        "service_accounts": {
            service_account_name(team): {
                "role_arn": arn,
                "token_file": issuer["token_files"][service_account_name(team)],
            }
            for team, arn in team_role_arns.items()
        },
        "auth": config.local.gateway_auth,
        "container_image": container_image,
        "oidc": {
            "issuer": issuer["url"],
            "audience": oidc.audience,
            "groups_claim": oidc.groups_claim,
            "jwks_refetch_seconds": oidc.jwks_refetch_seconds,
        },
    }


def write_gateway_files(
    state: StateDir, config: LocalConfig, site: LocalSite, overlay: dict[str, Any]
) -> None:
    """The site's directory (0700), SQLite file and Fernet key (0600), overlay.json and the
    config file the gateway runs."""
    site_dir = state.site_dir(site.name)
    # The gateway's state (SQLite: cluster options, TLS keys) is the operator's alone: 0600
    # files in 0700 directories. SQLite gives its journal the database file's mode.
    for directory in (state.gateway_dir, site_dir):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
    database = site_dir / "gateway.sqlite"
    database.touch(mode=0o600)
    database.chmod(0o600)
    key_file = site_dir / "encrypt-key"
    if not key_file.is_file():
        # Fernet key for the gateway's SQLite state (cluster TLS keys are stored in it).
        key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
    rendered = render_gateway(config.stack)
    config_file = write_config_files(rendered.gateway_files, state.config_dir(site.name))
    write_json_atomic(
        state.overlay_file(site.name), {**overlay, "gateway_env": rendered.gateway_env}
    )
    config_file.write_text(
        rendered.gateway_files[CONFIG_FILE].rstrip("\n")
        + "\n\n"
        + appended_source(str(state.overlay_file(site.name)), [str(p) for p in site.extra_config])
    )


def appended_source(overlay_path: str, extra_config: list[str]) -> str:
    """The lines appended to the chart's config file. Further config files come last and run
    in this file's namespace (they see ``c`` as the platform left it), as the chart exec()s
    further ``gateway.extraConfig`` entries on EKS."""
    extra = "".join(
        f"exec(compile(open({path!r}).read(), {path!r}, 'exec'))  # noqa: S102\n"
        for path in extra_config
    )
    return (
        "# Appended by `dask-platform local up`. Everything above is the chart's rendered\n"
        "# file, as the API pod runs it. The local overlay (dask_platform.local.webhook):\n"
        "# the local backend and the EKS pod-identity webhook's part; then the site's\n"
        "# extra_config files.\n"
        "from dask_platform.local.webhook import configure_local_gateway\n\n"
        f"configure_local_gateway(c, {overlay_path!r})  # noqa: F821\n" + extra
    )
