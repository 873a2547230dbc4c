"""Who is asking: FastAPI dependencies for the viewer and admin roles."""

from fastapi import HTTPException, Request

from web.auth import COOKIE, Authenticator, Principal
from web.ratelimit import FailureLimiter, client_key


class Access:
    """Bearer token (scripts) or the session cookie (the dashboard). Wrong tokens count
    against the caller's address (web/ratelimit.py)."""

    def __init__(self, auth: Authenticator, limiter: FailureLimiter | None = None,
                 origins: frozenset[str] = frozenset()) -> None:
        self.auth = auth
        self.limiter = limiter or FailureLimiter()
        self.origins = origins  # web.allowed_origins, for CSRF and websocket checks

    def check_token(self, token: str | None, addr: str) -> Principal | None:
        """A token guess: refused unheard (429) once this address failed too often."""
        self.limiter.check(addr)
        who = self.auth.check_token(token)
        if who is None:
            self.limiter.fail(addr)
        return who

    async def principal(self, request: Request) -> Principal | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return self.check_token(header[7:].strip(), client_key(request))
        # Cookies are signed and looked up, never guessed: no limit (a stale one after a token
        # change must not lock out the address either).
        return await self.auth.check_session(request.cookies.get(COOKIE))

    async def viewer(self, request: Request) -> Principal:
        who = await self.principal(request)
        if who is None:
            raise HTTPException(401, "missing, invalid or expired token", headers={"WWW-Authenticate": "Bearer"})
        return who

    async def admin(self, request: Request) -> Principal:
        who = await self.viewer(request)
        if not who.can("admin"):
            raise HTTPException(403, "this needs the admin role")
        return who
