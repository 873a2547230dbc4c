"""The bus on a real redis-server: embedded start/stop, groups, ack, autoclaim, write-once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bus.connection import redact_url
from bus.messages import Camera, LabelRule, StreamEnd
from bus.registry import Registry
from bus.server import EmbeddedRedis


def _end(n: int) -> StreamEnd:
    return StreamEnd(camera="c", wall=time.time(), frames=n)


def test_embedded_server_starts_and_cleans_up():
    server = EmbeddedRedis()
    url = server.start()
    assert url.startswith("unix://") and server.socket.exists()
    pid = server.proc.pid
    server.stop()
    assert not Path(server.dir).exists()
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


async def test_consumer_group_ack_and_autoclaim(bus):
    stream, group = bus.keys.packets, bus.keys.ANALYZERS
    await bus.ensure_group(stream, group)
    await bus.ensure_group(stream, group)  # idempotent
    for i in range(3):
        await bus.publish(stream, _end(i))
    got = await bus.read_group(stream, group, "w1", StreamEnd, count=10, block_ms=100)
    assert [m.frames for _, m in got] == [0, 1, 2]
    await bus.ack(stream, group, got[0][0])
    # w1 "dies" holding two; w2 reclaims them once they have idled long enough.
    assert await bus.autoclaim(stream, group, "w2", StreamEnd, min_idle_ms=60_000) == []
    await asyncio.sleep(0.06)
    claimed = await bus.autoclaim(stream, group, "w2", StreamEnd, min_idle_ms=50)
    assert [m.frames for _, m in claimed] == [1, 2]
    info = await bus.group_info(stream, group)
    assert info["pending"] == 2


async def test_publish_once_writes_once(bus):
    marker = bus.keys.once("event", "evt-1")
    first = await bus.publish_once(bus.keys.events, marker, _end(1))
    again = await bus.publish_once(bus.keys.events, marker, _end(1))
    assert first and again is None
    assert await bus.r.xlen(bus.keys.events) == 1


async def test_frames_ring_buffer_is_bounded(bus):
    stream = bus.keys.frames("c")
    for i in range(1000):
        await bus.publish(stream, _end(i), maxlen=100)
    assert 100 <= await bus.r.xlen(stream) < 250  # MAXLEN ~ trims in whole nodes


async def test_registry_roundtrip(bus):
    reg = Registry(bus)
    await reg.put_camera(Camera(id="gate", url="rtsp://user:pw@10.0.0.5/stream"))
    await reg.put_rule(LabelRule(id="p", label="person"))
    assert (await reg.cameras())["gate"].url.endswith("/stream")
    assert list(await reg.rules()) == ["p"]
    assert await reg.remove_camera("gate") and await reg.cameras() == {}


def test_redact_url_hides_credentials():
    assert redact_url("rtsp://admin:secret@10.0.0.5:554/live?token=abc") == "rtsp://***@10.0.0.5:554/live"
    assert "secret" not in redact_url("redis://:secret@host:6379/0")
