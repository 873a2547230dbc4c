"""Turning a decoded frame into what the bus carries.

The luma plane is read straight from the decoder's Y plane (no colour conversion) and shrunk
for motion scoring. Colour conversion, the expensive step, happens once per sampled frame,
fused with the resize to model size inside swscale, then one JPEG encode.
"""

from __future__ import annotations

import av
import cv2
import numpy as np

_PLANAR_LUMA = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}


def fit_within(width: int, height: int, bound: int) -> tuple[int, int]:
    """Largest even size <= bound x bound with the aspect ratio kept (never upscales)."""
    scale = min(bound / width, bound / height, 1.0)
    w = max(2, int(width * scale) // 2 * 2)
    h = max(2, int(height * scale) // 2 * 2)
    return w, h


def luma_thumbnail(frame: av.VideoFrame, width: int) -> np.ndarray:
    w = min(width, frame.width)
    h = max(2, round(frame.height * w / frame.width))
    if frame.format.name in _PLANAR_LUMA:
        plane = frame.planes[0]
        y = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[:, : frame.width]
        if (w, h) == (frame.width, frame.height):
            return np.ascontiguousarray(y)
        return cv2.resize(y, (w, h), interpolation=cv2.INTER_AREA)
    return frame.reformat(width=w, height=h, format="gray").to_ndarray()


def model_jpeg(frame: av.VideoFrame, bound: int, quality: int) -> tuple[bytes, int, int]:
    w, h = fit_within(frame.width, frame.height, bound)
    bgr = frame.reformat(width=w, height=h, format="bgr24", interpolation="AREA").to_ndarray()
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encode failed")
    return buf.tobytes(), w, h
