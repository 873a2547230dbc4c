"""Motion on a low-resolution luma plane (Frigate's class of detector, written for Vigil).

Per frame: shrink the luma plane, blur it, match the background's contrast to the frame
(gain and offset from the quartiles of both, so auto-exposure and dimming lights cancel
out), difference, threshold, drop masked areas, dilate, and keep contour boxes above a
minimum area. A change over most of the picture that contrast matching cannot explain (lights
switched, IR mode) recalibrates the background instead of reporting motion -- except in
sports mode, where large motion is the signal and is reported as such.

The background learns per pixel at three rates, which is what keeps "ghosts" away:
quiet pixels follow the scene quickly (`learn_s`); pixels inside a moving blob barely learn
(`learn_motion_s`), so a passing object never smears into the background and leaves no
trail behind it; and blob pixels that have not changed for `still_s` (a stopped object,
or the hole an object left) are absorbed quickly, so they stop counting as motion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from scheduler.settings import MotionSettings, Polygon
from scheduler.state import Array, DetectorState

THUMB = (32, 18)  # signature size for near-duplicate tests between keyframes
_KERNEL = np.ones((3, 3), np.uint8)


@dataclass(slots=True)
class MotionResult:
    area: float  # fraction of the image inside kept moving blobs
    boxes: list[list[float]] = field(default_factory=list)  # [x, y, w, h], 0..1
    zones: list[str] = field(default_factory=list)  # named zones the moving blobs touch
    recalibrated: bool = False  # a global change (lights, exposure, IR) reset the background
    global_motion: bool = False  # sports mode: a change over most of the image, reported as motion
    thumb: np.ndarray | None = None  # small blurred luma signature (near-duplicate tests)


def thumb_change(a: np.ndarray | None, b: np.ndarray | None, level: float = 12.0) -> float:
    """Share of signature pixels that differ by more than `level`, after matching b's
    brightness and contrast to a's (a lighting change alone is not a new view)."""
    if a is None or b is None or a.shape != b.shape:
        return 1.0
    a25, a50, a75 = _percentiles(a)
    b25, b50, b75 = _percentiles(b)
    gain = (a75 - a25) / (b75 - b25) if a75 - a25 >= 4.0 and b75 - b25 >= 4.0 else 1.0
    d = a - (b * min(max(gain, 0.5), 2.0) + (a50 - gain * b50))
    return float(np.count_nonzero(np.abs(d) > level)) / d.size


_Q = np.array([0.25, 0.5, 0.75])


def _percentiles(a: np.ndarray) -> tuple[float, float, float]:
    """np.percentile(a, (25, 50, 75)) (linear interpolation) for a small signature, without
    np.percentile's generic machinery (several times the cost of the sort itself)."""
    s = np.sort(a, axis=None)
    pos = _Q * (s.size - 1)
    lo = pos.astype(np.intp)
    hi = np.minimum(lo + 1, s.size - 1)
    frac = pos - lo
    v = s[lo] + (s[hi].astype(np.float64) - s[lo]) * frac
    return float(v[0]), float(v[1]), float(v[2])


def _quartiles(sample: np.ndarray) -> tuple[float, float, float]:
    """25th, 50th, 75th percentiles to one luma level, from a histogram (np.percentile's sort
    costs several times the rest of the detector)."""
    hist = np.bincount(sample.astype(np.uint8).ravel(), minlength=256)
    cdf = np.cumsum(hist)
    q = np.searchsorted(cdf, cdf[-1] * np.array([0.25, 0.5, 0.75]))
    return float(q[0]), float(q[1]), float(q[2])


def _raster(polygons: list[Polygon], shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    out = np.zeros((h, w), np.uint8)
    pts = [np.round(np.asarray(p, np.float64) * (w - 1, h - 1)).astype(np.int32) for p in polygons]
    if pts:
        cv2.fillPoly(out, pts, 1)
    return out


class MotionDetector:
    def __init__(self, settings: MotionSettings, *, sports: bool = False) -> None:
        self.s = settings
        self.sports = sports
        self.background: np.ndarray | None = None
        self._prev: np.ndarray | None = None
        self._still: np.ndarray | None = None  # per pixel: seconds without frame-to-frame change
        self._last_ts: float | None = None
        self._calibrate_until = -math.inf
        self._shape: tuple[int, int] | None = None
        self._keep: np.ndarray | None = None  # 1 where motion counts (not masked)
        self._zones: dict[str, np.ndarray] = {}
        self._n = 0
        self._bq: tuple[float, float, float] | None = None  # background quartiles

    def reset(self) -> None:
        self.background = None

    def set_areas(self, mask: list[Polygon], zones: dict[str, Polygon]) -> None:
        """New masks and zones (drawn in the dashboard) without losing the learnt background."""
        self.s = self.s.model_copy(update={"mask": mask, "zones": zones})
        if self._shape is not None:
            self._keep = (1 - _raster(mask, self._shape)).astype(np.uint8) if mask else None
            self._zones = {name: _raster([poly], self._shape) for name, poly in zones.items()}

    # -- per frame -------------------------------------------------------------------
    def score(self, luma: np.ndarray, ts: float | None = None) -> MotionResult:
        """Score one luma plane (uint8, any size). `ts`: capture time in seconds; without it
        frames are taken to be 0.2 s apart (5 fps)."""
        if luma.ndim != 2 or luma.dtype != np.uint8 or min(luma.shape) < 2:
            raise ValueError(f"luma must be a 2-D uint8 plane, got {luma.dtype} {luma.shape}")
        if ts is None:
            ts = self._n * 0.2
        self._n += 1
        cur = self._prepare(luma)
        thumb = cv2.resize(cur, THUMB, interpolation=cv2.INTER_AREA)
        if self.background is None or self.background.shape != cur.shape:
            self._start(cur, ts)
            return MotionResult(0.0, thumb=thumb)
        dt = min(max(ts - (self._last_ts if self._last_ts is not None else ts), 0.0), 5.0) or 0.2
        self._last_ts = ts

        ref, step = self._matched_background(cur)
        diff = cv2.absdiff(cur, ref)
        _, mask = cv2.threshold(diff, self.s.threshold, 1, cv2.THRESH_BINARY)
        mask = mask.astype(np.uint8)
        if self._keep is not None:
            mask &= self._keep
        changed = cv2.countNonZero(mask) / mask.size

        if changed >= self.s.global_change or (step and not self.sports):
            self.background, self._prev = cur.copy(), cur
            self._still = np.zeros(cur.shape, np.float32)
            if self.sports:
                return MotionResult(min(changed, 1.0), [[0.0, 0.0, 1.0, 1.0]], self._touched(mask), global_motion=True,
                                    thumb=thumb)
            # Lights, exposure or IR changed the whole picture (or its brightness jumped, which
            # contrast matching only approximates where highlights clip): a new background.
            self._calibrate_until = ts + self.s.calibration_s
            return MotionResult(0.0, recalibrated=True, thumb=thumb)

        if self.s.dilate:
            mask = cv2.dilate(mask, _KERNEL, iterations=self.s.dilate)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        h, w = mask.shape
        min_px = self.s.min_box_area * h * w
        kept = [c for c in contours if cv2.contourArea(c) >= min_px]
        blobs = np.zeros_like(mask)
        boxes: list[list[float]] = []
        if kept:
            cv2.drawContours(blobs, kept, -1, 1, thickness=cv2.FILLED)
            for c in kept:
                x, y, bw, bh = cv2.boundingRect(c)
                boxes.append([round(x / w, 4), round(y / h, 4), round(bw / w, 4), round(bh / h, 4)])
        area = cv2.countNonZero(blobs) / blobs.size if kept else 0.0
        zones = self._touched(blobs) if kept else []
        self._learn(cur, ref, mask, ts, dt)
        return MotionResult(area, boxes, zones, thumb=thumb)

    # -- internals -------------------------------------------------------------------
    def _prepare(self, luma: np.ndarray) -> np.ndarray:
        h, w = luma.shape
        if w > self.s.width:
            nh = max(2, round(h * self.s.width / w))
            if w >= 4 * self.s.width:
                # Full-resolution planes: take every k-th pixel, then area-resize the rest of
                # the way. The blur below removes the aliasing, and an area resize of a whole
                # 1080p plane would cost several times the rest of the detector.
                k = w // self.s.width
                luma = np.ascontiguousarray(luma[::k, ::k])
            luma = cv2.resize(luma, (self.s.width, nh), interpolation=cv2.INTER_AREA)
        k = self.s.blur | 1
        if k > 1:
            luma = cv2.GaussianBlur(luma, (k, k), 0)
        return luma.astype(np.float32)

    def _start(self, cur: np.ndarray, ts: float) -> None:
        self.background, self._prev = cur.copy(), cur
        self._still = np.zeros(cur.shape, np.float32)
        self._bq = None
        self._last_ts = ts
        self._calibrate_until = ts + self.s.calibration_s
        self._set_shape(cur.shape)

    def _set_shape(self, shape: tuple[int, int]) -> None:
        if self._shape != shape:
            self._shape = shape
            self._keep = (1 - _raster(self.s.mask, shape)).astype(np.uint8) if self.s.mask else None
            self._zones = {name: _raster([poly], shape) for name, poly in self.s.zones.items()}

    def _matched_background(self, cur: np.ndarray) -> tuple[np.ndarray, bool]:
        """The background with the frame's exposure: gain and offset from both quartile sets.

        Quartiles ignore whatever covers less than a quarter of the picture, so a bright car
        does not read as an exposure change, while a darkening camera does. The flag says the
        brightness jumped by more than `step_change` since the background was last matched."""
        bg = self.background
        assert bg is not None
        c25, c50, c75 = _quartiles(cur[::3, ::3])
        # The background was matched to the previous frame and learned toward it, so its
        # quartiles are that frame's (to a fraction of a level): no second histogram needed.
        b25, b50, b75 = self._bq if self._bq is not None else _quartiles(bg[::3, ::3])
        self._bq = (c25, c50, c75)
        spread_b, spread_c = b75 - b25, c75 - c25
        gain = spread_c / spread_b if spread_b >= 4.0 and spread_c >= 4.0 else 1.0
        step = abs(c50 - b50) >= self.s.step_change or not 0.75 <= gain <= 1.33
        gain = min(max(gain, 0.5), 2.0)
        offset = c50 - gain * b50
        if abs(gain - 1.0) < 0.01 and abs(offset) < 0.5:
            return bg, step
        # A brighter exposure clips highlights: the expected frame clips too.
        ref = bg * np.float32(gain)
        ref += np.float32(offset)
        return np.clip(ref, 0.0, 255.0, out=ref), step

    def _learn(self, cur: np.ndarray, ref: np.ndarray, mask: np.ndarray, ts: float, dt: float) -> None:
        assert self._prev is not None and self._still is not None
        # How long each pixel has gone without changing between frames (beyond noise).
        _, calm = cv2.threshold(cv2.absdiff(cur, self._prev), self.s.threshold * 0.5, 1.0, cv2.THRESH_BINARY_INV)
        self._still = cv2.multiply(self._still + np.float32(dt), calm)
        self._prev = cur
        fast = ts < self._calibrate_until
        a_quiet = 1.0 - math.exp(-dt / (0.3 if fast else self.s.learn_s))
        # While calibrating, blobs learn fast too: what differs from a just-reset background
        # is as likely the new lighting settling as an object.
        a_blob = a_quiet if fast else 1.0 - math.exp(-dt / self.s.learn_motion_s)
        a_still = 1.0 - math.exp(-dt / min(self.s.learn_s, 0.3))
        still = (self._still >= self.s.still_s).view(np.uint8)
        blob_still = mask & still
        # The matched background carries the exposure forward, then moves toward the frame
        # at the rate each pixel's state asks for (accumulateWeighted works in place).
        bg = ref
        cv2.accumulateWeighted(cur, bg, a_quiet, mask=1 - mask)
        cv2.accumulateWeighted(cur, bg, a_blob, mask=mask - blob_still)
        cv2.accumulateWeighted(cur, bg, a_still, mask=blob_still)
        self.background = bg

    def _touched(self, blobs: np.ndarray) -> list[str]:
        return [name for name, z in self._zones.items() if cv2.countNonZero(blobs & z)]

    # -- state, for a failover or restart (scheduler/state.py) ---------------------------------
    def state(self) -> DetectorState:
        def arr(a: np.ndarray | None) -> Array | None:
            return Array.of(a) if a is not None else None

        return DetectorState(shape=self._shape, background=arr(self.background), prev=arr(self._prev),
                             still=arr(self._still), last_ts=self._last_ts, calibrate_until=self._calibrate_until,
                             n=self._n, bq=self._bq)

    def load(self, st: DetectorState) -> None:
        self.background = st.background.array() if st.background is not None else None
        self._prev = st.prev.array() if st.prev is not None else None
        self._still = st.still.array() if st.still is not None else None
        self._last_ts, self._calibrate_until, self._n, self._bq = st.last_ts, st.calibrate_until, st.n, st.bq
        self._shape = None
        if st.shape:
            self._set_shape(tuple(st.shape))  # type: ignore[arg-type]
