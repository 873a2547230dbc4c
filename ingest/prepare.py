"""Turning a decoded frame into what the bus carries: a small luma plane for motion scoring
and one model-size JPEG (the size the model's processor uses: bus/frame_size.py).

The luma plane is read straight from the decoder's Y plane (no colour conversion). For planar
4:2:0 frames (nearly every camera) the shrinking happens on the Y/U/V planes: exact 2x area
steps (cheap, SIMD) down to less than twice the target, one linear step to the target, and the
JPEG is encoded from those planes as they are (a JPEG stores YCbCr 4:2:0 itself), so no colour
conversion happens at all, only a table lookup from video to full range. Other pixel formats
go through swscale, fused resize and conversion.
"""

from __future__ import annotations

import av
import cv2
import numpy as np
import simplejpeg

from bus.frame_size import model_frame_size

_PLANAR_LUMA = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}
_I420 = {"yuv420p": False, "yuvj420p": True}  # format -> full range
# Video-range levels (Y 16..235, Cb/Cr 16..240) -> the full range a JPEG (JFIF) holds.
_Y_FULL = np.clip(np.round((np.arange(256) - 16) * 255 / 219), 0, 255).astype(np.uint8)
_C_FULL = np.clip(np.round((np.arange(256) - 128) * 255 / 224 + 128), 0, 255).astype(np.uint8)


def _plane(frame: av.VideoFrame, index: int, width: int, height: int) -> np.ndarray:
    p = frame.planes[index]
    return np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:height, :width]


def _shrink(img: np.ndarray, w: int, h: int, interpolation: int) -> np.ndarray:
    """Halve by area while at least twice the target, then one step to exactly (w, h)."""
    while img.shape[1] >= 2 * w and img.shape[0] >= 2 * h and img.shape[1] >= 4 and img.shape[0] >= 4:
        img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if img.shape[1] != w or img.shape[0] != h:
        img = cv2.resize(img, (w, h), interpolation=interpolation)
    return img


def luma_thumbnail(frame: av.VideoFrame, width: int) -> np.ndarray:
    w = min(width, frame.width)
    h = max(2, round(frame.height * w / frame.width))
    if frame.format.name in _PLANAR_LUMA:
        y = _plane(frame, 0, frame.width, frame.height)
        if (w, h) == (frame.width, frame.height):
            return np.ascontiguousarray(y)
        return _shrink(y, w, h, cv2.INTER_AREA)
    return frame.reformat(width=w, height=h, format="gray").to_ndarray()


def model_bgr(frame: av.VideoFrame, bound: int) -> np.ndarray:
    """The frame at model size (bus.frame_size: the model processor's own size, never enlarged) as BGR."""
    w, h = model_frame_size(frame.width, frame.height, bound)
    fmt = frame.format.name
    if fmt in _I420 and frame.width % 2 == 0 and frame.height % 2 == 0:
        y = _shrink(_plane(frame, 0, frame.width, frame.height), w, h, cv2.INTER_LINEAR)
        u = _shrink(_plane(frame, 1, frame.width // 2, frame.height // 2), w // 2, h // 2, cv2.INTER_LINEAR)
        v = _shrink(_plane(frame, 2, frame.width // 2, frame.height // 2), w // 2, h // 2, cv2.INTER_LINEAR)
        if _I420[fmt]:
            # Full-range (JPEG) levels -> the video range OpenCV's conversion expects.
            y = cv2.convertScaleAbs(y, alpha=219 / 255, beta=16)
            u = cv2.convertScaleAbs(u, alpha=224 / 255, beta=128 - 128 * 224 / 255)
            v = cv2.convertScaleAbs(v, alpha=224 / 255, beta=128 - 128 * 224 / 255)
        i420 = np.concatenate((y.reshape(-1), u.reshape(-1), v.reshape(-1))).reshape(h * 3 // 2, w)
        return cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)
    return frame.reformat(width=w, height=h, format="bgr24", interpolation="AREA").to_ndarray()


def model_jpeg(frame: av.VideoFrame, bound: int, quality: int) -> tuple[bytes, int, int]:
    return _jpeg(model_bgr(frame, bound), quality)


def _jpeg(bgr: np.ndarray, quality: int) -> tuple[bytes, int, int]:
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encode failed")
    return buf.tobytes(), bgr.shape[1], bgr.shape[0]


def _jpeg_i420(y: np.ndarray, u: np.ndarray, v: np.ndarray, full_range: bool, quality: int) -> bytes:
    """A JPEG straight from 4:2:0 planes (libjpeg-turbo), without any colour conversion."""
    if full_range:
        y, u, v = (np.ascontiguousarray(p) for p in (y, u, v))
    else:
        y, u, v = cv2.LUT(y, _Y_FULL), cv2.LUT(u, _C_FULL), cv2.LUT(v, _C_FULL)
    return simplejpeg.encode_jpeg_yuv_planes(y, u, v, quality=quality)


def prepare(frame: av.VideoFrame, luma_width: int, bound: int, quality: int) -> tuple[np.ndarray, bytes, int, int]:
    """Both products of a sampled frame; for 4:2:0 frames the first area halvings of the Y
    plane are shared between the luma thumbnail and the model image."""
    fmt = frame.format.name
    if fmt in _I420 and frame.width % 2 == 0 and frame.height % 2 == 0:
        w, h = model_frame_size(frame.width, frame.height, bound)
        lw = min(luma_width, frame.width)
        lh = max(2, round(frame.height * lw / frame.width))
        y = _plane(frame, 0, frame.width, frame.height)
        big_w, big_h = max(w, lw), max(h, lh)
        while y.shape[1] >= 2 * big_w and y.shape[0] >= 2 * big_h and y.shape[1] >= 4 and y.shape[0] >= 4:
            y = cv2.resize(y, (y.shape[1] // 2, y.shape[0] // 2), interpolation=cv2.INTER_AREA)
        luma = np.ascontiguousarray(y) if y.shape[:2] == (lh, lw) else _shrink(y, lw, lh, cv2.INTER_AREA)
        ym = _shrink(y, w, h, cv2.INTER_LINEAR)
        u = _shrink(_plane(frame, 1, frame.width // 2, frame.height // 2), w // 2, h // 2, cv2.INTER_LINEAR)
        v = _shrink(_plane(frame, 2, frame.width // 2, frame.height // 2), w // 2, h // 2, cv2.INTER_LINEAR)
        return luma, _jpeg_i420(ym, u, v, _I420[fmt], quality), w, h
    jpeg, w, h = model_jpeg(frame, bound, quality)
    return luma_thumbnail(frame, luma_width), jpeg, w, h
