"""Who is asking: FastAPI dependencies for the viewer and admin roles."""

from fastapi import HTTPException, Request

from web.auth import COOKIE, Authenticator, Principal


class Access:
    """Bearer token (scripts) or the session cookie (the dashboard)."""

    def __init__(self, auth: Authenticator) -> None:
        self.auth = auth

    def principal(self, request: Request) -> Principal | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return self.auth.check_token(header[7:].strip())
        return self.auth.check_session(request.cookies.get(COOKIE))

    def viewer(self, request: Request) -> Principal:
        who = self.principal(request)
        if who is None:
            raise HTTPException(401, "missing, invalid or expired token", headers={"WWW-Authenticate": "Bearer"})
        return who

    def admin(self, request: Request) -> Principal:
        who = self.viewer(request)
        if not who.can("admin"):
            raise HTTPException(403, "this needs the admin role")
        return who
