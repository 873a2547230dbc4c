"""Every REST route, in-process against a real Redis: auth, roles, bad input, pagination."""

from __future__ import annotations

import json

import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from bus.messages import Alert, Camera, Event, EventFrame, Frame, MotionSummary, Packet, PacketFrame, RuleMatch, utc
from bus.registry import Registry
from web.auth import hash_token
from web.settings import TokenEntry, WebSettings

ADMIN, VIEWER, OLD = "admin-token-1234567890", "viewer-token-1234567890", "expired-token-1234567890"


@pytest.fixture
async def api(bus, monkeypatch):
    from web.app import create_app

    monkeypatch.delenv("VIGIL_TOKEN", raising=False)
    past = datetime.now(timezone.utc) - timedelta(days=1)
    settings = WebSettings(tokens=[
        TokenEntry(name="ops", role="admin", sha256=hash_token(ADMIN)),
        TokenEntry(name="wall", role="viewer", sha256=hash_token(VIEWER)),
        TokenEntry(name="old", role="admin", sha256=hash_token(OLD), expires=past),
    ], auth_failures=1000)  # these tests send many wrong tokens; the limit has its own tests (test_security_auth)
    app = create_app(bus, settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vigil") as client:
            yield client, bus


def h(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def _event(bus, camera: str, i: int, labels: list[str], summary: str, rules: list[RuleMatch] | None = None) -> Event:
    t = utc(time.time() - 1000 + i)
    pid = f"{camera}-{i}"
    e = Event(id=f"evt-{pid}", camera=camera, start=t, end=t, packet_id=pid, reason="motion", summary=summary,
              labels=labels, motion=MotionSummary(area=0.1), rules=rules or [], backend="cpu", model="m",
              latency_ms=5.0, visual_tokens=64, frames=[EventFrame(ts=float(i), temporal_id=0, url="/x")])
    await bus.publish_once(bus.keys.events, bus.keys.once("event", e.id), e)
    return e


async def test_every_route_needs_a_token(api):
    client, _ = api
    routes = [("GET", "/api/cameras"), ("POST", "/api/cameras"), ("GET", "/api/cameras/x"), ("GET", "/api/events"),
              ("GET", "/api/events/evt-x"), ("GET", "/api/alerts"), ("POST", "/api/alerts/a/ack"), ("GET", "/readyz"),
              ("GET", "/metrics"), ("GET", "/api/system"), ("GET", "/api/packets/p"), ("GET", "/api/me"),
              ("DELETE", "/api/cameras/x"), ("GET", "/api/cameras/x/snapshot.jpg"), ("GET", "/openapi.json"),
              ("GET", "/docs"), ("GET", "/api/sessions"), ("DELETE", "/api/sessions")]
    for method, path in routes:
        for headers in ({}, h("wrong"), h(OLD), {"Cookie": "vigil_session=forged.0000"}):
            res = await client.request(method, path, headers=headers)
            assert res.status_code == 401, (method, path, headers, res.status_code)
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/redoc")).status_code == 404  # no ReDoc page at all (it would need a CDN)


async def test_openapi_lists_the_routes(api):
    client, _ = api
    assert (await client.get("/openapi.json")).status_code == 401
    spec = (await client.get("/openapi.json", headers=h(VIEWER))).json()
    assert {"/api/cameras", "/api/events", "/api/alerts", "/metrics", "/readyz"} <= set(spec["paths"])


async def test_login_cookie_and_logout(api):
    client, _ = api
    assert (await client.post("/api/login", json={"token": OLD})).status_code == 401
    ok = await client.post("/api/login", json={"token": VIEWER})
    assert ok.status_code == 200 and "httponly" in ok.headers["set-cookie"].lower()
    assert (await client.get("/api/me")).json() == {"name": "wall", "role": "viewer"}
    await client.post("/api/logout")
    client.cookies.clear()
    assert (await client.get("/api/me")).status_code == 401


async def test_camera_crud_roles_and_redaction(api):
    client, bus = api
    cam = {"id": "gate", "url": "rtsp://admin:hunter2@10.1.2.3:554/live?auth=zzz", "sample_fps": 4}
    assert (await client.post("/api/cameras", json=cam, headers=h(VIEWER))).status_code == 403
    made = await client.post("/api/cameras", json=cam, headers=h(ADMIN))
    assert made.status_code == 201
    assert (await client.post("/api/cameras", json=cam, headers=h(ADMIN))).status_code == 409
    listing = await client.get("/api/cameras", headers=h(VIEWER))
    text = listing.text
    assert "hunter2" not in text and "admin" not in text and "zzz" not in text and "10.1.2.3" in text
    assert (await Registry(bus).camera("gate")).url == cam["url"]  # the registry keeps the real URL for ingest
    patched = await client.patch("/api/cameras/gate", json={"sample_fps": 2, "enabled": False}, headers=h(ADMIN))
    assert patched.status_code == 200 and patched.json()["sample_fps"] == 2
    assert (await Registry(bus).camera("gate")).enabled is False
    assert (await client.patch("/api/cameras/gate", json={"id": "other"}, headers=h(ADMIN))).status_code == 422
    assert (await client.delete("/api/cameras/gate", headers=h(ADMIN))).status_code == 204
    assert (await client.get("/api/cameras/gate", headers=h(ADMIN))).status_code == 404


@pytest.mark.parametrize("body, code", [
    (b"{not json", 400), (b"[1, 2]", 422), (b'{"id": "a"}', 422), (b'{"id": "../../etc", "url": "x"}', 422),
    (b'{"id": "a", "url": "x", "sample_fps": "many"}', 422), (b'{"id": "a", "url": "x", "sample_fps": 1000}', 422),
    (b'{"id": "a", "url": "' + b"x" * 70000 + b'"}', 413),
])
async def test_camera_bad_input(api, body, code):
    client, _ = api
    res = await client.post("/api/cameras", content=body, headers={**h(ADMIN), "Content-Type": "application/json"})
    assert res.status_code == code, res.text


async def test_path_traversal_and_huge_pages_are_refused(api):
    client, _ = api
    assert (await client.get("/api/cameras/..%2F..%2Fetc/status", headers=h(ADMIN))).status_code in (404, 422)
    assert (await client.get("/api/packets/..%2Fx/frames/0.jpg", headers=h(ADMIN))).status_code in (404, 422)
    assert (await client.get("/api/events?limit=100000", headers=h(ADMIN))).status_code == 422
    assert (await client.get("/api/events?cursor=DROP", headers=h(ADMIN))).status_code == 422
    assert (await client.get("/api/events?since=yesterday", headers=h(ADMIN))).status_code == 422


async def test_event_search_filters_and_cursor_pagination(api):
    client, bus = api
    made = []
    for i in range(30):
        made += [await _event(bus, "a" if i % 2 else "b", i, ["person"] if i % 3 == 0 else ["motion"],
                     f"summary number {i} {'red truck' if i == 7 else ''}",
                     [RuleMatch(rule="fence", match=i == 12, confidence=0.9, evidence="e")])]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"camera": "a", "limit": 4, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/events", params=params, headers=h(VIEWER))).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"evt-a-{i}" for i in range(29, 0, -2)]  # newest first, each once
    person = (await client.get("/api/events", params={"label": "person"}, headers=h(VIEWER))).json()["items"]
    assert {e["id"] for e in person} == {f"evt-{'a' if i % 2 else 'b'}-{i}" for i in range(0, 30, 3)}
    text = (await client.get("/api/events", params={"q": "RED truck"}, headers=h(VIEWER))).json()["items"]
    assert [e["id"] for e in text] == ["evt-a-7"]
    rule = (await client.get("/api/events", params={"rule": "fence"}, headers=h(VIEWER))).json()["items"]
    assert [e["id"] for e in rule] == ["evt-b-12"]
    since = made[25].start.isoformat()
    recent = (await client.get("/api/events", params={"since": since}, headers=h(VIEWER))).json()["items"]
    assert [e["id"] for e in recent] == [f"evt-{'a' if i % 2 else 'b'}-{i}" for i in range(29, 24, -1)]
    one = await client.get("/api/events/evt-a-7", headers=h(VIEWER))
    assert one.status_code == 200 and one.json()["event"]["summary"].startswith("summary number 7")
    assert (await client.get("/api/events/evt-nope", headers=h(VIEWER))).status_code == 404


async def test_packets_frames_and_snapshot(api):
    client, bus = api
    jpeg = b"\xff\xd8\xff\xe0" + b"0" * 100
    p = Packet(id="cam-1-0", camera="cam", reason="onset", width=448, height=252,
               frames=[PacketFrame(seq=i, ts=i * 0.2, wall=time.time(), temporal_id=i * 2, motion=0.1, jpeg=jpeg)
                       for i in range(3)], temporal_ids=[[0, 2, 4]], motion=MotionSummary(area=0.1), created=time.time())
    entry = await bus.publish(bus.keys.packets, p)
    await bus.r.set(bus.keys.packet_ref(p.id), entry)
    view = (await client.get("/api/packets/cam-1-0", headers=h(VIEWER))).json()
    assert view["temporal_ids"] == [[0, 2, 4]] and len(view["frames"]) == 3
    img = await client.get(view["frames"][2]["url"], headers=h(VIEWER))
    assert img.status_code == 200 and img.content == jpeg
    assert (await client.get("/api/packets/cam-1-0/frames/3.jpg", headers=h(VIEWER))).status_code == 404
    await Registry(bus).put_camera(Camera(id="cam", url="x.mp4"))
    assert (await client.get("/api/cameras/cam/snapshot.jpg", headers=h(VIEWER))).status_code == 404
    await bus.publish(bus.keys.frames("cam"), Frame(camera="cam", seq=0, ts=0, wall=0, width=2, height=2, jpeg=jpeg,
                                                    luma=b"\x00" * 4, luma_w=2, luma_h=2, src_width=2, src_height=2))
    snap = await client.get("/api/cameras/cam/snapshot.jpg", headers=h(VIEWER))
    assert snap.status_code == 200 and snap.content == jpeg


async def test_alerts_latest_state_filter_and_ack(api):
    client, bus = api
    t = utc(time.time())
    for seq, state in enumerate(["open", "update", "resolved"]):
        a = Alert(id="alr-1", state=state, rule="r", camera="a", severity="critical", title="t", message=state,
                  event_ids=["evt-1"], first_seen=t, last_seen=t, snapshot_url="/x", seq=seq)
        await bus.publish_once(bus.keys.alerts, bus.keys.once("alert", f"alr-1:{seq}"), a)
    latest = (await client.get("/api/alerts", headers=h(VIEWER))).json()["items"]
    assert [(a["id"], a["state"]) for a in latest] == [("alr-1", "resolved")]
    history = (await client.get("/api/alerts?latest=false", headers=h(VIEWER))).json()["items"]
    assert [a["state"] for a in history] == ["resolved", "update", "open"]
    assert (await client.get("/api/alerts?state=active", headers=h(VIEWER))).json()["items"] == []
    assert (await client.get("/api/alerts?severity=loud", headers=h(VIEWER))).status_code == 422
    ack = await client.post("/api/alerts/alr-1/ack", headers=h(VIEWER))
    assert ack.status_code == 200 and ack.json()["acknowledged"]["by"] == "wall"
    assert (await client.get("/api/alerts", headers=h(VIEWER))).json()["items"][0]["acknowledged"]["by"] == "wall"
    assert (await client.post("/api/alerts/alr-nope/ack", headers=h(VIEWER))).status_code == 404


async def test_readyz_metrics_and_system(api):
    client, bus = api
    res = await client.get("/readyz", headers=h(VIEWER))
    assert res.status_code == 503 and res.json()["redis"] is True  # no stage has reported yet
    for stage in ("ingest", "scheduler", "analyzer", "alerts"):
        await bus.r.set(bus.keys.stage_heartbeat(stage, "w1"), b'{"pid": 1}', ex=10)
    assert (await client.get("/readyz", headers=h(VIEWER))).json() == {
        "ready": True, "redis": True, "stages": {"ingest": 1, "scheduler": 1, "analyzer": 1, "alerts": 1}}
    await Registry(bus).put_camera(Camera(id="lot", url="x.mp4"))
    await bus.r.set(bus.keys.camera_status("lot"), b'{"state": "streaming", "decoded": 10, "sampled": 4, "dropped": 1}')
    text = (await client.get("/metrics", headers=h(VIEWER))).text
    assert 'vigil_camera_frames_dropped_total{camera="lot"} 1.0' in text
    assert 'vigil_stage_workers{stage="analyzer"} 1.0' in text
    system = (await client.get("/api/system", headers=h(VIEWER))).json()
    assert set(system["queues"]) == {"packets", "events"} and system["analyzers"] == []
    # An analyzer worker's snapshot says which detector runs (here the HOG fallback, and why).
    snap = {"worker": "w1", "backend": "cpu", "model": "opencv-hog-fallback", "events": 3, "latency_ms": {"p50": 1.0},
            "detector": {"name": "opencv-hog", "fallback": True, "reason": "object model not installed", "threads": 2}}
    await bus.r.set(bus.keys.analyzer_metrics("w1"), json.dumps(snap), ex=10)
    [a] = (await client.get("/api/system", headers=h(VIEWER))).json()["analyzers"]
    assert a["model"] == "opencv-hog-fallback" and a["detector"]["fallback"] is True
    assert a["detector"]["reason"] == "object model not installed"


async def test_oversized_bodies_and_security_headers(api):
    client, _ = api
    big = b"x" * (2 * 1024 * 1024)
    res = await client.post("/api/login", content=big, headers={"Content-Type": "application/json"})
    assert res.status_code == 413
    page = await client.get("/")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"


async def test_metrics_include_analyzer_snapshots(api):
    client, bus = api
    await bus.r.set(bus.keys.analyzer_metrics("w9"), b'{"v":1,"worker":"w9","backend":"cpu","in_flight":2,"events":7,'
                                                      b'"histograms":{"latency_seconds":{"le":[0.1,1],"counts":[1,3],'
                                                      b'"count":4,"sum":2.5}}}', ex=10)
    text = (await client.get("/metrics", headers=h(VIEWER))).text
    assert 'vigil_analyzer_in_flight_packets{backend="cpu",worker="w9"} 2.0' in text
    assert 'vigil_analyzer_events_total{backend="cpu",worker="w9"} 7.0' in text
    assert 'vigil_analyzer_latency_seconds_bucket{backend="cpu",le="+Inf",worker="w9"} 4.0' in text
    assert 'name="' not in text  # no metric names packed into a label


async def test_resolve_an_alert_by_hand(api):
    from alerts.settings import AlertsSettings
    from bus.messages import LabelRule
    from tests.alerting import alerts_in_stream, event, running, wait_for

    client, bus = api
    await Registry(bus).put_rule(LabelRule(id="people", label="person", quiet_s=600))
    async with running(bus, AlertsSettings(tick_s=0.1)):
        now = time.time()
        await bus.publish(bus.keys.events, event("gate", "gate-1", now - 1, now, ["person"]))
        opened = await wait_for(lambda: _first_open(bus, alerts_in_stream))
        assert (await client.post(f"/api/alerts/{opened.id}/resolve", headers=h(VIEWER))).status_code == 403
        assert (await client.post("/api/alerts/alr-none/resolve", headers=h(ADMIN))).status_code == 404
        res = await client.post(f"/api/alerts/{opened.id}/resolve", headers=h(ADMIN))
        assert res.status_code == 202
        done = await wait_for(lambda: _resolved(bus, alerts_in_stream, opened.id))
        assert "resolved by ops" in done.message


async def _first_open(bus, alerts_in_stream):
    return next((a for a in await alerts_in_stream(bus) if a.state == "open"), None)


async def _resolved(bus, alerts_in_stream, alert_id):
    return next((a for a in await alerts_in_stream(bus) if a.id == alert_id and a.state == "resolved"), None)


async def test_camera_timeline(api):
    client, bus = api
    await Registry(bus).put_camera(Camera(id="lot", url="x.mp4"))
    for i in (0, 1, 2, 50):
        await _event(bus, "lot", i, ["motion"], f"car {i}")
    await _event(bus, "gate", 3, ["person"], "elsewhere")
    res = await client.get("/api/cameras/lot/timeline?hours=1", headers=h(VIEWER))
    assert res.status_code == 200
    tl = res.json()
    assert [e["summary"] for e in tl["events"]] == ["car 0", "car 1", "car 2", "car 50"]
    assert tl["events"][0]["packet_id"] == "lot-0"
    assert len(tl["activities"]) == 2  # 0..2 s are one activity, 50 s another
    assert max(m for _, m in tl["motion"]) == pytest.approx(0.1)
    assert (await client.get("/api/cameras/nope/timeline", headers=h(VIEWER))).status_code == 404
    assert (await client.get("/api/cameras/lot/timeline?hours=0", headers=h(VIEWER))).status_code == 422


async def test_bulk_acknowledge(api):
    client, bus = api
    for i in (1, 2):
        a = Alert(id=f"alr-b{i}", state="open", rule="r", camera="lot", severity="info", title="t", message="m",
                  event_ids=[], first_seen=utc(time.time()), last_seen=utc(time.time()), snapshot_url="")
        await bus.publish_once(bus.keys.alerts, bus.keys.once("alert", f"{a.id}:0"), a)
    res = await client.post("/api/alerts/ack", json={"ids": ["alr-b1", "alr-b2", "alr-nope"]}, headers=h(VIEWER))
    assert res.status_code == 200
    assert res.json()["acknowledged"] == ["alr-b1", "alr-b2"] and res.json()["unknown"] == ["alr-nope"]
    items = (await client.get("/api/alerts", headers=h(VIEWER))).json()["items"]
    assert all(x["acknowledged"]["by"] == "wall" for x in items if x["id"].startswith("alr-b"))
    assert (await client.post("/api/alerts/ack", json={"ids": []}, headers=h(VIEWER))).status_code == 422
    assert (await client.post("/api/alerts/ack", json={"idz": ["a"]}, headers=h(VIEWER))).status_code == 422


async def test_prompt_rules_warn_when_only_cpu_analyzers_run(api):
    client, bus = api
    await bus.r.set(bus.keys.analyzer_metrics("w1"), b'{"v":1,"worker":"w1","backend":"cpu"}', ex=10)
    res = await client.post("/api/rules", json={"id": "climb", "prompt": "a person climbs the fence"}, headers=h(ADMIN))
    assert res.status_code == 201 and "can never match" in res.json()["warning"]
    label = await client.post("/api/rules", json={"id": "car", "label": "car"}, headers=h(ADMIN))
    assert "warning" not in label.json()
    listed = {x["id"]: x for x in (await client.get("/api/rules", headers=h(VIEWER))).json()["items"]}
    assert "warning" in listed["climb"] and "warning" not in listed["car"]
    await bus.r.set(bus.keys.analyzer_metrics("w2"), b'{"v":1,"worker":"w2","backend":"openai"}', ex=10)
    assert "warning" not in (await client.get("/api/rules/climb", headers=h(VIEWER))).json()


async def test_docs_are_served_locally_and_need_a_token(api):
    client, _ = api
    assert (await client.get("/docs")).status_code == 401
    page = await client.get("/docs", headers=h(VIEWER))
    assert page.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "<script>" not in page.text and "cdn" not in page.text.lower()  # CSP: no inline script, no CDN
    js = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    assert (await client.get("/static/docs-init.js")).status_code == 200
