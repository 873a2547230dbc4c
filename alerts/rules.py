"""Rule evaluation against events (structured rules for now)."""

from __future__ import annotations

from bus.messages import Event, LabelRule, Rule


def applies(rule: Rule, camera: str) -> bool:
    return not rule.cameras or camera in rule.cameras


def matches(rule: Rule, event: Event) -> bool:
    if isinstance(rule, LabelRule):
        count = event.counts.get(rule.label, 1 if rule.label in event.labels else 0)
        return count >= rule.min_count
    # Natural-language rules: the model's verdict in the event.
    return any(r.rule == rule.id and r.match for r in event.rules)


def title(rule: Rule, camera: str) -> str:
    if rule.title:
        return rule.title
    if isinstance(rule, LabelRule):
        return f"{rule.label} on {camera}"
    return f"{rule.id} on {camera}"
