"""The AWS emulator process: moto's server app behind a gate that closes moto's IAM gaps.

Run by :class:`dask_platform.local.emulator.Emulator` as
``python -m dask_platform.local.emulator_server --state-dir DIR``. It binds a free port on
127.0.0.1, bootstraps one IAM user with the AWS-managed ``AdministratorAccess`` policy (the
operator's identity, used only by provisioning and tests), turns moto's IAM enforcement ON and
writes ``emulator.json`` (endpoint, admin credentials, admin token; mode 0600).

With enforcement on, moto authorizes every signed call by the caller's IAM policies (Action
and Resource). The gate in front of it adds exactly what moto lacks and real AWS does:

* ``sts:AssumeRoleWithWebIdentity`` is an unsigned call in AWS (the token is the credential),
  but moto crashes on it under enforcement. The gate verifies the token as STS does - the
  issuer must be a registered OIDC provider, the signature must verify against the issuer's
  JWKS, ``aud`` must be one of the provider's client IDs, ``exp`` must lie ahead - evaluates the
  role's trust policy (Federated principal, ``<issuer>:sub``/``:aud`` conditions), and only then
  lets moto mint the session, with enforcement suspended for that one request.
* moto skips ``Condition`` blocks. The list operations (``s3:ListBucket`` and its variants) are
  where the team policies rely on one (``s3:prefix``), so the gate evaluates the caller's
  policies for them with the request's condition keys and refuses with ``AccessDenied``.
* Anonymous requests are refused (the platform has no public data), and moto's admin API
  (``/moto-api/``) plus the gate's own (``/dask-platform/``) need the admin token, so a worker
  cannot switch enforcement off.

Requests are served one at a time through the gate's lock, because suspending enforcement is a
process-wide setting in moto.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import signal
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ADMIN_USER = "emulator-admin"
ADMIN_POLICY_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"
ADMIN_TOKEN_HEADER = "X-Dask-Platform-Admin-Token"  # noqa: S105 (a header name)
READY_FILE = "emulator.json"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
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

StartResponse = Callable[..., Any]


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def sts_error(code: str, message: str, status: int = 403) -> tuple[int, str, bytes]:
    body = (
        f'<ErrorResponse xmlns="{STS_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{_xml_escape(message)}</Message></Error>"
        f"<RequestId>{secrets.token_hex(8)}</RequestId></ErrorResponse>"
    )
    return status, "text/xml", body.encode()


def s3_access_denied(message: str) -> tuple[int, str, bytes]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
        f"<Message>{_xml_escape(message)}</Message>"
        f"<RequestId>{secrets.token_hex(8)}</RequestId></Error>"
    )
    return 403, "application/xml", body.encode()


class WebIdentityRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Gate:
    """WSGI middleware in front of moto's app (see the module docstring)."""

    def __init__(
        self,
        app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
        admin_token: str,
        account_id: str,
        web_identity_duration: int | None,
    ) -> None:
        self.app = app
        self.admin_token = admin_token
        self.account_id = account_id
        self.web_identity_duration = web_identity_duration
        self.lock = threading.Lock()
        self.stats: Counter[str] = Counter()
        self.web_identity_by_role: Counter[str] = Counter()
        self._jwks_clients: dict[str, Any] = {}

    # ------------------------------------------------------------------ WSGI entry

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(("/moto-api", "/dask-platform/")):
            if not secrets.compare_digest(
                environ.get("HTTP_X_DASK_PLATFORM_ADMIN_TOKEN", ""), self.admin_token
            ):
                return self._respond(start_response, 403, "text/plain", b"admin token required\n")
            if path == "/dask-platform/stats":
                return self._respond(
                    start_response, 200, "application/json", json.dumps(self.snapshot()).encode()
                )
            return self._forward(environ, start_response, suspend_enforcement=False)

        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        credential = _credential_scope(authorization, query)
        if credential is None:
            return self._unsigned(environ, start_response, query)

        access_key_id, service = credential
        if service == "sts":
            body = _read_body(environ)
            action = _param(body, query, "Action") or "unknown"
            self._count(f"sts:{action}")
        elif service == "s3":
            denied = self._list_denied(environ, query, access_key_id)
            if denied is not None:
                self._count("s3:denied-by-condition")
                return self._respond(start_response, *s3_access_denied(denied))
        return self._forward(environ, start_response, suspend_enforcement=False)

    def _count(self, key: str) -> None:
        with self.lock:
            self.stats[key] += 1

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "counters": dict(self.stats),
                "web_identity_by_role": dict(self.web_identity_by_role),
            }

    # ------------------------------------------------------------------ unsigned requests

    def _unsigned(
        self, environ: dict[str, Any], start_response: StartResponse, query: dict[str, list[str]]
    ) -> Iterable[bytes]:
        body = _read_body(environ) if environ.get("REQUEST_METHOD") == "POST" else b""
        action = _param(body, query, "Action")
        if action != "AssumeRoleWithWebIdentity":
            self._count("anonymous:denied")
            return self._respond(
                start_response,
                *s3_access_denied("Anonymous requests are refused; sign the request."),
            )
        self._count("sts:AssumeRoleWithWebIdentity")
        params = _form(body, query)
        try:
            role_arn, duration = self._verify_web_identity(params)
        except WebIdentityRejected as exc:
            self._count("sts:AssumeRoleWithWebIdentity:rejected")
            return self._respond(start_response, *sts_error(exc.code, exc.message))
        if "DurationSeconds" not in params and duration is not None:
            params["DurationSeconds"] = str(duration)
            encoded = urllib.parse.urlencode(params).encode()
            environ["wsgi.input"] = io.BytesIO(encoded)
            environ["CONTENT_LENGTH"] = str(len(encoded))
            environ["QUERY_STRING"] = ""
            environ["REQUEST_METHOD"] = "POST"
            environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded; charset=utf-8"
        with self.lock:
            self.web_identity_by_role[role_arn] += 1
        return self._forward(environ, start_response, suspend_enforcement=True)

    def _verify_web_identity(self, params: dict[str, str]) -> tuple[str, int | None]:
        import jwt
        from moto.iam.models import iam_backends

        from dask_platform.iam import issuer_host
        from dask_platform.local.iam_eval import (
            Decision,
            Request,
            UnsupportedConditionError,
            evaluate,
        )

        token = params.get("WebIdentityToken", "")
        role_arn = params.get("RoleArn", "")
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise WebIdentityRejected("InvalidIdentityToken", f"malformed token: {exc}") from None
        issuer = str(unverified.get("iss", ""))
        host = issuer_host(issuer)
        provider_arn = f"arn:aws:iam::{self.account_id}:oidc-provider/{host}"
        backend = iam_backends[self.account_id]["aws"]
        provider = backend.open_id_providers.get(provider_arn)
        if provider is None:
            raise WebIdentityRejected(
                "InvalidIdentityToken",
                f"No OpenIDConnect provider found in your account for {issuer}",
            )
        try:
            signing_key = self._jwks_client(issuer).get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                signing_key.key,
                algorithms=["RS256"],
                audience=list(provider.client_id_list),
                issuer=issuer,
                options={"require": ["exp", "iat", "iss", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise WebIdentityRejected("ExpiredTokenException", "Token is expired") from None
        except jwt.PyJWTError as exc:
            raise WebIdentityRejected("InvalidIdentityToken", f"token rejected: {exc}") from None
        try:
            role = backend.get_role_by_arn(role_arn)
        except Exception:
            raise WebIdentityRejected(
                "AccessDenied",
                f"Not authorized to perform sts:AssumeRoleWithWebIdentity on {role_arn}",
            ) from None
        aud = claims["aud"]
        try:
            decision = evaluate(
                [_policy_document(role.assume_role_policy_document)],
                Request(
                    action="sts:AssumeRoleWithWebIdentity",
                    principal=("Federated", provider_arn),
                    context={f"{host}:sub": claims["sub"], f"{host}:aud": aud},
                ),
            )
        except UnsupportedConditionError as exc:
            raise WebIdentityRejected("AccessDenied", f"{role_arn}: {exc}") from None
        if decision is not Decision.ALLOW:
            raise WebIdentityRejected(
                "AccessDenied",
                f"Not authorized to perform sts:AssumeRoleWithWebIdentity: the trust policy of "
                f"{role_arn} does not allow sub={claims['sub']!r}",
            )
        requested = params.get("DurationSeconds")
        duration = int(requested) if requested else self.web_identity_duration
        max_duration = int(role.max_session_duration or 3600)
        if duration is not None and not 900 <= duration <= max_duration:
            raise WebIdentityRejected(
                "ValidationError",
                f"DurationSeconds {duration} must lie between 900 and the role's "
                f"MaxSessionDuration {max_duration}",
            )
        return role_arn, duration

    def _jwks_client(self, issuer: str) -> Any:
        import jwt

        client = self._jwks_clients.get(issuer)
        if client is None:
            discovery = issuer.rstrip("/") + "/.well-known/openid-configuration"
            with urllib.request.urlopen(discovery, timeout=5) as response:  # noqa: S310
                jwks_uri = json.load(response)["jwks_uri"]
            # PyJWKClient refetches the JWKS when it meets an unknown key id, which is how a
            # rotated signing key becomes valid here.
            client = jwt.PyJWKClient(jwks_uri, cache_keys=False, lifespan=60)
            self._jwks_clients[issuer] = client
        return client

    # ------------------------------------------------------------------ S3 list conditions

    def _list_denied(
        self, environ: dict[str, Any], query: dict[str, list[str]], access_key_id: str
    ) -> str | None:
        if environ.get("REQUEST_METHOD") not in {"GET", "HEAD"}:
            return None
        parts = environ.get("PATH_INFO", "").lstrip("/").split("/", 1)
        bucket = parts[0]
        if not bucket or (len(parts) > 1 and parts[1]) or not set(query) <= LIST_QUERY_KEYS:
            return None
        role_arn, documents = self._assumed_role_policies(access_key_id)
        if role_arn is None:
            return None  # not a session of a role: moto alone authorizes it
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

    def _assumed_role_policies(self, access_key_id: str) -> tuple[str | None, list[Any]]:
        from moto.iam.models import iam_backends
        from moto.sts.models import sts_backends

        with self.lock:
            sessions = list(sts_backends[self.account_id]["aws"].assumed_roles)
            match = next((s for s in sessions if s.access_key_id == access_key_id), None)
            if match is None:
                return None, []
            backend = iam_backends[self.account_id]["aws"]
            role_name = match.role_arn.split("/")[-1]
            documents: list[Any] = [
                _policy_document(backend.get_role_policy(role_name, name)[1])
                for name in backend.list_role_policies(role_name)
            ]
            attached, _ = backend.list_attached_role_policies(role_name, max_items=1000)
            for policy in attached:
                version = next(v for v in policy.versions if v.is_default)
                documents.append(_policy_document(version.document))
            if match.policy:
                documents.append(_policy_document(match.policy))
        return match.role_arn, documents

    # ------------------------------------------------------------------ plumbing

    def _forward(
        self, environ: dict[str, Any], start_response: StartResponse, suspend_enforcement: bool
    ) -> Iterable[bytes]:
        from moto import settings
        from moto.core.responses import ActionAuthenticatorMixin

        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        with self.lock:
            saved = (settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count)
            if suspend_enforcement:
                settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
            try:
                result = self.app(environ, capture)
                try:
                    chunks = list(result)
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
            finally:
                if suspend_enforcement:
                    settings.INITIAL_NO_AUTH_ACTION_COUNT = saved[0]
                    ActionAuthenticatorMixin.request_count = saved[1]
        start_response(captured["status"], captured["headers"])
        return chunks

    @staticmethod
    def _respond(
        start_response: StartResponse, status: int, content_type: str, body: bytes
    ) -> Iterable[bytes]:
        reason = {200: "OK", 400: "Bad Request", 403: "Forbidden"}.get(status, "Error")
        start_response(
            f"{status} {reason}",
            [("Content-Type", content_type), ("Content-Length", str(len(body)))],
        )
        return [body]


def _policy_document(document: Any) -> Any:
    if isinstance(document, dict):
        return document
    text = str(document)
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(urllib.parse.unquote(text))


def _credential_scope(authorization: str, query: dict[str, list[str]]) -> tuple[str, str] | None:
    """(access key id, service) of a SigV4-signed request, header or presigned URL."""
    scope = ""
    if "Credential=" in authorization:
        scope = authorization.split("Credential=", 1)[1].split(",", 1)[0].strip()
    elif "X-Amz-Credential" in query:
        scope = query["X-Amz-Credential"][0]
    parts = scope.split("/")
    if len(parts) < 4:
        return None
    return parts[0], parts[3]


def _read_body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body: bytes = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _form(body: bytes, query: dict[str, list[str]]) -> dict[str, str]:
    values = {k: v[0] for k, v in query.items()}
    values.update(
        {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(errors="replace")).items()}
    )
    return values


def _param(body: bytes, query: dict[str, list[str]], name: str) -> str | None:
    return _form(body, query).get(name)


# ---------------------------------------------------------------------- process entry point


def _bootstrap_admin(account_id: str) -> dict[str, str]:
    from moto.iam.models import iam_backends

    backend = iam_backends[account_id]["aws"]
    backend.create_user("us-east-1", ADMIN_USER)
    backend.attach_user_policy(ADMIN_POLICY_ARN, ADMIN_USER)
    key = backend.create_access_key(ADMIN_USER)
    return {"access_key_id": key.access_key_id, "secret_access_key": key.secret_access_key}


def serve(state_dir: Path, host: str, port: int, web_identity_duration: int | None) -> None:
    # AWS-managed policies (AdministratorAccess for the operator user) load only when asked.
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    from moto import settings
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    from dask_platform.local.processes import write_json_atomic

    admin = _bootstrap_admin(DEFAULT_ACCOUNT_ID)
    # Object store keys: GetSecretValue authorized against the secret's ARN, as in IAM.
    from dask_platform.local.moto_secrets import enforce_secret_resources

    enforce_secret_resources()
    # Enforcement on from the first request: moto's "number of unauthenticated requests
    # before enforcement" is 0. ref: https://docs.getmoto.org/en/latest/docs/iam.html
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    admin_token = secrets.token_urlsafe(32)
    gate = Gate(
        DomainDispatcherApplication(create_backend_app),
        admin_token=admin_token,
        account_id=DEFAULT_ACCOUNT_ID,
        web_identity_duration=web_identity_duration,
    )
    server = make_server(host, port, gate, threaded=True, request_handler=MotoRequestHandler)
    bound_port = server.socket.getsockname()[1]

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    write_json_atomic(
        state_dir / READY_FILE,
        {
            "endpoint": f"http://{host}:{bound_port}",
            "port": bound_port,
            "pid": os.getpid(),
            "account_id": DEFAULT_ACCOUNT_ID,
            "admin": admin,
            "admin_token": admin_token,
            "started": time.time(),
        },
    )
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True, help="Where emulator.json goes.")
    parser.add_argument("--host", default="127.0.0.1", help="Interface to bind (loopback).")
    parser.add_argument("--port", type=int, default=0, help="Port; 0 picks a free one.")
    parser.add_argument(
        "--web-identity-duration",
        type=int,
        default=None,
        help="Session seconds when AssumeRoleWithWebIdentity names none (STS's default: 3600).",
    )
    args = parser.parse_args(argv)
    try:
        serve(args.state_dir, args.host, args.port, args.web_identity_duration)
    except OSError as exc:
        print(f"emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
