"""Files and network URLs decoded with PyAV (FFmpeg)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Iterator

import av

from bus.connection import redact_url
from ingest.sources.base import Decoded, Source, SourceError

log = logging.getLogger("vigil.ingest")


class PyAVSource(Source):
    """Decodes every frame of the first video stream.

    For a file, `realtime=True` paces frames by their timestamps so the file behaves like a
    camera; `realtime=False` decodes as fast as the CPU allows (replays, `vigil packets`).
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
    ) -> None:
        self.url = url
        self.realtime = realtime
        self.loop = loop
        self.threads = threads
        self.options = options or {}
        self.open_timeout = open_timeout
        self.is_file = "://" not in url or url.startswith("file://")
        self.live = not self.is_file

    def describe(self) -> str:
        return redact_url(self.url) if not self.is_file else Path(self.url).name

    def _open(self) -> av.container.InputContainer:
        if self.is_file:
            path = self.url.removeprefix("file://")
            if not Path(path).is_file():
                raise SourceError(f"no such file: {Path(path).name}")
        try:
            return av.open(self.url, options=self.options, timeout=(self.open_timeout, self.open_timeout))
        except av.error.FFmpegError as exc:
            raise SourceError(f"cannot open {self.describe()}: {exc.strerror or exc}") from None

    def frames(self, stop: threading.Event) -> Iterator[Decoded]:
        offset = 0.0  # stream time keeps increasing across loops of a file
        while True:
            last_ts = yield from self._one_pass(stop, offset)
            if not (self.loop and self.is_file) or stop.is_set():
                return
            offset = last_ts + 1e-3

    def _one_pass(self, stop: threading.Event, offset: float) -> Iterator[Decoded]:
        container = self._open()
        try:
            if not container.streams.video:
                raise SourceError(f"{self.describe()} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = self.threads
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            first: float | None = None
            last_ts = offset
            t0_wall = time.monotonic()
            n = 0
            try:
                for frame in container.decode(stream):
                    if stop.is_set():
                        return last_ts
                    t = frame.time
                    if t is None:
                        t = n / rate
                    if first is None:
                        first = t
                    ts = offset + (t - first)
                    n += 1
                    if self.realtime and self.is_file:
                        # Pace like a camera: frame k is released at its own timestamp.
                        delay = (ts - offset) - (time.monotonic() - t0_wall)
                        if delay > 0 and stop.wait(delay):
                            return last_ts
                    last_ts = ts
                    yield Decoded(frame, ts, bool(frame.key_frame))
            except av.error.FFmpegError as exc:
                if n == 0:
                    raise SourceError(f"cannot decode {self.describe()}: {exc.strerror or exc}") from None
                # Keep what decoded before the damage; tell the operator where it stopped.
                raise SourceError(
                    f"{self.describe()} damaged after {n} frames ({last_ts:.2f}s): {exc.strerror or exc}"
                ) from None
            if n == 0:
                raise SourceError(f"{self.describe()}: no decodable video frames")
            return last_ts
        finally:
            container.close()
