"""One camera's ingest: a decode thread feeding an async writer through a bounded queue."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field

from bus.connection import Bus
from bus.messages import Camera, Frame, StreamEnd
from ingest.prepare import luma_thumbnail, model_jpeg
from ingest.sampler import Sampler
from ingest.settings import IngestSettings
from ingest.sources import Source, SourceError, open_source

log = logging.getLogger("vigil.ingest")


@dataclass
class CameraStats:
    state: str = "connecting"
    decoded: int = 0
    sampled: int = 0
    written: int = 0
    dropped: int = 0
    last_error: str = ""
    last_frame_wall: float = 0.0
    started: float = field(default_factory=time.time)


def _stream_id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class CameraIngest:
    """Decodes in a thread (CPU-bound; PyAV releases the GIL while decoding) and writes
    sampled frames to `frames:{camera}` from the event loop."""

    def __init__(self, bus: Bus, camera: Camera, settings: IngestSettings, source: Source | None = None) -> None:
        self.bus = bus
        self.camera = camera
        self.settings = settings
        self.fast = camera.pace == "fast"
        self.source = source or open_source(
            camera.url, realtime=not self.fast, loop=camera.loop, threads=settings.decode_threads
        )
        self.stats = CameraStats()
        self._stop = threading.Event()
        self._queue: asyncio.Queue[Frame | StreamEnd] = asyncio.Queue(maxsize=settings.queue_frames)
        self._written_ids: list[str] = []

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> CameraStats:
        loop = asyncio.get_running_loop()
        decoder = loop.run_in_executor(None, self._decode_loop, loop)
        writer = asyncio.create_task(self._write_loop())
        try:
            await decoder
        finally:
            self._stop.set()
            await writer
        return self.stats

    # -- decode thread ---------------------------------------------------------------
    def _decode_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        sampler = Sampler(self.camera.sample_fps)
        s = self.settings
        error = ""
        seq = 0
        try:
            self.stats.state = "streaming"
            for item in self.source.frames(self._stop):
                if self.camera.duration is not None and item.ts > self.camera.duration:
                    break
                self.stats.decoded += 1
                if not sampler.take(item.ts):
                    continue  # decoded (the codec needs it) but never converted to pixels
                luma = luma_thumbnail(item.frame, s.luma_width)
                jpeg, w, h = model_jpeg(item.frame, s.model_size, s.jpeg_quality)
                msg = Frame(
                    camera=self.camera.id, seq=seq, ts=round(item.ts, 6), wall=self._wall(item.ts),
                    width=w, height=h, jpeg=jpeg, luma=luma.tobytes(), luma_w=luma.shape[1],
                    luma_h=luma.shape[0], src_width=item.frame.width, src_height=item.frame.height,
                    keyframe=item.keyframe,
                )
                seq += 1
                self.stats.sampled += 1
                self._hand_over(loop, msg)
        except SourceError as exc:
            error = str(exc)
        except Exception as exc:  # one broken camera never takes down another
            log.exception("camera %s: ingest failed", self.camera.id)
            error = f"internal error: {type(exc).__name__}"
        finally:
            if error:
                self.stats.last_error = error
                log.warning("camera %s: %s", self.camera.id, error)
            self.stats.state = "error" if error else "ended"
            end = StreamEnd(camera=self.camera.id, wall=time.time(), frames=seq, error=error)
            asyncio.run_coroutine_threadsafe(self._queue.put(end), loop).result()

    def _wall(self, ts: float) -> float:
        # Files: the start of the run plus stream time, so paced and fast replays agree.
        if self.source.live:
            return time.time()
        return self.stats.started + ts

    def _hand_over(self, loop: asyncio.AbstractEventLoop, msg: Frame) -> None:
        if self.fast:
            # Replays lose nothing: wait for room instead of dropping.
            asyncio.run_coroutine_threadsafe(self._queue.put(msg), loop).result()
            return

        def put_or_drop() -> None:
            if self._queue.full():
                self._queue.get_nowait()  # live: the freshest frame wins
                self.stats.dropped += 1
            self._queue.put_nowait(msg)

        loop.call_soon_threadsafe(put_or_drop)

    # -- writer (event loop) ------------------------------------------------------------
    async def _write_loop(self) -> None:
        stream = self.bus.keys.frames(self.camera.id)
        maxlen = self.settings.frames_maxlen
        while True:
            msg = await self._queue.get()
            if isinstance(msg, Frame) and self.fast:
                await self._wait_for_scheduler()
            entry = await self.bus.publish(stream, msg, maxlen=maxlen)
            if isinstance(msg, StreamEnd):
                return
            self.stats.written += 1
            self.stats.last_frame_wall = time.time()
            if self.fast:
                self._written_ids.append(entry)
                del self._written_ids[: -self.settings.backpressure_frames]

    async def _wait_for_scheduler(self) -> None:
        """Replays run ahead of the scheduler only by `backpressure_frames`, so the ring
        buffer never trims frames the scheduler has not read."""
        if len(self._written_ids) < self.settings.backpressure_frames:
            return
        horizon = _stream_id_tuple(self._written_ids[0])
        key = self.bus.keys.scheduler_cursor(self.camera.id)
        while True:
            cursor = await self.bus.r.get(key)
            if cursor and _stream_id_tuple(cursor.decode()) >= horizon:
                return
            await asyncio.sleep(0.005)
