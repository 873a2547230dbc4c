"""The embedded default: motion statistics plus detectors whose weights ship inside OpenCV.

Real analysis with no downloads: OpenCV's HOG people detector (its SVM ships in the
library), Haar cascades as configured (cv2.data), and optional OCR through rapidocr (the
`ocr` extra). It fills the same event fields as a model and answers structured (label)
rules; asked a natural-language rule it answers match=false, confidence=0 with evidence
saying it cannot, so no alert ever fires on a guess.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np

from analyzer.backends.base import Analysis, Backend
from analyzer.settings import CpuBackendSettings
from analyzer.verdicts import label_verdicts, missing_verdict
from bus.messages import LabelRule, Packet, PromptRule, Rule

_local = threading.local()
CANNOT = ("the cpu backend cannot evaluate natural-language rules; set analyzer.backend to "
          "minicpm or openai to have this rule answered")


def _hog() -> cv2.HOGDescriptor:
    # HOGDescriptor is not safe to share across threads: one per worker thread.
    hog = getattr(_local, "hog", None)
    if hog is None:
        hog = cv2.HOGDescriptor()
        hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        _local.hog = hog
    return hog


def cascade_path(name: str) -> str:
    return name if os.path.sep in name else os.path.join(cv2.data.haarcascades, name)


def _cascade(path: str) -> cv2.CascadeClassifier:
    cache = getattr(_local, "cascades", None)
    if cache is None:
        cache = _local.cascades = {}
    cc = cache.get(path)
    if cc is None:
        cc = cache[path] = cv2.CascadeClassifier(path)
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


def detect_cascade(bgr: np.ndarray, path: str) -> int:
    gray = cv2.equalizeHist(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    return len(_cascade(path).detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(20, 20)))


def load_ocr() -> Any:
    """rapidocr is optional (the `ocr` extra): a clear message when it is missing."""
    try:
        from rapidocr_onnxruntime import RapidOCR  # ships its models inside the wheel
    except ImportError:
        try:
            from rapidocr import RapidOCR
        except ImportError:
            raise RuntimeError("analyzer.cpu.ocr is on but rapidocr is not installed: "
                               "pip install 'vigil[ocr]' (rapidocr-onnxruntime), or set analyzer.cpu.ocr: false") from None
    return RapidOCR()


def _ocr_text(engine: Any, bgr: np.ndarray) -> list[str]:
    out = engine(bgr)
    if isinstance(out, tuple):  # rapidocr-onnxruntime: (results, elapsed); results [[box, text, score], ...]
        texts = [str(r[1]) for r in (out[0] or []) if len(r) > 1]
    else:
        texts = [str(t) for t in (getattr(out, "txts", None) or [])]  # rapidocr >= 2
    return [t.strip() for t in texts if t.strip()]


def _pick(n: int, k: int) -> list[int]:
    """k indices spread over n frames, always including the last."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)}) if k > 1 else [n - 1]


class CpuBackend(Backend):
    name = "cpu"
    tokens_note = "no model: OpenCV detectors, 0 visual tokens"

    def __init__(self, settings: CpuBackendSettings, concurrency: int = 2) -> None:
        self.s = settings
        self.cascades: dict[str, str] = {k: cascade_path(v) for k, v in settings.cascades.items()}
        if settings.faces:
            self.cascades.setdefault("face", cascade_path("haarcascade_frontalface_default.xml"))
        parts = (["hog"] if settings.people else []) + [f"haar-{k}" for k in self.cascades] + (["ocr"] if settings.ocr else [])
        self.model = "opencv-" + "+".join(parts or ["motion"])
        self.concurrency = concurrency
        self._ocr: Any = None
        self._ocr_lock = threading.Lock()  # one OCR engine, used by one thread at a time
        # Detectors are CPU-bound and release the GIL: a small pool keeps the loop free.
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="cpu-backend")

    async def start(self) -> None:
        for label, path in self.cascades.items():
            if not os.path.isfile(path) or cv2.CascadeClassifier(path).empty():
                raise RuntimeError(f"analyzer.cpu cascade {label!r}: {path} is not a readable Haar cascade")
        if self.s.ocr:
            self._ocr = await asyncio.get_running_loop().run_in_executor(self._pool, load_ocr)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def analyze(
        self,
        packets: list[Packet],
        rules_by_camera: dict[str, list[Rule]] | None = None,
        contexts: dict[str, str] | None = None,
    ) -> list[Analysis]:
        loop = asyncio.get_running_loop()
        rules_by_camera = rules_by_camera or {}
        return list(await asyncio.gather(*(
            loop.run_in_executor(self._pool, self._one, p, rules_by_camera.get(p.camera, [])) for p in packets)))

    def _one(self, packet: Packet, rules: list[Rule]) -> Analysis:
        people = 0
        found: dict[str, int] = {}
        texts: list[str] = []
        for i in _pick(len(packet.frames), self.s.frames):
            bgr = cv2.imdecode(np.frombuffer(packet.frames[i].jpeg, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                continue
            if self.s.people:
                people = max(people, len(detect_people(bgr, self.s.upscale_to, self.s.hit_threshold)))
            for label, path in self.cascades.items():
                found[label] = max(found.get(label, 0), detect_cascade(bgr, path))
            if self._ocr is not None and i == len(packet.frames) - 1:  # OCR is slow: the newest frame only
                with self._ocr_lock:
                    texts = _ocr_text(self._ocr, bgr)
        counts: dict[str, int] = {}
        if people:
            counts["person"] = people
        for label, n in found.items():
            if n:
                counts[label] = max(counts.get(label, 0), n)
        if texts:
            counts["text"] = len(texts)
        labels = list(counts) + (["motion"] if packet.motion.area > 0 else [])
        verdicts = label_verdicts([r for r in rules if isinstance(r, LabelRule)], counts, labels, self.model)
        verdicts += [missing_verdict(r, CANNOT) for r in rules if isinstance(r, PromptRule)]
        return Analysis(summary=_summary(packet, counts, texts), labels=labels, counts=counts, rules=verdicts)


def _summary(packet: Packet, counts: dict[str, int], texts: list[str]) -> str:
    span = packet.frames[-1].ts - packet.frames[0].ts
    moving = f"motion over {packet.motion.area * 100:.1f}% of the view" if packet.motion.area else "no motion"
    people = counts.get("person", 0)
    who = {0: "No people detected", 1: "1 person detected"}.get(people, f"{people} people detected")
    more = "".join(f", {n} {label}{'s' if n > 1 else ''}" for label, n in counts.items() if label not in ("person", "text"))
    text = f'; text read: "{" | ".join(texts)[:200]}"' if texts else ""
    return f"{who}{more}; {moving} in {len(packet.frames)} frames over {span:.1f}s ({packet.reason}){text}."
