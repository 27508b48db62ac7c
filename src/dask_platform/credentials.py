"""The one rule every path enforces: no key, token or password travels to a Dask worker.

Workers get S3 access from their team's role (IRSA on EKS, task role on ECS, instance profile
on EC2). Anything that would let a key, a token, or a redirected identity ride along in an
environment mapping is refused with a clear error, never silently stripped: cluster options are
stored by the gateway and every process of the cluster sees them. Values are normalised to the
strings a process environment holds, and what no process environment can hold (a name with
``=``, a NUL byte, a value too large to ``exec``) is refused up front, so a cluster request fails
at submission and not later with "failed to start, see logs". This module is dependency-free
so the gateway image can import it.
"""

from __future__ import annotations

import re
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


SECRET_NAME_PARTS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "CONNECTION_STRING")
"""A variable whose upper-cased name contains one of these carries a secret."""

SECRET_NAME_SUFFIXES = ("_KEY", "_PWD")  # MYSQL_PWD; the shell's PWD/OLDPWD do not match
"""A variable whose upper-cased name ends in one of these carries a secret (API_KEY, *__KEY of
Dask's TLS settings, PRIVATE_KEY, ...)."""

AUTH_ENV_VARS = frozenset(
    {
        # JupyterHub's single-user server environment: the hub token authenticates as the user.
        # ref: https://jupyterhub.readthedocs.io/en/stable/reference/spawners.html
        "JUPYTERHUB_API_TOKEN",
        "JPY_API_TOKEN",
        "JUPYTERHUB_CLIENT_ID",
        "JUPYTERHUB_SSL_KEYFILE",
        "JUPYTERHUB_SSL_CERTFILE",
        "JUPYTERHUB_SSL_CLIENT_CA",
        # dask-gateway-server's own secrets (the state encryption keys and the proxy's token).
        # ref: https://gateway.dask.org/install-local.html
        "DASK_GATEWAY_ENCRYPT_KEYS",
        "DASK_GATEWAY_PROXY_TOKEN",
    }
)
"""JupyterHub's and Dask Gateway's own auth variables (beyond what the name rules catch)."""

AUTH_ENV_PREFIXES = (
    "JUPYTERHUB_OAUTH_",
    # The client's auth config as environment (dask config: gateway.auth.type/kwargs).
    # ref: https://gateway.dask.org/authentication.html
    "DASK_GATEWAY__AUTH__",
)

SAFE_ENV_VARS = frozenset(
    {
        # Set by the python container images: the fingerprint of the CPython release key
        # (public). ref: https://github.com/docker-library/python
        "GPG_KEY",
        # Hugging Face tokenizers' thread switch ("true"/"false"), no secret.
        "TOKENIZERS_PARALLELISM",
    }
)
"""Names the secret rules would match that are known to carry no secret."""

# ref: Kubernetes' IsEnvVarName (k8s.io/apimachinery/pkg/util/validation): letters, digits,
# '_', '-', '.', not starting with a digit - the names every Kubernetes version and every
# process environment accept.
ENV_NAME_PATTERN = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
ENV_NAME_RULE = "letters, digits, '_', '-' or '.', not starting with a digit"

MAX_VALUE_BYTES = 32 * 1024
"""Largest value (UTF-8 bytes) of one variable. Linux refuses to ``exec`` a process with one
``NAME=value`` string above 128 KiB (MAX_ARG_STRLEN) and the options are stored by the gateway
and in the pod spec; data belongs in the team's scratch bucket. ref: man 2 execve, "Limits on
size of arguments and environment"."""

MAX_ENVIRONMENT_BYTES = 256 * 1024
"""Largest total (UTF-8 bytes of all ``NAME=value`` strings), well below the kernel's
ARG_MAX (a quarter of the stack limit, 2 MiB by default) that arguments share."""

SCALAR_TYPES = (bool, int, float)
"""Value types converted with ``str()`` (``False`` -> ``"False"``, which dask's config parser
reads back as the boolean); ``str`` passes unchanged; any other type is refused."""


def _is_aws(name: str) -> bool:
    return name.upper() in FORBIDDEN_ENV_VARS


def is_secret_name(name: str) -> bool:
    """Whether a variable of this name carries a secret or the notebook's own credentials."""
    upper = name.upper()
    if upper in SAFE_ENV_VARS:
        return False
    return (
        upper in FORBIDDEN_ENV_VARS
        or upper in AUTH_ENV_VARS
        or upper.startswith(AUTH_ENV_PREFIXES)
        or any(part in upper for part in SECRET_NAME_PARTS)
        or upper.endswith(SECRET_NAME_SUFFIXES)
    )


def _aws_problem(field: str, names: list[str]) -> str:
    return (
        f"{field}: {', '.join(names)} may not be set. Workers get S3 access from their team's "
        "IAM role (no key is ever copied), so AWS key and identity variables are refused "
        "rather than passed on. Remove them; allowed: any other variable."
    )


def _secret_problem(field: str, names: list[str]) -> str:
    return (
        f"{field}: {', '.join(names)} may not be set: they carry secrets (names containing "
        f"{', '.join(SECRET_NAME_PARTS)} or ending in {', '.join(SECRET_NAME_SUFFIXES)}, and "
        "JupyterHub's and Dask Gateway's own auth variables), and cluster options are stored by "
        "the gateway and seen by every process of the cluster. Pass only the configuration the "
        'workers need, e.g. environment={"MY_SETTING": "value"} instead of dict(os.environ); '
        "S3 access comes from the team's IAM role, and a secret a worker must use belongs in "
        "AWS Secrets Manager, read with that role."
    )


class InvalidEnvironmentError(ValueError):
    """An environment mapping a process environment cannot hold, or that carries secrets.

    ``problems`` holds one line per problem (all found at once); ``names`` the refused
    secret-carrying variable names.
    """

    def __init__(self, field: str, problems: list[str], names: Iterable[str] = ()) -> None:
        self.field = field
        self.problems = problems
        self.names = sorted(names)
        # One line: the gateway sends this message as an HTTP reason, which cannot hold "\n".
        super().__init__("; ".join(problems))


class ForbiddenEnvironmentError(InvalidEnvironmentError):
    """An environment mapping tried to carry AWS credentials, identity overrides or secrets."""

    def __init__(self, field: str, names: Iterable[str], problems: list[str] | None = None) -> None:
        names = sorted(names)
        if problems is None:
            problems = _secret_problems(field, names)
        super().__init__(field, problems, names)


def _secret_problems(field: str, names: list[str]) -> list[str]:
    aws = [n for n in names if _is_aws(n)]
    other = [n for n in names if not _is_aws(n)]
    return ([_aws_problem(field, aws)] if aws else []) + (
        [_secret_problem(field, other)] if other else []
    )


def forbidden_names(environment: Mapping[str, object] | Iterable[str]) -> list[str]:
    """The names in ``environment`` that must never reach a worker (case-insensitive)."""
    names = environment.keys() if isinstance(environment, Mapping) else environment
    return sorted(n for n in names if isinstance(n, str) and is_secret_name(n))


def checked_environment(environment: object, field: str = "environment") -> dict[str, str]:
    """``environment`` as a process environment: ``{name: value}``, both ``str``.

    ``None`` is an empty environment. Values of type bool, int and float become ``str(value)``.
    Raises :class:`ForbiddenEnvironmentError` (a ``ValueError``) when a name carries secrets
    (:func:`is_secret_name`), else :class:`InvalidEnvironmentError` (a ``ValueError``) for a
    name that is not an environment variable name (empty, ``=``, ...; Kubernetes' rule), a value
    of another type (None, list, mapping, ...), a NUL byte, a value above
    :data:`MAX_VALUE_BYTES` or a total above :data:`MAX_ENVIRONMENT_BYTES`. Every problem is in
    the one error, one line each, naming the field and the variable.
    ref: https://kubernetes.io/docs/tasks/inject-data-application/define-environment-variable-container/
    """
    if environment is None:
        return {}
    if not isinstance(environment, Mapping):
        raise InvalidEnvironmentError(
            field,
            [
                f"{field}: must be a mapping of variable names to strings, got "
                f"{type(environment).__name__}"
            ],
        )
    problems: list[str] = []
    result: dict[str, str] = {}
    secrets = forbidden_names(environment)
    total = 0
    for name, value in environment.items():
        if name in secrets:
            continue  # refused by name, whatever its value
        if not isinstance(name, str):
            problems.append(
                f"{field}: variable names are strings, got {name!r} ({type(name).__name__})"
            )
            continue
        if not name:
            problems.append(f"{field}: an empty variable name is not allowed ({ENV_NAME_RULE})")
            continue
        if "=" in name:
            problems.append(
                f"{field}: {name!r} is not a valid variable name: '=' separates a name from its "
                f"value in a process environment ({ENV_NAME_RULE})"
            )
            continue
        if not ENV_NAME_PATTERN.fullmatch(name):
            problems.append(f"{field}: {name!r} is not a valid variable name ({ENV_NAME_RULE})")
            continue
        if isinstance(value, str):
            text = value
        elif isinstance(value, SCALAR_TYPES):
            text = str(value)
        else:
            kind = "None" if value is None else type(value).__name__
            problems.append(
                f"{field}: {name} has a value of type {kind}; a process environment holds "
                "strings (str, or bool, int, float, which are converted)"
            )
            continue
        if "\x00" in text:
            problems.append(
                f"{field}: {name} contains a NUL byte, which no process environment can hold"
            )
            continue
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_VALUE_BYTES:
            problems.append(
                f"{field}: {name} is {size} bytes; a value may be at most {MAX_VALUE_BYTES} "
                "bytes (put data in the team's scratch bucket, not in the environment)"
            )
            continue
        total += len(name.encode()) + 1 + size
        result[name] = text
    if total > MAX_ENVIRONMENT_BYTES:
        problems.append(
            f"{field}: the variables total {total} bytes; an environment may hold at most "
            f"{MAX_ENVIRONMENT_BYTES} bytes"
        )
    if secrets:
        raise ForbiddenEnvironmentError(field, secrets, _secret_problems(field, secrets) + problems)
    if problems:
        raise InvalidEnvironmentError(field, problems)
    return result


def check_environment(environment: Mapping[str, object], field: str = "environment") -> None:
    """Raise as :func:`checked_environment` does if ``environment`` is not a safe environment."""
    checked_environment(environment, field=field)


def key_variables_present(environment: Mapping[str, str]) -> list[str]:
    """Key-material variables present (non-empty, any letter case) in a process environment,
    for verification: the names, never the values."""
    return sorted(k for k, v in environment.items() if k.upper() in KEY_ENV_VARS and v)
