"""The AWS emulator process: moto's server app behind a gate that closes moto's IAM gaps.

Run by :class:`dask_platform.local.emulator.Emulator` as
``python -m dask_platform.local.emulator_server --state-dir DIR``. It binds a free port on
127.0.0.1, bootstraps one IAM user with the AWS-managed ``AdministratorAccess`` policy (the
operator's identity, used only by provisioning and tests), turns moto's IAM enforcement ON and
writes ``emulator.json`` (endpoint, admin credentials, admin token; mode 0600).

With enforcement on, moto authorizes every signed call by the caller's IAM policies (Action
and Resource). The gate in front of it adds exactly what moto lacks and real AWS does:

* Expired STS sessions are refused. moto compares a session's token but never its
  ``Expiration``; the gate refuses a request signed with a session whose expiration has passed
  (on the emulator's clock) with AWS's answer for the request's protocol: S3 ``400
  ExpiredToken`` "The provided token has expired."; query APIs (STS, IAM) ``403 ExpiredToken``;
  JSON APIs (ECS, ECR, Secrets Manager, ...) ``400 ExpiredTokenException``; REST-JSON APIs
  ``403 ExpiredTokenException``; EC2 ``400 RequestExpired``. botocore neither retries these
  nor refreshes on them (it refreshes ahead of ``Expiration`` on its own clock), so a client
  meets them exactly as on AWS.
* ``sts:AssumeRoleWithWebIdentity`` is an unsigned call in AWS (the token is the credential),
  but moto crashes on it under enforcement. The gate verifies the token as STS does - the
  issuer must be a registered OIDC provider, the signature must verify against the issuer's
  JWKS, ``aud`` must be one of the provider's client IDs, ``exp`` must lie ahead - evaluates the
  role's trust policy (Federated principal, ``<issuer>:sub``/``:aud`` conditions), checks
  ``DurationSeconds``, and only then lets moto mint the session, with authentication skipped
  for that one request (:func:`dask_platform.local.emulator_moto.unauthenticated`). Every
  exchange, accepted or refused, goes into the STS call log (``/dask-platform/sts-log``).
* moto skips ``Condition`` blocks. The list operations (``s3:ListBucket`` and its variants) are
  where the team policies rely on one (``s3:prefix``), so the gate evaluates the caller's
  policies for them with the request's condition keys and refuses with ``AccessDenied``.
* Anonymous requests are refused (the platform has no public data), and moto's admin API
  (``/moto-api/``) plus the gate's own (``/dask-platform/``) need the admin token, so a worker
  cannot switch enforcement off.

Requests are served concurrently (werkzeug's threaded server); no process-wide moto setting is
changed per request. The gate's admin API: ``GET stats`` (counters, requests in flight and
their peak), ``GET sts-log``, ``GET|POST clock`` (the emulator's clock; POST
``{"advance_seconds": n}`` moves it forward - it never goes back), ``GET|POST sts-settings``
(``minimum_session_seconds``, ``web_identity_session_seconds``).

ref: https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList
ref: https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html
"""

from __future__ import annotations

import argparse
import contextlib
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
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dask_platform.local import emulator_moto

ADMIN_USER = "emulator-admin"
ADMIN_POLICY_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"
ADMIN_TOKEN_HEADER = "X-Dask-Platform-Admin-Token"  # noqa: S105 (a header name)
READY_FILE = "emulator.json"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
# STS refuses DurationSeconds under 900. ref: API_AssumeRoleWithWebIdentity.html
STS_MINIMUM_SESSION_SECONDS = 900
# The lowest floor the emulator can be set to: tests lower the floor so a job runs across
# several credential lifetimes in real time (a deviation from AWS; see
# docs/explanation/local-stand-ins.md).
LOWEST_SESSION_SECONDS = 10
# How long the gate keeps a fetched JWKS, and the least time between two refetches for an
# unknown key id (PyJWKClient's cooldown): a verifier that caches keys as STS does (AWS does
# not publish its cache time; these are short so tests need not wait). An issuer must publish
# a key at least JWKS_CACHE_SECONDS before it signs with it (the local issuer does).
JWKS_CACHE_SECONDS = 10
JWKS_REFETCH_COOLDOWN_SECONDS = 10
STS_LOG_LIMIT = 10000
S3_EXPIRED_MESSAGE = "The provided token has expired."
EXPIRED_MESSAGE = "The security token included in the request is expired"
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
Response = tuple[int, str, bytes] | tuple[int, str, bytes, list[tuple[str, str]]]


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


def request_protocol(service: str, environ: dict[str, Any], form: dict[str, str]) -> str:
    """The AWS protocol of a signed request, from the request itself (what its client used):
    ``rest-xml`` (S3), ``json``, ``query``, ``ec2`` or ``rest-json``.

    ref: https://smithy.io/2.0/aws/protocols/index.html
    """
    if service == "s3":
        return "rest-xml"
    content_type = environ.get("CONTENT_TYPE", "")
    if environ.get("HTTP_X_AMZ_TARGET") or content_type.startswith("application/x-amz-json"):
        return "json"
    if "Action" in form:
        return "ec2" if service == "ec2" else "query"
    return "rest-json"


def expired_token_error(protocol: str, session_token: str) -> Response:
    """AWS's answer to a request signed with expired session credentials, per protocol.

    ref: https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList
    ref: https://docs.aws.amazon.com/STS/latest/APIReference/CommonErrors.html
    ref: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html
    """
    request_id = secrets.token_hex(8)
    if protocol == "rest-xml":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><Error><Code>ExpiredToken</Code>'
            f"<Message>{S3_EXPIRED_MESSAGE}</Message>"
            f"<Token-0>{_xml_escape(session_token)}</Token-0>"
            f"<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>"
        )
        return 400, "application/xml", body.encode()
    if protocol == "json":
        document = {"__type": "ExpiredTokenException", "message": EXPIRED_MESSAGE}
        return 400, "application/x-amz-json-1.1", json.dumps(document).encode()
    if protocol == "ec2":
        body = (
            "<Response><Errors><Error><Code>RequestExpired</Code>"
            f"<Message>{EXPIRED_MESSAGE}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
        return 400, "text/xml", body.encode()
    if protocol == "rest-json":
        document = {"message": EXPIRED_MESSAGE}
        headers = [("x-amzn-ErrorType", "ExpiredTokenException")]
        return 403, "application/json", json.dumps(document).encode(), headers
    return sts_error("ExpiredToken", EXPIRED_MESSAGE)


class WebIdentityRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BadSetting(ValueError):
    pass


class EmulatorClock:
    """The emulator's clock: the machine's, plus an offset that only grows.

    ``POST /dask-platform/clock {"advance_seconds": n}`` moves it (a test makes 901 s pass in
    no time); sessions minted afterwards are stamped with the moved clock, and expiry is
    checked against it. Clients keep their own clocks: a client refreshing credentials by its
    clock sees the emulator's clock as running ahead, as with any clock skew.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() + self._offset

    @property
    def offset(self) -> float:
        return self._offset

    def advance(self, seconds: float) -> None:
        if not seconds > 0:
            raise BadSetting(f"advance_seconds: must be a number > 0, got {seconds!r}")
        with self._lock:
            self._offset += float(seconds)


@dataclass
class StsSettings:
    """STS's session lifetimes as the emulator applies them."""

    minimum_session_seconds: int = STS_MINIMUM_SESSION_SECONDS
    web_identity_session_seconds: int | None = None  # None: STS's default, 3600

    def update(self, values: dict[str, Any]) -> None:
        unknown = sorted(set(values) - {"minimum_session_seconds", "web_identity_session_seconds"})
        if unknown:
            raise BadSetting(
                f"{', '.join(unknown)}: unknown; allowed: minimum_session_seconds, "
                "web_identity_session_seconds"
            )
        minimum = int(values.get("minimum_session_seconds", self.minimum_session_seconds))
        if not LOWEST_SESSION_SECONDS <= minimum <= STS_MINIMUM_SESSION_SECONDS:
            raise BadSetting(
                f"minimum_session_seconds: must lie between {LOWEST_SESSION_SECONDS} and "
                f"{STS_MINIMUM_SESSION_SECONDS} (STS's minimum), got {minimum}"
            )
        default = values.get("web_identity_session_seconds", self.web_identity_session_seconds)
        if default is not None and not minimum <= int(default) <= 43200:
            raise BadSetting(
                f"web_identity_session_seconds: must lie between minimum_session_seconds "
                f"({minimum}) and 43200, got {default}"
            )
        self.minimum_session_seconds = minimum
        self.web_identity_session_seconds = None if default is None else int(default)


class Gate:
    """WSGI middleware in front of moto's app (see the module docstring)."""

    def __init__(
        self,
        app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
        admin_token: str,
        account_id: str,
        web_identity_duration: int | None,
        minimum_session_seconds: int = STS_MINIMUM_SESSION_SECONDS,
        clock: EmulatorClock | None = None,
    ) -> None:
        self.app = app
        self.admin_token = admin_token
        self.account_id = account_id
        self.clock = clock or EmulatorClock()
        self.sts_settings = StsSettings()
        self.sts_settings.update(
            {
                "minimum_session_seconds": minimum_session_seconds,
                "web_identity_session_seconds": web_identity_duration,
            }
        )
        # Guards the counters and the log only; moto is never called under it.
        self.lock = threading.Lock()
        self.stats: Counter[str] = Counter()
        self.web_identity_by_role: Counter[str] = Counter()
        self.sts_log: list[dict[str, Any]] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self._jwks_clients: dict[str, Any] = {}

    # ------------------------------------------------------------------ WSGI entry

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(("/moto-api", "/dask-platform/")):
            if not secrets.compare_digest(
                environ.get("HTTP_X_DASK_PLATFORM_ADMIN_TOKEN", ""), self.admin_token
            ):
                return self._respond(start_response, 403, "text/plain", b"admin token required\n")
            if path.startswith("/dask-platform/"):
                return self._admin(environ, start_response, path.removeprefix("/dask-platform/"))
            return self._forward(environ, start_response, authenticate=True)

        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        credential = _credential_scope(authorization, query)
        if credential is None:
            return self._unsigned(environ, start_response, query)

        access_key_id, service = credential
        session = emulator_moto.session(self.account_id, access_key_id)
        form = _form(_read_body(environ), query) if service != "s3" else {}
        if session is not None and self.clock.now() >= session.expiration:
            self._count(f"{service}:expired-token")
            token = (
                environ.get("HTTP_X_AMZ_SECURITY_TOKEN")
                or query.get("X-Amz-Security-Token", [""])[0]
            )
            return self._respond(
                start_response,
                *expired_token_error(request_protocol(service, environ, form), token),
            )
        if service == "sts":
            self._count(f"sts:{form.get('Action') or 'unknown'}")
        elif service == "s3":
            denied = self._list_denied(environ, query, session)
            if denied is not None:
                self._count("s3:denied-by-condition")
                return self._respond(start_response, *s3_access_denied(denied))
        return self._forward(environ, start_response, authenticate=True)

    def _count(self, key: str) -> None:
        with self.lock:
            self.stats[key] += 1

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "counters": dict(self.stats),
                "web_identity_by_role": dict(self.web_identity_by_role),
                "in_flight": self.in_flight,
                "peak_in_flight": self.peak_in_flight,
            }

    # ------------------------------------------------------------------ the gate's admin API

    def _admin(
        self, environ: dict[str, Any], start_response: StartResponse, name: str
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            body = json.loads(_read_body(environ) or b"{}") if method == "POST" else {}
            if name == "stats" and method == "GET":
                result: Any = self.snapshot()
            elif name == "sts-log" and method == "GET":
                with self.lock:
                    result = list(self.sts_log)
            elif name == "clock":
                if method == "POST":
                    self.clock.advance(float(body.get("advance_seconds", 0)))
                result = {"now": self.clock.now(), "offset_seconds": self.clock.offset}
            elif name == "sts-settings":
                if method == "POST":
                    self.sts_settings.update(body)
                result = asdict(self.sts_settings)
            else:
                return self._respond(
                    start_response,
                    404,
                    "text/plain",
                    f"no such admin endpoint: {method} /dask-platform/{name}; known: GET stats, "
                    "GET sts-log, GET|POST clock, GET|POST sts-settings\n".encode(),
                )
        except (BadSetting, ValueError, TypeError, AttributeError) as exc:
            return self._respond(start_response, 400, "text/plain", f"{exc}\n".encode())
        return self._respond(start_response, 200, "application/json", json.dumps(result).encode())

    # ------------------------------------------------------------------ unsigned requests

    def _unsigned(
        self, environ: dict[str, Any], start_response: StartResponse, query: dict[str, list[str]]
    ) -> Iterable[bytes]:
        body = _read_body(environ) if environ.get("REQUEST_METHOD") == "POST" else b""
        params = _form(body, query)
        if params.get("Action") != "AssumeRoleWithWebIdentity":
            self._count("anonymous:denied")
            return self._respond(
                start_response,
                *s3_access_denied("Anonymous requests are refused; sign the request."),
            )
        self._count("sts:AssumeRoleWithWebIdentity")
        entry: dict[str, Any] = {
            "time": self.clock.now(),
            "action": "AssumeRoleWithWebIdentity",
            "role_arn": params.get("RoleArn", ""),
            "session_name": params.get("RoleSessionName", ""),
        }
        try:
            role_arn, duration = self._verify_web_identity(params)
        except WebIdentityRejected as exc:
            self._count("sts:AssumeRoleWithWebIdentity:rejected")
            self._log({**entry, "error": exc.code, "message": exc.message})
            return self._respond(start_response, *sts_error(exc.code, exc.message))
        if "DurationSeconds" not in params:
            params["DurationSeconds"] = str(duration)
            encoded = urllib.parse.urlencode(params).encode()
            environ["wsgi.input"] = io.BytesIO(encoded)
            environ["CONTENT_LENGTH"] = str(len(encoded))
            environ["QUERY_STRING"] = ""
            environ["REQUEST_METHOD"] = "POST"
            environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded; charset=utf-8"
        with self.lock:
            self.web_identity_by_role[role_arn] += 1
        chunks = self._forward(environ, start_response, authenticate=False)
        self._log({**entry, **_issued_credentials(b"".join(chunks)), "duration_seconds": duration})
        return chunks

    def _log(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.sts_log.append(entry)
            del self.sts_log[:-STS_LOG_LIMIT]

    def _verify_web_identity(self, params: dict[str, str]) -> tuple[str, int]:
        import jwt

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
        audiences = emulator_moto.oidc_provider_audiences(self.account_id, provider_arn)
        if audiences is None:
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
                audience=audiences,
                issuer=issuer,
                options={"require": ["exp", "iat", "iss", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise WebIdentityRejected("ExpiredTokenException", "Token is expired") from None
        except jwt.PyJWTError as exc:
            raise WebIdentityRejected("InvalidIdentityToken", f"token rejected: {exc}") from None
        role = emulator_moto.role(self.account_id, role_arn)
        if role is None:
            raise WebIdentityRejected(
                "AccessDenied",
                f"Not authorized to perform sts:AssumeRoleWithWebIdentity on {role_arn}",
            )
        aud = claims["aud"]
        try:
            decision = evaluate(
                [role.trust_policy],
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
        settings = self.sts_settings
        requested = params.get("DurationSeconds")
        duration = int(requested) if requested else settings.web_identity_session_seconds or 3600
        minimum = settings.minimum_session_seconds
        if not minimum <= duration <= role.max_session_duration:
            raise WebIdentityRejected(
                "ValidationError",
                f"DurationSeconds {duration} must lie between {minimum} and the role's "
                f"MaxSessionDuration {role.max_session_duration}",
            )
        return role_arn, duration

    def _jwks_client(self, issuer: str) -> Any:
        import jwt

        client = self._jwks_clients.get(issuer)
        if client is None:
            discovery = issuer.rstrip("/") + "/.well-known/openid-configuration"
            with urllib.request.urlopen(discovery, timeout=5) as response:  # noqa: S310
                jwks_uri = json.load(response)["jwks_uri"]
            # A verifier that caches the JWKS (as STS does) and refetches it for an unknown key
            # id at most every cooldown: a key becomes valid here once it is published long
            # enough, which is what the issuer guarantees (it publishes the next key early).
            client = jwt.PyJWKClient(
                jwks_uri,
                cache_keys=False,
                lifespan=JWKS_CACHE_SECONDS,
                cooldown_duration=JWKS_REFETCH_COOLDOWN_SECONDS,
            )
            self._jwks_clients[issuer] = client
        return client

    # ------------------------------------------------------------------ S3 list conditions

    def _list_denied(
        self,
        environ: dict[str, Any],
        query: dict[str, list[str]],
        session: emulator_moto.Session | None,
    ) -> str | None:
        if environ.get("REQUEST_METHOD") not in {"GET", "HEAD"}:
            return None
        parts = environ.get("PATH_INFO", "").lstrip("/").split("/", 1)
        bucket = parts[0]
        if not bucket or (len(parts) > 1 and parts[1]) or not set(query) <= LIST_QUERY_KEYS:
            return None
        if session is None:
            return None  # not a session of a role: moto alone authorizes it
        role_arn = session.role_arn
        documents = emulator_moto.role_policies(self.account_id, role_arn)
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

    # ------------------------------------------------------------------ plumbing

    def _forward(
        self, environ: dict[str, Any], start_response: StartResponse, authenticate: bool
    ) -> list[bytes]:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        bypass = contextlib.nullcontext() if authenticate else emulator_moto.unauthenticated()
        with bypass, self._in_moto():
            result = self.app(environ, capture)
            try:
                chunks = list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        start_response(captured["status"], captured["headers"])
        return chunks

    @contextlib.contextmanager
    def _in_moto(self) -> Iterator[None]:
        """Counts the requests inside moto's app at this moment (and the peak), as close to
        the app call as possible, so any serialization in front of it would show as 1."""
        with self.lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self.lock:
                self.in_flight -= 1

    @staticmethod
    def _respond(
        start_response: StartResponse,
        status: int,
        content_type: str,
        body: bytes,
        headers: list[tuple[str, str]] | None = None,
    ) -> list[bytes]:
        reason = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found"}.get(
            status, "Error"
        )
        start_response(
            f"{status} {reason}",
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                *(headers or []),
            ],
        )
        return [body]


def _issued_credentials(body: bytes) -> dict[str, Any]:
    """AccessKeyId and Expiration of an AssumeRoleWithWebIdentity response (no secret)."""
    try:
        root = ET.fromstring(body)  # noqa: S314 (moto's own response)
    except ET.ParseError:
        return {"error": "unparsable response"}
    found: dict[str, Any] = {}
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "AccessKeyId":
            found["access_key_id"] = element.text
        elif tag == "Expiration":
            found["expiration"] = element.text
        elif tag == "Code":
            found["error"] = element.text
    return found


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
    if body[:1] not in (b"{", b""):  # form-encoded (query protocol), never a JSON document
        values.update(
            {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(errors="replace")).items()}
        )
    return values


# ---------------------------------------------------------------------- process entry point


def serve(
    state_dir: Path,
    host: str,
    port: int,
    web_identity_duration: int | None,
    minimum_session_seconds: int = STS_MINIMUM_SESSION_SECONDS,
) -> None:
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

    clock = EmulatorClock()
    emulator_moto.install(clock.now)
    admin = emulator_moto.bootstrap_admin(DEFAULT_ACCOUNT_ID, ADMIN_USER, ADMIN_POLICY_ARN)
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
        minimum_session_seconds=minimum_session_seconds,
        clock=clock,
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
    parser.add_argument(
        "--minimum-session-seconds",
        type=int,
        default=STS_MINIMUM_SESSION_SECONDS,
        help=f"The least DurationSeconds STS accepts ({STS_MINIMUM_SESSION_SECONDS}, STS's "
        f"minimum; down to {LOWEST_SESSION_SECONDS} so tests can outlive several sessions).",
    )
    args = parser.parse_args(argv)
    try:
        StsSettings().update(
            {
                "minimum_session_seconds": args.minimum_session_seconds,
                "web_identity_session_seconds": args.web_identity_duration,
            }
        )
    except BadSetting as exc:
        parser.error(str(exc))
    try:
        serve(
            args.state_dir,
            args.host,
            args.port,
            args.web_identity_duration,
            args.minimum_session_seconds,
        )
    except OSError as exc:
        print(f"emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
