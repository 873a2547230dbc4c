"""Packets for analyzer tests, built from real footage the way the scheduler builds them."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from bus.frame_size import model_frame_size
from bus.messages import MotionSummary, Packet, PacketFrame
from scheduler.temporal import temporal_ids


def read_frames(path: Path, indices: list[int]) -> list[np.ndarray]:
    """BGR frames at the given frame indices (decoded in order)."""
    cap = cv2.VideoCapture(str(path))
    want = set(indices)
    out: dict[int, np.ndarray] = {}
    i = 0
    while len(out) < len(want):
        ok, frame = cap.read()
        if not ok:
            break
        if i in want:
            out[i] = frame
        i += 1
    cap.release()
    return [out[i] for i in indices if i in out]


def at_model_size(bgr: np.ndarray) -> np.ndarray:
    """The frame at the packet contract's size (bus/frame_size.py), as ingest sends it."""
    h, w = bgr.shape[:2]
    size = model_frame_size(w, h)
    return cv2.resize(bgr, size, interpolation=cv2.INTER_AREA) if size != (w, h) else bgr


def jpeg(bgr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


def make_packet(frames: list[np.ndarray], *, camera: str = "cam1", pid: str | None = None, ts: list[float] | None = None,
                wall: float | None = None, area: float = 0.05, packing: int | None = None) -> Packet:
    frames = [at_model_size(f) for f in frames]
    h, w = frames[0].shape[:2]
    ts = ts if ts is not None else [i * 0.4 for i in range(len(frames))]
    wall0 = (wall if wall is not None else time.time()) - (ts[-1] - ts[0])
    ids = temporal_ids(ts, packing=packing or len(frames))
    flat = [i for g in ids for i in g]
    return Packet(
        id=pid or f"{camera}-{int(wall0 * 1000)}-0", camera=camera, reason="motion", width=w, height=h,
        frames=[PacketFrame(seq=i, ts=t, wall=wall0 + (t - ts[0]), temporal_id=flat[i], motion=area, jpeg=jpeg(f))
                for i, (f, t) in enumerate(zip(frames, ts, strict=True))],
        temporal_ids=ids, motion=MotionSummary(area=area), created=time.time())


def synthetic(n: int = 6, w: int = 448, h: int = 252, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.full((h, w, 3), 90, np.uint8) + rng.integers(0, 8, (h, w, 3), dtype=np.uint8) for _ in range(n)]
