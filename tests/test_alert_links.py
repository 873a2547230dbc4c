"""Links receivers can follow: absolute snapshot and frame URLs in webhooks (and MQTT, in
test_mqtt), from `alerts.public_url`; the onset frame an alert opened at onset points at;
webhooks carry notifications only; a detector's evidence at onset upgrades the onset alert."""

from __future__ import annotations

import time

import httpx
import pytest
from pydantic import ValidationError

from alerts.links import absolute
from alerts.settings import AlertsSettings, WebhookSettings
from bus.messages import ActivityNote, LabelRule, MotionRule, WebhookEndpoint
from bus.registry import Registry
from bus.webhooks import WebhookStore
from tests.alerting import alerts_in_stream, event, note, running, settled, start_note, wait_for
from tests.receiver import Receiver
from vigil.config import parse_config
from vigil.runtime import alerts_settings

SECRET = "whsec-links-" + "k" * 20
PUBLIC = "https://vigil.example.com/cctv"


def test_public_url_is_checked_and_defaults_to_the_web_address():
    assert AlertsSettings(public_url="https://vigil.example.com/").public_url == "https://vigil.example.com"
    for bad in ("ftp://vigil.example.com", "https://user:pw@vigil.example.com", "https://vigil.example.com/?t=1",
                "vigil.example.com"):
        with pytest.raises(ValidationError):
            AlertsSettings(public_url=bad)
    assert alerts_settings(parse_config({"web": {"host": "127.0.0.1", "port": 8123}})).public_url == "http://127.0.0.1:8123"
    everywhere = alerts_settings(parse_config({"web": {"host": "0.0.0.0", "port": 80}})).public_url
    assert everywhere.startswith("http://") and "0.0.0.0" not in everywhere
    own = parse_config({"alerts": {"public_url": PUBLIC}, "web": {"port": 1}})
    assert alerts_settings(own).public_url == PUBLIC


def test_absolute_keeps_absolute_and_empty_links():
    e = event("c", "c-1", 0, 1, ["person"])
    assert absolute(e, PUBLIC).frames[0].url == f"{PUBLIC}/api/packets/c-1/frames/0.jpg"
    assert absolute(e, None) is e


async def test_webhooks_carry_absolute_links_and_only_notifications(bus):
    rec = Receiver(SECRET).start()
    try:
        await Registry(bus).put_rule(LabelRule(id="person", label="person", quiet_s=2))
        await WebhookStore(bus).put_endpoint(WebhookEndpoint(id="hook", url=rec.url, secret=SECRET, allow_private=True,
                                                             events=["*"]))
        settings = AlertsSettings(tick_s=3600, public_url=PUBLIC, webhooks=WebhookSettings(backoff_base_s=0.05))
        async with running(bus, settings) as svc:
            base = time.time() - 60
            for i, labels in enumerate((["person"], ["person"], ["person"], ["motion"], ["motion"])):
                await bus.publish(bus.keys.events, event("door", f"door-{i}", base + 4 * i, base + 4 * i + 4, labels))
            await settled(bus, bus.keys.events, bus.keys.ALERTERS)
            await svc.resolve_quiet(time.time())
            alerts = await alerts_in_stream(bus)
            await wait_for(lambda: _n(rec, 5 + 2), timeout=15)  # 5 events, open and resolved
    finally:
        rec.stop()
    assert [a.notify for a in alerts] == [True, False, False, True]  # two silent evidence changes
    got = rec.accepted()
    assert sorted(h.event for h in got if h.event.startswith("alert.")) == ["alert.open", "alert.resolved"]
    for h in got:
        if h.event == "event":
            assert h.body["frames"][0]["url"].startswith(f"{PUBLIC}/api/packets/door-")
        else:
            assert h.body["snapshot_url"] == f"{PUBLIC}/api/packets/door-2/frames/0.jpg" or h.event == "alert.open"
    resolved = next(h.body for h in got if h.event == "alert.resolved")
    assert resolved["event_ids"] == ["evt-door-0", "evt-door-1", "evt-door-2"] and resolved["event_count"] == 3


async def _n(rec: Receiver, n: int) -> bool:
    return len(rec.accepted()) >= n


async def test_onset_frame_is_served_for_the_onset_alerts_snapshot(bus, monkeypatch):
    from web.app import create_app
    from web.auth import hash_token
    from web.settings import TokenEntry, WebSettings

    await Registry(bus).put_rule(MotionRule(id="moving", min_area=0.01, fast=True))
    async with running(bus):
        await note(bus, start_note("gate", "gate-act", time.time(), packet_id="gate-0"))
        alert = (await wait_for(lambda: alerts_in_stream(bus), timeout=5))[0]
    assert alert.snapshot_url == "/api/activities/gate-act/onset.jpg"
    monkeypatch.delenv("VIGIL_TOKEN", raising=False)
    app = create_app(bus, WebSettings(tokens=[TokenEntry(name="v", role="viewer", sha256=hash_token("viewer-" + "v" * 20))]))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vigil") as client:
            auth = {"Authorization": "Bearer viewer-" + "v" * 20}
            r = await client.get(alert.snapshot_url, headers=auth)
            assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
            assert (await client.get(alert.snapshot_url)).status_code == 401
            assert (await client.get("/api/activities/nope/onset.jpg", headers=auth)).status_code == 404


async def test_detector_evidence_at_onset_upgrades_the_onset_alert(bus):
    """The hook for an onset detector: an `evidence` note for the activity's onset packet."""
    await Registry(bus).put_rule(LabelRule(id="person", label="person", fast=True))
    async with running(bus):
        now = time.time()
        await note(bus, start_note("yard", "yard-act", now, packet_id="yard-0"))
        await wait_for(lambda: alerts_in_stream(bus), timeout=5)
        await note(bus, ActivityNote(camera="yard", activity="yard-act", state="evidence", onset_wall=now,
                                     onset_ts=0.0, wall=now + 0.2, ts=0.2, packet_id="yard-0", labels=["person"],
                                     counts={"person": 2}, source="cpu:coco", created=time.time()))
        alerts = await wait_for(lambda: _states(bus, 2), timeout=5)
    assert [(a.id, a.state, a.phase, a.notify) for a in alerts] == [
        ("alr-person-yard-0", "open", "onset", True), ("alr-person-yard-0", "update", "onset", True)]
    assert alerts[-1].message == "Possible: 2 x person at onset (cpu:coco); awaiting the verdict."
    assert alerts[-1].counts == {"person": 2} and alerts[-1].labels == ["person"]


async def _states(bus, n):
    got = await alerts_in_stream(bus)
    return got if len(got) >= n else None
