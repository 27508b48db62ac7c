"""Password authentication for the local gateway: users and groups from a file.

Stands in for the identity provider on the local platform (the OIDC issue adds tokens). The
users file (written by ``local up``) holds scrypt hashes only; the generated passwords are in
a separate 0600 file the demo and the tests read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from pathlib import Path
from typing import Any

from dask_gateway_server.auth import Authenticator, unauthorized
from dask_gateway_server.models import User
from traitlets import Unicode

# ref: https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html#scrypt
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
SCRYPT_MAXMEM = 64 * 2**20


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=SCRYPT_MAXMEM
    )
    salt_text = base64.b64encode(salt).decode()
    digest_text = base64.b64encode(digest).decode()
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt_text}${digest_text}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(
        password.encode(),
        salt=base64.b64decode(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        maxmem=SCRYPT_MAXMEM,
    )
    return hmac.compare_digest(candidate, base64.b64decode(digest))


def write_users_file(path: Path, users: dict[str, list[str]]) -> dict[str, str]:
    """Generate a password per user; write hashes + groups to ``path``; return the passwords."""
    from dask_platform.local.processes import write_json_atomic

    passwords = {name: secrets.token_urlsafe(18) for name in users}
    write_json_atomic(
        path,
        {
            name: {"groups": groups, "password_hash": hash_password(passwords[name])}
            for name, groups in users.items()
        },
    )
    return passwords


class LocalPasswordAuthenticator(Authenticator):
    """HTTP Basic auth against the local users file (hashed passwords, groups per user)."""

    users_file = Unicode(help="JSON file: {user: {groups, password_hash}}.", config=True)

    def _users(self) -> dict[str, Any]:
        users: dict[str, Any] = json.loads(Path(self.users_file).read_text())
        return users

    async def authenticate(self, request: Any) -> User:
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme != "Basic" or not encoded:
            raise unauthorized("Basic")
        try:
            name, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise unauthorized("Basic") from None
        record = self._users().get(name)
        # Hash even for an unknown user so the response time does not reveal who exists.
        stored = record["password_hash"] if record else hash_password(secrets.token_hex(8))
        if not verify_password(password, stored) or record is None:
            self.log.warning("Failed login for %r", name)
            raise unauthorized("Basic")
        return User(name, groups=record["groups"])
