"""The live websocket: events and alerts as they are written, with resume from a last id."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from fastapi import HTTPException, WebSocket, WebSocketDisconnect

from bus import messages
from bus.connection import Bus
from bus.messages import PublicMessage
from web.auth import COOKIE, Principal
from web.csrf import same_origin
from web.deps import Access
from web.ratelimit import client_key
from web.routes_cameras import status_for
from web.hub import Hub

log = logging.getLogger("vigil.web")
AUTH_TIMEOUT_S = 5.0
CLOSE_UNAUTHORIZED = 4401
CLOSE_RATE_LIMITED = 4429
SEND_TIMEOUT_S = 5.0  # a client that cannot take a message in this long is dropped
CLOSE_TOO_SLOW = 4408
STATUS_EVERY_S = 2.0
CATCH_UP_MAX = 10_000  # a resume further back than this many entries starts from there


def _id(entry: str) -> tuple[int, int]:
    ms, _, seq = entry.partition("-")
    return int(ms), int(seq or 0)


async def live_socket(socket: WebSocket, bus: Bus, access: Access, hub: Hub) -> None:
    """Protocol: browsers are authenticated by their session cookie (honoured only from
    Vigil's own origin: a page elsewhere cannot ride it); other clients send
    `{"token": "..."}` first. Optional `{"since": "<cursor>"}` (or ?since=) resumes. Each
    message is the public JSON of an event or an alert plus `"cursor"`, the id to resume
    from; `{"type": "status"}` messages carry camera states every few seconds."""
    await socket.accept()
    who = None
    origin = socket.headers.get("origin")
    if origin is None or same_origin(origin, socket.headers, access.origins):
        who = await access.auth.check_session(socket.cookies.get(COOKIE))
    since = socket.query_params.get("since")
    if who is None:
        try:
            first = json.loads(await asyncio.wait_for(socket.receive_text(), AUTH_TIMEOUT_S))
            if isinstance(first, dict):
                who = access.check_token(str(first.get("token", ""))[:600], client_key(socket))
                if first.get("since"):
                    since = str(first["since"])
        except (asyncio.TimeoutError, ValueError, WebSocketDisconnect):
            who = None
        except HTTPException:  # this address failed too often: refused unheard
            with contextlib.suppress(Exception):
                await socket.close(CLOSE_RATE_LIMITED, "too many failed attempts")
            return
    if who is None:
        with contextlib.suppress(Exception):
            await socket.close(CLOSE_UNAUTHORIZED, "unauthorized")
        return
    sub = hub.subscribe()  # buffer live entries from now on; the catch-up below fills the gap
    sent: dict[str, tuple[int, int]] = {}
    reader = asyncio.create_task(_drain_client(socket))
    try:
        await _send(socket, json.dumps({"type": "hello", "user": who.name, "role": who.role}))
        if since and _valid_id(since):
            for stream in hub.streams:
                for entry_id, msg in await bus.range(stream, PublicMessage, start=f"({since}", count=CATCH_UP_MAX):
                    await _send(socket, _frame(msg, entry_id))
                    sent[stream] = _id(entry_id)
        last_status = 0.0
        while not reader.done() and not sub.overflowed.is_set():
            if time.monotonic() - last_status >= STATUS_EVERY_S:
                last_status = time.monotonic()
                if who.session and await access.auth.check_session_id(who.session) is None:
                    await socket.close(CLOSE_UNAUTHORIZED, "session ended")  # logged out or revoked
                    return
                await _send(socket, await _status(bus, who))
            try:
                stream, entry_id, msg = await asyncio.wait_for(sub.queue.get(), 0.5)
            except asyncio.TimeoutError:
                continue
            if stream in sent and _id(entry_id) <= sent[stream]:
                continue  # already sent during the catch-up
            await _send(socket, _frame(msg, entry_id))
        if sub.overflowed.is_set():
            await socket.close(CLOSE_TOO_SLOW, "client too slow")
    except asyncio.TimeoutError:
        with contextlib.suppress(Exception):
            await socket.close(CLOSE_TOO_SLOW, "client too slow")
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.unsubscribe(sub)
        reader.cancel()


async def _send(socket: WebSocket, text: str) -> None:
    await asyncio.wait_for(socket.send_text(text), SEND_TIMEOUT_S)


def _frame(msg: PublicMessage, entry_id: str) -> str:
    return (messages.to_json(msg)[:-1] + b',"cursor":"' + entry_id.encode() + b'"}').decode()


async def _status(bus: Bus, who: Principal) -> str:
    """Camera states for live badges (redacted sources; errors in full for admins only)."""
    cams = []
    for cam_id in sorted(k.decode() for k in await bus.r.hkeys(bus.keys.cameras)):
        raw = await bus.r.get(bus.keys.camera_status(cam_id))
        st = json.loads(raw) if raw else {"state": "unknown"}
        cams.append({"camera": cam_id, **status_for(st, who)})
    return json.dumps({"type": "status", "cameras": cams})


async def _drain_client(socket: WebSocket) -> None:
    with contextlib.suppress(Exception):
        while True:
            await socket.receive_text()


def _valid_id(value: str) -> bool:
    ms, _, seq = value.partition("-")
    # ASCII digits only: "٣".isdigit() is true, and Redis refuses such an id.
    return value.isascii() and ms.isdigit() and (seq == "" or seq.isdigit()) and len(value) < 40
