"""Live view fan-out: one Redis reader per watched camera, whatever the number of viewers.

Ingest already writes every sampled frame as a JPEG to `frames:{camera}`; the live view
forwards those bytes unchanged (MJPEG, docs/web.md says why). A camera nobody watches has no
reader: the first viewer starts one, the last one leaving stops it. Each viewer holds only
the newest frame (a slot, not a queue), so a slow client skips frames and never makes the
others or Redis wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bus import messages
from bus.connection import Bus

log = logging.getLogger("vigil.web")


class Viewer:
    def __init__(self) -> None:
        self.jpeg: bytes | None = None
        self.ready = asyncio.Event()

    def offer(self, jpeg: bytes) -> None:
        self.jpeg = jpeg  # a newer frame replaces one the client has not taken yet
        self.ready.set()

    async def next(self, timeout: float) -> bytes | None:
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except asyncio.TimeoutError:
            return None
        self.ready.clear()
        return self.jpeg


class LiveFrames:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.viewers: dict[str, set[Viewer]] = {}
        self.readers: dict[str, asyncio.Task] = {}
        self.closed = False  # set when the server stops: every stream ends

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.viewers.values())

    async def latest(self, camera: str) -> bytes | None:
        rows = await self.bus.range(self.bus.keys.frames(camera), messages.FrameStreamItem, reverse=True, count=5)
        for _, msg in rows:
            if isinstance(msg, messages.Frame):
                return msg.jpeg
        return None

    def watch(self, camera: str) -> Viewer:
        v = Viewer()
        self.viewers.setdefault(camera, set()).add(v)
        task = self.readers.get(camera)
        if task is None or task.done():
            self.readers[camera] = asyncio.create_task(self._read(camera), name=f"live:{camera}")
        return v

    def leave(self, camera: str, v: Viewer) -> None:
        watchers = self.viewers.get(camera)
        if watchers is not None:
            watchers.discard(v)
            if not watchers:
                self.viewers.pop(camera, None)
                task = self.readers.pop(camera, None)
                if task:
                    task.cancel()

    async def _read(self, camera: str) -> None:
        stream = self.bus.keys.frames(camera)
        cursor = "$"
        while self.viewers.get(camera):
            try:
                rows = await self.bus.read({stream: cursor}, messages.FrameStreamItem, count=10, block_ms=1000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away for a moment: viewers keep their connection
                log.warning("live view %s: read failed: %s", camera, exc)
                await asyncio.sleep(1.0)
                continue
            for _, entry_id, msg in rows:
                cursor = entry_id
            frames = [m for _, _, m in rows if isinstance(m, messages.Frame)]
            if frames:
                for v in list(self.viewers.get(camera, ())):
                    v.offer(frames[-1].jpeg)

    async def close(self) -> None:
        """End every live stream (server shutdown: open streams would hold it up)."""
        self.closed = True
        for watchers in self.viewers.values():
            for v in watchers:
                v.ready.set()
        tasks = list(self.readers.values())
        self.readers.clear()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
