"""Events (search with cursor pagination, one event with its packet), packets and their
keyframes, and alerts (list, filter, acknowledge)."""

import time
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Path as PathParam, Query, Request, Response

from bus import messages
from bus.activities import ActivityStore
from bus.connection import FIELD, Bus
from bus.messages import Alert, AlertCommand, Event, Packet
from web.auth import Principal
from web.body import as_utc, convert, json_response, read_object
from web import lookups
from web.deps import Access

ItemId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_.:-]{1,200}$")]
Cursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,15}-[0-9]{1,10}$", description="next_cursor of the previous page")]
CHUNK = 500
MAX_SCAN = 200_000  # entries one request may look at before it returns a partial page with a cursor
LATE_S = 600  # an event is written at most this long after its capture start (bounds a time-range scan)


SCAN_BUDGET_S = 1.0  # ... or this long: a search with few matches answers in time, with a cursor to go on


class BulkAck(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    ids: Annotated[list[Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{1,200}$")]],
                   msgspec.Meta(min_length=1, max_length=500)]


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def events_router(bus: Bus, access: Access) -> APIRouter:
    r = APIRouter(prefix="/api", tags=["events"])
    Viewer = Annotated[Principal, Depends(access.viewer)]
    Admin = Annotated[Principal, Depends(access.admin)]
    activities = ActivityStore(bus)

    async def scan(stream: str, kind: type, keep, *, limit: int, cursor: str | None, lo_ms: int | None,
                   hi_ms: int | None, filtered: bool = True, raw_ok=None) -> tuple[list, str | None]:
        """Newest first, in chunks, stopping at `limit` matches, MAX_SCAN entries or
        SCAN_BUDGET_S. `raw_ok`: a cheap test on the encoded entry that may pass entries the
        filter then rejects, but never rejects one it would keep (skips decoding most)."""
        if cursor and all(int(x) == 0 for x in cursor.split("-")):
            return [], None  # nothing is older than the first id (and Redis refuses "(0-0")
        hi = f"({cursor}" if cursor else (str(hi_ms) if hi_ms is not None else "+")
        lo = str(lo_ms) if lo_ms is not None else "-"
        out: list = []
        scanned = 0
        deadline = time.monotonic() + SCAN_BUDGET_S
        chunk = CHUNK if filtered else limit  # unfiltered pages read exactly what they return
        while len(out) < limit and scanned < MAX_SCAN:
            rows = await bus.r.xrevrange(stream, max=hi, min=lo, count=chunk)
            if not rows:
                return out, None
            for entry_id, fields in rows:
                scanned += 1
                if raw_ok is not None and not raw_ok(fields.get(FIELD, b"")):
                    continue
                msg = bus.decode_entry(fields, kind)
                if msg is not None and keep(msg):
                    out.append(msg)
                    if len(out) == limit:
                        return out, entry_id.decode()
            last = rows[-1][0].decode()
            hi = f"({last}"
            if len(rows) < chunk:
                return out, None
            if time.monotonic() > deadline:
                break  # a partial page: the cursor goes on from here
        return out, hi.lstrip("(")

    @r.get("/events")
    async def search_events(
        who: Viewer,
        camera: Annotated[str | None, Query(max_length=64)] = None,
        label: Annotated[str | None, Query(max_length=64)] = None,
        rule: Annotated[str | None, Query(max_length=64)] = None,
        q: Annotated[str | None, Query(max_length=200, description="words in the summary")] = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Cursor = None,
    ) -> Response:
        words = (q or "").lower().split()
        since, until = as_utc(since, "since"), as_utc(until, "until")
        # Words are searched in the encoded entry first (ASCII case-folds bytewise alike).
        raw_words = [w.encode() for w in words] if all(w.isascii() for w in words) else []
        raw_ok = (lambda raw: all(w in raw.lower() for w in raw_words)) if raw_words else None

        def keep(e: Event) -> bool:
            return ((camera is None or e.camera == camera) and (label is None or label in e.labels)
                    and (rule is None or any(m.rule == rule and m.match for m in e.rules))
                    and (since is None or e.start >= since) and (until is None or e.start <= until)
                    and all(w in e.summary.lower() for w in words))

        # Entry ids are write times and an event is written after its capture: the range bounds the scan.
        lo = _ms(since) if since else None
        hi = _ms(until) + LATE_S * 1000 if until else None
        filtered = any(x is not None for x in (camera, label, rule, q, since, until))
        items, nxt = await scan(bus.keys.events, Event, keep, limit=limit, cursor=cursor, lo_ms=lo, hi_ms=hi,
                                filtered=filtered, raw_ok=raw_ok)
        return json_response({"items": [messages.to_builtins(e) for e in items], "next_cursor": nxt})

    async def load_event(event_id: str) -> Event:
        return await lookups.load_event(bus, event_id)

    async def load_packet(packet_id: str) -> Packet:
        return await lookups.load_packet(bus, packet_id)

    def packet_view(p: Packet) -> dict:
        return {
            "id": p.id, "camera": p.camera, "reason": p.reason, "width": p.width, "height": p.height,
            "temporal_ids": p.temporal_ids, "motion": messages.to_builtins(p.motion), "created": p.created,
            "frames": [{"ts": f.ts, "wall": f.wall, "temporal_id": f.temporal_id, "motion": f.motion,
                        "url": f"/api/packets/{p.id}/frames/{i}.jpg"} for i, f in enumerate(p.frames)],
        }

    @r.get("/events/{event_id}")
    async def get_event(event_id: ItemId, who: Viewer) -> Response:
        event = await load_event(event_id)
        try:
            packet: dict | None = packet_view(await load_packet(event.packet_id))
        except HTTPException:
            packet = None
        return json_response({"event": messages.to_builtins(event), "packet": packet})

    @r.get("/packets/{packet_id}")
    async def get_packet(packet_id: ItemId, who: Viewer) -> Response:
        view = packet_view(await load_packet(packet_id))
        try:
            event = await load_event(f"evt-{packet_id}")
            view["event_id"], view["raw_answer"], view["status"] = event.id, event.raw, event.status
            side = await bus.r.get(bus.keys.event_prompt(event.id))
            talk = msgspec.json.decode(side) if side else {}
            view["prompt"] = talk.get("prompt")
            view["raw_answer"] = talk.get("answer") or event.raw
        except HTTPException:
            view["event_id"] = None
        return json_response(view)

    @r.get("/packets/{packet_id}/frames/{index}.jpg")
    async def packet_frame(packet_id: ItemId, index: int, who: Viewer) -> Response:
        p = await load_packet(packet_id)
        if not 0 <= index < len(p.frames):
            raise HTTPException(404, "no such frame in this packet")
        return Response(p.frames[index].jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})

    @r.get("/activities/{activity_id}/onset.jpg")
    async def activity_onset(activity_id: ItemId, who: Viewer) -> Response:
        """The frame with the most motion at an activity's onset: the snapshot of an alert
        opened at onset, there before the onset packet is."""
        jpeg = await activities.onset_frame(activity_id)
        if jpeg is None:
            raise HTTPException(404, "unknown activity (or trimmed by retention)")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})

    acks_key = f"{bus.keys.prefix}alert:acks"

    @r.get("/alerts")
    async def list_alerts(
        who: Viewer,
        camera: Annotated[str | None, Query(max_length=64)] = None,
        rule: Annotated[str | None, Query(max_length=64)] = None,
        state: Literal["open", "update", "resolved", "active"] | None = None,
        severity: Literal["info", "warning", "critical"] | None = None,
        latest: bool = Query(True, description="one row per alert id (its latest state) instead of every change"),
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Cursor = None,
    ) -> Response:
        seen: set[str] = set()

        def keep(a: Alert) -> bool:
            if latest:
                if a.id in seen:
                    return False
                seen.add(a.id)
            st_ok = state is None or a.state == state or (state == "active" and a.state != "resolved")
            return (st_ok and (camera is None or a.camera == camera) and (rule is None or a.rule == rule)
                    and (severity is None or a.severity == severity))

        items, nxt = await scan(bus.keys.alerts, Alert, keep, limit=limit, cursor=cursor, lo_ms=None, hi_ms=None)
        acks = await bus.r.hmget(acks_key, [a.id for a in items]) if items else []
        out = []
        for a, ack in zip(items, acks):
            d = messages.to_builtins(a)
            d["acknowledged"] = msgspec.json.decode(ack) if ack else None
            out.append(d)
        return json_response({"items": out, "next_cursor": nxt})

    @r.post("/alerts/ack")
    async def acknowledge_many(request: Request, who: Viewer) -> Response:
        """Body `{"ids": [...]}` (at most 500): acknowledge several alerts at once; unknown ids
        are listed in `unknown` and change nothing."""
        body = convert(await read_object(request), BulkAck)
        exists = [await bus.r.exists(bus.keys.once("alert", f"{i}:0")) for i in body.ids]
        known = [i for i, ok in zip(body.ids, exists) if ok]
        ack = {"by": who.name, "at": time.time()}
        if known:
            await bus.r.hset(acks_key, mapping={i: msgspec.json.encode(ack) for i in known})
        return json_response({"acknowledged": known, "unknown": [i for i, ok in zip(body.ids, exists) if not ok],
                              "by": who.name, "at": ack["at"]})

    @r.post("/alerts/{alert_id}/ack")
    async def acknowledge(alert_id: ItemId, who: Viewer) -> Response:
        # Viewers may acknowledge: it records who saw it; it does not change the alert's state.
        if not await bus.r.exists(bus.keys.once("alert", f"{alert_id}:0")):
            raise HTTPException(404, "unknown alert")
        ack = {"by": who.name, "at": time.time()}
        await bus.r.hset(acks_key, alert_id, msgspec.json.encode(ack))
        return json_response({"id": alert_id, "acknowledged": ack})

    @r.post("/alerts/{alert_id}/resolve", status_code=202)
    async def resolve(alert_id: ItemId, who: Admin) -> Response:
        """Ask the alerts stage (the only writer of alert state) to resolve an open alert."""
        if not await bus.r.exists(bus.keys.once("alert", f"{alert_id}:0")):
            raise HTTPException(404, "unknown alert")
        await bus.publish(bus.keys.alert_commands,
                          AlertCommand(alert_id=alert_id, action="resolve", by=who.name, at=time.time()), maxlen=10_000)
        return json_response({"id": alert_id, "queued": "resolve"}, 202)

    return r
