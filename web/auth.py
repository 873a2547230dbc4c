"""API tokens (stored hashed, compared in constant time) and signed session cookies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass

from web.settings import TokenEntry

COOKIE = "vigil_session"
ROLES = {"viewer": 0, "admin": 1}


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    def can(self, role: str) -> bool:
        return ROLES[self.role] >= ROLES[role]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    def __init__(self, tokens: list[TokenEntry], secret: bytes, session_s: float) -> None:
        self.tokens = tokens
        self.secret = secret
        self.session_s = session_s

    def check_token(self, token: str | None) -> Principal | None:
        if not token or len(token) > 512:
            return None
        digest = hash_token(token)
        found: Principal | None = None
        for entry in self.tokens:  # no early exit: timing does not reveal which entry matched
            if hmac.compare_digest(digest, entry.sha256) and _live(entry):
                found = Principal(entry.name, entry.role)
        return found

    def issue_session(self, who: Principal) -> str:
        body = json.dumps({"n": who.name, "r": who.role, "exp": int(time.time() + self.session_s)}).encode()
        payload = base64.urlsafe_b64encode(body).decode().rstrip("=")
        return f"{payload}.{self._sign(payload)}"

    def check_session(self, value: str | None) -> Principal | None:
        if not value or "." not in value or len(value) > 1024:
            return None
        payload, _, sig = value.rpartition(".")
        if not hmac.compare_digest(sig, self._sign(payload)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except ValueError:
            return None
        if data.get("exp", 0) < time.time() or data.get("r") not in ROLES:
            return None
        # A token removed from the config ends its sessions too.
        if not any(t.name == data.get("n") and t.role == data["r"] and _live(t) for t in self.tokens):
            return None
        return Principal(data["n"], data["r"])

    def _sign(self, payload: str) -> str:
        return hmac.new(self.secret, payload.encode(), hashlib.sha256).hexdigest()


def _live(entry: TokenEntry) -> bool:
    return entry.expires is None or entry.expires.timestamp() > time.time()


class RateLimiter:
    """At most `limit` attempts per `window_s` per client address (login brute force)."""

    def __init__(self, limit: int = 10, window_s: float = 60.0) -> None:
        self.limit, self.window_s = limit, window_s
        self.hits: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        q = self.hits[key]
        while q and now - q[0] > self.window_s:
            q.popleft()
        if len(q) >= self.limit:
            return False
        q.append(now)
        if len(self.hits) > 10_000:
            self.hits.clear()
        return True


def new_secret() -> bytes:
    return secrets.token_bytes(32)
