"""API tokens (stored hashed, compared in constant time) and dashboard sessions.

A session is a record in Redis (any web process accepts it), named by a random id in an
HttpOnly cookie signed with a secret kept in Redis. It is bound to the token that made it:
when that token is removed, expires or changes (a new `VIGIL_TOKEN`), its sessions stop
working; logout or an admin deletes the record, which revokes it at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from bus.connection import Bus
from web.settings import TokenEntry

COOKIE = "vigil_session"
ROLES = {"viewer": 0, "admin": 1}
MIN_TOKEN_LENGTH = 16
MIN_TOKEN_DISTINCT = 8  # "aaaaaaaaaaaaaaaa" or "1234123412341234" is no secret


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    session: str = ""  # the session id, for cookie logins

    def can(self, role: str) -> bool:
        return ROLES[self.role] >= ROLES[role]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_problem(token: str) -> str | None:
    """Why a token given in clear (VIGIL_TOKEN) is too weak to guard the API, or None."""
    if len(token) < MIN_TOKEN_LENGTH:
        return f"shorter than {MIN_TOKEN_LENGTH} characters"
    if len(set(token)) < MIN_TOKEN_DISTINCT:
        return f"fewer than {MIN_TOKEN_DISTINCT} different characters"
    return None


def new_token() -> str:
    return secrets.token_urlsafe(24)


def _live(entry: TokenEntry) -> bool:
    return entry.expires is None or entry.expires.timestamp() > time.time()


class Authenticator:
    def __init__(self, tokens: list[TokenEntry], bus: Bus, session_s: float) -> None:
        self.tokens = tokens
        self.bus = bus
        self.secret = b""  # set at start-up from Redis (web_session_secret)
        self.session_s = session_s

    async def load_secret(self) -> None:
        key = self.bus.keys.web_session_secret
        await self.bus.r.set(key, secrets.token_bytes(32), nx=True)
        self.secret = await self.bus.r.get(key)

    def check_token(self, token: str | None) -> Principal | None:
        entry = self._entry(token)
        return Principal(entry.name, entry.role) if entry else None

    def _entry(self, token: str | None) -> TokenEntry | None:
        if not token or len(token) > 512:
            return None
        digest = hash_token(token)
        found: TokenEntry | None = None
        for entry in self.tokens:  # no early exit: timing does not reveal which entry matched
            if hmac.compare_digest(digest, entry.sha256) and _live(entry):
                found = entry
        return found

    def _binding(self, entry: TokenEntry) -> str:
        # Keyed, so the session record in Redis holds nothing to test token guesses against.
        return hmac.new(self.secret, b"token:" + entry.sha256.encode(), hashlib.sha256).hexdigest()[:32]

    def _sign(self, sid: str) -> str:
        return hmac.new(self.secret, b"session:" + sid.encode(), hashlib.sha256).hexdigest()

    # -- sessions ---------------------------------------------------------------------------
    async def login(self, token: str, addr: str) -> tuple[Principal, str] | None:
        """A session for a valid token: (who, cookie value), or None."""
        entry = self._entry(token)
        if entry is None:
            return None
        sid = secrets.token_urlsafe(24)
        now = time.time()
        exp = now + self.session_s
        if entry.expires is not None:
            exp = min(exp, entry.expires.timestamp())  # never outlives its token
        record = {"n": entry.name, "r": entry.role, "tok": self._binding(entry), "created": now, "exp": exp,
                  "addr": addr}
        k = self.bus.keys
        pipe = self.bus.r.pipeline(transaction=True)
        pipe.set(k.web_session(sid), json.dumps(record), exat=int(exp) + 1)
        pipe.zadd(k.web_sessions, {sid: exp})
        pipe.zremrangebyscore(k.web_sessions, "-inf", now)
        await pipe.execute()
        return Principal(entry.name, entry.role, sid), f"{sid}.{self._sign(sid)}"

    def _sid(self, value: str | None) -> str | None:
        if not value or "." not in value or len(value) > 256:
            return None
        sid, _, sig = value.rpartition(".")
        return sid if hmac.compare_digest(sig, self._sign(sid)) else None

    async def check_session(self, value: str | None) -> Principal | None:
        sid = self._sid(value)
        return await self.check_session_id(sid) if sid else None

    async def check_session_id(self, sid: str) -> Principal | None:
        """A session already identified (its cookie was checked): still valid?"""
        raw = await self.bus.r.get(self.bus.keys.web_session(sid))
        if raw is None:
            return None  # logged out, revoked or expired
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        if data.get("exp", 0) < time.time() or data.get("r") not in ROLES:
            return None
        # Bound to its token: a token removed, expired or changed ends the session.
        for entry in self.tokens:
            if entry.name == data.get("n") and entry.role == data["r"] and _live(entry) \
                    and hmac.compare_digest(self._binding(entry), str(data.get("tok", ""))):
                return Principal(entry.name, entry.role, sid)
        return None

    async def revoke(self, sid: str) -> bool:
        k = self.bus.keys
        pipe = self.bus.r.pipeline(transaction=True)
        pipe.delete(k.web_session(sid))
        pipe.zrem(k.web_sessions, sid)
        gone, _ = await pipe.execute()
        return bool(gone)

    async def sessions(self) -> list[dict]:
        """Live sessions for admins: id, who, since, until, from where (never the cookie)."""
        k = self.bus.keys
        await self.bus.r.zremrangebyscore(k.web_sessions, "-inf", time.time())
        ids = [i.decode() for i in await self.bus.r.zrange(k.web_sessions, 0, 999)]
        raws = await self.bus.r.mget([k.web_session(i) for i in ids]) if ids else []
        out = []
        for sid, raw in zip(ids, raws):
            if raw is None:
                continue
            d = json.loads(raw)
            out.append({"id": sid, "name": d.get("n"), "role": d.get("r"), "created": d.get("created"),
                        "expires": d.get("exp"), "addr": d.get("addr")})
        return out
