"""Files and network URLs (RTSP, HTTP, ...) decoded with PyAV (FFmpeg)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit
from typing import Iterator, Literal

import av

from bus.urls import SourcePolicy, SourceRefused, check_path, display_source
from ingest.sources.base import Decoded, Source, SourceError

log = logging.getLogger("vigil.ingest")
KeyframeMode = Literal["off", "on", "auto"]
# Demuxers of still images: a camera is a video, and a picture on the host's disk must not
# become a snapshot for viewers (image2 reads .png/.jpg files, *_pipe the same by content).
STILL_IMAGE_FORMATS = {"image2", "apng", "gif", "webp", "svg"}


def ffmpeg_reason(exc: BaseException) -> str:
    """The FFmpeg error text without the file name PyAV appends (it may hold credentials)."""
    if isinstance(exc, av.error.FFmpegError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__


class PyAVSource(Source):
    """Decodes every frame of the first video stream (or only keyframes, see `keyframes_only`).

    For a file, `realtime=True` paces frames by their timestamps so the file behaves like a
    camera; `realtime=False` decodes as fast as the CPU allows (replays, `vigil packets`).
    Network sources get an open timeout, a read timeout, and a stall watchdog (`stall_s`
    without a decoded frame although packets may still trickle in).
    """

    def __init__(
        self,
        url: str,
        *,
        realtime: bool = False,
        loop: bool = False,
        threads: int = 2,
        options: dict[str, str] | None = None,
        open_timeout: float = 10.0,
        read_timeout: float = 10.0,
        stall_s: float = 10.0,
        keyframes_only: KeyframeMode = "off",
        sample_fps: float = 5.0,
        format: str | None = None,
        max_pixels: int = 0,
        policy: SourcePolicy | None = None,
        clock: "Clock | None" = None,
    ) -> None:
        self.url = url
        self.clock = clock or Clock()
        self.anchor = 0.0  # paced files: monotonic time of stream time 0
        self.opens = 0  # times the source was opened (loops and reconnects)
        self.realtime = realtime
        self.loop = loop
        self.threads = threads
        self.options = options or {}
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self.stall_s = stall_s
        self.keyframe_mode: KeyframeMode = keyframes_only
        self.sample_fps = sample_fps
        self.format = format
        self.is_file = format is None and ("://" not in url or url.startswith("file://"))
        self.live = not self.is_file
        self.keyframes_only = keyframes_only == "on"
        self.max_pixels = max_pixels
        self.policy = policy or SourcePolicy()

    def describe(self) -> str:
        return display_source(self.url)

    def _open(self) -> av.container.InputContainer:
        if self.is_file:
            path = Path(self.url.removeprefix("file://"))
            if not path.is_file():
                raise SourceError(f"no such file: {path.name}")
            try:
                check_path(str(path), self.policy, real=True)  # after symbolic links
            except SourceRefused as exc:
                raise SourceError(f"source refused: {exc}") from None
        started = time.monotonic()
        self.opens += 1
        try:
            # The read timeout is capped by the stall watchdog: a source that sends nothing
            # at all is as stalled as one that sends undecodable bytes.
            container = av.open(self.url, format=self.format, options=self.options,
                                timeout=(self.open_timeout, self._read_timeout))
        except av.error.FFmpegError as exc:
            reason = ffmpeg_reason(exc)
            if time.monotonic() - started >= 0.9 * self.open_timeout:
                reason = f"no answer within {self.open_timeout:g}s"  # FFmpeg says "Immediate exit requested"
            raise SourceError(f"cannot open {self.describe()}: {reason}") from None
        try:
            self._check_opened(container)
        except SourceError:
            container.close()
            raise
        return container

    def _check_opened(self, container: av.container.InputContainer) -> None:
        names = set((container.format.name or "").split(","))
        if names & STILL_IMAGE_FORMATS or any(n.endswith("_pipe") for n in names):
            raise SourceError(f"{self.describe()} is a still image, not a video")
        if container.streams.video and self.max_pixels:
            cc = container.streams.video[0].codec_context
            self._check_size(cc.width or 0, cc.height or 0)

    def _check_size(self, width: int, height: int) -> None:
        # Before any frame is decoded: one huge-frame source must not take the host's memory.
        if self.max_pixels and width * height > self.max_pixels:
            raise SourceError(f"{self.describe()}: frames of {width}x{height} exceed ingest.max_source_pixels "
                              f"({self.max_pixels})")

    def probe(self) -> bool | None:
        """TCP connect to the camera's host and port: far cheaper than an RTSP session with
        probing, so a camera that is away can be checked every second without hammering it."""
        if self.is_file:
            return None
        try:
            parts = urlsplit(self.url)
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
            host = parts.hostname
        except ValueError:
            return None
        if not host or not port:
            return None
        try:
            with socket.create_connection((host, port), timeout=min(1.0, self.open_timeout)):
                return True
        except OSError:
            return False

    @property
    def _read_timeout(self) -> float:
        # Half the limit: on the first interrupt FFmpeg's RTSP demuxer hands out the packet it
        # had buffered, and only the second one fails the read.
        return min(self.read_timeout, self.stall_s) / 2

    def frames(self, stop: threading.Event) -> Iterator[Decoded]:
        # Paced files run on one clock for the whole run: frame k of any loop is released at
        # anchor + its stream time, so the time a reopen takes is caught up, never
        # accumulated (a per-loop clock lost ~80 ms a loop: 7.8 s behind after 16 minutes).
        self.anchor = self.clock.monotonic()
        self.epoch = self.clock.time() if self.is_file else None
        offset = 0.0  # stream time keeps increasing across loops of a file
        while True:
            started, started_mono = offset, self.clock.monotonic()
            last_ts, step = yield from self._one_pass(stop, offset)
            if not (self.loop and self.is_file) or stop.is_set():
                return
            # The next loop starts one frame after the last one (a loop is exactly the clip's
            # length) and never sooner than MIN_LOOP_S after this one started: a clip of one
            # frame would otherwise be reopened hundreds of times a second.
            offset = max(last_ts + step, started + MIN_LOOP_S)
            if not self.realtime:
                # Fast replays have no clock to wait for: pace the reopens themselves.
                if stop.wait(max(0.0, started_mono + MIN_REOPEN_S - self.clock.monotonic())):
                    return

    def _one_pass(self, stop: threading.Event, offset: float) -> Iterator[Decoded]:
        container = self._open()
        try:
            if not container.streams.video:
                raise SourceError(f"{self.describe()} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = self.threads
            if self.keyframes_only:
                stream.codec_context.skip_frame = "NONKEY"
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            step = 1.0 / rate
            state = _PassState(offset=offset)
            try:
                for packet in container.demux(stream):
                    if stop.is_set():
                        return state.last_ts, step
                    for frame in packet.decode():
                        if self.max_pixels and frame.width * frame.height > self.max_pixels:
                            self._check_size(frame.width, frame.height)  # undeclared, or grew mid-stream
                        ts = state.stamp(frame, rate)
                        if self.realtime and self.is_file:
                            # Pace like a camera: each frame is released at its own time.
                            delay = self.anchor + ts - self.clock.monotonic()
                            if delay > 0 and self.clock.wait(stop, delay):
                                return state.last_ts, step
                            if delay < -LATE_S:
                                # Far behind (a suspended host, a starved CPU): skip ahead, as a
                                # camera would, instead of releasing a burst of old frames.
                                state.skip(-delay)
                                ts = state.last_ts
                        key = bool(frame.key_frame)
                        self._maybe_skip_nonkey(stream, state, key)
                        yield Decoded(frame, ts, key)
                    if self.live and time.monotonic() - state.last_frame_mono > self.stall_s:
                        raise SourceError(f"stalled: no frame for {self.stall_s:g}s")
            except av.error.FFmpegError as exc:
                reason = ffmpeg_reason(exc)
                silent = time.monotonic() - state.last_frame_mono
                if self.live and silent >= 0.9 * self._read_timeout:
                    raise SourceError(f"stalled: no data for {silent:.1f}s (read timeout)") from None
                if state.n == 0:
                    if "invalid data" not in reason.lower():
                        # Bytes that only look like a raw stream (random data probes as h263 now
                        # and then) fail in the decoder with codes such as EPERM: say what it means.
                        reason = f"invalid data (the {stream.codec_context.name} decoder refused it: {reason})"
                    raise SourceError(f"cannot decode {self.describe()}: {reason}") from None
                if self.live:
                    raise SourceError(f"stream lost after {state.n} frames: {reason}") from None
                # Keep what decoded before the damage; tell the operator where it stopped.
                raise SourceError(
                    f"{self.describe()} damaged after {state.n} frames ({state.last_ts - offset:.2f}s): {reason}"
                ) from None
            if state.n == 0:
                raise SourceError(f"{self.describe()}: no decodable video frames")
            if self.is_file:
                self._check_complete(container, stream, state, offset)
            return state.last_ts, step
        finally:
            container.close()

    def _maybe_skip_nonkey(self, stream: av.video.stream.VideoStream, state: "_PassState", key: bool) -> None:
        """`auto`: once the measured keyframe rate is at or above sample_fps, decoding the
        frames between keyframes buys nothing the sampler would keep."""
        if key:
            state.keys.append(state.last_ts)
        if self.keyframe_mode != "auto" or self.keyframes_only or len(state.keys) < 3:
            return
        span = state.keys[-1] - state.keys[0]
        if span > 0 and (len(state.keys) - 1) / span >= self.sample_fps * 0.999:
            stream.codec_context.skip_frame = "NONKEY"
            self.keyframes_only = True
            log.info("%s: keyframe rate %.2f/s >= sample_fps: decoding keyframes only", self.describe(),
                     (len(state.keys) - 1) / span)

    def _check_complete(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                        state: "_PassState", offset: float) -> None:
        """A file whose frames stop well short of its declared length was cut off."""
        duration = None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        got = state.last_ts - state.offset
        if duration and got < duration - max(1.0, 0.05 * duration):
            raise SourceError(
                f"{self.describe()} truncated: decoded {state.n} frames up to {got:.2f}s of {duration:.2f}s"
            )


_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443, "rtmp": 1935, "rtmps": 443}
RESTART_S = 1.0  # a pts this far behind the last one is a clock restart, not jitter
MIN_LOOP_S = 1.0  # a looping file restarts at most once per this much stream time ...
MIN_REOPEN_S = 0.1  # ... and, in fast mode, at most once per this much wall time
LATE_S = 1.0  # a paced file this far behind its clock skips ahead instead of catching up


class Clock:
    """Time for paced files (a test fast-forwards it: waits pass at once, work takes real time)."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def wait(self, stop: threading.Event, delay: float) -> bool:
        """Sleep `delay` seconds unless stopped; True if stopped."""
        return stop.wait(delay)


class _PassState:
    """Per-open bookkeeping: stream time from the first frame, and the watchdog clock."""

    __slots__ = ("offset", "first", "last_ts", "n", "last_frame_mono", "keys")

    def __init__(self, offset: float) -> None:
        self.offset = offset
        self.first: float | None = None
        self.last_ts = offset
        self.n = 0
        self.last_frame_mono = time.monotonic()
        self.keys: list[float] = []

    def skip(self, seconds: float) -> None:
        """Move stream time on by `seconds` (a gap), from the last frame on."""
        self.offset += seconds
        self.last_ts += seconds

    def stamp(self, frame: av.VideoFrame, rate: float) -> float:
        t = frame.time
        step = 1.0 / rate
        if t is None:
            # No pts (e.g. the first RTSP frame before RTCP sync): one frame period on.
            ts = self.last_ts + step if self.n else self.offset
        else:
            if self.first is None:
                # Anchor so this frame lands right after the ones that came without pts.
                self.first = t - ((self.last_ts - self.offset + step) if self.n else 0.0)
            ts = self.offset + (t - self.first)
            if self.n and ts < self.last_ts - RESTART_S:
                # The source's clock restarted (concatenated segments, an encoder restart):
                # re-anchor so stream time carries on one frame after the last one.
                self.first = t - (self.last_ts - self.offset + step)
                ts = self.last_ts + step
        # Never go backwards (small reordering glitches are clamped).
        if self.n:
            ts = max(ts, self.last_ts)
        self.n += 1
        self.last_ts = ts
        self.last_frame_mono = time.monotonic()
        return ts
