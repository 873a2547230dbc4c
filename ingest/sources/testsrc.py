"""A synthetic camera: a moving block over a gradient with a clock, for demos and load tests."""

from __future__ import annotations

import threading
import time
from typing import Iterator

import av
import cv2
import numpy as np

from ingest.sources.base import Decoded, Source


class TestPatternSource(Source):
    __test__ = False  # not a pytest class

    def __init__(self, width: int = 640, height: int = 360, fps: float = 10.0, duration: float | None = None,
                 realtime: bool = True) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.duration = duration
        self.realtime = realtime
        self.live = realtime

    def describe(self) -> str:
        return f"testsrc {self.width}x{self.height}@{self.fps:g}"

    def frames(self, stop: threading.Event) -> Iterator[Decoded]:
        base = np.tile(np.linspace(40, 200, self.width, dtype=np.uint8), (self.height, 1))
        base = cv2.merge([base, np.flipud(base), np.full_like(base, 90)])
        t0 = time.monotonic()
        k = 0
        while not stop.is_set():
            ts = k / self.fps
            if self.duration is not None and ts >= self.duration:
                return
            if self.realtime:
                delay = ts - (time.monotonic() - t0)
                if delay > 0 and stop.wait(delay):
                    return
            img = base.copy()
            # The block moves for 4 s out of every 10: activity with idle stretches between.
            phase = ts % 10.0
            if phase < 4.0:
                x = int((phase / 4.0) * (self.width - 80))
                cv2.rectangle(img, (x, self.height // 3), (x + 80, self.height // 3 + 120), (20, 20, 230), -1)
            cv2.putText(img, f"{ts:8.1f}s", (10, self.height - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
            frame = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
            yield Decoded(frame, ts, k % int(max(self.fps, 1)) == 0)
            k += 1
