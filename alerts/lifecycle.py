"""One alert per rule and scope from `open` through `update`s to `resolved` (pure logic).

Ids derive from the packet whose evidence opened the alert (`alr-<rule>-<packet id>`; an
alert opened at an activity's onset takes the id of the onset packet that follows), so a
fast alert and the verdict on its onset packet keep one id, and re-processing after a crash
yields the same changes.

Every change is published (`seq` + 1), but only some are notifications (`notify`): the open,
changes an operator cares about (`worth_notifying`), the verdict, and the final `resolved`.
The others fold evidence into the alert for the dashboard and the API.
"""

from __future__ import annotations

import msgspec

from alerts.rules import title
from bus.activities import onset_frame_path
from bus.messages import ActivityNote, Alert, Event, Rule, Severity, utc

MAX_IDS = 50


def alert_id(rule_id: str, packet_id: str) -> str:
    return f"alr-{rule_id}-{packet_id}"


def opened(rule: Rule, event: Event) -> Alert:
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
        labels=_labels([], event),
        counts=_counts({}, event),
        event_count=1,
    )


def opened_onset(rule: Rule, note: ActivityNote, evidence: str) -> Alert:
    """Phase one: opened from the scheduler's activity start; the verdict comes later."""
    return Alert(
        id=alert_id(rule.id, note.packet_id),
        state="open",
        rule=rule.id,
        camera=note.camera,
        severity=rule.severity,
        title=title(rule, note.camera),
        message=f"Possible: {evidence}; awaiting the verdict.",
        event_ids=[],
        first_seen=utc(note.onset_wall),
        last_seen=utc(max(note.wall, note.onset_wall)),
        snapshot_url=onset_frame_path(note.activity) if note.width else "",  # the scheduler keeps the frame
        seq=0,
        phase="onset",
        packet_ids=[note.packet_id],
        cameras=[note.camera],
    )


def updated(alert: Alert, event: Event, rule: Rule, *, notify: bool, phase: str | None = None,
            message: str | None = None) -> Alert:
    """The event's evidence folded into the alert (a notification or not)."""
    return msgspec.structs.replace(
        alert,
        state="update",
        notify=notify,
        severity=rule.severity,
        message=message if message is not None else event.summary,
        event_ids=_add(alert.event_ids, event.id),
        packet_ids=_add(alert.packet_ids, event.packet_id),
        cameras=_add(alert.cameras, event.camera),
        labels=_labels(alert.labels, event),
        counts=_counts(alert.counts, event),
        event_count=alert.event_count + 1,
        first_seen=min(alert.first_seen, event.start),
        last_seen=max(alert.last_seen, event.end),
        snapshot_url=_snapshot(event) or alert.snapshot_url,
        seq=alert.seq + 1,
        phase=alert.phase if phase is None else phase,  # type: ignore[arg-type]
    )


def worth_notifying(before: Alert, after: Alert) -> bool:
    """What an operator wants to hear about again: severity, a new label, a higher count, a new
    camera of the group. More of the same (another packet of the same scene) is not."""
    if SEVERITY_RANK[after.severity] != SEVERITY_RANK[before.severity]:
        return True
    if set(after.labels) - set(before.labels) or set(after.cameras) - set(before.cameras):
        return True
    return any(n > before.counts.get(label, 0) for label, n in after.counts.items())


def announced(alert: Alert) -> Alert:
    """The alert as it stands, sent as a notification (changes held back by update_every_s)."""
    return msgspec.structs.replace(alert, state="update", notify=True, seq=alert.seq + 1)


def with_onset_evidence(alert: Alert, note: ActivityNote, message: str | None) -> Alert:
    """A detector's labels on the onset frame (an `evidence` note) folded into an onset alert."""
    labels = list(alert.labels) + [lb for lb in note.labels if lb not in alert.labels]
    counts = dict(alert.counts)
    for lb, n in note.counts.items():
        counts[lb] = max(counts.get(lb, 0), n)
    return msgspec.structs.replace(
        alert, state="update", seq=alert.seq + 1, labels=labels, counts=counts,
        notify=message is not None, message=message if message is not None else alert.message,
    )


def resolved(alert: Alert, why: str = "", *, phase: str | None = None, message: str | None = None) -> Alert:
    msg = message if message is not None else (alert.message if not why else f"{alert.message} ({why})")
    return msgspec.structs.replace(
        alert, state="resolved", notify=True, message=msg, seq=alert.seq + 1,
        phase=alert.phase if phase is None else phase,  # type: ignore[arg-type]
    )


SEVERITY_RANK: dict[Severity, int] = {"info": 0, "warning": 1, "critical": 2}


def _add(ids: list[str], item: str) -> list[str]:
    if item in ids:
        return ids
    return (ids + [item])[-MAX_IDS:]


def _labels(labels: list[str], event: Event) -> list[str]:
    return list(labels) + [lb for lb in event.labels if lb not in labels]


def _counts(counts: dict[str, int], event: Event) -> dict[str, int]:
    out = dict(counts)
    for lb, n in event.counts.items():
        out[lb] = max(out.get(lb, 0), n)
    return out


def _snapshot(event: Event) -> str:
    return event.frames[-1].url if event.frames else ""
