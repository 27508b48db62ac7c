"""The local OIDC issuer: it plays the EKS cluster's issuer and the kubelet's token projection.

* :class:`SigningKeys` - RSA keys with key ids; the JWKS holds the next key ahead of its use
  (``next_key_lead_seconds``); :meth:`SigningKeys.rotate` makes it current and keeps the old
  public key in the JWKS until every token it signed has expired.
* :class:`Issuer` - :meth:`Issuer.mint` turns claims into a signed JWT (``iss``/``iat``/``exp``
  added); :meth:`Issuer.service_account_token` builds the claims EKS puts in a projected
  ServiceAccount token. User tokens with a ``groups`` claim are just other claims: the identity
  provider (:mod:`dask_platform.local.idp`, the users' Keycloak stand-in) mints them.
* :class:`TokenProjector` - writes one token file per ServiceAccount and replaces it (atomic
  rename) once it is older than 80% of its lifetime, as the kubelet does.
* The HTTP process that serves them is :mod:`dask_platform.local.issuer_server`.

ref: https://kubernetes.io/docs/concepts/storage/projected-volumes/#serviceaccounttoken
ref: https://openid.net/specs/openid-connect-discovery-1_0.html
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from dask_platform.iam import service_account_name
from dask_platform.local.emulator_web_identity import JWKS_CACHE_SECONDS
from dask_platform.local.processes import write_json_atomic

ALGORITHM = "RS256"
STS_AUDIENCE = "sts.amazonaws.com"
# The kubelet refreshes a projected token once it is older than 80% of its lifetime.
REFRESH_FRACTION = 0.8
# A next key signs only after it has been in the JWKS this long: at least the longest time a
# verifier here keeps a fetched JWKS (the STS stand-in's cache).
NEXT_KEY_LEAD_SECONDS = JWKS_CACHE_SECONDS


@dataclass
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    published: float  # in the JWKS from then on
    activated: float | None = None  # signing from then on
    retired: float | None = None  # signing no more (still in the JWKS for a while)

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}


class NextKeyNotReady(Exception):
    """The next key has not been in the JWKS for ``next_key_lead_seconds`` yet."""

    def __init__(self, seconds_left: float) -> None:
        super().__init__(f"the next key is usable in {seconds_left:.1f} s")
        self.seconds_left = seconds_left


class SigningKeys:
    """The issuer's keys, persisted (mode 0600) so an issuer restart keeps validating tokens.

    Rotation as real issuers do it: the JWKS always holds the NEXT key besides the current
    one, and :meth:`rotate` only promotes a next key that has been published for
    ``next_key_lead_seconds`` - at least as long as any verifier here caches the JWKS - so no
    verifier ever meets a token whose key it could not have fetched. The retired key stays in
    the JWKS until every token it signed has expired (``max_token_lifetime``).

    ref: https://openid.net/specs/openid-connect-core-1_0.html#RotateSigKeys
    """

    def __init__(
        self, path: Path, max_token_lifetime: int, next_key_lead_seconds: float | None = None
    ) -> None:
        self.path = path
        self.max_token_lifetime = max_token_lifetime
        self.next_key_lead_seconds = (
            NEXT_KEY_LEAD_SECONDS if next_key_lead_seconds is None else next_key_lead_seconds
        )
        self.keys: list[SigningKey] = []
        if path.is_file():
            for entry in json.loads(path.read_text()):
                key = serialization.load_pem_private_key(entry["pem"].encode(), password=None)
                assert isinstance(key, rsa.RSAPrivateKey)
                self.keys.append(
                    SigningKey(
                        entry["kid"], key, entry["published"], entry["activated"], entry["retired"]
                    )
                )
        if not self.keys:
            now = time.time()
            # The first key signs at once: no verifier has fetched this issuer's JWKS before.
            self.keys = [self._new_key(now, activated=now), self._new_key(now)]
            self._save()

    @staticmethod
    def _new_key(now: float, activated: float | None = None) -> SigningKey:
        # 2048-bit RSA: what EKS's issuer uses for service-account tokens (RS256).
        return SigningKey(
            kid=uuid.uuid4().hex,
            private_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
            published=now,
            activated=activated,
        )

    @property
    def current(self) -> SigningKey:
        return next(k for k in self.keys if k.activated is not None and k.retired is None)

    @property
    def next(self) -> SigningKey:
        return next(k for k in self.keys if k.activated is None)

    def seconds_until_rotation(self, now: float | None = None) -> float:
        """How long until :meth:`rotate` may promote the next key (0: now)."""
        now = time.time() if now is None else now
        return max(0.0, self.next.published + self.next_key_lead_seconds - now)

    def rotate(self) -> SigningKey:
        """Promote the next key, publish a new next key, retire the current one; return the
        new current key. Raises :class:`NextKeyNotReady` if the next key is too fresh."""
        now = time.time()
        wait = self.seconds_until_rotation(now)
        if wait > 0:
            raise NextKeyNotReady(wait)
        self.current.retired = now
        promoted = self.next
        promoted.activated = now
        self.keys.append(self._new_key(now))
        # Drop keys whose last token has expired; they can no longer verify anything valid.
        self.keys = [
            k for k in self.keys if k.retired is None or k.retired + self.max_token_lifetime > now
        ]
        self._save()
        return promoted

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.keys]}

    def _save(self) -> None:
        entries = [
            {
                "kid": k.kid,
                "published": k.published,
                "activated": k.activated,
                "retired": k.retired,
                "pem": k.private_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode(),
            }
            for k in self.keys
        ]
        write_json_atomic(self.path, entries, mode=0o600)


class Issuer:
    def __init__(self, url: str, keys: SigningKeys) -> None:
        self.url = url.rstrip("/")
        self.keys = keys

    def discovery(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/keys",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            **(extra or {}),
        }

    def mint(self, claims: Mapping[str, Any], lifetime: int) -> str:
        """Sign ``claims`` (``iss``, ``iat``, ``nbf``, ``exp``, ``jti`` filled in unless given)."""
        now = int(time.time())
        payload = {
            "iss": self.url,
            "iat": now,
            "nbf": now,
            "exp": now + int(lifetime),
            "jti": uuid.uuid4().hex,
            **claims,
        }
        key = self.keys.current
        return jwt.encode(payload, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})

    def service_account_token(
        self, namespace: str, name: str, lifetime: int, audience: str = STS_AUDIENCE
    ) -> str:
        """The claims EKS projects for a pod's ServiceAccount token (IRSA audience)."""
        return self.mint(
            {
                "sub": f"system:serviceaccount:{namespace}:{name}",
                "aud": [audience],
                "kubernetes.io": {
                    "namespace": namespace,
                    "serviceaccount": {
                        "name": name,
                        "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
                    },
                },
            },
            lifetime,
        )


@dataclass
class Projection:
    """One projected token file, as a pod's volume would hold it."""

    path: Path
    namespace: str
    service_account: str
    lifetime: int
    audience: str = STS_AUDIENCE
    written: float = field(default=0.0)

    def due(self, now: float) -> bool:
        return not self.path.is_file() or now - self.written >= REFRESH_FRACTION * self.lifetime


class TokenProjector:
    def __init__(self, issuer: Issuer, projections: list[Projection]) -> None:
        self.issuer = issuer
        self.projections = projections

    def refresh(self, force: bool = False) -> int:
        """Rewrite every due token file; return how many were written."""
        now = time.time()
        written = 0
        for projection in self.projections:
            if force or projection.due(now):
                token = self.issuer.service_account_token(
                    projection.namespace,
                    projection.service_account,
                    projection.lifetime,
                    projection.audience,
                )
                _write_atomic(projection.path, token)
                projection.written = now
                written += 1
        return written


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    # 0644 like a projected volume's token (readable by the pod's processes).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def team_projections(
    tokens_dir: Path, namespace: str, teams: list[str], lifetime: int
) -> list[Projection]:
    return [
        Projection(tokens_dir / team / "token", namespace, service_account_name(team), lifetime)
        for team in teams
    ]
