"""The FastAPI app: REST, the live websocket and the dashboard.

Every route but /healthz needs a token: `Authorization: Bearer <token>`, or the session
cookie the dashboard gets from POST /api/login.
"""


import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Annotated

import msgspec
from fastapi import Depends, FastAPI, HTTPException, Path as PathParam, Query, Request, Response, WebSocket
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from bus import messages
from bus.connection import Bus, redact_url
from bus.messages import Alert, Event, Packet
from bus.names import ID_PATTERN
from bus.registry import Registry
from web.auth import COOKIE, Authenticator, Principal, RateLimiter, hash_token, new_secret
from web.live import live_socket
from web.routes_whip import whip_router
from web.settings import TokenEntry, WebSettings

log = logging.getLogger("vigil.web")
STATIC = Path(__file__).parent / "static"
PacketId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_.:-]{1,160}$")]
CameraId = Annotated[str, PathParam(pattern=ID_PATTERN)]


class LoginBody(BaseModel):
    token: str = Field(..., min_length=1, max_length=512)


def _json(data: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(data), status_code=status, media_type="application/json")


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
    limiter = RateLimiter()
    registry = Registry(bus)
    app = FastAPI(title="Vigil", version="0.1.0", description="Real-time video analytics API")

    @app.on_event("startup")
    async def _startup() -> None:
        auth.secret = await _session_secret(bus)
        if not tokens:
            log.warning("no API tokens configured: every route but /healthz will refuse access")

    def principal(request: Request) -> Principal | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return auth.check_token(header[7:].strip())
        return auth.check_session(request.cookies.get(COOKIE))

    def viewer(request: Request) -> Principal:
        who = principal(request)
        if who is None:
            raise HTTPException(401, "missing or invalid token", headers={"WWW-Authenticate": "Bearer"})
        return who

    Viewer = Annotated[Principal, Depends(viewer)]
    app.include_router(whip_router(bus, viewer))

    # -- open ----------------------------------------------------------------------------
    @app.get("/healthz", include_in_schema=True)
    async def healthz() -> dict:
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
            raise HTTPException(401, "invalid token")
        response.set_cookie(
            COOKIE, auth.issue_session(who), httponly=True, samesite="strict", secure=settings.cookie_secure,
            max_age=int(settings.session_hours * 3600),
        )
        return {"name": who.name, "role": who.role}

    @app.post("/api/logout")
    async def logout(response: Response) -> dict:
        response.delete_cookie(COOKIE)
        return {"ok": True}

    # -- authenticated ---------------------------------------------------------------------
    @app.get("/api/me")
    async def me(who: Viewer) -> dict:
        return {"name": who.name, "role": who.role}

    @app.get("/api/cameras")
    async def cameras(who: Viewer) -> Response:
        out = []
        for cam in (await registry.cameras()).values():
            raw = await bus.r.get(bus.keys.camera_status(cam.id))
            status = msgspec.json.decode(raw) if raw else {"state": "unknown"}
            out.append({
                "id": cam.id, "name": cam.name or cam.id, "source": redact_url(cam.url) if "://" in cam.url else Path(cam.url).name,
                "sample_fps": cam.sample_fps, "enabled": cam.enabled, "status": status,
                "snapshot_url": f"/api/cameras/{cam.id}/snapshot.jpg",
            })
        return _json(out)

    @app.get("/api/cameras/{camera_id}/snapshot.jpg")
    async def snapshot(camera_id: CameraId, who: Viewer) -> Response:
        rows = await bus.range(bus.keys.frames(camera_id), messages.FrameStreamItem, reverse=True, count=5)
        for _, msg in rows:
            if isinstance(msg, messages.Frame):
                return Response(msg.jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
        raise HTTPException(404, "no frame yet for this camera")

    @app.get("/api/events")
    async def events(who: Viewer, limit: int = Query(50, ge=1, le=500), camera: str | None = None) -> Response:
        rows = await bus.range(bus.keys.events, Event, reverse=True, count=limit if camera is None else 2000)
        items = [e for _, e in rows if camera is None or e.camera == camera][:limit]
        return _json({"items": [messages.to_builtins(e) for e in items]})

    @app.get("/api/alerts")
    async def alerts(who: Viewer, limit: int = Query(50, ge=1, le=500)) -> Response:
        rows = await bus.range(bus.keys.alerts, Alert, reverse=True, count=limit)
        return _json({"items": [messages.to_builtins(a) for _, a in rows]})

    async def _packet(packet_id: str) -> Packet:
        ref = await bus.r.get(bus.keys.packet_ref(packet_id))
        if ref is None:
            raise HTTPException(404, "unknown packet (or trimmed by retention)")
        rows = await bus.range(bus.keys.packets, Packet, start=ref.decode(), end=ref.decode())
        if not rows:
            raise HTTPException(404, "packet trimmed by retention")
        return rows[0][1]

    @app.get("/api/packets/{packet_id}")
    async def packet(packet_id: PacketId, who: Viewer) -> Response:
        p = await _packet(packet_id)
        return _json({
            "id": p.id, "camera": p.camera, "reason": p.reason, "width": p.width, "height": p.height,
            "temporal_ids": p.temporal_ids, "motion": messages.to_builtins(p.motion),
            "frames": [{"ts": f.ts, "temporal_id": f.temporal_id, "motion": f.motion,
                        "url": f"/api/packets/{p.id}/frames/{i}.jpg"} for i, f in enumerate(p.frames)],
        })

    @app.get("/api/packets/{packet_id}/frames/{index}.jpg")
    async def packet_frame(packet_id: PacketId, index: int, who: Viewer) -> Response:
        p = await _packet(packet_id)
        if not 0 <= index < len(p.frames):
            raise HTTPException(404, "no such frame in this packet")
        return Response(p.frames[index].jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        await live_socket(socket, bus, auth)

    # -- dashboard -------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.started = time.time()
    return app
