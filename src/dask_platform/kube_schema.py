"""Kubernetes objects checked against Kubernetes' own OpenAPI schemas and CRD schemas.

Built-in kinds: ``kubernetes-validate`` (the published JSON schemas per Kubernetes minor
version, strict: unknown fields are errors, as the API server's strict field validation).
Custom resources: the ``openAPIV3Schema`` of the CRD that defines them (jsonschema).

ref: https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema


def _kind(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind', '?')}/{meta.get('name', '?')}"


def validate_manifest(obj: Mapping[str, Any], kubernetes_version: str) -> list[str]:
    """Problems of one built-in object against Kubernetes ``kubernetes_version`` ("1.33").

    Returns ``["Kind/name: path: message", ...]``; empty when valid.
    """
    import kubernetes_validate

    version = (
        f"{kubernetes_version}.0" if kubernetes_version.count(".") == 1 else kubernetes_version
    )
    try:
        kubernetes_validate.validate(dict(obj), version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path) or "(top level)"
        return [f"{_kind(obj)}: {path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{_kind(obj)}: no Kubernetes {version} schema for {exc}"]
    return []


def crd_schemas(crds: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(apiVersion, kind): openAPIV3Schema}`` of every served version of the given CRDs."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for crd in crds:
        spec = crd["spec"]
        for version in spec["versions"]:
            if version.get("served", True):
                api_version = f"{spec['group']}/{version['name']}"
                schemas[(api_version, spec["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    return schemas


def validate_custom_resource(
    obj: Mapping[str, Any], schemas: Mapping[tuple[str, str], Mapping[str, Any]]
) -> list[str]:
    """Problems of a custom resource against its CRD's openAPIV3Schema (every error)."""
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    if key not in schemas:
        known = ", ".join(f"{a} {k}" for a, k in sorted(schemas))
        return [f"{_kind(obj)}: no CRD defines {key[0]} {key[1]} (known: {known})"]
    schema = _closed(schemas[key])
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{_kind(obj)}: {'.'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}"
        for e in sorted(validator.iter_errors(dict(obj)), key=lambda e: list(e.absolute_path))
    ]


def _closed(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema with unknown fields refused where the API server prunes them (structural
    schemas drop unknown fields silently; a misspelled field is a defect we want reported).
    ``metadata`` is left open (the API server validates it, not the CRD)."""

    def close(node: Any, path: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            out = {k: close(v, (*path, k)) for k, v in node.items()}
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
                and path[-2:] != ("properties", "metadata")
            ):
                out["additionalProperties"] = False
            return out
        if isinstance(node, list):
            return [close(v, path) for v in node]
        return node

    return close(dict(schema), ())
