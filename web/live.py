"""The live websocket: events and alerts as they are written, with resume from a last id."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from fastapi import WebSocket, WebSocketDisconnect

from bus import messages
from bus.connection import Bus
from bus.messages import PublicMessage
from web.auth import COOKIE, Authenticator

log = logging.getLogger("vigil.web")
AUTH_TIMEOUT_S = 5.0
CLOSE_UNAUTHORIZED = 4401
SEND_TIMEOUT_S = 5.0  # a client that cannot take a message in this long is dropped
CLOSE_TOO_SLOW = 4408
STATUS_EVERY_S = 2.0


async def live_socket(socket: WebSocket, bus: Bus, auth: Authenticator) -> None:
    """Protocol: browsers are authenticated by their session cookie; other clients send
    `{"token": "..."}` first. Optional `{"since": "<stream id>"}` (or ?since=) resumes. Each
    message is the public JSON of an event or an alert plus `"cursor"`, the id to resume from."""
    await socket.accept()
    who = auth.check_session(socket.cookies.get(COOKIE))
    since = socket.query_params.get("since")
    if who is None:
        try:
            first = json.loads(await asyncio.wait_for(socket.receive_text(), AUTH_TIMEOUT_S))
            who = auth.check_token(str(first.get("token", ""))) if isinstance(first, dict) else None
            if isinstance(first, dict) and first.get("since"):
                since = str(first["since"])
        except (asyncio.TimeoutError, ValueError, WebSocketDisconnect):
            who = None
    if who is None:
        with contextlib.suppress(Exception):
            await socket.close(CLOSE_UNAUTHORIZED, "unauthorized")
        return
    start = since if since and _valid_id(since) else "$"
    cursors = {bus.keys.events: start, bus.keys.alerts: start}
    if start == "$":
        # Resolve "$" once so nothing written between reads is missed.
        for stream in cursors:
            info = await bus.r.xrevrange(stream, count=1)
            cursors[stream] = info[0][0].decode() if info else "0-0"
    await socket.send_text(json.dumps({"type": "hello", "user": who.name, "role": who.role}))
    reader = asyncio.create_task(_drain_client(socket))
    last_status = 0.0
    try:
        while not reader.done():
            if time.monotonic() - last_status >= STATUS_EVERY_S:
                last_status = time.monotonic()
                await asyncio.wait_for(socket.send_text(await _status(bus)), SEND_TIMEOUT_S)
            rows = await bus.read(cursors, PublicMessage, count=100, block_ms=1000)
            for stream, entry_id, msg in rows:
                cursors[stream] = entry_id
                body = messages.to_json(msg)[:-1] + b',"cursor":"' + entry_id.encode() + b'"}'
                try:
                    await asyncio.wait_for(socket.send_text(body.decode()), SEND_TIMEOUT_S)
                except asyncio.TimeoutError:
                    await socket.close(CLOSE_TOO_SLOW, "client too slow")
                    return
    except asyncio.TimeoutError:
        with contextlib.suppress(Exception):
            await socket.close(CLOSE_TOO_SLOW, "client too slow")
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        reader.cancel()


async def _status(bus: Bus) -> str:
    """Camera states for live badges (no URLs: nothing secret travels here)."""
    cams = []
    for cam_id in sorted(k.decode() for k in await bus.r.hkeys(bus.keys.cameras)):
        raw = await bus.r.get(bus.keys.camera_status(cam_id))
        st = json.loads(raw) if raw else {"state": "unknown"}
        cams.append({"camera": cam_id, **st})
    return json.dumps({"type": "status", "cameras": cams})


async def _drain_client(socket: WebSocket) -> None:
    with contextlib.suppress(Exception):
        while True:
            await socket.receive_text()


def _valid_id(value: str) -> bool:
    ms, _, seq = value.partition("-")
    return ms.isdigit() and (seq == "" or seq.isdigit()) and len(value) < 40
