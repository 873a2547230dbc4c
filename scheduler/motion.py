"""Motion on a low-resolution luma plane: running-average background, difference, blobs."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from scheduler.settings import MotionSettings


@dataclass(slots=True)
class MotionResult:
    area: float  # fraction of the image inside moving blobs
    boxes: list[list[float]] = field(default_factory=list)  # [x, y, w, h], 0..1
    recalibrated: bool = False  # a global change (lights, exposure) reset the background


class MotionDetector:
    def __init__(self, settings: MotionSettings) -> None:
        self.s = settings
        self.background: np.ndarray | None = None
        self._kernel = np.ones((3, 3), np.uint8)

    def _prepare(self, luma: np.ndarray) -> np.ndarray:
        h, w = luma.shape
        if w > self.s.width:
            luma = cv2.resize(luma, (self.s.width, max(2, round(h * self.s.width / w))), interpolation=cv2.INTER_AREA)
        k = self.s.blur | 1
        return cv2.GaussianBlur(luma, (k, k), 0).astype(np.float32)

    def score(self, luma: np.ndarray) -> MotionResult:
        cur = self._prepare(luma)
        if self.background is None or self.background.shape != cur.shape:
            self.background = cur
            return MotionResult(0.0)
        diff = cv2.absdiff(cur, self.background)
        mask = (diff > self.s.threshold).astype(np.uint8)
        changed = float(mask.mean())
        if changed >= self.s.global_change:
            # Lights or exposure changed the whole picture: start a new background.
            self.background = cur
            return MotionResult(0.0, recalibrated=True)
        mask = cv2.dilate(mask, self._kernel, iterations=2)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        h, w = mask.shape
        total = float(h * w)
        boxes: list[list[float]] = []
        area = 0.0
        for c in contours:
            a = cv2.contourArea(c) / total
            if a >= self.s.min_box_area:
                x, y, bw, bh = cv2.boundingRect(c)
                boxes.append([round(x / w, 4), round(y / h, 4), round(bw / w, 4), round(bh / h, 4)])
                area += a
        cv2.accumulateWeighted(cur, self.background, self.s.alpha)
        return MotionResult(min(area, 1.0), boxes)
