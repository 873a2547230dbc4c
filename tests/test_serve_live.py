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
