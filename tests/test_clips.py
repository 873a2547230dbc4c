"""Clips: the recorder makes a WebM per packet with pre/post-roll from the real frames ring;
events and alerts play and download; without a recording the packet's keyframes still play."""

from __future__ import annotations

import asyncio
import io
import time

import av
import httpx
import pytest

from bus.clips import ClipStore
from bus.messages import Alert, Camera, Event, MotionRule
from recorder.settings import RecorderSettings
from vigil.config import VigilConfig
from vigil.runtime import Pipeline, seed_registry
from web.auth import hash_token
from web.settings import TokenEntry, WebSettings

pytestmark = pytest.mark.integration
TOKEN = "clips-token-" + "c" * 16


def frames_of(webm: bytes) -> tuple[int, float]:
    with av.open(io.BytesIO(webm)) as c:
        pts = [f.time for f in c.decode(video=0)]
    return len(pts), (pts[-1] - pts[0]) if pts else 0.0


async def test_event_and_alert_clips_with_pre_and_post_roll(bus, media, monkeypatch):
    from web.app import create_app

    monkeypatch.delenv("VIGIL_TOKEN", raising=False)
    cfg = VigilConfig(cameras=[Camera(id="lot", url=str(media / "car-detection.mp4"), pace="realtime")],
                      rules=[MotionRule(id="moving", min_area=0.002, quiet_s=3, consolidate_s=10)],
                      recorder=RecorderSettings(pre_roll_s=2, post_roll_s=2, retention_s=600))
    await seed_registry(bus, cfg)
    pipe = Pipeline(bus, cfg, ("ingest", "scheduler", "analyzer", "alerts", "recorder"))
    await pipe.start()
    store = ClipStore(bus)
    app = create_app(bus, WebSettings(tokens=[TokenEntry(name="t", role="viewer", sha256=hash_token(TOKEN))]))
    try:
        event = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            rows = await bus.range(bus.keys.events, Event)
            recorded = [e for _, e in rows if (c := await store.get(e.packet_id)) and c.source == "recording"]
            if recorded:
                event = recorded[0]
                break
            await asyncio.sleep(0.5)
        assert event is not None, "no recorded clip for any event within 90 s"
        alerts = [a for _, a in await bus.range(bus.keys.alerts, Alert)]
        assert alerts, "no alert"
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vigil",
                                         headers={"Authorization": f"Bearer {TOKEN}"}) as client:
                assert (await client.get(f"/api/events/{event.id}/clip.webm", headers={"Authorization": ""})).status_code == 401
                res = await client.get(f"/api/events/{event.id}/clip.webm")
                assert res.status_code == 200 and res.headers["content-type"] == "video/webm"
                assert res.headers["vigil-clip-source"] == "recording"
                n, span = frames_of(res.content)
                packet = (await client.get(f"/api/packets/{event.packet_id}")).json()
                # More than the packet's keyframes: every sampled frame plus pre/post-roll.
                assert n > len(packet["frames"]), (n, len(packet["frames"]))
                kf_span = packet["frames"][-1]["wall"] - packet["frames"][0]["wall"]
                assert span > kf_span + 1.0, (span, kf_span)
                dl = await client.get(f"/api/events/{event.id}/clip.webm?download=true")
                assert dl.headers["content-disposition"].startswith("attachment;")
                # The alert's clip: its packets joined; it decodes.
                alert = alerts[0]
                res = await client.get(f"/api/alerts/{alert.id}/clip.webm")
                assert res.status_code == 200 and frames_of(res.content)[0] >= 1
                # No recording (expired, recorder off): the packet's keyframes still play.
                await bus.r.delete(bus.keys.clip(event.packet_id))
                res = await client.get(f"/api/events/{event.id}/clip.webm")
                assert res.status_code == 200 and res.headers["vigil-clip-source"] == "keyframes"
                assert frames_of(res.content)[0] == len(packet["frames"])
                assert (await client.get("/api/events/evt-nope/clip.webm")).status_code == 404
                ttl = await bus.r.ttl(bus.keys.clip(alert.packet_ids[0])) if alert.packet_ids else 600
                assert 0 < ttl <= 600 or ttl == -2
    finally:
        await pipe.shutdown()
