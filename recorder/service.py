"""The recorder stage: a clip per packet from the frames ring, with pre- and post-roll.

The frames ring (`frames:{camera}`, ingest's, read only here) holds about a minute of sampled
frames; a packet arrives within a second or so of its frames, so the recorder waits until its
post-roll has been captured, takes every sampled frame from `pre_roll_s` before the packet's
first frame to `post_roll_s` after its last, and stores them as one WebM (bus/clips.py) for
`retention_s`. Packets come through the `recorders` consumer group, so several recorder
processes share the work and a clip is made once. A packet whose frames have left the ring
(the recorder was down) gets a clip of its own keyframes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from bus.clips import Clip, ClipStore, clip_of_packet, encode_webm
from bus.connection import Bus
from bus.messages import Frame, FrameStreamItem, Packet
from recorder.settings import RecorderSettings

log = logging.getLogger("vigil.recorder")
CLAIM_IDLE_MS = 60_000  # packets another recorder took and never finished


class RecorderService:
    def __init__(self, bus: Bus, settings: RecorderSettings, consumer: str | None = None) -> None:
        self.bus = bus
        self.s = settings
        self.store = ClipStore(bus)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.waiting: list[tuple[float, str, Packet]] = []  # (due, entry id, packet)
        self.recorded = 0
        # Per camera, the end of the last clip: the next one of the same activity starts
        # after it, so an alert's clips join without showing a moment twice.
        self.last_end: dict[str, float] = {}

    async def run(self, stop: asyncio.Event) -> None:
        if not self.s.enabled:
            await stop.wait()
            return
        k = self.bus.keys
        # New deployments start from now: a day of retained packets is not worth encoding.
        await self.bus.ensure_group(k.packets, k.RECORDERS, start="$")
        last_claim = 0.0
        while not stop.is_set():
            rows: list = []
            if time.monotonic() - last_claim > 30:
                last_claim = time.monotonic()
                rows = await self.bus.autoclaim(k.packets, k.RECORDERS, self.consumer, Packet,
                                                min_idle_ms=CLAIM_IDLE_MS, count=50)
            rows += await self.bus.read_group(k.packets, k.RECORDERS, self.consumer, Packet, count=20,
                                              block_ms=250 if not self.waiting else 100)
            for entry_id, p in rows:
                if p is None or not p.frames:
                    await self.bus.ack(k.packets, k.RECORDERS, entry_id)
                    continue
                self.waiting.append((max(f.wall for f in p.frames) + self.s.post_roll_s + 0.5, entry_id, p))
            self.waiting.sort(key=lambda x: x[0])
            now = time.time()
            while self.waiting and self.waiting[0][0] <= now and not stop.is_set():
                _, entry_id, p = self.waiting.pop(0)
                try:
                    await self.record(p)
                except Exception:
                    log.exception("clip of packet %s not recorded; left pending", p.id)
                    continue
                await self.bus.ack(k.packets, k.RECORDERS, entry_id)

    async def record(self, p: Packet) -> Clip:
        first = min(f.wall for f in p.frames)
        start = max(first - self.s.pre_roll_s, min(self.last_end.get(p.camera, 0.0) + 1e-3, first))
        end = max(f.wall for f in p.frames) + self.s.post_roll_s
        frames = await self._frames(p.camera, start, end)
        if len(frames) >= len(p.frames):
            jpegs, walls = self._thin(frames)
            # Encoding is CPU work: keep it off the event loop.
            webm, w, h = await asyncio.to_thread(encode_webm, jpegs, walls, bitrate=self.s.bitrate)
            clip = Clip(packet_id=p.id, camera=p.camera, start=walls[0], end=walls[-1], frames=len(jpegs),
                        width=w, height=h, webm=webm)
        else:
            clip = await asyncio.to_thread(clip_of_packet, p)
        await self.store.put(clip, self.s.retention_s)
        self.last_end[p.camera] = max(self.last_end.get(p.camera, 0.0), clip.end)
        self.recorded += 1
        return clip

    async def _frames(self, camera: str, start: float, end: float) -> list[Frame]:
        # Entry ids are write times, a little after capture: read a wider window, then filter
        # on the capture time each frame carries.
        rows = await self.bus.range(self.bus.keys.frames(camera), FrameStreamItem,
                                    start=str(int((start - 1) * 1000)), end=str(int((end + 5) * 1000)))
        return [m for _, m in rows if isinstance(m, Frame) and start <= m.wall <= end]

    def _thin(self, frames: list[Frame]) -> tuple[list[bytes], list[float]]:
        step = 1.0 / self.s.max_fps
        jpegs: list[bytes] = []
        walls: list[float] = []
        for f in frames:
            if walls and f.wall - walls[-1] < step * 0.9:
                continue
            jpegs.append(f.jpeg)
            walls.append(f.wall)
        if len(jpegs) > self.s.max_frames:
            keep = [round(i * (len(jpegs) - 1) / (self.s.max_frames - 1)) for i in range(self.s.max_frames)]
            jpegs, walls = [jpegs[i] for i in keep], [walls[i] for i in keep]
        return jpegs, walls
