"""Object detection for the cpu backend (and any onset path): a COCO model, HOG as fallback.

    detector = open_detector("nanodet")          # analyzer/detect/detector.py
    per_frame = await detector.detect(jpegs)     # [[Detection(label, score, box, frame)], ...]
    counts(per_frame)                            # {"person": 3, "car": 1}

The model is fetched, verified and converted once by `vigil setup-detector` (setup.py) into a
cache outside the repository (store.py); nanodet.py runs and decodes it on OpenCV DNN.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Detector", "HogDetector", "ObjectDetector", "counts", "open_detector"]


def __getattr__(name: str) -> Any:
    # Lazy: the settings import coco.py, and loading the config must not pull in OpenCV.
    if name in __all__:
        from analyzer.detect import detector

        return getattr(detector, name)
    raise AttributeError(name)
