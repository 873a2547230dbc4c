"""The scheduler stage: reads every camera's frames, scores motion, emits packets.

Fairness: one XREAD takes at most `batch` frames from each camera's stream, so a camera with
a backlog cannot crowd out the others in a round, and the packets of a round are published
interleaved across cameras, onset packets first (each camera's own order kept).
Freshness: a live camera's packet whose newest frame is older than `max_age_s` is dropped
and counted (stats hash `sched:stats`) rather than delivered late; replays are never stale.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

import numpy as np

from bus.connection import Bus
from bus.messages import Camera, Frame, FrameStreamItem, Packet, StreamEnd
from bus.registry import Registry
from bus.zones import CameraAreas, ZoneStore
from scheduler.motion import MotionDetector, MotionResult
from scheduler.packer import Candidate, Packer
from scheduler.settings import SchedulerSettings

log = logging.getLogger("vigil.scheduler")


class _CameraState:
    def __init__(self, camera: Camera, settings: SchedulerSettings) -> None:
        self.settings = settings.for_camera(camera.id)
        self.detector = MotionDetector(self.settings.motion, sports=self.settings.sports)
        self.packer = Packer(camera.id, self.settings)
        self.live = camera.pace == "realtime"
        self.errors = 0
        self.areas_stamp: float | None = None  # `updated` of the zones/masks entry applied (None: the YAML's)

    def apply_areas(self, areas: CameraAreas | None) -> None:
        """Zones and masks from Redis (drawn in the dashboard) replace the settings' ones."""
        stamp = areas.updated if areas else None
        if stamp == self.areas_stamp:
            return
        self.areas_stamp = stamp
        m = self.settings.motion
        self.detector.set_areas(areas.masks if areas else m.mask, areas.zones if areas else m.zones)


def interleave(packets: list[Packet]) -> list[Packet]:
    """Round-robin across cameras, onset packets first; each camera's own order is kept."""
    queues: dict[str, list[Packet]] = defaultdict(list)
    for p in packets:
        queues[p.camera].append(p)
    out: list[Packet] = []
    heads = list(queues.values())
    while heads:
        heads.sort(key=lambda q: q[0].reason != "onset")  # stable: cameras keep arrival order otherwise
        for q in heads:
            out.append(q.pop(0))
        heads = [q for q in heads if q]
    return out


class SchedulerService:
    def __init__(self, bus: Bus, settings: SchedulerSettings, *, batch: int = 25) -> None:
        self.bus = bus
        self.s = settings
        self.registry = Registry(bus)
        self.zones = ZoneStore(bus)
        self.batch = batch
        self.cams: dict[str, _CameraState] = {}
        self.cursors: dict[str, str] = {}
        self.packets_out = 0
        self.stale_dropped = 0
        self._stats: dict[str, int] = defaultdict(int)

    async def run(self, stop: asyncio.Event) -> None:
        last_refresh = 0.0
        while not stop.is_set():
            if time.monotonic() - last_refresh > 1.0:
                await self._refresh_cameras()
                await self._flush_stats()
                last_refresh = time.monotonic()
            if not self.cursors:
                await asyncio.sleep(0.2)
                continue
            streams = {self.bus.keys.frames(c): cur for c, cur in self.cursors.items()}
            # Undecodable entries come back as None so the cursor still moves past them.
            rows = await self.bus.read(streams, FrameStreamItem, count=self.batch, block_ms=250, keep_bad=True)
            if rows:
                # Motion scoring and packet assembly are CPU work: keep them off the event loop.
                packets, ended = await asyncio.to_thread(self._process, rows)
                await self._publish(packets)
                await self._save_cursors(rows, ended)
            await self._publish(self._due())
        await self._flush_stats()

    async def _refresh_cameras(self) -> None:
        cams = await self.registry.cameras()
        for cam_id, cam in cams.items():
            if cam_id not in self.cursors:
                saved = await self.bus.r.get(self.bus.keys.scheduler_cursor(cam_id))
                self.cursors[cam_id] = saved.decode() if saved else "0-0"
                self.cams[cam_id] = _CameraState(cam, self.s)
            else:
                self.cams[cam_id].live = cam.pace == "realtime"
        for cam_id in list(self.cursors):
            if cam_id not in cams:
                self.cursors.pop(cam_id)
                self.cams.pop(cam_id, None)
        areas = await self.zones.all()
        for cam_id, st in self.cams.items():
            st.apply_areas(areas.get(cam_id))

    def _process(self, rows: list[tuple[str, str, FrameStreamItem]]) -> tuple[list[Packet], dict[str, StreamEnd]]:
        out: list[Packet] = []
        ended: dict[str, StreamEnd] = {}
        for _, entry_id, msg in rows:
            if msg is None:
                self._stats["bad_frames"] += 1
                continue
            st = self.cams.get(msg.camera)
            if st is None:
                continue
            if isinstance(msg, StreamEnd):
                out += st.packer.flush()
                st.detector.reset()
                ended[msg.camera] = msg
                continue
            try:
                luma = np.frombuffer(msg.luma, np.uint8).reshape(msg.luma_h, msg.luma_w)
                result = st.detector.score(luma, msg.ts)
            except ValueError as exc:
                # One malformed frame costs that frame, never the camera or its neighbours.
                st.errors += 1
                self._stats["bad_frames"] += 1
                if st.errors <= 3:
                    log.warning("camera %s: frame %s unusable: %s", msg.camera, entry_id, exc)
                continue
            if result.recalibrated:
                self._stats["recalibrations"] += 1
            self._stats["frames"] += 1
            out += st.packer.push(_candidate(entry_id, msg, result))
        return out, ended

    def _due(self) -> list[Packet]:
        now = time.time()
        out: list[Packet] = []
        for st in self.cams.values():
            out += st.packer.due(now)
        return out

    def _fresh(self, p: Packet, now: float) -> bool:
        st = self.cams.get(p.camera)
        max_age = st.settings.max_age_s if st else self.s.max_age_s
        if st is None or not st.live or max_age is None:
            return True
        return now - max(f.wall for f in p.frames) <= max_age

    async def _publish(self, packets: list[Packet]) -> None:
        if not packets:
            return
        now = time.time()
        minid = str(int((now - self.s.retention_s) * 1000))
        for p in interleave(packets):
            if not self._fresh(p, now):
                self.stale_dropped += 1
                self._stats["stale_dropped"] += 1
                self._stats[f"stale_dropped:{p.camera}"] += 1
                continue
            entry = await self.bus.publish(self.bus.keys.packets, p, minid=minid)
            await self.bus.r.set(self.bus.keys.packet_ref(p.id), entry, ex=self.s.retention_s)
            self.packets_out += 1
            self._stats["packets"] += 1
            self._stats[f"packets:{p.camera}"] += 1
            self._stats[f"packets_{p.reason}"] += 1

    async def _flush_stats(self) -> None:
        """Counters go to Redis as increments, so several scheduler processes add up."""
        if not self._stats:
            return
        stats, self._stats = self._stats, defaultdict(int)
        pipe = self.bus.r.pipeline(transaction=False)
        for field, n in stats.items():
            pipe.hincrby(self.bus.keys.scheduler_stats, field, n)
        await pipe.execute()

    async def _save_cursors(self, rows: list, ended: dict[str, StreamEnd]) -> None:
        by_stream = {self.bus.keys.frames(c): c for c in self.cursors}
        last: dict[str, str] = {}
        for stream, entry_id, _ in rows:
            if stream in by_stream:
                last[by_stream[stream]] = entry_id
        pipe = self.bus.r.pipeline(transaction=False)
        for cam, entry_id in last.items():
            if cam in self.cursors:
                self.cursors[cam] = entry_id
                pipe.set(self.bus.keys.scheduler_cursor(cam), entry_id)
        if ended:
            await self._flush_stats()
        for cam, end in ended.items():
            pipe.set(self.bus.keys.scheduler_done(cam), str(end.frames))
        await pipe.execute()


def _candidate(entry_id: str, f: Frame, motion: MotionResult) -> Candidate:
    return Candidate(entry_id=entry_id, seq=f.seq, ts=f.ts, wall=f.wall, width=f.width, height=f.height,
                     jpeg=f.jpeg, motion=motion)
