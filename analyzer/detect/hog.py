"""OpenCV's HOG people detector: the fallback when the object model is not installed.

Its SVM ships inside OpenCV (no download), but on real CCTV it misses many people, merges
groups into loose boxes and sees nothing but people.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

_local = threading.local()


def _hog() -> cv2.HOGDescriptor:
    # HOGDescriptor is not safe to share across threads: one per worker thread.
    hog = getattr(_local, "hog", None)
    if hog is None:
        hog = cv2.HOGDescriptor()
        hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        _local.hog = hog
    return hog


def nms(boxes: list[tuple[int, int, int, int]], scores: list[float], iou: float = 0.4) -> list[int]:
    if not boxes:
        return []
    keep = cv2.dnn.NMSBoxes([list(map(int, b)) for b in boxes], [float(s) for s in scores], 0.0, iou)
    return [int(i) for i in np.asarray(keep).reshape(-1)]


def detect_people(bgr: np.ndarray, upscale_to: int, hit_threshold: float) -> list[tuple[list[int], float]]:
    """People boxes in `bgr` pixel coordinates with their SVM margins."""
    h, w = bgr.shape[:2]
    scale = max(1.0, upscale_to / w)
    img = cv2.resize(bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LINEAR) if scale > 1 else bgr
    rects, weights = _hog().detectMultiScale(img, hitThreshold=hit_threshold, winStride=(8, 8), padding=(8, 8), scale=1.05)
    boxes = [tuple(int(v / scale) for v in r) for r in rects]
    scores = [float(x) for x in np.asarray(weights).reshape(-1)]
    return [(list(boxes[i]), scores[i]) for i in nms(boxes, scores)]
