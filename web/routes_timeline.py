"""A camera's timeline: motion level, activities, events and alerts over a time range, from
the events and alerts streams (packets are not read: they carry the JPEGs)."""

import time
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path as PathParam, Query, Response

from bus.connection import Bus
from bus.messages import Alert, Event
from bus.names import ID_PATTERN
from bus.registry import Registry
from web.auth import Principal
from web.body import json_response
from web.deps import Access

CameraId = Annotated[str, PathParam(pattern=ID_PATTERN)]
MAX_RANGE_S = 7 * 86400
MAX_ITEMS = 5000  # events one timeline shows; a longer range is summarised by its motion curve
BUCKETS = 240  # points of the motion curve
ACTIVITY_GAP_S = 3.0  # events closer than this belong to one activity
LATE_S = 600  # an event is written at most this long after its capture (bounds the scan)


def timeline_router(bus: Bus, access: Access) -> APIRouter:
    r = APIRouter(prefix="/api/cameras", tags=["cameras"])
    Viewer = Annotated[Principal, Depends(access.viewer)]
    registry = Registry(bus)

    @r.get("/{camera_id}/timeline")
    async def timeline(camera_id: CameraId, who: Viewer, since: datetime | None = None, until: datetime | None = None,
                       hours: Annotated[float, Query(gt=0, le=168)] = 3.0) -> Response:
        """`since`/`until` (ISO-8601) or the last `hours`. Times in the answer are epoch seconds."""
        if await registry.camera(camera_id) is None:
            raise HTTPException(404, f"unknown camera {camera_id!r}")
        hi = until.timestamp() if until else time.time()
        lo = since.timestamp() if since else hi - hours * 3600
        if lo >= hi or hi - lo > MAX_RANGE_S:
            raise HTTPException(422, "since must be before until, at most 7 days apart")
        bucket = (hi - lo) / BUCKETS
        motion = [0.0] * BUCKETS
        events: list[dict] = []
        truncated = False
        cursor = str(int(lo * 1000))
        end = str(int((hi + LATE_S) * 1000))
        while not truncated:
            rows = await bus.r.xrange(bus.keys.events, min=cursor, max=end, count=1000)
            for entry_id, fields in rows:
                e = bus.decode_entry(fields, Event)
                if e is None or e.camera != camera_id:
                    continue
                t0, t1 = e.start.timestamp(), e.end.timestamp()
                if t1 < lo or t0 > hi:
                    continue
                for i in range(max(0, int((t0 - lo) / bucket)), min(BUCKETS, int((t1 - lo) / bucket) + 1)):
                    motion[i] = max(motion[i], e.motion.area)
                if len(events) >= MAX_ITEMS:
                    truncated = True
                    continue
                events.append({"id": e.id, "packet_id": e.packet_id, "start": t0, "end": t1, "reason": e.reason,
                               "labels": e.labels, "summary": e.summary[:200], "motion": e.motion.area,
                               "zones": e.motion.zones, "rules": [m.rule for m in e.rules if m.match]})
            if len(rows) < 1000:
                break
            cursor = "(" + rows[-1][0].decode()
        activities: list[list[float]] = []
        for ev in sorted(events, key=lambda x: x["start"]):
            if ev["reason"] == "heartbeat":
                continue
            if activities and ev["start"] - activities[-1][1] <= ACTIVITY_GAP_S:
                activities[-1][1] = max(activities[-1][1], ev["end"])
            else:
                activities.append([ev["start"], ev["end"]])
        alerts: dict[str, dict] = {}
        for _, a in await bus.range(bus.keys.alerts, Alert, start=str(int((lo - 86400) * 1000)), end=end):
            if a.camera != camera_id and camera_id not in a.cameras:
                continue
            f, l = a.first_seen.timestamp(), a.last_seen.timestamp()
            if l < lo or f > hi:
                continue
            alerts[a.id] = {"id": a.id, "rule": a.rule, "title": a.title, "severity": a.severity, "state": a.state,
                            "first_seen": f, "last_seen": l, "packet_id": (a.packet_ids or [None])[-1],
                            "event_id": (a.event_ids or [None])[-1]}
        return json_response({
            "camera": camera_id, "since": lo, "until": hi, "bucket_s": bucket,
            "motion": [[round(lo + i * bucket, 3), round(m, 4)] for i, m in enumerate(motion)],
            "activities": activities, "events": events, "alerts": list(alerts.values()), "truncated": truncated,
        })

    return r
