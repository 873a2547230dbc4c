"""Rule and webhook routes on the real FastAPI app over a real Redis: roles, validation,
write-only secrets, deliveries, dead letters and replay."""

from __future__ import annotations

import httpx
import pytest

from bus.messages import WebhookEndpoint
from bus.registry import Registry
from bus.webhooks import WebhookStore, delivery_id
from web.app import create_app
from web.auth import hash_token
from web.settings import TokenEntry, WebSettings

ADMIN, VIEWER = "admin-token-" + "a" * 20, "viewer-token-" + "v" * 20
SECRET = "whsec-" + "s" * 30


@pytest.fixture
async def api(bus):
    settings = WebSettings(tokens=[TokenEntry(name="ops", role="admin", sha256=hash_token(ADMIN)),
                                   TokenEntry(name="tv", role="viewer", sha256=hash_token(VIEWER))])
    app = create_app(bus, settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vigil") as client:
        yield client


def _h(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def test_rules_crud_roles_and_validation(api, bus):
    rule = {"id": "night-person", "label": "person", "severity": "critical", "cooldown_s": 60, "min_consecutive": 2,
            "schedule": [{"start": "22:00", "end": "06:00"}], "fast": True}
    assert (await api.get("/api/rules")).status_code == 401
    assert (await api.post("/api/rules", json=rule, headers=_h(VIEWER))).status_code == 403
    created = await api.post("/api/rules", json=rule, headers=_h(ADMIN))
    assert created.status_code == 201 and created.json()["kind"] == "label"
    assert (await api.post("/api/rules", json=rule, headers=_h(ADMIN))).status_code == 409
    # The registry the alerts stage reads has it at once.
    assert (await Registry(bus).rules())["night-person"].cooldown_s == 60
    listed = (await api.get("/api/rules", headers=_h(VIEWER))).json()["items"]
    assert [r["id"] for r in listed] == ["night-person"]
    bad = await api.post("/api/rules", json={"id": "x", "label": "person", "min_count": 0}, headers=_h(ADMIN))
    assert bad.status_code == 422 and "min_count" in bad.json()["detail"]
    assert (await api.post("/api/rules", json={"id": "x", "kind": "teleport"}, headers=_h(ADMIN))).status_code == 422
    zone = {"id": "gate", "kind": "zone", "zones": ["gate"], "label": "car"}
    assert (await api.put("/api/rules/gate", json=zone, headers=_h(ADMIN))).status_code == 200
    assert (await api.put("/api/rules/other", json=zone, headers=_h(ADMIN))).status_code == 422
    prompt = {"id": "fence", "prompt": "a person climbs the fence", "fast": True}
    assert (await api.post("/api/rules", json=prompt, headers=_h(ADMIN))).json()["kind"] == "prompt"
    assert (await api.get("/api/rules/gate", headers=_h(VIEWER))).json()["zones"] == ["gate"]
    assert (await api.delete("/api/rules/gate", headers=_h(VIEWER))).status_code == 403
    assert (await api.delete("/api/rules/gate", headers=_h(ADMIN))).status_code == 204
    assert (await api.get("/api/rules/gate", headers=_h(ADMIN))).status_code == 404


async def test_webhook_endpoints_never_show_their_secret(api, bus):
    ep = {"id": "ha", "url": "https://hooks.example.com/vigil?token=abc123", "secret": SECRET,
          "events": ["alert.open", "alert.resolved"], "min_severity": "warning"}
    assert (await api.post("/api/webhooks", json=ep, headers=_h(VIEWER))).status_code == 403
    res = await api.post("/api/webhooks", json=ep, headers=_h(ADMIN))
    assert res.status_code == 201, res.text
    for r in (res, await api.get("/api/webhooks", headers=_h(ADMIN)), await api.get("/api/webhooks/ha", headers=_h(ADMIN))):
        assert SECRET not in r.text and "abc123" not in r.text and "has_secret" in r.text
    # PUT without a secret keeps the stored one.
    upd = await api.put("/api/webhooks/ha", json={**{k: v for k, v in ep.items() if k != "secret"}, "enabled": False},
                        headers=_h(ADMIN))
    assert upd.status_code == 200 and SECRET not in upd.text
    stored = await WebhookStore(bus).endpoint("ha")
    assert stored.secret == SECRET and stored.enabled is False
    # The id is optional (as the dashboard's form says): a blank one gets a generated id.
    for blank in ({}, {"id": ""}):
        anon = await api.post("/api/webhooks", json={**ep, **blank, "id": blank.get("id", None)} if blank else
                              {k: v for k, v in ep.items() if k != "id"}, headers=_h(ADMIN))
        assert anon.status_code == 201, anon.text
        assert anon.json()["id"].startswith("wh-")
    # The SSRF guard at registration, and validation that does not echo the secret back.
    private = {"id": "lan", "url": "http://192.168.1.10/hook", "secret": SECRET}
    bad = await api.post("/api/webhooks", json=private, headers=_h(ADMIN))
    assert bad.status_code == 422 and "allow_private" in bad.text
    assert (await api.post("/api/webhooks", json={**private, "allow_private": True}, headers=_h(ADMIN))).status_code == 201
    short = await api.post("/api/webhooks", json={**private, "id": "s", "secret": "tiny-secret"}, headers=_h(ADMIN))
    assert short.status_code == 422 and "tiny-secret" not in short.text
    bad_filter = await api.post("/api/webhooks", json={**private, "id": "f", "events": ["alert.nope"], "allow_private": True},
                                headers=_h(ADMIN))
    assert bad_filter.status_code == 422
    assert (await api.delete("/api/webhooks/lan", headers=_h(ADMIN))).status_code == 204


async def test_deliveries_dead_letters_and_replay_routes(api, bus):
    store = WebhookStore(bus)
    await store.put_endpoint(WebhookEndpoint(id="hook", url="http://127.0.0.1:9/x", secret=SECRET, allow_private=True))
    ids = []
    for seq in range(2):
        dlv = delivery_id("hook", f"alr-a:{seq}")
        ids.append(dlv)
        assert await store.enqueue("hook", "alert.open" if seq == 0 else "alert.update", "alr-a", b'{"seq":%d}' % seq, dlv)
    assert not await store.enqueue("hook", "alert.open", "alr-a", b"{}", ids[0])  # idempotent
    # Only the head of the alert's chain is due; fail it for good: the chain goes dead in order.
    (head,) = await store.claim(10, lease_s=30)
    assert head.id == ids[0] and head.attempt == 1
    assert await store.complete(head, "dead", error="HTTP 500", code=500)
    listed = (await api.get("/api/webhooks/deliveries", headers=_h(ADMIN))).json()["items"]
    assert {d["id"]: d["status"] for d in listed} == {ids[0]: "dead", ids[1]: "dead"}
    one = (await api.get(f"/api/webhooks/deliveries/{ids[0]}", headers=_h(ADMIN))).json()
    assert one["body"] == '{"seq":0}' and one["last_code"] == 500 and one["attempts"] == 1
    dead = (await api.get("/api/webhooks/dead-letters", headers=_h(ADMIN))).json()["items"]
    assert [d["id"] for d in dead] == ids
    assert (await api.get("/api/webhooks/dead-letters", headers=_h(VIEWER))).status_code == 403
    res = await api.post("/api/webhooks/dead-letters/replay", json={"ids": [ids[0], ids[1]]}, headers=_h(ADMIN))
    assert res.json() == {"replayed": 2}
    assert (await api.get("/api/webhooks/dead-letters", headers=_h(ADMIN))).json()["items"] == []
    (again,) = await store.claim(10, lease_s=30)
    assert again.id == ids[0] and again.attempt == 1  # same id, attempts reset, still in order
    pending = (await api.get("/api/webhooks/deliveries?status=pending", headers=_h(ADMIN))).json()["items"]
    assert [d["id"] for d in pending] == [ids[1]]


async def test_ping_reaches_a_real_receiver_signed(api, bus):
    from alerts.settings import AlertsSettings, WebhookSettings
    from tests.alerting import running, wait_for
    from tests.receiver import Receiver

    rec = Receiver(SECRET).start()
    try:
        ep = {"id": "r", "url": rec.url, "secret": SECRET, "allow_private": True, "events": ["alert.open"]}
        assert (await api.post("/api/webhooks", json=ep, headers=_h(ADMIN))).status_code == 201
        async with running(bus, AlertsSettings(tick_s=3600, webhooks=WebhookSettings(backoff_base_s=0.05))):
            res = await api.post("/api/webhooks/r/ping", headers=_h(ADMIN))
            assert res.status_code == 202
            await wait_for(lambda: _hit(rec), timeout=10)
            d = await wait_for(lambda: _delivered(api, res.json()["delivery"]), timeout=5)
        (hit,) = rec.hits
        assert hit.event == "ping" and hit.signed_ok and hit.delivery == res.json()["delivery"]
        assert d["status"] == "delivered" and d["last_code"] == 200
    finally:
        rec.stop()


async def _hit(rec):
    return rec.hits


async def _delivered(api, dlv):
    d = (await api.get(f"/api/webhooks/deliveries/{dlv}", headers=_h(ADMIN))).json()
    return d if d.get("status") == "delivered" else None
