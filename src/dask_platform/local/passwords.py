"""Password hashing for the local gateway's users (scrypt, from the standard library).

The users file (written by ``local up``) holds these hashes only; the generated passwords go to
a separate 0600 file that the demo and the tests read. Kept apart from the authenticator so
writing the file does not import the gateway server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

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
