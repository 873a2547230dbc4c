"""Dashboard login, logout and sessions (admins can list and revoke them)."""

from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Path as PathParam, Query, Request, Response

from web.auth import COOKIE, Principal
from web.body import body_schema, convert, json_response, read_object
from web.deps import Access
from web.ratelimit import client_key
from web.settings import WebSettings

SessionId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{16,64}$")]


class LoginBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]


def auth_router(access: Access, settings: WebSettings) -> APIRouter:
    r = APIRouter(prefix="/api", tags=["auth"])
    auth = access.auth
    Viewer = Annotated[Principal, Depends(access.viewer)]
    Admin = Annotated[Principal, Depends(access.admin)]

    @r.post("/login", openapi_extra=body_schema(LoginBody))
    async def login(request: Request) -> Response:
        """Trade a token for an HttpOnly session cookie (the dashboard). Failed tries count
        against the address like wrong Bearer tokens do."""
        body = convert(await read_object(request), LoginBody)
        addr = client_key(request)
        access.limiter.check(addr)
        made = await auth.login(body.token, addr)
        if made is None:
            access.limiter.fail(addr)
            raise HTTPException(401, "invalid or expired token")
        who, cookie = made
        res = json_response({"name": who.name, "role": who.role})
        # Secure whenever the request came over TLS (directly, or as a trusted proxy says).
        secure = settings.cookie_secure or request.url.scheme == "https"
        res.set_cookie(COOKIE, cookie, httponly=True, samesite="strict", secure=secure,
                       max_age=int(settings.session_hours * 3600), path="/")
        return res

    @r.post("/logout")
    async def logout(request: Request) -> Response:
        """Ends this session on the server too: the cookie is worthless afterwards, even if
        someone kept a copy."""
        who = await auth.check_session(request.cookies.get(COOKIE))
        if who is not None:
            await auth.revoke(who.session)
        res = json_response({"ok": True})
        res.delete_cookie(COOKIE, path="/")
        return res

    @r.get("/me")
    async def me(who: Viewer) -> dict:
        return {"name": who.name, "role": who.role}

    @r.get("/sessions")
    async def sessions(who: Admin) -> Response:
        items = await auth.sessions()
        for s in items:
            s["current"] = s["id"] == who.session
        return json_response({"items": items})

    @r.delete("/sessions/{session_id}", status_code=204)
    async def revoke(session_id: SessionId, who: Admin) -> Response:
        if not await auth.revoke(session_id):
            raise HTTPException(404, "no such session (or it already ended)")
        return Response(status_code=204)

    @r.delete("/sessions")
    async def revoke_all(who: Admin, name: Annotated[str | None, Query(max_length=64)] = None) -> Response:
        """Every session (or every session of the token named `name`) ends now."""
        n = 0
        for s in await auth.sessions():
            if name is None or s["name"] == name:
                n += await auth.revoke(s["id"])
        return json_response({"revoked": n})

    return r
