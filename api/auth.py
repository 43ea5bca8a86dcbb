"""Bearer tokens: stored only as SHA-256 hashes in a token file, compared in constant time."""
import hashlib
import hmac
import ipaddress
import os
import secrets
from pathlib import Path

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.problems import Problem
from executors.errors import VcedError

__all__ = ['TokenCheck', 'load_token_hashes', 'new_token', 'hash_token', 'is_loopback']

PREFIX = 'sha256:'


def hash_token(token: str) -> str:
    return PREFIX + hashlib.sha256(token.encode('utf-8')).hexdigest()


def new_token(path: str | Path) -> str:
    """A new random token, its hash appended to `path` (created readable by its owner only); the token itself is
    returned once and stored nowhere."""
    token = secrets.token_urlsafe(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(descriptor, 'a', encoding='utf-8') as file:
            file.write(hash_token(token) + '\n')
    except OSError as e:
        raise VcedError(f'{path}: cannot write the token file ({e.strerror})') from e
    return token


def load_token_hashes(path: str | Path) -> list[bytes]:
    """The token hashes of `path`: one 'sha256:<hex>' a line ('#' comments and blank lines skipped)."""
    try:
        lines = Path(path).read_text(encoding='utf-8').splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise VcedError(f'{path}: cannot read the token file ({getattr(e, "strerror", None) or e})') from e
    hashes = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        digest = line.removeprefix(PREFIX)
        if not line.startswith(PREFIX) or len(digest) != 64 or any(c not in '0123456789abcdef' for c in digest):
            raise VcedError(f"{path}:{number}: not a token hash (each line is 'sha256:' and 64 hex digits)")
        hashes.append(line.encode())
    if not hashes:
        raise VcedError(f'{path}: holds no token hash')
    return hashes


def is_loopback(host: str) -> bool:
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TokenCheck(HTTPBearer):
    """A FastAPI dependency: 401 unless the request carries a bearer token whose hash is one of `hashes`;
    every request passes when `hashes` is empty (a loopback server started without --token-file)."""

    def __init__(self, hashes: list[bytes]):
        super().__init__(auto_error=False, description='a token made by `flow.py serve --token-file F`')
        self.hashes = hashes

    async def __call__(self, request: Request) -> None:
        if not self.hashes:
            return

        credentials: HTTPAuthorizationCredentials | None = await super().__call__(request)
        presented = hash_token(credentials.credentials).encode() if credentials else b''
        matched = False
        for stored in self.hashes:  # every hash compared, in constant time each
            matched |= hmac.compare_digest(presented, stored)
        if not matched:
            raise Problem(401, 'a valid bearer token is required (Authorization: Bearer TOKEN)' if credentials is None
                          else 'the bearer token is not valid', {'WWW-Authenticate': 'Bearer'})
