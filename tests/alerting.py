"""Helpers for the alerts tests: real Event/Packet messages and a running alerts stage."""

from __future__ import annotations

import asyncio
import contextlib
import time

import cv2
import numpy as np

from alerts.service import AlertsService
from alerts.settings import AlertsSettings
from bus.activities import ActivityStore
from bus.connection import Bus
from bus.messages import ActivityNote, Alert, Event, EventFrame, MotionSummary, Packet, PacketFrame, RuleMatch, utc

_JPEG = cv2.imencode(".jpg", np.zeros((48, 64, 3), np.uint8))[1].tobytes()


def event(camera: str, packet_id: str, t0: float, t1: float, labels: list[str] | None = None, *,
          counts: dict[str, int] | None = None, area: float = 0.05, zones: list[str] | None = None,
          verdicts: list[RuleMatch] | None = None, summary: str = "") -> Event:
    labels = labels or []
    return Event(
        id=f"evt-{packet_id}", camera=camera, start=utc(t0), end=utc(t1), packet_id=packet_id, reason="motion",
        summary=summary or (", ".join(labels) or "nothing"), labels=labels,
        counts=counts if counts is not None else {lb: 1 for lb in labels if lb != "motion"},
        motion=MotionSummary(area=area, zones=zones or []), rules=verdicts or [], backend="cpu", model="opencv-hog",
        latency_ms=40.0, visual_tokens=0,
        frames=[EventFrame(ts=0.0, temporal_id=0, url=f"/api/packets/{packet_id}/frames/0.jpg")],
    )


def onset_packet(camera: str, packet_id: str, wall: float, area: float = 0.05, zones: list[str] | None = None) -> Packet:
    frames = [PacketFrame(seq=i, ts=i * 0.2, wall=wall + i * 0.2, temporal_id=i * 2, motion=area, jpeg=_JPEG)
              for i in range(3)]
    return Packet(id=packet_id, camera=camera, reason="onset", width=64, height=48, frames=frames,
                  temporal_ids=[[0, 2, 4]], motion=MotionSummary(area=area, zones=zones or []), created=time.time())


def start_note(camera: str, activity: str, wall: float, area: float = 0.05, zones: list[str] | None = None,
               packet_id: str | None = None) -> ActivityNote:
    """The scheduler's activity start: first moving frame at `wall`, confirmed 0.2 s later."""
    return ActivityNote(camera=camera, activity=activity, state="start", onset_wall=wall, onset_ts=0.0,
                        wall=wall + 0.2, ts=0.2, motion=MotionSummary(area=area, zones=zones or []),
                        packet_id=packet_id or activity, jpeg=_JPEG, width=64, height=48, created=time.time())


def packet_note(camera: str, activity: str, packet_id: str, t0: float, t1: float, n: int = 1) -> ActivityNote:
    return ActivityNote(camera=camera, activity=activity, state="packet", onset_wall=0.0, onset_ts=0.0, wall=t1,
                        ts=0.0, packet_id=packet_id, packet_start=t0, packets=n, created=time.time())


def end_note(camera: str, activity: str, wall: float, packets: int = 0) -> ActivityNote:
    return ActivityNote(camera=camera, activity=activity, state="end", onset_wall=0.0, onset_ts=0.0, wall=wall,
                        ts=0.0, packets=packets, created=time.time())


async def note(bus: Bus, *notes: ActivityNote) -> None:
    for n in notes:
        await ActivityStore(bus).publish(n, retention_s=3600)


async def alerts_in_stream(bus: Bus) -> list[Alert]:
    return [a for _, a in await bus.range(bus.keys.alerts, Alert)]


async def settled(bus: Bus, stream: str, group: str, timeout: float = 10.0) -> None:
    """Every entry of `stream` has been read and acked by `group`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = await bus.group_info(stream, group)
        last = await bus.r.xrevrange(stream, count=1)
        if info and not info["pending"] and (not last or info["last-delivered-id"] == last[0][0].decode()):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{group} did not catch up with {stream}")


async def wait_for(pred, timeout: float = 15.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await pred()
        if got:
            return got
        await asyncio.sleep(every)
    raise AssertionError("condition not met in time")


@contextlib.asynccontextmanager
async def running(bus: Bus, settings: AlertsSettings | None = None, consumer: str = "t1"):
    svc = AlertsService(bus, settings or AlertsSettings(tick_s=3600), consumer=consumer)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    # run() creates its consumer groups first; wait for them so nothing published is missed.
    await wait_for(lambda: bus.group_info(bus.keys.alerts, bus.keys.WEBHOOKS))
    try:
        yield svc
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
