"""The live websocket on a real uvicorn server: auth, camera status, resume from the last id."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import uvicorn
import websockets

from bus.messages import Event, EventFrame, MotionSummary, utc
from web.auth import hash_token
from web.settings import TokenEntry, WebSettings

TOKEN = "ws-token-12345678901234"


@pytest.fixture
async def server(bus, free_port, monkeypatch):
    from web.app import create_app

    monkeypatch.delenv("VIGIL_TOKEN", raising=False)
    app = create_app(bus, WebSettings(tokens=[TokenEntry(name="t", role="viewer", sha256=hash_token(TOKEN))]))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(srv.serve())
    while not srv.started:
        await asyncio.sleep(0.02)
    yield f"ws://127.0.0.1:{free_port}/ws", bus
    srv.should_exit = True
    await task


async def _emit(bus, i: int) -> None:
    t = utc(time.time())
    e = Event(id=f"evt-c-{i}", camera="c", start=t, end=t, packet_id=f"c-{i}", reason="motion", summary=f"n{i}",
              labels=[], motion=MotionSummary(area=0.0), backend="cpu", model="m", latency_ms=1, visual_tokens=0,
              frames=[EventFrame(ts=0, temporal_id=0, url="/x")])
    await bus.publish_once(bus.keys.events, bus.keys.once("event", e.id), e)


async def _collect(ws, n: int, timeout: float = 10) -> list[dict]:
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and (left := deadline - time.monotonic()) > 0:
        try:
            msg = json.loads(await asyncio.wait_for(ws.recv(), left))
        except asyncio.TimeoutError:
            break
        if msg["type"] == "event":
            out.append(msg)
    return out


async def test_resume_gets_exactly_the_missed_events(server):
    url, bus = server
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"token": TOKEN}))
        assert json.loads(await ws.recv())["type"] == "hello"
        status = json.loads(await ws.recv())
        assert status["type"] == "status" and status["cameras"] == []
        for i in range(3):
            await _emit(bus, i)
        got = await _collect(ws, 3)
        assert [m["id"] for m in got] == ["evt-c-0", "evt-c-1", "evt-c-2"]
        last = got[-1]["cursor"]
    for i in range(3, 8):  # while nobody listens
        await _emit(bus, i)
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"token": TOKEN, "since": last}))
        missed = await _collect(ws, 5)
        assert [m["id"] for m in missed] == [f"evt-c-{i}" for i in range(3, 8)]
        await _emit(bus, 8)
        assert [m["id"] for m in await _collect(ws, 1)] == ["evt-c-8"]
        assert await _collect(ws, 1, timeout=2.5) == []  # nothing twice


async def test_unauthenticated_socket_is_closed(server):
    url, _ = server
    async with websockets.connect(url) as ws:
        await ws.send("not json")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd.code == 4401
