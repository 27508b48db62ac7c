"""Finding AWS keys and literal secrets in resource properties.

Three kinds of finding, each of which means a credential would be copied somewhere a worker (or a
reader of the state file, a task definition, or instance metadata) can see it:

* an environment variable that carries AWS key material or chooses the identity
  (:data:`dask_platform.credentials.FORBIDDEN_ENV_VARS`) - whether given as a literal or pulled
  from a secret store, a worker with it is no longer limited to its team role;
* a literal value of an environment variable whose name says it is a secret (``*_PASSWORD``,
  ``*_TOKEN``, ...): such values belong in a Kubernetes Secret / ``valueFrom`` / ECS ``secrets``;
* text that *is* a credential: an AWS access key id (``AKIA``/``ASIA``), a PEM private key, or an
  ``aws_secret_access_key`` assignment - in any string, including JSON-in-a-string and the
  base64 user data of launch templates.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dask_platform.credentials import FORBIDDEN_ENV_VARS
from dask_platform.guard.values import is_list, is_mapping

# ref: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-unique-ids
ACCESS_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")
PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")
SECRET_KEY_ASSIGNMENT = re.compile(
    r"(?i)aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"
)
# A shell/env-file assignment of a forbidden variable, e.g. in user data or a command line.
_FORBIDDEN_ALTERNATION = "|".join(sorted(FORBIDDEN_ENV_VARS, key=len, reverse=True))
FORBIDDEN_ASSIGNMENT = re.compile(rf"(?<![A-Za-z0-9_])({_FORBIDDEN_ALTERNATION})\s*=\s*\S")

SECRET_NAME = re.compile(
    r"(?i)(password|passwd|secret|token|api[_-]?key|private[_-]?key|credential)"
)
# Names that mention a secret but carry a location or a switch, never the secret itself.
NOT_A_SECRET_SUFFIX = re.compile(r"(?i)(_file|_path|_dir|_url|_uri|_arn|_name|_enabled)$")

# Property names whose value is an environment: a {name: value} mapping or a list of
# {name, value | valueFrom} entries (Kubernetes env, ECS environment/secrets, dask-gateway's
# environment option, dask-cloudprovider's env_vars, Lambda's environment.variables).
ENV_KEYS = frozenset(
    {
        "env",
        "environment",
        "extraenv",
        "environment_variables",
        "environmentvariables",
        "env_vars",
        "default_environment",
        "variables",
        "secrets",
    }
)
USER_DATA_KEYS = frozenset({"userdata", "user_data", "userdatabase64"})


@dataclass(frozen=True)
class CredentialFinding:
    path: str
    what: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _check_env_entry(
    path: str, name: Any, value: Any, literal: bool
) -> Iterator[CredentialFinding]:
    if not isinstance(name, str):
        return
    if name.upper() in FORBIDDEN_ENV_VARS:
        yield CredentialFinding(
            path,
            f"sets {name}, an AWS key or identity variable; workers get S3 access from their "
            "team role and must never carry it",
        )
    elif (
        literal
        and isinstance(value, str)
        and value
        and SECRET_NAME.search(name)
        and not NOT_A_SECRET_SUFFIX.search(name)
    ):
        yield CredentialFinding(
            path,
            f"{name} is a secret given as a literal value; reference a secret store "
            "(valueFrom / secretKeyRef / ECS secrets / a Pulumi secret) instead",
        )


def _environment(path: str, env: Any) -> Iterator[CredentialFinding]:
    if is_mapping(env):
        for name in env:
            value = env[name]
            yield from _check_env_entry(_join(path, name), name, value, literal=True)
    elif is_list(env):
        for index, entry in enumerate(env):
            if is_mapping(entry) and "name" in entry:
                literal = "value" in entry
                value = entry["value"] if literal else None
                yield from _check_env_entry(_join(path, index), entry["name"], value, literal)


def _decode_user_data(text: str) -> str:
    """Launch templates take base64 user data; instances take either. Scan both forms."""
    compact = "".join(text.split())
    try:
        decoded = base64.b64decode(compact, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return text
    return f"{text}\n{decoded}"


def scan_text(path: str, text: str, assignments: bool = False) -> Iterator[CredentialFinding]:
    if ACCESS_KEY_ID.search(text):
        yield CredentialFinding(path, "contains an AWS access key id (AKIA.../ASIA...)")
    if PRIVATE_KEY.search(text):
        yield CredentialFinding(path, "contains a PEM private key")
    if SECRET_KEY_ASSIGNMENT.search(text):
        yield CredentialFinding(path, "contains an AWS secret access key")
    if assignments:
        for match in FORBIDDEN_ASSIGNMENT.finditer(text):
            yield CredentialFinding(
                path, f"assigns {match.group(1)}, an AWS key or identity variable"
            )
    stripped = text.strip()
    if stripped[:1] in "{[" and stripped[-1:] in "}]":
        try:
            embedded = json.loads(stripped)
        except ValueError:
            return
        yield from scan_value(path, embedded)


def scan_value(path: str, value: Any) -> Iterator[CredentialFinding]:
    """Every credential finding in a property tree (proxied or plain)."""
    if isinstance(value, str):
        yield from scan_text(path, value)
    elif is_mapping(value):
        for key in value:
            child = value[key]
            child_path = _join(path, key)
            lowered = str(key).lower()
            if lowered in ENV_KEYS:
                yield from _environment(child_path, child)
            if lowered in USER_DATA_KEYS and isinstance(child, str):
                yield from scan_text(child_path, _decode_user_data(child), assignments=True)
                continue
            yield from scan_value(child_path, child)
    elif is_list(value):
        for index, item in enumerate(value):
            yield from scan_value(_join(path, index), item)
