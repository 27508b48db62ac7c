"""The one rule every path enforces: no AWS key material travels to a Dask worker.

Workers get S3 access from their team's role (IRSA on EKS, task role on ECS, instance profile
on EC2). Anything that would let a key, or a redirected identity, ride along in an environment
mapping is refused with a clear error, never silently stripped. This module is dependency-free
so the gateway image can import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

KEY_ENV_VARS = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",  # boto2-era alias of AWS_SESSION_TOKEN, still honoured
    }
)
"""Variables that carry key material."""

IDENTITY_ENV_VARS = frozenset(
    {
        # Set by the platform (the EKS webhook, or the local overlay playing it) - a user who sets
        # them could point a worker at another team's role or a forged token file.
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_SESSION_NAME",
        # Redirect boto3 to credentials that are not the team role.
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
        "AWS_CREDENTIAL_PROCESS",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_EC2_METADATA_DISABLED",
    }
)
"""Variables that choose which identity a worker assumes; only the platform sets them."""

FORBIDDEN_ENV_VARS = KEY_ENV_VARS | IDENTITY_ENV_VARS


class ForbiddenEnvironmentError(ValueError):
    """An environment mapping tried to carry AWS credentials or identity overrides."""

    def __init__(self, field: str, names: Iterable[str]) -> None:
        self.field = field
        self.names = sorted(names)
        super().__init__(
            f"{field}: {', '.join(self.names)} may not be set. Workers get S3 access from their "
            "team's IAM role (no key is ever copied), so AWS key and identity variables are "
            "refused rather than passed on. Remove them; allowed: any other variable."
        )


def forbidden_names(environment: Mapping[str, object] | Iterable[str]) -> list[str]:
    """The names in ``environment`` that must never reach a worker (case-insensitive)."""
    names = environment.keys() if isinstance(environment, Mapping) else environment
    return sorted(n for n in names if str(n).upper() in FORBIDDEN_ENV_VARS)


def check_environment(environment: Mapping[str, object], field: str = "environment") -> None:
    """Raise :class:`ForbiddenEnvironmentError` if ``environment`` carries AWS credentials."""
    bad = forbidden_names(environment)
    if bad:
        raise ForbiddenEnvironmentError(field, bad)


def key_variables_present(environment: Mapping[str, str]) -> list[str]:
    """Key-material variables present (non-empty) in a process environment, for verification."""
    return sorted(k for k in KEY_ENV_VARS if environment.get(k))
