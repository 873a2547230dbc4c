"""The probe's Low findings, each against the FastAPI app on a real Redis: deep JSON, year-1
dates, huge numbers, Redis down (503, not 500), reserved webhook ids, WHIP timeouts and a
flood of WHIP calls, IPv6 ranges the SSRF guard missed, free-text search within a budget."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager

import httpx
import pytest

from alerts.ssrf import TargetRefused, resolve
from bus import open_bus
from bus.messages import Camera, Event, EventFrame, MotionSummary, utc
from bus.registry import Registry
from bus.server import EmbeddedRedis

TOKEN = "low-admin-token-" + "abcdefgh1234"
H = {"Authorization": f"Bearer {TOKEN}"}
DEEP = b"[" * 10_000 + b"]" * 10_000


@asynccontextmanager
async def api(bus, monkeypatch):
    from web.app import create_app
    from web.settings import WebSettings

    monkeypatch.setenv("VIGIL_TOKEN", TOKEN)
    app = create_app(bus, WebSettings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://vigil", timeout=60) as c:
            yield c


async def test_deep_json_is_a_400(bus, monkeypatch):
    async with api(bus, monkeypatch) as c:
        j = {**H, "Content-Type": "application/json"}
        for method, path in (("POST", "/api/rules"), ("POST", "/api/cameras"), ("PUT", "/api/cameras/a"),
                             ("PATCH", "/api/cameras/a"), ("POST", "/api/webhooks"), ("PUT", "/api/webhooks/a"),
                             ("POST", "/api/replay"), ("POST", "/api/login"), ("POST", "/api/webhooks/dead-letters/replay")):
            for body in (DEEP, b'{"id": "a", "label": "x", "schedule": ' + DEEP + b"}"):
                res = await c.request(method, path, content=body, headers=j)
                assert res.status_code in (400, 404, 422), (method, path, res.status_code, res.text[:200])


async def test_dates_and_numbers_out_of_range_are_422(bus, monkeypatch):
    async with api(bus, monkeypatch) as c:
        for since in ("0001-01-01T00:00:00", "0001-01-01T00:00:00Z", "1969-12-31T00:00:00Z"):
            res = await c.get("/api/events", params={"since": since}, headers=H)
            assert res.status_code == 422, (since, res.status_code)
        res = await c.post("/api/replay", json={"prompt": "a person", "since": "0001-01-01T00:00:00"}, headers=H)
        assert res.status_code == 422, res.text
        # A time without a zone is UTC, also when there are events to compare it with.
        t = utc(time.time())
        e = Event(id="evt-c-1", camera="c", start=t, end=t, packet_id="c-1", reason="motion", summary="x", labels=[],
                  motion=MotionSummary(area=0.1), backend="cpu", model="m", latency_ms=1, visual_tokens=0,
                  frames=[EventFrame(ts=0, temporal_id=0, url="/x")])
        await bus.publish_once(bus.keys.events, bus.keys.once("event", e.id), e)
        res = await c.get("/api/events", params={"since": "2001-01-01T00:00:00", "camera": "c"}, headers=H)
        assert res.status_code == 200 and len(res.json()["items"]) == 1, res.text
        for body in (b'{"id": "b", "label": "x", "min_count": 1000000000000000000000000000000}',
                     b'{"id": "b", "label": "x", "min_count": 9223372036854775813}',
                     b'{"id": "b", "kind": "count", "label": "x", "max": 100000000000000000000}',
                     b'{"id": "b", "label": "x", "quiet_s": 1e300}', b'{"id": "b", "label": "x", "cooldown_s": 1e999}'):
            res = await c.post("/api/rules", content=body, headers={**H, "Content-Type": "application/json"})
            assert res.status_code in (400, 422), (body, res.status_code, res.text)  # 1e999 is not JSON


async def test_redis_down_is_503(monkeypatch):
    server = EmbeddedRedis()
    url = server.start()
    async with open_bus(url) as bus:
        async with api(bus, monkeypatch) as c:
            assert (await c.get("/api/cameras", headers=H)).status_code == 200
            server.stop()
            for path in ("/api/cameras", "/api/events", "/api/rules", "/api/alerts", "/readyz"):
                res = await c.get(path, headers=H)
                assert res.status_code == 503, (path, res.status_code, res.text)
            res = await c.post("/api/rules", json={"id": "r", "label": "x"}, headers=H)
            assert res.status_code == 503 and res.headers.get("retry-after")
            assert (await c.get("/healthz")).status_code == 503


async def test_reserved_webhook_ids_are_refused_on_put(bus, monkeypatch):
    async with api(bus, monkeypatch) as c:
        for rid in ("deliveries", "dead-letters"):
            res = await c.put(f"/api/webhooks/{rid}", json={"url": "https://hooks.example.com/x", "secret": "s" * 20},
                              headers=H)
            assert res.status_code == 422, (rid, res.status_code, res.text)
        assert (await c.get("/api/webhooks", headers=H)).json()["items"] == []


async def test_whip_answers_504_in_time_and_a_flood_is_bounded(bus, monkeypatch):
    import web.routes_whip as whip

    monkeypatch.setattr(whip, "REPLY_TIMEOUT_S", 2)
    await Registry(bus).put_camera(Camera(id="door", url="whip://"))
    # An ingest lease that nobody answers for (a worker that hangs).
    await bus.r.set(bus.keys.ingest_lease("door"), "ghost", px=120_000)
    session = "a" * 32
    async with api(bus, monkeypatch) as c:
        assert (await c.delete(f"/api/whip/nocam/{session}", headers=H)).status_code == 404
        res = await c.delete(f"/api/whip/door/{session}", headers=H)
        assert res.status_code == 504, res.text  # not a 500 from the Redis client's socket timeout
        offer = b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"

        async def one(i: int) -> int:
            if i % 2:
                r = await c.delete(f"/api/whip/door/{session}", headers=H)
            else:
                r = await c.post("/api/whip/door", content=offer, headers={**H, "Content-Type": "application/sdp"})
            return r.status_code

        flood = asyncio.gather(*(one(i) for i in range(600)))
        await asyncio.sleep(0.5)
        # Meanwhile the rest of the API (and every stage sharing the pool) is served.
        t0 = time.monotonic()
        assert (await c.get("/api/cameras", headers=H)).status_code == 200
        others = time.monotonic() - t0
        clients = (await bus.r.info("clients"))["connected_clients"]
        codes = await flood
    assert set(codes) <= {503, 504}, sorted(set(codes))
    assert codes.count(504) <= whip.MAX_RELAYS * 2, codes.count(504)
    assert clients < 100, clients
    assert others < 5, others


def test_ssrf_guard_refuses_6to4_and_site_local():
    from bus.webhooks import check_url

    for url in ("http://[2002:7f00:1::]/hook", "http://[2002:a00:1::]/hook", "http://[fec0::1]/hook",
                "http://[::127.0.0.1]/hook", "http://[64:ff9b::a00:1]/hook", "http://[2001:0:4136:e378::1]/hook"):
        with pytest.raises(TargetRefused):
            check_url(url, allow_private=False)
    check_url("https://[2606:4700:4700::1111]/hook", allow_private=False)


async def test_ssrf_guard_refuses_those_ranges_at_send_time():
    for url in ("http://[2002:7f00:1::]:9/x", "http://[fec0::1]:9/x"):
        with pytest.raises(TargetRefused):
            await resolve(url, allow_private=False)


async def test_text_search_stays_within_its_budget_and_loses_nothing(bus, monkeypatch):
    import web.routes_events as routes

    t = time.time() - 3600
    pipe = bus.r.pipeline(transaction=False)
    from bus import messages

    for i in range(3000):
        e = Event(id=f"evt-c-{i}", camera="c", start=utc(t + i), end=utc(t + i), packet_id=f"c-{i}", reason="motion",
                  summary="a red truck" if i % 500 == 7 else f"nothing much {i}", labels=["motion"],
                  motion=MotionSummary(area=0.1), backend="cpu", model="m", latency_ms=1, visual_tokens=0,
                  frames=[EventFrame(ts=0, temporal_id=0, url="/x")])
        pipe.xadd(bus.keys.events, {b"m": messages.encode(e)})
    await pipe.execute()
    monkeypatch.setattr(routes, "SCAN_BUDGET_S", 0.0)  # every page stops after one chunk: a partial page
    async with api(bus, monkeypatch) as c:
        found, cursor, pages = [], None, 0
        while True:
            params = {"q": "RED truck", "limit": 10, **({"cursor": cursor} if cursor else {})}
            res = await c.get("/api/events", params=params, headers=H)
            assert res.status_code == 200, res.text
            page = res.json()
            found += [e["id"] for e in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert found == [f"evt-c-{i}" for i in range(2999, -1, -1) if i % 500 == 7]
        assert pages > 1  # the budget cut pages short, the cursor carried on
        uni = (await c.get("/api/events", params={"q": "Ünïcode"}, headers=H)).json()
        assert uni["items"] == []
