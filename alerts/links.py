"""Links that receivers outside the dashboard can follow: the API paths in alerts and events
(`snapshot_url`, `frames[].url`) made absolute with `alerts.public_url` for webhooks and MQTT.
The websocket and the REST API keep them relative (the dashboard is on the same origin)."""

from __future__ import annotations

import msgspec

from bus.messages import Alert, PublicMessage


def absolute_url(base: str | None, url: str) -> str:
    if not base or not url.startswith("/"):
        return url  # empty, or already absolute
    return base.rstrip("/") + url


def absolute(msg: PublicMessage, base: str | None) -> PublicMessage:
    if not base:
        return msg
    if isinstance(msg, Alert):
        return msgspec.structs.replace(msg, snapshot_url=absolute_url(base, msg.snapshot_url))
    return msgspec.structs.replace(
        msg, frames=[msgspec.structs.replace(f, url=absolute_url(base, f.url)) for f in msg.frames])
