"""The FastAPI app: REST, the live websocket and the dashboard.

Every route but /healthz needs a token: `Authorization: Bearer <token>`, or the session
cookie the dashboard gets from POST /api/login. OpenAPI is served at /docs.
"""

import asyncio
import logging
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, AsyncIterator

from fastapi import Depends, FastAPI, HTTPException, Request, Response, WebSocket
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from bus.connection import Bus
from web.auth import COOKIE, Authenticator, Principal, RateLimiter, hash_token, new_secret
from web.deps import Access
from web.hub import Hub
from web.live import live_socket
from web.live_frames import LiveFrames
from web.routes_clips import clips_router
from web.routes_docs import ASSETS as DOCS_ASSETS, docs_router
from web.routes_live import live_router
from web.routes_timeline import timeline_router
from web.routes_zones import zones_router
from web.routes_cameras import cameras_router
from web.routes_events import events_router
from web.routes_ops import ops_router
from web.routes_replay import replay_router
from web.routes_rules import rules_router
from web.routes_webhooks import webhooks_router
from web.routes_whip import whip_router
from web.settings import TokenEntry, WebSettings

log = logging.getLogger("vigil.web")
STATIC = Path(__file__).parent / "static"
MAX_REQUEST_BYTES = 1024 * 1024  # routes cap their own bodies lower; this stops the rest early
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # The dashboard loads only its own scripts; images are same-origin (plus data: icons).
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
}


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(..., min_length=1, max_length=512)


async def _session_secret(bus: Bus) -> bytes:
    """Shared by every web process on this Redis, so a session works on any of them."""
    key = f"{bus.keys.prefix}web:session-secret"
    await bus.r.set(key, new_secret(), nx=True)
    return await bus.r.get(key)


def create_app(bus: Bus, settings: WebSettings) -> FastAPI:
    tokens = list(settings.tokens)
    env_token = os.environ.get("VIGIL_TOKEN")
    if env_token:
        tokens.append(TokenEntry(name="env", role="admin", sha256=hash_token(env_token)))
    auth = Authenticator(tokens, b"", settings.session_hours * 3600)
    access = Access(auth)
    limiter = RateLimiter()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        auth.secret = await _session_secret(bus)
        if not tokens:
            log.warning("no API tokens configured: every route but /healthz will refuse access")
        yield
        await hub.close()
        await live.close()

    hub = Hub(bus)
    live = LiveFrames(bus)
    # docs_url=None: /docs is web/routes_docs.py (Swagger UI from local files, CSP-clean).
    app = FastAPI(title="Vigil", version="0.1.0", description="Real-time video analytics API", lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    Viewer = Annotated[Principal, Depends(access.viewer)]

    @app.get("/healthz")
    async def healthz() -> dict:
        """Liveness: the process answers and Redis is reachable. No token needed."""
        try:
            await asyncio.wait_for(bus.r.ping(), 2)
            return {"ok": True}
        except Exception:
            return JSONResponse({"ok": False, "redis": "unreachable"}, status_code=503)  # type: ignore[return-value]

    @app.post("/api/login")
    async def login(body: LoginBody, request: Request, response: Response) -> dict:
        client = request.client.host if request.client else "?"
        if not limiter.allow(client):
            raise HTTPException(429, "too many login attempts; wait a minute")
        who = auth.check_token(body.token)
        if who is None:
            raise HTTPException(401, "invalid or expired token")
        response.set_cookie(
            COOKIE, auth.issue_session(who), httponly=True, samesite="strict", secure=settings.cookie_secure,
            max_age=int(settings.session_hours * 3600),
        )
        return {"name": who.name, "role": who.role}

    @app.post("/api/logout")
    async def logout(response: Response) -> dict:
        response.delete_cookie(COOKIE)
        return {"ok": True}

    @app.get("/api/me")
    async def me(who: Viewer) -> dict:
        return {"name": who.name, "role": who.role}

    @app.middleware("http")
    async def guard(request: Request, call_next):  # noqa: ANN001, ANN202 - Starlette middleware signature
        length = request.headers.get("content-length")
        if length and (not length.isdigit() or int(length) > MAX_REQUEST_BYTES):
            return JSONResponse({"detail": f"request body larger than {MAX_REQUEST_BYTES} bytes"}, status_code=413)
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    app.include_router(cameras_router(bus, access))
    app.include_router(events_router(bus, access))
    app.include_router(ops_router(bus, access, lambda: {"vigil_web_websocket_clients": len(hub.subscribers),
                                                        "vigil_web_live_viewers": live.count}))
    app.include_router(live_router(bus, access, live))
    app.include_router(zones_router(bus, access))
    app.include_router(clips_router(bus, access))
    app.include_router(timeline_router(bus, access))
    app.include_router(replay_router(bus, access))

    app.include_router(rules_router(bus, access.viewer, access.admin))
    app.include_router(webhooks_router(bus, access.viewer, access.admin))
    app.include_router(whip_router(bus, access.viewer))

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        await live_socket(socket, bus, auth, hub)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.include_router(docs_router(access))
    app.mount("/docs/assets", DOCS_ASSETS, name="docs-assets")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.started = time.time()
    app.state.live = live  # the web stage ends open live streams before the server stops
    return app
