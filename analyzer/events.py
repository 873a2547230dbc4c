"""Building the public event from a packet and its analysis."""

from __future__ import annotations

import msgspec

from analyzer.backends.base import Analysis
from bus.limits import MAX_EVIDENCE, MAX_RULE_RESULTS
from bus.messages import Event, EventFrame, Packet, RuleMatch, utc


def event_id(packet_id: str) -> str:
    """Derived from the packet, so a packet analysed twice yields one event."""
    return f"evt-{packet_id}"


def frame_url(packet_id: str, index: int) -> str:
    return f"/api/packets/{packet_id}/frames/{index}.jpg"


def build_event(packet: Packet, analysis: Analysis, *, backend: str, model: str, latency_ms: float) -> Event:
    return Event(
        id=event_id(packet.id),
        camera=packet.camera,
        start=utc(packet.frames[0].wall),
        end=utc(packet.frames[-1].wall),
        packet_id=packet.id,
        reason=packet.reason,
        summary=analysis.summary,
        labels=analysis.labels,
        counts=analysis.counts,
        motion=packet.motion,
        objects=analysis.objects,
        rules=capped_results(analysis.rules),
        backend=backend,
        model=model,
        latency_ms=round(latency_ms, 1),
        visual_tokens=analysis.visual_tokens,
        frames=[EventFrame(ts=f.ts, temporal_id=f.temporal_id, url=frame_url(packet.id, i)) for i, f in enumerate(packet.frames)],
        status=analysis.status,  # type: ignore[arg-type]
        raw=analysis.raw,
    )


def capped_results(results: list[RuleMatch]) -> list[RuleMatch]:
    """At most MAX_RULE_RESULTS per event, matches kept first, evidence bounded: an event
    travels to every client and webhook, whatever number of rules asked about it."""
    if len(results) > MAX_RULE_RESULTS:
        keep = {id(r) for r in [r for r in results if r.match][:MAX_RULE_RESULTS]}
        for r in results:
            if len(keep) >= MAX_RULE_RESULTS:
                break
            keep.add(id(r))
        results = [r for r in results if id(r) in keep]
    return [r if len(r.evidence) <= MAX_EVIDENCE else msgspec.structs.replace(r, evidence=r.evidence[:MAX_EVIDENCE])
            for r in results]
