"""API keys for the write endpoints (``POST /v1/events``, ``POST /v1/items``).

Writes change what every user is recommended, so they need a write key; reads stay open unless
``read_needs_key``. With no keys configured writes are refused: never open by default. Keys come
from ``RECSYS_API_KEYS`` (``key[:role],...``) and/or ``RECSYS_API_KEYS_FILE`` (outside the repo;
one ``key role``, ``key:role`` or ``key`` a line, ``#`` comments); role defaults to ``write``; a
key has 16+ characters, no ``:`` or whitespace. Only SHA-256 digests are kept, compared in
constant time; no key text reaches a message, a repr or a log. In a FastAPI route::

    keys = ApiKeys.from_environment()  # once, at startup; a bad entry raises RecsysError
    try:
        authorize(keys, request.headers, Role.write, endpoint="POST /v1/items")
    except AuthError as err:
        auth = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse({"detail": err.message}, err.status, headers=auth)
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

from recsys import RecsysError

ENV_KEYS = "RECSYS_API_KEYS"
ENV_FILE = "RECSYS_API_KEYS_FILE"
MIN_KEY_LENGTH = 16
HOW_TO_SEND = "send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
_REPO = Path(__file__).resolve().parents[1]


class Role(StrEnum):
    """What a key may do; ``write`` implies ``read``."""
    read = "read"
    write = "write"

    def allows(self, needed: Role) -> bool:
        return self is Role.write or needed is Role.read


class AuthError(Exception):
    """A refused request: ``status`` is 401 (no or unknown key) or 403 (key lacks the role)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status, self.message = status, message


def _parse(entry: str, source: str) -> tuple[bytes, Role]:
    """``key[:role]`` as (digest, role); messages name ``source`` but never echo the key (nor
    the role text, which may be half of a mistyped key)."""
    key, _, role = (part.strip() for part in entry.partition(":"))
    if not key:
        raise RecsysError(f"{source}: empty API key")
    if len(key) < MIN_KEY_LENGTH:
        raise RecsysError(f"{source}: API key shorter than {MIN_KEY_LENGTH} characters")
    if (role or "write").lower() not in tuple(Role):
        raise RecsysError(f"{source}: unknown role (use 'read' or 'write')")
    return hashlib.sha256(key.encode("utf-8")).digest(), Role((role or "write").lower())


class ApiKeys:
    """The server's keys as SHA-256 digests with their roles, never the keys themselves, so a
    repr, a pickle or a memory dump of the object gives nothing a client could send."""

    def __init__(self) -> None:
        self._keys: dict[bytes, tuple[Role, str]] = {}  # digest -> (role, where it was set)

    def _add(self, entry: str, source: str) -> None:
        digest, role = _parse(entry, source)
        if digest in self._keys and self._keys[digest][0] is not role:
            raise RecsysError(f"{source}: the same API key as {self._keys[digest][1]} with "
                              "another role; give each key one role")
        self._keys.setdefault(digest, (role, source))

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> ApiKeys:
        """Keys of ``RECSYS_API_KEYS`` plus those of the ``RECSYS_API_KEYS_FILE`` file."""
        keys = cls()
        for i, entry in enumerate(environ.get(ENV_KEYS, "").split(","), 1):
            if entry.strip():
                keys._add(entry, f"{ENV_KEYS} entry {i}")
        if environ.get(ENV_FILE, "").strip():
            keys._read_file(Path(environ[ENV_FILE].strip()).expanduser())
        return keys

    def _read_file(self, path: Path) -> None:
        if path.resolve().is_relative_to(_REPO):
            raise RecsysError(f"{ENV_FILE}={path} is inside the repository ({_REPO}); keep "
                              "key files outside it so they are never committed")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise RecsysError(f"{ENV_FILE}={path}: cannot read the key file "
                              f"({getattr(err, 'strerror', None) or 'not UTF-8 text'})") from None
        for n, line in enumerate(lines, 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) > 2 or (len(fields) == 2 and ":" in fields[0]):
                raise RecsysError(f"{path} line {n}: expected 'key role', 'key:role' or 'key'")
            self._add(":".join(fields), f"{path} line {n}")

    @property
    def configured(self) -> bool:  # any key at all: without one, writes are refused
        return bool(self._keys)

    def role_of(self, presented: str | None) -> Role | None:
        """The role of ``presented``, or None. Every stored digest is compared (constant-time,
        no early exit), so the time taken does not tell which key, if any, matched."""
        if not presented:
            return None
        digest, found = hashlib.sha256(presented.encode("utf-8")).digest(), None
        for stored, (role, _) in self._keys.items():
            if hmac.compare_digest(stored, digest):
                found = role
        return found

    def __repr__(self) -> str:
        counts = {r.value: sum(role is r for role, _ in self._keys.values()) for r in Role}
        return f"ApiKeys({', '.join(f'{r}={n}' for r, n in counts.items())})"


def presented_key(headers: Mapping[str, str]) -> str | None:
    """``Authorization: Bearer <key>`` (any case of scheme and names, as HTTP), else X-API-Key."""
    lower = {name.lower(): value for name, value in headers.items()}
    scheme, _, token = lower.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return lower.get("x-api-key", "").strip() or None


def authorize(keys: ApiKeys, headers: Mapping[str, str], needed: Role, *,
              endpoint: str = "this endpoint", read_needs_key: bool = False) -> None:
    """Return if the request may call an endpoint that needs ``needed``; else raise AuthError."""
    if needed is Role.read and not read_needs_key:
        return
    if not keys.configured:
        raise AuthError(401, f"no {'write' if needed is Role.write else 'API'} keys are "
                        f"configured on this server: set {ENV_KEYS} or {ENV_FILE} there")
    if (presented := presented_key(headers)) is None:
        raise AuthError(401, f"this endpoint needs an API key: {HOW_TO_SEND}")
    if (role := keys.role_of(presented)) is None:
        raise AuthError(401, f"the API key is not valid; {HOW_TO_SEND} with a key of this server")
    if not role.allows(needed):
        raise AuthError(403, f"this API key is read-only; {endpoint} needs a write key")
