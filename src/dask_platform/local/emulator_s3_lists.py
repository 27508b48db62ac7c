"""The S3 list operations' ``Condition`` blocks, which moto skips: the gate evaluates the calling
role's policies for ``s3:ListBucket`` (and its variants) with the request's condition keys
(``s3:prefix``, ``s3:delimiter``, ``s3:max-keys``).

ref: https://docs.aws.amazon.com/AmazonS3/latest/userguide/list_amazons3.html
"""

from __future__ import annotations

from typing import Any

from dask_platform.local import emulator_moto

LIST_QUERY_KEYS = frozenset(
    {
        "list-type",
        "prefix",
        "delimiter",
        "max-keys",
        "continuation-token",
        "start-after",
        "encoding-type",
        "fetch-owner",
        "marker",
        "versions",
        "key-marker",
        "version-id-marker",
        "uploads",
        "upload-id-marker",
        "max-uploads",
        "optional-object-attributes",
        "x-id",
    }
)


def list_denied(
    account_id: str,
    environ: dict[str, Any],
    query: dict[str, list[str]],
    session: emulator_moto.Session | None,
) -> str | None:
    """Why the calling role's session may not list the bucket with the request's condition keys,
    or None when it may - or when the request is no list operation, or not signed by a role's
    session (then moto alone decides)."""
    if environ.get("REQUEST_METHOD") not in {"GET", "HEAD"}:
        return None
    parts = environ.get("PATH_INFO", "").lstrip("/").split("/", 1)
    bucket = parts[0]
    if not bucket or (len(parts) > 1 and parts[1]) or not set(query) <= LIST_QUERY_KEYS:
        return None
    if session is None:
        return None  # not a session of a role: moto alone authorizes it
    role_arn = session.role_arn
    documents = emulator_moto.role_policies(account_id, role_arn)
    if session.policy:
        documents.append(emulator_moto.policy_document(session.policy))
    from dask_platform.local.iam_eval import (
        Decision,
        Request,
        UnsupportedConditionError,
        evaluate,
    )

    action = (
        "s3:ListBucketVersions"
        if "versions" in query
        else "s3:ListBucketMultipartUploads"
        if "uploads" in query
        else "s3:ListBucket"
    )
    context: dict[str, str | list[str]] = {
        "aws:SecureTransport": "true" if environ.get("wsgi.url_scheme") == "https" else "false",
        "aws:PrincipalArn": role_arn,
    }
    for key in ("prefix", "delimiter", "max-keys"):
        if key in query:
            context[f"s3:{key}"] = query[key][0]
    try:
        decision = evaluate(
            documents,
            Request(action=action, resource=f"arn:aws:s3:::{bucket}", context=context),
        )
    except UnsupportedConditionError as exc:
        return f"{role_arn}: {exc} (the emulator denies what it cannot evaluate)"
    if decision is Decision.ALLOW:
        return None
    prefix = query.get("prefix", [""])[0]
    return (
        f"{role_arn} is not authorized to perform {action} on arn:aws:s3:::{bucket} "
        f"with prefix {prefix!r}"
    )
