"""API keys: created once (the secret is shown once), stored as a salted SHA-256, compared in
constant time, revocable. Scopes: ``analyze`` (run and submit), ``read`` (own jobs and
results), ``admin`` (everything: all jobs, keys, metrics, the audit trail)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from lensforge.errors import ValidationError
from lensforge.store.engine import database_errors
from lensforge.store.tables import api_keys

SCOPES = ("analyze", "read", "admin")
_CACHE_S = 2.0  # how long a key lookup (or "auth is on") is trusted; revocation lag


@dataclass(frozen=True)
class Caller:
    """Who is calling: a key's id and scopes, or the local user when auth is off."""

    id: str
    scopes: frozenset[str]
    name: str = ""

    @property
    def admin(self) -> bool:
        return "admin" in self.scopes

    def allows(self, scope: str) -> bool:
        return self.admin or scope in self.scopes

    @property
    def owner_filter(self) -> str | None:
        """The owner whose jobs this caller may see; None means all of them."""
        return None if self.admin else self.id


LOCAL_USER = Caller("anonymous", frozenset(SCOPES), "local user (auth off)")


@dataclass(frozen=True)
class KeyInfo:
    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: float
    revoked_at: float | None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def key_id(presented: str) -> str | None:
    """The public id part of a presented key (never its secret), if it looks like one."""
    parts = presented.strip().split("_", 2)
    if len(parts) == 3 and parts[0] == "lf" and len(parts[1]) == 12:
        return parts[1]
    return None


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def parse_scopes(text: str | list[str]) -> tuple[str, ...]:
    items = text.split(",") if isinstance(text, str) else text
    scopes = tuple(sorted({s.strip() for s in items if s.strip()}))
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValidationError(
            f"Scopes must be some of {', '.join(SCOPES)}; got {', '.join(unknown) or 'none'}."
        )
    return scopes


class KeyStore:
    """API keys in the store's database."""

    def __init__(
        self, engine: Engine, *, cache_s: float = _CACHE_S, lookup_timeout_s: float = 8.0
    ) -> None:
        self.engine = engine
        self.cache_s = cache_s  # a revocation takes effect within this time
        self.lookup_timeout_s = lookup_timeout_s  # then the request is answered 503
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Any]] = {}
        self._enabled: tuple[float, bool] = (0.0, False)

    def create(self, name: str, scopes: tuple[str, ...]) -> tuple[KeyInfo, str]:
        """A new key; returns its info and the full secret (shown once, never stored)."""
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    name=name,
                    salt=salt,
                    secret_hash=_digest(salt, secret),
                    scopes=",".join(scopes),
                    created_at=now,
                )
            )
        self._enabled = (0.0, True)
        return KeyInfo(key_id, name, scopes, now, None), f"lf_{key_id}_{secret}"

    def list(self) -> list[KeyInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at)).all()
        return [
            KeyInfo(r.id, r.name, tuple(r.scopes.split(",")), r.created_at, r.revoked_at)
            for r in rows
        ]

    def revoke(self, key_id: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
        with self._lock:
            self._cache.pop(key_id, None)
        return bool(result.rowcount)

    def enabled(self) -> bool:
        """Auth is on once any key has been created; revoking them all keeps it on (a server
        must not fall open because its last key was revoked)."""
        checked_at, on = self._enabled
        if on or time.monotonic() - checked_at < self.cache_s:
            return on
        with database_errors("Checking API keys"), self.engine.connect() as conn:
            count = conn.execute(select(func.count()).select_from(api_keys)).scalar_one()
        self._enabled = (time.monotonic(), count > 0)
        return count > 0

    def off_from_cache(self) -> bool:
        """Auth is off, as last checked within ``cache_s``: every request is the local user."""
        checked_at, on = self._enabled
        return not on and time.monotonic() - checked_at < self.cache_s

    def passes_from_cache(self, presented: str | None, scope: str) -> bool:
        """Whether a request with key ``presented`` needing ``scope`` is let through without
        touching the database (no lookup, no audit row): auth is off, or the key is cached,
        valid and allows a non-admin ``scope``. Otherwise the check belongs on a thread."""
        checked_at, on = self._enabled
        now = time.monotonic()
        if not on:
            return now - checked_at < self.cache_s
        found = key_id(presented) if presented else None
        if found is None or scope == "admin":
            return False
        with self._lock:
            cached = self._cache.get(found)
        if cached is None or now - cached[0] >= self.cache_s:
            return False
        caller = self.verify(presented or "")
        return caller is not None and caller.allows(scope)

    def verify(self, presented: str) -> Caller | None:
        """The caller a presented key belongs to, or None (unknown, malformed or revoked)."""
        parts = presented.strip().split("_", 2)
        if len(parts) != 3 or parts[0] != "lf" or len(parts[1]) != 12:
            return None
        key_id, secret = parts[1], parts[2]
        row = self._lookup(key_id)
        if row is None or row.revoked_at is not None:
            hmac.compare_digest("0" * 64, "1" * 64)  # same work for unknown keys
            return None
        if not hmac.compare_digest(_digest(row.salt, secret), row.secret_hash):
            return None
        return Caller(row.id, frozenset(row.scopes.split(",")), row.name)

    def _lookup(self, key_id: str) -> Any:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self.cache_s:
            return cached[1]
        with database_errors("Checking API keys"), self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_id] = (now, row)
        return row
