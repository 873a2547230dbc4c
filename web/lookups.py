"""Items by id, for the routes: an event, a packet, the latest state of an alert."""

from fastapi import HTTPException

from bus.connection import Bus
from bus.messages import Alert, Event, Packet

MAX_ALERT_CHANGES = 10_000


async def load_event(bus: Bus, event_id: str) -> Event:
    entry = await bus.entry_of(bus.keys.once("event", event_id))
    rows = await bus.range(bus.keys.events, Event, start=entry, end=entry) if entry else []
    if not rows:
        raise HTTPException(404, "unknown event (or trimmed by retention)")
    return rows[0][1]


async def load_packet(bus: Bus, packet_id: str) -> Packet:
    ref = await bus.r.get(bus.keys.packet_ref(packet_id))
    rows = await bus.range(bus.keys.packets, Packet, start=ref.decode(), end=ref.decode()) if ref else []
    if not rows:
        raise HTTPException(404, "unknown packet (or trimmed by retention)")
    return rows[0][1]


async def latest_alert(bus: Bus, alert_id: str) -> Alert:
    """Each change of an alert is written once under `once:alert:{id}:{seq}`; the highest seq
    still in the stream is its latest state."""
    entry = None
    lo, hi = 0, 1
    while await bus.entry_of(bus.keys.once("alert", f"{alert_id}:{hi}")) and hi < MAX_ALERT_CHANGES:
        lo, hi = hi, hi * 2
    # The last existing seq lies in [lo, hi): binary search (changes are numbered 0, 1, 2, ...).
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if await bus.entry_of(bus.keys.once("alert", f"{alert_id}:{mid}")):
            lo = mid
        else:
            hi = mid
    entry = await bus.entry_of(bus.keys.once("alert", f"{alert_id}:{lo}"))
    rows = await bus.range(bus.keys.alerts, Alert, start=entry, end=entry) if entry else []
    if not rows:
        raise HTTPException(404, "unknown alert (or trimmed by retention)")
    return rows[0][1]
