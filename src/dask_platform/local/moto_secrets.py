"""Resource-level IAM for Secrets Manager in the emulator.

moto's IAM enforcement authorizes Secrets Manager calls against the resource ``*`` (its
``SecretsManagerResponse`` names no resource), so a policy granting GetSecretValue on one
secret's literal ARN - the only kind this platform writes - would be denied, and a grant on
``*`` allowed. Real IAM matches the secret's ARN. :func:`enforce_secret_resources` gives moto
that resource: the ARN of the request's ``SecretId`` (a name or an ARN), or ``*`` for calls
that name no secret (ListSecrets, CreateSecret's name is not yet an ARN).

Called by the emulator process before it serves (``dask_platform.local.emulator_server``).
ref: https://docs.aws.amazon.com/secretsmanager/latest/userguide/auth-and-access_iam-policies.html
"""

from __future__ import annotations

from typing import Any


def _secret_resource(response: Any) -> str:
    try:
        secret_id = response._get_param("SecretId")
    except Exception:  # a body that is not JSON: moto reports it itself
        return "*"
    if not secret_id:
        return "*"
    if str(secret_id).startswith("arn:"):
        return str(secret_id)
    try:
        secret = response.backend.secrets.get(secret_id)
    except Exception:  # no backend for the region yet
        return "*"
    return str(secret.arn) if secret is not None else "*"


def enforce_secret_resources() -> None:
    from moto.secretsmanager.responses import SecretsManagerResponse

    SecretsManagerResponse._determine_resource = _secret_resource  # type: ignore[attr-defined]
