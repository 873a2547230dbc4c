"""Webhooks follow Standard Webhooks (probe finding 8): real deliveries from the alerts stage
to a real receiver verify with the official `standardwebhooks` library, for a `whsec_`
secret and for an older plain one; a captured request replayed under another id fails;
the legacy header is sent beside them only while `legacy_signature` is on."""

from __future__ import annotations

import base64
import secrets
import time

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from alerts.settings import AlertsSettings, WebhookSettings
from alerts.signing import header, standard_headers, verify, verify_standard
from bus.messages import LabelRule, WebhookEndpoint
from bus.registry import Registry
from bus.webhooks import WebhookStore
from tests.alerting import event, running, wait_for
from tests.receiver import Receiver

WHSEC = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
PLAIN = "plain-secret-" + "q" * 20
FAST = dict(backoff_base_s=0.05, backoff_max_s=0.2, max_attempts=5, lease_s=5, timeout_s=3)


async def _deliver(bus, rec: Receiver, *, legacy: bool) -> list:
    await Registry(bus).put_rule(LabelRule(id="person", label="person", quiet_s=2, consolidate_s=10))
    await WebhookStore(bus).put_endpoint(WebhookEndpoint(id="hook", url=rec.url, secret=rec.secret, allow_private=True))
    settings = AlertsSettings(tick_s=3600, webhooks=WebhookSettings(legacy_signature=legacy, **FAST))
    async with running(bus, settings):
        now = time.time()
        await bus.publish(bus.keys.events, event("gate", "gate-1", now - 2, now, ["person"]))
        await wait_for(lambda: _accepted(rec), 15)
    return rec.accepted()


async def _accepted(rec: Receiver):
    return rec.accepted()


@pytest.mark.parametrize("secret", [WHSEC, PLAIN], ids=["whsec", "plain"])
async def test_deliveries_verify_with_the_official_library(bus, secret):
    rec = Receiver(secret).start()
    try:
        hits = await _deliver(bus, rec, legacy=True)
    finally:
        rec.stop()
    hit = hits[0]
    assert hit.signed_ok
    h = hit.headers
    assert h["webhook-id"] == hit.delivery and h["webhook-timestamp"].isdigit()
    assert h["webhook-signature"].startswith("v1,") and "vigil-signature" in h  # both during the migration
    key = secret if secret.startswith("whsec_") else secret.encode()
    assert Webhook(key).verify(hit.raw, h)["id"] == hit.body["id"]
    # A captured request replayed under a new id (to pass the receiver's de-duplication) fails...
    forged = {**h, "webhook-id": "dlv_" + "0" * 32}
    with pytest.raises(WebhookVerificationError):
        Webhook(key).verify(hit.raw, forged)
    # ... while the legacy scheme, which never signed the delivery id, cannot tell (why it goes).
    assert verify(secret, hit.raw, h["vigil-signature"])
    # Our own receiver-side helper agrees with the library.
    assert verify_standard(secret, hit.raw, h) and not verify_standard(secret, hit.raw, forged)


async def test_legacy_header_can_be_turned_off(bus):
    rec = Receiver(WHSEC).start()
    try:
        hits = await _deliver(bus, rec, legacy=False)
    finally:
        rec.stop()
    assert hits[0].signed_ok and "vigil-signature" not in hits[0].headers


def test_signature_matches_the_library_sign():
    msg_id, t, body = "dlv_" + "a" * 32, int(time.time()), b'{"type":"alert","id":"x"}'
    from datetime import datetime, timezone

    ours = standard_headers(WHSEC, msg_id, body, t)["webhook-signature"]
    theirs = Webhook(WHSEC).sign(msg_id, datetime.fromtimestamp(t, tz=timezone.utc), body.decode())
    assert ours == theirs
    assert header(PLAIN, body, t).startswith(f"t={t},v1=")


async def test_api_refuses_bad_whsec_secrets_and_never_returns_one(bus, monkeypatch):
    from web.app import create_app
    from web.settings import WebSettings

    token = "hooks-admin-token-" + "abcdefgh1234"
    monkeypatch.setenv("VIGIL_TOKEN", token)
    app = create_app(bus, WebSettings())
    h = {"Authorization": f"Bearer {token}"}
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vigil") as c:
            for bad in ("whsec_" + "!" * 30, "whsec_" + base64.b64encode(b"short").decode() + "A" * 10):
                res = await c.post("/api/webhooks", json={"id": "h", "url": "https://hooks.example.com/x", "secret": bad},
                                   headers=h)
                assert res.status_code == 422 and bad not in res.text, res.text
            ok = await c.post("/api/webhooks", json={"id": "h", "url": "https://hooks.example.com/x", "secret": WHSEC},
                              headers=h)
            assert ok.status_code == 201 and WHSEC not in ok.text and ok.json()["has_secret"] is True
