"""Rule evaluation: which rules apply, whether an event (or an activity's onset) matches.

Pure functions, no I/O. Structured kinds are answered from the event's labels, counts and
motion summary (cpu backend or the model's objects); natural-language rules from the
model's verdict in `event.rules`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time as dtime
from zoneinfo import ZoneInfo

from bus.messages import (
    ActivityNote, CountRule, DwellRule, Event, LabelRule, MotionRule, MotionSummary, PromptRule, Rule, RuleMatch,
    TimeWindow,
    ZoneRule,
)


@dataclass(frozen=True, slots=True)
class Verdict:
    match: bool
    known: bool  # False: the backend gave no answer for this rule (e.g. cpu and a prompt rule)
    evidence: str = ""


def applies(rule: Rule, camera: str) -> bool:
    return rule.enabled and (not rule.cameras or camera in rule.cameras)


def scope(rule: Rule, camera: str) -> str:
    """One alert per rule and camera, or per rule and camera group (cameras on one scene)."""
    return rule.group or camera


def in_schedule(rule: Rule, when: datetime, tz: ZoneInfo | None = None) -> bool:
    if not rule.schedule:
        return True
    local = when.astimezone(tz) if tz else when.astimezone()
    return any(_in_window(w, local) for w in rule.schedule)


def _in_window(w: TimeWindow, local: datetime) -> bool:
    start, end = dtime.fromisoformat(w.start), dtime.fromisoformat(w.end)
    now = local.time().replace(second=0, microsecond=0, tzinfo=None)
    day = local.weekday()
    if start <= end:
        return (not w.days or day in w.days) and start <= now < end
    # Over midnight (22:00-06:00): the part after midnight belongs to the previous day's window.
    if now >= start:
        return not w.days or day in w.days
    if now < end:
        return not w.days or (day - 1) % 7 in w.days
    return False


def _count(event: Event, label: str) -> int:
    return event.counts.get(label, 1 if label in event.labels else 0)


def _zones_hit(rule: Rule, motion: MotionSummary) -> list[str]:
    """Zones of the rule the motion touched; every zone counts as hit when the rule names none."""
    if not rule.zones:
        return ["*"]
    return [z for z in rule.zones if z in motion.zones]


def _where(rule: Rule, motion: MotionSummary) -> str:
    hit = [z for z in _zones_hit(rule, motion) if z != "*"]
    return f" in zone {', '.join(hit)}" if hit else ""


def verdicts_of(event: Event) -> dict[str, RuleMatch]:
    """The event's per-rule results by rule id (the first of each), built once per event so
    evaluating every rule stays linear in the number of rules."""
    out: dict[str, RuleMatch] = {}
    for r in event.rules:
        out.setdefault(r.rule, r)
    return out


def condition(rule: Rule, event: Event, verdicts: dict[str, RuleMatch] | None = None) -> Verdict:
    """Does this one event satisfy the rule (before streaks, dwell time and cooldowns)?"""
    m = event.motion
    if not _zones_hit(rule, m):
        return Verdict(False, True, "motion outside the rule's zones")
    if isinstance(rule, PromptRule):
        r = (verdicts if verdicts is not None else verdicts_of(event)).get(rule.id)
        if r is not None:
            return Verdict(r.match, True, r.evidence or event.summary)
        why = "the backend gave no verdict for this rule" if event.status == "ok" else f"analysis {event.status}"
        return Verdict(False, False, why)
    if isinstance(rule, LabelRule):
        n = _count(event, rule.label)
        return Verdict(n >= rule.min_count, True, f"{n} x {rule.label}{_where(rule, m)}")
    if isinstance(rule, CountRule):
        n = _count(event, rule.label)
        ok = n >= rule.min and (rule.max is None or n <= rule.max)
        return Verdict(ok, True, f"{n} x {rule.label}{_where(rule, m)}")
    if isinstance(rule, ZoneRule):
        ok = bool(rule.zones) and m.area >= rule.min_area and (not rule.label or _count(event, rule.label) > 0)
        what = rule.label or "motion"
        return Verdict(ok, True, f"{what}{_where(rule, m)} ({m.area * 100:.1f}% of the view)")
    if isinstance(rule, MotionRule):
        return Verdict(m.area >= rule.min_area, True, f"motion over {m.area * 100:.1f}% of the view{_where(rule, m)}")
    if isinstance(rule, DwellRule):
        present = _count(event, rule.label) > 0 if rule.label else m.area > 0
        return Verdict(present, True, f"{rule.label or 'motion'}{_where(rule, m)}")
    return Verdict(False, False, f"unknown rule kind {type(rule).__name__}")


def matches(rule: Rule, event: Event) -> bool:
    return condition(rule, event).match


def onset_evidence(rule: Rule, m: MotionSummary, min_area: float) -> str | None:
    """Phase one of a fast rule: the scheduler's evidence at an activity's start (motion area,
    zones), there the moment the onset is confirmed, long before any model answers."""
    hit = _zones_hit(rule, m)
    if not hit:
        return None
    need = max(min_area, getattr(rule, "min_area", 0.0))
    if m.area < need or m.area <= 0:
        return None
    return f"motion over {m.area * 100:.1f}% of the view{_where(rule, m)}"


def detector_evidence(rule: Rule, note: ActivityNote) -> str | None:
    """A detector's labels on the onset frame (an `evidence` note) that satisfy a label or
    count rule: the onset alert can say what it saw before the verdict."""
    if not isinstance(rule, (LabelRule, CountRule)):
        return None
    n = note.counts.get(rule.label, 1 if rule.label in note.labels else 0)
    ok = n >= rule.min_count if isinstance(rule, LabelRule) else n >= rule.min and (rule.max is None or n <= rule.max)
    if not ok:
        return None
    return f"{n} x {rule.label} at onset{f' ({note.source})' if note.source else ''}"


def title(rule: Rule, camera: str) -> str:
    if rule.title:
        return rule.title
    if isinstance(rule, (LabelRule, CountRule)):
        return f"{rule.label} on {camera}"
    if isinstance(rule, (ZoneRule, DwellRule)) and rule.label:
        return f"{rule.label} in {', '.join(rule.zones) or 'view'} on {camera}"
    if isinstance(rule, MotionRule):
        return f"motion on {camera}"
    if isinstance(rule, PromptRule):
        return f"{rule.prompt[:80]} ({camera})"
    return f"{rule.id} on {camera}"
