"""From a parsed model answer (or detector counts) to the event's labels, counts and rule verdicts."""

from __future__ import annotations

import json

from analyzer.backends.base import Analysis
from analyzer.parsing import Answer, ParseError, Verdict, parse_answer
from analyzer.prompts import Prompt
from bus.messages import LabelRule, Packet, PromptRule, RuleMatch

RAW_LIMIT = 8000


def label_verdicts(rules: list[LabelRule], counts: dict[str, int], labels: list[str], source: str) -> list[RuleMatch]:
    """Structured rules answered from counts, the same test the alerts stage applies."""
    out = []
    for r in rules:
        n = counts.get(r.label, 1 if r.label in labels else 0)
        out.append(RuleMatch(rule=r.id, match=n >= r.min_count, confidence=1.0 if n >= r.min_count else 0.0,
                             evidence=f"{n} {r.label} seen by {source} (needs {r.min_count})"))
    return out


def missing_verdict(rule: PromptRule, why: str) -> RuleMatch:
    return RuleMatch(rule=rule.id, match=False, confidence=0.0, evidence=why)


def motion_labels(packet: Packet) -> list[str]:
    return ["motion"] if packet.motion.area > 0 else []


def analysis_from_text(text: str, prompt: Prompt, visual_tokens: int) -> tuple[Analysis, Answer | None]:
    """A model answer becomes an Analysis; a rejected one becomes status "unparsed" with the raw
    text kept (the packet still yields an event)."""
    try:
        ans = parse_answer(text)
    except ParseError as exc:
        rules = [missing_verdict(r, f"model answer unparsed: {exc}") for r in prompt.prompt_rules]
        labels = motion_labels(prompt.packet)
        rules += label_verdicts(prompt.label_rules, {}, labels, "motion")
        return Analysis(summary=f"model answer could not be parsed ({exc})", labels=labels, rules=rules,
                        visual_tokens=visual_tokens, status="unparsed", raw=text[:RAW_LIMIT]), None
    counts = {k: v for k, v in ans.objects.items() if v > 0}
    labels = list(counts) + [x for x in motion_labels(prompt.packet) if x not in counts]
    rules: list[RuleMatch] = []
    for r in prompt.prompt_rules:
        v = ans.rules.get(r.id)
        rules.append(RuleMatch(rule=r.id, match=v.match, confidence=v.confidence, evidence=v.evidence) if v
                     else missing_verdict(r, "the model gave no verdict for this rule"))
    rules += label_verdicts(prompt.label_rules, counts, labels, "the model")
    return Analysis(summary=ans.summary, labels=labels, counts=counts, rules=rules, visual_tokens=visual_tokens), ans


def blind_analysis(text: str, prompt: Prompt, got: int, expected: int) -> Analysis:
    """The model answered a packet whose image slots did not all hold visual tokens: an
    error event (the answer kept in `raw`), never a verdict."""
    why = (f"the model did not see this packet's frames: {got} of {expected} image slots held visual tokens; "
           "answer discarded")
    labels = motion_labels(prompt.packet)
    rules = [missing_verdict(r, why) for r in prompt.prompt_rules]
    rules += label_verdicts(prompt.label_rules, {}, labels, "motion")
    return Analysis(summary=why, labels=labels, rules=rules, visual_tokens=got, status="error", raw=text[:RAW_LIMIT],
                    seen=False)


def needs_thinking(analysis: Analysis, prompt: Prompt, uncertain_below: float) -> list[str]:
    """Rule ids to re-ask with thinking: rules marked `think` whose fast verdict is uncertain
    (or missing/unparsed), or that are critical."""
    fast = {m.rule: m for m in analysis.rules}
    out = []
    for r in prompt.prompt_rules:
        if not r.think:
            continue
        m = fast.get(r.id)
        if r.severity == "critical" or m is None or analysis.status != "ok" or m.confidence < uncertain_below:
            out.append(r.id)
    return out


def merge_thinking(fast: Analysis, fast_text: str, slow: Analysis, slow_text: str, rule_ids: list[str]) -> Analysis:
    """The thinking verdicts replace the fast ones for the escalated rules; the fast verdict is
    kept in the evidence and both answers in `raw`."""
    slow_by = {m.rule: m for m in slow.rules} if slow.status == "ok" else {}
    merged: list[RuleMatch] = []
    for m in fast.rules:
        s = slow_by.get(m.rule)
        if m.rule in rule_ids and s is not None:
            merged.append(RuleMatch(
                rule=m.rule, match=s.match, confidence=s.confidence,
                evidence=f"{s.evidence} [thinking; fast answer: match={str(m.match).lower()}, "
                         f"confidence={m.confidence:.2f}: {m.evidence}]"[:2000]))
        else:
            merged.append(m)
    base = fast if fast.status == "ok" or slow.status != "ok" else slow
    raw = json.dumps({"fast": fast_text[:RAW_LIMIT], "thinking": slow_text[:RAW_LIMIT]}, ensure_ascii=False)
    return Analysis(summary=base.summary, labels=base.labels, counts=base.counts, rules=merged,
                    visual_tokens=fast.visual_tokens + slow.visual_tokens, status=base.status, raw=raw,
                    escalated=len(rule_ids),
                    seen=None if fast.seen is None and slow.seen is None else bool(fast.seen and slow.seen))


__all__ = ["Verdict", "analysis_from_text", "blind_analysis", "label_verdicts", "merge_thinking", "missing_verdict", "needs_thinking"]
