"""The one entry point for "what is in these frames": `await detector.detect(frames)`.

`open_detector()` gives the COCO object model when it is installed and verified, otherwise
OpenCV's HOG people detector with the reason in `fallback`. Both answer the same way: per
frame, a list of `Detection` (label, score, normalised box, frame index). The cpu backend
calls it for every packet; an onset path can call it on the first frames of an activity.

Detection is CPU-bound and runs on a pool of `threads` worker threads (default: every core
this process may use): OpenCV releases the GIL while it decodes JPEGs and runs the network,
so threads spread over the cores without the copying a process pool would need, and the
event loop never waits on them. Frames go one per call: NanoDet's converted graph has batch
size 1 baked into its reshapes, and stacking frames gained nothing on OpenCV's CPU backend
(57 ms per frame either way, measured here).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from analyzer.detect import store
from analyzer.detect.coco import COCO_LABELS
from analyzer.detect.hog import detect_people
from analyzer.detect.nanodet import ModelError, NanoDet
from bus.messages import Detection

log = logging.getLogger("vigil.analyzer.detect")
Image = bytes | np.ndarray  # JPEG bytes (as packets carry them) or a BGR array
# A "person" box less than SQUAT times as tall as wide, scored below SURE, is dropped.
SQUAT, SURE = 1.3, 0.5


def allowed_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class Detector(abc.ABC):
    name: str = "detector"
    #: Why this detector stands in for the object model ('' when it is the object model).
    fallback: str = ""

    def __init__(self, threads: int = 0) -> None:
        self.threads = threads or allowed_cores()
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="detector")

    @abc.abstractmethod
    def detect_image(self, bgr: np.ndarray) -> list[Detection]:
        """Objects in one BGR image (frame index 0); blocking: call from a worker thread."""

    def detect_one(self, image: Image, frame: int = 0) -> list[Detection]:
        bgr = decode(image)
        if bgr is None:
            return []
        found = self.detect_image(bgr)
        for d in found:
            d.frame = frame
        return found

    async def detect(self, frames: Sequence[Image], indices: Iterable[int] | None = None) -> list[list[Detection]]:
        """Per frame, what is in it; frames run in parallel on the pool, never on the loop.
        `indices`: the frame numbers to record in each Detection (default 0, 1, ...)."""
        loop = asyncio.get_running_loop()
        idx = list(indices) if indices is not None else list(range(len(frames)))
        return list(await asyncio.gather(*(loop.run_in_executor(self._pool, self.detect_one, f, i)
                                           for f, i in zip(frames, idx, strict=True))))

    def info(self) -> dict[str, object]:
        return {"name": self.name, "fallback": bool(self.fallback), "reason": self.fallback, "threads": self.threads}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class ObjectDetector(Detector):
    """COCO-80 objects from NanoDet-g at 416 px."""

    def __init__(self, model: NanoDet, threshold: float, labels: Iterable[str] = (), threads: int = 0) -> None:
        super().__init__(threads)
        self.model = model
        self.name = model.name
        self.threshold = threshold
        names = list(labels)
        wanted = set() if "all" in names else set(names)  # empty: every label
        unknown = wanted - set(COCO_LABELS)
        if unknown:
            raise ValueError(f"analyzer.cpu.labels: not COCO labels: {sorted(unknown)} (or [all])")
        self.wanted = wanted

    def detect_image(self, bgr: np.ndarray) -> list[Detection]:
        out = []
        h, w = bgr.shape[:2]
        for cls, score, box in self.model.detect(bgr, self.threshold):
            label = COCO_LABELS[cls]
            if label == "person" and score < SURE and box[3] * h < SQUAT * box[2] * w:
                continue  # squat and unsure: clutter (vtest.avi's traffic cone, 0.41-0.46), not a person
            if not self.wanted or label in self.wanted:
                out.append(Detection(label=label, score=round(score, 3), box=[round(v, 4) for v in box]))
        return out


class HogDetector(Detector):
    """People only, from OpenCV's HOG + linear SVM; score = the SVM margin, clipped to 0..1."""

    name = "opencv-hog"

    def __init__(self, upscale_to: int, hit_threshold: float, fallback: str = "", threads: int = 0) -> None:
        super().__init__(threads)
        self.upscale_to, self.hit_threshold, self.fallback = upscale_to, hit_threshold, fallback

    def detect_image(self, bgr: np.ndarray) -> list[Detection]:
        h, w = bgr.shape[:2]
        return [Detection(label="person", score=round(min(1.0, max(0.0, s)), 3),
                          box=[round(x / w, 4), round(y / h, 4), round(bw / w, 4), round(bh / h, 4)])
                for (x, y, bw, bh), s in detect_people(bgr, self.upscale_to, self.hit_threshold)]


def decode(image: Image) -> np.ndarray | None:
    if isinstance(image, np.ndarray):
        return image
    return cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)


def open_detector(kind: str = "nanodet", *, model_path: str = "", threshold: float = 0.4, labels: Iterable[str] = (),
                  threads: int = 0, people: bool = True, upscale_to: int = 800,
                  hit_threshold: float = 0.3) -> Detector | None:
    """The configured detector: the object model, else (said in `fallback`) HOG; None for 'none'
    or when the model is absent and the HOG fallback is switched off (`people: false`)."""
    if kind == "none":
        return None
    reason = ""
    if kind == "nanodet":
        found = store.find(model_path)
        if isinstance(found, store.Installed):
            try:
                model = NanoDet(found.path)
                # ~0.1 s at start: the file in hand gives the outputs recorded at set-up.
                why = store.outputs_match(model.forward(store.check_input()))
                if not why:
                    return ObjectDetector(model, threshold, labels, threads)
                reason = f"{found.path} does not give the recorded outputs ({why})"
            except ModelError as exc:
                reason = str(exc)
        else:
            reason = found
        log.warning("cpu backend: %s; falling back to OpenCV's HOG people detector", reason)
    if not people:
        return None
    return HogDetector(upscale_to, hit_threshold, fallback=reason, threads=threads)


def counts(per_frame: Sequence[Sequence[Detection]]) -> dict[str, int]:
    """Per label, the most seen in any one frame (objects persist across a packet's frames)."""
    out: dict[str, int] = {}
    for found in per_frame:
        frame: dict[str, int] = {}
        for d in found:
            frame[d.label] = frame.get(d.label, 0) + 1
        for label, n in frame.items():
            out[label] = max(out.get(label, 0), n)
    return out
