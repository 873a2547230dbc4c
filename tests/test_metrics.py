"""/metrics after the real pipeline ran (file camera, cpu backend, a motion rule, a real
webhook receiver), parsed with prometheus_client's text parser: names, types, units."""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from alerts.settings import AlertsSettings, WebhookEndpointConfig, WebhookSettings
from bus.messages import Camera, MotionRule
from tests.receiver import Receiver
from vigil.config import VigilConfig
from vigil.runtime import Pipeline, seed_registry
from web.auth import hash_token
from web.settings import TokenEntry, WebSettings

pytestmark = pytest.mark.integration
TOKEN = "metrics-token-" + "m" * 16
SECRET = "w" * 32

EXPECTED = {  # family name (as the parser reports it) -> type
    "vigil_camera_frames_decoded": "counter", "vigil_camera_frames_sampled": "counter",
    "vigil_camera_frames_dropped": "counter", "vigil_camera_reconnects": "counter",
    "vigil_camera_last_frame_age_seconds": "gauge", "vigil_camera_streaming": "gauge",
    "vigil_queue_entries": "gauge", "vigil_queue_pending_entries": "gauge", "vigil_stage_workers": "gauge",
    "vigil_scheduler_frames_scored": "counter", "vigil_scheduler_packets": "counter",
    "vigil_scheduler_packets_by_reason": "counter",
    "vigil_analyzer_events": "counter", "vigil_analyzer_in_flight_packets": "gauge",
    "vigil_analyzer_latency_seconds": "histogram", "vigil_analyzer_event_age_seconds": "histogram",
    "vigil_alerts_changes": "counter", "vigil_alerts_open_delay_seconds": "histogram", "vigil_alerts_open": "gauge",
    "vigil_webhook_deliveries": "counter", "vigil_webhook_request_duration_seconds": "histogram",
    "vigil_webhook_dead_letters": "gauge", "vigil_web_websocket_clients": "gauge",
}


async def test_metrics_follow_prometheus_conventions(bus, media, monkeypatch):
    from web.app import create_app

    monkeypatch.setenv("HOOK_SECRET", SECRET)
    monkeypatch.delenv("VIGIL_TOKEN", raising=False)
    rec = Receiver(SECRET).start()
    cfg = VigilConfig(
        cameras=[Camera(id="lot", url=str(media / "car-detection.mp4"), pace="fast", duration=20)],
        rules=[MotionRule(id="moving", min_area=0.001, quiet_s=1, consolidate_s=1)],
        alerts=AlertsSettings(webhooks=WebhookSettings(endpoints=[WebhookEndpointConfig(
            id="rec", url=rec.url, secret_env="HOOK_SECRET", allow_private=True, events=["*"])])),
    )
    cfg.analyzer.stale_after_s = 1e9
    await seed_registry(bus, cfg)
    pipe = Pipeline(bus, cfg, ("ingest", "scheduler", "analyzer", "alerts"))
    await pipe.start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            hist = await bus.r.hgetall(bus.keys.metrics_histograms)
            if len(rec.accepted()) >= 3 and any(b"vigil_webhook_request" in k for k in hist) and \
                    any(b"vigil_alerts_open_delay" in k for k in hist):
                break
            await asyncio.sleep(0.3)
        assert len(rec.accepted()) >= 3, "no webhook deliveries"
        await asyncio.sleep(1.5)  # one more analyzer snapshot and metrics flush
        app = create_app(bus, WebSettings(tokens=[TokenEntry(name="t", role="viewer", sha256=hash_token(TOKEN))]))
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vigil") as client:
                res = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        await pipe.shutdown()
        rec.stop()
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(res.text)}
    for name, kind in EXPECTED.items():
        assert name in families, f"{name} missing from /metrics"
        assert families[name].type == kind, f"{name}: {families[name].type}, expected {kind}"
    for f in families.values():
        if not f.name.startswith("vigil_"):
            continue
        for s in f.samples:
            assert "name" not in s.labels, f"{s.name}: a metric name packed into a label"
            if f.type == "counter":
                assert s.name.endswith(("_total", "_created")), s.name
            if f.type == "histogram":
                assert s.name.endswith(("_bucket", "_sum", "_count", "_created")), s.name
        # Durations are in seconds, and say so.
        assert not any(u in f.name for u in ("_ms", "_millis", "latency_ms")), f.name
        if {"latency", "duration", "delay", "age", "wait"} & set(f.name.split("_")):
            assert f.name.endswith("_seconds"), f.name
    # Real values, not just declarations.
    assert families["vigil_camera_frames_decoded"].samples[0].value > 0
    delivered = [s for s in families["vigil_webhook_deliveries"].samples
                 if s.name.endswith("_total") and s.labels["outcome"] == "delivered"]
    assert delivered and delivered[0].value >= 3
    lat = [s for s in families["vigil_analyzer_latency_seconds"].samples if s.name.endswith("_count")]
    assert lat and lat[0].value > 0
    assert os.environ.get("HOOK_SECRET") not in res.text
    # The Grafana dashboard in the repo only queries series /metrics has.
    import json
    import re

    from tests.conftest import ROOT

    dash = json.loads((ROOT / "deploy" / "grafana" / "vigil.json").read_text())
    sample_names = {s.name for f in families.values() for s in f.samples}
    for panel in dash["panels"]:
        for target in panel["targets"]:
            for name in re.findall(r"vigil_[a-z_]+", target["expr"]):
                family = re.sub(r"_(total|bucket|sum|count)$", "", name)
                assert name in sample_names or family in families, f"Grafana panel {panel['title']!r} queries {name}, not in /metrics"
