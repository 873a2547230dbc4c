"""`vigil serve` with a real-time file camera: events reach a websocket client while it plays."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import websockets

from tests.conftest import ROOT

pytestmark = pytest.mark.integration
TOKEN = "test-token-" + "x" * 20


@pytest.fixture
def served(media, free_port, tmp_path: Path):
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(
        f"cameras:\n  - id: lot\n    url: {media / 'car-detection.mp4'}\n    pace: realtime\n"
        f"rules:\n  - id: moving\n    label: motion\n    severity: info\n"
        f"web:\n  port: {free_port}\n"
    )
    env = {**os.environ, "VIGIL_TOKEN": TOKEN}
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "vigil.cli", "serve", "-c", str(cfg)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{free_port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    yield base, proc
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("vigil serve did not stop on SIGTERM")


def test_rest_needs_a_token(served):
    base, _ = served
    assert httpx.get(f"{base}/healthz").json() == {"ok": True}
    assert httpx.get(f"{base}/api/events").status_code == 401
    assert httpx.get(f"{base}/api/events", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = httpx.get(f"{base}/api/cameras", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    cams = ok.json()
    assert [c["id"] for c in cams] == ["lot"] and "car-detection.mp4" in cams[0]["source"]


async def test_websocket_streams_events_while_the_file_plays(served):
    base, _ = served
    url = base.replace("http", "ws") + "/ws"
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"token": "nope"}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd.code == 4401
    started = time.monotonic()
    got: list[dict] = []
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"token": TOKEN}))
        hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert hello["type"] == "hello"
        while time.monotonic() - started < 40 and not (
            any(m["type"] == "event" for m in got) and any(m["type"] == "alert" for m in got)
        ):
            got.append(json.loads(await asyncio.wait_for(ws.recv(), 40)))
    events = [m for m in got if m["type"] == "event"]
    assert events, "no event arrived while the file played"
    first = events[0]
    assert first["camera"] == "lot" and first["frames"] and "cursor" in first
    # The file is paced like a camera (cars start moving ~4 s in): events come while it plays.
    assert time.monotonic() - started < 31
    # Keyframes referenced by the event are served (with the token).
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        img = await client.get(first["frames"][0]["url"])
        assert img.status_code == 200 and img.content[:2] == b"\xff\xd8"
        assert (await client.get(first["frames"][0]["url"], headers={"Authorization": ""})).status_code == 401
    assert any(m["type"] == "alert" and m["state"] == "open" for m in got)


async def test_live_view_streams_new_frames_and_stops_reading_when_nobody_watches(served):
    base, _ = served
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=base, headers=auth, timeout=20) as client:
        assert (await client.get("/api/cameras/lot/live.mjpeg", headers={"Authorization": ""})).status_code == 401
        assert (await client.get("/api/cameras/nope/live.mjpeg")).status_code == 404
        parts: list[tuple[float, bytes]] = []
        viewers = None
        async with client.stream("GET", "/api/cameras/lot/live.mjpeg") as res:
            assert res.status_code == 200
            assert res.headers["content-type"].startswith("multipart/x-mixed-replace; boundary=")
            buf = b""
            async for chunk in res.aiter_bytes():
                buf += chunk
                while b"\r\n\r\n" in buf:
                    head, _, rest = buf.partition(b"\r\n\r\n")
                    n = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                    if len(rest) < n + 2:
                        break
                    parts.append((time.monotonic(), rest[:n]))
                    buf = rest[n + 2:]
                if len(parts) == 3 and viewers is None:
                    viewers = await client.get("/metrics")  # while the stream is open
                if len(parts) >= 11:
                    break
        assert viewers is not None
        assert 'vigil_web_live_viewers 1.0' in viewers.text
        assert all(p[:2] == b"\xff\xd8" for _, p in parts)
        assert len({p for _, p in parts[1:]}) == 10, "frames repeat: the stream is not live"
        # At the sampled rate (5 fps): ten new frames take about two seconds, not ten.
        assert parts[-1][0] - parts[1][0] < 6
        # Nobody watches any more: the per-camera reader is gone.
        for _ in range(50):
            if 'vigil_web_live_viewers 0.0' in (await client.get("/metrics")).text:
                break
            await asyncio.sleep(0.1)
        assert 'vigil_web_live_viewers 0.0' in (await client.get("/metrics")).text
