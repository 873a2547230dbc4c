"""Webhook signatures.

Standard Webhooks (https://www.standardwebhooks.com, what receivers' libraries verify):
`webhook-id` (the delivery id, stable across retries), `webhook-timestamp` (unix seconds of
this try) and `webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`.
The key is the base64-decoded part after `whsec_` for secrets in that form, else the
secret's UTF-8 bytes (older endpoints keep their secrets).

Legacy (DESIGN §5, sent beside it while `alerts.webhooks.legacy_signature` is on):
`Vigil-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. It does not cover the
delivery id, so a captured request can be replayed under a new `Vigil-Delivery` within the
timestamp tolerance: receivers should move to the standard headers (docs/alerts.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from bus.webhooks import signing_key


def standard_signature(secret: str, msg_id: str, t: int, body: bytes) -> str:
    mac = hmac.new(signing_key(secret), f"{msg_id}.{t}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def standard_headers(secret: str, msg_id: str, body: bytes, t: int | None = None) -> dict[str, str]:
    t = int(time.time()) if t is None else t
    return {"webhook-id": msg_id, "webhook-timestamp": str(t),
            "webhook-signature": standard_signature(secret, msg_id, t, body)}


def verify_standard(secret: str, body: bytes, headers: dict[str, str], tolerance_s: float = 300.0,
                    now: float | None = None) -> bool:
    """What a receiver does (or its Standard Webhooks library): recompute over id, timestamp
    and the raw body, compare in constant time, refuse timestamps outside the tolerance."""
    h = {k.lower(): v for k, v in headers.items()}
    msg_id, ts, sigs = h.get("webhook-id", ""), h.get("webhook-timestamp", ""), h.get("webhook-signature", "")
    if not (msg_id and ts.isdigit() and sigs):
        return False
    if abs((now or time.time()) - int(ts)) > tolerance_s:
        return False
    expected = standard_signature(secret, msg_id, int(ts), body)
    return any(hmac.compare_digest(expected, s) for s in sigs.split(" ") if s.startswith("v1,"))


# -- legacy scheme ----------------------------------------------------------------------------
def signature(secret: str, t: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def header(secret: str, body: bytes, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    return f"t={t},v1={signature(secret, t, body)}"


def verify(secret: str, body: bytes, value: str, tolerance_s: float = 300.0, now: float | None = None) -> bool:
    """The legacy check: recompute over the raw body, compare in constant time, and refuse
    old timestamps."""
    parts = dict(p.split("=", 1) for p in value.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - t) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, t, body), parts.get("v1", ""))
