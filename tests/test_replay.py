"""Replay a rule over stored packets: web queues the job, a real analyzer worker (cpu backend)
runs it over real footage, the web returns what would have matched."""

from __future__ import annotations

import asyncio
import time

import av
import httpx
import pytest

from analyzer.backends import make_backend
from analyzer.service import AnalyzerService
from analyzer.settings import AnalyzerSettings
from bus.messages import MotionSummary, Packet, PacketFrame
from ingest.prepare import model_jpeg
from scheduler.temporal import temporal_ids
from web.auth import hash_token
from web.settings import TokenEntry, WebSettings

ADMIN, VIEWER = "replay-admin-token-123", "replay-viewer-token-123"


def _packet(path, camera: str, first: int) -> Packet:
    frames = []
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i >= first and (i - first) % 2 == 0:
                jpeg, w, h = model_jpeg(f, 448, 85)
                frames.append((f.time, jpeg, w, h))
            if len(frames) == 6:
                break
    ts = [t for t, *_ in frames]
    ids = temporal_ids(ts)
    now = time.time()
    return Packet(id=f"{camera}-{first}", camera=camera, reason="motion", width=frames[0][2], height=frames[0][3],
                  frames=[PacketFrame(seq=k, ts=t, wall=now, temporal_id=ids[0][k], motion=0.1, jpeg=j)
                          for k, (t, j, _, _) in enumerate(frames)],
                  temporal_ids=ids, motion=MotionSummary(area=0.1), created=now)


@pytest.fixture
async def setup(bus, media, monkeypatch):
    from web.app import create_app

    monkeypatch.delenv("VIGIL_TOKEN", raising=False)
    for p in (_packet(media / "vtest.avi", "path", 100), _packet(media / "car-detection.mp4", "lot", 0)):
        await bus.publish(bus.keys.packets, p)
    settings = AnalyzerSettings(stale_after_s=1e6)
    worker = AnalyzerService(bus, settings, make_backend(settings), consumer="t1")
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    app = create_app(bus, WebSettings(tokens=[TokenEntry(name="a", role="admin", sha256=hash_token(ADMIN)),
                                              TokenEntry(name="v", role="viewer", sha256=hash_token(VIEWER))]))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://v") as client:
            yield client
    stop.set()
    await task


async def _wait(client, job: str) -> dict:
    for _ in range(300):
        res = (await client.get(f"/api/replay/{job}", headers={"Authorization": f"Bearer {VIEWER}"})).json()
        if res["state"] in ("done", "error"):
            return res
        await asyncio.sleep(0.2)
    pytest.fail("replay did not finish")


async def test_replay_a_structured_rule_over_stored_packets(setup):
    client = setup
    admin = {"Authorization": f"Bearer {ADMIN}"}
    res = await client.post("/api/replay", json={"rule": {"kind": "label", "label": "person", "id": "people"}},
                            headers=admin)
    assert res.status_code == 202, res.text
    out = await _wait(client, res.json()["job"])
    assert out["state"] == "done" and out["scanned"] == 2
    by_cam = {r["camera"]: r for r in out["results"]}
    assert by_cam["path"]["match"] is True and "person" in by_cam["path"]["evidence"]
    assert by_cam["lot"]["match"] is False
    assert len(by_cam["path"]["frames"]) == 6 and by_cam["path"]["frames"][0]["url"].startswith("/api/packets/")
    # One camera only, and an ad-hoc prompt the cpu backend cannot answer (it says so).
    res = await client.post("/api/replay", json={"prompt": "a person climbs the fence", "camera": "path"}, headers=admin)
    out = await _wait(client, res.json()["job"])
    assert [r["camera"] for r in out["results"]] == ["path"]
    assert out["results"][0]["match"] is False and "cpu" in out["results"][0]["evidence"].lower()


async def test_replay_input_and_roles(setup):
    client = setup
    admin = {"Authorization": f"Bearer {ADMIN}"}
    assert (await client.post("/api/replay", json={"prompt": "x y z"},
                              headers={"Authorization": f"Bearer {VIEWER}"})).status_code == 403
    assert (await client.post("/api/replay", json={}, headers=admin)).status_code == 422
    assert (await client.post("/api/replay", json={"rule_id": "nope"}, headers=admin)).status_code == 404
    assert (await client.post("/api/replay", json={"rule": {"kind": "label"}}, headers=admin)).status_code == 422
    assert (await client.post("/api/replay", json={"prompt": "ok prompt", "limit": 10_000}, headers=admin)).status_code == 422
    assert (await client.post("/api/replay", json={"prompt": "ok prompt", "since": "2026-01-02T00:00:00Z",
                                                   "until": "2026-01-01T00:00:00Z"}, headers=admin)).status_code == 422
    assert (await client.get("/api/replay/" + "0" * 32, headers=admin)).status_code == 404
    assert (await client.get("/api/replay/../../etc", headers=admin)).status_code == 404


async def test_packet_view_shows_the_prompt_and_raw_answer(bus, monkeypatch):
    """The analyzer keeps what it asked beside the event; the packet inspector's API returns it."""
    from bus.messages import PromptRule
    from bus.registry import Registry
    from tests.analyzer_helpers import make_packet, synthetic
    from tests.fake_openai import FakeOpenAI
    from web.app import create_app

    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.delenv("VIGIL_TOKEN", raising=False)
    await Registry(bus).put_rule(PromptRule(id="fence", prompt="a person climbs the fence"))
    packet = make_packet(synthetic(), camera="cam1", pid="cam1-7-0")
    entry = await bus.publish(bus.keys.packets, packet)
    await bus.r.set(bus.keys.packet_ref(packet.id), entry)
    with FakeOpenAI() as server:
        settings = AnalyzerSettings(backend="openai", stale_after_s=1e6)
        settings.openai.base_url = server.base_url
        worker = AnalyzerService(bus, settings, make_backend(settings), consumer="p1")
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        for _ in range(100):
            if await bus.r.xlen(bus.keys.events):
                break
            await asyncio.sleep(0.1)
        stop.set()
        await task
    app = create_app(bus, WebSettings(tokens=[TokenEntry(name="v", role="viewer", sha256=hash_token(VIEWER))]))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://v") as client:
            view = (await client.get(f"/api/packets/{packet.id}", headers={"Authorization": f"Bearer {VIEWER}"})).json()
    assert "a person climbs the fence" in view["prompt"] and "[system]" in view["prompt"]
    assert "fake model" in view["raw_answer"] and view["event_id"] == f"evt-{packet.id}"
