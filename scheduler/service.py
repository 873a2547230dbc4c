"""The scheduler stage: reads every camera's frames, scores motion, emits packets."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from bus.connection import Bus
from bus.messages import Frame, FrameStreamItem, Packet, StreamEnd
from bus.registry import Registry
from scheduler.motion import MotionDetector
from scheduler.packer import Candidate, Packer
from scheduler.settings import SchedulerSettings

log = logging.getLogger("vigil.scheduler")


class _CameraState:
    def __init__(self, camera: str, settings: SchedulerSettings) -> None:
        self.detector = MotionDetector(settings.motion)
        self.packer = Packer(camera, settings)


class SchedulerService:
    def __init__(self, bus: Bus, settings: SchedulerSettings, *, batch: int = 50) -> None:
        self.bus = bus
        self.s = settings
        self.registry = Registry(bus)
        self.batch = batch
        self.cams: dict[str, _CameraState] = {}
        self.cursors: dict[str, str] = {}
        self.packets_out = 0

    async def run(self, stop: asyncio.Event) -> None:
        last_refresh = 0.0
        while not stop.is_set():
            if time.monotonic() - last_refresh > 1.0:
                await self._refresh_cameras()
                last_refresh = time.monotonic()
            if not self.cursors:
                await asyncio.sleep(0.2)
                continue
            streams = {self.bus.keys.frames(c): cur for c, cur in self.cursors.items()}
            rows = await self.bus.read(streams, FrameStreamItem, count=self.batch, block_ms=250)
            if rows:
                # Motion scoring and JPEG bookkeeping are CPU work: keep them off the event loop.
                packets, ended = await asyncio.to_thread(self._process, rows)
                await self._publish(packets)
                await self._save_cursors(rows, ended)
            await self._publish(self._due())

    async def _refresh_cameras(self) -> None:
        cams = await self.registry.cameras()
        for cam_id in cams:
            if cam_id not in self.cursors:
                saved = await self.bus.r.get(self.bus.keys.scheduler_cursor(cam_id))
                self.cursors[cam_id] = saved.decode() if saved else "0-0"
                self.cams[cam_id] = _CameraState(cam_id, self.s)
        for cam_id in list(self.cursors):
            if cam_id not in cams:
                self.cursors.pop(cam_id)
                self.cams.pop(cam_id, None)

    def _process(self, rows: list[tuple[str, str, FrameStreamItem]]) -> tuple[list[Packet], dict[str, StreamEnd]]:
        out: list[Packet] = []
        ended: dict[str, StreamEnd] = {}
        for _, entry_id, msg in rows:
            st = self.cams.get(msg.camera)
            if st is None:
                continue
            if isinstance(msg, StreamEnd):
                out += st.packer.flush()
                st.detector.background = None
                ended[msg.camera] = msg
                continue
            luma = np.frombuffer(msg.luma, np.uint8).reshape(msg.luma_h, msg.luma_w)
            result = st.detector.score(luma)
            out += st.packer.push(_candidate(entry_id, msg, result))
        return out, ended

    def _due(self) -> list[Packet]:
        now = time.time()
        out: list[Packet] = []
        for st in self.cams.values():
            out += st.packer.due(now)
        return out

    async def _publish(self, packets: list[Packet]) -> None:
        if not packets:
            return
        minid = str(int((time.time() - self.s.retention_s) * 1000))
        for p in packets:
            entry = await self.bus.publish(self.bus.keys.packets, p, minid=minid)
            await self.bus.r.set(self.bus.keys.packet_ref(p.id), entry, ex=self.s.retention_s)
            self.packets_out += 1

    async def _save_cursors(self, rows: list, ended: dict[str, StreamEnd]) -> None:
        last: dict[str, str] = {}
        for stream, entry_id, msg in rows:
            last[msg.camera if msg is not None else stream] = entry_id
        pipe = self.bus.r.pipeline(transaction=False)
        for cam, entry_id in last.items():
            if cam in self.cursors:
                self.cursors[cam] = entry_id
                pipe.set(self.bus.keys.scheduler_cursor(cam), entry_id)
        for cam, end in ended.items():
            pipe.set(self.bus.keys.scheduler_done(cam), str(end.frames))
        await pipe.execute()


def _candidate(entry_id: str, f: Frame, motion) -> Candidate:
    return Candidate(entry_id=entry_id, seq=f.seq, ts=f.ts, wall=f.wall, width=f.width, height=f.height,
                     jpeg=f.jpeg, motion=motion)
