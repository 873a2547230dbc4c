"""One alert per rule and camera from `open` through `update`s to `resolved` (pure logic)."""

from __future__ import annotations

import msgspec

from alerts.rules import title
from bus.messages import Alert, Event, Rule

MAX_EVENT_IDS = 50


def opened(rule: Rule, event: Event) -> Alert:
    return Alert(
        id=f"alr-{rule.id}-{event.id.removeprefix('evt-')}",
        state="open",
        rule=rule.id,
        camera=event.camera,
        severity=rule.severity,
        title=title(rule, event.camera),
        message=event.summary,
        event_ids=[event.id],
        first_seen=event.start,
        last_seen=event.end,
        snapshot_url=_snapshot(event),
        seq=0,
    )


def updated(alert: Alert, event: Event) -> Alert:
    ids = (alert.event_ids + [event.id])[-MAX_EVENT_IDS:]
    return msgspec.structs.replace(
        alert, state="update", message=event.summary, event_ids=ids, last_seen=max(alert.last_seen, event.end),
        snapshot_url=_snapshot(event), seq=alert.seq + 1,
    )


def resolved(alert: Alert, why: str = "") -> Alert:
    msg = alert.message if not why else f"{alert.message} ({why})"
    return msgspec.structs.replace(alert, state="resolved", message=msg, seq=alert.seq + 1)


def within(alert: Alert, event: Event, window_s: float) -> bool:
    return (event.start - alert.last_seen).total_seconds() <= window_s


def quiet_for(alert: Alert, now_epoch: float) -> float:
    return now_epoch - alert.last_seen.timestamp()


def _snapshot(event: Event) -> str:
    return event.frames[-1].url if event.frames else ""

