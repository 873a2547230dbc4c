"""The embedded default: motion statistics plus detectors whose weights ship inside OpenCV.

Real analysis with no downloads: OpenCV's HOG people detector (its SVM ships in the
library) and, optionally, a Haar frontal-face cascade (in cv2.data). It fills the same
event fields as a model; it cannot answer natural-language rules and says so.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from analyzer.backends.base import Analysis, Backend
from analyzer.settings import CpuBackendSettings
from bus.messages import Packet

_local = threading.local()


def _hog() -> cv2.HOGDescriptor:
    # HOGDescriptor is not safe to share across threads: one per worker thread.
    hog = getattr(_local, "hog", None)
    if hog is None:
        hog = cv2.HOGDescriptor()
        hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        _local.hog = hog
    return hog


def _faces() -> cv2.CascadeClassifier:
    cc = getattr(_local, "faces", None)
    if cc is None:
        cc = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        _local.faces = cc
    return cc


def _nms(boxes: list[tuple[int, int, int, int]], scores: list[float], iou: float = 0.4) -> list[int]:
    if not boxes:
        return []
    keep = cv2.dnn.NMSBoxes([list(map(int, b)) for b in boxes], [float(s) for s in scores], 0.0, iou)
    return [int(i) for i in np.asarray(keep).reshape(-1)]


def detect_people(bgr: np.ndarray, upscale_to: int, hit_threshold: float) -> list[tuple[list[int], float]]:
    """People boxes in `bgr` coordinates with their SVM margins."""
    h, w = bgr.shape[:2]
    scale = max(1.0, upscale_to / w)
    img = cv2.resize(bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LINEAR) if scale > 1 else bgr
    rects, weights = _hog().detectMultiScale(img, hitThreshold=hit_threshold, winStride=(8, 8), padding=(8, 8), scale=1.05)
    boxes = [tuple(int(v / scale) for v in r) for r in rects]
    scores = [float(x) for x in np.asarray(weights).reshape(-1)]
    return [(list(boxes[i]), scores[i]) for i in _nms(boxes, scores)]


def detect_faces(bgr: np.ndarray) -> int:
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    return len(_faces().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(20, 20)))


def _pick(n: int, k: int) -> list[int]:
    """k indices spread over n frames, always including the last."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)}) if k > 1 else [n - 1]


class CpuBackend(Backend):
    name = "cpu"

    def __init__(self, settings: CpuBackendSettings, concurrency: int = 2) -> None:
        self.s = settings
        self.model = "opencv-hog" + ("+haar-face" if settings.faces else "")
        self.concurrency = concurrency
        # Detectors are CPU-bound and release the GIL: a small pool keeps the loop free.
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="cpu-backend")

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def analyze(self, packets: list[Packet], question_context: dict[str, str] | None = None) -> list[Analysis]:
        loop = asyncio.get_running_loop()
        return list(await asyncio.gather(*(loop.run_in_executor(self._pool, self._one, p) for p in packets)))

    def _one(self, packet: Packet) -> Analysis:
        people_per_frame: list[int] = []
        faces = 0
        for i in _pick(len(packet.frames), self.s.frames):
            bgr = cv2.imdecode(np.frombuffer(packet.frames[i].jpeg, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                continue
            if self.s.people:
                people_per_frame.append(len(detect_people(bgr, self.s.upscale_to, self.s.hit_threshold)))
            if self.s.faces:
                faces = max(faces, detect_faces(bgr))
        people = max(people_per_frame, default=0)
        counts: dict[str, int] = {}
        labels: list[str] = []
        if people:
            counts["person"] = people
            labels.append("person")
        if faces:
            counts["face"] = faces
            labels.append("face")
        if packet.motion.area > 0:
            labels.append("motion")
        return Analysis(summary=_summary(packet, people, faces), labels=labels, counts=counts)


def _summary(packet: Packet, people: int, faces: int) -> str:
    span = packet.frames[-1].ts - packet.frames[0].ts
    moving = f"motion over {packet.motion.area * 100:.1f}% of the view" if packet.motion.area else "no motion"
    who = {0: "No people detected", 1: "1 person detected"}.get(people, f"{people} people detected")
    face = f", {faces} face{'s' if faces > 1 else ''}" if faces else ""
    return f"{who}{face}; {moving} in {len(packet.frames)} frames over {span:.1f}s ({packet.reason})."
