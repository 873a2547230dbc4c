"""One camera's ingest: a decode thread feeding an async writer through a bounded queue,
with reconnects for live sources."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field

from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeoutError

from bus.connection import Bus, redact_url
from bus.messages import Camera, Frame, StreamEnd
from ingest.backoff import Backoff
from ingest.prepare import prepare
from ingest.sampler import Sampler
from ingest.settings import IngestSettings
from ingest.sources import Decoded, Source, SourceError, open_source

log = logging.getLogger("vigil.ingest")
WRITE_BATCH = 32  # most frames written in one round trip
FAST_BATCH = 16  # replays: frames handed from the decode thread to the event loop at once
FAST_BATCH_WAIT_S = 0.1  # ... or after this long


@dataclass
class CameraStats:
    state: str = "connecting"
    decoded: int = 0
    sampled: int = 0
    written: int = 0
    dropped: int = 0
    reconnects: int = 0
    outages: int = 0  # streaming connections lost (reconnects also counts failed opens)
    probes_failed: int = 0  # cheap reachability probes that found the camera away
    last_error: str = ""
    last_error_at: float | None = None
    next_attempt: float | None = None
    last_frame_wall: float = 0.0
    last_ts: float = 0.0
    started: float = field(default_factory=time.time)


@dataclass
class Resume:
    """Where a live camera's previous run stopped (this worker or a dead one), so stream time
    and sequence numbers keep increasing for the scheduler."""

    ts: float = 0.0
    seq: int = 0
    wall: float = 0.0


def _stream_id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class CameraIngest:
    """Decodes in its own thread (CPU-bound; PyAV releases the GIL while decoding, and a
    thread per camera means one slow camera never waits behind another) and writes sampled
    frames to `frames:{camera}` from the event loop."""

    def __init__(self, bus: Bus, camera: Camera, settings: IngestSettings, source: Source | None = None,
                 resume: Resume | None = None) -> None:
        self.bus = bus
        self.camera = camera
        self.settings = settings
        self.fast = camera.pace == "fast"
        self.source = source or open_source(camera, threads=settings.decode_threads,
                                            ice_servers=settings.ice_servers, policy=settings.policy(),
                                            max_pixels=settings.max_source_pixels)
        self.stats = CameraStats()
        self.resume = resume if (resume and self.source.live) else Resume()
        self._stop = threading.Event()
        self._queue: asyncio.Queue[Frame | StreamEnd] = asyncio.Queue(maxsize=settings.queue_frames)
        self._written_ids: list[str] = []
        self._scheduler_at: tuple[int, int] = (0, 0)  # the scheduler's cursor, as last read
        self._thread: threading.Thread | None = None
        # Replays: room in the queue, taken by the decode thread and given back by the writer
        # (cheaper than a coroutine round trip per frame).
        self._slots = threading.Semaphore(settings.queue_frames)
        self._writer_gone = threading.Event()
        # Replays: frames the decode thread has not handed to the event loop yet (a batch).
        self._outbox: list[Frame | StreamEnd] = []
        self._outbox_since = 0.0
        self._outbox_max = max(1, min(FAST_BATCH, settings.queue_frames // 2))
        self._bus_down = False
        self._away = False  # a probe found the camera away during the current outage

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def run(self) -> CameraStats:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def target() -> None:
            try:
                self._decode_loop(loop)
            finally:
                loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        # A daemon thread, not the default executor: that pool has only a few workers, and a
        # camera blocked in a network read must not hold up interpreter exit.
        self._thread = threading.Thread(target=target, name=f"decode:{self.camera.id}", daemon=True)
        writer = asyncio.create_task(self._write_loop())
        side = asyncio.create_task(self.source.signalling(self.bus), name=f"signal:{self.camera.id}")
        self._thread.start()
        try:
            await asyncio.shield(done)
        finally:
            self._stop.set()
            side.cancel()
            await asyncio.gather(side, return_exceptions=True)
            if not done.done():
                # Cancelled while the decoder may sit in a network read (bounded by the read
                # timeout): it finishes on its own; the writer must not wait for it.
                writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        return self.stats

    # -- decode thread ---------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        """Error texts never carry the raw URL (it may hold credentials)."""
        return text.replace(self.camera.url, redact_url(self.camera.url)) if self.camera.url else text

    def _decode_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        s = self.settings
        sampler = Sampler(self.camera.sample_fps)
        backoff = Backoff(s.reconnect_min_s, max(s.reconnect_max_s, s.reconnect_min_s), jitter=s.reconnect_jitter)
        error = ""
        seq = self.resume.seq
        prev_ts, prev_mono = self.resume.ts, None
        if self.resume.wall:
            prev_mono = time.monotonic() - max(0.0, time.time() - self.resume.wall)
        try:
            while not self._stop.is_set():
                self.stats.state = "connecting"
                self.stats.next_attempt = None
                connected: float | None = None
                base = 0.0
                try:
                    for item in self.source.frames(self._stop):
                        if connected is None:
                            connected = time.monotonic()
                            self.stats.state = "streaming"
                            self._away = False
                            if self.source.live and prev_mono is not None:
                                # Stream time goes on across reconnects: the gap shows as a gap.
                                base = prev_ts + max(connected - prev_mono, 1e-3) - item.ts
                        ts = base + item.ts
                        if self.camera.duration is not None and ts > self.camera.duration:
                            return
                        prev_ts, prev_mono = ts, time.monotonic()
                        self.stats.decoded += 1
                        self.stats.last_ts = ts
                        if not sampler.take(ts):
                            continue  # decoded (the codec needs it) but never converted to pixels
                        self._hand_over(loop, self._frame(item, ts, seq))
                        seq += 1
                        self.stats.sampled += 1
                    if not self.source.live or self._stop.is_set():
                        return  # a file ended (or we were asked to stop)
                    reason = "stream ended"
                except SourceError as exc:
                    reason = self._scrub(str(exc))
                    if not self.source.live:
                        error = reason
                        return
                if self._stop.is_set():
                    return
                self.stats.last_error, self.stats.last_error_at = reason, time.time()
                self.stats.reconnects += 1
                if connected is not None:
                    self.stats.outages += 1
                if not self.source.backoff:
                    log.info("camera %s: %s; waiting for the next session", self.camera.id, reason)
                    continue
                if connected is not None and time.monotonic() - connected >= s.healthy_s:
                    backoff.reset()
                delay = backoff.next_delay()
                self.stats.next_attempt = time.time() + delay
                self.stats.state = "retrying"
                log.warning("camera %s: %s; reconnecting in %.1fs", self.camera.id, reason, delay)
                if self._wait_to_retry(delay):
                    # Back after an outage: try eagerly again (its server may need a moment).
                    backoff.reset()
                    log.info("camera %s: answers again; reconnecting now", self.camera.id)
        except Exception as exc:  # one broken camera never takes down another
            log.exception("camera %s: ingest failed", self.camera.id)
            error = f"internal error: {type(exc).__name__}"
        finally:
            if error:
                self.stats.last_error, self.stats.last_error_at = error, time.time()
                log.warning("camera %s: %s", self.camera.id, error)
            self.stats.state = "error" if error else ("stopped" if self._stop.is_set() and self.source.live else "ended")
            self.stats.next_attempt = None
            end = StreamEnd(camera=self.camera.id, wall=time.time(), frames=seq, error=error)
            self._hand_over(loop, end)

    def _wait_to_retry(self, delay: float) -> bool:
        """Wait out a reconnect delay, probing the camera every `probe_s` meanwhile: once it
        has been seen away and answers again, retry at once (True). Full opens keep their
        backoff, so a camera that is gone is probed, not hammered, and one that comes back
        streams within a probe period plus its open time, however long it was away."""
        end = time.monotonic() + delay
        period = self.settings.probe_s
        while not self._stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return False
            if not period:
                self._stop.wait(left)
                return False
            if self._stop.wait(min(period, left)):
                return False
            answer = self.source.probe()
            if answer is None:
                period = 0.0  # this source cannot be probed: plain backoff
            elif not answer:
                self._away = True  # for the whole outage: it may come back during any wait
                self.stats.probes_failed += 1
            elif self._away:
                self._away = False
                return True
        return False

    def _frame(self, item: Decoded, ts: float, seq: int) -> Frame:
        s = self.settings
        luma, jpeg, w, h = prepare(item.frame, s.luma_width, s.model_size, s.jpeg_quality)
        return Frame(
            camera=self.camera.id, seq=seq, ts=round(ts, 6), wall=self._wall(ts),
            width=w, height=h, jpeg=jpeg, luma=luma.tobytes(), luma_w=luma.shape[1],
            luma_h=luma.shape[0], src_width=item.frame.width, src_height=item.frame.height,
            keyframe=item.keyframe,
        )

    def _wall(self, ts: float) -> float:
        # Files: the start of the run plus stream time, so paced and fast replays agree; a
        # paced file releases each frame at that very time (one clock for all its loops).
        if self.source.live:
            return time.time()
        epoch = self.source.epoch
        return (epoch if epoch is not None else self.stats.started) + ts

    def _hand_over(self, loop: asyncio.AbstractEventLoop, msg: Frame | StreamEnd) -> None:
        if loop.is_closed():
            return
        if self.fast:
            # Replays lose nothing: wait for room instead of dropping. They are about
            # throughput, so frames go to the event loop in batches (one wake-up each), and
            # the writer and the scheduler then handle many frames per round trip.
            if not self._slots.acquire(blocking=False):
                self._flush_outbox(loop)
                while not self._slots.acquire(timeout=0.5):
                    if self._writer_gone.is_set() or loop.is_closed():
                        return
            if not self._outbox:
                self._outbox_since = time.monotonic()
            self._outbox.append(msg)
            if (isinstance(msg, StreamEnd) or len(self._outbox) >= self._outbox_max
                    or time.monotonic() - self._outbox_since >= FAST_BATCH_WAIT_S):
                self._flush_outbox(loop)
            return

        def put_or_drop() -> None:
            if self._queue.full():
                self._queue.get_nowait()  # live: the freshest frame wins
                self.stats.dropped += 1
            self._queue.put_nowait(msg)

        try:
            loop.call_soon_threadsafe(put_or_drop)
        except RuntimeError:
            pass  # loop closed: nobody is left to write

    def _flush_outbox(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._outbox = self._outbox, []
        if batch:
            try:
                loop.call_soon_threadsafe(self._put_all, batch)
            except RuntimeError:
                pass  # loop closed: nobody is left to write

    def _put_all(self, batch: list[Frame | StreamEnd]) -> None:
        for msg in batch:
            self._queue.put_nowait(msg)

    # -- writer (event loop) ------------------------------------------------------------
    async def _write_loop(self) -> None:
        stream = self.bus.keys.frames(self.camera.id)
        maxlen = self.settings.frames_maxlen
        try:
            await self._write_frames(stream, maxlen)
        finally:
            self._writer_gone.set()

    async def _write_frames(self, stream: str, maxlen: int) -> None:
        # Frames that queued up while the last write was in flight go out together: one
        # round trip for many frames instead of one each (replays decode far ahead of Redis).
        most = max(1, min(WRITE_BATCH, self.settings.backpressure_frames // 2))
        while True:
            batch = [await self._queue.get()]
            while len(batch) < most and not self._queue.empty() and not isinstance(batch[-1], StreamEnd):
                batch.append(self._queue.get_nowait())
            if self.fast:
                for _ in batch:
                    self._slots.release()
            frames = [m for m in batch if isinstance(m, Frame)]
            if frames:
                if self.fast:
                    await self._wait_for_scheduler(len(frames))
                entries = await self._publish(stream, frames, maxlen)
                self.stats.written += len(entries)
                if entries:
                    self.stats.last_frame_wall = time.time()
                if self.fast:
                    self._written_ids += entries
                    del self._written_ids[: -self.settings.backpressure_frames]
            if isinstance(batch[-1], StreamEnd):
                await self._publish(stream, [batch[-1]], maxlen)
                return

    async def _publish(self, stream: str, msgs: list[Frame] | list[StreamEnd], maxlen: int) -> list[str]:
        """XADD, riding out a Redis outage: replays wait for it; live frames are dropped
        (and counted), since a late frame is worth less than the next one."""
        attempts = 0
        while True:
            try:
                entries = await self.bus.publish_many(stream, msgs, maxlen=maxlen)  # type: ignore[arg-type]
                if self._bus_down:
                    self._bus_down = False
                    log.info("camera %s: writing frames again", self.camera.id)
                return entries
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                attempts += 1
                if not self._bus_down:
                    self._bus_down = True  # warn once per outage, not once per frame
                    log.warning("camera %s: cannot write frames (%s); holding on", self.camera.id,
                                type(exc).__name__)
                if not self.fast and isinstance(msgs[0], Frame):
                    self.stats.dropped += len(msgs)
                    await asyncio.sleep(0.2)
                    return []
                if isinstance(msgs[0], StreamEnd) and attempts >= 10:
                    return []
                await asyncio.sleep(0.5)

    async def _wait_for_scheduler(self, adding: int) -> None:
        """Replays run ahead of the scheduler only by `backpressure_frames`, so the ring
        buffer never trims frames the scheduler has not read. The scheduler's cursor is read
        from Redis only when the last value read does not already allow the write."""
        # After `adding` more frames, the frame written `backpressure_frames - adding` frames
        # before them must have been consumed.
        index = len(self._written_ids) + adding - self.settings.backpressure_frames - 1
        if index < 0:
            return
        horizon = _stream_id_tuple(self._written_ids[index])
        key = self.bus.keys.scheduler_cursor(self.camera.id)
        while self._scheduler_at < horizon:
            cursor = await self.bus.r.get(key)
            if cursor:
                self._scheduler_at = max(self._scheduler_at, _stream_id_tuple(cursor.decode()))
            if self._scheduler_at < horizon:
                await asyncio.sleep(0.005)
