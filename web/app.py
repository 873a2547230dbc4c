"""The FastAPI app: REST, the live websocket and the dashboard.

Every route but /healthz needs a token: `Authorization: Bearer <token>`, or the session
cookie the dashboard gets from POST /api/login (docs/security.md). OpenAPI is served at
/docs (Swagger UI) and /openapi.json, with a token too.
"""

import asyncio
import logging
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, AsyncIterator

from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeoutError

from bus.connection import Bus
from bus.urls import SourcePolicy
from web import csrf
from web.auth import Authenticator, Principal, hash_token, token_problem
from web.body import with_body_components
from web.deps import Access
from web.hub import Hub
from web.live import live_socket
from web.live_frames import LiveFrames
from web.routes_clips import clips_router
from web.routes_docs import ASSETS as DOCS_ASSETS, docs_router
from web.routes_live import live_router
from web.routes_timeline import timeline_router
from web.routes_zones import zones_router
from web.ratelimit import FailureLimiter
from web.routes_auth import auth_router
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


def create_app(bus: Bus, settings: WebSettings, *, sources: SourcePolicy | None = None) -> FastAPI:
    tokens = list(settings.tokens)
    env_token = os.environ.get("VIGIL_TOKEN")
    if env_token:
        problem = token_problem(env_token)
        if problem:
            raise ValueError(f"VIGIL_TOKEN is too weak: {problem}")
        tokens.append(TokenEntry(name="env", role="admin", sha256=hash_token(env_token)))
    auth = Authenticator(tokens, bus, settings.session_hours * 3600)
    access = Access(auth, FailureLimiter(settings.auth_failures, settings.auth_window_s),
                    frozenset(settings.allowed_origins))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await auth.load_secret()
        if not tokens:
            log.warning("no API tokens configured: every route but /healthz will refuse access")
        yield
        await hub.close()
        await live.close()

    hub = Hub(bus)
    live = LiveFrames(bus)
    # The spec needs a token like every other route (it maps the whole API): /openapi.json
    # below; /docs is web/routes_docs.py (Swagger UI from local files, CSP-clean); no /redoc.
    app = FastAPI(title="Vigil", version="0.1.0", description="Real-time video analytics API", lifespan=lifespan,
                  openapi_url=None, docs_url=None, redoc_url=None)
    Viewer = Annotated[Principal, Depends(access.viewer)]

    @app.get("/healthz")
    async def healthz() -> dict:
        """Liveness: the process answers and Redis is reachable. No token needed."""
        try:
            await asyncio.wait_for(bus.r.ping(), 2)
            return {"ok": True}
        except Exception:
            return JSONResponse({"ok": False, "redis": "unreachable"}, status_code=503)  # type: ignore[return-value]

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(who: Viewer) -> JSONResponse:
        return JSONResponse(with_body_components(app.openapi()))

    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def redis_down(request: Request, exc: Exception) -> JSONResponse:
        # Redis restarting or unreachable: a temporary condition, not a server bug.
        log.warning("%s %s: Redis unavailable (%s)", request.method, request.url.path, type(exc).__name__)
        return JSONResponse({"detail": "storage unavailable; try again shortly"}, status_code=503,
                            headers={"Retry-After": "2"})

    @app.middleware("http")
    async def guard(request: Request, call_next):  # noqa: ANN001, ANN202 - Starlette middleware signature
        length = request.headers.get("content-length")
        if length and (not (length.isascii() and length.isdigit()) or int(length) > MAX_REQUEST_BYTES):
            return JSONResponse({"detail": f"request body larger than {MAX_REQUEST_BYTES} bytes"}, status_code=413)
        refused = csrf.refusal(request.method, request.url.path, request.headers, access.origins)
        if refused:
            response = JSONResponse({"detail": refused[1]}, status_code=refused[0])
        else:
            response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    app.include_router(auth_router(access, settings))
    app.include_router(cameras_router(bus, access, sources))
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
        await live_socket(socket, bus, access, hub)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.include_router(docs_router(access))
    app.mount("/docs/assets", DOCS_ASSETS, name="docs-assets")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.started = time.time()
    app.state.live = live  # the web stage ends open live streams before the server stops
    return app
