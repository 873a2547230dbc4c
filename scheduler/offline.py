"""Run the scheduler's pure logic over a video file without Redis (tests, benchmarks).

Frames are decoded and sampled the way a camera is (`sample_fps` on the stream clock), the
luma plane shrunk to the width ingest sends, and no JPEG is made (packets carry empty
images); everything else is the code the service runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from bus.frame_size import model_frame_size
from bus.messages import Packet
from scheduler.motion import MotionDetector
from scheduler.packer import Candidate, Packer
from scheduler.settings import SchedulerSettings

_PLANAR = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}
LumaTransform = Callable[[float, np.ndarray], np.ndarray]


@dataclass(slots=True)
class LumaFrame:
    ts: float
    luma: np.ndarray
    width: int  # of the model-size image the frame would become
    height: int


def _luma(frame: av.VideoFrame) -> np.ndarray:
    """The decoder's Y plane as is (what ingest sends), or a grey conversion for RGB codecs."""
    if frame.format.name in _PLANAR:
        plane = frame.planes[0]
        return np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[:, : frame.width]
    return frame.reformat(format="gray").to_ndarray()


def decode_luma(path: str | Path, sample_fps: float = 5.0, luma_width: int = 320,
                duration: float | None = None) -> Iterator[LumaFrame]:
    """Sampled luma planes of a file, `luma_width` wide, with pts seconds from its start."""
    period = 1.0 / sample_fps
    nxt: float | None = None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        t0: float | None = None
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            t = float(frame.pts * stream.time_base)
            t0 = t if t0 is None else t0
            ts = t - t0
            if duration is not None and ts > duration:
                break
            if nxt is not None and ts + 1e-6 < nxt:
                continue
            nxt = (nxt if nxt is not None else ts) + period
            nxt = nxt if nxt > ts else ts + period
            y = _luma(frame)
            h = max(2, round(frame.height * luma_width / frame.width))
            y = cv2.resize(y, (luma_width, h), interpolation=cv2.INTER_AREA)
            w, hh = model_frame_size(frame.width, frame.height)
            yield LumaFrame(round(ts, 6), y, w, hh)


def run_offline(frames: Iterator[LumaFrame] | list[LumaFrame], settings: SchedulerSettings,
                camera: str = "cam", transform: LumaTransform | None = None,
                emitted_at: list[float] | None = None) -> list[Packet]:
    """Motion + packer over decoded frames, as the service runs them for one camera.

    `emitted_at`, if given, receives for each packet the stream time of the frame whose
    arrival released it (when a live scheduler would have sent it)."""
    s = settings.for_camera(camera)
    detector = MotionDetector(s.motion, sports=s.sports)
    packer = Packer(camera, s)
    out: list[Packet] = []
    for seq, f in enumerate(frames):
        luma = transform(f.ts, f.luma) if transform else f.luma
        result = detector.score(luma, f.ts)
        new = packer.push(Candidate(entry_id=f"{seq + 1}-0", seq=seq, ts=f.ts, wall=f.ts, width=f.width,
                                    height=f.height, jpeg=b"", motion=result))
        out += new
        if emitted_at is not None:
            emitted_at += [f.ts] * len(new)
    new = packer.flush()
    out += new
    if emitted_at is not None:
        emitted_at += [out[-1].frames[-1].ts if out else 0.0] * len(new)
    return out
