"""Webhook signatures (DESIGN §5): `Vigil-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`."""

from __future__ import annotations

import hashlib
import hmac
import time


def signature(secret: str, t: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def header(secret: str, body: bytes, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    return f"t={t},v1={signature(secret, t, body)}"


def verify(secret: str, body: bytes, value: str, tolerance_s: float = 300.0, now: float | None = None) -> bool:
    """What a receiver does: recompute over the raw body, compare in constant time, and
    refuse old timestamps (replayed requests)."""
    parts = dict(p.split("=", 1) for p in value.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - t) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, t, body), parts.get("v1", ""))
