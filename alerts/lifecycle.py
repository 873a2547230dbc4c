"""One alert per rule and scope from `open` through `update`s to `resolved` (pure logic).

Ids derive from the packet whose evidence opened the alert (`alr-<rule>-<packet id>`), so a
fast alert opened from an onset packet and the same alert confirmed by that packet's event
keep one id, and re-processing after a crash yields the same changes.
"""

from __future__ import annotations

import msgspec

from alerts.rules import title
from bus.messages import Alert, Event, Packet, Rule, Severity, utc

MAX_IDS = 50


def alert_id(rule_id: str, packet_id: str) -> str:
    return f"alr-{rule_id}-{packet_id}"


def frame_url(packet_id: str, index: int) -> str:
    """The web API's keyframe URL (DESIGN §5 frames[].url)."""
    return f"/api/packets/{packet_id}/frames/{index}.jpg"


def opened(rule: Rule, event: Event, evidence: str = "") -> Alert:
    return Alert(
        id=alert_id(rule.id, event.packet_id),
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
        packet_ids=[event.packet_id],
        cameras=[event.camera],
    )


def opened_fast(rule: Rule, packet: Packet, evidence: str) -> Alert:
    """Phase one: opened from the onset packet's own evidence; the verdict comes later."""
    return Alert(
        id=alert_id(rule.id, packet.id),
        state="open",
        rule=rule.id,
        camera=packet.camera,
        severity=rule.severity,
        title=title(rule, packet.camera),
        message=f"Possible: {evidence}; awaiting the verdict.",
        event_ids=[],
        first_seen=utc(packet.frames[0].wall),
        last_seen=utc(packet.frames[-1].wall),
        snapshot_url=frame_url(packet.id, len(packet.frames) - 1) if packet.frames else "",
        seq=0,
        phase="onset",
        packet_ids=[packet.id],
        cameras=[packet.camera],
    )


def updated(alert: Alert, event: Event, *, phase: str | None = None, message: str | None = None) -> Alert:
    return msgspec.structs.replace(
        alert,
        state="update",
        message=message if message is not None else event.summary,
        event_ids=_add(alert.event_ids, event.id),
        packet_ids=_add(alert.packet_ids, event.packet_id),
        cameras=_add(alert.cameras, event.camera, keep_order=True),
        last_seen=max(alert.last_seen, event.end),
        snapshot_url=_snapshot(event) or alert.snapshot_url,
        seq=alert.seq + 1,
        phase=alert.phase if phase is None else phase,  # type: ignore[arg-type]
    )


def folded(alert: Alert, event: Event) -> Alert:
    """New evidence kept on the open alert without a notification: same state and seq; the
    next published change carries it."""
    return msgspec.structs.replace(updated(alert, event), state=alert.state, seq=alert.seq)


def kept_alive(alert: Alert, packet: Packet) -> Alert:
    """A new onset while the alert is open: the activity goes on. Its evidence keeps the alert
    from resolving (no notification), instead of a resolve now and a re-open moments later."""
    return msgspec.structs.replace(
        alert, last_seen=max(alert.last_seen, utc(packet.frames[-1].wall)),
        packet_ids=_add(alert.packet_ids, packet.id),
    )


def resolved(alert: Alert, why: str = "", *, phase: str | None = None) -> Alert:
    msg = alert.message if not why else f"{alert.message} ({why})"
    return msgspec.structs.replace(
        alert, state="resolved", message=msg, seq=alert.seq + 1,
        phase=alert.phase if phase is None else phase,  # type: ignore[arg-type]
    )


def within_s(alert: Alert, start_epoch: float, window_s: float) -> bool:
    return start_epoch - alert.last_seen.timestamp() <= window_s


def within(alert: Alert, event: Event, window_s: float) -> bool:
    return within_s(alert, event.start.timestamp(), window_s)


def quiet_for(alert: Alert, now_epoch: float) -> float:
    return now_epoch - alert.last_seen.timestamp()


SEVERITY_RANK: dict[Severity, int] = {"info": 0, "warning": 1, "critical": 2}


def _add(ids: list[str], item: str, keep_order: bool = False) -> list[str]:
    if item in ids:
        return ids
    return (ids + [item])[-MAX_IDS:]


def _snapshot(event: Event) -> str:
    return event.frames[-1].url if event.frames else ""
