"""Where a stack's configuration comes from: committed ``Pulumi.<stack>.yaml`` files (found by
name in a project directory) or the running Pulumi program (engine or mocks); the
``dask-platform:`` namespace, secret keys, and the rules that read sibling stacks' files.

ref: https://www.pulumi.com/docs/concepts/config/ (stack settings files, namespaces, secrets)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from dask_platform.config.errors import StackConfigError
from dask_platform.config.models import StackConfig
from dask_platform.config.rules import regional_owner_problems, validate_stack_config

NAMESPACE = "dask-platform"
"""The Pulumi config namespace (the project name in Pulumi.yaml)."""


def decode_config_value(value: Any) -> Any:
    """A config value as the engine hands it (a string; objects as JSON) back to its YAML type.
    A bare number stays a string: no top-level key is numeric, and an account id such as
    "111122223333" must not become an int."""
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return (
            value if isinstance(decoded, int | float) and not isinstance(decoded, bool) else decoded
        )
    return value


SECRET_KEYS = frozenset(
    {"gateway_simple_password", "gateway_jupyterhub_api_token", "object_store_keys"}
)
"""Keys that may only be set with ``pulumi config set --secret`` and are not part of the model
(the program reads them with ``require_secret``)."""


def split_namespace(raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Keep the ``dask-platform:`` keys (namespace stripped, secret keys dropped); other
    namespaces (aws:, kubernetes:, ...) pass untouched."""
    data: dict[str, Any] = {}
    for key, value in raw.items():
        namespace, _, name = key.partition(":")
        if not name:
            raise StackConfigError(
                [f"{key}: config keys must be namespaced, e.g. {NAMESPACE}:{key}"], source
            )
        if namespace == NAMESPACE and name not in SECRET_KEYS:
            data[name] = decode_config_value(value)
    return data


def secret_problems(raw: Mapping[str, Any], is_secret: Callable[[str], bool]) -> list[str]:
    """Secret keys must be encrypted, and present exactly when the config needs them."""
    problems = []
    for name in sorted(SECRET_KEYS):
        key = f"{NAMESPACE}:{name}"
        if key in raw and not is_secret(key):
            problems.append(
                f"{name}: stored in plain text; remove it and run "
                f"`pulumi config set --secret {name}` so it is encrypted"
            )
    gateway = decode_config_value(raw.get(f"{NAMESPACE}:gateway"))
    auth = gateway.get("auth") if isinstance(gateway, dict) else None
    auth_type = auth.get("type") if isinstance(auth, dict) else None
    for name, needed_by in (
        ("gateway_simple_password", "simple"),
        # The JupyterHub API token of the hub's `dask-gateway` service; the program puts it in
        # a Secret the API pod reads (nothing else creates one in the gateway namespace).
        ("gateway_jupyterhub_api_token", "jupyterhub"),
    ):
        present = f"{NAMESPACE}:{name}" in raw
        if auth_type == needed_by and not present:
            problems.append(
                f"{name}: required when gateway.auth.type is {needed_by!r}; set it with "
                f"`pulumi config set --secret {name}`"
            )
        if present and auth_type != needed_by:
            problems.append(f"{name}: only used when gateway.auth.type is {needed_by!r}; remove it")
    stores = decode_config_value(raw.get(f"{NAMESPACE}:object_stores"))
    has_keys = f"{NAMESPACE}:object_store_keys" in raw
    if isinstance(stores, list) and stores and not has_keys:
        problems.append(
            "object_store_keys: required when object_stores is set; set the key pairs with "
            "`pulumi config set --secret object_store_keys "
            '\'{"<store>": {"access_key_id": "...", "secret_access_key": "..."}}\'`'
        )
    if has_keys and not (isinstance(stores, list) and stores):
        problems.append("object_store_keys: only used when object_stores is set; remove it")
    return problems


def sibling_problems(project_dir: Path, stack: str, data: Mapping[str, Any]) -> list[str]:
    """Cross-stack rules: ``data`` (this stack's keys) against the other committed stacks of
    ``project_dir``, read from their files."""
    stacks: dict[str, Mapping[str, Any]] = {}
    for other in list_stacks(project_dir):
        if other == stack:
            continue
        try:
            stacks[other] = split_namespace(read_stack_file(project_dir, other), other)
        except StackConfigError:
            continue  # that stack's own load reports it
    stacks[stack] = data
    return [p for p in regional_owner_problems(stacks) if stack in p]


def stack_file(project_dir: Path, stack: str) -> Path:
    return project_dir / f"Pulumi.{stack}.yaml"


def list_stacks(project_dir: Path) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))


def read_stack_file(project_dir: Path, stack: str) -> dict[str, Any]:
    """The raw ``config:`` mapping of a committed stack file (namespaced keys)."""
    path = stack_file(project_dir, stack)
    if not path.is_file():
        known = ", ".join(list_stacks(project_dir)) or "none"
        raise StackConfigError([f"stack {stack!r}: no {path.name} (committed stacks: {known})"])
    return read_stack_path(path)


def read_stack_path(path: Path) -> dict[str, Any]:
    """The raw ``config:`` mapping of a stack-format YAML file at ``path``."""
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise StackConfigError([f"(file): not valid YAML: {exc}"], path.name) from None
    if not isinstance(document, dict):
        raise StackConfigError(["(top level): must be a mapping with a 'config:' key"], path.name)
    allowed = {"config", "secretsprovider", "encryptedkey", "encryptionsalt"}
    unknown = sorted(set(document) - allowed)
    if unknown:
        raise StackConfigError(
            [f"{k}: unknown top-level key; allowed: {', '.join(sorted(allowed))}" for k in unknown],
            path.name,
        )
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise StackConfigError(["config: must be a mapping of namespaced keys"], path.name)
    return config


def _file_value_is_secret(raw: Mapping[str, Any]) -> Callable[[str], bool]:
    def is_secret(key: str) -> bool:
        value = raw.get(key)
        return isinstance(value, dict) and set(value) == {"secure"}

    return is_secret


def load_stack_path(path: Path) -> StackConfig:
    """Validate a stack-format file without the Pulumi engine (secrets stay encrypted)."""
    raw = read_stack_path(path)
    return validate_stack_config(
        split_namespace(raw, path.name),
        path.name,
        extra_problems=secret_problems(raw, _file_value_is_secret(raw)),
    )


def load_stack_file(project_dir: Path, stack: str) -> StackConfig:
    """Validate the committed ``Pulumi.<stack>.yaml`` of ``project_dir`` (with the rules that
    span its sibling stacks)."""
    raw = read_stack_file(project_dir, stack)  # a clear error for an unknown stack name
    path = stack_file(project_dir, stack)
    data = split_namespace(raw, path.name)
    return validate_stack_config(
        data,
        path.name,
        extra_problems=secret_problems(raw, _file_value_is_secret(raw))
        + sibling_problems(project_dir, stack, data),
    )


def load_from_pulumi() -> StackConfig:
    """Load the running Pulumi program's config (engine or mocks) into a StackConfig.

    Reads every configured key, so an unknown ``dask-platform:`` key is reported rather than
    ignored (``pulumi.Config.get`` only ever sees the keys it is asked for).
    """
    import pulumi
    from pulumi.runtime import config as runtime_config

    raw: dict[str, Any] = dict(runtime_config.get_config_env())
    raw.update(runtime_config.CONFIG.get())
    source = f"Pulumi.{pulumi.get_stack()}.yaml"
    secret_keys = set(runtime_config.get_config_secret_keys_env())

    def is_secret(key: str) -> bool:
        return key in secret_keys or runtime_config.is_config_secret(key)

    from dask_platform.project import project_root

    data = split_namespace(raw, source)
    return validate_stack_config(
        data,
        source,
        extra_problems=secret_problems(raw, is_secret)
        + sibling_problems(project_root(), pulumi.get_stack(), data),
    )
